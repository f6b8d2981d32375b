/* SPDX-License-Identifier: GPL-2.0-only */
/* The agent session's state and the calls between its parts, private to them:
 * session.c (the run: trackers, disks in turn, the verdict), link.c (connect, retry, frame
 * I/O, the receiver's CONTROL and CUTOVER requests), epoch.c (one epoch of one disk, from
 * its change set, and the STATUS reports), pacer.c (pause and bandwidth limit) and
 * cutover.c (freeze, final epoch, thaw). */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "agent/level.h"
#include "agent/session.h"
#include "common/proto.h"

struct conn;
struct fp;
struct source;
struct track;

#define CTRL_BUF (PROTO_HDR_LEN + 1024)

/* One disk across connections. */
struct disk_run {
	struct fp *fps;      /* fingerprints the receiver has acknowledged (NULL: none) */
	uint64_t next_epoch;
	struct track *trk;   /* what each epoch reads: its change tracker */
	/* The source could not be read (0: healthy): why, when to try again, and the wait
	 * after the next failure. A fault is this disk's: the others go on meanwhile. */
	int fault;
	char fault_why[PROTO_MSG_MAX + 1];
	uint64_t retry_at;
	unsigned retry_s;
	bool resync;         /* an epoch was abandoned: the next one reads the whole disk */
	/* --skip-unreadable: the chunks the last acknowledged epoch could not read (zeros on
	 * the target), read again by every epoch until they can be. */
	uint64_t *bad;
	uint64_t nbad;
	/* --copy used: the chunks free space held in the last acknowledged epoch (zeros on
	 * the target), or NULL. */
	uint64_t *was_free;
	/* A first copy the receiver resumed from its checkpoint: the chunks of fps it vouches
	 * for (NULL: all of them); the others are sent whatever they hold. */
	uint64_t *held;
	/* The source grew and the receiver's target could not follow (fault says why): its
	 * epochs wait, and the growth is asked again at retry_at. */
	bool grow_held;
	/* The source shrank: refused, this disk is no longer replicated (fault says why). */
	bool stopped;
};

/* What the agent tells the receiver of each disk, for the operator (see proto_status). */
struct disk_view {
	uint8_t phase, tracker;
	bool active;            /* an epoch is being read and sent */
	uint64_t epoch;         /* the epoch in flight, or the last one sent */
	uint64_t done, total;   /* source bytes of that epoch covered so far, and in all */
	uint64_t todo, sent;    /* a tracked epoch: bytes of chunks to send, and sent (0: n/a) */
	uint64_t start_ns;      /* when that epoch began reading (0: none yet) */
	uint64_t prev_start_ns; /* when the one before it did (0: none) */
	uint64_t churn_bps;     /* changed bytes per second of source time, last measured */
	uint64_t last_changed;  /* bytes of chunks the last acknowledged epoch sent */
	bool last_tracked;      /* that epoch sent changes (not a full copy or reconciliation) */
	uint64_t throughput_bps;
	/* Before any verified epoch: bytes the receiver already holds (data chunks of an
	 * interrupted first copy, per its FPS answer), so progress survives a reconnect. */
	uint64_t held;
};

struct session {
	const struct agent_opts *o;
	struct source **srcs;    /* o->ndisks each */
	struct disk_run *runs;
	struct disk_view *views;
	SSL_CTX *ctx;
	uint8_t *ctrl;           /* CTRL_BUF bytes for control frames */
	uint8_t *big;            /* PROTO_MAX_PAYLOAD bytes for FPS frames */
	uint64_t epochs_done;    /* continuous epochs past the first, over all connections */
	struct lvl_ctl *lvl;     /* the adaptive zstd level, or NULL (a fixed level) */
	unsigned streams;        /* compression streams the receiver granted this connection */

	/* The receiver refused us (ERROR frame, TLS alert): no point reconnecting. */
	bool refused;
	/* The receiver found its target not as the tracker believed (a patch did not fit):
	 * the next connection reads every disk whole and sends what differs. */
	bool reconcile;
	/* What the current connection achieved, for the reconnect's backoff. */
	uint64_t conn_sent;
	bool conn_acked;
	/* Disks registered on the current connection: the receiver refuses a report of any
	 * other. */
	unsigned nregistered;
	uint64_t last_report;

	/* The operator's wishes, relayed by the receiver (which repeats them at every
	 * connection): no new data while paused, and no more than the rate on the wire. */
	bool paused;
	uint64_t remote_rate;
	uint64_t pace_next;      /* the pacer's clock: when the next byte may leave */
	uint64_t stop_seen_ns;   /* when the pacer first saw a stop request; 0: not yet */

	/* A cutover request that arrived while an epoch was in flight, served after it. */
	bool cut_pending;
	uint8_t cut_verify;
	/* The cutover's final epoch is under way: its reads must not wait as idle I/O while
	 * the source is frozen, and neither pause nor rate may stretch the freeze. */
	bool final_epoch;
	bool cut_over;           /* the cutover completed: the agent's work is done */

	/* Set by epoch_send when the source itself could not be read (not the link). */
	bool src_fault;
	char src_why[PROTO_MSG_MAX + 1];
};

/* session.c */
/* Whether SIGINT/SIGTERM asked the agent to stop (a signal handler's flag). */
bool ses_stopping(void);
/* One connection's worth of work on c (greeted): register every disk, bring each up to
 * date, then, unless once, run epochs. Returns 0 when done, -errno otherwise. */
int ses_connected(struct session *s, struct conn *c);

/* link.c */
/* Connects, retrying with backoff while the link (not the receiver's judgement) fails,
 * and runs ses_connected on each connection. Returns its last verdict. */
int link_run(struct session *s);
/* Receives one control frame of type want into buf; frames the receiver may send at any
 * time are served on the way; an ERROR frame becomes a logged refusal (-code). */
int link_recv(struct session *s, struct conn *c, enum proto_type want, uint8_t *buf, size_t cap,
	      struct proto_hdr *ret_hdr);
/* Reads one frame the receiver sent unasked (a CONTROL, a cutover request). */
int link_recv_async(struct session *s, struct conn *c);
/* Waits up to ms for the receiver to say something (c NULL: just sleeps). */
void link_wait(struct conn *c, int ms);
/* DISK, then DISK_OK or a refusal. */
int link_register_disk(struct session *s, struct conn *c, uint16_t disk_no);
/* The FPS frames that follow DISK_OK: *ret_fps NULL when the receiver knows nothing of the
 * disk, else every chunk's fingerprint on the target; *ret_next its next epoch. An
 * unfinished first copy resumed from the receiver's checkpoint vouches only for the chunks
 * in *ret_held (a bitmap, else NULL: all), read under tracking generation *ret_gen. */
int link_recv_fps(struct session *s, struct conn *c, uint16_t disk_no, struct fp **ret_fps,
		  uint64_t *ret_next, uint64_t **ret_held, uint64_t *ret_gen);

/* pacer.c */
/* The bandwidth limit in force: the tighter of --max-rate and the operator's (0: none). */
uint64_t pace_rate(const struct session *s);
/* Before len bytes go out: holds the stream while paused and paces it to the limit,
 * meanwhile serving the receiver's frames and reporting. Returns 0, or -errno: the link
 * failed, the receiver refused, or a stop was requested while held (-EINTR). */
int pace_gate(struct session *s, struct conn *c, size_t len);
/* Sleeps up to ms, returning early on a stop. With a connection it reports, serves the
 * receiver's frames, returns 1 at once for a cutover request, and while paused waits past
 * ms until resumed. */
int pace_sleep(struct session *s, uint64_t ms, struct conn *c);

/* epoch.c */
/* Sends a STATUS frame for every registered disk, at most once a second unless forced. */
int epoch_report(struct session *s, struct conn *c, bool force);
/* One epoch of disk_no from the receiver's fingerprints prev (NULL: none), the whole disk
 * when full. Returns 0, 1 when the source could not be read (reported; the others go on),
 * or -errno. *ret_missed (may be NULL): changed chunks the tracker had not reported. */
int epoch_run(struct session *s, struct conn *c, uint16_t disk_no, const struct fp *prev,
	      bool full, uint64_t *ret_missed);
/* Tells the receiver why disk_no's source cannot be read (DISK_FAULT), then reports. */
int epoch_send_fault(struct session *s, struct conn *c, uint16_t disk_no, bool abandoned);
/* Bytes of the non-zero chunks in fps: what of a first copy the receiver holds. */
uint64_t epoch_held_bytes(const struct fp *fps, uint64_t size, uint32_t cs);

/* grow.c */
/* Before an epoch of disk_no: whether its source still has the size the receiver holds.
 * Grown: the receiver is asked to follow (DISK_GROW); when it does, the source, *fps (the
 * receiver's fingerprints, may be NULL), the tracker and the run's bitmaps cover the new
 * size, and this epoch reads the new range; when it cannot, the disk is held and asked
 * again with backoff. Shrunk: refused, said, and the disk stops. Returns 0 to run the
 * epoch, 1 to skip this disk now, or -errno (the link failed). */
int grow_check(struct session *s, struct conn *c, uint16_t disk_no, struct fp **fps);

/* cutover.c */
/* The receiver asked for the cutover: hook, freeze, final epoch of every disk, thaw, and
 * the receiver's verdict. Returns 0 when cut over (s->cut_over), -errno otherwise. */
int cutover_run(struct session *s, struct conn *c);

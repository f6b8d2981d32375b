/* SPDX-License-Identifier: GPL-2.0-only */
/* What the receiver's session files share (session.c: the frames of replication and the
 * session's life; session-disk.c: a disk joining the session, its target, fingerprints
 * and record; session-req.c: the operator's requests to a live session, cutover, test
 * launch and disconnect): the session and disk structs and their helpers. Included only
 * by receiver/session*.c. */
#pragma once
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/fp.h"
#include "common/fptab.h"
#include "common/proto.h"
#include "common/util.h"
#include "receiver/record.h"
#include "receiver/session.h"

struct codec;
struct conn;
struct lsn_conn;
struct reg_agent;
struct reg_disk;

#define RCV_MAX_DISKS 256
#define IDLE_TIMEOUT_MS (15 * 60 * 1000)
/* How often a live session looks again at the revocation list: `agent revoke` closes a
 * session within this, however busy or idle it is. */
#define REVOKE_CHECK_MS 2000

struct rdisk {
	struct rcv_target *t;
	struct writer *w;
	uint64_t size;
	uint64_t nchunks;
	/* Verified fingerprint of every chunk received (common/fptab.h: 16 zero bytes stand
	 * for a zero chunk's); reserved from the receiver's budget with the bitmap. */
	struct fp *fps;
	uint8_t *have;    /* bitmap of chunks received in this epoch */
	uint64_t reserved; /* bytes of srv->fp_used this disk holds */
	uint64_t have_count;
	uint64_t epoch;   /* the epoch being received */
	bool marked;      /* the state record says "in progress" for this epoch */
	bool known;       /* fingerprints came from a previous session, not from this one */
	bool fps_saved;   /* the .fps file holds exactly d->fps */
	bool last_match;  /* the last epoch ended with equal roots */
	struct fp last_root;
	uint64_t patched; /* chunks of this epoch that came as PATCH frames */
	/* The last fault this disk's replication met and how it recovered, kept in the state
	 * record for ternctl status (one line; "" when none yet). */
	char event[REC_EVENT_MAX];
	bool fault_noted; /* this session set event (a fault it saw itself) */
	uint64_t epoch_at_req; /* d->epoch when the cutover was asked for */
	bool cut_over;    /* cut over: recorded, and no more writes */
	struct reg_disk *rd; /* its entry in the operator's registry (NULL: unobserved) */
	/* An unfinished first copy is checkpointed (session-ckpt.c) while ckpt is set: held
	 * marks the chunks the target holds once the writer is flushed (the checkpoint's and
	 * every one written since), with ckpt_gen, the agent's tracking generation they were
	 * all read under (0: none, or a mix). */
	bool ckpt;
	uint8_t *held;
	uint64_t held_count;
	uint64_t ckpt_gen;
	uint64_t ckpt_bytes, ckpt_ns; /* written since the last checkpoint, and when it was */
	uint64_t ckpts;               /* checkpoints taken in this session */
};

/* The receiver's decoder windows for all sessions together: 16 streams of 8 MiB (each
 * holds ~8.6 MiB once used), so agents beyond them get fewer or none and send
 * independent frames, as before streams. */
#define RCV_STREAMS_TOTAL 16u

struct rsession {
	struct rcv_server *srv;
	struct conn *c;
	struct lsn_conn *lc; /* its place in the listener's limits */
	struct codec *codec;
	unsigned streams; /* compression streams granted (of srv->streams_used) */
	unsigned streams_asked; /* ...of those HELLO asked for */
	char agent[NAME_MAX_LEN + 1];
	uint32_t cs;
	struct rdisk disks[RCV_MAX_DISKS];
	unsigned ndisks;
	uint8_t *buf;
	struct rcv_handle handle;
	bool registered;
	struct reg_agent *ra; /* this agent in the operator's registry (NULL: unobserved) */
	bool shared;          /* it presented the shared agent bundle */
	uint64_t revoke_checked_ns; /* when the revocation list was last consulted */
	char peer[64];
	struct rcv_cutover *cut; /* the cutover in progress (borrowed from the API thread that asked) */
	uint8_t cut_verify;
	uint64_t cut_gen; /* handle.req_gen when cut was adopted */
	uint64_t cut_t0;
	/* How the session ended, for the next session of its targets ("" for BYE). */
	char end_why[160];
	/* The refusal to send before closing, set by the first rule broken. */
	int err;
	char why[PROTO_MSG_MAX + 1];
};

/* ---- session.c ---- */

/* Records the first rule the agent broke (later ones keep the first), logs it and returns
 * its -errno; the refusal is sent when the session ends. */
int refuse(struct rsession *s, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Consults the revocation list again: a revoked agent's session is refused. 0 or -errno. */
int recheck_revoked(struct rsession *s);
/* Sends the operator's wishes (pause, rate): all, or only what differs from the defaults. */
int send_wishes(struct rsession *s, bool all);

/* ---- session-disk.c: a disk joining the session, its target, fingerprints and record ---- */

/* DISK: admits a disk to the session (its target, record and fingerprints), then
 * DISK_OK and the FPS frames; a refusal through refuse(). */
int on_disk(struct rsession *s, const struct proto_hdr *h);
/* Takes bytes from the receiver-wide fingerprint budget (-ENOMEM past it, with what is left
 * in ret_free), and gives them back. */
int fp_reserve(struct rcv_server *srv, uint64_t bytes, uint64_t *ret_free);
void fp_release(struct rcv_server *srv, uint64_t bytes);
/* The Merkle root over fps, leaf by leaf. */
void disk_root(const struct rsession *s, const struct rdisk *d, const struct fp *fps,
	       struct fp *ret_root);
/* Lets a target claimed by on_disk go. */
void release_target(struct rcv_server *srv, struct rcv_target *t);
/* Fills d->fps for a resumed disk: from the .fps file of a verified epoch, else by reading
 * the target (*ret_reconciled). 0 or -errno. */
int recover_fps(struct rsession *s, struct rdisk *d, const struct disk_record *rec,
		bool *ret_reconciled);
/* Writes the disk's record: verified with root, or a copy in progress (root NULL). */
int save_disk_state(struct rsession *s, const struct rdisk *d, uint64_t epoch,
		    const struct fp *root);
/* Sets the disk's last event, time-stamped. */
void note_event(struct rdisk *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes the .fps file atomically. 0 or -errno. */
int save_fps(struct rsession *s, const struct rdisk *d);

/* ---- session-ckpt.c: the checkpoint of an unfinished first copy ---- */

/* Flushes the writer, then saves the checkpoint. 0 or -errno (the old one stands). */
int ckpt_save(struct rsession *s, struct rdisk *d);
/* Before chunks [first, last) are written with fingerprints fps (as the session keeps them;
 * NULL: zero chunks): those the checkpoint vouches for with another fingerprint leave it,
 * durably, first. 0, a writer's -errno (for wr_failed), or refuse()'s. */
int ckpt_before_write(struct rsession *s, struct rdisk *d, uint64_t first, uint64_t last,
		      const struct fp *fps);
/* After chunks [first, last) (bytes) were queued: held from the next checkpoint on, which
 * is taken when due. 0, or a writer's -errno (for wr_failed); a checkpoint that cannot be
 * saved is logged and the copy goes on. */
int ckpt_after_write(struct rsession *s, struct rdisk *d, uint64_t first, uint64_t last,
		     uint64_t bytes);
/* At the session's end: what arrived since the last checkpoint is checkpointed too. */
void ckpt_final(struct rsession *s, struct rdisk *d);
/* The first copy is verified (its .fps file takes over) or cannot be trusted: no more
 * checkpoints, and the file goes. */
void ckpt_done(struct rsession *s, struct rdisk *d);

/* ---- session-grow.c ---- */

/* Grows disk d (between epochs) to size bytes: the fingerprint budget, the target
 * (wr_grow), the fingerprint array and chunk bitmap, the record ("in progress" at the new
 * size) and the registry. -ENOSPC (the target cannot hold it) and -ENOMEM (the budget)
 * change nothing; another -errno may leave the target grown and the record not (the next
 * session fits it again). why gets a one-line reason without the target's path. */
int disk_grow(struct rsession *s, struct rdisk *d, uint64_t size, char *why, size_t why_len);
/* Disk d is held at its size because disk_grow could not follow (why, its reason): says so
 * once to the operator (log, the disk's event and record, the registry when d->rd is open)
 * and a later ask with the same reason as news only. ret_line: the operator's line, which
 * names the target. */
void disk_hold_note(struct rsession *s, struct rdisk *d, const char *why, char *ret_line,
		    size_t line_len);
/* DISK_GROW: the disk's target, fingerprints and record follow its source to the new size,
 * or the disk is held with a reason (DISK_GROWN either way); a refusal through refuse(). */
int on_disk_grow(struct rsession *s, const struct proto_hdr *h);

/* ---- session-req.c: the operator's requests to a live session ---- */

/* Ends the cutover in progress with result and the proof or reason; s->cut is NULL after. */
void finish_cutover(struct rsession *s, int result, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Makes the session reachable by the API's requests (the eventfd in s->handle). 0 or -errno. */
int register_handle(struct rsession *s);
/* Answers a request still pending and takes the session off the API's list. */
void unregister_handle(struct rsession *s);
/* Waits for the agent's next frame or an API request: 1 when a frame can be read, 0 after
 * starting a cutover (or nothing to do), -errno on failure. */
int wait_input(struct rsession *s);
/* CUTOVER(FINAL): checks every disk's final epoch, records the cutover, sends the proof. */
int on_cutover(struct rsession *s, const struct proto_hdr *h);

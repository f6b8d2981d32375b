// SPDX-License-Identifier: GPL-2.0-only
/* The agent's session with the receiver; see session.h. */
#include "agent/session.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/quiesce.h"
#include "agent/source.h"
#include "agent/snap.h"
#include "agent/track.h"
#include "common/log.h"
#include "common/net.h"
#include "common/proto.h"
#include "common/tls.h"
#include "common/util.h"

#define CTRL_BUF (PROTO_HDR_LEN + 1024)
/* A disk whose source cannot be read is tried again after 1 s, doubling up to this. */
#define DISK_RETRY_MAX_S 300u
/* A connection that sent this much, or lived this long, or had an epoch acknowledged, was
 * worth having: the next one follows after RECONNECT_QUICK_MS instead of backing off. */
#define RECONNECT_PRODUCTIVE_BYTES (256u << 10)
#define RECONNECT_PRODUCTIVE_NS (30 * 1000000000ull)
#define RECONNECT_QUICK_MS 100u

/* Set when the receiver refused us (ERROR frame, TLS alert): no point reconnecting. */
static bool g_refused;
/* The receiver found its target not as the tracker believed (a patch did not fit): the
 * next connection reads every disk whole and sends what differs from its fingerprints. */
static bool g_reconcile;
/* The cutover's final epoch is under way: its reads must not wait as idle I/O while the
 * source is frozen, since the freeze is the downtime. */
static bool g_final_epoch;
/* Set by send_epoch when the source itself could not be read (not the link), with why. */
static bool g_src_fault;
static char g_src_why[PROTO_MSG_MAX + 1];
/* What the current connection achieved, for the reconnect's backoff: frame bytes sent and
 * whether an epoch was acknowledged. */
static uint64_t g_conn_sent;
static bool g_conn_acked;

struct disk_stats {
	uint64_t plain, zero, wire;
	uint64_t read; /* bytes read from the source: not holes, nor batches nobody marked */
	uint64_t t_start, t_end;
};

/* Receives one control frame; an ERROR frame becomes a logged refusal (-code). */
/* A cutover request that arrived while an epoch was in flight, served after it. */
static bool g_cut_pending;
static uint8_t g_cut_verify;

/* The operator's wishes, relayed by the receiver (which repeats them at every connection):
 * no new data while paused, and no more than the rate on the wire. */
static bool g_paused;
static uint64_t g_remote_rate;
static uint64_t g_pace_next; /* the pacer's clock: when the next byte may leave */

/* Notes a CUTOVER request found where another frame was awaited. 1 when it was one. */
static int note_cut_request(const struct proto_hdr *h, const uint8_t *buf)
{
	struct proto_cutover m;

	if (h->type != PROTO_CUTOVER || proto_decode_cutover(buf, h->len, &m) < 0 ||
	    m.phase != PROTO_CUT_REQUEST)
		return 0;
	g_cut_pending = true;
	g_cut_verify = m.verify;
	/* The operator wants the cutover now: a pause would hold its final epoch forever. */
	if (g_paused)
		log_info("the cutover lifts the pause");
	g_paused = false;
	return 1;
}

/* Applies a CONTROL frame. 1 when h was one, 0 when not, -errno when malformed. */
static int note_control(const struct proto_hdr *h, const uint8_t *buf)
{
	struct proto_control m;
	char b[32];

	if (h->type != PROTO_CONTROL)
		return 0;
	if (proto_decode_control(buf, h->len, &m) < 0)
		return log_errno(-EBADMSG, "receiver sent a malformed CONTROL frame");
	switch (m.op) {
	case PROTO_CTL_PAUSE:
		if (!g_paused)
			log_info("paused by the operator: no data is sent until resumed");
		g_paused = true;
		break;
	case PROTO_CTL_RESUME:
		if (g_paused)
			log_info("resumed by the operator");
		g_paused = false;
		break;
	default:
		/* Debt run up at the old rate is not owed at the new one. */
		if (m.rate_bps != g_remote_rate)
			g_pace_next = 0;
		if (m.rate_bps != g_remote_rate) {
			if (m.rate_bps)
				log_info("bandwidth limit set by the operator: %s/s",
					 fmt_bytes(m.rate_bps, b, sizeof(b)));
			else
				log_info("bandwidth limit lifted by the operator");
		}
		g_remote_rate = m.rate_bps;
		break;
	}
	return 1;
}

/* A frame the receiver may send at any time (a CONTROL, or a CUTOVER request unless one
 * is what is awaited): 1 when h was one and is dealt with, 0 otherwise, -errno when bad. */
static int note_async(const struct proto_hdr *h, const uint8_t *buf, enum proto_type want)
{
	int r = note_control(h, buf);

	if (r != 0)
		return r;
	return want != PROTO_CUTOVER ? note_cut_request(h, buf) : 0;
}

/* The receiver's ERROR frame h (payload in buf): says why, and that reconnecting is
 * pointless. Returns its code as -errno. */
static int refusal(const struct proto_hdr *h, const uint8_t *buf)
{
	struct proto_error e;

	g_refused = true;
	if (proto_decode_error(buf, h->len, &e) < 0)
		return log_errno(-EBADMSG, "receiver sent a malformed ERROR frame");
	log_error("receiver refused: %s", e.msg);
	return e.code > 0 && e.code < 4096 ? -(int)e.code : -EPROTO;
}

static int recv_ctrl(struct conn *c, enum proto_type want, uint8_t *buf, size_t cap,
		     struct proto_hdr *ret_hdr)
{
	struct proto_hdr h;
	int r;

again:
	r = conn_recv(c, &h, buf, cap);

	if (r == -ETIMEDOUT)
		return log_errno(r, "receiver did not answer in time");
	if (r == -EPROTO && strstr(conn_error_text(c), "alert")) {
		/* TLS 1.3 finishes the client's handshake before the server has checked the
		 * client certificate, so a refusal of our credential arrives here as an alert. */
		log_error("receiver ended the TLS session: %s", conn_error_text(c));
		g_refused = true;
		return r;
	}
	if (r < 0)
		return log_errno(r, "connection to receiver lost");
	if (h.type == PROTO_ERROR)
		return refusal(&h, buf);
	/* The cutover may be asked for while an epoch is under way: it waits for the epoch. */
	if (h.type != want) {
		r = note_async(&h, buf, want);
		if (r < 0)
			return r;
		if (r > 0)
			goto again;
	}
	if (h.type != want) {
		log_error("receiver sent %s where %s was expected", proto_type_name(h.type),
			  proto_type_name(want));
		return -EPROTO;
	}
	*ret_hdr = h;
	return 0;
}

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
static struct disk_view *g_views;
static unsigned g_nviews;
/* Disks registered on the current connection: the receiver refuses a report of any other. */
static unsigned g_nregistered;
static uint64_t g_last_report;

#define REPORT_NS 1000000000ull
#define PACE_BURST_NS 50000000ull

static volatile sig_atomic_t stop_requested;

/* bytes per second over ns, capped where the receiver stops believing a rate (2^50). */
static uint64_t rate_of(uint64_t bytes, uint64_t ns)
{
	double r = (double)bytes * 1e9 / (double)MAX(ns, 1ull);

	return r >= 0x1p50 ? UINT64_C(1) << 50 : (uint64_t)r;
}

static uint64_t effective_rate(const struct agent_opts *o)
{
	if (!o->max_rate || !g_remote_rate)
		return o->max_rate ? o->max_rate : g_remote_rate;
	return MIN(o->max_rate, g_remote_rate);
}

/* Bytes changed on the source and not yet on the receiver, estimated from what the
 * current epoch still has to send and the churn measured since the last epoch began. */
static uint64_t backlog_of(const struct disk_view *v, uint64_t now)
{
	double since = v->start_ns ? (double)(now - v->start_ns) / 1e9 : 0.0;
	uint64_t grown = (uint64_t)((double)v->churn_bps * since), left = 0;

	if (v->active && v->phase != PROTO_PHASE_TRACKING)
		left = v->total - v->done;
	else if (v->active && v->todo > v->sent)
		left = v->todo - v->sent;
	if (v->tracker == PROTO_TRACKER_NONE)
		return left;
	return left + MIN(grown, v->total);
}

/* Sends a STATUS frame for every disk, at most once a second unless forced. */
static int report(const struct agent_opts *o, struct conn *c, bool force)
{
	uint64_t now = now_ns();
	uint8_t out[PROTO_HDR_LEN + PROTO_STATUS_LEN];

	if (!c || (!force && now - g_last_report < REPORT_NS))
		return 0;
	g_last_report = now;
	for (unsigned i = 0; i < MIN(g_nviews, g_nregistered); i++) {
		const struct disk_view *v = &g_views[i];
		struct proto_status m = {
			.disk_no = (uint16_t)i, .phase = v->phase, .tracker = v->tracker,
			.paused = g_paused, .active = v->active, .epoch = v->epoch,
			.bytes_done = MIN(v->done, v->total), .bytes_total = v->total,
			.backlog_bytes = backlog_of(v, now), .churn_bps = v->churn_bps,
			.throughput_bps = v->throughput_bps,
			.rate_limit_bps = MIN(effective_rate(o), UINT64_C(1) << 50),
		};
		int n = proto_encode_status(out, sizeof(out), &m), r;

		if (n < 0)
			return log_errno(n, "cannot encode STATUS");
		r = conn_send(c, out, (size_t)n);
		if (r < 0)
			return log_errno(r, "connection to receiver lost");
	}
	return 0;
}

/* Reads one frame the receiver sent unasked: a CONTROL or a cutover request is taken
 * note of; a refusal or anything else ends the session. */
static int recv_async(struct conn *c, uint8_t *ctrl)
{
	struct proto_hdr h;
	int r = conn_recv(c, &h, ctrl, CTRL_BUF);

	if (r < 0)
		return log_errno(r, "connection to receiver lost");
	if (h.type == PROTO_ERROR)
		return refusal(&h, ctrl);
	r = note_async(&h, ctrl, PROTO_EPOCH_ACK);
	if (r == 0)
		r = log_errno(-EPROTO, "receiver sent %s unasked", proto_type_name(h.type));
	return r < 0 ? r : 0;
}

/* Waits up to ms for the receiver to say something. */
static void wait_readable(struct conn *c, int ms)
{
	struct pollfd p = { .fd = c ? conn_fd(c) : -1, .events = POLLIN };

	if (!c || !conn_pending(c))
		poll(&p, 1, ms);
}

/* Before len bytes go out: holds the stream while the operator has paused it and paces
 * it to the bandwidth limit, meanwhile serving the receiver's frames and reporting.
 * Returns 0, or -errno: the link failed, the receiver refused, or a stop was requested
 * while paused (-EINTR: the epoch is abandoned, nothing of it was acknowledged). */
static int gate(const struct agent_opts *o, struct conn *c, uint8_t *ctrl, size_t len)
{
	for (;;) {
		uint64_t rate = effective_rate(o), now = now_ns();
		int r;

		if (conn_readable(c)) {
			r = recv_async(c, ctrl);
			if (r < 0)
				return r;
			continue;
		}
		r = report(o, c, false);
		if (r < 0)
			return r;
		/* The final epoch runs with the source frozen: neither a pause nor a bandwidth
		 * limit may stretch that downtime (the forecast counts the limit, though). */
		if (g_final_epoch)
			return 0;
		if (stop_requested && (g_paused || (rate && g_pace_next > now)))
			return -EINTR;
		if (g_paused) {
			wait_readable(c, 100);
			continue;
		}
		if (!rate || !len)
			return 0;
		/* A pacer idle for a while does not bank more than a short burst, and never
		 * owes more than this frame at the current rate. */
		if (g_pace_next + PACE_BURST_NS < now)
			g_pace_next = now - PACE_BURST_NS;
		if (g_pace_next <= now) {
			g_pace_next += (uint64_t)((double)len * 1e9 / (double)rate);
			return 0;
		}
		wait_readable(c, (int)MIN((g_pace_next - now) / 1000000 + 1, 100u));
	}
}

static void print_progress(const char *id, const struct disk_stats *st, uint64_t done,
			   uint64_t size)
{
	double secs = (double)(now_ns() - st->t_start) / 1e9;
	char a[32], b[32];

	fprintf(stderr, "%s: %5.1f%%  %s / %s  %.0f MiB/s\n", id,
		100.0 * (double)done / (double)size, fmt_bytes(done, a, sizeof(a)),
		fmt_bytes(size, b, sizeof(b)), secs > 0 ? (double)st->plain / secs / 1048576.0 : 0.0);
}

/* Registers a disk with the receiver: DISK, then DISK_OK or a refusal. */
static int register_disk(const struct agent_opts *o, struct conn *c, struct source *src,
			 uint16_t disk_no, uint8_t *ctrl)
{
	struct proto_disk dm = { .disk_no = disk_no, .logical_block = src->logical_block,
				 .size = src->size };
	struct proto_disk_ok ok;
	struct proto_hdr h;
	int n, r;

	snprintf(dm.id, sizeof(dm.id), "%s", src->id);
	conn_set_recv_timeout(c, o->connect_timeout_ms); /* a control answer comes at once */
	n = proto_encode_disk(ctrl, CTRL_BUF, &dm);
	if (n < 0)
		return log_errno(n, "%s: cannot encode disk", src->id);
	r = conn_send(c, ctrl, (size_t)n);
	if (r < 0)
		return log_errno(r, "connection to receiver lost");
	r = recv_ctrl(c, PROTO_DISK_OK, ctrl, CTRL_BUF, &h);
	if (r < 0)
		return r;
	r = proto_decode_disk_ok(ctrl, h.len, &ok);
	if (r < 0 || ok.disk_no != disk_no)
		return log_errno(r < 0 ? r : -EPROTO, "receiver sent a malformed DISK_OK");
	return 0;
}

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
};

/* Sends one epoch of a disk, what the change set cs says (everything when cs->prev is
 * NULL), then waits for the receiver's durable, verified acknowledgement. On success
 * *ret_fps holds every chunk's new fingerprint. */
static int send_epoch(const struct agent_opts *o, struct conn *c, struct source *src,
		      struct disk_run *run, uint16_t disk_no, uint64_t epoch,
		      const struct changeset *cs, uint8_t *ctrl, struct fp **ret_fps,
		      uint64_t *ret_missed)
{
	struct disk_stats st = { 0 };
	struct proto_epoch_end ee = { .disk_no = disk_no, .epoch = epoch };
	struct proto_epoch_ack ack;
	struct rd_opts ro = o->rd;
	struct reader *rd = NULL;
	struct proto_hdr h;
	uint64_t last_report, sent_chunks = 0, patched = 0, missed = 0, nbad, at, words;
	const uint64_t *bad = NULL;
	char hex1[33], hex2[33], b1[32], b2[32], b3[32];
	bool progress = o->progress && epoch == 0;
	struct disk_view *v = &g_views[disk_no];
	int n, r;

	ro.skip_unreadable = o->skip_unreadable;
	if (o->fault_eio_disk && strcmp(o->fault_eio_disk, src->id) == 0) {
		ro.fault_eio_off = o->fault_eio_off;
		ro.fault_eio_len = o->fault_eio_len;
		ro.fault_eio_flag = o->fault_eio_flag;
	}
	if (g_final_epoch)
		ro.ioprio = RD_IOPRIO_BE;
	g_src_fault = false;
	st.t_start = last_report = now_ns();
	v->epoch = epoch;
	v->active = true;
	v->done = v->held;
	v->sent = 0;
	v->total = src->size;
	v->todo = 0;
	if (cs->only) {
		uint64_t nset = 0;

		for (uint64_t w = 0; w < DIV_ROUND_UP(DIV_ROUND_UP(src->size, o->rd.chunk_size), 64); w++)
			nset += (uint64_t)__builtin_popcountll(cs->only[w]);
		v->todo = nset * o->rd.chunk_size;
	}
	/* Churn: changed bytes over the time in which they changed. A tracker's harvest holds
	 * what changed since the last epoch began, known now. The scan tracker learns what
	 * changed only by reading: the last epoch's finds changed, on average, between the
	 * start of the epoch before it and its own. (Dividing by the time since would
	 * understate churn whenever epochs grow, as they do when the source changes faster
	 * than the link sends: just when the forecast matters.) A full read (copy,
	 * reconciliation) says nothing of it. */
	if (v->start_ns && cs->prev && v->phase == PROTO_PHASE_TRACKING) {
		if (cs->only)
			v->churn_bps = rate_of(v->todo, st.t_start - v->start_ns);
		else if (v->prev_start_ns && v->last_tracked)
			v->churn_bps = rate_of(v->last_changed, v->start_ns - v->prev_start_ns);
	}
	v->prev_start_ns = v->start_ns;
	v->start_ns = st.t_start;
	r = report(o, c, true);
	if (r < 0)
		goto out;
	r = rd_start(src, disk_no, &ro, cs, &rd);
	if (r < 0) {
		log_errno(r, "%s: cannot start the read pipeline", src->id);
		goto out;
	}
	for (;;) {
		struct rd_out *out = NULL;

		r = rd_next(rd, &out);
		if (r <= 0)
			break;
		/* Mid-stream the receiver speaks to refuse, to pass on the operator's wishes,
		 * or to ask for the cutover (served after this epoch): look before sending. */
		r = gate(o, c, ctrl, out->len);
		if (r < 0) {
			rd_out_free(out);
			goto out;
		}
		r = out->len ? conn_send(c, out->buf, out->len) : 0;
		if (r == 0)
			g_conn_sent += out->len;
		st.plain += out->plain_bytes;
		st.read += out->read_bytes;
		st.zero += out->zero_bytes;
		st.wire += out->len;
		sent_chunks += out->sent_chunks;
		v->done = MAX(st.plain, v->held);
		v->sent = sent_chunks * o->rd.chunk_size;
		patched += out->patched_chunks;
		missed += out->missed_chunks;
		rd_out_free(out);
		if (r < 0) {
			/* A refusal may be waiting behind the broken pipe: prefer its reason. */
			int r2 = recv_ctrl(c, PROTO_EPOCH_ACK, ctrl, CTRL_BUF, &h);
			r = r2 < 0 ? r2 : r;
			goto out;
		}
		if (progress && now_ns() - last_report >= 1000000000ull) {
			print_progress(src->id, &st, v->done, src->size);
			last_report = now_ns();
		}
	}
	if (r < 0) {
		/* The source's own fault is this disk's alone: the caller goes on with the
		 * others. Anything else (memory, the compressor) ends the connection. */
		if (rd_source_failed(rd, &at)) {
			g_src_fault = true;
			snprintf(g_src_why, sizeof(g_src_why), "reading %s at byte %" PRIu64 " failed: %s",
				 src->path, at, strerror(-r));
		} else {
			log_errno(r, "%s: reading %s failed", src->id, src->path);
		}
		goto out;
	}
	nbad = rd_unreadable(rd, &bad);
	r = rd_root(rd, &ee.root, &ee.nchunks);
	if (r < 0) {
		log_errno(r, "%s: cannot compute the Merkle root", src->id);
		goto out;
	}
	n = proto_encode_epoch_end(ctrl, CTRL_BUF, &ee);
	r = n < 0 ? n : conn_send(c, ctrl, (size_t)n);
	if (r < 0) {
		log_errno(r, "connection to receiver lost");
		goto out;
	}
	st.wire += (uint64_t)n;
	g_conn_sent += (uint64_t)n;
	if (progress)
		print_progress(src->id, &st, MAX(st.plain, v->held), src->size);
	log_info("%s: epoch %" PRIu64 ": %" PRIu64 " of %" PRIu64 " chunks sent (%" PRIu64 " as "
		 "patches of their changed blocks); waiting for the receiver to make them durable",
		 src->id, epoch, sent_chunks, ee.nchunks, patched);
	conn_set_recv_timeout(c, o->ack_timeout_ms);
	r = recv_ctrl(c, PROTO_EPOCH_ACK, ctrl, CTRL_BUF, &h);
	if (r < 0)
		goto out;
	r = proto_decode_epoch_ack(ctrl, h.len, &ack);
	if (r < 0 || ack.disk_no != disk_no || ack.epoch != epoch) {
		r = log_errno(r < 0 ? r : -EPROTO, "receiver sent a malformed EPOCH_ACK");
		goto out;
	}
	st.t_end = now_ns();
	g_conn_acked = true;
	v->active = false;
	v->done = v->total;
	v->held = 0;
	v->last_changed = sent_chunks * o->rd.chunk_size;
	v->last_tracked = v->phase == PROTO_PHASE_TRACKING;
	/* Throughput for the forecast: chunks sent per second, read to acknowledged; tiny
	 * epochs measure round trips rather than the pipe and keep the last figure. */
	if (v->last_changed >= (4u << 20))
		v->throughput_bps = rate_of(v->last_changed, st.t_end - st.t_start);
	fp_hex(&ee.root, hex1);
	fp_hex(&ack.root, hex2);
	if (!ack.match || !fp_equal(&ack.root, &ee.root)) {
		log_error("%s: VERIFICATION FAILED: source root %s, target root %s", src->id, hex1, hex2);
		r = -EIO;
		goto out;
	}
	{
		double secs = (double)(st.t_end - st.t_start) / 1e9;

		if (epoch == 0)
			printf("%s: copied %s in %.2f s (%.0f MiB/s): %" PRIu64 " chunks, %s zero, "
			       "%s on the wire (%.2fx smaller, %" PRIu64 " bytes)\n",
			       src->id, fmt_bytes(src->size, b1, sizeof(b1)), secs,
			       secs > 0 ? (double)src->size / secs / 1048576.0 : 0.0, ee.nchunks,
			       fmt_bytes(st.zero, b2, sizeof(b2)), fmt_bytes(st.wire, b3, sizeof(b3)),
			       st.wire ? (double)src->size / (double)st.wire : 0.0, st.wire);
		else
			/* What was read, not the disk's size: a tracked epoch reads only the
			 * batches its tracker marked, and an image's holes are never read. */
			printf("%s: epoch %" PRIu64 ": read %s of %s in %.2f s, %" PRIu64 " changed "
			       "chunks, %" PRIu64 " bytes on the wire\n", src->id, epoch,
			       fmt_bytes(st.read, b1, sizeof(b1)), fmt_bytes(src->size, b2, sizeof(b2)),
			       secs, sent_chunks, st.wire);
		if (nbad)
			/* The root covers zeros where the source could not be read: the target
			 * equals what was read, not the source. */
			printf("%s: epoch %" PRIu64 " durable on the receiver, merkle root %s; NOT a "
			       "verified copy: %" PRIu64 " unreadable chunk(s) zero-filled on the "
			       "target\n", src->id, epoch, hex1, nbad);
		else
			printf("%s: epoch %" PRIu64 " durable and verified on the receiver: merkle "
			       "root %s matches\n", src->id, epoch, hex1);
		fflush(stdout);
	}
	/* Kept so that every later epoch reads them again, and for the verdict. */
	words = DIV_ROUND_UP(DIV_ROUND_UP(src->size, o->rd.chunk_size), 64);
	if (nbad && !run->bad && !(run->bad = calloc(words, 8))) {
		r = log_errno(-ENOMEM, "allocation");
		goto out;
	}
	if (run->bad)
		memcpy(run->bad, bad, words * 8);
	run->nbad = nbad;
	*ret_fps = rd_take_fps(rd);
	if (ret_missed)
		*ret_missed = missed;
	r = 0;
out:
	v->active = false;
	rd_free(rd);
	return r;
}

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* Sleeps up to ms, returning early when a stop was requested. With a connection it
 * reports, serves the receiver's frames, returns 1 at once for a cutover request, and
 * while the operator has paused replication waits past ms until resumed. */
static int pause_between_epochs(const struct agent_opts *o, uint64_t ms, struct conn *c,
				uint8_t *ctrl)
{
	uint64_t end = now_ns() + ms * 1000000ull;

	while (!stop_requested) {
		if (c && conn_readable(c)) {
			int r = recv_async(c, ctrl);

			if (r < 0)
				return r;
			if (g_cut_pending)
				return 1;
			continue;
		}
		if (c && report(o, c, false) < 0)
			return -ECONNRESET;
		if (now_ns() >= end && !(c && g_paused))
			return 0;
		wait_readable(c, 100);
	}
	return 0;
}

/* Receives the FPS frames that follow DISK_OK. *ret_fps is NULL when the receiver knows
 * nothing of this disk (copy everything), else every chunk's fingerprint on the target. */
static int recv_fps(struct conn *c, const struct source *src, uint16_t disk_no, uint32_t cs,
		    uint8_t *big, struct fp **ret_fps, uint64_t *ret_next)
{
	uint64_t nchunks = DIV_ROUND_UP(src->size, cs), have = 0, next = 0;
	struct fp *fps = NULL;
	struct proto_hdr h = { 0 };
	int r;

	for (;;) {
		struct proto_fps m;

		r = recv_ctrl(c, PROTO_FPS, big, PROTO_MAX_PAYLOAD, &h);
		if (r < 0)
			goto fail;
		r = proto_decode_fps(big, h.len, &m);
		if (r < 0 || m.disk_no != disk_no || m.first_chunk != have ||
		    m.count > nchunks - have || (have > 0 && (m.count == 0 || m.next_epoch != next))) {
			r = log_errno(r < 0 ? r : -EPROTO, "%s: receiver sent malformed fingerprints",
				      src->id);
			goto fail;
		}
		next = m.next_epoch;
		if (m.count == 0)
			break; /* the receiver knows nothing of this disk */
		if (!fps && !(fps = malloc(nchunks * sizeof(*fps)))) {
			r = log_errno(-ENOMEM, "allocation");
			goto fail;
		}
		memcpy(&fps[have], m.fps, (size_t)m.count * FP_LEN);
		have += m.count;
		if (have == nchunks)
			break;
	}
	*ret_fps = fps;
	*ret_next = next;
	return 0;
fail:
	free(fps);
	return r;
}

/* Says which chunks of the source could not be read, as byte ranges (as many as fit). */
static void fmt_unreadable(const struct disk_run *run, const struct source *src, uint32_t cs,
			   char *buf, size_t len)
{
	uint64_t nchunks = DIV_ROUND_UP(src->size, cs);
	size_t n;
	char b[32];

	n = (size_t)snprintf(buf, len, "%" PRIu64 " chunk(s) (%s) could not be read and are "
			     "zero-filled on the target, not a verified copy; unreadable bytes:",
			     run->nbad, fmt_bytes(run->nbad * cs, b, sizeof(b)));
	for (uint64_t i = 0; i < nchunks && n < len; i++) {
		uint64_t j = i;

		if (!(run->bad[i / 64] >> (i % 64) & 1))
			continue;
		while (j + 1 < nchunks && (run->bad[(j + 1) / 64] >> ((j + 1) % 64) & 1))
			j++;
		n += (size_t)snprintf(buf + n, len - n, " %" PRIu64 "-%" PRIu64, i * cs,
				      MIN((j + 1) * cs, src->size));
		i = j;
	}
}

/* Tells the receiver why disk_no's source cannot be read (DISK_FAULT) and, when abandoned,
 * that the epoch under way ends unfinished (else the epoch just acknowledged had unreadable
 * ranges); then reports the disk's status. Either way it is run->next_epoch, not yet
 * counted past. */
static int send_disk_fault(const struct agent_opts *o, struct conn *c, uint16_t disk_no,
			   const struct disk_run *run, bool abandoned)
{
	struct proto_disk_fault m = { .disk_no = disk_no, .abandoned = abandoned,
				      .epoch = run->next_epoch,
				      .code = run->fault < 0 && run->fault > -4096 ? (uint32_t)-run->fault : EIO };
	uint8_t out[PROTO_HDR_LEN + 2 + 1 + 4 + 8 + 2 + PROTO_MSG_MAX];
	int n, r;

	snprintf(m.msg, sizeof(m.msg), "%s", run->fault_why);
	g_views[disk_no].phase = PROTO_PHASE_FAULTED;
	g_views[disk_no].active = false;
	n = proto_encode_disk_fault(out, sizeof(out), &m);
	r = n < 0 ? n : conn_send(c, out, (size_t)n);
	if (r < 0)
		return log_errno(r, "connection to receiver lost");
	return report(o, c, true);
}

/* The source of disk_no could not be read (send_epoch said why in g_src_why): abandons its
 * epoch, tells the receiver and the log, and schedules a retry with backoff. The other
 * disks go on. Returns 1, or -errno when the link failed. */
static int disk_faulted(const struct agent_opts *o, struct conn *c, const struct source *src,
			struct disk_run *run, uint16_t disk_no, int err)
{
	int r;

	run->fault = err;
	snprintf(run->fault_why, sizeof(run->fault_why), "%s", g_src_why);
	run->retry_s = run->retry_s ? MIN(run->retry_s * 2, DISK_RETRY_MAX_S) : 1;
	run->retry_at = now_ns() + (uint64_t)run->retry_s * 1000000000ull;
	run->resync = true;
	if (o->once)
		log_error("%s: %s; the other disks go on", src->id, run->fault_why);
	else
		log_error("%s: %s; the other disks go on, and this one is tried again in %u s",
			  src->id, run->fault_why, run->retry_s);
	r = send_disk_fault(o, c, disk_no, run, true);
	return r < 0 ? r : 1;
}

/* One epoch of one disk. With a block tracker the changes since the last harvest join the
 * unacknowledged ones, and unless full only their chunks are read; they are forgotten
 * only once the receiver has acknowledged the epoch. prev: the receiver's fingerprints.
 * Returns 0, 1 when the source could not be read (reported; the session goes on with the
 * other disks, see disk_faulted), or -errno. */
static int disk_epoch(const struct agent_opts *o, struct conn *c, struct source *src,
		      struct disk_run *run, uint16_t disk_no, const struct fp *prev, bool full,
		      uint8_t *ctrl, uint64_t *ret_missed)
{
	struct changeset cs;
	struct fp *next = NULL;
	int r;

	r = track_changes(run->trk, prev, full, run->nbad ? run->bad : NULL, &cs);
	if (r < 0)
		return log_errno(r, "%s: harvesting the %s tracker", src->id, track_name(run->trk));
	r = send_epoch(o, c, src, run, disk_no, run->next_epoch, &cs, ctrl, &next, ret_missed);
	if (r < 0 && g_src_fault)
		return disk_faulted(o, c, src, run, disk_no, r);
	if (r < 0)
		return r;
	if (run->fault)
		log_info("%s: the source reads again; its replication resumes", src->id);
	run->fault = 0;
	run->retry_s = 0;
	run->resync = false;
	if (run->nbad) {
		/* Reported after the ack, which clears a disk's error on the receiver. */
		run->fault_why[0] = '\0';
		fmt_unreadable(run, src, o->rd.chunk_size, run->fault_why, sizeof(run->fault_why));
		log_warn("%s: %s", src->id, run->fault_why);
		r = send_disk_fault(o, c, disk_no, run, false);
		if (r < 0)
			return r;
	}
	free(run->fps);
	run->fps = next;
	run->next_epoch++;
	r = track_acked(run->trk, run->next_epoch - 1);
	if (r < 0)
		return log_errno(r, "%s: updating the %s tracker", src->id, track_name(run->trk));
	return 0;
}

static bool g_cut_over; /* the cutover completed: the agent's work is done */

/* The receiver asked for the cutover: run the operator's hook, freeze the source's
 * filesystems, send a final epoch of every disk, thaw (in every path), report how long the
 * source was frozen, and wait for the receiver's verdict. */
static int cutover(const struct agent_opts *o, struct conn *c, struct source **srcs,
		   struct disk_run *runs, uint8_t *ctrl)
{
	struct proto_cutover m, fin = { .phase = PROTO_CUT_FINAL };
	struct quiesce *qz = NULL;
	struct proto_hdr h;
	uint64_t t0, frozen_at;
	int n, r;

	if (g_cut_pending) {
		m = (struct proto_cutover){ .phase = PROTO_CUT_REQUEST, .verify = g_cut_verify };
		g_cut_pending = false;
	} else {
		r = recv_ctrl(c, PROTO_CUTOVER, ctrl, CTRL_BUF, &h);
		if (r < 0)
			return r;
		r = proto_decode_cutover(ctrl, h.len, &m);
		if (r < 0 || m.phase != PROTO_CUT_REQUEST)
			return log_errno(r < 0 ? r : -EPROTO, "receiver sent a malformed CUTOVER");
	}
	t0 = now_ns();
	log_info("cutover requested by the receiver (verify %s)",
		 m.verify == PROTO_VERIFY_FULL ? "full" : "tracked");
	if (o->pre_cutover && qz_run_hook(o->pre_cutover) < 0) {
		conn_send_error(c, EIO, "the pre-cutover hook on the source failed; not cutting over");
		g_refused = true;
		return -EIO;
	}
	r = qz_freeze(srcs, o->ndisks, o->freeze_limit_s, &qz);
	if (r < 0) {
		conn_send_error(c, -r, "the source could not be frozen; not cutting over");
		g_refused = true;
		return r;
	}
	frozen_at = now_ns();
	g_final_epoch = true;
	if (o->fault_stall_frozen_s) {
		log_warn("fault injection: staying frozen %u s", o->fault_stall_frozen_s);
		sleep(o->fault_stall_frozen_s);
	}
	/* --verify full re-reads the whole source too: a change the tracker never reported
	 * is sent, and counted, and fails the cutover. */
	for (unsigned i = 0; i < o->ndisks; i++)
		g_views[i].phase = PROTO_PHASE_CUTTING_OVER;
	for (unsigned i = 0; i < o->ndisks && r == 0; i++) {
		uint64_t missed = 0;

		r = disk_epoch(o, c, srcs[i], &runs[i], (uint16_t)i, runs[i].fps,
			       m.verify == PROTO_VERIFY_FULL || runs[i].resync, ctrl, &missed);
		/* A source that cannot be read, wholly or in part, has no final copy: the
		 * receiver hears why; the agent reconnects and goes on replicating. */
		if (r > 0 || (r == 0 && runs[i].nbad)) {
			conn_send_error(c, EIO, "%s: %s; not cutting over", srcs[i]->id,
					runs[i].fault_why);
			r = -EIO;
			break;
		}
		if (r == 0 && missed > 0 && runs[i].trk) {
			r = -EIO;
			log_error("%s: verify full: %" PRIu64 " changed chunk(s) the tracker did not "
				  "report", srcs[i]->id, missed);
			conn_send_error(c, EIO, "verify full: %s had %" PRIu64 " changed chunk(s) the "
					"tracker did not report; not cutting over", srcs[i]->id, missed);
			g_refused = true;
		}
	}
	g_final_epoch = false;
	/* A watchdog thaw means the final epoch may have read a live source: not a cutover. */
	if (r == 0 && qz_watchdog_fired(qz)) {
		r = -ETIMEDOUT;
		conn_send_error(c, ETIMEDOUT, "the source was thawed by the watchdog after %u s, before "
				"the final epoch ended; not cutting over", o->freeze_limit_s);
		g_refused = true;
	}
	qz = qz_thaw(qz);
	fin.frozen_ns = now_ns() - frozen_at;
	fin.verify = m.verify;
	if (r < 0)
		return r;
	n = proto_encode_cutover(ctrl, CTRL_BUF, &fin);
	r = n < 0 ? n : conn_send(c, ctrl, (size_t)n);
	if (r < 0)
		return log_errno(r, "connection to receiver lost");
	r = recv_ctrl(c, PROTO_CUTOVER, ctrl, CTRL_BUF, &h);
	if (r < 0)
		return r;
	r = proto_decode_cutover(ctrl, h.len, &m);
	if (r < 0 || m.phase != PROTO_CUT_DONE)
		return log_errno(r < 0 ? r : -EPROTO, "receiver sent a malformed CUTOVER");
	printf("cutover complete: every disk verified (%s); source frozen %.3f s, %.3f s in all\n",
	       m.verify == PROTO_VERIFY_FULL ? "full" : "tracked", (double)fin.frozen_ns / 1e9,
	       (double)(now_ns() - t0) / 1e9);
	fflush(stdout);
	g_cut_over = true;
	return 0;
}

/* Bytes of the chunks in fps (what the receiver holds) that are not all zeros: the part of
 * an interrupted first copy known to have arrived. Zero chunks cannot be told from chunks
 * not yet sent, so this errs low. */
static uint64_t held_bytes(const struct fp *fps, uint64_t size, uint32_t cs)
{
	uint64_t n = DIV_ROUND_UP(size, cs), held = 0;
	struct fp zero, tail;

	fp_zero(cs, &zero);
	fp_zero((size_t)(size - (n - 1) * cs), &tail);
	for (uint64_t i = 0; i < n; i++)
		if (!fp_equal(&fps[i], i + 1 < n ? &zero : &tail))
			held += MIN((uint64_t)cs, size - i * cs);
	return held;
}

/* One connection's worth of work: greet, register every disk, bring each up to date (a
 * full copy, or from the receiver's fingerprints), then, unless once, run epochs. Returns
 * 0 when done; -errno when the connection failed or was refused (g_refused says which). */
static int run_connected(const struct agent_opts *o, SSL_CTX *ctx, struct source **srcs,
			 struct disk_run *runs, uint8_t *ctrl, uint8_t *big, uint64_t *epochs_done)
{
	struct proto_hello hello = { .chunk_size = o->rd.chunk_size };
	struct proto_welcome w;
	struct proto_hdr h;
	struct conn *c = NULL;
	char why[256];
	int fd, n, r;

	fd = net_connect(o->receiver, o->connect_timeout_ms);
	if (fd < 0)
		return log_errno(fd, "cannot connect to receiver %s", o->receiver);
	c = conn_handshake(ctx, fd, false, o->connect_timeout_ms, &r, why, sizeof(why));
	if (!c) {
		log_error("TLS handshake with %s failed: %s", o->receiver, why);
		/* A refusal ends the agent; a link lost mid-handshake is retried. */
		g_refused = r == -ECONNREFUSED;
		return r;
	}
	snprintf(hello.name, sizeof(hello.name), "%s", o->name);
	n = proto_encode_hello(ctrl, CTRL_BUF, &hello);
	r = n < 0 ? n : conn_send(c, ctrl, (size_t)n);
	if (r < 0) {
		/* A receiver that refused our certificate has sent an alert saying so. */
		if (recv_ctrl(c, PROTO_WELCOME, ctrl, CTRL_BUF, &h) == 0)
			r = -EPROTO;
		goto out;
	}
	r = recv_ctrl(c, PROTO_WELCOME, ctrl, CTRL_BUF, &h);
	if (r < 0)
		goto out;
	r = proto_decode_welcome(ctrl, h.len, &w);
	if (r < 0) {
		log_errno(r, "receiver sent a malformed WELCOME");
		goto out;
	}
	log_info("connected to %s (TLS 1.3, mutual certificate verification)", o->receiver);
	g_nregistered = 0;
	/* A cutover request and the operator's wishes belong to one session: the receiver
	 * asks again, and repeats its wishes, on the next. */
	g_cut_pending = false;
	g_paused = false;
	g_remote_rate = 0;
	g_pace_next = 0;
	/* A receiver busy making a large target durable (or zeroing it) may not read for a
	 * while; the stream waits as long as the acknowledgement would. */
	conn_set_send_timeout(c, o->ack_timeout_ms);
	for (unsigned i = 0; i < o->ndisks; i++) {
		struct fp *offered = NULL;
		uint64_t missed = 0;
		bool tracked;

		r = register_disk(o, c, srcs[i], (uint16_t)i, ctrl);
		if (r < 0)
			goto out;
		g_nregistered = i + 1;
		/* The receiver may fingerprint its whole target first: wait as for an ack. */
		conn_set_recv_timeout(c, o->ack_timeout_ms);
		r = recv_fps(c, srcs[i], (uint16_t)i, o->rd.chunk_size, big, &offered,
			     &runs[i].next_epoch);
		if (r < 0)
			goto out;
		/* Until a first copy is verified the receiver has no epoch (next_epoch 0): what
		 * it holds is part of that copy, which progress counts from. */
		g_views[i].held = offered && runs[i].next_epoch == 0 ?
				  held_bytes(offered, srcs[i]->size, o->rd.chunk_size) : 0;
		if (offered && !o->once && runs[i].next_epoch == 0)
			log_info("%s: the receiver holds part of a first copy (no epoch yet); sending "
				 "only the chunks that differ", srcs[i]->id);
		else if (offered && !o->once)
			log_info("%s: the receiver holds it up to epoch %" PRIu64 "; sending only "
				 "the chunks that differ", srcs[i]->id, runs[i].next_epoch - 1);
		if (runs[i].fault && now_ns() < runs[i].retry_at) {
			/* Not yet time to read it again; the new session hears why, and keeps
			 * what the receiver holds for the retry. */
			free(runs[i].fps);
			runs[i].fps = offered;
			r = send_disk_fault(o, c, (uint16_t)i, &runs[i], true);
			if (r < 0)
				goto out;
			continue;
		}
		/* --once always sends everything; a resumed disk sends what differs. The first
		 * epoch of a connection reads the whole disk unless the tracker has watched the
		 * disk since the epoch the receiver holds (then only its changes). */
		tracked = offered && !g_reconcile && !runs[i].resync &&
			  track_continuous(runs[i].trk, runs[i].next_epoch);
		if (tracked)
			log_info("%s: tracking has been continuous since epoch %" PRIu64 "; reading only "
				 "the blocks changed since", srcs[i]->id, runs[i].next_epoch - 1);
		g_views[i].phase = runs[i].fault || runs[i].nbad ? PROTO_PHASE_FAULTED :
				   tracked ? PROTO_PHASE_TRACKING :
				   offered && !o->once ? PROTO_PHASE_RECONCILING : PROTO_PHASE_COPYING;
		r = disk_epoch(o, c, srcs[i], &runs[i], (uint16_t)i, o->once ? NULL : offered,
			       !tracked, ctrl, &missed);
		if (r > 0) {
			/* Faulted: the retry starts from what the receiver holds (--once does
			 * not retry). */
			free(runs[i].fps);
			runs[i].fps = offered;
			continue;
		}
		free(offered);
		if (r < 0)
			goto out;
		if (missed > 0 && runs[i].trk)
			log_warn("%s: reconciliation found %" PRIu64 " changed chunk(s) the tracker "
				 "had not reported", srcs[i]->id, missed);
	}
	g_reconcile = false;
	while (!o->once && !stop_requested && (o->epochs == 0 || *epochs_done < o->epochs)) {
		r = g_cut_pending ? 1 : pause_between_epochs(o, (uint64_t)o->interval_s * 1000, c, ctrl);
		if (r < 0)
			goto out;
		if (r > 0) {
			r = cutover(o, c, srcs, runs, ctrl);
			if (r < 0)
				goto out;
			break;
		}
		if (stop_requested)
			break;
		for (unsigned i = 0; i < o->ndisks; i++) {
			/* A disk whose source failed waits for its retry; the others go on. */
			if (runs[i].fault && now_ns() < runs[i].retry_at)
				continue;
			g_views[i].phase = runs[i].fault || runs[i].nbad ? PROTO_PHASE_FAULTED :
					   runs[i].resync ? PROTO_PHASE_RECONCILING : PROTO_PHASE_TRACKING;
			r = disk_epoch(o, c, srcs[i], &runs[i], (uint16_t)i, runs[i].fps,
				       runs[i].resync, ctrl, NULL);
			if (r < 0)
				goto out;
		}
		(*epochs_done)++;
	}
	n = proto_encode_bye(ctrl, CTRL_BUF);
	if (n > 0)
		conn_send(c, ctrl, (size_t)n);
	r = 0;
out:
	conn_free(c);
	return r;
}

/* Starts a tracker on every disk before its first read, so that nothing written during
 * the full copy is missed; a one-shot copy needs none but the scan. */
static int start_trackers(const struct agent_opts *o, struct source **srcs, struct disk_run *runs)
{
	struct track_conf conf = {
		.kind = o->tracker, .snapshot = o->snapshot, .snap_store = o->snapshot_cow,
		.chunk_size = o->rd.chunk_size, .block_size = o->track_block,
		.pin_root = o->bpf_pin_root, .interval_s = o->interval_s,
	};
	struct track **ts;
	int r = 0;

	if (o->once) {
		for (unsigned i = 0; i < o->ndisks && r == 0; i++)
			r = track_start_scan(srcs[i], o->rd.chunk_size, &runs[i].trk);
		return r < 0 ? log_errno(r, "allocation") : 0;
	}
	ts = calloc(o->ndisks, sizeof(*ts));
	if (!ts)
		return log_errno(-ENOMEM, "allocation");
	r = track_pick(&conf, srcs, o->ndisks, ts);
	for (unsigned i = 0; r == 0 && i < o->ndisks; i++)
		runs[i].trk = ts[i];
	free(ts);
	return r;
}

/* At the end: every disk whose source could not be read is named. -EIO when a disk was
 * not copied (its source failed), 1 when every disk was copied but some with unreadable
 * ranges zero-filled (not a verified copy), else 0. A stop on request with a faulted disk
 * is still a stop on request. */
static int verdict(const struct agent_opts *o, struct source **srcs, const struct disk_run *runs)
{
	int r = 0;

	for (unsigned i = 0; i < o->ndisks; i++) {
		if (runs[i].fault) {
			log_error("%s: not copied: %s", srcs[i]->id, runs[i].fault_why);
			r = -EIO;
		} else if (runs[i].nbad) {
			log_error("%s: copied, but %s", srcs[i]->id, runs[i].fault_why);
			r = r ? r : 1;
		}
	}
	return stop_requested && r < 0 ? 0 : r;
}

int session_run(const struct agent_opts *o)
{
	struct source **srcs = NULL;
	struct disk_run *runs = NULL;
	SSL_CTX *ctx = NULL;
	uint8_t *ctrl = NULL, *big = NULL;
	uint64_t epochs_done = 0, backoff_ms = 0;
	char why[256];
	int r;

	srcs = calloc(o->ndisks, sizeof(*srcs));
	runs = calloc(o->ndisks, sizeof(*runs));
	ctrl = malloc(CTRL_BUF);
	big = malloc(PROTO_MAX_PAYLOAD);
	g_views = calloc(o->ndisks, sizeof(*g_views));
	g_nviews = o->ndisks;
	if (!srcs || !runs || !ctrl || !big || !g_views) {
		r = log_errno(-ENOMEM, "allocation");
		goto out;
	}
	/* What a killed agent's snapshots left goes before any source is opened: an origin
	 * it left suspended would hang the first read. */
	for (unsigned i = 0; i < o->ndisks; i++) {
		r = snap_cleanup(o->disks[i].id, o->disks[i].path);
		if (r < 0) {
			log_errno(r, "%s: cannot undo the snapshots an earlier agent left", o->disks[i].id);
			goto out;
		}
	}
	/* Open every source first: a typo in the last --disk should fail before any copy. */
	for (unsigned i = 0; i < o->ndisks; i++) {
		why[0] = '\0';
		r = src_open(o->disks[i].id, o->disks[i].path, &srcs[i], why, sizeof(why));
		if (r < 0) {
			log_errno(r, "%s", why[0] ? why : o->disks[i].path);
			goto out;
		}
	}
	/* tls_client_ctx says what is wrong with the bundle itself. */
	ctx = tls_client_ctx(o->credentials, &r);
	if (!ctx)
		goto out;
	if (!o->once) {
		struct sigaction sa = { .sa_handler = on_stop_signal };

		/* No SA_RESTART: a stop ends a pause at once; an epoch in flight finishes. */
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
	}
	r = start_trackers(o, srcs, runs);
	if (r < 0)
		goto out;
	for (unsigned i = 0; i < o->ndisks; i++) {
		g_views[i].phase = PROTO_PHASE_COPYING;
		g_views[i].tracker = o->once ? PROTO_TRACKER_NONE : track_proto(runs[i].trk);
		g_views[i].total = srcs[i]->size;
	}
	for (;;) {
		uint64_t t_conn = now_ns();
		bool productive;

		g_refused = false;
		g_conn_sent = 0;
		g_conn_acked = false;
		r = run_connected(o, ctx, srcs, runs, ctrl, big, &epochs_done);
		/* A connection that moved data (or lived long) proves the link works: a lost one
		 * is retried almost at once, so a link that flaps every few MB still copies at
		 * nearly full speed. Links that fail at once back off, 1 s doubling to 60 s. */
		productive = g_conn_acked || g_conn_sent >= RECONNECT_PRODUCTIVE_BYTES ||
			     now_ns() - t_conn >= RECONNECT_PRODUCTIVE_NS;
		backoff_ms = productive ? RECONNECT_QUICK_MS :
			     backoff_ms < 1000 ? 1000 : MIN(backoff_ms * 2, 60000u);
		/* A patch that did not fit: reconnect at once, once, and reconcile. */
		if (r == -ESTALE && !g_reconcile && !o->once && !stop_requested) {
			log_warn("the receiver's target is not what the tracker expected (changed "
				 "behind tern, or a write the tracker missed); reconciling every disk "
				 "by fingerprints");
			g_reconcile = true;
			continue;
		}
		/* "In use" is the receiver still holding our previous session after a dead
		 * link; it lets go once its side notices, so that refusal is worth a retry, as
		 * are a cutover the operator's timeout withdrew and a session the operator
		 * closed (ternctl disconnect, ECONNRESET): a revoked agent is refused anew. */
		if (r == -ECANCELED && !g_cut_over)
			log_warn("the receiver withdrew the cutover (the operator's request timed "
				 "out); the source is thawed and replication goes on");
		if (r == 0 || o->once || g_cut_over ||
		    (g_refused && r != -EBUSY && r != -ECANCELED && r != -ECONNRESET) || stop_requested)
			break;
		/* The link failed, not the receiver's judgement: what it acknowledged is
		 * durable, and the next connection resumes from its fingerprints. */
		log_warn("connection lost; reconnecting in %.1f s", (double)backoff_ms / 1000.0);
		pause_between_epochs(o, backoff_ms, NULL, NULL);
	}
	if (r == -EINTR && stop_requested) {
		log_info("stopping on request while paused or paced: the epoch in flight is abandoned; "
			 "nothing of it was acknowledged");
		r = 0;
	}
	if (r == 0 && stop_requested)
		log_info("stopping on request; every epoch sent so far is durable on the receiver");
	if (r == 0 && !g_cut_over)
		r = verdict(o, srcs, runs);
out:
	SSL_CTX_free(ctx);
	/* Trackers before their sources: a snapshot provider borrows its source. */
	for (unsigned i = 0; runs && i < o->ndisks; i++) {
		free(runs[i].fps);
		free(runs[i].bad);
		/* After the cutover nothing needs tracking; otherwise the pinned tracker goes on
		 * recording for the next agent. */
		track_stop(runs[i].trk, g_cut_over);
	}
	for (unsigned i = 0; srcs && i < o->ndisks; i++)
		src_free(srcs[i]);
	free(runs);
	free(srcs);
	free(g_views);
	g_views = NULL;
	g_nviews = 0;
	free(ctrl);
	free(big);
	return r;
}

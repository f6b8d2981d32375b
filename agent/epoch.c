// SPDX-License-Identifier: GPL-2.0-only
/* One epoch of one disk: its change set from the tracker, the read pipeline's frames on the
 * wire, EPOCH_END, the receiver's durable and verified acknowledgement, and what the
 * operator is told of it (STATUS frames, the summary on stdout). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/fsmap.h"
#include "agent/reader.h"
#include "agent/session-impl.h"
#include "agent/source.h"
#include "agent/track.h"
#include "common/fp.h"
#include "common/fptab.h"
#include "common/log.h"
#include "common/net.h"
#include "common/proto.h"
#include "common/util.h"

/* A disk whose source cannot be read is tried again after 1 s, doubling up to this. */
#define DISK_RETRY_MAX_S 300u
#define REPORT_NS 1000000000ull

struct disk_stats {
	uint64_t plain, zero, wire;
	uint64_t read; /* bytes read from the source: not holes, nor batches nobody marked */
	uint64_t t_start, t_end;
};

/* bytes per second over ns, capped where the receiver stops believing a rate (2^50). */
static uint64_t rate_of(uint64_t bytes, uint64_t ns)
{
	double r = (double)bytes * 1e9 / (double)MAX(ns, 1ull);

	return r >= 0x1p50 ? UINT64_C(1) << 50 : (uint64_t)r;
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

int epoch_report(struct session *s, struct conn *c, bool force)
{
	uint64_t now = now_ns();
	uint8_t out[PROTO_HDR_LEN + PROTO_STATUS_LEN];

	if (!c || (!force && now - s->last_report < REPORT_NS))
		return 0;
	s->last_report = now;
	for (unsigned i = 0; i < MIN(s->o->ndisks, s->nregistered); i++) {
		const struct disk_view *v = &s->views[i];
		struct proto_status m = {
			.disk_no = (uint16_t)i, .phase = v->phase, .tracker = v->tracker,
			.paused = s->paused, .active = v->active, .epoch = v->epoch,
			.bytes_done = MIN(v->done, v->total), .bytes_total = v->total,
			.backlog_bytes = backlog_of(v, now), .churn_bps = v->churn_bps,
			.throughput_bps = v->throughput_bps,
			.rate_limit_bps = MIN(pace_rate(s), UINT64_C(1) << 50),
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

static void print_progress(const char *id, const struct disk_stats *st, uint64_t done,
			   uint64_t size)
{
	double secs = (double)(now_ns() - st->t_start) / 1e9;
	char a[32], b[32];

	fprintf(stderr, "%s: %5.1f%%  %s / %s  %.0f MiB/s\n", id,
		100.0 * (double)done / (double)size, fmt_bytes(done, a, sizeof(a)),
		fmt_bytes(size, b, sizeof(b)), secs > 0 ? (double)st->plain / secs / 1048576.0 : 0.0);
}

/* One epoch of one disk in flight. */
struct epoch {
	struct source *src;
	struct disk_run *run;
	struct disk_view *v;
	uint16_t disk_no;
	uint64_t epoch;
	struct reader *rd;
	struct disk_stats st;
	uint64_t sent_chunks, patched, missed;
	struct proto_epoch_end ee;
};

/* The reader's options for this epoch: the agent's, its fault seams, and a final epoch's
 * reads as best effort, not idle: the source is frozen meanwhile. */
static struct rd_opts read_opts(const struct session *s, const struct source *src)
{
	const struct agent_opts *o = s->o;
	struct rd_opts ro = o->rd;

	ro.skip_unreadable = o->skip_unreadable;
	if (o->fault_eio_disk && strcmp(o->fault_eio_disk, src->id) == 0) {
		ro.fault_eio_off = o->fault_eio_off;
		ro.fault_eio_len = o->fault_eio_len;
		ro.fault_eio_flag = o->fault_eio_flag;
	}
	if (s->final_epoch)
		ro.ioprio = RD_IOPRIO_BE;
	ro.lvl = s->lvl;
	ro.streams = s->streams;
	return ro;
}

/* The operator's view of an epoch that starts now, from its change set. */
static void view_begin(const struct session *s, struct epoch *e, const struct changeset *cs)
{
	uint32_t chunk = s->o->rd.chunk_size;
	struct disk_view *v = e->v;

	v->epoch = e->epoch;
	v->active = true;
	v->done = v->held;
	v->sent = 0;
	v->total = e->src->size;
	v->todo = 0;
	if (cs->only) {
		uint64_t nset = 0;

		for (uint64_t w = 0; w < DIV_ROUND_UP(DIV_ROUND_UP(e->src->size, chunk), 64); w++)
			nset += (uint64_t)__builtin_popcountll(cs->only[w]);
		v->todo = nset * chunk;
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
			v->churn_bps = rate_of(v->todo, e->st.t_start - v->start_ns);
		else if (v->prev_start_ns && v->last_tracked)
			v->churn_bps = rate_of(v->last_changed, v->start_ns - v->prev_start_ns);
	}
	v->prev_start_ns = v->start_ns;
	v->start_ns = e->st.t_start;
}

/* What the adaptive level learns from a batch sent from sent_at on (agent/level.h). */
static void note_level(struct session *s, const struct epoch *e, const struct rd_out *out,
		       uint64_t sent_at)
{
	struct lvl_batch b = { .wait_ns = out->wait_ns, .level = out->level, .at_ns = now_ns(),
			       .work_ns = out->work_ns, .work1_ns = out->work1_ns,
			       .spare_ns = out->spare_ns };
	int was = lvl_now(s->lvl), moved;

	b.link_ns = b.at_ns - sent_at;
	moved = lvl_note(s->lvl, &b);
	if (moved)
		log_debug("%s: zstd level %d (%s)", e->src->id, moved, moved > was ?
			  "the link is the limit" : "the link waits for compression");
}

/* Sends the reader's frames as they come. Returns 0 when the whole source has been read
 * and sent, or -errno; a source that could not be read sets s->src_fault and says why. */
static int stream(struct session *s, struct conn *c, struct epoch *e)
{
	const struct agent_opts *o = s->o;
	bool progress = o->progress && e->epoch == 0;
	uint64_t last_report = e->st.t_start, at;
	struct disk_view *v = e->v;
	struct proto_hdr h;
	uint64_t sent_at;
	int r;

	for (;;) {
		struct rd_out *out = NULL;

		r = rd_next(e->rd, &out);
		if (r <= 0)
			break;
		/* Mid-stream the receiver speaks to refuse, to pass on the operator's wishes,
		 * or to ask for the cutover (served after this epoch): look before sending. */
		sent_at = now_ns();
		r = pace_gate(s, c, out->len);
		if (r < 0) {
			rd_out_free(out);
			return r;
		}
		r = out->len ? conn_send(c, out->buf, out->len) : 0;
		if (r == 0) {
			s->conn_sent += out->len;
			/* Only a batch that carried data tells how compression keeps up. */
			if (s->lvl && out->read_bytes > out->zero_bytes)
				note_level(s, e, out, sent_at);
		}
		e->st.plain += out->plain_bytes;
		e->st.read += out->read_bytes;
		e->st.zero += out->zero_bytes;
		e->st.wire += out->len;
		e->sent_chunks += out->sent_chunks;
		v->done = MAX(e->st.plain, v->held);
		v->sent = e->sent_chunks * o->rd.chunk_size;
		e->patched += out->patched_chunks;
		e->missed += out->missed_chunks;
		rd_out_free(out);
		if (r < 0) {
			/* A refusal may be waiting behind the broken pipe: prefer its reason. */
			int r2 = link_recv(s, c, PROTO_EPOCH_ACK, s->ctrl, CTRL_BUF, &h);

			return r2 < 0 ? r2 : r;
		}
		if (progress && now_ns() - last_report >= 1000000000ull) {
			print_progress(e->src->id, &e->st, v->done, e->src->size);
			last_report = now_ns();
		}
	}
	if (r < 0) {
		/* The source's own fault is this disk's alone: the caller goes on with the
		 * others. Anything else (memory, the compressor) ends the connection. */
		if (rd_source_failed(e->rd, &at)) {
			s->src_fault = true;
			snprintf(s->src_why, sizeof(s->src_why), "reading %s at byte %" PRIu64
				 " failed: %s", e->src->path, at, strerror(-r));
		} else {
			log_errno(r, "%s: reading %s failed", e->src->id, e->src->path);
		}
		return r;
	}
	if (progress)
		print_progress(e->src->id, &e->st, MAX(e->st.plain, v->held), e->src->size);
	return 0;
}

/* EPOCH_END with the Merkle root, then the receiver's durable acknowledgement, whose root
 * must match. Returns 0 or -errno (-EIO: verification failed). */
static int conclude(struct session *s, struct conn *c, struct epoch *e)
{
	const struct agent_opts *o = s->o;
	uint8_t *ctrl = s->ctrl;
	struct disk_view *v = e->v;
	struct proto_epoch_ack ack;
	struct proto_hdr h;
	char hex1[33], hex2[33];
	int n, r;

	r = rd_root(e->rd, &e->ee.root, &e->ee.nchunks);
	if (r < 0)
		return log_errno(r, "%s: cannot compute the Merkle root", e->src->id);
	n = proto_encode_epoch_end(ctrl, CTRL_BUF, &e->ee);
	r = n < 0 ? n : conn_send(c, ctrl, (size_t)n);
	if (r < 0)
		return log_errno(r, "connection to receiver lost");
	e->st.wire += (uint64_t)n;
	s->conn_sent += (uint64_t)n;
	log_info("%s: epoch %" PRIu64 ": %" PRIu64 " of %" PRIu64 " chunks sent (%" PRIu64 " as "
		 "patches of their changed blocks), %" PRIu64 " bytes read from the source; "
		 "waiting for the receiver to make them durable", e->src->id, e->epoch,
		 e->sent_chunks, e->ee.nchunks, e->patched, e->st.read);
	conn_set_recv_timeout(c, o->ack_timeout_ms);
	r = link_recv(s, c, PROTO_EPOCH_ACK, ctrl, CTRL_BUF, &h);
	if (r < 0)
		return r;
	r = proto_decode_epoch_ack(ctrl, h.len, &ack);
	if (r < 0 || ack.disk_no != e->disk_no || ack.epoch != e->epoch)
		return log_errno(r < 0 ? r : -EPROTO, "receiver sent a malformed EPOCH_ACK");
	e->st.t_end = now_ns();
	s->conn_acked = true;
	v->active = false;
	v->done = v->total;
	v->held = 0;
	v->last_changed = e->sent_chunks * o->rd.chunk_size;
	v->last_tracked = v->phase == PROTO_PHASE_TRACKING;
	/* Throughput for the forecast: chunks sent per second, read to acknowledged; tiny
	 * epochs measure round trips rather than the pipe and keep the last figure. */
	if (v->last_changed >= (4u << 20))
		v->throughput_bps = rate_of(v->last_changed, e->st.t_end - e->st.t_start);
	if (!ack.match || !fp_equal(&ack.root, &e->ee.root)) {
		fp_hex(&e->ee.root, hex1);
		fp_hex(&ack.root, hex2);
		log_error("%s: VERIFICATION FAILED: source root %s, target root %s", e->src->id,
			  hex1, hex2);
		return -EIO;
	}
	return 0;
}

/* The epoch's summary on stdout. */
static void print_summary(const struct epoch *e, uint64_t nbad)
{
	const struct disk_stats *st = &e->st;
	const struct source *src = e->src;
	double secs = (double)(st->t_end - st->t_start) / 1e9;
	char hex[33], b1[32], b2[32], b3[32];

	fp_hex(&e->ee.root, hex);
	if (e->epoch == 0)
		printf("%s: copied %s in %.2f s (%.0f MiB/s): %" PRIu64 " chunks, %s zero, "
		       "%s on the wire (%.2fx smaller, %" PRIu64 " bytes)\n",
		       src->id, fmt_bytes(src->size, b1, sizeof(b1)), secs,
		       secs > 0 ? (double)src->size / secs / 1048576.0 : 0.0, e->ee.nchunks,
		       fmt_bytes(st->zero, b2, sizeof(b2)), fmt_bytes(st->wire, b3, sizeof(b3)),
		       st->wire ? (double)src->size / (double)st->wire : 0.0, st->wire);
	else
		/* What was read, not the disk's size: a tracked epoch reads only the
		 * chunks its tracker marked, and an image's holes are never read. */
		printf("%s: epoch %" PRIu64 ": read %s of %s in %.2f s, %" PRIu64 " changed "
		       "chunks, %" PRIu64 " bytes on the wire\n", src->id, e->epoch,
		       fmt_bytes(st->read, b1, sizeof(b1)), fmt_bytes(src->size, b2, sizeof(b2)),
		       secs, e->sent_chunks, st->wire);
	if (nbad)
		/* The root covers zeros where the source could not be read: the target
		 * equals what was read, not the source. */
		printf("%s: epoch %" PRIu64 " durable on the receiver, merkle root %s; NOT a "
		       "verified copy: %" PRIu64 " unreadable chunk(s) zero-filled on the "
		       "target\n", src->id, e->epoch, hex, nbad);
	else
		printf("%s: epoch %" PRIu64 " durable and verified on the receiver: merkle "
		       "root %s matches\n", src->id, e->epoch, hex);
	fflush(stdout);
}

/* Sends one epoch of disk_no, what the change set cs says (everything when cs->prev is
 * NULL), then waits for the receiver's durable, verified acknowledgement. On success
 * *ret_fps holds every chunk's new fingerprint, and the chunks that could not be read are
 * kept in the disk's run. */
static int send_epoch(struct session *s, struct conn *c, uint16_t disk_no,
		      const struct changeset *cs, struct fp **ret_fps, uint64_t *ret_missed)
{
	struct epoch e = {
		.src = s->srcs[disk_no], .run = &s->runs[disk_no], .v = &s->views[disk_no],
		.disk_no = disk_no, .epoch = s->runs[disk_no].next_epoch,
		.ee = { .disk_no = disk_no, .epoch = s->runs[disk_no].next_epoch },
	};
	struct rd_opts ro = read_opts(s, e.src);
	const uint64_t *bad = NULL;
	uint64_t nbad, words;
	int r;

	s->src_fault = false;
	e.st.t_start = now_ns();
	view_begin(s, &e, cs);
	r = epoch_report(s, c, true);
	if (r < 0)
		goto out;
	r = rd_start(e.src, disk_no, &ro, cs, &e.rd);
	if (r < 0) {
		log_errno(r, "%s: cannot start the read pipeline", e.src->id);
		goto out;
	}
	r = stream(s, c, &e);
	if (r < 0)
		goto out;
	nbad = rd_unreadable(e.rd, &bad);
	r = conclude(s, c, &e);
	if (r < 0)
		goto out;
	print_summary(&e, nbad);
	if (s->lvl)
		log_info("%s: zstd level adapts within %d..%d to the link: now %d, %d to %d used "
			 "so far (%" PRIu64 " changes)", e.src->id, s->lvl->min, s->lvl->max,
			 lvl_now(s->lvl), s->lvl->lowest, s->lvl->highest, s->lvl->changes);
	/* Kept so that every later epoch reads them again, and for the verdict. */
	words = DIV_ROUND_UP(DIV_ROUND_UP(e.src->size, s->o->rd.chunk_size), 64);
	if (nbad && !e.run->bad && !(e.run->bad = calloc(words, 8))) {
		r = log_errno(-ENOMEM, "allocation");
		goto out;
	}
	if (e.run->bad)
		memcpy(e.run->bad, bad, words * 8);
	e.run->nbad = nbad;
	*ret_fps = rd_take_fps(e.rd);
	if (ret_missed)
		*ret_missed = e.missed;
	r = 0;
out:
	e.v->active = false;
	rd_free(e.rd);
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
int epoch_send_fault(struct session *s, struct conn *c, uint16_t disk_no, bool abandoned)
{
	const struct disk_run *run = &s->runs[disk_no];
	struct proto_disk_fault m = { .disk_no = disk_no, .abandoned = abandoned,
				      .epoch = run->next_epoch,
				      .code = run->fault < 0 && run->fault > -4096 ? (uint32_t)-run->fault : EIO };
	uint8_t out[PROTO_HDR_LEN + 2 + 1 + 4 + 8 + 2 + PROTO_MSG_MAX];
	int n, r;

	snprintf(m.msg, sizeof(m.msg), "%s", run->fault_why);
	s->views[disk_no].phase = PROTO_PHASE_FAULTED;
	s->views[disk_no].active = false;
	n = proto_encode_disk_fault(out, sizeof(out), &m);
	r = n < 0 ? n : conn_send(c, out, (size_t)n);
	if (r < 0)
		return log_errno(r, "connection to receiver lost");
	return epoch_report(s, c, true);
}

/* The source of disk_no could not be read (send_epoch said why in s->src_why): abandons its
 * epoch, tells the receiver and the log, and schedules a retry with backoff. The other
 * disks go on. Returns 1, or -errno when the link failed. */
static int disk_faulted(struct session *s, struct conn *c, uint16_t disk_no, int err)
{
	const struct source *src = s->srcs[disk_no];
	struct disk_run *run = &s->runs[disk_no];
	int r;

	run->fault = err;
	snprintf(run->fault_why, sizeof(run->fault_why), "%s", s->src_why);
	run->retry_s = run->retry_s ? MIN(run->retry_s * 2, DISK_RETRY_MAX_S) : 1;
	run->retry_at = now_ns() + (uint64_t)run->retry_s * 1000000000ull;
	run->resync = true;
	if (s->o->once)
		log_error("%s: %s; the other disks go on", src->id, run->fault_why);
	else
		log_error("%s: %s; the other disks go on, and this one is tried again in %u s",
			  src->id, run->fault_why, run->retry_s);
	r = epoch_send_fault(s, c, disk_no, true);
	return r < 0 ? r : 1;
}

/* --copy used: the chunks free space holds in this epoch (cs->free) are sent as zeros
 * unread. A chunk free when the target last took an epoch (zeros there) and in use now
 * may have been allocated without a write the tracker sees (an unwritten or speculative
 * preallocation keeps its stale bytes): it joins the chunks to read (only) and the
 * tracker's marks, so it is sent and not counted as missed; and it goes whole, never as a
 * patch, since the target's other blocks of it are zeros, not the source's. Without the
 * last map (a new agent), that is every chunk of a mapped file system in use now that the
 * receiver holds as zeros (read once: most of them are zeros on the source too).
 * ret_bufs[2]: the widened bitmaps, owned by the caller. Returns 0 or -ENOMEM. */
static int widen_for_free(const struct disk_run *run, const struct fsm_map *map,
			  const struct fp *prev, uint64_t size, uint32_t chunk, struct changeset *cs,
			  uint64_t **ret_bufs)
{
	const uint64_t *base = cs->only ? cs->only : cs->marks;
	uint64_t words = DIV_ROUND_UP(map->nchunks, 64), nblocks = 0, *w, *blk = NULL;
	uint32_t per = 0;
	struct fp zero, tail, f;

	ret_bufs[0] = ret_bufs[1] = NULL;
	/* A snapshot's disk takes its first map at the cutover: none of its epochs zeroed
	 * anything, and reading every zero chunk while frozen would stretch the freeze. */
	if (!base || (!run->was_free && (map->free_bytes == 0 || cs->fd >= 0)))
		return 0;
	w = malloc(words * 8);
	if (cs->blocks) {
		per = chunk / cs->block_size;
		nblocks = DIV_ROUND_UP(size, cs->block_size);
		blk = malloc(DIV_ROUND_UP(nblocks, 64) * 8);
	}
	if (!w || (cs->blocks && !blk)) {
		free(w);
		free(blk);
		return -ENOMEM;
	}
	memcpy(w, base, words * 8);
	if (blk)
		memcpy(blk, cs->blocks, DIV_ROUND_UP(nblocks, 64) * 8);
	fp_zero(chunk, &zero);
	fp_zero((size_t)(size - (map->nchunks - 1) * chunk), &tail);
	for (uint64_t i = 0; i < map->nchunks; i++) {
		bool now_free = (map->free[i / 64] >> (i % 64)) & 1, was_free;

		if (now_free)
			continue;
		if (run->was_free) {
			was_free = (run->was_free[i / 64] >> (i % 64)) & 1;
		} else if (prev) {
			fps_get(prev, i, size, chunk, &f);
			was_free = fp_equal(&f, i + 1 < map->nchunks ? &zero : &tail) &&
				   fsm_known(map, i * chunk, MIN((uint64_t)chunk, size - i * chunk));
		} else {
			was_free = false;
		}
		if (!was_free)
			continue;
		w[i / 64] |= UINT64_C(1) << (i % 64);
		for (uint64_t b = i * per; blk && b < MIN((i + 1) * per, nblocks); b++)
			blk[b / 64] |= UINT64_C(1) << (b % 64);
	}
	if (cs->only)
		cs->only = w;
	else
		cs->marks = w;
	if (blk)
		cs->blocks = blk;
	ret_bufs[0] = w;
	ret_bufs[1] = blk;
	return 0;
}

/* A first copy resumed from the receiver's checkpoint (run->held): the chunks it does not
 * hold, with the ones no earlier epoch could read (bad, may be NULL), as a bitmap the
 * caller frees: they are read whatever the tracker says. NULL when out of memory. */
static uint64_t *unheld_chunks(const struct disk_run *run, const uint64_t *bad, uint64_t nchunks)
{
	uint64_t words = DIV_ROUND_UP(nchunks, 64), *w = malloc(words * 8);

	for (uint64_t i = 0; w && i < words; i++)
		w[i] = ~run->held[i] | (bad ? bad[i] : 0);
	if (w && nchunks % 64)
		w[words - 1] &= (UINT64_C(1) << (nchunks % 64)) - 1;
	return w;
}

/* One epoch of one disk. With a block tracker the changes since the last harvest join the
 * unacknowledged ones, and unless full only their chunks are read; they are forgotten
 * only once the receiver has acknowledged the epoch. prev: the receiver's fingerprints.
 * Returns 0, 1 when the source could not be read (reported; the session goes on with the
 * other disks, see disk_faulted), or -errno. */
int epoch_run(struct session *s, struct conn *c, uint16_t disk_no, const struct fp *prev,
	      bool full, uint64_t *ret_missed)
{
	const struct source *src = s->srcs[disk_no];
	struct disk_run *run = &s->runs[disk_no];
	struct changeset cs;
	struct fp *next = NULL;
	struct fsm_map *map = NULL;
	uint64_t *widened[2] = { NULL, NULL }, *unheld = NULL;
	int r;

	if (prev && run->held &&
	    !(unheld = unheld_chunks(run, run->nbad ? run->bad : NULL,
				     DIV_ROUND_UP(src->size, s->o->rd.chunk_size))))
		return log_errno(-ENOMEM, "allocation");
	r = track_changes(run->trk, prev, full, unheld ? unheld : run->nbad ? run->bad : NULL, &cs);
	free(unheld); /* copied into the tracker's own bitmap */
	if (r < 0)
		return log_errno(r, "%s: harvesting the %s tracker", src->id, track_name(run->trk));
	cs.held = prev ? run->held : NULL;
	/* Read after the harvest: what is allocated after this point is a write the next
	 * harvest holds (the scan tracker reads every used chunk of every epoch anyway).
	 * An epoch read from a snapshot (cs.fd) promises the disk as it was at one instant,
	 * which a map read at another cannot match (a block freed in between holds live
	 * metadata in the snapshot): it takes the map only when frozen, at the cutover. */
	if (s->o->copy_used && (cs.fd < 0 || s->final_epoch)) {
		r = fsm_read(src, s->o->rd.chunk_size, &map);
		if (r == 0)
			r = widen_for_free(run, map, prev, src->size, s->o->rd.chunk_size, &cs,
					   widened);
		if (r < 0) {
			fsm_free(map);
			return log_errno(r, "%s: mapping free space", src->id);
		}
		cs.free = map->free;
	}
	r = send_epoch(s, c, disk_no, &cs, &next, ret_missed);
	free(widened[0]);
	free(widened[1]);
	if (r < 0)
		fsm_free(map);
	if (r < 0 && s->src_fault)
		return disk_faulted(s, c, disk_no, r);
	if (r < 0)
		return r;
	if (map) {
		char why[1024];

		fsm_describe(map, why, sizeof(why));
		/* On stdout with the summary of the first copy and the cutover's epoch; the
		 * epochs between would repeat it every interval. */
		if (run->next_epoch == 0 || s->final_epoch) {
			printf("%s: %s\n", src->id, why);
			fflush(stdout);
		}
		log_debug("%s: epoch %" PRIu64 ": %s", src->id, run->next_epoch, why);
		free(run->was_free);
		run->was_free = map->free;
		map->free = NULL;
		fsm_free(map);
	}
	if (run->fault)
		log_info("%s: the source reads again; its replication resumes", src->id);
	run->fault = 0;
	run->retry_s = 0;
	run->resync = false;
	if (run->nbad) {
		/* Reported after the ack, which clears a disk's error on the receiver. */
		run->fault_why[0] = '\0';
		fmt_unreadable(run, src, s->o->rd.chunk_size, run->fault_why, sizeof(run->fault_why));
		log_warn("%s: %s", src->id, run->fault_why);
		r = epoch_send_fault(s, c, disk_no, false);
		if (r < 0)
			return r;
	}
	fps_free(run->fps);
	run->fps = next;
	free(run->held); /* every chunk is the receiver's now */
	run->held = NULL;
	run->next_epoch++;
	r = track_acked(run->trk, run->next_epoch - 1);
	if (r < 0)
		return log_errno(r, "%s: updating the %s tracker", src->id, track_name(run->trk));
	return 0;
}

/* Bytes of the chunks in fps (what the receiver holds) that are not all zeros: the part of
 * an interrupted first copy known to have arrived. Zero chunks cannot be told from chunks
 * not yet sent, so this errs low. */
uint64_t epoch_held_bytes(const struct fp *fps, uint64_t size, uint32_t cs)
{
	uint64_t n = DIV_ROUND_UP(size, cs), held = 0;
	struct fp zero, tail, f;

	fp_zero(cs, &zero);
	fp_zero((size_t)(size - (n - 1) * cs), &tail);
	for (uint64_t i = 0; i < n; i++) {
		fps_get(fps, i, size, cs, &f);
		if (!fp_equal(&f, i + 1 < n ? &zero : &tail))
			held += MIN((uint64_t)cs, size - i * cs);
	}
	return held;
}

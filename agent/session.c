// SPDX-License-Identifier: GPL-2.0-only
/* The agent's session with the receiver (see session.h): its state (session-impl.h), the
 * trackers, every disk brought up to date on each connection and then kept in step, and
 * the verdict. The link, the epochs, the pacer and the cutover are their own files. */
#include "agent/session.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/session-impl.h"
#include "agent/snap.h"
#include "agent/source.h"
#include "agent/track.h"
#include "common/fp.h"
#include "common/fptab.h"
#include "common/log.h"
#include "common/net.h"
#include "common/proto.h"
#include "common/tls.h"
#include "common/util.h"

/* The one file-scope variable: a signal handler has no other way in. */
static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

bool ses_stopping(void)
{
	return stop_requested;
}

/* Registers disk i on c and brings it up to date: a full copy, or from the receiver's
 * fingerprints (only the tracker's changes when it has watched since the receiver's
 * epoch). Returns 0 (also when the disk's source faulted: the others go on) or -errno. */
static int bring_up(struct session *s, struct conn *c, unsigned i)
{
	const struct agent_opts *o = s->o;
	struct disk_run *run = &s->runs[i];
	const struct source *src = s->srcs[i];
	struct fp *offered = NULL;
	uint64_t missed = 0, *held = NULL, gen = 0, nheld = 0;
	bool tracked, use_offered;
	int r;

	r = link_register_disk(s, c, (uint16_t)i);
	if (r < 0)
		return r;
	s->nregistered = i + 1;
	/* The receiver may fingerprint its whole target first: wait as for an ack. */
	conn_set_recv_timeout(c, o->ack_timeout_ms);
	r = link_recv_fps(s, c, (uint16_t)i, &offered, &run->next_epoch, &held, &gen);
	if (r < 0)
		return r;
	/* What the receiver holds now supersedes what it acknowledged on an earlier
	 * connection (every path below puts offered or the new epoch's in its place): not
	 * kept beside the two arrays an epoch needs. */
	run->fps = fps_free(run->fps);
	/* --once sends everything unless told to reconcile with what the receiver holds. */
	use_offered = offered && (!o->once || o->reconcile);
	free(run->held);
	run->held = use_offered ? held : NULL;
	if (!use_offered)
		free(held);
	for (uint64_t w = 0; run->held && w < DIV_ROUND_UP(DIV_ROUND_UP(src->size, o->rd.chunk_size), 64); w++)
		nheld += (uint64_t)__builtin_popcountll(run->held[w]);
	/* Until a first copy is verified the receiver has no epoch (next_epoch 0): what it
	 * holds is part of that copy, which progress counts from. */
	s->views[i].held = !use_offered || run->next_epoch != 0 ? 0 :
			   run->held ? MIN(nheld * o->rd.chunk_size, src->size) :
			   epoch_held_bytes(offered, src->size, o->rd.chunk_size);
	if (run->held)
		log_info("%s: the receiver holds %" PRIu64 " of %" PRIu64 " chunks of the first "
			 "copy (its checkpoint); sending the others and what changed", src->id,
			 nheld, DIV_ROUND_UP(src->size, o->rd.chunk_size));
	else if (use_offered && run->next_epoch == 0)
		log_info("%s: the receiver holds part of a first copy (no epoch yet); sending "
			 "only the chunks that differ", src->id);
	else if (use_offered)
		log_info("%s: the receiver holds it up to epoch %" PRIu64 "; sending only "
			 "the chunks that differ", src->id, run->next_epoch - 1);
	if (run->fault && now_ns() < run->retry_at) {
		/* Not yet time to read it again; the new session hears why, and keeps what
		 * the receiver holds for the retry. A held growth's receiver said why itself. */
		run->fps = offered;
		return run->grow_held ? 0 : epoch_send_fault(s, c, (uint16_t)i, true);
	}
	/* A source grown (or shrunk) since is followed (or refused) before it is read. */
	r = grow_check(s, c, (uint16_t)i, &offered);
	if (r != 0) {
		/* Held before this connection's first epoch: the one that follows the growth's
		 * acceptance reads the whole disk, as this one would have, unless the tracker has
		 * watched it since the receiver's epoch. */
		if (r > 0 && run->grow_held && !(offered && !s->reconcile &&
		    track_continuous(run->trk, run->next_epoch)))
			run->resync = true;
		run->fps = offered;
		return r > 0 ? 0 : r;
	}
	/* A resumed disk sends what differs (--once: only with --reconcile). The first
	 * epoch of a connection reads the whole disk unless the tracker has watched the
	 * disk since the epoch the receiver holds (then only its changes). */
	tracked = offered && !s->reconcile && !run->resync &&
		  track_continuous(run->trk, run->next_epoch);
	/* A first copy resumed from the receiver's checkpoint: its chunks were read while this
	 * tracker's generation was current, so any write to them since is in its pending set
	 * (an overflow makes that every block). Only the chunks it does not hold and those
	 * written since are read; the others keep the receiver's fingerprints. Under another
	 * generation (or none) every chunk is read and compared. */
	if (run->held && !s->reconcile && !run->resync) {
		if (gen != 0 && gen == track_gen(run->trk)) {
			tracked = true;
			log_info("%s: its chunks were read under this tracker's generation: reading "
				 "only the chunks the receiver does not hold and the blocks written "
				 "since", src->id);
		} else {
			log_info("%s: its chunks were read under %s: reading the whole disk, sending "
				 "what differs", src->id, gen ? "another tracking generation" :
				 "no tracking generation");
		}
	} else if (tracked)
		log_info("%s: tracking has been continuous since epoch %" PRIu64 "; reading only "
			 "the blocks changed since", src->id, run->next_epoch - 1);
	s->views[i].phase = run->fault || run->nbad ? PROTO_PHASE_FAULTED :
			    tracked && run->held ? PROTO_PHASE_COPYING :
			    tracked ? PROTO_PHASE_TRACKING :
			    use_offered ? PROTO_PHASE_RECONCILING : PROTO_PHASE_COPYING;
	r = epoch_run(s, c, (uint16_t)i, use_offered ? offered : NULL, !tracked, &missed);
	if (r > 0) {
		/* Faulted: the retry starts from what the receiver holds (--once does not
		 * retry). */
		run->fps = offered;
		return 0;
	}
	fps_free(offered);
	if (r < 0)
		return r;
	if (missed > 0)
		log_warn("%s: reconciliation found %" PRIu64 " changed chunk(s) the tracker "
			 "had not reported", src->id, missed);
	return 0;
}

int ses_connected(struct session *s, struct conn *c)
{
	const struct agent_opts *o = s->o;
	int n, r;

	for (unsigned i = 0; i < o->ndisks; i++) {
		r = bring_up(s, c, i);
		if (r < 0)
			return r;
	}
	s->reconcile = false;
	while (!o->once && !ses_stopping() && (o->epochs == 0 || s->epochs_done < o->epochs)) {
		r = s->cut_pending ? 1 : pace_sleep(s, (uint64_t)o->interval_s * 1000, c);
		if (r < 0)
			return r;
		if (r > 0) {
			r = cutover_run(s, c);
			if (r < 0)
				return r;
			break;
		}
		if (ses_stopping())
			break;
		for (unsigned i = 0; i < o->ndisks; i++) {
			struct disk_run *run = &s->runs[i];

			/* A disk whose source failed waits for its retry; the others go on. */
			if (run->fault && now_ns() < run->retry_at)
				continue;
			r = grow_check(s, c, (uint16_t)i, &run->fps);
			if (r < 0)
				return r;
			if (r > 0)
				continue;
			s->views[i].phase = run->fault || run->nbad ? PROTO_PHASE_FAULTED :
					    run->resync ? PROTO_PHASE_RECONCILING : PROTO_PHASE_TRACKING;
			r = epoch_run(s, c, (uint16_t)i, run->fps, run->resync, NULL);
			if (r < 0)
				return r;
		}
		s->epochs_done++;
	}
	n = proto_encode_bye(s->ctrl, CTRL_BUF);
	if (n > 0)
		conn_send(c, s->ctrl, (size_t)n);
	return 0;
}

/* Starts a tracker on every disk before its first read, so that nothing written during
 * the full copy is missed; a one-shot copy needs none but the scan. */
static int start_trackers(struct session *s)
{
	const struct agent_opts *o = s->o;
	/* Taken from as each disk's scan tracker starts (track_conf.sums_left). */
	uint64_t sums_left = o->block_sums_memory;
	struct track_conf conf = {
		.kind = o->tracker, .snapshot = o->snapshot, .snap_store = o->snapshot_cow,
		.chunk_size = o->rd.chunk_size, .block_size = o->track_block,
		.pin_root = o->bpf_pin_root, .interval_s = o->interval_s,
		.sums_left = &sums_left, .fault_sum_blind = o->fault_sum_blind,
	};
	struct track **ts;
	int r = 0;

	if (o->once) {
		for (unsigned i = 0; i < o->ndisks && r == 0; i++)
			r = track_start_scan(s->srcs[i], o->rd.chunk_size, &s->runs[i].trk);
		return r < 0 ? log_errno(r, "allocation") : 0;
	}
	ts = calloc(o->ndisks, sizeof(*ts));
	if (!ts)
		return log_errno(-ENOMEM, "allocation");
	r = track_pick(&conf, s->srcs, o->ndisks, ts);
	for (unsigned i = 0; r == 0 && i < o->ndisks; i++)
		s->runs[i].trk = ts[i];
	free(ts);
	return r;
}

/* At the end: every disk whose source could not be read is named. -EIO when a disk was
 * not copied (its source failed), 1 when every disk was copied but some with unreadable
 * ranges zero-filled (not a verified copy), else 0. A stop on request with a faulted disk
 * is still a stop on request. */
static int verdict(const struct session *s)
{
	int r = 0;

	for (unsigned i = 0; i < s->o->ndisks; i++) {
		const struct disk_run *run = &s->runs[i];

		if (run->fault) {
			log_error("%s: not copied: %s", s->srcs[i]->id, run->fault_why);
			r = -EIO;
		} else if (run->nbad) {
			log_error("%s: copied, but %s", s->srcs[i]->id, run->fault_why);
			r = r ? r : 1;
		}
	}
	return ses_stopping() && r < 0 ? 0 : r;
}

/* Undoes what a killed agent's snapshots left, then opens every source, before any
 * network I/O: a typo in the last --disk fails before any copy. */
static int open_sources(struct session *s)
{
	const struct agent_opts *o = s->o;
	char why[256];
	int r;

	/* An origin a killed agent left suspended would hang the first read. */
	for (unsigned i = 0; i < o->ndisks; i++) {
		r = snap_cleanup(o->disks[i].id, o->disks[i].path);
		if (r < 0)
			return log_errno(r, "%s: cannot undo the snapshots an earlier agent left",
					 o->disks[i].id);
	}
	for (unsigned i = 0; i < o->ndisks; i++) {
		why[0] = '\0';
		r = src_open(o->disks[i].id, o->disks[i].path, &s->srcs[i], why, sizeof(why));
		if (r < 0)
			return log_errno(r, "%s", why[0] ? why : o->disks[i].path);
	}
	return 0;
}

static void session_free(struct session *s)
{
	SSL_CTX_free(s->ctx);
	/* Trackers before their sources: a snapshot provider borrows its source. */
	for (unsigned i = 0; s->runs && i < s->o->ndisks; i++) {
		fps_free(s->runs[i].fps);
		free(s->runs[i].bad);
		free(s->runs[i].was_free);
		free(s->runs[i].held);
		/* After the cutover nothing needs tracking; otherwise the pinned tracker goes on
		 * recording for the next agent. */
		track_stop(s->runs[i].trk, s->cut_over);
	}
	for (unsigned i = 0; s->srcs && i < s->o->ndisks; i++)
		src_free(s->srcs[i]);
	free(s->runs);
	free(s->srcs);
	free(s->views);
	free(s->ctrl);
	free(s->big);
}

int session_run(const struct agent_opts *o)
{
	struct session s = { .o = o };
	struct lvl_ctl lvl;
	int r;

	if (o->level_min < o->level_max) {
		lvl_init(&lvl, o->level_min, o->level_max);
		s.lvl = &lvl;
	}

	s.srcs = calloc(o->ndisks, sizeof(*s.srcs));
	s.runs = calloc(o->ndisks, sizeof(*s.runs));
	s.views = calloc(o->ndisks, sizeof(*s.views));
	s.ctrl = malloc(CTRL_BUF);
	s.big = malloc(PROTO_MAX_PAYLOAD);
	if (!s.srcs || !s.runs || !s.views || !s.ctrl || !s.big) {
		r = log_errno(-ENOMEM, "allocation");
		goto out;
	}
	r = open_sources(&s);
	if (r < 0)
		goto out;
	/* tls_client_ctx says what is wrong with the bundle itself. */
	s.ctx = tls_client_ctx(o->credentials, &r);
	if (!s.ctx)
		goto out;
	if (!o->once) {
		struct sigaction sa = { .sa_handler = on_stop_signal };

		/* No SA_RESTART: a stop ends a pause at once; an epoch in flight finishes, or
		 * is abandoned after a grace period (pacer.c). */
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
	}
	r = start_trackers(&s);
	if (r < 0)
		goto out;
	for (unsigned i = 0; i < o->ndisks; i++) {
		s.views[i].phase = PROTO_PHASE_COPYING;
		s.views[i].tracker = o->once ? PROTO_TRACKER_NONE : track_proto(s.runs[i].trk);
		s.views[i].total = s.srcs[i]->size;
	}
	r = link_run(&s);
	if (r == -EINTR && ses_stopping()) {
		log_info("stopping on request: the epoch in flight is abandoned (paused, paced, or "
			 "still running 10 s after the request); nothing of it was acknowledged");
		r = 0;
	}
	if (r == 0 && ses_stopping())
		log_info("stopping on request; every epoch sent so far is durable on the receiver");
	if (r == 0 && !s.cut_over)
		r = verdict(&s);
out:
	session_free(&s);
	return r;
}

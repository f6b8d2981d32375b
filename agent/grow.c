// SPDX-License-Identifier: GPL-2.0-only
/* A source whose size changed during replication: looked at before each epoch. A disk
 * that grew is followed (DISK_GROW: the receiver grows its target, or says why it cannot
 * and the disk's epochs wait); one that shrank is refused, as nothing on the target may
 * be cut away behind the proof the operator holds. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/session-impl.h"
#include "agent/source.h"
#include "agent/track.h"
#include "common/fp.h"
#include "common/fptab.h"
#include "common/log.h"
#include "common/net.h"
#include "common/proto.h"
#include "common/util.h"

/* A held disk asks again after 1 s, doubling up to this: the operator's new volume
 * should not wait long to be used. */
#define HOLD_RETRY_MAX_S 16u

/* The source shrank: nothing is sent, the receiver is told (the disk's error and record),
 * and the disk is not tried again by this agent. Returns 1, or -errno (link). */
static int shrunk(struct session *s, struct conn *c, uint16_t disk_no, uint64_t now)
{
	const struct source *src = s->srcs[disk_no];
	struct disk_run *run = &s->runs[disk_no];
	char b1[32], b2[32];
	int r;

	run->stopped = true;
	run->grow_held = false;
	run->fault = -EINVAL;
	run->retry_at = UINT64_MAX;
	snprintf(run->fault_why, sizeof(run->fault_why), "the source shrank from %s to %s "
		 "(%" PRIu64 " to %" PRIu64 " bytes): shrinking is refused; replication of this "
		 "disk stopped and its target is left as it was", fmt_bytes(src->size, b1, sizeof(b1)),
		 fmt_bytes(now, b2, sizeof(b2)), src->size, now);
	log_error("%s: %s", src->id, run->fault_why);
	r = epoch_send_fault(s, c, disk_no, true);
	return r < 0 ? r : 1;
}

/* The receiver cannot follow (why, from its answer): the disk's epochs wait and the
 * growth is asked again with backoff; the other disks go on. Returns 1 or -errno. */
static int held(struct session *s, struct conn *c, uint16_t disk_no, uint64_t now,
		const struct proto_disk_grown *m)
{
	const struct source *src = s->srcs[disk_no];
	struct disk_run *run = &s->runs[disk_no];
	bool again = run->grow_held;
	int r;

	run->grow_held = true;
	run->fault = -(int)m->code;
	run->retry_s = run->retry_s ? MIN(run->retry_s * 2, HOLD_RETRY_MAX_S) : 1;
	run->retry_at = now_ns() + (uint64_t)run->retry_s * 1000000000ull;
	snprintf(run->fault_why, sizeof(run->fault_why), "the source grew to %" PRIu64 " bytes "
		 "and the receiver cannot follow: %.*s", now, (int)(sizeof(run->fault_why) - 100),
		 m->msg);
	/* Said once as an error; each later ask that finds it unchanged, as news only. */
	if (again)
		log_info("%s: still held: %s; asked again in %u s", src->id, m->msg, run->retry_s);
	else
		log_error("%s: %s; this disk's epochs are held and the growth is asked again in "
			  "%u s (the other disks go on)", src->id, run->fault_why, run->retry_s);
	s->views[disk_no].phase = PROTO_PHASE_FAULTED;
	s->views[disk_no].active = false;
	r = epoch_report(s, c, true);
	return r < 0 ? r : 1;
}

/* The receiver followed: everything the agent keeps per chunk covers the new size. The
 * receiver's target holds zeros past the old end (a file grown, a device's new range
 * zeroed), so those chunks' fingerprints are zero chunks'; the old last chunk, if it was
 * short, is longer now and matches nothing, so it is sent again. 0 or -errno. */
static int follow(struct session *s, uint16_t disk_no, uint64_t now, struct fp **fps)
{
	struct source *src = s->srcs[disk_no];
	struct disk_run *run = &s->runs[disk_no];
	uint32_t cs = s->o->rd.chunk_size;
	uint64_t old = src->size, on = DIV_ROUND_UP(old, cs), n = DIV_ROUND_UP(now, cs);
	uint64_t ow = DIV_ROUND_UP(on, 64), nw = DIV_ROUND_UP(n, 64);
	struct fp *f = NULL;
	uint64_t *bad = NULL;

	/* A growth within the last chunk keeps the count: only that chunk changes. */
	if (*fps && n > on) {
		/* The new entries read as zero chunks (common/fptab.h), at the new size. */
		f = fps_grow(*fps, on, n);
		if (!f)
			return -ENOMEM;
		*fps = f;
	}
	if (*fps && old % cs)
		memset(&(*fps)[on - 1], 0xff, sizeof((*fps)[on - 1]));
	if (run->bad) {
		bad = realloc(run->bad, nw * 8);
		if (!bad)
			return -ENOMEM;
		memset(bad + ow, 0, (nw - ow) * 8);
		run->bad = bad;
	}
	/* A resumed first copy's held chunks: none of the new range, nor a short old last
	 * chunk, which is longer now (the receiver drops it from its checkpoint when it
	 * arrives with another fingerprint). */
	if (run->held) {
		bad = realloc(run->held, nw * 8);
		if (!bad)
			return -ENOMEM;
		memset(bad + ow, 0, (nw - ow) * 8);
		if (on % 64)
			bad[ow - 1] &= (UINT64_C(1) << (on % 64)) - 1;
		if (old % cs)
			bad[(on - 1) / 64] &= ~(UINT64_C(1) << ((on - 1) % 64));
		run->held = bad;
	}
	/* The last map's free chunks describe the old size; the next map is read anyway. */
	free(run->was_free);
	run->was_free = NULL;
	src->size = now;
	s->views[disk_no].total = now;
	return track_grow(run->trk, old);
}

int grow_check(struct session *s, struct conn *c, uint16_t disk_no, struct fp **fps)
{
	struct source *src = s->srcs[disk_no];
	struct disk_run *run = &s->runs[disk_no];
	struct proto_disk_grow m = { .disk_no = disk_no, .epoch = run->next_epoch };
	struct proto_disk_grown ans;
	struct proto_hdr h;
	uint64_t now, old = src->size;
	char b1[32], b2[32];
	int n, r;

	if (run->stopped)
		return 1;
	r = src_size_now(src, &now);
	if (r < 0) {
		/* The read says more, and the fault path handles it. */
		log_warn_errno(r, "%s: cannot size the source", src->id);
		return 0;
	}
	if (now == old && run->grow_held) {
		/* Back to the size the receiver holds (the growth was undone): go on. */
		run->grow_held = false;
		run->fault = 0;
		run->retry_s = 0;
	}
	if (now == old)
		return 0;
	if (now < old)
		return shrunk(s, c, disk_no, now);
	m.size = now;
	n = proto_encode_disk_grow(s->ctrl, CTRL_BUF, &m);
	r = n < 0 ? n : conn_send(c, s->ctrl, (size_t)n);
	if (r < 0)
		return log_errno(r, "connection to receiver lost");
	/* The receiver may zero a device's new range first: wait as for an ack. */
	conn_set_recv_timeout(c, s->o->ack_timeout_ms);
	r = link_recv(s, c, PROTO_DISK_GROWN, s->ctrl, CTRL_BUF, &h);
	if (r < 0)
		return r;
	r = proto_decode_disk_grown(s->ctrl, h.len, &ans);
	if (r < 0 || ans.disk_no != disk_no || (ans.code == 0 && ans.size != now))
		return log_errno(r < 0 ? r : -EPROTO, "receiver sent a malformed DISK_GROWN");
	if (ans.code != 0)
		return held(s, c, disk_no, now, &ans);
	r = follow(s, disk_no, now, fps);
	if (r < 0) {
		/* The receiver holds the new size and this agent cannot: a new agent starts
		 * from the receiver's record at the new size (reading the target to
		 * reconcile). Until then nothing of this disk may be read at either size. */
		run->stopped = true;
		run->fault = r;
		run->retry_at = UINT64_MAX;
		snprintf(run->fault_why, sizeof(run->fault_why), "the source grew to %" PRIu64
			 " bytes and the agent cannot follow (%s): restart the agent", now,
			 strerror(-r));
		log_error("%s: %s", src->id, run->fault_why);
		r = epoch_send_fault(s, c, disk_no, true);
		return r < 0 ? r : 1;
	}
	if (run->grow_held)
		log_info("%s: the receiver's target holds the new size now; replication resumes",
			 src->id);
	run->grow_held = false;
	run->fault = 0;
	run->retry_s = 0;
	log_info("%s: the source grew from %s to %s; the receiver's target followed, and epoch %"
		 PRIu64 " copies the new range", src->id, fmt_bytes(old, b1, sizeof(b1)),
		 fmt_bytes(now, b2, sizeof(b2)), run->next_epoch);
	return 0;
}

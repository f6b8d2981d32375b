// SPDX-License-Identifier: GPL-2.0-only
/* The cutover: the operator's hook, the freeze of the source's filesystems, a final epoch of
 * every disk, the thaw (in every path), and the receiver's verdict. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "agent/quiesce.h"
#include "agent/session-impl.h"
#include "agent/source.h"
#include "common/log.h"
#include "common/net.h"
#include "common/proto.h"
#include "common/util.h"

/* The final epoch of every disk, the source frozen. --verify full re-reads the whole
 * source too: a change the tracker never reported is sent, and counted, and fails the
 * cutover. Returns 0, or -errno having told the receiver why not. */
static int final_epochs(struct session *s, struct conn *c, uint8_t verify)
{
	int r = 0;

	for (unsigned i = 0; i < s->o->ndisks && r == 0; i++) {
		uint64_t missed = 0;

		/* A source that grew is followed first, so the proof covers its whole size. */
		r = grow_check(s, c, (uint16_t)i, &s->runs[i].fps);
		if (r == 0)
			r = epoch_run(s, c, (uint16_t)i, s->runs[i].fps,
				      verify == PROTO_VERIFY_FULL || s->runs[i].resync, &missed);
		/* A source that cannot be read, wholly or in part, has no final copy: the
		 * receiver hears why; the agent reconnects and goes on replicating. */
		if (r > 0 || (r == 0 && s->runs[i].nbad)) {
			conn_send_error(c, EIO, "%s: %s; not cutting over", s->srcs[i]->id,
					s->runs[i].fault_why);
			r = -EIO;
			break;
		}
		if (r == 0 && missed > 0) {
			r = -EIO;
			log_error("%s: verify full: %" PRIu64 " changed chunk(s) the tracker did not "
				  "report", s->srcs[i]->id, missed);
			conn_send_error(c, EIO, "verify full: %s had %" PRIu64 " changed chunk(s) the "
					"tracker did not report; not cutting over", s->srcs[i]->id, missed);
			s->refused = true;
		}
	}
	return r;
}

/* The receiver asked for the cutover: run the operator's hook, freeze the source's
 * filesystems, send a final epoch of every disk, thaw (in every path), report how long the
 * source was frozen, and wait for the receiver's verdict. */
int cutover_run(struct session *s, struct conn *c)
{
	const struct agent_opts *o = s->o;
	uint8_t *ctrl = s->ctrl;
	struct proto_cutover m, fin = { .phase = PROTO_CUT_FINAL };
	struct quiesce *qz = NULL;
	struct proto_hdr h;
	uint64_t t0, frozen_at;
	int n, r;

	if (s->cut_pending) {
		m = (struct proto_cutover){ .phase = PROTO_CUT_REQUEST, .verify = s->cut_verify };
		s->cut_pending = false;
	} else {
		r = link_recv(s, c, PROTO_CUTOVER, ctrl, CTRL_BUF, &h);
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
		s->refused = true;
		return -EIO;
	}
	r = qz_freeze(s->srcs, o->ndisks, o->freeze_limit_s, &qz);
	if (r < 0) {
		conn_send_error(c, -r, "the source could not be frozen; not cutting over");
		s->refused = true;
		return r;
	}
	frozen_at = now_ns();
	s->final_epoch = true;
	if (o->fault_stall_frozen_s) {
		log_warn("fault injection: staying frozen %u s", o->fault_stall_frozen_s);
		sleep(o->fault_stall_frozen_s);
	}
	for (unsigned i = 0; i < o->ndisks; i++)
		s->views[i].phase = PROTO_PHASE_CUTTING_OVER;
	r = final_epochs(s, c, m.verify);
	s->final_epoch = false;
	/* A watchdog thaw means the final epoch may have read a live source: not a cutover. */
	if (r == 0 && qz_watchdog_fired(qz)) {
		r = -ETIMEDOUT;
		conn_send_error(c, ETIMEDOUT, "the source was thawed by the watchdog after %u s, before "
				"the final epoch ended; not cutting over", o->freeze_limit_s);
		s->refused = true;
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
	r = link_recv(s, c, PROTO_CUTOVER, ctrl, CTRL_BUF, &h);
	if (r < 0)
		return r;
	r = proto_decode_cutover(ctrl, h.len, &m);
	if (r < 0 || m.phase != PROTO_CUT_DONE)
		return log_errno(r < 0 ? r : -EPROTO, "receiver sent a malformed CUTOVER");
	printf("cutover complete: every disk verified (%s); source frozen %.3f s, %.3f s in all\n",
	       m.verify == PROTO_VERIFY_FULL ? "full" : "tracked", (double)fin.frozen_ns / 1e9,
	       (double)(now_ns() - t0) / 1e9);
	fflush(stdout);
	s->cut_over = true;
	return 0;
}

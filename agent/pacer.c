// SPDX-License-Identifier: GPL-2.0-only
/* The pacer: what holds the stream back. The operator's pause, the bandwidth limit (the
 * tighter of --max-rate and the operator's), and the wait between epochs; each keeps
 * serving the receiver's frames and reporting while it waits. */
#include <errno.h>
#include <stdint.h>

#include "agent/session-impl.h"
#include "common/net.h"
#include "common/util.h"

/* A pacer idle for a while banks at most this much sending time. */
#define PACE_BURST_NS 50000000ull
/* How long a stop request waits for the epoch in flight before abandoning it: a usual
 * epoch ends within it, cleanly; a first copy of terabytes would hold a stop (a service
 * manager's, at shutdown) for hours. Abandoning costs nothing durable: the receiver keeps
 * a first copy's checkpoint and its fingerprints, the tracker its pending set. */
#define PACE_STOP_GRACE_NS (10 * 1000000000ull)

uint64_t pace_rate(const struct session *s)
{
	const struct agent_opts *o = s->o;

	if (!o->max_rate || !s->remote_rate)
		return o->max_rate ? o->max_rate : s->remote_rate;
	return MIN(o->max_rate, s->remote_rate);
}

/* Before len bytes go out: holds the stream while the operator has paused it and paces
 * it to the bandwidth limit, meanwhile serving the receiver's frames and reporting.
 * Returns 0, or -errno: the link failed, the receiver refused, or a stop was requested
 * while paused, paced, or longer than PACE_STOP_GRACE_NS ago (-EINTR: the epoch is
 * abandoned, nothing of it was acknowledged). */
int pace_gate(struct session *s, struct conn *c, size_t len)
{
	for (;;) {
		uint64_t rate = pace_rate(s), now = now_ns();
		int r;

		if (conn_readable(c)) {
			r = link_recv_async(s, c);
			if (r < 0)
				return r;
			continue;
		}
		r = epoch_report(s, c, false);
		if (r < 0)
			return r;
		/* The final epoch runs with the source frozen: neither a pause nor a bandwidth
		 * limit may stretch that downtime (the forecast counts the limit, though). */
		if (s->final_epoch)
			return 0;
		if (ses_stopping() && !s->stop_seen_ns)
			s->stop_seen_ns = now;
		if (ses_stopping() && (s->paused || (rate && s->pace_next > now) ||
				       now - s->stop_seen_ns >= PACE_STOP_GRACE_NS))
			return -EINTR;
		if (s->paused) {
			link_wait(c, 100);
			continue;
		}
		if (!rate || !len)
			return 0;
		/* A pacer idle for a while does not bank more than a short burst, and never
		 * owes more than this frame at the current rate. */
		if (s->pace_next + PACE_BURST_NS < now)
			s->pace_next = now - PACE_BURST_NS;
		if (s->pace_next <= now) {
			s->pace_next += (uint64_t)((double)len * 1e9 / (double)rate);
			return 0;
		}
		link_wait(c, (int)MIN((s->pace_next - now) / 1000000 + 1, 100u));
	}
}

/* Sleeps up to ms, returning early when a stop was requested. With a connection it
 * reports, serves the receiver's frames, returns 1 at once for a cutover request, and
 * while the operator has paused replication waits past ms until resumed. */
int pace_sleep(struct session *s, uint64_t ms, struct conn *c)
{
	uint64_t end = now_ns() + ms * 1000000ull;

	while (!ses_stopping()) {
		if (c && conn_readable(c)) {
			int r = link_recv_async(s, c);

			if (r < 0)
				return r;
			if (s->cut_pending)
				return 1;
			continue;
		}
		if (c && epoch_report(s, c, false) < 0)
			return -ECONNRESET;
		if (now_ns() >= end && !(c && s->paused))
			return 0;
		link_wait(c, 100);
	}
	return 0;
}

/* SPDX-License-Identifier: GPL-2.0-only */
/* The receiver's TCP listener, shared by the replication and the enrolment ports: accepts,
 * admits a connection only within the limits (handshakes in progress in all and per source
 * address, descriptors kept free below RLIMIT_NOFILE), serves each on a thread of its own,
 * and cuts any connection that is still unauthenticated at its absolute deadline, so slow
 * or silent strangers cannot hold the port. Refusals and cuts are logged as one summary
 * line per interval with counts, not one line per event. */
#pragma once
#include <stdbool.h>

struct lsn;
struct lsn_conn;

struct lsn_limits {
	unsigned handshake_ms;   /* from accept until lsn_established, on the monotonic clock */
	unsigned max_handshakes; /* connections not yet established, from all addresses */
	unsigned max_per_addr;   /* of those, from one source address */
	unsigned max_sessions;   /* established connections at once */
	unsigned fd_reserve;     /* descriptors left free below RLIMIT_NOFILE for sessions,
				  * their targets and the API */
};

/* Serves one admitted connection on its own thread; owns fd (closes it). peer is
 * "HOST:PORT". lc stays valid until it returns. */
typedef void lsn_serve_fn(void *ctx, struct lsn_conn *lc, int fd, const char *peer);

/* Starts accepting on lfd (a listening socket, made non-blocking; still the caller's to
 * close after lsn_stop) on a thread of its own. what names the port in log lines
 * ("replication", "enrolment"). 0 or -errno (logged). */
int lsn_start(const char *what, int lfd, const struct lsn_limits *lim, lsn_serve_fn *serve,
	      void *ctx, struct lsn **ret_l);

/* The connection authenticated (and, for replication, said HELLO): it leaves the handshake
 * limits and counts as a session. deadline_ms > 0 gives it a new absolute deadline from now
 * (enrolment bounds its whole exchange); 0 lifts it. Returns 0, -EBUSY when max_sessions are
 * already established (the caller tells the peer), or -ETIMEDOUT when the deadline has
 * already cut the connection. */
int lsn_established(struct lsn_conn *lc, unsigned deadline_ms);
/* The three calls above and below accept lc NULL: a session served outside a listener
 * (tests/fuzz/fuzz-session.c) has no limits to leave. */
/* Whether the connection was cut at its deadline (its failure is already counted). */
bool lsn_was_cut(struct lsn_conn *lc);
/* A warning about one unauthenticated connection: logged while the interval's budget
 * lasts, counted in the next summary after that. */
void lsn_warn(struct lsn_conn *lc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Stops accepting, cuts every connection still under a deadline and waits for those.
 * Returns the number of established connections still running: when 0, l is freed;
 * otherwise it is left to them (the receiver then exits without waiting for them). */
unsigned lsn_stop(struct lsn *l);

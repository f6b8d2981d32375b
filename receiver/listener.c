// SPDX-License-Identifier: GPL-2.0-only
/* The shared TCP listener with admission limits and handshake deadlines; see listener.h. */
#include "receiver/listener.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/net.h"
#include "common/util.h"

#define WARN_INTERVAL_NS (10ull * 1000000000ull)
#define WARN_BURST 3            /* single warnings per interval before they are only counted */
#define ACCEPT_PAUSE_NS (100ull * 1000000ull) /* after accept ran out of descriptors */
#define ACCEPT_BATCH 32         /* accepts per wake, so deadlines are still checked */

struct lsn_conn {
	struct lsn *l;
	struct lsn_conn *next;
	struct sockaddr_storage addr;
	char peer[64];
	int fd;
	/* A duplicate of the socket, kept only while a deadline applies: shutdown() through it
	 * wakes the serving thread from any blocking read or write, and the socket cannot be
	 * closed and its number reused under us while we hold it. */
	int dupfd;
	uint64_t deadline; /* monotonic ns; 0: none */
	bool established;
	bool cut;
};

/* What happened since the last summary line. */
struct lsn_counts {
	unsigned per_addr, total, fds, accept_err, cut, suppressed;
	int accept_errno;
};

struct lsn {
	char what[32];
	struct lsn_limits lim;
	lsn_serve_fn *serve;
	void *ctx;
	int lfd, efd;
	pthread_t tid;
	pthread_mutex_t lock; /* guards everything below */
	pthread_cond_t idle;
	struct lsn_conn *conns;
	unsigned handshakes, sessions, live;
	struct lsn_counts n;
	uint64_t window_start; /* when the last summary was logged */
	unsigned warned;       /* single warnings logged in this window */
};

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	if (a->ss_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
			      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
	return true;
}

static bool counts_empty(const struct lsn_counts *n)
{
	return !n->per_addr && !n->total && !n->fds && !n->accept_err && !n->cut && !n->suppressed;
}

/* Logs what was counted as one line once the interval since the last one has passed (at
 * once for the first event after a quiet interval). Called with l->lock held. */
static void summarise(struct lsn *l, uint64_t now, bool force)
{
	struct lsn_counts *n = &l->n;
	char line[512];
	size_t off = 0;

	if (now - l->window_start < WARN_INTERVAL_NS && !(force && !counts_empty(n)))
		return;
	if (counts_empty(n)) {
		l->window_start = now - WARN_INTERVAL_NS; /* so the next event is told at once */
		l->warned = 0;
		return;
	}
#define ADD(...) off += (size_t)snprintf(line + off, off < sizeof(line) ? sizeof(line) - off : 0, __VA_ARGS__)
	if (n->per_addr)
		ADD(", %u over the limit of %u handshakes per address", n->per_addr, l->lim.max_per_addr);
	if (n->total)
		ADD(", %u over the limit of %u handshakes in all", n->total, l->lim.max_handshakes);
	if (n->fds)
		ADD(", %u to keep %u descriptors free", n->fds, l->lim.fd_reserve);
	if (n->accept_err)
		ADD(", %u accept failures (%s)", n->accept_err, strerror(n->accept_errno));
	if (n->cut)
		ADD(", %u cut unauthenticated at the %u ms deadline", n->cut, l->lim.handshake_ms);
	if (n->suppressed)
		ADD(", %u more warnings not shown", n->suppressed);
#undef ADD
	log_warn("%s port: connections refused or cut in the last %llu s: %s", l->what,
		 (unsigned long long)((now - l->window_start) / 1000000000ull), line + 2);
	memset(n, 0, sizeof(*n));
	l->window_start = now;
	l->warned = 0;
}

void lsn_warn(struct lsn_conn *lc, const char *fmt, ...)
{
	struct lsn *l = lc ? lc->l : NULL;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!l) {
		log_warn("%s", msg);
		return;
	}
	pthread_mutex_lock(&l->lock);
	summarise(l, now_ns(), false);
	if (l->warned < WARN_BURST) {
		l->warned++;
		log_warn("%s", msg);
	} else {
		l->n.suppressed++;
	}
	pthread_mutex_unlock(&l->lock);
}

bool lsn_was_cut(struct lsn_conn *lc)
{
	bool cut;

	if (!lc)
		return false;
	pthread_mutex_lock(&lc->l->lock);
	cut = lc->cut;
	pthread_mutex_unlock(&lc->l->lock);
	return cut;
}

int lsn_established(struct lsn_conn *lc, unsigned deadline_ms)
{
	struct lsn *l = lc ? lc->l : NULL;
	int r = 0;

	if (!l)
		return 0;

	pthread_mutex_lock(&l->lock);
	if (lc->cut) {
		r = -ETIMEDOUT;
	} else if (!lc->established && l->sessions >= l->lim.max_sessions) {
		r = -EBUSY;
	} else {
		if (!lc->established) {
			lc->established = true;
			l->handshakes--;
			l->sessions++;
		}
		if (deadline_ms) {
			lc->deadline = now_ns() + (uint64_t)deadline_ms * 1000000u;
		} else {
			lc->deadline = 0;
			close(lc->dupfd);
			lc->dupfd = -1;
		}
	}
	pthread_mutex_unlock(&l->lock);
	return r;
}

static void *conn_main(void *arg)
{
	struct lsn_conn *lc = arg, **pp;
	struct lsn *l = lc->l;

	l->serve(l->ctx, lc, lc->fd, lc->peer);
	pthread_mutex_lock(&l->lock);
	for (pp = &l->conns; *pp && *pp != lc; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = lc->next;
	if (lc->established)
		l->sessions--;
	else
		l->handshakes--;
	if (lc->dupfd >= 0)
		close(lc->dupfd);
	l->live--;
	pthread_cond_broadcast(&l->idle);
	pthread_mutex_unlock(&l->lock);
	free(lc);
	return NULL;
}

/* Shuts down connections past their deadline (every one still under a deadline when all),
 * which ends their thread's blocking I/O. Returns the nearest deadline still ahead (0:
 * none). Called with l->lock held. */
static uint64_t cut_expired(struct lsn *l, uint64_t now, bool all)
{
	uint64_t next = 0;

	for (struct lsn_conn *c = l->conns; c; c = c->next) {
		if (c->dupfd < 0 || c->cut || !c->deadline)
			continue;
		if (all || now >= c->deadline) {
			shutdown(c->dupfd, SHUT_RDWR);
			c->cut = true;
			if (!all)
				l->n.cut++;
		} else if (!next || c->deadline < next) {
			next = c->deadline;
		}
	}
	return next;
}

/* Whether fd may be admitted; counts the refusal when not. Called with l->lock held. */
static bool admit(struct lsn *l, int fd, const struct sockaddr_storage *ss)
{
	struct rlimit rl;
	unsigned same = 0;

	/* The kernel hands out the lowest free descriptor, so fd's number is a lower bound on
	 * how many are open; the duplicate needs one more. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    (rlim_t)fd + 2 + l->lim.fd_reserve > rl.rlim_cur) {
		l->n.fds++;
		return false;
	}
	if (l->handshakes >= l->lim.max_handshakes) {
		l->n.total++;
		return false;
	}
	for (struct lsn_conn *c = l->conns; c; c = c->next)
		if (!c->established && same_addr(&c->addr, ss))
			same++;
	if (same >= l->lim.max_per_addr) {
		l->n.per_addr++;
		return false;
	}
	return true;
}

/* Accepts one connection. Returns false when there is none left to accept now. */
static bool accept_one(struct lsn *l, uint64_t *pause_until)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct lsn_conn *lc = NULL;
	pthread_attr_t attr;
	pthread_t tid;
	int fd, dupfd = -1, r;
	bool ok;

	fd = accept4(l->lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return false;
		if (errno == EINTR || errno == ECONNABORTED)
			return true;
		r = errno;
		pthread_mutex_lock(&l->lock);
		l->n.accept_err++;
		l->n.accept_errno = r;
		summarise(l, now_ns(), false);
		pthread_mutex_unlock(&l->lock);
		/* Out of descriptors or memory: the connection stays queued; retrying at once
		 * would spin. */
		*pause_until = now_ns() + ACCEPT_PAUSE_NS;
		return false;
	}
	pthread_mutex_lock(&l->lock);
	ok = admit(l, fd, &ss);
	if (ok) {
		dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		lc = dupfd >= 0 ? calloc(1, sizeof(*lc)) : NULL;
		if (!lc) {
			l->n.accept_err++;
			l->n.accept_errno = dupfd < 0 ? errno : ENOMEM;
			ok = false;
		}
	}
	if (!ok) {
		summarise(l, now_ns(), false);
		pthread_mutex_unlock(&l->lock);
		if (dupfd >= 0)
			close(dupfd);
		close(fd);
		return true;
	}
	lc->l = l;
	lc->addr = ss;
	lc->fd = fd;
	lc->dupfd = dupfd;
	lc->deadline = now_ns() + (uint64_t)l->lim.handshake_ms * 1000000u;
	net_addr_name(&ss, lc->peer, sizeof(lc->peer));
	lc->next = l->conns;
	l->conns = lc;
	l->handshakes++;
	l->live++;
	pthread_mutex_unlock(&l->lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = pthread_create(&tid, &attr, conn_main, lc);
	pthread_attr_destroy(&attr);
	if (r == 0)
		return true;
	pthread_mutex_lock(&l->lock);
	l->conns = lc->next; /* still first: only this thread adds */
	l->handshakes--;
	l->live--;
	l->n.accept_err++;
	l->n.accept_errno = r;
	summarise(l, now_ns(), false);
	pthread_cond_broadcast(&l->idle);
	pthread_mutex_unlock(&l->lock);
	close(dupfd);
	close(fd);
	free(lc);
	return true;
}

static void *lsn_main(void *arg)
{
	struct lsn *l = arg;
	uint64_t pause_until = 0;

	for (;;) {
		struct pollfd pfd[2] = { { .fd = l->lfd, .events = POLLIN },
					 { .fd = l->efd, .events = POLLIN } };
		uint64_t now = now_ns(), next, wake;
		int timeout, n;

		pthread_mutex_lock(&l->lock);
		next = cut_expired(l, now, false);
		summarise(l, now, false);
		/* Wake for the nearest deadline, the pending summary and the end of a pause. */
		wake = now + 1000000000ull;
		if (next && next < wake)
			wake = next;
		if (!counts_empty(&l->n) && l->window_start + WARN_INTERVAL_NS < wake)
			wake = l->window_start + WARN_INTERVAL_NS;
		pthread_mutex_unlock(&l->lock);
		if (pause_until > now) {
			pfd[0].fd = -1;
			if (pause_until < wake)
				wake = pause_until;
		}
		timeout = wake > now ? (int)((wake - now + 999999) / 1000000) : 0;
		n = poll(pfd, 2, timeout);
		if (n < 0 && errno != EINTR) {
			log_errno(-errno, "%s port: poll", l->what);
			break;
		}
		if (n > 0 && pfd[1].revents)
			break;
		if (n > 0 && pfd[0].revents) {
			for (unsigned i = 0; i < ACCEPT_BATCH && accept_one(l, &pause_until); i++)
				;
		}
	}
	return NULL;
}

int lsn_start(const char *what, int lfd, const struct lsn_limits *lim, lsn_serve_fn *serve,
	      void *ctx, struct lsn **ret_l)
{
	struct lsn *l = calloc(1, sizeof(*l));
	int fl, r;

	if (!l)
		return log_errno(-ENOMEM, "%s listener", what);
	snprintf(l->what, sizeof(l->what), "%s", what);
	l->lim = *lim;
	l->serve = serve;
	l->ctx = ctx;
	l->lfd = lfd;
	l->window_start = now_ns() - WARN_INTERVAL_NS;
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->idle, NULL);
	/* Non-blocking, so a connection reset between poll and accept cannot block the thread
	 * that enforces the deadlines. */
	fl = fcntl(lfd, F_GETFL);
	if (fl < 0 || fcntl(lfd, F_SETFL, fl | O_NONBLOCK) < 0) {
		r = log_errno(-errno, "%s listener", what);
		goto fail;
	}
	{
		struct rlimit rl;

		/* Every connection would be refused: say why once, not only in the counts. */
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
		    rl.rlim_cur < (rlim_t)lim->fd_reserve + 32)
			log_warn("%s port: the open-file limit (%llu) leaves little or no room above "
				 "--fd-reserve %u; raise the limit (LimitNOFILE=) or lower the reserve",
				 what, (unsigned long long)rl.rlim_cur, lim->fd_reserve);
	}
	l->efd = eventfd(0, EFD_CLOEXEC);
	if (l->efd < 0) {
		r = log_errno(-errno, "eventfd");
		goto fail;
	}
	r = -pthread_create(&l->tid, NULL, lsn_main, l);
	if (r < 0) {
		log_errno(r, "start the %s listener", what);
		close(l->efd);
		goto fail;
	}
	*ret_l = l;
	return 0;
fail:
	pthread_cond_destroy(&l->idle);
	pthread_mutex_destroy(&l->lock);
	free(l);
	return r;
}

unsigned lsn_stop(struct lsn *l)
{
	uint64_t one = 1;
	unsigned left;

	if (!l)
		return 0;
	if (write(l->efd, &one, sizeof(one)) < 0)
		log_warn_errno(-errno, "stop the %s listener", l->what);
	pthread_join(l->tid, NULL);
	close(l->efd);
	pthread_mutex_lock(&l->lock);
	for (;;) {
		bool waiting = false;

		cut_expired(l, now_ns(), true);
		for (struct lsn_conn *c = l->conns; c && !waiting; c = c->next)
			waiting = c->dupfd >= 0;
		/* Every connection under a deadline was just shut down, so this wait is short. */
		if (!waiting)
			break;
		pthread_cond_wait(&l->idle, &l->lock);
	}
	/* What the last interval counted is not lost with the process. */
	summarise(l, now_ns(), true);
	left = l->live;
	pthread_mutex_unlock(&l->lock);
	if (left)
		return left;
	pthread_cond_destroy(&l->idle);
	pthread_mutex_destroy(&l->lock);
	free(l);
	return 0;
}

// SPDX-License-Identifier: GPL-2.0-only
/* The operator's requests to a live receiver session, through the API: a cutover and its
 * proof, a test launch at an epoch boundary, the wishes' wake-up, a disconnect. */
#include "receiver/session-impl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/fp.h"
#include "common/log.h"
#include "common/net.h"
#include "common/proto.h"
#include "common/util.h"
#include "receiver/launch.h"
#include "receiver/registry.h"

/* Hands a cutover's outcome back to the API thread that asked, if it still waits. */
/* Whether the cutover this session serves is still the one the API thread waits
 * for (not withdrawn at its timeout). Called with srv->lock held. */
static bool cut_is_current(const struct rsession *s)
{
	return s->cut && s->handle.req == s->cut && s->handle.req_gen == s->cut_gen;
}

/* Hands the outcome over if the request is still awaited; srv->lock held. */
static void finish_locked(struct rsession *s, int result, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void finish_locked(struct rsession *s, int result, const char *fmt, va_list ap)
{
	if (cut_is_current(s)) {
		vsnprintf(s->cut->proof, sizeof(s->cut->proof), fmt, ap);
		s->cut->result = result;
		s->cut->done = true;
		s->handle.req = NULL;
		pthread_cond_broadcast(&s->srv->cut_cv);
	}
	s->cut = NULL;
}

void finish_cutover(struct rsession *s, int result, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&s->srv->lock);
	va_start(ap, fmt);
	finish_locked(s, result, fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&s->srv->lock);
	reg_cutting_over(s->srv->reg, s->ra, false);
}

int register_handle(struct rsession *s)
{
	s->handle.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->handle.efd < 0)
		return -errno;
	snprintf(s->handle.agent, sizeof(s->handle.agent), "%s", s->agent);
	pthread_mutex_lock(&s->srv->lock);
	s->handle.next = s->srv->handles;
	s->srv->handles = &s->handle;
	/* A cutover asked for while the agent was away waits for it on cut_cv. */
	pthread_cond_broadcast(&s->srv->cut_cv);
	pthread_mutex_unlock(&s->srv->lock);
	s->registered = true;
	return 0;
}

static void abort_locked(struct rsession *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void abort_locked(struct rsession *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	finish_locked(s, -ECONNABORTED, fmt, ap);
	va_end(ap);
}

void unregister_handle(struct rsession *s)
{
	if (!s->registered)
		return;
	/* A request handed over at any moment up to the unlink is answered here, under the
	 * same lock: once unlinked, the asking thread could no longer withdraw it. */
	pthread_mutex_lock(&s->srv->lock);
	if (!s->cut && s->handle.req) {
		s->cut = s->handle.req;
		s->cut_gen = s->handle.req_gen;
	}
	if (s->cut)
		abort_locked(s, "the agent's session ended before the cutover completed%s%s",
			     s->err ? ": " : "", s->err ? s->why : "");
	if (s->handle.launch) {
		launch_abort(s->srv->launches, s->handle.launch, "the agent's session ended "
			     "before an epoch boundary; try again once it is back");
		s->handle.launch = NULL;
		__atomic_store_n(&s->handle.launch_pending, false, __ATOMIC_RELEASE);
	}
	for (struct rcv_handle **p = &s->srv->handles; *p; p = &(*p)->next) {
		if (*p == &s->handle) {
			*p = s->handle.next;
			break;
		}
	}
	pthread_mutex_unlock(&s->srv->lock);
	reg_cutting_over(s->srv->reg, s->ra, false);
	close(s->handle.efd);
	s->registered = false;
}

/* Whether every disk's target holds a verified epoch and nothing of the next: the
 * epoch boundary a test launch clones at. The next epoch's first write comes only after
 * its first frame is read (mark_epoch), and the last one was made durable (wr_flush)
 * before it was acknowledged. */
static bool between_epochs(const struct rsession *s)
{
	if (s->ndisks == 0 || s->cut)
		return false;
	for (unsigned i = 0; i < s->ndisks; i++) {
		const struct rdisk *d = &s->disks[i];

		if (!d->t || !d->last_match || d->marked || d->have_count > 0)
			return false;
	}
	return true;
}

/* Serves a test launch waiting for an epoch boundary, when the session is at one: the
 * targets are cloned here, in the session thread, so no write lands during the clone;
 * a reflink is instant, a copy holds replication for its length (said up front). */
static void serve_launch(struct rsession *s)
{
	struct launch_disk ld[RCV_MAX_DISKS];
	struct launch *l;

	if (!__atomic_load_n(&s->handle.launch_pending, __ATOMIC_ACQUIRE) || !between_epochs(s))
		return;
	pthread_mutex_lock(&s->srv->lock);
	l = s->handle.launch;
	s->handle.launch = NULL;
	__atomic_store_n(&s->handle.launch_pending, false, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&s->srv->lock);
	if (!l)
		return;
	for (unsigned i = 0; i < s->ndisks; i++) {
		ld[i].id = s->disks[i].t->id;
		ld[i].path = s->disks[i].t->path;
		ld[i].epoch = s->disks[i].epoch - 1;
		ld[i].root = s->disks[i].last_root;
	}
	log_info("agent %s: test launch at the epoch boundary after epoch %" PRIu64, s->agent,
		 s->disks[0].epoch - 1);
	launch_take(s->srv->launches, l, ld, s->ndisks);
}

/* Waits for the agent's next frame or a cutover request, whichever comes first. Returns
 * 1 when a frame can be read, 0 after starting a cutover, -errno on failure. */
int wait_input(struct rsession *s)
{
	struct pollfd p[2] = { { .fd = conn_fd(s->c), .events = POLLIN },
			       { .fd = s->handle.efd, .events = POLLIN } };
	struct proto_cutover m = { .phase = PROTO_CUT_REQUEST };
	uint8_t out[64];
	uint64_t v;
	int n, r;

	/* Checked on every frame: a busy stream keeps the TLS buffer full, and a pause must
	 * not wait for a gap in it. */
	if (__atomic_exchange_n(&s->handle.ctl_pending, false, __ATOMIC_ACQ_REL)) {
		r = send_wishes(s, true);
		if (r < 0)
			return r;
	}
	serve_launch(s);
	for (uint64_t idle_t0 = now_ns();;) {
		uint64_t now = now_ns();

		if (__atomic_exchange_n(&s->handle.kick, false, __ATOMIC_ACQ_REL))
			return refuse(s, -ECONNRESET, "the operator disconnected agent %s (ternctl "
				      "disconnect); it may reconnect", s->agent);
		/* Also while a busy stream never lets the poll below wait. */
		if (now - s->revoke_checked_ns >= (uint64_t)REVOKE_CHECK_MS * 1000000u) {
			r = recheck_revoked(s);
			if (r < 0)
				return r;
		}
		if (conn_pending(s->c))
			return 1;
		if (now - idle_t0 >= (uint64_t)IDLE_TIMEOUT_MS * 1000000u)
			return -ETIMEDOUT;
		r = poll(p, 2, REVOKE_CHECK_MS);
		if (r < 0)
			return errno == EINTR ? 0 : -errno;
		if (r > 0)
			break;
	}
	if (!(p[1].revents & POLLIN))
		return 1;
	if (read(s->handle.efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return -errno;
	pthread_mutex_lock(&s->srv->lock);
	if (!s->cut && s->handle.req) {
		s->cut = s->handle.req;
		s->cut_gen = s->handle.req_gen;
		s->cut_verify = s->cut->verify;
	}
	pthread_mutex_unlock(&s->srv->lock);
	if (!s->cut)
		return 0;
	reg_cutting_over(s->srv->reg, s->ra, true);
	/* The agent lifts a pause for its final epoch; the operator's wish goes with it, or
	 * a later session (after a withdrawn cutover) would be paused again. */
	{
		bool connected;

		reg_set_paused(s->srv->reg, s->agent, false, &connected);
	}
	s->cut_t0 = now_ns();
	/* The final epoch must start after the request: an epoch already under way (some of
	 * its chunks arrived) does not count, as the source was not yet quiesced for it. */
	for (unsigned i = 0; i < s->ndisks; i++)
		s->disks[i].epoch_at_req = s->disks[i].epoch + (s->disks[i].have_count > 0 ? 1 : 0);
	m.verify = s->cut_verify;
	n = proto_encode_cutover(out, sizeof(out), &m);
	r = n < 0 ? n : conn_send(s->c, out, (size_t)n);
	if (r < 0)
		return r;
	log_info("agent %s: cutover requested (verify %s)", s->agent,
		 s->cut_verify == PROTO_VERIFY_FULL ? "full" : "tracked");
	return 0;
}

/* --verify full: reads every chunk of d's target back and checks that its root is the
 * final epoch's. 0 or refuse()'s -errno. */
static int verify_full(struct rsession *s, struct rdisk *d)
{
	struct disk_record full = { .present = true };
	bool reread;
	struct fp *saved = d->fps, root = d->last_root;
	uint64_t need = fps_map_len(d->nchunks), avail;
	char hex[33];
	int r;

	/* Read every chunk of the target back; the fingerprints kept so far are
	 * set aside, so the root below describes what is on the disk now. The
	 * second array counts against the budget while it lives. */
	if (fp_reserve(s->srv, need, &avail) < 0)
		return refuse(s, -ENOMEM, "disk %s: no fingerprint memory left for "
			      "--verify full (--fp-memory)", d->t->id);
	d->fps = fps_alloc(d->nchunks);
	if (!d->fps) {
		d->fps = saved;
		fp_release(s->srv, need);
		return refuse(s, -ENOMEM, "out of memory");
	}
	r = recover_fps(s, d, &full, &reread);
	if (r == 0)
		disk_root(s, d, d->fps, &root);
	fps_free(d->fps);
	fp_release(s->srv, need);
	d->fps = saved;
	if (r < 0)
		return refuse(s, r, "disk %s: cannot re-read the target: %s", d->t->id,
			      strerror(-r));
	if (!fp_equal(&root, &d->last_root))
		return refuse(s, -EIO, "disk %s: VERIFY FULL FAILED: the target reads back "
			      "as root %s", d->t->id, fp_hex(&root, hex));
	return 0;
}

/* The agent quiesced its source, sent a final epoch of every disk and thawed: check that
 * every disk's final epoch matched, re-read the targets for --verify full, record the
 * cutover, and answer with the proof. */
int on_cutover(struct rsession *s, const struct proto_hdr *h)
{
	struct proto_cutover m, done = { .phase = PROTO_CUT_DONE };
	char proof[4096], hex[33];
	size_t len = 0;
	uint8_t out[64];
	bool withdrawn;
	int n, r;

	r = proto_decode_cutover(s->buf, h->len, &m);
	if (r < 0)
		return refuse(s, r, "malformed CUTOVER frame");
	if (!s->cut || m.phase != PROTO_CUT_FINAL)
		return refuse(s, -EPROTO, "CUTOVER frame with no cutover asked for");
	pthread_mutex_lock(&s->srv->lock);
	withdrawn = !cut_is_current(s);
	pthread_mutex_unlock(&s->srv->lock);
	if (withdrawn) {
		/* Nobody waits for this proof: recording the cutover now would contradict the
		 * failure ternctl reported. The agent reconnects and replication goes on. */
		s->cut = NULL;
		return refuse(s, -ECANCELED, "the cutover request was withdrawn (its timeout "
			      "passed); nothing recorded, replication goes on");
	}
	done.verify = s->cut_verify;
	if (s->ndisks == 0)
		return refuse(s, -EPROTO, "cutover with no disk registered");
	for (unsigned i = 0; i < s->ndisks; i++) {
		struct rdisk *d = &s->disks[i];

		/* The final epoch must be verified, begun after the request, and the last one:
		 * chunks of a newer, unfinished epoch would be on the target unvouched for. */
		if (d->epoch <= d->epoch_at_req || !d->last_match || d->have_count > 0)
			return refuse(s, -EPROTO, "disk %s: no verified final epoch after the cutover "
				      "request", d->t->id);
		if (s->cut_verify == PROTO_VERIFY_FULL) {
			r = verify_full(s, d);
			if (r < 0)
				return r;
		}
		d->cut_over = true;
		reg_cut_over(s->srv->reg, d->rd);
		pthread_mutex_lock(&s->srv->lock);
		if (cut_is_current(s) && s->cut->ndisks < sizeof(s->cut->disks) / sizeof(s->cut->disks[0])) {
			struct rcv_cut_disk *cd = &s->cut->disks[s->cut->ndisks++];

			snprintf(cd->id, sizeof(cd->id), "%s", d->t->id);
			snprintf(cd->path, sizeof(cd->path), "%s", d->t->path);
			cd->root = d->last_root;
			cd->size = d->size;
			cd->chunk_size = s->cs;
		}
		pthread_mutex_unlock(&s->srv->lock);
		/* The record names the final epoch: the last one acknowledged. */
		r = save_disk_state(s, d, d->epoch - 1, &d->last_root);
		if (r < 0)
			return refuse(s, r, "disk %s: cannot record the cutover: %s", d->t->id,
				      strerror(-r));
		len += (size_t)snprintf(proof + len, sizeof(proof) - len,
					"disk %s: %" PRIu64 " bytes, %" PRIu64 " chunks, merkle root %s, "
					"final epoch %" PRIu64 ", verify %s: match\n", d->t->id, d->size,
					d->nchunks, fp_hex(&d->last_root, hex), d->epoch - 1,
					s->cut_verify == PROTO_VERIFY_FULL ? "full" : "tracked");
		if (len >= sizeof(proof))
			len = sizeof(proof) - 1;
	}
	snprintf(proof + len, sizeof(proof) - len,
		 "agent %s: source frozen %.3f s; %.3f s from the request to ready\n", s->agent,
		 (double)m.frozen_ns / 1e9, (double)(now_ns() - s->cut_t0) / 1e9);
	log_info("agent %s: cutover complete", s->agent);
	n = proto_encode_cutover(out, sizeof(out), &done);
	r = n < 0 ? n : conn_send(s->c, out, (size_t)n);
	finish_cutover(s, 0, "%s", proof);
	return r;
}

int rcv_cutover(struct rcv_server *srv, const char *agent, struct rcv_cutover *req,
		unsigned timeout_s)
{
	struct rcv_handle *hd;
	struct timespec deadline;
	uint64_t one = 1;
	bool waited = false;
	int target, r = 0;

	/* srv->cut_cv waits on the monotonic clock: a clock step must not move the deadline. */
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_s;
	req->done = false;
	req->result = 0;
	req->proof[0] = '\0';
	req->ndisks = 0;
	/* An agent the receiver has never heard of, or whose every disk is cut over, is not
	 * worth waiting for: refused at once. */
	target = reg_cutover_target(srv->reg, agent);
	pthread_mutex_lock(&srv->lock);
	for (;;) {
		/* Sessions are added at the head: the first match is the newest, the one a
		 * reconnected agent opened while a stale one may still linger. */
		for (hd = srv->handles; hd && strcmp(hd->agent, agent) != 0; hd = hd->next)
			;
		if (hd || target < 0 || srv->stopping)
			break;
		/* A link flap or an agent restart: wait, within the same deadline, for the
		 * agent's next session (register_handle signals cut_cv). */
		if (!waited)
			log_info("api: agent %s is not connected; waiting up to %u s for it to come "
				 "back", agent, timeout_s);
		waited = true;
		if (pthread_cond_timedwait(&srv->cut_cv, &srv->lock, &deadline) == ETIMEDOUT)
			break;
	}
	if (!hd) {
		if (target == -ENOENT)
			snprintf(req->proof, sizeof(req->proof), "agent %s is not connected (this "
				 "receiver has never seen it)", agent);
		else if (target < 0)
			snprintf(req->proof, sizeof(req->proof), "agent %s is not connected, and "
				 "every disk of it is cut over already", agent);
		else if (srv->stopping)
			snprintf(req->proof, sizeof(req->proof), "the receiver is shutting down");
		else
			snprintf(req->proof, sizeof(req->proof), "agent %s is not connected (waited "
				 "%u s for it to come back)", agent, timeout_s);
		r = target == 0 && !srv->stopping ? -ETIMEDOUT : -ENOENT;
	} else if (hd->req) {
		snprintf(req->proof, sizeof(req->proof), "a cutover of agent %s is already running",
			 agent);
		r = -EBUSY;
	} else {
		hd->req = req;
		hd->req_gen++;
		if (write(hd->efd, &one, sizeof(one)) < 0)
			r = -errno;
		while (r == 0 && !req->done && !srv->stopping) {
			if (pthread_cond_timedwait(&srv->cut_cv, &srv->lock, &deadline) == ETIMEDOUT)
				break;
		}
		if (req->done) {
			r = req->result;
		} else {
			/* Withdraw the request: whatever the session does next is not awaited. */
			for (hd = srv->handles; hd; hd = hd->next)
				if (hd->req == req)
					hd->req = NULL;
			if (srv->stopping)
				snprintf(req->proof, sizeof(req->proof), "the receiver is shutting down");
			else
				snprintf(req->proof, sizeof(req->proof), "no cutover within %u s", timeout_s);
			r = r ? r : -ETIMEDOUT;
		}
	}
	pthread_mutex_unlock(&srv->lock);
	return r;
}

int rcv_launch(struct rcv_server *srv, const char *agent, struct launch *l, char *why,
	       size_t why_len)
{
	struct rcv_handle *hd;
	uint64_t one = 1;
	int r = 0;

	pthread_mutex_lock(&srv->lock);
	/* The newest session first, as for a cutover. */
	for (hd = srv->handles; hd && strcmp(hd->agent, agent) != 0; hd = hd->next)
		;
	if (!hd) {
		snprintf(why, why_len, "agent %s has no live session on this receiver: a test "
			 "launch clones at an epoch boundary of a running replication", agent);
		r = -ENOENT;
	} else if (hd->launch) {
		snprintf(why, why_len, "a test launch of agent %s already waits for an epoch "
			 "boundary", agent);
		r = -EBUSY;
	} else {
		hd->launch = l;
		__atomic_store_n(&hd->launch_pending, true, __ATOMIC_RELEASE);
		/* An idle session (between epochs, waiting for the agent) wakes to serve it. */
		if (write(hd->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			log_warn_errno(-errno, "waking the session of agent %s", agent);
	}
	pthread_mutex_unlock(&srv->lock);
	return r;
}

bool rcv_launch_withdraw(struct rcv_server *srv, struct launch *l)
{
	bool found = false;

	pthread_mutex_lock(&srv->lock);
	for (struct rcv_handle *hd = srv->handles; hd; hd = hd->next) {
		if (hd->launch == l) {
			hd->launch = NULL;
			__atomic_store_n(&hd->launch_pending, false, __ATOMIC_RELEASE);
			found = true;
		}
	}
	pthread_mutex_unlock(&srv->lock);
	return found;
}

void rcv_poke(struct rcv_server *srv, const char *agent)
{
	uint64_t one = 1;

	pthread_mutex_lock(&srv->lock);
	for (struct rcv_handle *hd = srv->handles; hd; hd = hd->next) {
		if (strcmp(hd->agent, agent) != 0)
			continue;
		__atomic_store_n(&hd->ctl_pending, true, __ATOMIC_RELEASE);
		/* The eventfd wakes a session idle in poll; a full counter still wakes it. */
		if (write(hd->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			log_warn_errno(-errno, "waking the session of agent %s", agent);
	}
	pthread_mutex_unlock(&srv->lock);
}

int rcv_disconnect(struct rcv_server *srv, const char *agent)
{
	uint64_t one = 1;
	int n = 0;

	pthread_mutex_lock(&srv->lock);
	for (struct rcv_handle *hd = srv->handles; hd; hd = hd->next) {
		if (strcmp(hd->agent, agent) != 0)
			continue;
		__atomic_store_n(&hd->kick, true, __ATOMIC_RELEASE);
		if (write(hd->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			log_warn_errno(-errno, "waking the session of agent %s", agent);
		n++;
	}
	pthread_mutex_unlock(&srv->lock);
	return n > 0 ? n : -ENOENT;
}


// SPDX-License-Identifier: GPL-2.0-only
/* The enrolment service of `serve --enrol-listen`; see enrol.h. A certificate leaves the
 * receiver only after its token is marked used on disk, so a token enrols at most one agent
 * even across a crash. Tokens are in enrol-token.c, the lists and revocation in
 * enrol-revoke.c. */
#include "receiver/enrol.h"
#include "receiver/enrol-impl.h"
#include "receiver/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/enrol.h"
#include "common/log.h"
#include "common/net.h"
#include "common/tls.h"
#include "common/util.h"

#define MAX_CONNS 16            /* enrolments not yet past their request, from all addresses */
#define MAX_PER_ADDR 2          /* of those, from one address */
#define MAX_SERVING 8           /* requests being redeemed at once */
#define IO_TIMEOUT_MS 10000     /* per handshake, read or write */
#define SERVE_DEADLINE_MS 20000 /* from the request to the answer, however slow the peer */
#define REFUSE_LINGER_MS 1000

struct enrol_listener {
	char *state_dir;
	SSL_CTX *ctx;
	uint16_t repl_port;
	int lfd;
	struct lsn *lsn;
};

/* Serialises redeeming tokens within this process; the file lock covers other processes. */
static pthread_mutex_t g_redeem = PTHREAD_MUTEX_INITIALIZER;

struct outcome {
	int err;          /* 0, or -errno of the refusal */
	char why[ENROL_MSG_MAX + 1];
	char serial[TLS_SERIAL_HEX_MAX + 1];
	uint8_t *cert, *ca;
	size_t cert_len, ca_len;
};

static int refuse(struct outcome *o, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(struct outcome *o, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(o->why, sizeof(o->why), fmt, ap);
	va_end(ap);
	o->err = err;
	return err;
}

/* Checks a request against its token and, when it passes, issues the certificate: signed in
 * memory, then the token marked used durably, then the issue recorded, and only then is it
 * released to the caller. A malformed request is refused before the token is spent.
 * One function on purpose (about 120 lines): every check and the issue run under one lock,
 * in an order that is the security argument (the secret before anything about the token is
 * told, the token marked used before a certificate leaves); read top to bottom, it is. */
static int redeem(struct enrol_listener *l, const struct enrol_request *req, struct outcome *o)
{
	char path[PATH_MAX], text[RECORD_MAX], *data = NULL, when[64], idhex[2 * ENROL_ID_LEN + 1];
	char line[NAME_MAX_LEN + TLS_SERIAL_HEX_MAX + 80];
	uint8_t sha[32];
	struct token_rec rec;
	size_t len = 0;
	int64_t now;
	int lock = -1, n, r;

	enrol_hex(req->id, ENROL_ID_LEN, idhex);
	pthread_mutex_lock(&g_redeem);
	lock = enrol_lock_take(l->state_dir);
	if (lock < 0) {
		r = refuse(o, -EIO, "the receiver cannot lock its enrolment state");
		goto out;
	}
	r = enrol_token_path(path, l->state_dir, req->id);
	if (r == 0)
		r = read_file_all(path, RECORD_MAX, &data, &len);
	if (r == -ENOENT) {
		r = refuse(o, -EACCES, "unknown token (id %.8s...): it was never issued by this receiver",
			   idhex);
		goto out;
	}
	if (r < 0) {
		log_errno(r, "read %s", path);
		r = refuse(o, -EIO, "the receiver cannot read the token's record");
		goto out;
	}
	if (enrol_token_rec_parse(data, &rec) < 0) {
		log_error("%s: damaged token record", path);
		r = refuse(o, -EIO, "the token's record on the receiver is damaged");
		goto out;
	}
	/* The secret first: nothing about the token is told to someone who does not hold it. */
	if (EVP_Digest(req->secret, ENROL_SECRET_LEN, sha, NULL, EVP_sha256(), NULL) != 1 ||
	    CRYPTO_memcmp(sha, rec.secret_sha, sizeof(sha)) != 0) {
		r = refuse(o, -EACCES, "the token's secret does not match (a damaged or forged token)");
		goto out;
	}
	now = enrol_now_s();
	if (rec.used) {
		r = refuse(o, -EACCES, "the token was already used, by agent %s at %s", rec.used_by,
			   enrol_fmt_time(rec.used, when, sizeof(when)));
		goto out;
	}
	if (now >= rec.expires) {
		r = refuse(o, -EACCES, "the token expired at %s",
			   enrol_fmt_time(rec.expires, when, sizeof(when)));
		goto out;
	}
	if (rec.name[0] && strcmp(rec.name, req->name) != 0) {
		r = refuse(o, -EACCES, "the token is for agent %s, not %s", rec.name, req->name);
		goto out;
	}
	/* The shared bundle's name and the receiver's are never issued, whatever the token:
	 * a certificate under them would pass for the receiver's own credentials. */
	if (enrol_name_reserved(req->name)) {
		r = refuse(o, -EPERM, "agent name %s is reserved for the receiver's own credentials; "
			   "choose another --name", req->name);
		goto out;
	}
	/* An unbound token must not take over another agent's identity (and its targets);
	 * a token made for that name says the operator means it. */
	if (!rec.name[0]) {
		r = enrol_name_taken(l->state_dir, req->name, o->why, sizeof(o->why));
		if (r < 0) {
			r = refuse(o, -EIO, "the receiver cannot read its lists of agents and disks");
			goto out;
		}
		if (r > 0) {
			o->err = r = -EEXIST;
			goto out;
		}
	}
	r = enrol_wait_past_revocation(l->state_dir, req->name);
	if (r < 0) {
		r = refuse(o, -EIO, "the receiver cannot read its revocation list");
		goto out;
	}
	now = enrol_now_s(); /* the issue time recorded below must be past the revocation too */
	r = tls_csr_sign(l->state_dir, req->csr, req->csr_len, req->name, &o->cert, &o->cert_len,
			 &o->ca, &o->ca_len, o->serial, o->why, sizeof(o->why));
	if (r == -EBADMSG) {
		o->err = -EBADMSG;
		goto out;
	}
	if (r < 0) {
		r = refuse(o, -EIO, "the receiver could not sign the certificate");
		goto out;
	}
	rec.used = now;
	snprintf(rec.used_by, sizeof(rec.used_by), "%s", req->name);
	n = enrol_token_rec_format(&rec, text, sizeof(text));
	r = n < 0 ? n : write_file_atomic(path, text, (size_t)n, 0600);
	if (r < 0) {
		log_errno(r, "write %s", path);
		r = refuse(o, -EIO, "the receiver could not mark the token used");
		goto out;
	}
	r = enrol_path_in(path, l->state_dir, ENROL_ISSUED_FILE);
	if (r == 0) {
		snprintf(line, sizeof(line), "%s %s %" PRId64 " %s", req->name, o->serial, now, idhex);
		r = enrol_list_append(path, line);
		if (r < 0)
			log_errno(r, "write %s", path);
	}
	if (r < 0) {
		r = refuse(o, -EIO, "the receiver could not record the certificate");
		goto out;
	}
	r = 0;
out:
	if (r < 0) {
		free(o->cert);
		free(o->ca);
		o->cert = o->ca = NULL;
	}
	enrol_lock_drop(lock);
	pthread_mutex_unlock(&g_redeem);
	free(data);
	OPENSSL_cleanse(sha, sizeof(sha));
	return r;
}

static void send_refusal(struct conn *c, uint8_t *buf, const struct outcome *o)
{
	struct enrol_refused m = { .code = (uint32_t)(o->err < 0 ? -o->err : EPROTO) };
	int n;

	snprintf(m.msg, sizeof(m.msg), "%s", o->why);
	n = enrol_encode_refused(buf, ENROL_FRAME_MAX, &m);
	if (n > 0 && conn_send(c, buf, (size_t)n) == 0)
		conn_linger(c, REFUSE_LINGER_MS);
}

/* The listener's serving function: one enrolment, bounded by the listener's deadlines
 * (the handshake's until the request is in, then SERVE_DEADLINE_MS). */
static void serve_one(void *ctx, struct lsn_conn *lc, int fd, const char *peer)
{
	struct enrol_listener *l = ctx;
	struct outcome o = { 0 };
	struct enrol_request req = { 0 };
	struct conn *c = NULL;
	uint8_t *buf = NULL, type = 0;
	uint32_t len = 0;
	char why[256];
	int n, r;

	c = conn_handshake(l->ctx, fd, true, IO_TIMEOUT_MS, &r, why, sizeof(why));
	if (!c) {
		if (!lsn_was_cut(lc))
			lsn_warn(lc, "enrolment from %s: TLS handshake failed: %s", peer, why);
		return;
	}
	buf = malloc(ENROL_FRAME_MAX);
	if (!buf) {
		refuse(&o, -ENOMEM, "the receiver is out of memory");
		goto out;
	}
	r = enrol_recv(c, buf, &type, &len);
	if (r < 0) {
		if (!lsn_was_cut(lc))
			lsn_warn(lc, "enrolment from %s: no valid request: %s", peer, strerror(-r));
		if (r != -ECONNRESET && r != -ETIMEDOUT && !lsn_was_cut(lc))
			refuse(&o, r, "malformed enrolment request");
		goto out;
	}
	/* The request is in: it leaves the handshake limits, and the rest of the exchange
	 * gets a deadline of its own. */
	r = lsn_established(lc, SERVE_DEADLINE_MS);
	if (r == -EBUSY) {
		refuse(&o, -EBUSY, "the receiver is busy with other enrolments; try again shortly");
		goto out;
	}
	if (r < 0)
		goto out;
	if (type != ENROL_REQUEST) {
		refuse(&o, -EPROTO, "expected an enrolment request");
		goto out;
	}
	r = enrol_decode_request(buf, len, &req);
	if (r == -EINVAL) {
		refuse(&o, -EINVAL, "invalid agent name: 1-64 characters from [A-Za-z0-9._:-]");
		goto out;
	}
	if (r < 0) {
		refuse(&o, -EBADMSG, "malformed enrolment request");
		goto out;
	}
	if (redeem(l, &req, &o) < 0)
		goto out;
	{
		struct enrol_issued m = { .port = l->repl_port, .cert = o.cert, .cert_len = o.cert_len,
					  .ca = o.ca, .ca_len = o.ca_len };

		n = enrol_encode_issued(buf, ENROL_FRAME_MAX, &m);
		r = n < 0 ? n : conn_send(c, buf, (size_t)n);
	}
	if (r < 0)
		log_warn_errno(r, "enrolment from %s: agent %s was issued certificate %s but did not receive it",
			       peer, req.name, o.serial);
	else
		log_info("enrolled agent %s from %s (certificate serial %s)", req.name, peer, o.serial);
out:
	if (o.err) {
		log_warn("enrolment from %s refused: %s", peer, o.why);
		send_refusal(c, buf, &o);
	}
	OPENSSL_cleanse(&req, sizeof(req));
	free(o.cert);
	free(o.ca);
	free(buf);
	conn_free(c);
}

static uint16_t port_of(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

int enrol_listener_start(const char *state_dir, const char *hostport, int repl_fd,
			 const struct lsn_limits *lim, struct enrol_listener **ret_l)
{
	struct enrol_listener *l = calloc(1, sizeof(*l));
	/* The replication port's deadline and descriptor reserve; fewer slots, since a join
	 * is rare and short. */
	struct lsn_limits el = { .handshake_ms = lim->handshake_ms,
				 .max_handshakes = lim->max_handshakes < MAX_CONNS ? lim->max_handshakes : MAX_CONNS,
				 .max_per_addr = lim->max_per_addr < MAX_PER_ADDR ? lim->max_per_addr : MAX_PER_ADDR,
				 .max_sessions = MAX_SERVING, .fd_reserve = lim->fd_reserve };
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char name[64];
	int r;

	if (!l)
		return log_errno(-ENOMEM, "enrolment listener");
	l->lfd = -1;
	l->repl_port = port_of(repl_fd);
	l->state_dir = strdup(state_dir);
	if (!l->state_dir) {
		r = log_errno(-ENOMEM, "enrolment listener");
		goto fail;
	}
	l->ctx = tls_enrol_server_ctx(state_dir, &r);
	if (!l->ctx)
		goto fail;
	l->lfd = net_listen(hostport);
	if (l->lfd < 0) {
		r = log_errno(l->lfd, "cannot listen for enrolment on %s", hostport);
		goto fail;
	}
	if (getsockname(l->lfd, (struct sockaddr *)&ss, &sl) == 0) {
		net_addr_name(&ss, name, sizeof(name));
		log_info("enrolment listening on %s", name);
	}
	r = lsn_start("enrolment", l->lfd, &el, serve_one, l, &l->lsn);
	if (r < 0)
		goto fail;
	*ret_l = l;
	return 0;
fail:
	if (l->lfd >= 0)
		close(l->lfd);
	SSL_CTX_free(l->ctx);
	free(l->state_dir);
	free(l);
	return r;
}

struct enrol_listener *enrol_listener_stop(struct enrol_listener *l)
{
	if (!l)
		return NULL;
	/* Every enrolment runs under a deadline, so lsn_stop cuts and waits for all of
	 * them: none is left to use l. */
	lsn_stop(l->lsn);
	close(l->lfd);
	SSL_CTX_free(l->ctx);
	free(l->state_dir);
	free(l);
	return NULL;
}

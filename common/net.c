// SPDX-License-Identifier: GPL-2.0-only
/* TCP sockets and framed messages over TLS; see net.h. */
#include "common/net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "common/log.h"
#include "common/tls.h"
#include "common/util.h"

/* TLS 1.3 records carry at most 16 KiB: without buffering every record is a syscall at
 * each end (the reader even needs two, header then body). Records are gathered into
 * CONN_WBUF before a write, so a 1 MiB batch costs a few writes instead of ~130, and read
 * ahead by CONN_RBUF. The read side stays small: OpenSSL moves whatever is left in its
 * buffer to the front before each record, so a large one costs more copying than the
 * reads it saves. */
#define CONN_WBUF (256u << 10)
#define CONN_RBUF (64u << 10)

struct conn {
	SSL *ssl;
	BIO *wbio; /* the write buffer in front of the socket, owned by ssl */
	int fd;
	bool broken; /* after an I/O error no shutdown alert is attempted */
	char peer_cn[128];
	char why[160]; /* OpenSSL's reason for the last failure, for one-line errors */
};

int net_parse_hostport(const char *s, char **ret_host, char **ret_port)
{
	const char *colon, *hs, *he;
	char *host, *port;
	uint64_t p;

	if (!s || !*s)
		return -EINVAL;
	if (s[0] == '[') {
		he = strchr(s, ']');
		if (!he || he[1] != ':')
			return -EINVAL;
		hs = s + 1;
		colon = he + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || strchr(s, ':') != colon)
			return -EINVAL;
		hs = s;
		he = colon;
	}
	if (he == hs || parse_u64(colon + 1, 0, 65535, &p) < 0)
		return -EINVAL;
	host = strndup(hs, (size_t)(he - hs));
	port = strdup(colon + 1);
	if (!host || !port) {
		free(host);
		free(port);
		return -ENOMEM;
	}
	*ret_host = host;
	*ret_port = port;
	return 0;
}

static int resolve(const char *hostport, bool passive, struct addrinfo **ret_ai)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC };
	char *host = NULL, *port = NULL;
	int r;

	r = net_parse_hostport(hostport, &host, &port);
	if (r < 0)
		return r;
	if (passive)
		hints.ai_flags = AI_PASSIVE;
	hints.ai_flags |= AI_NUMERICSERV;
	r = getaddrinfo(host, port, &hints, ret_ai);
	free(host);
	free(port);
	if (r == EAI_SYSTEM)
		return -errno;
	if (r != 0)
		return -EHOSTUNREACH;
	return 0;
}

int net_listen(const char *hostport)
{
	struct addrinfo *ai = NULL;
	int fd = -1, r, one = 1;

	r = resolve(hostport, true, &ai);
	if (r < 0)
		return r;
	r = -EADDRNOTAVAIL;
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0) {
			r = -errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 64) == 0) {
			r = fd;
			break;
		}
		r = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return r;
}

void net_addr_name(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(buf, len, "[%s]:%u", host, port);
		return;
	}
	snprintf(buf, len, "%s:%u", host, port);
}

static void tune_socket(int fd)
{
	int one = 1, idle = 30, intvl = 10, cnt = 3;
	unsigned user_timeout_ms = 120 * 1000;

	/* Large frames are written whole; Nagle only delays the small control frames. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* A dead link (no reset, just silence) must surface in minutes, not the kernel's
	 * default two hours: keepalive probes while idle (waiting for an fdatasync, say),
	 * and a bound on how long sent data may stay unacknowledged. */
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof(user_timeout_ms));
}

void net_limit_unsent(int fd, unsigned bytes)
{
	/* Advisory: without it the kernel's buffer only holds more, which is slower to
	 * feel the link, never wrong. */
	setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &bytes, sizeof(bytes));
}

int net_connect(const char *hostport, int timeout_ms)
{
	struct addrinfo *ai = NULL;
	int fd = -1, r;

	r = resolve(hostport, false, &ai);
	if (r < 0)
		return r;
	r = -ECONNREFUSED;
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		struct pollfd pfd;
		int err = 0, fl;
		socklen_t elen = sizeof(err);

		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			    a->ai_protocol);
		if (fd < 0) {
			r = -errno;
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
			r = -errno;
			goto next;
		}
		pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
		err = poll(&pfd, 1, timeout_ms);
		if (err == 0) {
			r = -ETIMEDOUT;
			goto next;
		}
		if (err < 0) {
			r = -errno;
			goto next;
		}
		err = 0;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err != 0) {
			r = err ? -err : -errno;
			goto next;
		}
		fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
			r = -errno;
			goto next;
		}
		tune_socket(fd);
		r = fd;
		break;
next:
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return r;
}

static void set_timeout(int fd, int opt, int timeout_ms)
{
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
}

void conn_set_recv_timeout(struct conn *c, int timeout_ms)
{
	set_timeout(c->fd, SO_RCVTIMEO, timeout_ms);
}

void conn_set_send_timeout(struct conn *c, int timeout_ms)
{
	set_timeout(c->fd, SO_SNDTIMEO, timeout_ms);
}

/* Reads and discards until EOF or timeout_ms. */
static void drain(int fd, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
	uint8_t sink[16384];

	while (now_ns() < deadline) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int left = (int)((deadline - now_ns()) / 1000000u);

		if (poll(&pfd, 1, left > 0 ? left : 1) <= 0)
			break;
		if (read(fd, sink, sizeof(sink)) <= 0)
			break;
	}
}

/* A socket with SO_RCVTIMEO/SO_SNDTIMEO returns EINTR instead of restarting when the
 * thread is interrupted, and io_uring completion task_work interrupts threads of a process
 * that uses rings. OpenSSL reports that as WANT_READ/WANT_WRITE; the call is simply retried. */
static bool interrupted(struct conn *c)
{
	int saved = errno;
	int e = SSL_get_error(c->ssl, 0);

	errno = saved;
	return saved == EINTR && (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ||
				  e == SSL_ERROR_SYSCALL);
}

/* Reads go straight to the socket with read-ahead; writes go through a buffer that
 * conn_send flushes once per call (OpenSSL flushes it itself after handshake flights and
 * alerts). */
static int attach_bios(struct conn *c)
{
	BIO *sock = BIO_new_socket(c->fd, BIO_NOCLOSE), *buf = BIO_new(BIO_f_buffer());

	if (!sock || !buf || BIO_set_write_buffer_size(buf, CONN_WBUF) != 1 ||
	    !BIO_up_ref(sock)) {
		BIO_free(buf);
		BIO_free(sock);
		return -ENOMEM;
	}
	BIO_push(buf, sock);
	/* Each side takes one reference: the chain's and the read side's. */
	SSL_set_bio(c->ssl, sock, buf);
	c->wbio = buf;
	SSL_set_default_read_buffer_len(c->ssl, CONN_RBUF);
	SSL_set_read_ahead(c->ssl, 1);
	return 0;
}

struct conn *conn_handshake(SSL_CTX *ctx, int fd, bool server, int timeout_ms, int *ret_err,
			    char *why, size_t why_len)
{
	struct conn *c = calloc(1, sizeof(*c));
	X509 *peer = NULL;
	int r;

	if (why && why_len)
		why[0] = '\0';
	if (!c) {
		close(fd);
		*ret_err = -ENOMEM;
		return NULL;
	}
	c->fd = fd;
	if (server)
		tune_socket(fd);
	set_timeout(fd, SO_RCVTIMEO, timeout_ms);
	set_timeout(fd, SO_SNDTIMEO, timeout_ms);
	c->ssl = SSL_new(ctx);
	r = c->ssl ? attach_bios(c) : -ENOMEM;
	if (r < 0)
		goto fail;
	do {
		ERR_clear_error();
		errno = 0;
		r = server ? SSL_accept(c->ssl) : SSL_connect(c->ssl);
	} while (r != 1 && interrupted(c));
	if (r != 1) {
		long vr = SSL_get_verify_result(c->ssl);
		int saved = errno;
		/* The peer closed without an alert: a receiver at its limits or past its
		 * deadline drops strangers that way. That is a lost link, not a verdict. */
		bool eof = ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
		/* An empty queue (the socket simply closed) is no verdict either; the drained
		 * text then only says so. */
		bool queued = ERR_peek_error() != 0;
		const char *e = tls_drain_errors("TLS handshake");

		if (why && why_len) {
			if (vr != X509_V_OK)
				snprintf(why, why_len, "certificate verification failed: %s",
					 X509_verify_cert_error_string(vr));
			else
				snprintf(why, why_len, "%s", e && *e ? e : "connection closed during handshake");
		}
		c->broken = true;
		/* A verdict (a certificate refused, an alert, a protocol error: OpenSSL says
		 * which) is a refusal; a link that closed or stalled mid-handshake is not. */
		if (vr != X509_V_OK || (queued && !eof))
			r = -ECONNREFUSED;
		else if (eof)
			r = -ECONNRESET;
		else
			r = saved == EAGAIN || saved == EWOULDBLOCK || saved == ETIMEDOUT ? -ETIMEDOUT
											    : -ECONNRESET;
		/* The peer may already have written its first frame; closing with it unread
		 * would reset the connection and could destroy our alert before it is read. */
		if (server) {
			shutdown(fd, SHUT_WR);
			drain(fd, 1000);
		}
		goto fail;
	}
	peer = SSL_get1_peer_certificate(c->ssl);
	if (peer)
		X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, c->peer_cn,
					  sizeof(c->peer_cn));
	X509_free(peer);
	return c;
fail:
	*ret_err = r;
	conn_free(c);
	return NULL;
}

struct conn *conn_free(struct conn *c)
{
	if (!c)
		return NULL;
	if (c->ssl) {
		if (!c->broken && SSL_is_init_finished(c->ssl)) {
			set_timeout(c->fd, SO_SNDTIMEO, 1000);
			SSL_shutdown(c->ssl);
			(void)BIO_flush(c->wbio);
		}
		SSL_free(c->ssl);
	}
	if (c->fd >= 0)
		close(c->fd);
	ERR_clear_error();
	free(c);
	return NULL;
}

const char *conn_error_text(const struct conn *c)
{
	return c->why;
}

const char *conn_peer_cn(const struct conn *c)
{
	return c->peer_cn;
}

X509 *conn_peer_cert(const struct conn *c)
{
	return SSL_get0_peer_certificate(c->ssl);
}

int conn_fd(const struct conn *c)
{
	return c->fd;
}

/* Maps an SSL_read/SSL_write failure to -errno. */
static int ssl_err(struct conn *c, int ret)
{
	int saved = errno;
	int e = SSL_get_error(c->ssl, ret);

	log_debug("TLS I/O failed: SSL error %d, errno %d", e, saved);
	c->broken = true;
	switch (e) {
	case SSL_ERROR_ZERO_RETURN:
		c->broken = false;
		return -ECONNRESET;
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		/* Blocking sockets only report this when SO_RCVTIMEO/SO_SNDTIMEO expired. */
		return -ETIMEDOUT;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		if (saved == EAGAIN || saved == EWOULDBLOCK)
			return -ETIMEDOUT;
		return saved ? -saved : -ECONNRESET;
	default:
		/* A peer that vanished without close_notify (killed, link cut) is a lost
		 * connection, not a protocol fault. */
		if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
			ERR_clear_error();
			return -ECONNRESET;
		}
		snprintf(c->why, sizeof(c->why), "%s", tls_drain_errors("TLS I/O"));
		return -EPROTO;
	}
}

/* Pushes the gathered records to the socket. */
static int flush(struct conn *c)
{
	for (;;) {
		errno = 0;
		if (BIO_flush(c->wbio) > 0)
			return 0;
		if (errno == EINTR)
			continue;
		c->broken = true;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -ETIMEDOUT; /* SO_SNDTIMEO expired */
		return errno ? -errno : -ECONNRESET;
	}
}

int conn_send(struct conn *c, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		size_t n = 0;
		int ok;

		ERR_clear_error();
		errno = 0;
		ok = SSL_write_ex(c->ssl, p, len, &n);
		if (!ok) {
			if (interrupted(c))
				continue;
			return ssl_err(c, 0);
		}
		p += n;
		len -= n;
	}
	return flush(c);
}

static int recv_full(struct conn *c, uint8_t *buf, size_t len)
{
	while (len > 0) {
		size_t n = 0;

		ERR_clear_error();
		errno = 0;
		if (!SSL_read_ex(c->ssl, buf, len, &n)) {
			if (interrupted(c))
				continue;
			return ssl_err(c, 0);
		}
		buf += n;
		len -= n;
	}
	return 0;
}

int conn_recv_exact(struct conn *c, void *buf, size_t len)
{
	return recv_full(c, buf, len);
}

int conn_recv(struct conn *c, struct proto_hdr *ret_hdr, uint8_t *buf, size_t cap)
{
	uint8_t raw[PROTO_HDR_LEN];
	struct proto_hdr h;
	int r;

	r = recv_full(c, raw, sizeof(raw));
	if (r < 0)
		return r;
	r = proto_decode_hdr(raw, &h);
	if (r < 0)
		return r;
	if (h.len > cap)
		return -EMSGSIZE;
	r = recv_full(c, buf, h.len);
	if (r < 0)
		return r;
	*ret_hdr = h;
	return 0;
}

/* SSL_has_pending, not SSL_pending: with read-ahead, whole records may wait unprocessed
 * in OpenSSL's buffer while the socket itself is empty. */
bool conn_pending(struct conn *c)
{
	return SSL_has_pending(c->ssl) == 1;
}

bool conn_readable(struct conn *c)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

	if (conn_pending(c))
		return true;
	return poll(&pfd, 1, 0) > 0;
}

int conn_send_error(struct conn *c, int code, const char *fmt, ...)
{
	struct proto_error m = { .code = (uint32_t)(code < 0 ? -code : code) };
	uint8_t buf[PROTO_HDR_LEN + 8 + PROTO_MSG_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(m.msg, sizeof(m.msg), fmt, ap);
	va_end(ap);
	n = proto_encode_error(buf, sizeof(buf), &m);
	if (n < 0)
		return n;
	return conn_send(c, buf, (size_t)n);
}

void conn_linger(struct conn *c, int timeout_ms)
{
	/* A TLS close_notify tells the peer no more frames follow; the raw socket then
	 * drains whatever it still sends so our last frame is not lost to a reset. */
	if (!c->broken) {
		set_timeout(c->fd, SO_SNDTIMEO, 1000);
		SSL_shutdown(c->ssl);
	}
	shutdown(c->fd, SHUT_WR);
	c->broken = true;
	drain(c->fd, timeout_ms);
}

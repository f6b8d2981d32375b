/* SPDX-License-Identifier: GPL-2.0-only */
/* TCP sockets and framed messages over a TLS connection. One thread uses a conn at a
 * time (OpenSSL objects are not shared between threads). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>

#include "common/proto.h"

struct conn;

/* Splits "HOST:PORT" or "[V6]:PORT". Returns 0 or -EINVAL; ret_host/ret_port are heap copies. */
int net_parse_hostport(const char *s, char **ret_host, char **ret_port);
/* A listening TCP socket (SO_REUSEADDR, CLOEXEC). Returns the fd or -errno. */
int net_listen(const char *hostport);
/* Writes "HOST:PORT" ("[HOST]:PORT" for IPv6) of an address into buf, "?:0" for another
 * family. */
struct sockaddr_storage;
void net_addr_name(const struct sockaddr_storage *ss, char *buf, size_t len);
/* Connects within timeout_ms. Returns the fd or -errno. */
int net_connect(const char *hostport, int timeout_ms);
/* Keeps at most bytes of data the socket has not yet sent: a sender that writes more
 * waits for the link, not for its own socket buffer to fill. */
void net_limit_unsent(int fd, unsigned bytes);

/* Runs the TLS handshake on fd (taking ownership of it) as server or client. On failure
 * returns NULL, closes fd and sets *ret_err: -ECONNREFUSED for a verdict (a certificate
 * refused, an alert, a protocol error), -ECONNRESET or -ETIMEDOUT when the link closed or
 * stalled; the reason is logged at debug and copied to why (one line) when why is not NULL. */
struct conn *conn_handshake(SSL_CTX *ctx, int fd, bool server, int timeout_ms, int *ret_err,
			    char *why, size_t why_len);
/* Shuts TLS down politely (best effort) and frees; NULL-safe, returns NULL. */
struct conn *conn_free(struct conn *c);
/* The peer certificate's common name (empty when none). */
const char *conn_peer_cn(const struct conn *c);
/* The peer's certificate, borrowed from the connection (NULL when none). */
X509 *conn_peer_cert(const struct conn *c);
int conn_fd(const struct conn *c);
/* OpenSSL's reason for the last TLS failure (an alert from the peer, say), or "". */
const char *conn_error_text(const struct conn *c);
/* Sets the timeout for a blocking receive; 0 waits forever. */
void conn_set_recv_timeout(struct conn *c, int timeout_ms);
/* Sets the timeout for a blocking send; 0 waits forever. */
void conn_set_send_timeout(struct conn *c, int timeout_ms);

/* Sends len bytes (one or more whole frames). 0 or -errno. */
int conn_send(struct conn *c, const void *buf, size_t len);
/* Receives exactly len bytes, for a protocol with framing of its own (enrolment). 0,
 * -ECONNRESET on close, -ETIMEDOUT, or another -errno. */
int conn_recv_exact(struct conn *c, void *buf, size_t len);
/* Receives one frame: validates the header, then reads the payload into buf (cap bytes).
 * Returns 0 with *ret_hdr set, -ECONNRESET on orderly close, -EBADMSG/-EPROTONOSUPPORT/
 * -EMSGSIZE for a bad header, -ETIMEDOUT, or another -errno. */
int conn_recv(struct conn *c, struct proto_hdr *ret_hdr, uint8_t *buf, size_t cap);
/* True when TLS has already decrypted bytes buffered (a poll on the fd would miss them). */
bool conn_pending(struct conn *c);
/* True when a frame (or close) is waiting, without blocking. */
bool conn_readable(struct conn *c);
/* Sends an ERROR frame with code (-errno or errno) and a printf message; best effort. */
int conn_send_error(struct conn *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* After sending an ERROR: stop writing and drain what the peer still sends for up to
 * timeout_ms, so the kernel does not reset the connection and drop our ERROR unread. */
void conn_linger(struct conn *c, int timeout_ms);

// SPDX-License-Identifier: GPL-2.0-only
/* The receiver's operator API; see api.h. */
#include "receiver/api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/log.h"
#include "common/net.h"
#include "common/tls.h"
#include "common/util.h"
#include "receiver/launch.h"
#include "receiver/profile.h"

#define BODY_MAX API_BODY_MAX
#define PER_IP_LIMIT 8 /* connections from one address: one address cannot fill the API */
/* TLS off loopback: 1.3 only, as on the replication port. */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3"
#define CUT_REPORT_NS (10ull * 1000000000ull)

/* A connection's deadline for a complete request head: libmicrohttpd's own timeout only
 * counts idle time, which a client sending a byte now and then never reaches. Kept from
 * the connection's start (and again after each answer, for the next request on a kept
 * connection) until the headers are in; a request being served (a cutover waits minutes
 * for its proof) has none. */
struct api_sock {
	int fd;
	uint64_t deadline; /* monotonic ns; 0: none */
	bool cut;
	struct api_sock *next;
};

struct api {
	struct rcv_server *srv;
	struct registry *reg;
	struct MHD_Daemon *d;
	char token[API_TOKEN_HEX + 1];
	char addr_path[4096];
	char *tls_key, *tls_cert;
	uint64_t started_ns;
	unsigned header_ms;
	pthread_mutex_t lock; /* guards what follows */
	pthread_cond_t cv;    /* on the monotonic clock; wakes the watchdog to stop */
	pthread_t watchdog;
	bool watching, stopping;
	struct api_sock *socks;
	unsigned cuts;        /* since the last report */
	uint64_t last_report;
};

/* One request's upload, gathered across the handler's calls. */
struct req {
	char body[BODY_MAX + 1];
	size_t len;
	bool too_big;
};

static bool is_hex_token(const char *s, size_t len)
{
	if (len != API_TOKEN_HEX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

int api_token_ensure(const char *state_dir, char *token)
{
	char path[4096], *text = NULL;
	unsigned char rnd[API_TOKEN_HEX / 2];
	size_t len = 0;
	int r;

	snprintf(path, sizeof(path), "%s/%s", state_dir, API_TOKEN_FILE);
	r = read_file_all(path, 256, &text, &len);
	if (r == 0) {
		while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
			len--;
		if (!is_hex_token(text, len)) {
			free(text);
			return log_errno(-EINVAL, "%s is not an API token (%d hex digits); remove it to "
					 "have a new one made", path, API_TOKEN_HEX);
		}
		memcpy(token, text, API_TOKEN_HEX);
		token[API_TOKEN_HEX] = '\0';
		free(text);
		return 0;
	}
	if (r != -ENOENT)
		return log_errno(r, "cannot read %s", path);
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return log_errno(-EIO, "no randomness for the API token");
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(token + 2 * i, 3, "%02x", rnd[i]);
	{
		char line[API_TOKEN_HEX + 2];

		snprintf(line, sizeof(line), "%s\n", token);
		r = write_file_atomic(path, line, API_TOKEN_HEX + 1, 0600);
	}
	OPENSSL_cleanse(rnd, sizeof(rnd));
	if (r < 0)
		return log_errno(r, "cannot write %s", path);
	return 0;
}

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status, const char *type,
			      const char *body)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", type);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result answer_json(struct MHD_Connection *conn, unsigned status, json_object *o)
{
	const char *text = o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) : NULL;
	enum MHD_Result ret;

	if (!text)
		ret = answer(conn, 500, "application/json", "{\"error\":\"out of memory\"}\n");
	else
		ret = answer(conn, status, "application/json", text);
	json_object_put(o);
	return ret;
}

static enum MHD_Result fail(struct MHD_Connection *conn, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static enum MHD_Result fail(struct MHD_Connection *conn, unsigned status, const char *fmt, ...)
{
	json_object *o = json_object_new_object();
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (o && json_object_object_add(o, "error", json_object_new_string(msg)) < 0) {
		json_object_put(o);
		o = NULL;
	}
	return answer_json(conn, status, o);
}

static bool authorised(struct api *api, struct MHD_Connection *conn)
{
	const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
	static const char prefix[] = "Bearer ";

	if (!h || strncmp(h, prefix, sizeof(prefix) - 1) != 0)
		return false;
	h += sizeof(prefix) - 1;
	return strlen(h) == API_TOKEN_HEX && CRYPTO_memcmp(h, api->token, API_TOKEN_HEX) == 0;
}

static enum MHD_Result do_cutover(struct api *api, struct MHD_Connection *conn,
				  const struct api_call *call)
{
	const char *agent = call->agent;
	struct rcv_cutover *req;
	unsigned status;
	json_object *o;
	int r;

	req = calloc(1, sizeof(*req));
	if (!req)
		return fail(conn, 500, "out of memory");
	req->verify = call->verify;
	log_info("api: cutover of agent %s asked (verify %s, timeout %" PRIu64 " s)", agent,
		 call->verify == PROTO_VERIFY_FULL ? "full" : "tracked", call->timeout_s);
	r = rcv_cutover(api->srv, agent, req, (unsigned)call->timeout_s);
	if (r == 0) {
		json_object *ad = NULL;

		/* Proven first; only then is the target adapted (on a clone where it can be). */
		if (call->adapt && api->srv->launches) {
			char *text = NULL;
			int ar = launch_cutover_adapt(api->srv, agent, req, prof_find(call->profile),
						      call->boot_check, call->kvm, &text);

			ad = json_object_new_object();
			if (ad) {
				json_object_object_add(ad, "result", json_object_new_string(ar < 0 ? "failed" : "ok"));
				json_object_object_add(ad, "profile", json_object_new_string(call->profile));
				json_object_object_add(ad, "text", json_object_new_string(text ? text : ""));
			}
			free(text);
		}
		o = json_object_new_object();
		if (o) {
			json_object_object_add(o, "result", json_object_new_string("ok"));
			json_object_object_add(o, "agent", json_object_new_string(agent));
			json_object_object_add(o, "proof", json_object_new_string(req->proof));
			if (ad)
				json_object_object_add(o, "adaptation", ad);
		} else {
			json_object_put(ad);
		}
		free(req);
		return answer_json(conn, 200, o);
	}
	log_error("api: cutover of agent %s failed: %s", agent, req->proof);
	status = r == -ENOENT ? 404 : r == -EBUSY ? 409 : r == -ETIMEDOUT ? 504 : 502;
	{
		enum MHD_Result ret = fail(conn, status, "%s", req->proof);

		free(req);
		return ret;
	}
}

static enum MHD_Result do_wish(struct api *api, struct MHD_Connection *conn,
			       const struct api_call *call)
{
	const char *agent = call->agent;
	bool rate = call->op == API_OP_RATE, connected = false, paused = call->op == API_OP_PAUSE;
	uint64_t bps = call->bps;
	json_object *o;
	int r;

	r = rate ? reg_set_rate(api->reg, agent, bps, &connected) :
		   reg_set_paused(api->reg, agent, paused, &connected);
	if (r == -ENOENT)
		return fail(conn, 404, "agent %s is unknown to this receiver", agent);
	/* A connected agent hears of it at once; another when it next connects. */
	if (connected)
		rcv_poke(api->srv, agent);
	if (rate)
		log_info("api: bandwidth limit of agent %s set to %" PRIu64 " bytes/s%s", agent, bps,
			 bps ? "" : " (none)");
	else
		log_info("api: agent %s %s", agent, paused ? "paused" : "resumed");
	o = json_object_new_object();
	if (o) {
		json_object_object_add(o, "result", json_object_new_string("ok"));
		json_object_object_add(o, "agent", json_object_new_string(agent));
		if (rate)
			json_object_object_add(o, "rate_limit_bps", json_object_new_int64((int64_t)bps));
		else
			json_object_object_add(o, "paused", json_object_new_boolean(paused));
		json_object_object_add(o, "connected", json_object_new_boolean(connected));
	}
	return answer_json(conn, 200, o);
}

/* Closes the agent's live session; it reconnects unless it is revoked. */
static enum MHD_Result do_disconnect(struct api *api, struct MHD_Connection *conn,
				     const struct api_call *call)
{
	const char *agent = call->agent;
	json_object *o;
	int n;

	n = rcv_disconnect(api->srv, agent);
	if (n < 0)
		return fail(conn, 404, "agent %s has no live session on this receiver", agent);
	log_info("api: agent %s disconnected (%d session%s)", agent, n, n == 1 ? "" : "s");
	o = json_object_new_object();
	if (o) {
		json_object_object_add(o, "result", json_object_new_string("ok"));
		json_object_object_add(o, "agent", json_object_new_string(agent));
		json_object_object_add(o, "sessions", json_object_new_int(n));
	}
	return answer_json(conn, 200, o);
}

/* Asks for a test launch and answers once the targets are cloned at an epoch boundary;
 * adaptation and the boot check go on behind, seen in status. */
static enum MHD_Result do_launch(struct api *api, struct MHD_Connection *conn,
				 const struct api_call *call)
{
	struct launch_req rq = { .prof = prof_find(call->profile), .boot_check = call->boot_check,
				 .kvm = call->kvm, .wait_s = (unsigned)call->timeout_s,
				 .boot_timeout_s = (unsigned)call->boot_timeout_s };
	json_object *info = NULL, *o;
	char why[1024];
	int r;

	snprintf(rq.agent, sizeof(rq.agent), "%s", call->agent);
	if (!api->srv->launches)
		return fail(conn, 503, "test launches are not available on this receiver");
	log_info("api: test launch of agent %s asked (profile %s%s)", rq.agent, rq.prof->name,
		 rq.boot_check ? ", boot check" : "");
	r = launch_test(api->srv, &rq, &info, why, sizeof(why));
	if (r < 0) {
		log_error("api: test launch of agent %s: %s", rq.agent, why);
		return fail(conn, r == -ENOENT ? 404 : r == -EBUSY ? 409 : r == -ETIMEDOUT ? 504 : 500,
			    "%s", why);
	}
	o = json_object_new_object();
	if (o) {
		json_object_object_add(o, "result", json_object_new_string("ok"));
		json_object_object_add(o, "agent", json_object_new_string(rq.agent));
		json_object_object_add(o, "launch", info);
	} else {
		json_object_put(info);
	}
	return answer_json(conn, 200, o);
}

static enum MHD_Result do_launch_discard(struct api *api, struct MHD_Connection *conn,
					 const struct api_call *call)
{
	char why[1024];
	unsigned n = 0;
	json_object *o;
	int r;

	if (!api->srv->launches)
		return fail(conn, 503, "test launches are not available on this receiver");
	r = launch_discard(api->srv->launches, call->agent, &n, why, sizeof(why));
	if (r < 0)
		return fail(conn, r == -ENOENT ? 404 : r == -EBUSY ? 409 : 500, "%s", why);
	o = json_object_new_object();
	if (o) {
		json_object_object_add(o, "result", json_object_new_string("ok"));
		json_object_object_add(o, "agent", json_object_new_string(call->agent));
		json_object_object_add(o, "discarded", json_object_new_int((int)n));
	}
	return answer_json(conn, 200, o);
}

/* The registry's picture with the test launches added. */
static json_object *status_json(struct api *api, uint64_t up)
{
	json_object *snap = reg_snapshot(api->reg, up), *l;

	if (!snap || !api->srv->launches)
		return snap;
	l = launch_snapshot(api->srv->launches);
	if (!l || json_object_object_add(snap, "launches", l) < 0) {
		json_object_put(l);
		json_object_put(snap);
		return NULL;
	}
	return snap;
}

static enum MHD_Result route(struct api *api, struct MHD_Connection *conn, const char *url,
			     const char *method, const struct req *rq)
{
	uint64_t up = (now_ns() - api->started_ns) / 1000000000ull;
	struct api_call call;
	char why[256];
	unsigned status = api_parse(url, method, rq->body, rq->len, &call, why, sizeof(why));

	if (status)
		return fail(conn, status, "%s", why);
	switch (call.op) {
	case API_OP_STATUS:
		return answer_json(conn, 200, status_json(api, up));
	case API_OP_METRICS: {
		json_object *snap = reg_snapshot(api->reg, up);
		char *text = snap ? reg_metrics(snap) : NULL;
		enum MHD_Result ret;

		json_object_put(snap);
		if (!text)
			return fail(conn, 500, "out of memory");
		ret = answer(conn, 200, "text/plain; version=0.0.4; charset=utf-8", text);
		free(text);
		return ret;
	}
	case API_OP_CUTOVER:
		return do_cutover(api, conn, &call);
	case API_OP_DISCONNECT:
		return do_disconnect(api, conn, &call);
	case API_OP_LAUNCH:
		return do_launch(api, conn, &call);
	case API_OP_LAUNCH_DISCARD:
		return do_launch_discard(api, conn, &call);
	default:
		return do_wish(api, conn, &call);
	}
}

/* Sets the deadline of conn's request head: now + header_ms when arm, none otherwise. */
static void head_deadline(struct api *api, struct MHD_Connection *conn, bool arm)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct api_sock *s = ci ? ci->socket_context : NULL;

	if (!s)
		return;
	pthread_mutex_lock(&api->lock);
	s->deadline = arm ? now_ns() + (uint64_t)api->header_ms * 1000000u : 0;
	pthread_mutex_unlock(&api->lock);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct api *api = cls;
	struct req *rq = *con_cls;

	(void)version;
	if (!rq) {
		/* The head is in: the request is being served now, however long it takes. */
		head_deadline(api, conn, false);
		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		*con_cls = rq;
		return MHD_YES;
	}
	if (*upload_size) {
		/* Bodies are a few fields; more is refused, not buffered. */
		if (rq->len + *upload_size > BODY_MAX)
			rq->too_big = true;
		else
			memcpy(rq->body + rq->len, upload, *upload_size);
		if (!rq->too_big)
			rq->len += *upload_size;
		*upload_size = 0;
		return MHD_YES;
	}
	rq->body[rq->len] = '\0';
	if (!authorised(api, conn))
		return fail(conn, 401, "missing or wrong bearer token (see %s in the state dir)",
			    API_TOKEN_FILE);
	if (rq->too_big)
		return fail(conn, 413, "request body over %d bytes", BODY_MAX);
	return route(api, conn, url, method, rq);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)toe;
	free(*con_cls);
	*con_cls = NULL;
	/* A kept connection's next request must come whole in time too. */
	head_deadline(cls, conn, true);
}

/* Tracks each connection from its start, so its request head has a deadline. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	struct api *api = cls;
	struct api_sock *s = *socket_context, **pp;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);

		s = ci ? calloc(1, sizeof(*s)) : NULL;
		if (!s)
			return; /* out of memory: libmicrohttpd's idle timeout still applies */
		s->fd = ci->connect_fd;
		pthread_mutex_lock(&api->lock);
		s->deadline = now_ns() + (uint64_t)api->header_ms * 1000000u;
		s->next = api->socks;
		api->socks = s;
		pthread_mutex_unlock(&api->lock);
		*socket_context = s;
		return;
	}
	if (toe != MHD_CONNECTION_NOTIFY_CLOSED || !s)
		return;
	/* Called before libmicrohttpd closes the socket: once unlinked, the watchdog cannot
	 * shut down a descriptor number that has been reused. */
	pthread_mutex_lock(&api->lock);
	for (pp = &api->socks; *pp && *pp != s; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = s->next;
	pthread_mutex_unlock(&api->lock);
	free(s);
	*socket_context = NULL;
}

/* Shuts down connections whose request head is late, which ends them in their thread;
 * reports how many, one line per interval. */
static void *watchdog(void *arg)
{
	struct api *api = arg;

	pthread_mutex_lock(&api->lock);
	while (!api->stopping) {
		uint64_t now = now_ns();
		struct timespec ts;

		for (struct api_sock *s = api->socks; s; s = s->next) {
			if (s->deadline && !s->cut && now >= s->deadline) {
				shutdown(s->fd, SHUT_RDWR);
				s->cut = true;
				api->cuts++;
			}
		}
		if (api->cuts && now - api->last_report >= CUT_REPORT_NS) {
			log_warn("api: closed %u connection(s) whose request was not complete within "
				 "%u ms", api->cuts, api->header_ms);
			api->cuts = 0;
			api->last_report = now;
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += 200 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&api->cv, &api->lock, &ts);
	}
	pthread_mutex_unlock(&api->lock);
	return NULL;
}

/* libmicrohttpd's format strings come from the library, not from a peer. */
__attribute__((format(printf, 2, 0)))
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[256];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	log_debug("api: %s", msg);
}

/* Loopback addresses may be served in plain HTTP; anything else carries the token and the
 * operator's commands across a network, so only over TLS. */
static bool is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
	return false;
}

/* The receiver's key and certificate, for an API served over TLS on bound. 0, or -errno
 * (logged). */
static int load_tls(struct api *api, const struct rcv_server *srv, const char *bound)
{
	char path[4096];
	size_t len;
	int r;

	snprintf(path, sizeof(path), "%s/%s", srv->state_dir, TLS_RECEIVER_KEY);
	r = read_file_all(path, 1 << 16, &api->tls_key, &len);
	if (r == 0) {
		snprintf(path, sizeof(path), "%s/%s", srv->state_dir, TLS_RECEIVER_CERT);
		r = read_file_all(path, 1 << 16, &api->tls_cert, &len);
	}
	if (r < 0) {
		log_errno(r, "the API on %s needs TLS, and %s cannot be read", bound, path);
		return r;
	}
	if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
		r = log_errno(-EPROTONOSUPPORT, "the API on %s needs TLS, which this "
			      "libmicrohttpd lacks; serve it on a loopback address", bound);
		return r;
	}
	return 0;
}

int api_start(struct rcv_server *srv, struct registry *reg, const char *hostport,
	      unsigned header_ms, struct api **ret_api)
{
	struct api *api = calloc(1, sizeof(*api));
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char bound[INET6_ADDRSTRLEN + 16];
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
			 MHD_USE_ERROR_LOG;
	bool tls;
	int fd = -1, r;

	if (!api)
		return log_errno(-ENOMEM, "api");
	api->header_ms = header_ms;
	pthread_mutex_init(&api->lock, NULL);
	{
		pthread_condattr_t cattr;

		pthread_condattr_init(&cattr);
		pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
		pthread_cond_init(&api->cv, &cattr);
		pthread_condattr_destroy(&cattr);
	}
	api->srv = srv;
	api->reg = reg;
	api->started_ns = now_ns();
	r = api_token_ensure(srv->state_dir, api->token);
	if (r < 0)
		goto fail;
	fd = net_listen(hostport);
	if (fd < 0) {
		r = log_errno(fd, "cannot serve the API on %s", hostport);
		goto fail;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		r = log_errno(-errno, "getsockname");
		goto fail;
	}
	net_addr_name(&ss, bound, sizeof(bound));
	tls = !is_loopback(&ss);
	if (tls) {
		r = load_tls(api, srv, bound);
		if (r < 0)
			goto fail;
		flags |= MHD_USE_TLS;
	}
	api->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, api,
				  MHD_OPTION_LISTEN_SOCKET, fd,
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, api,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
				  MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)PER_IP_LIMIT,
				  MHD_OPTION_NOTIFY_CONNECTION, on_connection, api,
				  MHD_OPTION_EXTERNAL_LOGGER, mhd_log, api,
				  tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, api->tls_key,
				  MHD_OPTION_HTTPS_MEM_CERT, api->tls_cert,
				  MHD_OPTION_HTTPS_PRIORITIES, TLS_PRIORITIES,
				  MHD_OPTION_END);
	if (!api->d) {
		r = log_errno(-EIO, "cannot start the API server on %s", bound);
		goto fail;
	}
	fd = -1; /* the daemon's now */
	r = -pthread_create(&api->watchdog, NULL, watchdog, api);
	if (r < 0) {
		log_errno(r, "start the API's watchdog");
		goto fail;
	}
	api->watching = true;
	snprintf(api->addr_path, sizeof(api->addr_path), "%s/%s", srv->state_dir, API_ADDR_FILE);
	{
		char line[sizeof(bound) + 16];
		int n = snprintf(line, sizeof(line), "%s%s\n", tls ? "https://" : "", bound);

		r = write_file_atomic(api->addr_path, line, (size_t)n, 0600);
	}
	if (r < 0) {
		log_errno(r, "cannot write %s", api->addr_path);
		api->addr_path[0] = '\0';
		goto fail;
	}
	log_info("api: serving on %s://%s (bearer token in %s/%s)", tls ? "https" : "http", bound,
		 srv->state_dir, API_TOKEN_FILE);
	*ret_api = api;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	api_stop(api);
	return r;
}

struct api *api_stop(struct api *api)
{
	if (!api)
		return NULL;
	if (api->d)
		MHD_stop_daemon(api->d);
	/* After the daemon: its connections, and their notifications, are gone. */
	if (api->watching) {
		pthread_mutex_lock(&api->lock);
		api->stopping = true;
		pthread_cond_broadcast(&api->cv);
		pthread_mutex_unlock(&api->lock);
		pthread_join(api->watchdog, NULL);
	}
	pthread_cond_destroy(&api->cv);
	pthread_mutex_destroy(&api->lock);
	if (api->addr_path[0])
		unlink(api->addr_path);
	OPENSSL_cleanse(api->token, sizeof(api->token));
	if (api->tls_key)
		OPENSSL_cleanse(api->tls_key, strlen(api->tls_key));
	free(api->tls_key);
	free(api->tls_cert);
	free(api);
	return NULL;
}

// SPDX-License-Identifier: GPL-2.0-only
/* The receiver's operator API; see api.h. */
#include "receiver/api.h"

#include <arpa/inet.h>
#include <errno.h>
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

#define BODY_MAX 4096
#define CUTOVER_TIMEOUT_DEFAULT 600u

struct api {
	struct rcv_server *srv;
	struct registry *reg;
	struct MHD_Daemon *d;
	char token[API_TOKEN_HEX + 1];
	char addr_path[4096];
	char *tls_key, *tls_cert;
	uint64_t started_ns;
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

/* Parses body as one JSON object whose keys are all among allowed ("" body: an empty
 * object). NULL with why set when it is not. */
static json_object *parse_body(const struct req *rq, const char *const *allowed, char *why,
			       size_t why_len)
{
	struct json_tokener *tok;
	json_object *o;

	if (rq->len == 0)
		return json_object_new_object();
	tok = json_tokener_new();
	if (!tok) {
		snprintf(why, why_len, "out of memory");
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, rq->body, (int)rq->len);
	if (!o || json_tokener_get_error(tok) != json_tokener_success ||
	    (size_t)json_tokener_get_parse_end(tok) != rq->len) {
		snprintf(why, why_len, "the body is not valid JSON");
		json_object_put(o);
		json_tokener_free(tok);
		return NULL;
	}
	json_tokener_free(tok);
	if (!json_object_is_type(o, json_type_object)) {
		snprintf(why, why_len, "the body must be a JSON object");
		json_object_put(o);
		return NULL;
	}
	json_object_object_foreach(o, key, val) {
		bool ok = false;

		(void)val;
		for (const char *const *a = allowed; *a && !ok; a++)
			ok = strcmp(key, *a) == 0;
		if (!ok) {
			snprintf(why, why_len, "unknown field \"%.64s\"", key);
			json_object_put(o);
			return NULL;
		}
	}
	return o;
}

/* A non-negative integer field; absent leaves *v. Returns false when ill-typed. */
static bool get_u64(json_object *o, const char *key, uint64_t max, uint64_t *v)
{
	json_object *f;
	int64_t x;

	if (!json_object_object_get_ex(o, key, &f))
		return true;
	if (!json_object_is_type(f, json_type_int))
		return false;
	errno = 0;
	x = json_object_get_int64(f);
	if (errno || x < 0 || (uint64_t)x > max)
		return false;
	*v = (uint64_t)x;
	return true;
}

static enum MHD_Result do_cutover(struct api *api, struct MHD_Connection *conn, const char *agent,
				  const struct req *rq)
{
	static const char *const allowed[] = { "verify", "timeout_seconds", NULL };
	char why[160];
	json_object *body = parse_body(rq, allowed, why, sizeof(why)), *f, *o;
	struct rcv_cutover *req;
	uint64_t timeout = CUTOVER_TIMEOUT_DEFAULT;
	uint8_t verify = PROTO_VERIFY_TRACKED;
	unsigned status;
	int r;

	if (!body)
		return fail(conn, 400, "%s", why);
	if (json_object_object_get_ex(body, "verify", &f)) {
		const char *v = json_object_is_type(f, json_type_string) ? json_object_get_string(f) : "";

		if (strcmp(v, "full") == 0) {
			verify = PROTO_VERIFY_FULL;
		} else if (strcmp(v, "tracked") != 0) {
			json_object_put(body);
			return fail(conn, 400, "verify must be \"tracked\" or \"full\"");
		}
	}
	if (!get_u64(body, "timeout_seconds", 86400, &timeout) || timeout == 0) {
		json_object_put(body);
		return fail(conn, 400, "timeout_seconds must be an integer from 1 to 86400");
	}
	json_object_put(body);
	req = calloc(1, sizeof(*req));
	if (!req)
		return fail(conn, 500, "out of memory");
	req->verify = verify;
	log_info("api: cutover of agent %s asked (verify %s, timeout %" PRIu64 " s)", agent,
		 verify == PROTO_VERIFY_FULL ? "full" : "tracked", timeout);
	r = rcv_cutover(api->srv, agent, req, (unsigned)timeout);
	if (r == 0) {
		o = json_object_new_object();
		if (o) {
			json_object_object_add(o, "result", json_object_new_string("ok"));
			json_object_object_add(o, "agent", json_object_new_string(agent));
			json_object_object_add(o, "proof", json_object_new_string(req->proof));
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

static enum MHD_Result do_wish(struct api *api, struct MHD_Connection *conn, const char *agent,
			       const char *op, const struct req *rq)
{
	static const char *const none[] = { NULL };
	static const char *const rate_keys[] = { "bytes_per_second", NULL };
	bool rate = strcmp(op, "rate") == 0, connected = false, paused = strcmp(op, "pause") == 0;
	uint64_t bps = UINT64_MAX;
	char why[160];
	json_object *body = parse_body(rq, rate ? rate_keys : none, why, sizeof(why)), *o;
	int r;

	if (!body)
		return fail(conn, 400, "%s", why);
	/* Up to a petabyte a second: the agent reports its limit, and the receiver believes
	 * no rate above that. */
	if (rate && (!get_u64(body, "bytes_per_second", UINT64_C(1) << 50, &bps) ||
		     bps == UINT64_MAX)) {
		json_object_put(body);
		return fail(conn, 400, "bytes_per_second must be an integer from 0 (no limit) to "
			    "2^50");
	}
	json_object_put(body);
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
				     const char *agent, const struct req *rq)
{
	static const char *const none[] = { NULL };
	char why[160];
	json_object *body = parse_body(rq, none, why, sizeof(why)), *o;
	int n;

	if (!body)
		return fail(conn, 400, "%s", why);
	json_object_put(body);
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

static enum MHD_Result route(struct api *api, struct MHD_Connection *conn, const char *url,
			     const char *method, const struct req *rq)
{
	bool get = strcmp(method, "GET") == 0;
	uint64_t up = (now_ns() - api->started_ns) / 1000000000ull;

	if (strcmp(url, "/v1/status") == 0) {
		if (!get)
			return fail(conn, 405, "use GET for %s", url);
		return answer_json(conn, 200, reg_snapshot(api->reg, up));
	}
	if (strcmp(url, "/metrics") == 0) {
		json_object *snap;
		char *text;
		enum MHD_Result ret;

		if (!get)
			return fail(conn, 405, "use GET for %s", url);
		snap = reg_snapshot(api->reg, up);
		text = snap ? reg_metrics(snap) : NULL;
		json_object_put(snap);
		if (!text)
			return fail(conn, 500, "out of memory");
		ret = answer(conn, 200, "text/plain; version=0.0.4; charset=utf-8", text);
		free(text);
		return ret;
	}
	if (strncmp(url, "/v1/agents/", 11) == 0) {
		const char *name = url + 11, *slash = strchr(name, '/');
		char agent[NAME_MAX_LEN + 1];
		const char *op;

		if (!slash || !name_is_valid(name, (size_t)(slash - name)))
			return fail(conn, 404, "no such resource: %.100s", url);
		memcpy(agent, name, (size_t)(slash - name));
		agent[slash - name] = '\0';
		op = slash + 1;
		if (strcmp(op, "cutover") == 0 || strcmp(op, "pause") == 0 ||
		    strcmp(op, "resume") == 0 || strcmp(op, "disconnect") == 0) {
			if (strcmp(method, "POST") != 0)
				return fail(conn, 405, "use POST for %s", op);
			if (strcmp(op, "cutover") == 0)
				return do_cutover(api, conn, agent, rq);
			if (strcmp(op, "disconnect") == 0)
				return do_disconnect(api, conn, agent, rq);
			return do_wish(api, conn, agent, op, rq);
		}
		if (strcmp(op, "rate") == 0) {
			if (strcmp(method, "PUT") != 0)
				return fail(conn, 405, "use PUT for rate");
			return do_wish(api, conn, agent, op, rq);
		}
	}
	return fail(conn, 404, "no such resource: %.100s", url);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct api *api = cls;
	struct req *rq = *con_cls;

	(void)version;
	if (!rq) {
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
	(void)cls;
	(void)conn;
	(void)toe;
	free(*con_cls);
	*con_cls = NULL;
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

int api_start(struct rcv_server *srv, struct registry *reg, const char *hostport,
	      struct api **ret_api)
{
	struct api *api = calloc(1, sizeof(*api));
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char bound[INET6_ADDRSTRLEN + 16], path[4096];
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
			 MHD_USE_ERROR_LOG;
	bool tls;
	int fd = -1, r;

	if (!api)
		return log_errno(-ENOMEM, "api");
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
		size_t len;

		snprintf(path, sizeof(path), "%s/%s", srv->state_dir, TLS_RECEIVER_KEY);
		r = read_file_all(path, 1 << 16, &api->tls_key, &len);
		if (r == 0) {
			snprintf(path, sizeof(path), "%s/%s", srv->state_dir, TLS_RECEIVER_CERT);
			r = read_file_all(path, 1 << 16, &api->tls_cert, &len);
		}
		if (r < 0) {
			log_errno(r, "the API on %s needs TLS, and %s cannot be read", bound, path);
			goto fail;
		}
		if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
			r = log_errno(-EPROTONOSUPPORT, "the API on %s needs TLS, which this "
				      "libmicrohttpd lacks; serve it on a loopback address", bound);
			goto fail;
		}
		flags |= MHD_USE_TLS;
	}
	api->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, api,
				  MHD_OPTION_LISTEN_SOCKET, fd,
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, api,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
				  MHD_OPTION_EXTERNAL_LOGGER, mhd_log, api,
				  tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, api->tls_key,
				  MHD_OPTION_HTTPS_MEM_CERT, api->tls_cert,
				  MHD_OPTION_END);
	if (!api->d) {
		r = log_errno(-EIO, "cannot start the API server on %s", bound);
		goto fail;
	}
	fd = -1; /* the daemon's now */
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

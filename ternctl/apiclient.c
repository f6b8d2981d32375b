// SPDX-License-Identifier: GPL-2.0-only
/* ternctl's HTTP client of the receiver's control API; see apiclient.h. */
#include "ternctl/apiclient.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "common/tls.h"
#include "common/util.h"

/* Far above any status answer (a few hundred bytes per disk), far below harm. */
#define APIC_MAX_BODY (16u << 20)
#define APIC_MAX_TOKEN 512

struct apic {
	CURL *curl;
	char *url;
	char *shown; /* the address as the operator gave it, for messages (NULL: url) */
	char *auth; /* "Authorization: Bearer TOKEN" */
	char *cainfo; /* https: the receiver's CA, when the state dir has it */
	/* https with that CA: the certificate names the receiver ("tern-receiver"), not the
	 * address, so requests go to that name and connect_to says where it is. */
	struct curl_slist *connect_to;
	int abort_fd;
};

struct body {
	char *data;
	size_t len;
	bool too_big;
};

char *apic_sanitize(const char *s, bool keep_newlines, char *buf, size_t len)
{
	size_t i = 0;

	if (len == 0)
		return buf;
	for (; s && *s && i + 1 < len; s++) {
		unsigned char c = (unsigned char)*s;

		buf[i++] = (c >= 0x20 && c < 0x7f) || (keep_newlines && c == '\n') ? (char)c : '?';
	}
	buf[i] = '\0';
	return buf;
}

static void strip_trailing_space(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
}

/* RFC 6750's b64token: anything else could smuggle a second header into the request. */
static bool token_is_valid(const char *t)
{
	size_t n = strlen(t);

	if (n == 0 || n > APIC_MAX_TOKEN)
		return false;
	for (; *t; t++)
		if (!isalnum((unsigned char)*t) && !strchr("-._~+/=", *t))
			return false;
	return true;
}

/* host:port, [v6]:port or a name: no scheme, path, blanks or control characters. */
static bool addr_is_valid(const char *a)
{
	size_t n = strlen(a);

	if (n == 0 || n > 255)
		return false;
	for (; *a; a++)
		if (!isalnum((unsigned char)*a) && !strchr(".:-[]", *a))
			return false;
	return true;
}

static bool url_is_valid(const char *u)
{
	if (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0)
		return false;
	for (; *u; u++)
		if ((unsigned char)*u <= 0x20 || (unsigned char)*u >= 0x7f)
			return false;
	return true;
}

/* Whether a URL's host (as curl parsed it: IPv6 in brackets) is this machine's loopback:
 * 127.0.0.0/8, ::1 or the name localhost. Only there may the token travel in clear text. */
static bool host_is_loopback(const char *host)
{
	char v6[INET6_ADDRSTRLEN];
	struct in6_addr a6;
	struct in_addr a4;
	size_t n = strlen(host);

	if (strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (n > 2 && n - 2 < sizeof(v6) && host[0] == '[' && host[n - 1] == ']') {
		memcpy(v6, host + 1, n - 2);
		v6[n - 2] = '\0';
		return inet_pton(AF_INET6, v6, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
	}
	return false;
}

/* Refuses a plain-HTTP URL to anything but loopback, before anything is sent. */
static int check_clear_text(const char *url, char *ret_err, size_t err_len)
{
	CURLU *u;
	char *host = NULL;
	int r = 0;

	if (strncmp(url, "http://", 7) != 0)
		return 0;
	u = curl_url();
	if (!u)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		snprintf(ret_err, err_len, "%.200s: not a valid URL", url);
		r = -EINVAL;
	} else if (!host_is_loopback(host)) {
		snprintf(ret_err, err_len, "%.200s: refusing to send the API token in clear text to "
			 "%.100s; use https://, or http:// only to a loopback address (127.0.0.0/8, "
			 "::1, localhost)", url, host);
		r = -EPERM;
	}
	curl_free(host);
	curl_url_cleanup(u);
	return r;
}

/* Every socket with O_CLOEXEC, as everywhere in tern: curl does not promise it. */
static curl_socket_t open_socket(void *data, curlsocktype purpose, struct curl_sockaddr *a)
{
	(void)data;
	(void)purpose;
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct body *b = arg;
	size_t len = size * n;
	char *grown;

	if (len > APIC_MAX_BODY - b->len) {
		b->too_big = true;
		return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
	}
	grown = realloc(b->data, b->len + len + 1);
	if (!grown)
		return 0;
	memcpy(grown + b->len, p, len);
	b->data = grown;
	b->len += len;
	b->data[b->len] = '\0';
	return len;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct apic *a = arg;
	struct pollfd p = { .fd = a->abort_fd, .events = POLLIN };

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return a->abort_fd >= 0 && poll(&p, 1, 0) > 0 ? 1 : 0;
}

static int read_small(const char *path, const char *what, char **ret_text, char *err, size_t err_len)
{
	char *text = NULL;
	int r;

	r = read_file_all(path, 4096, &text, NULL);
	if (r < 0) {
		snprintf(err, err_len, "cannot read the %s %s: %s", what, path, strerror(-r));
		return r;
	}
	strip_trailing_space(text);
	*ret_text = text;
	return 0;
}

/* With the receiver's own CA, the name to verify is the one its certificate carries,
 * whatever address reaches it: requests name the host "tern-receiver" and curl connects
 * them to the real HOST:PORT. Only that CA is trusted, and curl requires the serverAuth
 * purpose, so no agent certificate can pass for the receiver. 0 or -ENOMEM/-EINVAL. */
static int pin_receiver_name(struct apic *a)
{
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL, *line = NULL, *url = NULL;
	int r = -EINVAL;

	if (!u)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, a->url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
	    curl_url_set(u, CURLUPART_HOST, TLS_RECEIVER_CN, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK)
		goto out;
	r = -ENOMEM;
	if (asprintf(&line, "%s:%s:%s:%s", TLS_RECEIVER_CN, port, host, port) < 0) {
		line = NULL;
		goto out;
	}
	a->connect_to = curl_slist_append(NULL, line);
	if (!a->connect_to)
		goto out;
	/* curl's URL API writes the root path back; requests add their own. */
	while (strlen(url) > 8 && url[strlen(url) - 1] == '/')
		url[strlen(url) - 1] = '\0';
	a->shown = a->url;
	a->url = strdup(url);
	r = a->url ? 0 : -ENOMEM;
out:
	free(line);
	curl_free(url);
	curl_free(port);
	curl_free(host);
	curl_url_cleanup(u);
	return r;
}

int apic_new(const char *state_dir, const char *url, const char *token_file,
	     struct apic **ret_api, char *ret_err, size_t err_len)
{
	char path[4096], *addr = NULL, *token = NULL;
	struct apic *a = NULL;
	bool https = false;
	int r;

	snprintf(ret_err, err_len, "out of memory");
	if (!url) {
		if (snprintf(path, sizeof(path), "%s/api.addr", state_dir) >= (int)sizeof(path)) {
			snprintf(ret_err, err_len, "state dir path too long: %s", state_dir);
			return -ENAMETOOLONG;
		}
		r = read_small(path, "API address file", &addr, ret_err, err_len);
		if (r == -ENOENT)
			snprintf(ret_err, err_len, "no receiver API is serving %s (no %s)", state_dir, path);
		if (r < 0)
			goto cleanup;
		/* serve writes "https://HOST:PORT" when it serves TLS (off loopback). */
		https = strncmp(addr, "https://", 8) == 0;
		if (!addr_is_valid(addr + (https ? 8 : 0))) {
			snprintf(ret_err, err_len, "%s does not hold a HOST:PORT line", path);
			r = -EINVAL;
			goto cleanup;
		}
	} else if (!url_is_valid(url)) {
		snprintf(ret_err, err_len, "--api %.200s: not an http:// or https:// URL", url);
		r = -EINVAL;
		goto cleanup;
	}
	if (!token_file) {
		if (snprintf(path, sizeof(path), "%s/api.token", state_dir) >= (int)sizeof(path)) {
			snprintf(ret_err, err_len, "state dir path too long: %s", state_dir);
			r = -ENAMETOOLONG;
			goto cleanup;
		}
		token_file = path;
	}
	/* One errno for every token problem: a missing token is not a missing receiver. */
	r = read_small(token_file, "API token file", &token, ret_err, err_len);
	if (r < 0) {
		r = -ENOKEY;
		goto cleanup;
	}
	if (!token_is_valid(token)) {
		snprintf(ret_err, err_len, "%s does not hold an API token", token_file);
		r = -ENOKEY;
		goto cleanup;
	}

	r = -ENOMEM;
	a = calloc(1, sizeof(*a));
	if (!a)
		goto cleanup;
	a->abort_fd = -1;
	if (url)
		a->url = strdup(url);
	else if (asprintf(&a->url, "%s%s", https ? "" : "http://", addr) < 0)
		a->url = NULL;
	if (!a->url || asprintf(&a->auth, "Authorization: Bearer %s", token) < 0) {
		a->auth = NULL;
		goto cleanup;
	}
	/* The receiver serves https with the certificate its own CA issued. */
	if (strncmp(a->url, "https://", 8) == 0 &&
	    snprintf(path, sizeof(path), "%s/ca.pem", state_dir) < (int)sizeof(path) &&
	    access(path, R_OK) == 0 && !(a->cainfo = strdup(path)))
		goto cleanup;
	/* Before the token is used in any request: ternctl sends it with every one. */
	r = check_clear_text(a->url, ret_err, err_len);
	if (r < 0)
		goto cleanup;
	r = -ENOMEM;
	/* "http://host/" and "http://host" name the same API; paths start with '/'. */
	while (strlen(a->url) > 8 && a->url[strlen(a->url) - 1] == '/')
		a->url[strlen(a->url) - 1] = '\0';
	if (a->cainfo && pin_receiver_name(a) < 0)
		goto cleanup;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		goto cleanup;
	a->curl = curl_easy_init();
	if (!a->curl)
		goto cleanup;
	*ret_api = a;
	a = NULL;
	r = 0;
cleanup:
	if (token)
		explicit_bzero(token, strlen(token));
	free(token);
	free(addr);
	apic_free(a);
	return r;
}

struct apic *apic_free(struct apic *a)
{
	if (!a)
		return NULL;
	if (a->curl)
		curl_easy_cleanup(a->curl);
	if (a->auth)
		explicit_bzero(a->auth, strlen(a->auth));
	free(a->auth);
	free(a->cainfo);
	curl_slist_free_all(a->connect_to);
	free(a->shown);
	free(a->url);
	free(a);
	return NULL;
}

const char *apic_url(const struct apic *a)
{
	return a->shown ? a->shown : a->url;
}

void apic_set_abort_fd(struct apic *a, int fd)
{
	a->abort_fd = fd;
}

bool apic_unreachable(int err)
{
	return err == -ECONNREFUSED || err == -EHOSTUNREACH || err == -ENOENT;
}

void apic_reply_done(struct apic_reply *rep)
{
	if (!rep)
		return;
	json_object_put(rep->obj);
	free(rep->body);
	*rep = (struct apic_reply){ 0 };
}

int apic_member(struct json_object *o, const char *key, int t, struct json_object **ret_v)
{
	struct json_object *v = NULL;

	if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, (enum json_type)t))
		return -EBADMSG;
	*ret_v = v;
	return 0;
}

void apic_reply_error(const struct apic_reply *rep, char *buf, size_t len)
{
	struct json_object *e = NULL;

	if (rep->obj && json_object_object_get_ex(rep->obj, "error", &e) &&
	    json_object_is_type(e, json_type_string) && json_object_get_string_len(e) > 0)
		apic_sanitize(json_object_get_string(e), false, buf, len);
	else
		snprintf(buf, len, "HTTP %ld from the receiver", rep->status);
}

/* The body as one JSON object and nothing after it but blanks; NULL when it is not. */
static struct json_object *parse_object(const char *text, size_t len)
{
	struct json_tokener *tok;
	struct json_object *o;
	size_t end;

	if (len == 0 || strlen(text) != len) /* a NUL inside would end json-c's view early */
		return NULL;
	tok = json_tokener_new_ex(32);
	if (!tok)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, text, (int)len);
	end = json_tokener_get_parse_end(tok);
	if (json_tokener_get_error(tok) != json_tokener_success || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	for (; o && end < len; end++)
		if (!isspace((unsigned char)text[end])) {
			json_object_put(o);
			o = NULL;
		}
	return o;
}

static int map_curl_error(struct apic *a, CURLcode c, const struct body *b, const char *cerr,
			  char *err, size_t err_len)
{
	curl_off_t connect_us = 0;
	const char *why = cerr[0] ? cerr : curl_easy_strerror(c);
	long os_errno = 0;

	switch (c) {
	case CURLE_COULDNT_CONNECT:
		/* The system's word ("Connection refused") says it best. */
		curl_easy_getinfo(a->curl, CURLINFO_OS_ERRNO, &os_errno);
		snprintf(err, err_len, "the receiver is not reachable at %s: %s", apic_url(a),
			 os_errno > 0 ? strerror((int)os_errno) : why);
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
		snprintf(err, err_len, "the receiver is not reachable at %s: %s", apic_url(a), why);
		return -EHOSTUNREACH;
	case CURLE_OPERATION_TIMEDOUT:
		/* A connect that timed out is as good as nothing listening. */
		curl_easy_getinfo(a->curl, CURLINFO_CONNECT_TIME_T, &connect_us);
		if (connect_us == 0) {
			snprintf(err, err_len, "the receiver is not reachable at %s: %s", apic_url(a), why);
			return -EHOSTUNREACH;
		}
		snprintf(err, err_len, "no answer from the receiver at %s in time", a->url);
		return -ETIMEDOUT;
	case CURLE_ABORTED_BY_CALLBACK:
		snprintf(err, err_len, "interrupted");
		return -EINTR;
	case CURLE_WRITE_ERROR:
		if (b->too_big) {
			snprintf(err, err_len, "the receiver's answer is larger than %u MiB",
				 APIC_MAX_BODY >> 20);
			return -EMSGSIZE;
		}
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	case CURLE_OUT_OF_MEMORY:
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	default:
		snprintf(err, err_len, "request to the receiver at %s failed: %s", apic_url(a), why);
		return -EIO;
	}
}

int apic_request(struct apic *a, const char *method, const char *path, const char *body,
		 long timeout_s, struct apic_reply *ret_reply, char *ret_err, size_t err_len)
{
	char cerr[CURL_ERROR_SIZE] = "", *url = NULL;
	struct curl_slist *hdrs = NULL, *h;
	struct body b = { 0 };
	struct json_object *obj = NULL;
	long status = 0;
	CURLcode c;
	int r = -ENOMEM;

	snprintf(ret_err, err_len, "out of memory");
	if (asprintf(&url, "%s%s", a->url, path) < 0) {
		url = NULL;
		goto cleanup;
	}
	hdrs = curl_slist_append(NULL, a->auth);
	if (!hdrs)
		goto cleanup;
	if (body) {
		h = curl_slist_append(hdrs, "Content-Type: application/json");
		if (!h)
			goto cleanup;
		hdrs = h;
	}
	curl_easy_reset(a->curl);
	curl_easy_setopt(a->curl, CURLOPT_URL, url);
	curl_easy_setopt(a->curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(a->curl, CURLOPT_HTTPHEADER, hdrs);
	if (body)
		curl_easy_setopt(a->curl, CURLOPT_POSTFIELDS, body);
	else if (strcmp(method, "GET") != 0)
		curl_easy_setopt(a->curl, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(a->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	if (a->cainfo)
		curl_easy_setopt(a->curl, CURLOPT_CAINFO, a->cainfo);
	if (a->connect_to)
		curl_easy_setopt(a->curl, CURLOPT_CONNECT_TO, a->connect_to);
	curl_easy_setopt(a->curl, CURLOPT_FOLLOWLOCATION, 0L);
	/* The token must not go to whatever http_proxy names: the API is local or direct. */
	curl_easy_setopt(a->curl, CURLOPT_PROXY, "");
	curl_easy_setopt(a->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(a->curl, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(a->curl, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(a->curl, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(a->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(a->curl, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(a->curl, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(a->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(a->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(a->curl, CURLOPT_XFERINFODATA, a);
	c = curl_easy_perform(a->curl);
	if (c != CURLE_OK) {
		r = map_curl_error(a, c, &b, cerr, ret_err, err_len);
		goto cleanup;
	}
	curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, &status);
	obj = b.data ? parse_object(b.data, b.len) : NULL;
	/* A refusal without a JSON body still has its status to show. */
	if (!obj && status < 400) {
		snprintf(ret_err, err_len, "the receiver's answer to %s %s (HTTP %ld) is not a JSON object",
			 method, path, status);
		r = -EBADMSG;
		goto cleanup;
	}
	*ret_reply = (struct apic_reply){ .status = status, .body = b.data, .body_len = b.len, .obj = obj };
	if (!b.data) /* an empty refusal: callers may still print the body */
		ret_reply->body = strdup("");
	if (!ret_reply->body) {
		json_object_put(obj);
		*ret_reply = (struct apic_reply){ 0 };
		snprintf(ret_err, err_len, "out of memory");
		r = -ENOMEM;
		goto cleanup;
	}
	b.data = NULL;
	ret_err[0] = '\0';
	r = 0;
cleanup:
	curl_slist_free_all(hdrs);
	free(url);
	free(b.data);
	return r;
}

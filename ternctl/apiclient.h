/* SPDX-License-Identifier: GPL-2.0-only */
/* ternctl's client of the receiver's HTTP control API: where the API is (STATE_DIR/api.addr
 * or a URL), the bearer token, and one request at a time with libcurl, answers parsed
 * with json-c. Only ternctl links it. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

struct apic;
struct json_object;

/* Where the API listens and the token: url NULL means "http://" + STATE_DIR/api.addr,
 * token_file NULL means STATE_DIR/api.token. Returns 0, -ENOENT when api.addr does not
 * exist (no receiver with an API ever served this state dir), -ENOKEY when the token
 * file cannot be read or holds no token, -EINVAL for a bad URL or address file, or
 * another -errno; the reason is in ret_err. The handle is the caller's. */
int apic_new(const char *state_dir, const char *url, const char *token_file,
	     struct apic **ret_api, char *ret_err, size_t err_len);
/* NULL-safe; returns NULL. */
struct apic *apic_free(struct apic *a);

/* The API's base URL, e.g. "http://127.0.0.1:7481". */
const char *apic_url(const struct apic *a);

/* A request in flight is abandoned (-EINTR) as soon as fd becomes readable (a signalfd),
 * so Ctrl-C does not wait for a slow receiver. -1 turns it off. */
void apic_set_abort_fd(struct apic *a, int fd);

/* An answer: the HTTP status, the body as received (NUL-terminated) and the JSON object it
 * holds (always for a 2xx answer; NULL for a 4xx/5xx whose body is not one). */
struct apic_reply {
	long status;
	char *body;
	size_t body_len;
	struct json_object *obj;
};

/* Sends METHOD PATH (body: a JSON text or NULL) and waits at most timeout_s for the whole
 * answer. Returns 0 for a 2xx answer whose body is a JSON object and for any 4xx/5xx
 * answer (see apic_reply_error), -ECONNREFUSED/-EHOSTUNREACH when nothing answers at the
 * API's address, -ETIMEDOUT, -EINTR (abort fd), -EBADMSG for a 2xx body that is not one
 * JSON object,
 * -EMSGSIZE for an oversize one, -EIO otherwise; the reason is in ret_err either way.
 * The reply is the caller's: free it with apic_reply_done. */
int apic_request(struct apic *a, const char *method, const char *path, const char *body,
		 long timeout_s, struct apic_reply *ret_reply, char *ret_err, size_t err_len);
void apic_reply_done(struct apic_reply *rep);

/* True for the errors that mean "no receiver answers there" (status falls back to the
 * records on disk then). */
bool apic_unreachable(int err);

/* The one-line reason of a 4xx/5xx answer: its "error" member, or "HTTP STATUS" when it
 * has none. Control characters are replaced. */
void apic_reply_error(const struct apic_reply *rep, char *buf, size_t len);

/* Member key of a JSON object when it has type t (json_type_null: only null); -EBADMSG
 * when missing or of another type. *ret_v is not a reference of its own. */
int apic_member(struct json_object *o, const char *key, int t, struct json_object **ret_v);

/* Copies s into buf, at most len - 1 bytes, replacing every byte that is not printable
 * ASCII (escape sequences from the network must not reach a terminal) with '?'; newlines
 * are kept when keep_newlines. Returns buf. */
char *apic_sanitize(const char *s, bool keep_newlines, char *buf, size_t len);

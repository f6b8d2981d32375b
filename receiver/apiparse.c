// SPDX-License-Identifier: GPL-2.0-only
/* The operator API's request parsing; see apiparse.h. */
#include "receiver/apiparse.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "common/proto.h"
#include "common/util.h"
#include "receiver/profile.h"

_Static_assert(sizeof(((struct api_call *)0)->agent) == NAME_MAX_LEN + 1, "agent name size");

/* Parses body as one JSON object whose keys are all among allowed ("" body: an empty
 * object). NULL with why set when it is not. */
static json_object *parse_body(const char *body, size_t len, const char *const *allowed,
			       char *why, size_t why_len)
{
	struct json_tokener *tok;
	json_object *o;

	if (len == 0)
		return json_object_new_object();
	if (len > API_BODY_MAX) {
		snprintf(why, why_len, "request body over %d bytes", API_BODY_MAX);
		return NULL;
	}
	tok = json_tokener_new();
	if (!tok) {
		snprintf(why, why_len, "out of memory");
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, body, (int)len);
	if (!o || json_tokener_get_error(tok) != json_tokener_success ||
	    (size_t)json_tokener_get_parse_end(tok) != len) {
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

/* A boolean field; absent leaves *v. Returns false when ill-typed. */
static bool get_bool(json_object *o, const char *key, bool *v)
{
	json_object *f;

	if (!json_object_object_get_ex(o, key, &f))
		return true;
	if (!json_object_is_type(f, json_type_boolean))
		return false;
	*v = json_object_get_boolean(f);
	return true;
}

/* "profile"/"adapt" (a known profile), "boot_check" and "accel" of a launch or a
 * cutover; 0 or 400 with why. */
static unsigned parse_adapt_fields(json_object *o, const char *pkey, struct api_call *call,
				   char *why, size_t why_len)
{
	json_object *f;

	if (json_object_object_get_ex(o, pkey, &f)) {
		const char *v = json_object_is_type(f, json_type_string) ? json_object_get_string(f) : "";

		if (!prof_find(v)) {
			snprintf(why, why_len, "%s must be one of %s", pkey, prof_names());
			return 400;
		}
		snprintf(call->profile, sizeof(call->profile), "%s", v);
		call->adapt = true;
	}
	if (!get_bool(o, "boot_check", &call->boot_check)) {
		snprintf(why, why_len, "boot_check must be true or false");
		return 400;
	}
	if (json_object_object_get_ex(o, "accel", &f)) {
		const char *v = json_object_is_type(f, json_type_string) ? json_object_get_string(f) : "";

		if (strcmp(v, "kvm") != 0 && strcmp(v, "tcg") != 0) {
			snprintf(why, why_len, "accel must be \"tcg\" or \"kvm\"");
			return 400;
		}
		call->kvm = v[0] == 'k';
	}
	return 0;
}

static unsigned parse_cut_adapt(json_object *o, struct api_call *call, char *why, size_t why_len)
{
	unsigned st = parse_adapt_fields(o, "adapt", call, why, why_len);

	if (!st && !call->adapt && (call->boot_check || json_object_object_get_ex(o, "accel", NULL))) {
		snprintf(why, why_len, "boot_check and accel go with adapt");
		return 400;
	}
	return st;
}

/* The launch body; 0 or 400 with why. */
static unsigned parse_launch(json_object *o, struct api_call *call, char *why, size_t why_len)
{
	bool test = false;

	if (!get_bool(o, "test", &test) || !test) {
		snprintf(why, why_len, "only test launches exist: \"test\": true is required");
		return 400;
	}
	unsigned st = parse_adapt_fields(o, "profile", call, why, why_len);

	if (st)
		return st;
	call->adapt = false; /* a launch always adapts; "adapt" is the cutover's word */
	if (!get_u64(o, "timeout_seconds", 86400, &call->timeout_s) || call->timeout_s == 0 ||
	    !get_u64(o, "boot_timeout_seconds", 86400, &call->boot_timeout_s) ||
	    call->boot_timeout_s == 0) {
		snprintf(why, why_len, "timeout_seconds and boot_timeout_seconds must be integers "
			 "from 1 to 86400");
		return 400;
	}
	return 0;
}

/* A cutover's body: verify, timeout_seconds and the adaptation's fields. 0, or the HTTP
 * status with why. */
static unsigned parse_cutover(json_object *o, struct api_call *call, char *why, size_t why_len)
{
	unsigned status = 0;
	json_object *f;

	if (json_object_object_get_ex(o, "verify", &f)) {
		const char *v = json_object_is_type(f, json_type_string) ? json_object_get_string(f) : "";

		if (strcmp(v, "full") == 0) {
			call->verify = PROTO_VERIFY_FULL;
		} else if (strcmp(v, "tracked") != 0) {
			snprintf(why, why_len, "verify must be \"tracked\" or \"full\"");
			status = 400;
		}
	}
	if (!status && (!get_u64(o, "timeout_seconds", 86400, &call->timeout_s) ||
			call->timeout_s == 0)) {
		snprintf(why, why_len, "timeout_seconds must be an integer from 1 to 86400");
		status = 400;
	}
	if (!status)
		status = parse_cut_adapt(o, call, why, why_len);
	return status;
}

unsigned api_parse(const char *url, const char *method, const char *body, size_t len,
		   struct api_call *ret_call, char *why, size_t why_len)
{
	static const char *const none[] = { NULL };
	static const char *const cut_keys[] = { "verify", "timeout_seconds", "adapt", "boot_check",
						"accel", NULL };
	static const char *const rate_keys[] = { "bytes_per_second", NULL };
	static const char *const launch_keys[] = { "test", "profile", "boot_check", "accel",
						   "timeout_seconds", "boot_timeout_seconds", NULL };
	struct api_call call = { .verify = PROTO_VERIFY_TRACKED, .timeout_s = API_CUTOVER_TIMEOUT_DEFAULT,
				 .bps = UINT64_MAX, .profile = "kvm",
				 .boot_timeout_s = API_LAUNCH_BOOT_TIMEOUT_DEFAULT };
	bool get = strcmp(method, "GET") == 0;
	const char *name, *slash, *op;
	json_object *o = NULL;
	unsigned status = 0;

	/* Whatever the route: a body past the bound is refused, not ignored (api.c stops
	 * reading there, so what it holds would be a truncated request). */
	if (len > API_BODY_MAX) {
		snprintf(why, why_len, "request body over %d bytes", API_BODY_MAX);
		return 400;
	}
	if (strcmp(url, "/v1/status") == 0 || strcmp(url, "/metrics") == 0) {
		if (!get) {
			snprintf(why, why_len, "use GET for %s", url);
			return 405;
		}
		call.op = url[1] == 'v' ? API_OP_STATUS : API_OP_METRICS;
		*ret_call = call;
		return 0;
	}
	if (strncmp(url, "/v1/agents/", 11) != 0)
		goto not_found;
	name = url + 11;
	slash = strchr(name, '/');
	if (!slash || !name_is_valid(name, (size_t)(slash - name)))
		goto not_found;
	memcpy(call.agent, name, (size_t)(slash - name));
	call.agent[slash - name] = '\0';
	op = slash + 1;
	if (strcmp(op, "cutover") == 0)
		call.op = API_OP_CUTOVER;
	else if (strcmp(op, "pause") == 0)
		call.op = API_OP_PAUSE;
	else if (strcmp(op, "resume") == 0)
		call.op = API_OP_RESUME;
	else if (strcmp(op, "rate") == 0)
		call.op = API_OP_RATE;
	else if (strcmp(op, "disconnect") == 0)
		call.op = API_OP_DISCONNECT;
	else if (strcmp(op, "launch") == 0)
		call.op = API_OP_LAUNCH;
	else if (strcmp(op, "launch/discard") == 0)
		call.op = API_OP_LAUNCH_DISCARD;
	else
		goto not_found;
	if (call.op == API_OP_RATE ? strcmp(method, "PUT") != 0 : strcmp(method, "POST") != 0) {
		snprintf(why, why_len, "use %s for %s", call.op == API_OP_RATE ? "PUT" : "POST", op);
		return 405;
	}
	o = parse_body(body, len, call.op == API_OP_CUTOVER ? cut_keys :
				  call.op == API_OP_RATE ? rate_keys :
				  call.op == API_OP_LAUNCH ? launch_keys : none, why, why_len);
	if (!o)
		return 400;
	if (call.op == API_OP_CUTOVER)
		status = parse_cutover(o, &call, why, why_len);
	if (call.op == API_OP_LAUNCH)
		status = parse_launch(o, &call, why, why_len);
	/* Up to a petabyte a second: the agent reports its limit, and the receiver believes
	 * no rate above that. */
	if (call.op == API_OP_RATE && (!get_u64(o, "bytes_per_second", UINT64_C(1) << 50, &call.bps) ||
				       call.bps == UINT64_MAX)) {
		snprintf(why, why_len, "bytes_per_second must be an integer from 0 (no limit) to 2^50");
		status = 400;
	}
	json_object_put(o);
	if (!status)
		*ret_call = call;
	return status;
not_found:
	snprintf(why, why_len, "no such resource: %.100s", url);
	return 404;
}


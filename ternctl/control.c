// SPDX-License-Identifier: GPL-2.0-only
/* ternctl pause, resume, rate and disconnect: the operator's control of an agent's
 * replication through the receiver. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/log.h"
#include "common/util.h"
#include "ternctl/apiclient.h"
#include "ternctl/statusview.h"
#include "ternctl/ternctl-impl.h"

/* The common answer of pause, resume and rate: result "ok" for the agent asked about. */
static int check_agent_reply(const struct apic_reply *rep, const char *name, bool *ret_connected)
{
	struct json_object *v;

	if (apic_member(rep->obj, "result", json_type_string, &v) < 0 ||
	    strcmp(json_object_get_string(v), "ok") != 0 ||
	    apic_member(rep->obj, "agent", json_type_string, &v) < 0 ||
	    strcmp(json_object_get_string(v), name) != 0 ||
	    apic_member(rep->obj, "connected", json_type_boolean, &v) < 0)
		return -EBADMSG;
	*ret_connected = json_object_get_boolean(v);
	return 0;
}

static int cmd_pause(const struct args *a, const char *name, bool pause)
{
	const char *verb = pause ? "pause" : "resume";
	struct apic_reply rep = { 0 };
	struct json_object *v;
	struct apic *api = NULL;
	char path[128], what[128], err[700];
	bool connected;
	int r;

	snprintf(path, sizeof(path), "/v1/agents/%s/%s", name, verb);
	snprintf(what, sizeof(what), "%s %s", verb, name);
	r = agent_request(a, "POST", path, NULL, QUICK_TIMEOUT_S, &api, &rep, err, sizeof(err));
	if (r < 0) {
		log_error("%s: %s", what, err);
		return EXIT_FAILED;
	}
	r = check_agent_reply(&rep, name, &connected);
	if (r == 0)
		r = apic_member(rep.obj, "paused", json_type_boolean, &v);
	if (r == 0 && json_object_get_boolean(v) != pause)
		r = -EBADMSG;
	if (r < 0)
		log_error("%s: the receiver's answer is malformed", what);
	else if (a->json)
		print_body(stdout, &rep);
	else
		printf("agent %s: %s%s\n", name, pause ? "paused" : "resumed",
		       connected ? "" : " (not connected now)");
	apic_reply_done(&rep);
	apic_free(api);
	return r < 0 ? EXIT_FAILED : EXIT_OK;
}

static int cmd_disconnect(const struct args *a, const char *name)
{
	struct apic_reply rep = { 0 };
	struct json_object *v = NULL;
	struct apic *api = NULL;
	char path[128], err[700];
	int64_t n = 0;
	int r;

	snprintf(path, sizeof(path), "/v1/agents/%s/disconnect", name);
	r = agent_request(a, "POST", path, NULL, QUICK_TIMEOUT_S, &api, &rep, err, sizeof(err));
	if (r < 0) {
		log_error("disconnect %s: %s", name, err);
		return EXIT_FAILED;
	}
	if (apic_member(rep.obj, "result", json_type_string, &v) < 0 ||
	    strcmp(json_object_get_string(v), "ok") != 0 ||
	    apic_member(rep.obj, "agent", json_type_string, &v) < 0 ||
	    strcmp(json_object_get_string(v), name) != 0 ||
	    apic_member(rep.obj, "sessions", json_type_int, &v) < 0 ||
	    (n = json_object_get_int64(v)) < 1 || n > 1000000)
		r = -EBADMSG;
	if (r < 0)
		log_error("disconnect %s: the receiver's answer is malformed", name);
	else if (a->json)
		print_body(stdout, &rep);
	else
		printf("agent %s: disconnected (%" PRId64 " session%s); it will reconnect unless it is "
		       "revoked (tern-receiver agent revoke %s)\n", name, n, n == 1 ? "" : "s", name);
	apic_reply_done(&rep);
	apic_free(api);
	return r < 0 ? EXIT_FAILED : EXIT_OK;
}

static int cmd_rate(const struct args *a, const char *name, uint64_t bps)
{
	struct apic_reply rep = { 0 };
	struct json_object *v;
	struct apic *api = NULL;
	char path[128], what[128], body[64], err[700], rate[32];
	bool connected;
	int r;

	snprintf(path, sizeof(path), "/v1/agents/%s/rate", name);
	snprintf(what, sizeof(what), "rate %s", name);
	snprintf(body, sizeof(body), "{\"bytes_per_second\":%" PRIu64 "}", bps);
	r = agent_request(a, "PUT", path, body, QUICK_TIMEOUT_S, &api, &rep, err, sizeof(err));
	if (r < 0) {
		log_error("%s: %s", what, err);
		return EXIT_FAILED;
	}
	r = check_agent_reply(&rep, name, &connected);
	if (r == 0)
		r = apic_member(rep.obj, "rate_limit_bps", json_type_int, &v);
	if (r == 0 && (uint64_t)json_object_get_int64(v) != bps)
		r = -EBADMSG;
	if (r < 0)
		log_error("%s: the receiver's answer is malformed", what);
	else if (a->json)
		print_body(stdout, &rep);
	else if (bps)
		printf("agent %s: rate limit %s%s\n", name, sv_fmt_rate((double)bps, rate, sizeof(rate)),
		       connected ? "" : " (not connected now)");
	else
		printf("agent %s: no rate limit%s\n", name, connected ? "" : " (not connected now)");
	apic_reply_done(&rep);
	apic_free(api);
	return r < 0 ? EXIT_FAILED : EXIT_OK;
}

/* BYTES per second with an optional K/M/G/T suffix, or "unlimited" (also 0). */
static int parse_rate(const char *s, uint64_t *ret_v)
{
	uint64_t v;
	int r;

	if (strcmp(s, "unlimited") == 0) {
		*ret_v = 0;
		return 0;
	}
	r = parse_size(s, &v);
	if (r < 0)
		return r;
	/* JSON integers beyond 2^53 lose precision in many readers of the API. */
	if (v > (UINT64_C(1) << 53))
		return -ERANGE;
	*ret_v = v;
	return 0;
}

int pause_main(const struct args *a, char **argv)
{
	return cmd_pause(a, argv[0], true);
}

int resume_main(const struct args *a, char **argv)
{
	return cmd_pause(a, argv[0], false);
}

int disconnect_main(const struct args *a, char **argv)
{
	return cmd_disconnect(a, argv[0]);
}

int rate_main(const struct args *a, char **argv)
{
	uint64_t bps = 0;

	if (parse_rate(argv[1], &bps) < 0)
		return usage_error("rate %s: bytes per second (K, M, G suffixes) or unlimited",
				   argv[1]);
	return cmd_rate(a, argv[0], bps);
}

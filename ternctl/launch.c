// SPDX-License-Identifier: GPL-2.0-only
/* ternctl launch: a test launch of an agent's targets, followed until it passed or failed,
 * and the discard of its launches. */
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

/* A launch's description from a status or launch answer: strings sanitised. */
static const char *jstr(struct json_object *o, const char *key, char *buf, size_t len)
{
	struct json_object *v;

	if (apic_member(o, key, json_type_string, &v) < 0)
		return "-";
	return apic_sanitize(json_object_get_string(v), false, buf, len);
}

void print_launch(FILE *f, struct json_object *l, bool disks)
{
	char a[80], id[48], prof[16], st[16], res[1100], path[1100];
	struct json_object *v, *d;

	fprintf(f, "test launch %s/%s (%s%s): %s: %s\n", jstr(l, "agent", a, sizeof(a)),
		jstr(l, "id", id, sizeof(id)), jstr(l, "profile", prof, sizeof(prof)),
		apic_member(l, "boot_check", json_type_boolean, &v) == 0 &&
			json_object_get_boolean(v) ? ", boot check" : "",
		jstr(l, "state", st, sizeof(st)), jstr(l, "result", res, sizeof(res)));
	if (disks && apic_member(l, "disks", json_type_array, &d) == 0) {
		for (size_t i = 0; i < json_object_array_length(d); i++) {
			struct json_object *k = json_object_array_get_idx(d, i), *e, *t;
			char did[80], root[40], how[16], warn[300];

			if (!k || apic_member(k, "epoch", json_type_int, &e) < 0 ||
			    apic_member(k, "clone_seconds", json_type_double, &t) < 0)
				continue;
			fprintf(f, "  disk %s: epoch %" PRId64 ", root %s, %s in %.3f s: %s\n",
				jstr(k, "id", did, sizeof(did)), json_object_get_int64(e),
				jstr(k, "root", root, sizeof(root)), jstr(k, "how", how, sizeof(how)),
				json_object_get_double(t), jstr(k, "clone", path, sizeof(path)));
			jstr(k, "warning", warn, sizeof(warn));
			if (warn[0] && strcmp(warn, "-") != 0)
				fprintf(f, "  WARNING: %s\n", warn);
		}
	}
	if (apic_member(l, "report", json_type_string, &v) == 0)
		fprintf(f, "  adaptation report: %s\n", jstr(l, "report", path, sizeof(path)));
	if (apic_member(l, "console", json_type_string, &v) == 0)
		fprintf(f, "  console log: %s\n", jstr(l, "console", path, sizeof(path)));
}

/* The launch id of agent name in a status answer, or NULL. */
static struct json_object *find_launch(struct json_object *status, const char *name,
				       const char *id)
{
	struct json_object *arr, *v;

	if (apic_member(status, "launches", json_type_array, &arr) < 0)
		return NULL;
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *l = json_object_array_get_idx(arr, i);

		if (l && apic_member(l, "agent", json_type_string, &v) == 0 &&
		    strcmp(json_object_get_string(v), name) == 0 &&
		    apic_member(l, "id", json_type_string, &v) == 0 &&
		    strcmp(json_object_get_string(v), id) == 0)
			return l;
	}
	return NULL;
}

static int cmd_launch_discard(const struct args *a, const char *name)
{
	struct apic_reply rep = { 0 };
	struct apic *api = NULL;
	struct json_object *v;
	char path[128], err[1200];
	int r;

	snprintf(path, sizeof(path), "/v1/agents/%s/launch/discard", name);
	r = agent_request(a, "POST", path, NULL, QUICK_TIMEOUT_S + 60, &api, &rep, err, sizeof(err));
	if (r < 0) {
		printf("FAILED: %s\n", err);
		return EXIT_FAILED;
	}
	r = apic_member(rep.obj, "discarded", json_type_int, &v);
	if (r < 0)
		printf("FAILED: the receiver's answer is malformed\n");
	else if (a->json)
		print_body(stdout, &rep);
	else
		printf("agent %s: %d test launch%s discarded\n", name, json_object_get_int(v),
		       json_object_get_int(v) == 1 ? "" : "es");
	apic_reply_done(&rep);
	apic_free(api);
	return r < 0 ? EXIT_FAILED : EXIT_OK;
}

/* Asks for a test launch, then follows it in the status until it passed or failed. */
static int cmd_launch_test(const struct args *a, const char *name)
{
	struct apic_reply rep = { 0 }, srep = { 0 };
	struct json_object *req = NULL, *l, *v;
	struct apic *api = NULL;
	char path[128], err[1200], id[48], state[16] = "", st[16], res[1100];
	const char *body;
	int r, rc = EXIT_FAILED;

	snprintf(path, sizeof(path), "/v1/agents/%s/launch", name);
	req = json_object_new_object();
	if (!req || json_object_object_add(req, "test", json_object_new_boolean(true)) < 0 ||
	    json_object_object_add(req, "profile", json_object_new_string(a->profile)) < 0 ||
	    json_object_object_add(req, "boot_check", json_object_new_boolean(a->boot_check)) < 0 ||
	    json_object_object_add(req, "accel", json_object_new_string(a->accel)) < 0 ||
	    json_object_object_add(req, "timeout_seconds", json_object_new_int64((int64_t)a->timeout)) < 0 ||
	    !(body = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN))) {
		log_error("out of memory");
		goto cleanup;
	}
	if (!a->json)
		printf("test launch of agent %s (%s%s): waiting for an epoch boundary\n", name,
		       a->profile, a->boot_check ? ", boot check" : "");
	fflush(stdout);
	r = agent_request(a, "POST", path, body, (long)a->timeout + CUTOVER_MARGIN_S, &api, &rep,
			  err, sizeof(err));
	if (r < 0) {
		printf("FAILED: %s\n", err);
		goto cleanup;
	}
	if (apic_member(rep.obj, "launch", json_type_object, &l) < 0 ||
	    apic_member(l, "id", json_type_string, &v) < 0) {
		printf("FAILED: the receiver's answer is malformed; see ternctl status\n");
		goto cleanup;
	}
	apic_sanitize(json_object_get_string(v), false, id, sizeof(id));
	jstr(l, "state", state, sizeof(state));
	if (!a->json)
		print_launch(stdout, l, true);
	/* The adaptation and the boot run on the receiver: follow them in the status. */
	for (;;) {
		apic_reply_done(&srep);
		r = apic_request(api, "GET", "/v1/status", NULL, QUICK_TIMEOUT_S, &srep, err, sizeof(err));
		if (r < 0 || srep.status != 200 || !srep.obj) {
			if (r == 0)
				apic_reply_error(&srep, err, sizeof(err));
			printf("FAILED: cannot follow test launch %s: %s\n", id, err);
			goto cleanup;
		}
		l = find_launch(srep.obj, name, id);
		if (!l) {
			printf("FAILED: test launch %s is gone from the receiver's status\n", id);
			goto cleanup;
		}
		jstr(l, "state", st, sizeof(st));
		if (strcmp(st, state) != 0 && !a->json)
			printf("%s: %s\n", st, jstr(l, "result", res, sizeof(res)));
		fflush(stdout);
		snprintf(state, sizeof(state), "%s", st);
		if (strcmp(st, "passed") == 0 || strcmp(st, "failed") == 0)
			break;
		sleep(2);
	}
	if (a->json) {
		fputs(json_object_to_json_string_ext(l, JSON_C_TO_STRING_PLAIN), stdout);
		fputc('\n', stdout);
	} else {
		print_launch(stdout, l, false);
		printf("%s\n", strcmp(st, "passed") == 0 ? "PASSED" : "FAILED");
	}
	rc = strcmp(st, "passed") == 0 ? EXIT_OK : EXIT_FAILED;
cleanup:
	json_object_put(req);
	apic_reply_done(&rep);
	apic_reply_done(&srep);
	apic_free(api);
	return rc;
}

int launch_main(const struct args *a, char **argv)
{
	bool test = a->given & OPT_TEST, discard = a->given & OPT_DISCARD;

	if (test == discard)
		return usage_error("launch takes --test or --discard");
	if (a->given & OPT_ADAPT)
		return usage_error("--adapt goes with cutover; launch takes --profile");
	if (discard && (a->given & (OPT_PROFILE | OPT_BOOT | OPT_ACCEL | OPT_TIMEOUT)))
		return usage_error("launch --discard takes no other option but --json");
	return discard ? cmd_launch_discard(a, argv[0]) : cmd_launch_test(a, argv[0]);
}

// SPDX-License-Identifier: GPL-2.0-only
/* ternctl cutover: asks for an agent's cutover, waits for its proof and, with --adapt,
 * the adaptation's outcome. */
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

/* Whether the receiver knows agent name, it has no session now and something is left to
 * cut over (the receiver waits for such an agent). False when that cannot be told (the
 * request itself then reports what is wrong). */
static bool agent_away(const struct args *a, const char *name)
{
	struct apic_reply rep = { 0 };
	struct sv_status *st = NULL;
	struct apic *api = NULL;
	char err[512];
	bool away = false;

	if (open_api(a, &api, err, sizeof(err)) == 0 &&
	    fetch_status(api, &rep, &st, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < st->nagents; i++)
			if (strcmp(st->agents[i].name, name) == 0)
				away = !st->agents[i].connected &&
				       strcmp(st->agents[i].state, "cut-over") != 0;
	}
	sv_free(st);
	apic_reply_done(&rep);
	apic_free(api);
	return away;
}

static int cmd_cutover(const struct args *a, const char *name)
{
	struct apic_reply rep = { 0 };
	struct json_object *v, *req = NULL;
	struct apic *api = NULL;
	char path[128], err[700], *proof = NULL;
	const char *body;
	size_t n;
	int r, rc = EXIT_FAILED;

	snprintf(path, sizeof(path), "/v1/agents/%s/cutover", name);
	/* The receiver waits within the timeout for an agent that is away (a link flap, a
	 * restart): say so, or the operator sees nothing for up to --timeout seconds. */
	if (agent_away(a, name))
		fprintf(a->json ? stderr : stdout, "agent %s is not connected; waiting up to %" PRIu64
			" s for it to come back\n", name, a->timeout);
	fflush(stdout);
	req = json_object_new_object();
	if (!req || json_object_object_add(req, "verify", json_object_new_string(a->verify)) < 0 ||
	    json_object_object_add(req, "timeout_seconds", json_object_new_int64((int64_t)a->timeout)) < 0 ||
	    (a->adapt && (json_object_object_add(req, "adapt", json_object_new_string(a->adapt)) < 0 ||
			  json_object_object_add(req, "boot_check", json_object_new_boolean(a->boot_check)) < 0 ||
			  json_object_object_add(req, "accel", json_object_new_string(a->accel)) < 0)) ||
	    !(body = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN))) {
		log_error("out of memory");
		goto cleanup;
	}
	r = agent_request(a, "POST", path, body, (long)a->timeout + CUTOVER_MARGIN_S +
			  (a->adapt ? ADAPT_MARGIN_S : 0), &api, &rep, err, sizeof(err));
	if (r == -EPROTO) {
		/* The receiver's reason; with --json its answer went to stdout. */
		fprintf(a->json ? stderr : stdout, "FAILED: %s\n", err);
		goto cleanup;
	}
	if (r < 0) {
		/* Once the request is sent, only the receiver knows how it ended. */
		if (apic_unreachable(r))
			printf("FAILED: %s\n", err);
		else
			printf("FAILED: %s; the cutover's outcome is unknown: see ternctl status\n", err);
		goto cleanup;
	}
	if (apic_member(rep.obj, "result", json_type_string, &v) < 0 ||
	    strcmp(json_object_get_string(v), "ok") != 0 ||
	    apic_member(rep.obj, "proof", json_type_string, &v) < 0) {
		printf("FAILED: the receiver's answer is malformed; see ternctl status\n");
		goto cleanup;
	}
	if (a->json) {
		print_body(stdout, &rep);
	} else {
		n = (size_t)json_object_get_string_len(v);
		proof = malloc(n + 1);
		if (!proof) {
			log_error("out of memory");
			goto cleanup;
		}
		apic_sanitize(json_object_get_string(v), true, proof, n + 1);
		fputs(proof, stdout);
		if (n && proof[n - 1] != '\n')
			fputc('\n', stdout);
	}
	rc = EXIT_OK;
	if (a->adapt) {
		struct json_object *ad, *t, *res;

		if (apic_member(rep.obj, "adaptation", json_type_object, &ad) < 0 ||
		    apic_member(ad, "text", json_type_string, &t) < 0 ||
		    apic_member(ad, "result", json_type_string, &res) < 0) {
			printf("CUTOVER DONE; the adaptation's outcome is missing from the answer\n");
			rc = EXIT_FAILED;
			goto cleanup;
		}
		if (strcmp(json_object_get_string(res), "ok") != 0)
			rc = EXIT_FAILED;
		if (!a->json) {
			char *text;

			n = (size_t)json_object_get_string_len(t);
			text = malloc(n + 1);
			if (text) {
				apic_sanitize(json_object_get_string(t), true, text, n + 1);
				fputs(text, stdout);
				free(text);
			}
		}
	}
	if (!a->json)
		printf("%s\n", rc == EXIT_OK ? "OK" : "CUTOVER DONE, ADAPTATION FAILED");
cleanup:
	free(proof);
	json_object_put(req);
	apic_reply_done(&rep);
	apic_free(api);
	return rc;
}

int cutover_main(const struct args *a, char **argv)
{
	if ((a->given & (OPT_BOOT | OPT_ACCEL)) && !a->adapt)
		return usage_error("--boot-check and --accel go with --adapt");
	return cmd_cutover(a, argv[0]);
}

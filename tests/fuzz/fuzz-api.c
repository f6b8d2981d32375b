// SPDX-License-Identifier: GPL-2.0-only
/* libFuzzer target for the operator API's request handling (receiver/apiparse.c): the
 * routing of a URL and method and the strict parsing of the JSON body, as api.c runs them
 * for every authorised request. Input: one byte choosing the method, the URL up to the
 * first '\n', the rest the body. Whatever it accepts must name a valid operation with
 * fields inside their bounds; whatever it refuses gets a 4xx status and a reason. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/proto.h"
#include "common/util.h"
#include "receiver/apiparse.h"
#include "receiver/profile.h"

#include "fuzz-driver.h"

static const char *const methods[] = { "GET", "POST", "PUT", "DELETE", "HEAD", "get", "" };
#define NMETHODS (sizeof(methods) / sizeof(methods[0]))

static void require(bool ok)
{
	if (!ok)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api_call a, b;
	char url[1024], why[256], why2[256];
	const char *method, *nl, *body;
	size_t ulen, blen;
	unsigned st, st2;

	if (size < 1)
		return 0;
	method = methods[data[0] % NMETHODS];
	data++;
	size--;
	nl = memchr(data, '\n', size);
	ulen = nl ? (size_t)(nl - (const char *)data) : size;
	if (ulen >= sizeof(url))
		return 0;
	memcpy(url, data, ulen);
	url[ulen] = '\0'; /* libmicrohttpd hands over a C string */
	body = nl ? nl + 1 : "";
	blen = nl ? size - ulen - 1 : 0;

	memset(&a, 0xa5, sizeof(a));
	why[0] = '\0';
	st = api_parse(url, method, body, blen, &a, why, sizeof(why));
	if (st) {
		require(st == 400 || st == 404 || st == 405);
		require(why[0] != '\0' && strnlen(why, sizeof(why)) < sizeof(why));
	} else {
		bool agent_op = a.op != API_OP_STATUS && a.op != API_OP_METRICS;

		require(a.op <= API_OP_LAUNCH_DISCARD);
		if (!agent_op) {
			require(strcmp(method, "GET") == 0);
		} else {
			require(name_is_valid(a.agent, strnlen(a.agent, sizeof(a.agent))));
			require(strcmp(method, a.op == API_OP_RATE ? "PUT" : "POST") == 0);
			require(strncmp(url, "/v1/agents/", 11) == 0);
		}
		require(blen <= API_BODY_MAX);
		if (a.op == API_OP_CUTOVER) {
			require(a.verify == PROTO_VERIFY_TRACKED || a.verify == PROTO_VERIFY_FULL);
			require(a.timeout_s >= 1 && a.timeout_s <= 86400);
			/* Adaptation after a cutover only for a known profile; its options
			 * only with it. */
			require(a.adapt ? prof_find(a.profile) != NULL : !a.boot_check && !a.kvm);
		}
		if (a.op == API_OP_RATE)
			require(a.bps <= (UINT64_C(1) << 50));
		/* A launch is a test launch of a known profile, within its time bounds; its
		 * body said "test": true, which only a body can say. */
		if (a.op == API_OP_LAUNCH) {
			require(prof_find(a.profile) != NULL);
			require(a.timeout_s >= 1 && a.timeout_s <= 86400);
			require(a.boot_timeout_s >= 1 && a.boot_timeout_s <= 86400);
			require(blen > 0 && memmem(body, blen, "test", 4) != NULL);
			require(strcmp(url + strlen(url) - 7, "/launch") == 0);
		}
		if (a.op == API_OP_LAUNCH_DISCARD)
			require(strcmp(url + strlen(url) - 15, "/launch/discard") == 0);
	}
	/* The same request gets the same answer: nothing is kept between calls. */
	memset(&b, 0x5a, sizeof(b));
	st2 = api_parse(url, method, body, blen, &b, why2, sizeof(why2));
	require(st2 == st);
	if (st)
		require(strcmp(why, why2) == 0);
	else
		require(a.op == b.op && strcmp(a.agent, b.agent) == 0 && a.verify == b.verify &&
			a.timeout_s == b.timeout_s && a.bps == b.bps &&
			a.adapt == b.adapt &&
			(a.op != API_OP_LAUNCH || (strcmp(a.profile, b.profile) == 0 &&
						   a.boot_check == b.boot_check && a.kvm == b.kvm &&
						   a.boot_timeout_s == b.boot_timeout_s)));
	return 0;
}

static void add_req(void (*add)(const void *p, size_t n), unsigned method, const char *url,
		    const char *body)
{
	char buf[8192];
	int n = snprintf(buf, sizeof(buf), "%c%s\n%s", (char)method, url, body);

	if (n > 0 && (size_t)n < sizeof(buf))
		add(buf, (size_t)n);
}

void tern_fuzz_seeds(void (*add)(const void *p, size_t n))
{
	char big[API_BODY_MAX + 64];

	add_req(add, 0, "/v1/status", "");
	add_req(add, 0, "/metrics", "");
	add_req(add, 1, "/v1/status", "");
	add_req(add, 1, "/v1/agents/web1/cutover", "{\"verify\":\"full\",\"timeout_seconds\":60}");
	add_req(add, 1, "/v1/agents/web1/cutover", "{\"verify\":\"tracked\"}");
	add_req(add, 1, "/v1/agents/web1/cutover", "{\"timeout_seconds\":86401}");
	add_req(add, 1, "/v1/agents/web1/cutover", "{\"timeout_seconds\":0}");
	add_req(add, 1, "/v1/agents/web1/cutover", "{\"verify\":1}");
	add_req(add, 1, "/v1/agents/web1/pause", "");
	add_req(add, 1, "/v1/agents/web1/disconnect", "");
	add_req(add, 0, "/v1/agents/web1/disconnect", "");
	add_req(add, 1, "/v1/agents/web1/resume", "{}");
	add_req(add, 1, "/v1/agents/web1/resume", "{\"x\":1}");
	add_req(add, 2, "/v1/agents/web1/rate", "{\"bytes_per_second\":1048576}");
	add_req(add, 2, "/v1/agents/web1/rate", "{\"bytes_per_second\":1125899906842625}");
	add_req(add, 2, "/v1/agents/web1/rate", "{\"bytes_per_second\":-1}");
	add_req(add, 2, "/v1/agents/web1/rate", "{\"bytes_per_second\":1.5}");
	add_req(add, 1, "/v1/agents/web1/rate", "{\"bytes_per_second\":1}");
	add_req(add, 1, "/v1/agents//cutover", "");
	add_req(add, 1, "/v1/agents/a_b-c.d:e/cutover", "[1,2]");
	add_req(add, 1, "/v1/agents/web1/cutover", "{\"verify\":\"full\"} trailing");
	add_req(add, 1, "/v1/agents/web1/cutover", "{\"verify\":\"full\",\"verify\":\"tracked\"}");
	add_req(add, 1, "/v1/agents/"
			"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/pause", "");
	add_req(add, 3, "/v1/agents/web1/pause", "");
	add_req(add, 1, "/v1/agents/web1/launch", "{\"test\":true,\"profile\":\"kvm\",\"boot_check\":true}");
	add_req(add, 1, "/v1/agents/web1/launch", "{\"test\":true,\"profile\":\"aws\",\"accel\":\"kvm\","
		"\"timeout_seconds\":60,\"boot_timeout_seconds\":600}");
	add_req(add, 1, "/v1/agents/web1/launch", "{\"test\":false}");
	add_req(add, 1, "/v1/agents/web1/launch", "{\"profile\":\"kvm\"}");
	add_req(add, 1, "/v1/agents/web1/launch", "{\"test\":true,\"profile\":\"vmware\"}");
	add_req(add, 1, "/v1/agents/web1/launch", "{\"test\":true,\"boot_check\":1}");
	add_req(add, 1, "/v1/agents/web1/launch", "{\"test\":true,\"accel\":\"hvf\"}");
	add_req(add, 1, "/v1/agents/web1/launch", "{\"test\":true,\"boot_timeout_seconds\":0}");
	add_req(add, 1, "/v1/agents/web1/launch", "");
	add_req(add, 0, "/v1/agents/web1/launch", "{\"test\":true}");
	add_req(add, 1, "/v1/agents/web1/cutover", "{\"adapt\":\"aws\",\"boot_check\":true}");
	add_req(add, 1, "/v1/agents/web1/cutover", "{\"adapt\":\"hyperv\"}");
	add_req(add, 1, "/v1/agents/web1/cutover", "{\"boot_check\":true}");
	add_req(add, 1, "/v1/agents/web1/cutover", "{\"accel\":\"kvm\"}");
	add_req(add, 1, "/v1/agents/web1/launch/discard", "");
	add_req(add, 1, "/v1/agents/web1/launch/discard", "{\"test\":true}");
	add_req(add, 3, "/v1/agents/web1/launch/discard", "");
	add_req(add, 1, "/v1/agents/web1/launch/discard/x", "");
	memset(big, ' ', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[0] = '{';
	big[API_BODY_MAX] = '}';
	big[API_BODY_MAX + 1] = '\0';
	add_req(add, 1, "/v1/agents/web1/cutover", big);
	/* Found by libFuzzer: a GET whose body is past the bound was accepted. */
	add_req(add, 0, "/metrics", big);
	add_req(add, 0, "/v1/status", big);
}

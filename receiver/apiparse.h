/* SPDX-License-Identifier: GPL-2.0-only */
/* The operator API's request parsing: routing a URL and method to an operation and
 * validating its JSON body, strictly. Pure (no sockets, no state), so it is fuzzed as is
 * (tests/fuzz/fuzz-api.c); receiver/api.c serves what it returns. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define API_BODY_MAX 4096
#define API_CUTOVER_TIMEOUT_DEFAULT 600u
#define API_LAUNCH_BOOT_TIMEOUT_DEFAULT 900u

/* What a request asks for, once routed and its body validated. */
enum api_op { API_OP_STATUS, API_OP_METRICS, API_OP_CUTOVER, API_OP_PAUSE, API_OP_RESUME, API_OP_RATE,
	      API_OP_DISCONNECT, API_OP_LAUNCH, API_OP_LAUNCH_DISCARD };
struct api_call {
	enum api_op op;
	char agent[65];     /* NAME, for the /v1/agents/NAME/... operations */
	uint8_t verify;     /* cutover: enum proto_verify */
	uint64_t timeout_s; /* cutover; launch: how long to wait for an epoch boundary */
	uint64_t bps;       /* rate: 0 lifts the limit */
	/* launch: {"test": true, "profile": P, "boot_check": B, "accel": "tcg"|"kvm",
	 * "timeout_seconds": N, "boot_timeout_seconds": N}; profile is a known one. */
	char profile[16];
	bool adapt;         /* cutover: {"adapt": P, "boot_check": B, "accel": A} */
	bool boot_check;
	bool kvm;
	uint64_t boot_timeout_s;
};

/* Routes a request (url, method) and parses its body (len bytes, at most 4096; JSON, strict,
 * only the operation's fields). Pure: touches no state, so it can be fuzzed. Returns 0 with
 * *ret_call set, or the HTTP status to answer (400, 404, 405) with a one-line why. The token
 * is checked before, by the caller. */
unsigned api_parse(const char *url, const char *method, const char *body, size_t len,
		   struct api_call *ret_call, char *why, size_t why_len);


/* SPDX-License-Identifier: GPL-2.0-only */
/* The receiver's operator API: HTTP with JSON bodies, served by libmicrohttpd, every
 * request authenticated by the bearer token in STATE_DIR/api.token (0600). Plain HTTP on
 * a loopback address only; any other address is served over TLS with the receiver's
 * certificate. Endpoints:
 *   GET  /v1/status                   every agent and disk (see reg_snapshot)
 *   POST /v1/agents/NAME/cutover      {"verify":"tracked"|"full","timeout_seconds":N,
 *                                     "adapt":P,"boot_check":B,"accel":"tcg"|"kvm"}: with
 *                                     adapt, the proven target is then adapted (launch.h)
 *   POST /v1/agents/NAME/pause        no data is sent until resumed
 *   POST /v1/agents/NAME/resume
 *   PUT  /v1/agents/NAME/rate         {"bytes_per_second":N}, 0 lifts the limit
 *   POST /v1/agents/NAME/launch       {"test":true,"profile":P,"boot_check":B,"accel":"tcg"|"kvm",
 *                                     "timeout_seconds":N,"boot_timeout_seconds":N}: a test
 *                                     launch (launch.h); answered once cloned
 *   POST /v1/agents/NAME/launch/discard  removes the agent's test launches
 *   GET  /metrics                     the same figures, Prometheus text format
 * A bad request gets a 4xx answer with {"error":"..."} and changes nothing. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "receiver/apiparse.h"
#include "receiver/registry.h"
#include "receiver/session.h"

#define API_TOKEN_FILE "api.token"
#define API_ADDR_FILE "api.addr"
#define API_DEFAULT_ADDR "127.0.0.1:7481"
#define API_TOKEN_HEX 64

struct api;

/* Creates DIR/api.token (0600, 256 random bits in hex) unless a valid one exists; puts it
 * in token (API_TOKEN_HEX + 1 bytes). 0 or -errno (-EINVAL: the file is not a token). */
int api_token_ensure(const char *state_dir, char *token);

/* Serves the API on hostport for srv and reg (both must outlive it), and records the
 * bound address in DIR/api.addr for ternctl. A connection's request head must be complete
 * within header_ms of its start (or of the previous answer on a kept connection); at most
 * 8 connections per client address; TLS (off loopback) is 1.3 only. 0 or -errno, with the
 * reason logged. */
int api_start(struct rcv_server *srv, struct registry *reg, const char *hostport,
	      unsigned header_ms, struct api **ret_api);
/* Stops serving and removes DIR/api.addr; NULL-safe, returns NULL. */
struct api *api_stop(struct api *api);

/* SPDX-License-Identifier: GPL-2.0-only */
/* ternctl's view of GET /v1/status: the answer checked field by field against the API's
 * contract into plain structs, and rendered as a table, progress lines and forecasts. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/util.h"

struct json_object;

/* Texts from the network are kept as printable ASCII (see apic_sanitize). */
#define SV_TEXT_LEN 640

struct sv_forecast {
	bool converges;
	bool has_converges, has_drain, has_downtime; /* false: the API said null (unknown) */
	double drain_s, downtime_s;
	char warning[SV_TEXT_LEN];
};

struct sv_disk {
	char id[NAME_MAX_LEN + 1];
	char state[24];
	uint64_t size, epoch, bytes_copied, bytes_total, backlog, wire_total, plain_total;
	bool has_verified_epoch, has_lag, has_compression_ratio;
	uint64_t verified_epoch;
	double lag_s, throughput_bps, compression_ratio, churn_bps;
	char tracker[24];
	bool cut_over;
	char last_error[SV_TEXT_LEN], last_fault[SV_TEXT_LEN];
	struct sv_forecast fc;
};

struct sv_agent {
	char name[NAME_MAX_LEN + 1];
	char peer[80];
	char state[24];
	bool connected, paused;
	bool shared_bundle; /* its last session used the shared agent bundle */
	/* Compression streams its last session asked for and was granted. */
	uint64_t streams_asked, streams_granted;
	uint64_t rate_limit_bps;
	char last_error[SV_TEXT_LEN];
	struct sv_disk *disks;
	size_t ndisks;
};

struct sv_status {
	char version[32];
	uint64_t uptime_s;
	struct sv_agent *agents;
	size_t nagents;
};

/* Checks a status answer against the contract (every field present with its type; only
 * the documented ones may be null) and copies it. Returns 0, -EBADMSG with the first
 * offending field named in ret_err, or -ENOMEM. The status is the caller's: sv_free. */
int sv_parse(struct json_object *root, struct sv_status **ret_status, char *ret_err, size_t err_len);
/* NULL-safe; returns NULL. */
struct sv_status *sv_free(struct sv_status *st);

/* True when there is at least one disk and every disk is in-sync, verified or cut-over;
 * with agent non-NULL, only that agent's disks count (and it must have one). */
bool sv_all_synced(const struct sv_status *st, const char *agent);

/* The status table: a row per disk, then its forecast, last fault and last error, then a
 * line per agent. color: warnings in bold red (for a terminal). */
void sv_print_table(FILE *f, const struct sv_status *st, const char *url, bool color);

/* One line of output: text without newline; warning: the line should stand out. */
typedef void (*sv_emit_fn)(void *ctx, const char *text, bool warning);

/* The live view, a line at a time: a header, then per disk a progress bar, copied %,
 * rate, ETA, backlog and lag, and its warning if any. bar_width 0: no bar and no header,
 * each line prefixed with the time instead (a log for non-terminals). */
void sv_watch_lines(const struct sv_status *st, const char *url, unsigned bar_width,
		    sv_emit_fn emit, void *ctx);

/* Formatting, exported for the tests. Sizes and rates with three significant digits
 * ("812 MiB", "47.3 MiB/s"), durations as "M:SS" or "H:MM:SS". Each returns buf. */
char *sv_fmt_size(double bytes, char *buf, size_t len);
char *sv_fmt_rate(double bps, char *buf, size_t len);
char *sv_fmt_duration(double seconds, char *buf, size_t len);
/* The forecast sentence of a disk: "forecast: converges, ..." or "WARNING: ...".
 * Returns true when it is a warning. */
bool sv_forecast_text(const struct sv_disk *d, char *buf, size_t len);

// SPDX-License-Identifier: GPL-2.0-only
/* ternctl's status view; see statusview.h. */
#include "ternctl/statusview.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "ternctl/apiclient.h"

#define COLOR_WARN "\033[1;31m"
#define COLOR_OFF "\033[0m"

enum kind { K_U64, K_NUM, K_BOOL, K_TEXT, K_NAME, K_WORD };

static const char *const kind_names[] = {
	[K_U64] = "an unsigned integer", [K_NUM] = "a non-negative number",
	[K_BOOL] = "a boolean", [K_TEXT] = "a string", [K_NAME] = "a valid name",
	[K_WORD] = "a lower-case word",
};

/* Where a field sits, for the one-line error: "agents[0].disks[1]". */
struct where {
	char path[96];
	char *err;
	size_t err_len;
};

static int bad(const struct where *w, const char *key, const char *what)
{
	snprintf(w->err, w->err_len, "the receiver's status is malformed: %s%s%s %s", w->path,
		 w->path[0] ? "." : "", key, what);
	return -EBADMSG;
}

/* Fetches member key of o, checked against kind; *ret NULL only when nullable and null. */
static int member(const struct where *w, struct json_object *o, const char *key, enum kind k,
		  bool nullable, struct json_object **ret)
{
	struct json_object *v = NULL;
	char what[64];
	bool ok;

	if (!json_object_object_get_ex(o, key, &v))
		return bad(w, key, "is missing");
	if (!v) {
		*ret = NULL;
		return nullable ? 0 : bad(w, key, "is null");
	}
	switch (k) {
	case K_U64:
		ok = json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0;
		break;
	case K_NUM:
		ok = (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)) &&
		     isfinite(json_object_get_double(v)) && json_object_get_double(v) >= 0;
		break;
	case K_BOOL:
		ok = json_object_is_type(v, json_type_boolean);
		break;
	default:
		ok = json_object_is_type(v, json_type_string);
		break;
	}
	if (!ok) {
		snprintf(what, sizeof(what), "is not %s", kind_names[k]);
		return bad(w, key, what);
	}
	*ret = v;
	return 0;
}

static int get_u64(const struct where *w, struct json_object *o, const char *key, bool *ret_has,
		   uint64_t *ret_v)
{
	struct json_object *v;
	int r = member(w, o, key, K_U64, ret_has != NULL, &v);

	if (r < 0)
		return r;
	if (ret_has)
		*ret_has = v != NULL;
	*ret_v = v ? (uint64_t)json_object_get_int64(v) : 0;
	return 0;
}

static int get_num(const struct where *w, struct json_object *o, const char *key, bool *ret_has,
		   double *ret_v)
{
	struct json_object *v;
	int r = member(w, o, key, K_NUM, ret_has != NULL, &v);

	if (r < 0)
		return r;
	if (ret_has)
		*ret_has = v != NULL;
	*ret_v = v ? json_object_get_double(v) : 0;
	return 0;
}

static int get_bool(const struct where *w, struct json_object *o, const char *key, bool *ret_has,
		    bool *ret_v)
{
	struct json_object *v;
	int r = member(w, o, key, K_BOOL, ret_has != NULL, &v);

	if (r < 0)
		return r;
	if (ret_has)
		*ret_has = v != NULL;
	*ret_v = v ? json_object_get_boolean(v) : false;
	return 0;
}

/* A string into buf: K_TEXT is cut to fit and made printable; K_NAME must be a valid
 * agent or disk name and K_WORD a short [a-z0-9-] token (states, trackers), whole. */
static int get_text(const struct where *w, struct json_object *o, const char *key, enum kind k,
		    char *buf, size_t len)
{
	struct json_object *v;
	const char *s;
	size_t n;
	int r = member(w, o, key, k, false, &v);

	if (r < 0)
		return r;
	s = json_object_get_string(v);
	n = (size_t)json_object_get_string_len(v);
	if (k == K_NAME && (n >= len || strlen(s) != n || !name_is_valid(s, n)))
		return bad(w, key, "is not a valid name");
	if (k == K_WORD) {
		if (n == 0 || n >= len || strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") != n)
			return bad(w, key, "is not a lower-case word");
	}
	apic_sanitize(s, false, buf, len);
	return 0;
}

static int array_member(const struct where *w, struct json_object *o, const char *key,
			struct json_object **ret, size_t *ret_n)
{
	struct json_object *v = NULL;

	if (!json_object_object_get_ex(o, key, &v))
		return bad(w, key, "is missing");
	if (!json_object_is_type(v, json_type_array))
		return bad(w, key, "is not an array");
	*ret = v;
	*ret_n = json_object_array_length(v);
	return 0;
}

static int object_at(const struct where *w, struct json_object *arr, const char *key, size_t i,
		     struct json_object **ret)
{
	struct json_object *v = json_object_array_get_idx(arr, i);
	char what[96];

	if (!json_object_is_type(v, json_type_object)) {
		snprintf(what, sizeof(what), "%s[%zu]", key, i);
		return bad(w, what, "is not an object");
	}
	*ret = v;
	return 0;
}

static int parse_forecast(const struct where *dw, struct json_object *o, struct sv_forecast *fc)
{
	struct json_object *f = NULL;
	struct where w = *dw;
	int r;

	if (!json_object_object_get_ex(o, "forecast", &f))
		return bad(dw, "forecast", "is missing");
	if (!json_object_is_type(f, json_type_object))
		return bad(dw, "forecast", "is not an object");
	if (snprintf(w.path, sizeof(w.path), "%s.forecast", dw->path) >= (int)sizeof(w.path))
		return bad(dw, "forecast", "is nested too deep");
	if ((r = get_bool(&w, f, "converges", &fc->has_converges, &fc->converges)) < 0 ||
	    (r = get_num(&w, f, "drain_seconds", &fc->has_drain, &fc->drain_s)) < 0 ||
	    (r = get_num(&w, f, "cutover_downtime_seconds", &fc->has_downtime, &fc->downtime_s)) < 0 ||
	    (r = get_text(&w, f, "warning", K_TEXT, fc->warning, sizeof(fc->warning))) < 0)
		return r;
	return 0;
}

static int parse_disk(const struct where *aw, struct json_object *o, size_t i, struct sv_disk *d)
{
	struct where w = *aw;
	int r;

	if (snprintf(w.path, sizeof(w.path), "%s.disks[%zu]", aw->path, i) >= (int)sizeof(w.path))
		return bad(aw, "disks", "is nested too deep");
	if ((r = get_text(&w, o, "id", K_NAME, d->id, sizeof(d->id))) < 0 ||
	    (r = get_text(&w, o, "state", K_WORD, d->state, sizeof(d->state))) < 0 ||
	    (r = get_u64(&w, o, "size_bytes", NULL, &d->size)) < 0 ||
	    (r = get_u64(&w, o, "epoch", NULL, &d->epoch)) < 0 ||
	    (r = get_u64(&w, o, "verified_epoch", &d->has_verified_epoch, &d->verified_epoch)) < 0 ||
	    (r = get_u64(&w, o, "bytes_copied", NULL, &d->bytes_copied)) < 0 ||
	    (r = get_u64(&w, o, "bytes_total", NULL, &d->bytes_total)) < 0 ||
	    (r = get_u64(&w, o, "backlog_bytes", NULL, &d->backlog)) < 0 ||
	    (r = get_num(&w, o, "lag_seconds", &d->has_lag, &d->lag_s)) < 0 ||
	    (r = get_num(&w, o, "throughput_bps", NULL, &d->throughput_bps)) < 0 ||
	    (r = get_u64(&w, o, "wire_bytes_total", NULL, &d->wire_total)) < 0 ||
	    (r = get_u64(&w, o, "plain_bytes_total", NULL, &d->plain_total)) < 0 ||
	    (r = get_num(&w, o, "compression_ratio", &d->has_compression_ratio,
			    &d->compression_ratio)) < 0 ||
	    (r = get_num(&w, o, "churn_bps", NULL, &d->churn_bps)) < 0 ||
	    (r = get_text(&w, o, "tracker", K_WORD, d->tracker, sizeof(d->tracker))) < 0 ||
	    (r = get_bool(&w, o, "cut_over", NULL, &d->cut_over)) < 0 ||
	    (r = get_text(&w, o, "last_error", K_TEXT, d->last_error, sizeof(d->last_error))) < 0 ||
	    (r = get_text(&w, o, "last_fault", K_TEXT, d->last_fault, sizeof(d->last_fault))) < 0 ||
	    (r = parse_forecast(&w, o, &d->fc)) < 0)
		return r;
	if (d->bytes_copied > d->bytes_total)
		return bad(&w, "bytes_copied", "exceeds bytes_total");
	return 0;
}

static int parse_agent(const struct where *rw, struct json_object *o, size_t i, struct sv_agent *a)
{
	struct json_object *arr, *d;
	struct where w = *rw;
	int r;

	snprintf(w.path, sizeof(w.path), "agents[%zu]", i);
	if ((r = get_text(&w, o, "name", K_NAME, a->name, sizeof(a->name))) < 0 ||
	    (r = get_bool(&w, o, "connected", NULL, &a->connected)) < 0 ||
	    (r = get_text(&w, o, "peer", K_TEXT, a->peer, sizeof(a->peer))) < 0 ||
	    (r = get_bool(&w, o, "paused", NULL, &a->paused)) < 0 ||
	    (r = get_u64(&w, o, "rate_limit_bps", NULL, &a->rate_limit_bps)) < 0 ||
	    (r = get_bool(&w, o, "shared_bundle", NULL, &a->shared_bundle)) < 0 ||
	    (r = get_u64(&w, o, "streams_asked", NULL, &a->streams_asked)) < 0 ||
	    (r = get_u64(&w, o, "streams_granted", NULL, &a->streams_granted)) < 0 ||
	    (r = get_text(&w, o, "state", K_WORD, a->state, sizeof(a->state))) < 0 ||
	    (r = get_text(&w, o, "last_error", K_TEXT, a->last_error, sizeof(a->last_error))) < 0 ||
	    (r = array_member(&w, o, "disks", &arr, &a->ndisks)) < 0)
		return r;
	if (a->ndisks == 0)
		return 0;
	a->disks = calloc(a->ndisks, sizeof(*a->disks));
	if (!a->disks)
		return -ENOMEM;
	for (size_t k = 0; k < a->ndisks; k++) {
		r = object_at(&w, arr, "disks", k, &d);
		if (r == 0)
			r = parse_disk(&w, d, k, &a->disks[k]);
		if (r < 0)
			return r;
	}
	return 0;
}

int sv_parse(struct json_object *root, struct sv_status **ret_status, char *ret_err, size_t err_len)
{
	struct where w = { .err = ret_err, .err_len = err_len };
	struct json_object *rcv, *arr, *a;
	struct sv_status *st;
	int r = -ENOMEM;

	snprintf(ret_err, err_len, "out of memory");
	st = calloc(1, sizeof(*st));
	if (!st)
		goto cleanup;
	if (!json_object_is_type(root, json_type_object)) {
		r = bad(&w, "status", "is not an object");
		goto cleanup;
	}
	if (!json_object_object_get_ex(root, "receiver", &rcv) ||
	    !json_object_is_type(rcv, json_type_object)) {
		r = bad(&w, "receiver", "is missing or not an object");
		goto cleanup;
	}
	snprintf(w.path, sizeof(w.path), "receiver");
	r = get_text(&w, rcv, "version", K_TEXT, st->version, sizeof(st->version));
	if (r == 0)
		r = get_u64(&w, rcv, "uptime_seconds", NULL, &st->uptime_s);
	w.path[0] = '\0';
	if (r == 0)
		r = array_member(&w, root, "agents", &arr, &st->nagents);
	if (r < 0)
		goto cleanup;
	if (st->nagents) {
		r = -ENOMEM;
		st->agents = calloc(st->nagents, sizeof(*st->agents));
		if (!st->agents)
			goto cleanup;
	}
	for (size_t i = 0; i < st->nagents; i++) {
		r = object_at(&w, arr, "agents", i, &a);
		if (r == 0)
			r = parse_agent(&w, a, i, &st->agents[i]);
		if (r < 0)
			goto cleanup;
	}
	*ret_status = st;
	st = NULL;
	ret_err[0] = '\0';
	r = 0;
cleanup:
	sv_free(st);
	return r;
}

struct sv_status *sv_free(struct sv_status *st)
{
	if (!st)
		return NULL;
	for (size_t i = 0; st->agents && i < st->nagents; i++)
		free(st->agents[i].disks);
	free(st->agents);
	free(st);
	return NULL;
}

bool sv_all_synced(const struct sv_status *st, const char *agent)
{
	size_t n = 0;

	for (size_t i = 0; i < st->nagents; i++) {
		if (agent && strcmp(st->agents[i].name, agent) != 0)
			continue;
		for (size_t k = 0; k < st->agents[i].ndisks; k++, n++) {
			const char *s = st->agents[i].disks[k].state;

			/* verified: a finished copy whose agent has gone (--once). */
			if (strcmp(s, "in-sync") != 0 && strcmp(s, "cut-over") != 0 &&
			    strcmp(s, "verified") != 0)
				return false;
		}
	}
	return n > 0;
}

/* Three significant digits in binary units: "812 MiB", "47.3 MiB", "5.12 GiB". */
static char *fmt3(double v, const char *suffix, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	size_t u = 0;

	if (!isfinite(v) || v < 0)
		v = 0;
	while (v >= 999.5 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%.0f %s%s", v, units[u], suffix);
	else
		snprintf(buf, len, v < 9.995 ? "%.2f %s%s" : v < 99.95 ? "%.1f %s%s" : "%.0f %s%s", v,
			 units[u], suffix);
	return buf;
}

char *sv_fmt_size(double bytes, char *buf, size_t len)
{
	return fmt3(bytes, "", buf, len);
}

char *sv_fmt_rate(double bps, char *buf, size_t len)
{
	return fmt3(bps, "/s", buf, len);
}

char *sv_fmt_duration(double seconds, char *buf, size_t len)
{
	uint64_t s;

	if (!isfinite(seconds) || seconds < 0)
		seconds = 0;
	/* A year and more is "never" for an operator waiting on a copy. */
	if (seconds >= 365.0 * 86400) {
		snprintf(buf, len, ">1y");
		return buf;
	}
	s = (uint64_t)llround(seconds);
	if (s >= 86400)
		snprintf(buf, len, "%" PRIu64 "d%02" PRIu64 "h", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(buf, len, "%" PRIu64 ":%02" PRIu64 ":%02" PRIu64, s / 3600, s % 3600 / 60, s % 60);
	else
		snprintf(buf, len, "%" PRIu64 ":%02" PRIu64, s / 60, s % 60);
	return buf;
}

/* "~12 s" below two minutes, "~3:20" above: a forecast is not precise to the second. */
static char *fmt_about(double seconds, char *buf, size_t len)
{
	char d[32];

	if (seconds < 120)
		snprintf(buf, len, "~%.0f s", seconds);
	else
		snprintf(buf, len, "~%s", sv_fmt_duration(seconds, d, sizeof(d)));
	return buf;
}

bool sv_forecast_text(const struct sv_disk *d, char *buf, size_t len)
{
	const struct sv_forecast *fc = &d->fc;
	char a[32], b[32], drain[64], down[64];

	if (fc->warning[0]) {
		snprintf(buf, len, "WARNING: %s", fc->warning);
		return true;
	}
	if (!fc->has_converges) {
		snprintf(buf, len, "forecast: not known yet (no churn or throughput measured)");
		return false;
	}
	if (!fc->converges) {
		snprintf(buf, len, "WARNING: will not converge: churn %s exceeds throughput %s",
			 sv_fmt_rate(d->churn_bps, a, sizeof(a)),
			 sv_fmt_rate(d->throughput_bps, b, sizeof(b)));
		return true;
	}
	if (fc->has_drain && fc->drain_s > 0)
		snprintf(drain, sizeof(drain), "backlog drains in %s", fmt_about(fc->drain_s, a, sizeof(a)));
	else if (d->backlog == 0 || fc->has_drain)
		snprintf(drain, sizeof(drain), "no backlog");
	else
		snprintf(drain, sizeof(drain), "drain time not known yet");
	if (fc->has_downtime)
		snprintf(down, sizeof(down), "~%.1f s downtime", fc->downtime_s);
	else
		snprintf(down, sizeof(down), "downtime not known yet");
	snprintf(buf, len, "forecast: converges, %s; cutover now: %s", drain, down);
	return false;
}

static double copied_pct(const struct sv_disk *d)
{
	return d->bytes_total ? 100.0 * (double)d->bytes_copied / (double)d->bytes_total : 0;
}

/* The ETA of the current epoch's copy: only while bytes remain and data moves. */
static char *fmt_eta(const struct sv_disk *d, char *buf, size_t len)
{
	uint64_t left = d->bytes_total - d->bytes_copied;

	if (left == 0 || d->throughput_bps < 1 || d->cut_over)
		snprintf(buf, len, "-");
	else
		sv_fmt_duration((double)left / d->throughput_bps, buf, len);
	return buf;
}

static char *fmt_lag(const struct sv_disk *d, char *buf, size_t len)
{
	if (!d->has_lag)
		snprintf(buf, len, "-");
	else if (d->lag_s < 60)
		snprintf(buf, len, "%.1f s", d->lag_s);
	else
		sv_fmt_duration(d->lag_s, buf, len);
	return buf;
}

static void print_agent_line(FILE *f, const struct sv_agent *a, bool color)
{
	char rate[32];

	fprintf(f, "  agent %s: %s%s%s", a->name, a->connected ? "connected" : "not connected",
		a->connected && a->peer[0] ? " from " : "", a->connected ? a->peer : "");
	if (a->paused)
		fprintf(f, ", %spaused%s", color ? COLOR_WARN : "", color ? COLOR_OFF : "");
	if (a->rate_limit_bps)
		fprintf(f, ", rate limit %s", sv_fmt_rate((double)a->rate_limit_bps, rate, sizeof(rate)));
	if (a->shared_bundle)
		fprintf(f, ", with the shared agent bundle");
	/* Fewer than asked: the receiver's are held by other sessions, and this agent's
	 * extents go as frames of their own, larger on the wire. */
	if (a->streams_granted < a->streams_asked)
		fprintf(f, ", %" PRIu64 " of %" PRIu64 " compression streams granted",
			a->streams_granted, a->streams_asked);
	fprintf(f, "\n");
	if (a->last_error[0])
		fprintf(f, "  last error: %s\n", a->last_error);
}

void sv_print_table(FILE *f, const struct sv_status *st, const char *url, bool color)
{
	int aw = 5, dw = 4; /* at least as wide as "AGENT" and "DISK" */
	char up[32];

	for (size_t i = 0; i < st->nagents; i++) {
		aw = MAX(aw, (int)strlen(st->agents[i].name));
		for (size_t k = 0; k < st->agents[i].ndisks; k++)
			dw = MAX(dw, (int)strlen(st->agents[i].disks[k].id));
	}
	fprintf(f, "tern-receiver %s at %s, up %s\n", st->version, url,
		sv_fmt_duration((double)st->uptime_s, up, sizeof(up)));
	if (st->nagents == 0) {
		fprintf(f, "no agents yet\n");
		return;
	}
	fprintf(f, "%-*s %-*s %-12s %-24s %11s %8s %10s %7s %s\n", aw, "AGENT", dw, "DISK", "STATE",
		"COPIED", "RATE", "ETA", "BACKLOG", "LAG", "TRACKER");
	for (size_t i = 0; i < st->nagents; i++) {
		const struct sv_agent *a = &st->agents[i];

		if (a->ndisks == 0)
			fprintf(f, "%-*s %-*s %-12s %-24s %11s %8s %10s %7s %s\n", aw, a->name, dw, "-",
				a->state, "-", "-", "-", "-", "-", "-");
		for (size_t k = 0; k < a->ndisks; k++) {
			const struct sv_disk *d = &a->disks[k];
			char copied[64], c1[16], c2[16], rate[32], eta[32], backlog[32], lag[32], fc[600];
			bool warn;

			snprintf(copied, sizeof(copied), "%.1f%% %s/%s", copied_pct(d),
				 sv_fmt_size((double)d->bytes_copied, c1, sizeof(c1)),
				 sv_fmt_size((double)d->bytes_total, c2, sizeof(c2)));
			fprintf(f, "%-*s %-*s %-12s %-24s %11s %8s %10s %7s %s\n", aw, a->name, dw, d->id,
				d->state, copied, sv_fmt_rate(d->throughput_bps, rate, sizeof(rate)),
				fmt_eta(d, eta, sizeof(eta)),
				sv_fmt_size((double)d->backlog, backlog, sizeof(backlog)),
				fmt_lag(d, lag, sizeof(lag)), d->tracker);
			/* A cut-over disk has nothing left to forecast. */
			if (!d->cut_over) {
				warn = sv_forecast_text(d, fc, sizeof(fc));
				fprintf(f, "  %s%s%s\n", warn && color ? COLOR_WARN : "", fc,
					warn && color ? COLOR_OFF : "");
			}
			if (d->last_fault[0])
				fprintf(f, "  last fault: %s\n", d->last_fault);
			if (d->last_error[0])
				fprintf(f, "  last error: %s\n", d->last_error);
		}
		print_agent_line(f, a, color);
	}
}

static void emitf(sv_emit_fn emit, void *ctx, bool warning, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void emitf(sv_emit_fn emit, void *ctx, bool warning, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	emit(ctx, line, warning);
}

void sv_watch_lines(const struct sv_status *st, const char *url, unsigned bar_width,
		    sv_emit_fn emit, void *ctx)
{
	char now[16], up[32];
	time_t t = time(NULL);
	struct tm tm;
	int nw = 4;

	localtime_r(&t, &tm);
	strftime(now, sizeof(now), "%H:%M:%S", &tm);
	for (size_t i = 0; i < st->nagents; i++)
		for (size_t k = 0; k < st->agents[i].ndisks; k++)
			nw = MAX(nw, (int)(strlen(st->agents[i].name) + 1 + strlen(st->agents[i].disks[k].id)));
	if (bar_width)
		emitf(emit, ctx, false, "tern-receiver %s at %s, up %s, at %s", st->version, url,
		      sv_fmt_duration((double)st->uptime_s, up, sizeof(up)), now);
	if (st->nagents == 0)
		emitf(emit, ctx, false, "%s%sno agents yet", bar_width ? "" : now, bar_width ? "" : " ");
	for (size_t i = 0; i < st->nagents; i++) {
		const struct sv_agent *a = &st->agents[i];
		char who[2 * NAME_MAX_LEN + 2], flags[64];

		snprintf(flags, sizeof(flags), "%s%s", a->paused ? " (paused)" : "",
			 a->connected ? "" : " (not connected)");
		if (a->ndisks == 0)
			emitf(emit, ctx, false, "%s%s%-*s %-12s%s", bar_width ? "" : now,
			      bar_width ? "" : " ", nw, a->name, a->state, flags);
		for (size_t k = 0; k < a->ndisks; k++) {
			const struct sv_disk *d = &a->disks[k];
			char bar[256] = "", rate[32], eta[32], backlog[32], lag[32], c1[16], c2[16],
			     fc[600];
			double pct = copied_pct(d);

			snprintf(who, sizeof(who), "%s/%s", a->name, d->id);
			if (bar_width) {
				unsigned w = MIN(bar_width, (unsigned)sizeof(bar) - 4);
				unsigned full = (unsigned)((double)w * pct / 100.0);

				bar[0] = '[';
				for (unsigned j = 0; j < w; j++)
					bar[1 + j] = j < full ? '#' : '.';
				bar[1 + w] = ']';
				bar[2 + w] = ' ';
				bar[3 + w] = '\0';
				emitf(emit, ctx, false, "%-*s %-12s %s%5.1f%%  %10s  ETA %-7s  backlog %s  lag %s%s",
				      nw, who, d->state, bar, pct,
				      sv_fmt_rate(d->throughput_bps, rate, sizeof(rate)),
				      fmt_eta(d, eta, sizeof(eta)),
				      sv_fmt_size((double)d->backlog, backlog, sizeof(backlog)),
				      fmt_lag(d, lag, sizeof(lag)), flags);
			} else {
				emitf(emit, ctx, false,
				      "%s %s %s %.1f%% %s/%s %s ETA %s backlog %s lag %s%s", now, who,
				      d->state, pct, sv_fmt_size((double)d->bytes_copied, c1, sizeof(c1)),
				      sv_fmt_size((double)d->bytes_total, c2, sizeof(c2)),
				      sv_fmt_rate(d->throughput_bps, rate, sizeof(rate)),
				      fmt_eta(d, eta, sizeof(eta)),
				      sv_fmt_size((double)d->backlog, backlog, sizeof(backlog)),
				      fmt_lag(d, lag, sizeof(lag)), flags);
			}
			/* Only warnings in the live view: the forecast line is in `status`. */
			if (!d->cut_over && sv_forecast_text(d, fc, sizeof(fc)))
				emitf(emit, ctx, true, "%s%s%s  %s", bar_width ? "" : now,
				      bar_width ? "" : " ", bar_width ? "" : who, fc);
		}
	}
}

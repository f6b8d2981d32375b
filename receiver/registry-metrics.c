// SPDX-License-Identifier: GPL-2.0-only
/* The registry's figures in Prometheus text format, made from a snapshot alone (so it
 * needs neither the registry's lock nor its types); see registry.h, reg_metrics. */
#include "receiver/registry.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void bprintf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void bprintf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		{
			size_t cap = (b->cap + (size_t)n + 1) * 2;
			char *p = realloc(b->p, cap);

			if (!p) {
				b->oom = true;
				return;
			}
			b->p = p;
			b->cap = cap;
		}
	}
}

/* Names are validated at the protocol ([A-Za-z0-9._-]), so label values need no escaping;
 * quote and backslash are escaped anyway, should that rule ever widen. */
static void label(struct buf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '"' || *v == '\\')
			bprintf(b, "\\%c", *v);
		else if (*v == '\n')
			bprintf(b, "\\n");
		else
			bprintf(b, "%c", *v);
	}
}

struct metric {
	const char *name, *type, *help;
	const char *key;   /* the agent's or disk's JSON field */
	const char *sub;   /* forecast sub-field */
};

static const struct metric agent_metrics[] = {
	{ "tern_agent_connected", "gauge", "1 while the agent has a session.", "connected", NULL },
	{ "tern_agent_paused", "gauge", "1 while the operator has paused the agent.", "paused", NULL },
	{ "tern_agent_shared_bundle", "gauge", "1 when the agent's last session used the shared agent bundle.",
	  "shared_bundle", NULL },
	{ "tern_agent_rate_limit_bytes_per_second", "gauge",
	  "Bandwidth limit set by the operator (0: none).", "rate_limit_bps", NULL },
};

static const struct metric disk_metrics[] = {
	{ "tern_disk_size_bytes", "gauge", "Size of the source disk.", "size_bytes", NULL },
	{ "tern_disk_epoch", "gauge", "Epoch expected or being received.", "epoch", NULL },
	{ "tern_disk_verified_epoch", "gauge", "Last epoch durable and verified.", "verified_epoch", NULL },
	{ "tern_disk_bytes_copied", "gauge", "Source bytes of the current epoch covered so far.", "bytes_copied", NULL },
	{ "tern_disk_bytes_total", "gauge", "Source bytes the current epoch covers.", "bytes_total", NULL },
	{ "tern_disk_backlog_bytes", "gauge", "Changed bytes not yet on the target (estimate).", "backlog_bytes", NULL },
	{ "tern_disk_lag_seconds", "gauge", "Age of the source state the target holds.", "lag_seconds", NULL },
	{ "tern_disk_throughput_bytes_per_second", "gauge", "Replication throughput.", "throughput_bps", NULL },
	{ "tern_disk_churn_bytes_per_second", "gauge", "Rate at which the source changes.", "churn_bps", NULL },
	{ "tern_disk_wire_bytes_total", "counter", "Frame bytes received for the disk.", "wire_bytes_total", NULL },
	{ "tern_disk_plain_bytes_total", "counter", "Source bytes those frames cover.", "plain_bytes_total", NULL },
	{ "tern_disk_compression_ratio", "gauge", "Plain to compressed bytes of data sent.", "compression_ratio", NULL },
	{ "tern_disk_forecast_converges", "gauge", "1 when the backlog drains, 0 when it grows.", "forecast", "converges" },
	{ "tern_disk_forecast_drain_seconds", "gauge", "Expected time to drain the backlog.", "forecast", "drain_seconds" },
	{ "tern_disk_forecast_cutover_downtime_seconds", "gauge", "Expected downtime of a cutover now.", "forecast", "cutover_downtime_seconds" },
};

static const char *const states[] = { "copying", "in-sync", "lagging", "reconciling",
				      "cutting-over", "cut-over", "paused", "verified",
				      "disconnected", "error" };

/* A JSON value as a sample value; false when null (the sample is then left out, which
 * Prometheus reads as "no data"). */
static bool sample_value(json_object *v, char *out, size_t len)
{
	if (!v)
		return false;
	if (json_object_is_type(v, json_type_boolean))
		snprintf(out, len, "%d", json_object_get_boolean(v) ? 1 : 0);
	else if (json_object_is_type(v, json_type_int))
		snprintf(out, len, "%" PRId64, json_object_get_int64(v));
	else if (json_object_is_type(v, json_type_double))
		snprintf(out, len, "%.6g", json_object_get_double(v));
	else
		return false;
	return true;
}

static json_object *field(json_object *o, const char *key)
{
	json_object *v = NULL;

	return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static const char *str_field(json_object *o, const char *key)
{
	json_object *v = field(o, key);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
}

char *reg_metrics(json_object *snap)
{
	struct buf b = { 0 };
	json_object *agents = field(snap, "agents"), *rcv = field(snap, "receiver");
	size_t na = agents && json_object_is_type(agents, json_type_array) ?
		    json_object_array_length(agents) : 0;
	char val[64];

	bprintf(&b, "# HELP tern_receiver_uptime_seconds Seconds since the receiver started.\n"
		"# TYPE tern_receiver_uptime_seconds gauge\n");
	if (sample_value(field(rcv, "uptime_seconds"), val, sizeof(val)))
		bprintf(&b, "tern_receiver_uptime_seconds %s\n", val);
	for (size_t m = 0; m < ARRAY_SIZE(agent_metrics); m++) {
		const struct metric *mt = &agent_metrics[m];

		bprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", mt->name, mt->help, mt->name, mt->type);
		for (size_t i = 0; i < na; i++) {
			json_object *a = json_object_array_get_idx(agents, i);

			if (!sample_value(field(a, mt->key), val, sizeof(val)))
				continue;
			bprintf(&b, "%s{agent=\"", mt->name);
			label(&b, str_field(a, "name"));
			bprintf(&b, "\"} %s\n", val);
		}
	}
	bprintf(&b, "# HELP tern_disk_state 1 for the state the disk is in.\n"
		"# TYPE tern_disk_state gauge\n");
	for (size_t i = 0; i < na; i++) {
		json_object *a = json_object_array_get_idx(agents, i), *disks = field(a, "disks");

		for (size_t k = 0; disks && k < json_object_array_length(disks); k++) {
			json_object *d = json_object_array_get_idx(disks, k);

			for (size_t s = 0; s < ARRAY_SIZE(states); s++) {
				bprintf(&b, "tern_disk_state{agent=\"");
				label(&b, str_field(a, "name"));
				bprintf(&b, "\",disk=\"");
				label(&b, str_field(d, "id"));
				bprintf(&b, "\",state=\"%s\"} %d\n", states[s],
					strcmp(str_field(d, "state"), states[s]) == 0);
			}
		}
	}
	for (size_t m = 0; m < ARRAY_SIZE(disk_metrics); m++) {
		const struct metric *mt = &disk_metrics[m];

		bprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", mt->name, mt->help, mt->name, mt->type);
		for (size_t i = 0; i < na; i++) {
			json_object *a = json_object_array_get_idx(agents, i), *disks = field(a, "disks");

			for (size_t k = 0; disks && k < json_object_array_length(disks); k++) {
				json_object *d = json_object_array_get_idx(disks, k);
				json_object *v = field(d, mt->key);

				if (mt->sub)
					v = v ? field(v, mt->sub) : NULL;
				if (!sample_value(v, val, sizeof(val)))
					continue;
				bprintf(&b, "%s{agent=\"", mt->name);
				label(&b, str_field(a, "name"));
				bprintf(&b, "\",disk=\"");
				label(&b, str_field(d, "id"));
				bprintf(&b, "\"} %s\n", val);
			}
		}
	}
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

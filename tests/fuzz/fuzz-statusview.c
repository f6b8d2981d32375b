// SPDX-License-Identifier: GPL-2.0-only
/* libFuzzer target for ternctl's status view: the body of GET /v1/status, parsed with
 * json-c as ternctl parses it (strict, bounded depth, the input's length, no NUL needed),
 * then checked by sv_parse. What it accepts must hold to the contract's bounds and render
 * (table, live view, forecasts) without a byte a terminal would act on. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "ternctl/statusview.h"

#include "fuzz-driver.h"

#define JSON_DEPTH 32 /* ternctl's parse_object */
#define URL "https://receiver.example:7444"

static void require(bool ok)
{
	if (!ok)
		abort();
}

/* NUL-terminated within cap, printable ASCII; with escapes, only ours (the colour). */
static bool text_ok(const char *s, size_t cap, bool escapes)
{
	size_t n = strnlen(s, cap);

	if (n == cap)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (escapes && s[i] == '\033' &&
		    (strncmp(s + i, "\033[1;31m", 7) == 0 || strncmp(s + i, "\033[0m", 4) == 0))
			continue;
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	}
	return true;
}

static bool word_ok(const char *s, size_t cap)
{
	size_t n = strnlen(s, cap);

	return n > 0 && n < cap && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

static bool num_ok(double v)
{
	return isfinite(v) && v >= 0;
}

static void check_disk(const struct sv_disk *d)
{
	char buf[600], tiny[8];

	require(name_is_valid(d->id, strnlen(d->id, sizeof(d->id))) &&
		strnlen(d->id, sizeof(d->id)) < sizeof(d->id));
	require(word_ok(d->state, sizeof(d->state)) && word_ok(d->tracker, sizeof(d->tracker)));
	require(d->bytes_copied <= d->bytes_total);
	require(d->size <= INT64_MAX && d->epoch <= INT64_MAX && d->verified_epoch <= INT64_MAX);
	require(num_ok(d->lag_s) && num_ok(d->throughput_bps) && num_ok(d->compression_ratio) &&
		num_ok(d->churn_bps) && num_ok(d->fc.drain_s) && num_ok(d->fc.downtime_s));
	require(d->has_lag || d->lag_s == 0);
	require(text_ok(d->last_error, sizeof(d->last_error), false));
	require(text_ok(d->last_fault, sizeof(d->last_fault), false));
	require(text_ok(d->fc.warning, sizeof(d->fc.warning), false));
	sv_forecast_text(d, buf, sizeof(buf));
	require(text_ok(buf, sizeof(buf), false));
	sv_forecast_text(d, tiny, sizeof(tiny));
	require(strnlen(tiny, sizeof(tiny)) < sizeof(tiny));
}

static void check_status(const struct sv_status *st)
{
	require(text_ok(st->version, sizeof(st->version), false));
	require(st->uptime_s <= INT64_MAX);
	for (size_t i = 0; i < st->nagents; i++) {
		const struct sv_agent *a = &st->agents[i];

		require(strnlen(a->name, sizeof(a->name)) < sizeof(a->name) &&
			name_is_valid(a->name, strlen(a->name)));
		require(word_ok(a->state, sizeof(a->state)));
		require(text_ok(a->peer, sizeof(a->peer), false));
		require(text_ok(a->last_error, sizeof(a->last_error), false));
		require(a->ndisks == 0 || a->disks != NULL);
		for (size_t k = 0; k < a->ndisks; k++)
			check_disk(&a->disks[k]);
	}
}

static void emit(void *ctx, const char *text, bool warning)
{
	unsigned *lines = ctx;

	require(text_ok(text, 1024, false) && !strchr(text, '\n'));
	(*lines)++;
}

/* Renders into a temporary file to see what a terminal would get. */
static void check_table(const struct sv_status *st, bool color)
{
	FILE *f = tmpfile();
	char line[4096];

	require(f != NULL);
	sv_print_table(f, st, URL, color);
	rewind(f);
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		require(text_ok(line, sizeof(line), color));
	}
	fclose(f);
}

static void render(const struct sv_status *st)
{
	static FILE *null;
	static unsigned round;
	unsigned lines = 0;
	bool synced = sv_all_synced(st, NULL), some = false, all = true;
	const char *first = st->nagents ? st->agents[0].name : NULL;
	bool some1 = false, all1 = true;

	if (!null)
		null = fopen("/dev/null", "we");
	require(null != NULL);
	for (size_t i = 0; i < st->nagents; i++)
		for (size_t k = 0; k < st->agents[i].ndisks; k++) {
			const char *s = st->agents[i].disks[k].state;

			bool done = strcmp(s, "in-sync") == 0 || strcmp(s, "cut-over") == 0 ||
				    strcmp(s, "verified") == 0;

			some = true;
			all = all && done;
			/* Agent names may repeat in hostile input: every entry of that name counts. */
			if (strcmp(st->agents[i].name, first) == 0) {
				some1 = true;
				all1 = all1 && done;
			}
		}
	require(synced == (some && all));
	require(!first || sv_all_synced(st, first) == (some1 && all1));
	sv_print_table(null, st, URL, false);
	sv_print_table(null, st, URL, true);
	/* Reading the table back costs a file per input: now and then is enough. */
	if (round++ % 16 == 0)
		check_table(st, round % 32 == 1);
	sv_watch_lines(st, URL, 0, emit, &lines);
	sv_watch_lines(st, URL, 40, emit, &lines);
	sv_watch_lines(st, URL, 100000, emit, &lines);
	require(lines >= 3);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_tokener *tok;
	struct json_object *root;
	static struct sv_status untouched; /* where st points until sv_parse succeeds */
	struct sv_status *st = &untouched;
	char err[512];
	int r;

	if (size > INT32_MAX)
		return 0;
	tok = json_tokener_new_ex(JSON_DEPTH);
	require(tok != NULL);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	root = json_tokener_parse_ex(tok, (const char *)data, (int)size);
	if (json_tokener_get_error(tok) != json_tokener_success) {
		json_tokener_free(tok);
		json_object_put(root);
		return 0;
	}
	json_tokener_free(tok);
	memset(err, 'x', sizeof(err));
	r = sv_parse(root, &st, err, sizeof(err));
	require(r == 0 || r == -EBADMSG || r == -ENOMEM);
	require(strnlen(err, sizeof(err)) < sizeof(err) && !strchr(err, '\n'));
	if (r < 0) {
		require(st == &untouched && err[0]);
	} else {
		require(st != NULL && err[0] == '\0');
		check_status(st);
		render(st);
		require(sv_free(st) == NULL);
	}
	json_object_put(root);
	return 0;
}

/* Seeds: answers as the receiver's registry writes them (reg_snapshot), in the states an
 * operator sees, and a few the contract allows but it never writes. */
static const char *const answers[] = {
	/* No agents yet. */
	"{\"receiver\":{\"version\":\"0.1.0\",\"uptime_seconds\":3},\"agents\":[]}",
	/* The contract's example: one disk copying, one lagging that will not converge. */
	"{\"receiver\":{\"version\":\"0.1.0\",\"uptime_seconds\":12},"
	"\"agents\":[{\"name\":\"web1\",\"connected\":true,\"peer\":\"127.0.0.1:5123\","
	"\"paused\":false,\"rate_limit_bps\":0,\"shared_bundle\":false,\"streams_asked\":1,\"streams_granted\":1,\"state\":\"copying\",\"last_error\":\"\","
	"\"disks\":[{\"id\":\"root\",\"state\":\"copying\",\"size_bytes\":1073741824,\"epoch\":0,"
	"\"verified_epoch\":null,\"bytes_copied\":536870912,\"bytes_total\":1073741824,"
	"\"backlog_bytes\":0,\"lag_seconds\":null,\"throughput_bps\":123456789.0,"
	"\"wire_bytes_total\":12345,\"plain_bytes_total\":67890,\"compression_ratio\":3.2,"
	"\"churn_bps\":0.0,\"tracker\":\"ebpf\",\"cut_over\":false,\"last_error\":\"\","
	"\"last_fault\":\"\",\"forecast\":{\"converges\":true,\"drain_seconds\":null,"
	"\"cutover_downtime_seconds\":0.4,\"warning\":\"\"}},"
	"{\"id\":\"data\",\"state\":\"lagging\",\"size_bytes\":2048,\"epoch\":7,"
	"\"verified_epoch\":6,\"bytes_copied\":0,\"bytes_total\":0,\"backlog_bytes\":1024,"
	"\"lag_seconds\":75.5,\"throughput_bps\":1000,\"wire_bytes_total\":1,"
	"\"plain_bytes_total\":1,\"compression_ratio\":null,\"churn_bps\":5000,"
	"\"tracker\":\"scan\",\"cut_over\":false,\"last_error\":\"x\",\"last_fault\":\"y\","
	"\"forecast\":{\"converges\":false,\"drain_seconds\":null,"
	"\"cutover_downtime_seconds\":null,\"warning\":\"\"}}]}]}",
	/* Two agents: one in sync and paused with a rate limit, one gone with no disks. */
	"{ \"receiver\": { \"version\": \"0.2.0-rc1\", \"uptime_seconds\": 864000 }, "
	"\"agents\": [ { \"name\": \"db-2.example:primary\", \"connected\": true, "
	"\"peer\": \"[2001:db8::7]:40512\", \"paused\": true, \"rate_limit_bps\": 52428800, \"shared_bundle\": false, \"streams_asked\": 1, \"streams_granted\": 1, "
	"\"state\": \"paused\", \"last_error\": \"\", \"disks\": [ { \"id\": \"vdb\", "
	"\"state\": \"in-sync\", \"size_bytes\": 9223372036854775807, \"epoch\": 4021, "
	"\"verified_epoch\": 4020, \"bytes_copied\": 4194304, \"bytes_total\": 4194304, "
	"\"backlog_bytes\": 65536, \"lag_seconds\": 1.25, \"throughput_bps\": 2.5e8, "
	"\"wire_bytes_total\": 9223372036854775807, \"plain_bytes_total\": 1, "
	"\"compression_ratio\": 0.5, \"churn_bps\": 1e6, \"tracker\": \"dm\", "
	"\"cut_over\": false, \"last_error\": \"\", \"last_fault\": "
	"\"2024-05-01T12:00:00Z: the agent's connection was lost without BYE\", "
	"\"forecast\": { \"converges\": true, \"drain_seconds\": 130.5, "
	"\"cutover_downtime_seconds\": 0.1, \"warning\": \"\" } } ] }, "
	"{ \"name\": \"old\", \"connected\": false, \"peer\": \"\", \"paused\": false, "
	"\"rate_limit_bps\": 0, \"shared_bundle\": false, \"streams_asked\": 1, \"streams_granted\": 1, \"state\": \"disconnected\", "
	"\"last_error\": \"TLS handshake failed: certificate verify failed\", \"disks\": [] } ] }",
	/* Cut over, with a warning and text a terminal would act on. */
	"{\"receiver\":{\"version\":\"0.1.0\",\"uptime_seconds\":0},\"agents\":[{\"name\":\"a\","
	"\"connected\":false,\"peer\":\"\",\"paused\":false,\"rate_limit_bps\":1,\"shared_bundle\":false,\"streams_asked\":1,\"streams_granted\":1,"
	"\"state\":\"cut-over\",\"last_error\":\"\\u001b[2J\\r\\nFAKE\",\"disks\":[{\"id\":\"d\","
	"\"state\":\"cut-over\",\"size_bytes\":1,\"epoch\":1,\"verified_epoch\":0,"
	"\"bytes_copied\":1,\"bytes_total\":1,\"backlog_bytes\":0,\"lag_seconds\":31536000,"
	"\"throughput_bps\":0,\"wire_bytes_total\":0,\"plain_bytes_total\":0,"
	"\"compression_ratio\":null,\"churn_bps\":0,\"tracker\":\"none\",\"cut_over\":true,"
	"\"last_error\":\"\\u00e9\\u0000x\",\"last_fault\":\"\",\"forecast\":{\"converges\":null,"
	"\"drain_seconds\":0,\"cutover_downtime_seconds\":1e300,"
	"\"warning\":\"churn exceeds the link: will not converge\"}}]}]}",
	/* Reconciling after a restart: nothing measured yet. */
	"{\"receiver\":{\"version\":\"0.1.0\",\"uptime_seconds\":4000},\"agents\":[{\"name\":"
	"\"web1\",\"connected\":true,\"peer\":\"192.0.2.5:33000\",\"paused\":false,"
	"\"rate_limit_bps\":0,\"shared_bundle\":false,\"streams_asked\":1,\"streams_granted\":1,\"state\":\"reconciling\",\"last_error\":\"\",\"disks\":[{\"id\":"
	"\"root\",\"state\":\"reconciling\",\"size_bytes\":21474836480,\"epoch\":12,"
	"\"verified_epoch\":11,\"bytes_copied\":0,\"bytes_total\":21474836480,"
	"\"backlog_bytes\":0,\"lag_seconds\":59.96,\"throughput_bps\":0,"
	"\"wire_bytes_total\":0,\"plain_bytes_total\":0,\"compression_ratio\":null,"
	"\"churn_bps\":0,\"tracker\":\"kmod\",\"cut_over\":false,\"last_error\":\"\","
	"\"last_fault\":\"2024-05-01T12:00:00Z: the receiver restarted over epoch 12\","
	"\"forecast\":{\"converges\":null,\"drain_seconds\":null,"
	"\"cutover_downtime_seconds\":null,\"warning\":\"\"}}]}]}",
};

void tern_fuzz_seeds(void (*add)(const void *p, size_t n))
{
	for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++)
		add(answers[i], strlen(answers[i]));
}

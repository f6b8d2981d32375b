// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests for ternctl/statusview.c and apic_sanitize: the API contract's status answer
 * is accepted field for field, every missing, ill-typed or wrongly null field is refused
 * with its path named, and the table, forecast and live-view lines say what the figures
 * say. */
#include "ternctl/statusview.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "ternctl/apiclient.h"
#include "helpers.h"

/* The contract's example answer, with a second, non-converging disk. */
static const char *const example =
	"{\"receiver\":{\"version\":\"0.1.0\",\"uptime_seconds\":12},"
	"\"agents\":[{\"name\":\"web1\",\"connected\":true,\"peer\":\"127.0.0.1:5123\",\"paused\":false,"
	"\"rate_limit_bps\":0,\"shared_bundle\":true,\"streams_asked\":2,\"streams_granted\":2,\"state\":\"in-sync\",\"last_error\":\"\","
	"\"disks\":[{\"id\":\"root\",\"state\":\"copying\",\"size_bytes\":1073741824,\"epoch\":0,"
	"\"verified_epoch\":null,\"bytes_copied\":536870912,\"bytes_total\":1073741824,"
	"\"backlog_bytes\":0,\"lag_seconds\":null,\"throughput_bps\":123456789.0,"
	"\"wire_bytes_total\":12345,\"plain_bytes_total\":67890,\"compression_ratio\":3.2,"
	"\"churn_bps\":0.0,\"tracker\":\"ebpf\",\"cut_over\":false,\"last_error\":\"\",\"last_fault\":\"\","
	"\"forecast\":{\"converges\":true,\"drain_seconds\":null,\"cutover_downtime_seconds\":0.4,"
	"\"warning\":\"\"}},"
	"{\"id\":\"data\",\"state\":\"lagging\",\"size_bytes\":2048,\"epoch\":7,"
	"\"verified_epoch\":6,\"bytes_copied\":0,\"bytes_total\":0,"
	"\"backlog_bytes\":1024,\"lag_seconds\":75.5,\"throughput_bps\":1000,"
	"\"wire_bytes_total\":1,\"plain_bytes_total\":1,\"compression_ratio\":null,"
	"\"churn_bps\":5000,\"tracker\":\"scan\",\"cut_over\":false,\"last_error\":\"x\",\"last_fault\":\"y\","
	"\"forecast\":{\"converges\":false,\"drain_seconds\":null,\"cutover_downtime_seconds\":null,"
	"\"warning\":\"\"}}]}]}";

static struct json_object *load(void)
{
	struct json_object *o = json_tokener_parse(example);

	ck_assert_ptr_nonnull(o);
	return o;
}

static struct json_object *disk0(struct json_object *root)
{
	struct json_object *agents, *disks;

	json_object_object_get_ex(root, "agents", &agents);
	json_object_object_get_ex(json_object_array_get_idx(agents, 0), "disks", &disks);
	return json_object_array_get_idx(disks, 0);
}

/* Parses root, expecting -EBADMSG with `needle` in the message. */
static void expect_refused(struct json_object *root, const char *needle)
{
	struct sv_status *st = NULL;
	char err[512];
	int r = sv_parse(root, &st, err, sizeof(err));

	ck_assert_int_eq(r, -EBADMSG);
	ck_assert_ptr_null(st);
	ck_assert_msg(strstr(err, needle), "'%s' does not name '%s'", err, needle);
	ck_assert_ptr_null(strchr(err, '\n'));
}

START_TEST(test_sv_parse_accepts_the_contract_example)
{
	struct json_object *root = load();
	struct sv_status *st = NULL;
	const struct sv_disk *d;
	char err[512];

	ck_assert_int_eq(sv_parse(root, &st, err, sizeof(err)), 0);
	ck_assert_str_eq(st->version, "0.1.0");
	ck_assert_uint_eq(st->uptime_s, 12);
	ck_assert_uint_eq(st->nagents, 1);
	ck_assert_str_eq(st->agents[0].name, "web1");
	ck_assert(st->agents[0].connected && !st->agents[0].paused);
	ck_assert_str_eq(st->agents[0].peer, "127.0.0.1:5123");
	ck_assert_uint_eq(st->agents[0].ndisks, 2);
	d = &st->agents[0].disks[0];
	ck_assert_str_eq(d->id, "root");
	ck_assert_str_eq(d->state, "copying");
	ck_assert_uint_eq(d->bytes_copied, 536870912);
	ck_assert(!d->has_verified_epoch && !d->has_lag && d->has_compression_ratio);
	ck_assert(d->fc.has_converges && d->fc.converges && !d->fc.has_drain && d->fc.has_downtime);
	ck_assert_str_eq(d->tracker, "ebpf");
	d = &st->agents[0].disks[1];
	ck_assert(d->has_verified_epoch && d->verified_epoch == 6 && d->has_lag && !d->has_compression_ratio);
	ck_assert_str_eq(d->last_fault, "y");
	ck_assert(!sv_all_synced(st, NULL));
	ck_assert(!sv_all_synced(st, "web1"));
	/* A finished copy whose agent is gone counts as synced; an agent with no disk here
	 * does not, nor does a name with none. */
	snprintf(st->agents[0].disks[0].state, sizeof(st->agents[0].disks[0].state), "verified");
	snprintf(st->agents[0].disks[1].state, sizeof(st->agents[0].disks[1].state), "in-sync");
	ck_assert(sv_all_synced(st, NULL));
	ck_assert(sv_all_synced(st, "web1"));
	ck_assert(!sv_all_synced(st, "web2"));
	snprintf(st->agents[0].disks[1].state, sizeof(st->agents[0].disks[1].state), "disconnected");
	ck_assert(!sv_all_synced(st, "web1"));
	sv_free(st);
	json_object_put(root);
}
END_TEST

/* Every field of a disk is required: removing any one is refused, naming it. */
START_TEST(test_sv_parse_rejects_each_missing_disk_field)
{
	static const char *const keys[] = {
		"id", "state", "size_bytes", "epoch", "verified_epoch", "bytes_copied", "bytes_total",
		"backlog_bytes", "lag_seconds", "throughput_bps", "wire_bytes_total",
		"plain_bytes_total", "compression_ratio", "churn_bps", "tracker", "cut_over",
		"last_error", "last_fault", "forecast",
	};

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		struct json_object *root = load();
		char needle[80];

		json_object_object_del(disk0(root), keys[i]);
		snprintf(needle, sizeof(needle), "agents[0].disks[0].%s is missing", keys[i]);
		expect_refused(root, needle);
		json_object_put(root);
	}
}
END_TEST

START_TEST(test_sv_parse_rejects_ill_typed_fields)
{
	static const struct {
		const char *key, *value, *needle;
	} cases[] = {
		{ "bytes_copied", "-1", "bytes_copied is not an unsigned integer" },
		{ "bytes_copied", "1.5", "bytes_copied is not an unsigned integer" },
		{ "bytes_copied", "\"1\"", "bytes_copied is not an unsigned integer" },
		{ "bytes_copied", "null", "bytes_copied is null" },
		{ "bytes_copied", "2000000000", "bytes_copied exceeds bytes_total" },
		{ "throughput_bps", "-0.5", "throughput_bps is not a non-negative number" },
		{ "throughput_bps", "true", "throughput_bps is not a non-negative number" },
		{ "cut_over", "0", "cut_over is not a boolean" },
		{ "id", "\"../etc\"", "id is not a valid name" },
		{ "id", "\"\"", "id is not a valid name" },
		{ "state", "\"In Sync\"", "state is not a lower-case word" },
		{ "tracker", "7", "tracker is not a lower-case word" },
		{ "forecast", "[]", "forecast is not an object" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct json_object *root = load();

		json_object_object_add(disk0(root), cases[i].key, json_tokener_parse(cases[i].value));
		expect_refused(root, cases[i].needle);
		json_object_put(root);
	}
}
END_TEST

START_TEST(test_sv_parse_rejects_bad_shapes)
{
	static const struct {
		const char *text, *needle;
	} cases[] = {
		{ "{}", "receiver is missing" },
		{ "{\"receiver\":{\"version\":\"1\",\"uptime_seconds\":1}}", "agents is missing" },
		{ "{\"receiver\":{\"version\":\"1\",\"uptime_seconds\":1},\"agents\":{}}", "agents is not an array" },
		{ "{\"receiver\":{\"version\":\"1\",\"uptime_seconds\":1},\"agents\":[3]}", "agents[0] is not an object" },
		{ "{\"receiver\":{\"version\":1,\"uptime_seconds\":1},\"agents\":[]}", "receiver.version is not a string" },
		{ "{\"receiver\":{\"version\":\"1\",\"uptime_seconds\":1},\"agents\":[{\"name\":\"a\"}]}",
		  "agents[0].connected is missing" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct json_object *root = json_tokener_parse(cases[i].text);

		ck_assert_ptr_nonnull(root);
		expect_refused(root, cases[i].needle);
		json_object_put(root);
	}
}
END_TEST

/* Escape sequences in a text from the network never reach the terminal. */
START_TEST(test_sv_parse_sanitizes_texts)
{
	struct json_object *root = load();
	struct sv_status *st = NULL;
	char err[512];

	json_object_object_add(disk0(root), "last_error", json_object_new_string("bad\033[2Jdisk\n!"));
	ck_assert_int_eq(sv_parse(root, &st, err, sizeof(err)), 0);
	ck_assert_str_eq(st->agents[0].disks[0].last_error, "bad?[2Jdisk?!");
	sv_free(st);
	json_object_put(root);
}
END_TEST

START_TEST(test_apic_sanitize_keeps_newlines_when_asked)
{
	char buf[16];

	ck_assert_str_eq(apic_sanitize("a\nb\tc\x7f", true, buf, sizeof(buf)), "a\nb?c?");
	ck_assert_str_eq(apic_sanitize("a\nb", false, buf, sizeof(buf)), "a?b");
	ck_assert_str_eq(apic_sanitize("0123456789abcdefXYZ", false, buf, sizeof(buf)), "0123456789abcde");
	ck_assert_str_eq(apic_sanitize(NULL, false, buf, sizeof(buf)), "");
}
END_TEST

START_TEST(test_sv_formats)
{
	char b[32];

	ck_assert_str_eq(sv_fmt_size(0, b, sizeof(b)), "0 B");
	ck_assert_str_eq(sv_fmt_size(999, b, sizeof(b)), "999 B");
	ck_assert_str_eq(sv_fmt_size(1024, b, sizeof(b)), "1.00 KiB");
	ck_assert_str_eq(sv_fmt_size(812.0 * 1048576, b, sizeof(b)), "812 MiB");
	ck_assert_str_eq(sv_fmt_size(1073741824.0, b, sizeof(b)), "1.00 GiB");
	ck_assert_str_eq(sv_fmt_rate(47.3 * 1048576, b, sizeof(b)), "47.3 MiB/s");
	ck_assert_str_eq(sv_fmt_rate(-1, b, sizeof(b)), "0 B/s");
	ck_assert_str_eq(sv_fmt_duration(12, b, sizeof(b)), "0:12");
	ck_assert_str_eq(sv_fmt_duration(3725, b, sizeof(b)), "1:02:05");
	ck_assert_str_eq(sv_fmt_duration(90000, b, sizeof(b)), "1d01h");
	ck_assert_str_eq(sv_fmt_duration(1e12, b, sizeof(b)), ">1y");
}
END_TEST

START_TEST(test_sv_forecast_text)
{
	struct sv_disk d = { .backlog = 0, .throughput_bps = 1048576, .churn_bps = 2097152 };
	char b[600];

	d.fc = (struct sv_forecast){ .has_converges = true, .converges = true, .has_drain = true,
				     .drain_s = 12, .has_downtime = true, .downtime_s = 0.44 };
	d.backlog = 4096;
	ck_assert(!sv_forecast_text(&d, b, sizeof(b)));
	ck_assert_str_eq(b, "forecast: converges, backlog drains in ~12 s; cutover now: ~0.4 s downtime");
	d.fc.drain_s = 200;
	sv_forecast_text(&d, b, sizeof(b));
	ck_assert_str_eq(b, "forecast: converges, backlog drains in ~3:20; cutover now: ~0.4 s downtime");
	d.fc.has_drain = false;
	d.backlog = 0;
	sv_forecast_text(&d, b, sizeof(b));
	ck_assert_str_eq(b, "forecast: converges, no backlog; cutover now: ~0.4 s downtime");
	d.fc.converges = false;
	ck_assert(sv_forecast_text(&d, b, sizeof(b)));
	ck_assert_str_eq(b, "WARNING: will not converge: churn 2.00 MiB/s exceeds throughput 1.00 MiB/s");
	snprintf(d.fc.warning, sizeof(d.fc.warning), "the receiver's words");
	ck_assert(sv_forecast_text(&d, b, sizeof(b)));
	ck_assert_str_eq(b, "WARNING: the receiver's words");
	d.fc = (struct sv_forecast){ 0 };
	ck_assert(!sv_forecast_text(&d, b, sizeof(b)));
	ck_assert_ptr_nonnull(strstr(b, "not known yet"));
}
END_TEST

struct lines {
	char text[8][1024];
	bool warning[8];
	unsigned n;
};

static void collect(void *ctx, const char *text, bool warning)
{
	struct lines *l = ctx;

	ck_assert_uint_lt(l->n, 8);
	snprintf(l->text[l->n], sizeof(l->text[0]), "%s", text);
	l->warning[l->n++] = warning;
}

START_TEST(test_sv_watch_lines_bar_and_plain)
{
	struct json_object *root = load();
	struct sv_status *st = NULL;
	struct lines l = { 0 };
	char err[512];

	ck_assert_int_eq(sv_parse(root, &st, err, sizeof(err)), 0);
	sv_watch_lines(st, "http://x", 20, collect, &l);
	/* A header, a bar per disk, and the warning of the disk that does not converge. */
	ck_assert_uint_eq(l.n, 4);
	ck_assert_ptr_nonnull(strstr(l.text[0], "tern-receiver 0.1.0 at http://x"));
	ck_assert_ptr_nonnull(strstr(l.text[1], "web1/root copying"));
	ck_assert_ptr_nonnull(strstr(l.text[1], "[##########..........]  50.0%"));
	ck_assert_ptr_nonnull(strstr(l.text[1], "ETA 0:04"));
	ck_assert_ptr_nonnull(strstr(l.text[2], "web1/data lagging"));
	ck_assert(l.warning[3] && strstr(l.text[3], "WARNING: will not converge"));
	memset(&l, 0, sizeof(l));
	sv_watch_lines(st, "http://x", 0, collect, &l);
	ck_assert_uint_eq(l.n, 3);
	ck_assert_ptr_null(strchr(l.text[0], '['));
	ck_assert_ptr_nonnull(strstr(l.text[0], " web1/root copying 50.0% 512 MiB/1.00 GiB "));
	sv_free(st);
	json_object_put(root);
}
END_TEST

START_TEST(test_sv_print_table_rows)
{
	struct json_object *root = load();
	struct sv_status *st = NULL;
	char err[512], *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(sv_parse(root, &st, err, sizeof(err)), 0);
	sv_print_table(f, st, "http://x", false);
	fclose(f);
	ck_assert_ptr_nonnull(strstr(out, "\nAGENT DISK STATE "));
	ck_assert_ptr_nonnull(strstr(out, "\nweb1  root copying      50.0% 512 MiB/1.00 GiB "));
	ck_assert_ptr_nonnull(strstr(out, "\n  forecast: converges, no backlog; cutover now: ~0.4 s downtime\n"));
	ck_assert_ptr_nonnull(strstr(out, "\nweb1  data lagging "));
	ck_assert_ptr_nonnull(strstr(out, "\n  WARNING: will not converge: churn "));
	ck_assert_ptr_nonnull(strstr(out, "\n  last fault: y\n  last error: x\n"));
	ck_assert_ptr_nonnull(strstr(out, "\n  agent web1: connected from 127.0.0.1:5123, with the shared agent bundle\n"));
	ck_assert_ptr_null(strchr(out, '\033'));
	free(out);
	sv_free(st);
	json_object_put(root);
}
END_TEST

/* An agent granted fewer compression streams than it asked for is told apart; one
 * granted all it asked for is not. */
START_TEST(test_sv_print_streams_short)
{
	static const long cases[][2] = { { 2, 0 }, { 2, 2 } };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct json_object *root = load(), *agents, *a;
		struct sv_status *st = NULL;
		char err[512], *out = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&out, &len);

		ck_assert_ptr_nonnull(f);
		json_object_object_get_ex(root, "agents", &agents);
		a = json_object_array_get_idx(agents, 0);
		json_object_object_add(a, "streams_asked", json_object_new_int64(cases[i][0]));
		json_object_object_add(a, "streams_granted", json_object_new_int64(cases[i][1]));
		ck_assert_int_eq(sv_parse(root, &st, err, sizeof(err)), 0);
		sv_print_table(f, st, "http://x", false);
		fclose(f);
		if (i == 0)
			ck_assert_ptr_nonnull(strstr(out, ", with the shared agent bundle, 0 of 2 "
							  "compression streams granted\n"));
		else
			ck_assert_ptr_null(strstr(out, "compression streams"));
		free(out);
		sv_free(st);
		json_object_put(root);
	}
}
END_TEST

static Suite *statusview_suite(void)
{
	Suite *s = suite_create("statusview");
	TCase *parse = tcase_create("parse");
	TCase *render = tcase_create("render");

	tcase_add_test(parse, test_sv_parse_accepts_the_contract_example);
	tcase_add_test(parse, test_sv_parse_rejects_each_missing_disk_field);
	tcase_add_test(parse, test_sv_parse_rejects_ill_typed_fields);
	tcase_add_test(parse, test_sv_parse_rejects_bad_shapes);
	tcase_add_test(parse, test_sv_parse_sanitizes_texts);
	tcase_add_test(parse, test_apic_sanitize_keeps_newlines_when_asked);
	tcase_add_test(render, test_sv_formats);
	tcase_add_test(render, test_sv_forecast_text);
	tcase_add_test(render, test_sv_watch_lines_bar_and_plain);
	tcase_add_test(render, test_sv_print_table_rows);
	tcase_add_test(render, test_sv_print_streams_short);
	suite_add_tcase(s, parse);
	suite_add_tcase(s, render);
	return s;
}

Suite *(*const t_suites[])(void) = { statusview_suite, NULL };

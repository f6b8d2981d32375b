// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests for receiver/registry.c through its interface and its JSON snapshot: the
 * state of each disk and agent as sessions report events (copying, reconciling, in-sync,
 * lagging, paused, cutting over, cut over, verified, disconnected, error) and the most
 * pressing one as the agent's; the convergence forecast (whether the backlog drains, in
 * how long, what a cutover now would cost, a bandwidth limit capping throughput, unknown
 * without a tracker); the operator's wishes and expiry; and the Prometheus text. */
#include "receiver/registry.h"

#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/proto.h"
#include "helpers.h"

#define MB 1000000ull
#define GIB (1ull << 30)

static struct registry *reg;
static json_object *snap;

static void setup(void)
{
	reg = reg_new();
	ck_assert_ptr_nonnull(reg);
}

static void teardown(void)
{
	json_object_put(snap);
	snap = NULL;
	reg = reg_free(reg);
}

/* A fresh snapshot (the previous one freed). */
static void take(void)
{
	json_object_put(snap);
	snap = reg_snapshot(reg, 5);
	ck_assert_ptr_nonnull(snap);
}

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;

	ck_assert_msg(json_object_object_get_ex(o, key, &v), "no field %s", key);
	return v;
}

static json_object *agent(const char *name)
{
	json_object *agents = get(snap, "agents");

	for (size_t i = 0; i < json_object_array_length(agents); i++) {
		json_object *a = json_object_array_get_idx(agents, i);

		if (strcmp(json_object_get_string(get(a, "name")), name) == 0)
			return a;
	}
	return NULL;
}

static json_object *disk(const char *name, const char *id)
{
	json_object *a = agent(name), *disks;

	ck_assert_msg(a, "agent %s not listed", name);
	disks = get(a, "disks");
	for (size_t i = 0; i < json_object_array_length(disks); i++) {
		json_object *d = json_object_array_get_idx(disks, i);

		if (strcmp(json_object_get_string(get(d, "id")), id) == 0)
			return d;
	}
	ck_abort_msg("disk %s of %s not listed", id, name);
	return NULL;
}

static const char *disk_state(const char *name, const char *id)
{
	take();
	return json_object_get_string(get(disk(name, id), "state"));
}

static const char *agent_state(const char *name)
{
	take();
	return json_object_get_string(get(agent(name), "state"));
}

static json_object *forecast(const char *name, const char *id, const char *key)
{
	take();
	return get(get(disk(name, id), "forecast"), key);
}

/* A STATUS report of a disk between epochs, tracked by eBPF. */
static struct proto_status idle_status(uint64_t epoch, uint64_t backlog, uint64_t churn,
				       uint64_t throughput, uint64_t limit)
{
	return (struct proto_status){ .phase = PROTO_PHASE_TRACKING, .tracker = PROTO_TRACKER_EBPF,
				      .epoch = epoch, .backlog_bytes = backlog, .churn_bps = churn,
				      .throughput_bps = throughput, .rate_limit_bps = limit };
}

/* A disk of 10 GiB whose epoch 0 was verified, flushed in 300 ms. */
static struct reg_disk *verified_disk(struct reg_agent *a, const char *id)
{
	struct reg_disk *d = reg_disk_open(reg, a, 0, id, 10 * GIB, 0, -1, false);

	ck_assert_ptr_nonnull(d);
	reg_frame(reg, d, 1 << 20, 1 << 20, 1 << 19, (1 << 19) + 100);
	reg_epoch_end(reg, d, 0, true, 64, 300 * 1000000ull);
	return d;
}

/* The first copy: copying until an epoch is verified, reconciling while a full read
 * compares, a fault of the source is an error, and then, between epochs, in sync. */
START_TEST(test_registry_disk_states_along_a_copy)
{
	struct reg_agent *a = reg_connect(reg, "web1", "10.0.0.1:5000");
	struct reg_disk *d = reg_disk_open(reg, a, 0, "sda", 10 * GIB, 0, -1, false);
	struct proto_status st = idle_status(0, 0, 0, 0, 0);

	ck_assert_str_eq(disk_state("web1", "sda"), "copying");
	ck_assert_str_eq(agent_state("web1"), "copying");
	st.phase = PROTO_PHASE_COPYING;
	st.active = 1;
	st.bytes_total = 10 * GIB;
	st.bytes_done = GIB;
	reg_status(reg, d, &st);
	ck_assert_str_eq(disk_state("web1", "sda"), "copying");
	ck_assert_uint_eq(json_object_get_uint64(get(disk("web1", "sda"), "bytes_copied")), GIB);
	reg_epoch_end(reg, d, 0, true, 64, 1000000);
	st = idle_status(1, 0, 0, 100 * MB, 0);
	st.phase = PROTO_PHASE_RECONCILING;
	st.active = 1;
	reg_status(reg, d, &st);
	ck_assert_str_eq(disk_state("web1", "sda"), "reconciling");
	st.phase = PROTO_PHASE_FAULTED;
	st.active = 0;
	reg_status(reg, d, &st);
	ck_assert_str_eq(disk_state("web1", "sda"), "error");
	st = idle_status(1, 0, 0, 100 * MB, 0);
	reg_status(reg, d, &st);
	ck_assert_str_eq(disk_state("web1", "sda"), "in-sync");
	ck_assert_str_eq(agent_state("web1"), "in-sync");
	ck_assert_int_eq(json_object_get_int64(get(disk("web1", "sda"), "verified_epoch")), 0);
}
END_TEST

/* The operator's pause and a cutover show on every disk and the agent; once every disk
 * is cut over the agent is, and no further cutover of it can happen. */
START_TEST(test_registry_pause_and_cutover_states)
{
	struct reg_agent *a = reg_connect(reg, "db1", "10.0.0.2:5000");
	struct reg_disk *d1 = verified_disk(a, "sda"), *d2 = verified_disk(a, "sdb");
	struct proto_status st = idle_status(1, 0, 0, 100 * MB, 0);
	bool connected = false;

	reg_status(reg, d1, &st);
	reg_status(reg, d2, &st);
	ck_assert_int_eq(reg_set_paused(reg, "db1", true, &connected), 0);
	ck_assert(connected);
	ck_assert_str_eq(disk_state("db1", "sda"), "paused");
	ck_assert_str_eq(agent_state("db1"), "paused");
	ck_assert_int_eq(reg_set_paused(reg, "db1", false, &connected), 0);
	ck_assert_str_eq(disk_state("db1", "sda"), "in-sync");
	ck_assert_int_eq(reg_cutover_target(reg, "db1"), 0);
	reg_cutting_over(reg, a, true);
	ck_assert_str_eq(disk_state("db1", "sdb"), "cutting-over");
	ck_assert_str_eq(agent_state("db1"), "cutting-over");
	reg_cut_over(reg, d1);
	ck_assert_str_eq(disk_state("db1", "sda"), "cut-over");
	ck_assert_str_eq(agent_state("db1"), "cutting-over");
	ck_assert_int_eq(reg_cutover_target(reg, "db1"), 0);
	reg_cut_over(reg, d2);
	ck_assert_str_eq(agent_state("db1"), "cut-over");
	ck_assert_int_eq(reg_cutover_target(reg, "db1"), -EALREADY);
	ck_assert_int_eq(reg_cutover_target(reg, "nobody"), -ENOENT);
}
END_TEST

/* After the session ends: verified when the target holds exactly its last verified epoch,
 * disconnected when frames of a newer epoch reached it, error after a refusal or with the
 * disk's last error; the agent takes the most pressing state of its disks. */
START_TEST(test_registry_states_after_the_session)
{
	struct reg_agent *a = reg_connect(reg, "app1", "10.0.0.3:5000");
	struct reg_disk *d1 = verified_disk(a, "sda");
	struct reg_disk *d2 = verified_disk(a, "sdb");

	reg_disconnect(reg, a, "", false);
	ck_assert_str_eq(disk_state("app1", "sda"), "verified");
	ck_assert_str_eq(agent_state("app1"), "verified");
	ck_assert(!json_object_get_boolean(get(agent("app1"), "connected")));

	/* Back, one disk gets a frame of epoch 1, and the link is lost. */
	a = reg_connect(reg, "app1", "10.0.0.3:5001");
	d1 = reg_disk_open(reg, a, 0, "sda", 10 * GIB, 1, 0, false);
	d2 = reg_disk_open(reg, a, 1, "sdb", 10 * GIB, 1, 0, false);
	reg_frame(reg, d1, 4096, 4096, 100, 200);
	reg_disconnect(reg, a, "connection reset", false);
	ck_assert_str_eq(disk_state("app1", "sda"), "disconnected");
	ck_assert_str_eq(disk_state("app1", "sdb"), "verified");
	ck_assert_str_eq(agent_state("app1"), "disconnected");
	ck_assert_str_eq(json_object_get_string(get(agent("app1"), "last_error")), "connection reset");

	/* A refusal is an error; so is a disk's own last error. */
	a = reg_connect(reg, "app1", "10.0.0.3:5002");
	take();
	ck_assert_str_eq(json_object_get_string(get(agent("app1"), "last_error")), "");
	reg_disconnect(reg, a, "fingerprint mismatch", true);
	ck_assert_str_eq(agent_state("app1"), "error");
	ck_assert_str_eq(disk_state("app1", "sdb"), "error");
	a = reg_connect(reg, "app1", "10.0.0.3:5003");
	d2 = reg_disk_open(reg, a, 1, "sdb", 10 * GIB, 1, 0, false);
	reg_disk_error(reg, d2, "target is full");
	reg_disconnect(reg, a, "", false);
	ck_assert_str_eq(disk_state("app1", "sdb"), "error");
	ck_assert_str_eq(json_object_get_string(get(disk("app1", "sdb"), "last_error")),
			 "target is full");
}
END_TEST

/* A connected agent takes its worst disk's state: error over copying over lagging over
 * in-sync. */
START_TEST(test_registry_agent_takes_its_worst_disk)
{
	struct reg_agent *a = reg_connect(reg, "mix", "10.0.0.4:5000");
	struct reg_disk *d1 = verified_disk(a, "sda"), *d2 = verified_disk(a, "sdb");
	struct proto_status ok = idle_status(1, 0, 0, 100 * MB, 0);
	struct proto_status slow = idle_status(1, 7 * GIB, 0, 100 * MB, 0);
	struct proto_status fault = ok;

	fault.phase = PROTO_PHASE_FAULTED;
	reg_status(reg, d1, &ok);
	reg_status(reg, d2, &ok);
	ck_assert_str_eq(agent_state("mix"), "in-sync");
	reg_status(reg, d2, &slow);
	ck_assert_str_eq(disk_state("mix", "sdb"), "lagging");
	ck_assert_str_eq(agent_state("mix"), "lagging");
	reg_disk_open(reg, a, 2, "sdc", GIB, 0, -1, false);
	ck_assert_str_eq(agent_state("mix"), "copying");
	reg_status(reg, d1, &fault);
	ck_assert_str_eq(agent_state("mix"), "error");
}
END_TEST

static double num(json_object *v)
{
	ck_assert_msg(v && (json_object_is_type(v, json_type_double) ||
			    json_object_is_type(v, json_type_int)), "not a number");
	return json_object_get_double(v);
}

/* Churn under 90% of throughput converges: drain = backlog / (throughput - churn), a
 * cutover now costs backlog / throughput + the last flush + 0.2 s. The backlog the
 * snapshot shows already holds the churn since the report. */
START_TEST(test_registry_forecast_converges)
{
	struct reg_agent *a = reg_connect(reg, "f1", "10.0.0.5:5000");
	struct reg_disk *d = verified_disk(a, "sda");
	struct proto_status st = idle_status(1, 500 * MB, 10 * MB, 100 * MB, 0);
	double backlog;

	reg_status(reg, d, &st);
	take();
	backlog = num(get(disk("f1", "sda"), "backlog_bytes"));
	ck_assert(backlog >= 500.0 * MB && backlog < 500.0 * MB + 50.0 * MB);
	ck_assert(json_object_get_boolean(forecast("f1", "sda", "converges")));
	backlog = num(get(disk("f1", "sda"), "backlog_bytes"));
	ck_assert_double_eq_tol(num(get(get(disk("f1", "sda"), "forecast"), "drain_seconds")),
				backlog / (90.0 * MB), 1e-6);
	ck_assert_double_eq_tol(num(get(get(disk("f1", "sda"), "forecast"),
					"cutover_downtime_seconds")),
				backlog / (100.0 * MB) + 0.3 + 0.2, 1e-6);
	ck_assert_str_eq(json_object_get_string(get(get(disk("f1", "sda"), "forecast"), "warning")), "");
	ck_assert_str_eq(disk_state("f1", "sda"), "in-sync");
	ck_assert_str_eq(json_object_get_string(get(disk("f1", "sda"), "tracker")), "ebpf");
}
END_TEST

/* Churn at 90% of throughput or more does not converge: no drain time, a warning that
 * names both rates, and the disk lags. A backlog over a minute of sending lags too. */
START_TEST(test_registry_forecast_does_not_converge)
{
	struct reg_agent *a = reg_connect(reg, "f2", "10.0.0.6:5000");
	struct reg_disk *d = verified_disk(a, "sda"), *e = verified_disk(a, "sdb");
	struct proto_status st = idle_status(1, 100 * MB, 95 * MB, 100 * MB, 0);
	struct proto_status big = idle_status(1, 7000 * MB, 0, 100 * MB, 0);
	const char *w;

	reg_status(reg, d, &st);
	ck_assert(!json_object_get_boolean(forecast("f2", "sda", "converges")));
	ck_assert_ptr_null(forecast("f2", "sda", "drain_seconds"));
	ck_assert_ptr_nonnull(forecast("f2", "sda", "cutover_downtime_seconds"));
	w = json_object_get_string(forecast("f2", "sda", "warning"));
	ck_assert_msg(strstr(w, "will not converge: the source changes 90.60 MiB/s and "
			     "replication moves 95.37 MiB/s"), "warning: %s", w);
	ck_assert_str_eq(disk_state("f2", "sda"), "lagging");
	reg_status(reg, e, &big);
	ck_assert(json_object_get_boolean(forecast("f2", "sdb", "converges")));
	ck_assert_str_eq(disk_state("f2", "sdb"), "lagging");
}
END_TEST

/* A bandwidth limit caps the throughput the forecast counts on, and the warning says so;
 * without a tracker (a one-shot copy) or without any measured rate nothing is forecast. */
START_TEST(test_registry_forecast_limit_and_unknown)
{
	struct reg_agent *a = reg_connect(reg, "f3", "10.0.0.7:5000");
	struct reg_disk *d = verified_disk(a, "sda"), *e = verified_disk(a, "sdb");
	struct proto_status st = idle_status(1, 100 * MB, 20 * MB, 100 * MB, 10 * MB);
	struct proto_status none = idle_status(1, 100 * MB, 0, 100 * MB, 0);
	const char *w;

	verified_disk(a, "sdc");
	reg_status(reg, d, &st);
	take();
	ck_assert_double_eq_tol(num(get(disk("f3", "sda"), "throughput_bps")), 10.0 * MB, 1e-3);
	ck_assert(!json_object_get_boolean(forecast("f3", "sda", "converges")));
	w = json_object_get_string(forecast("f3", "sda", "warning"));
	ck_assert_msg(strstr(w, "(bandwidth limit 9.54 MiB/s)"), "warning: %s", w);
	none.tracker = PROTO_TRACKER_NONE;
	reg_status(reg, e, &none);
	ck_assert_ptr_null(forecast("f3", "sdb", "converges"));
	ck_assert_ptr_null(forecast("f3", "sdb", "drain_seconds"));
	ck_assert_ptr_null(forecast("f3", "sdb", "cutover_downtime_seconds"));
	/* sdc never reported: no rate, no forecast. */
	ck_assert_ptr_null(forecast("f3", "sdc", "converges"));
}
END_TEST

/* The operator's wishes need a known agent; an agent that registered no disk is dropped
 * once gone for the expiry, unless it carries a wish; one with a disk stays. */
START_TEST(test_registry_wishes_and_expiry)
{
	struct reg_agent *a = reg_connect(reg, "short", "10.0.0.8:5000");
	struct reg_agent *b = reg_connect(reg, "wished", "10.0.0.8:5001");
	struct reg_agent *c = reg_connect(reg, "owner", "10.0.0.8:5002");
	bool connected = true, paused = true;
	uint64_t rate = 1;

	verified_disk(c, "sda");
	ck_assert_int_eq(reg_set_rate(reg, "nobody", 5, &connected), -ENOENT);
	ck_assert_int_eq(reg_set_rate(reg, "wished", 5 * MB, &connected), 0);
	reg_wishes(reg, b, &paused, &rate);
	ck_assert(!paused);
	ck_assert_uint_eq(rate, 5 * MB);
	reg_set_expiry(reg, 0);
	ck_assert(reg_known(reg, "short"));
	reg_disconnect(reg, a, "", false);
	reg_disconnect(reg, b, "", false);
	reg_disconnect(reg, c, "", false);
	ck_assert(!reg_known(reg, "short"));
	ck_assert(reg_known(reg, "wished"));
	ck_assert(reg_known(reg, "owner"));
	take();
	ck_assert_ptr_null(agent("short"));
	ck_assert_uint_eq(json_object_get_uint64(get(agent("wished"), "rate_limit_bps")), 5 * MB);
}
END_TEST

/* The Prometheus text carries the disk's state as a one-hot gauge and its figures. */
START_TEST(test_registry_metrics_text)
{
	struct reg_agent *a = reg_connect(reg, "m1", "10.0.0.9:5000");
	struct reg_disk *d = verified_disk(a, "sda");
	struct proto_status st = idle_status(1, 0, 0, 100 * MB, 0);
	char *text;

	reg_status(reg, d, &st);
	take();
	text = reg_metrics(snap);
	ck_assert_ptr_nonnull(text);
	ck_assert(strstr(text, "tern_disk_state{agent=\"m1\",disk=\"sda\",state=\"in-sync\"} 1\n"));
	ck_assert(strstr(text, "tern_disk_state{agent=\"m1\",disk=\"sda\",state=\"copying\"} 0\n"));
	ck_assert(strstr(text, "tern_disk_verified_epoch{agent=\"m1\",disk=\"sda\"} 0\n"));
	ck_assert(strstr(text, "tern_disk_size_bytes{agent=\"m1\",disk=\"sda\"} 10737418240\n"));
	ck_assert(strstr(text, "tern_agent_connected{agent=\"m1\"} 1\n"));
	free(text);
}
END_TEST

static Suite *registry_suite(void)
{
	Suite *s = suite_create("registry");
	TCase *tc = tcase_create("registry");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_registry_disk_states_along_a_copy);
	tcase_add_test(tc, test_registry_pause_and_cutover_states);
	tcase_add_test(tc, test_registry_states_after_the_session);
	tcase_add_test(tc, test_registry_agent_takes_its_worst_disk);
	tcase_add_test(tc, test_registry_forecast_converges);
	tcase_add_test(tc, test_registry_forecast_does_not_converge);
	tcase_add_test(tc, test_registry_forecast_limit_and_unknown);
	tcase_add_test(tc, test_registry_wishes_and_expiry);
	tcase_add_test(tc, test_registry_metrics_text);
	suite_add_tcase(s, tc);
	return s;
}

Suite *(*const t_suites[])(void) = { registry_suite, NULL };

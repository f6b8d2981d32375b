// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests for the tracker selection of agent/track.c on real image files: what
 * track_pick chooses under --tracker and --snapshot, the explanation it logs for its
 * choice and for each backend it passed over, a refusal (with its reason, and nothing
 * started) when the backend asked for cannot track the source, the one name table, and
 * the change sets the scan tracker makes. Image files are not block devices, so every
 * recording backend must refuse them and auto must fall back to scan. */
#include "agent/track.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/source.h"
#include "common/fp.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/util.h"
#include "helpers.h"

static char dir[PATH_MAX], img[2][PATH_MAX], logpath[PATH_MAX];
static struct source *srcs[2];
static int logfd = -1;

/* Two image sources, and the log (at info level: the explanation is info) captured. */
static void setup(void)
{
	char why[256] = "";

	t_mkdtemp(dir, "track");
	for (int i = 0; i < 2; i++) {
		char name[32], id[32];

		snprintf(name, sizeof(name), "disk%d.img", i);
		snprintf(id, sizeof(id), "unit-track-%d", i);
		t_path(img[i], dir, name);
		t_create_file(img[i], 1 << 20, (uint64_t)i + 1);
		ck_assert_msg(src_open(id, img[i], &srcs[i], why, sizeof(why)) == 0, "%s", why);
	}
	t_path(logpath, dir, "log");
	logfd = open(logpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(logfd, 0);
	ck_assert_int_ge(dup2(logfd, STDERR_FILENO), 0);
	unsetenv("JOURNAL_STREAM");
	log_setup("tern-agent", LOG_LVL_INFO);
}

static void teardown(void)
{
	for (int i = 0; i < 2; i++)
		srcs[i] = src_free(srcs[i]);
	close(logfd);
	t_rmtree(dir);
}

/* What was logged so far. */
static const char *logged(void)
{
	static char buf[8192];
	ssize_t n;

	fflush(stderr);
	n = pread(logfd, buf, sizeof(buf) - 1, 0);
	ck_assert_int_ge(n, 0);
	buf[n] = '\0';
	return buf;
}

static struct track_conf conf(enum track_kind kind)
{
	static char pins[PATH_MAX];

	t_path(pins, dir, "pins");
	return (struct track_conf){ .kind = kind, .snapshot = SNAP_NONE, .chunk_size = 65536,
				    .block_size = 4096, .pin_root = pins, .interval_s = 7 };
}

static void stop_all(struct track **ts, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		ts[i] = track_stop(ts[i], true);
}

/* --tracker scan: scan on every disk, and the log says what scan does and how often. */
START_TEST(test_track_pick_scan_when_asked)
{
	struct track_conf c = conf(TRACK_SCAN);
	struct track *ts[2] = { NULL, NULL };

	ck_assert_int_eq(track_pick(&c, srcs, 2, ts), 0);
	for (int i = 0; i < 2; i++) {
		ck_assert_ptr_nonnull(ts[i]);
		ck_assert_str_eq(track_name(ts[i]), "scan");
		ck_assert_uint_eq(track_proto(ts[i]), PROTO_TRACKER_SCAN);
	}
	ck_assert_msg(strstr(logged(), "tracker scan: every 7 s"), "log: %s", logged());
	ck_assert_msg(!strstr(logged(), "tracker auto:"), "log: %s", logged());
	stop_all(ts, 2);
}
END_TEST

/* --tracker auto on image files: every recording backend auto tries refuses them, each
 * refusal is explained with its reason, and the last explanation says scan was picked. */
START_TEST(test_track_pick_auto_falls_back_to_scan_and_says_why)
{
	struct track_conf c = conf(TRACK_AUTO);
	struct track *ts[2] = { NULL, NULL };
	const char *log, *p, *last = NULL;
	char want[PATH_MAX + 64], line[1024];

	ck_assert_int_eq(track_pick(&c, srcs, 2, ts), 0);
	for (int i = 0; i < 2; i++)
		ck_assert_str_eq(track_name(ts[i]), "scan");
	log = logged();
	/* eBPF is always tried by auto (the kernel decides); it must refuse an image file
	 * for what it is (or, in a build without it, say so). tern.ko is tried only where
	 * it is loaded. */
	snprintf(want, sizeof(want), "tracker auto: ebpf skipped (%s is not a block device)", img[0]);
	ck_assert_msg(strstr(log, want) ||
		      strstr(log, "tracker auto: ebpf skipped (this build has no eBPF tracker"),
		      "log: %s", log);
	if (access("/dev/tern", F_OK) == 0)
		ck_assert_msg(strstr(log, "tracker auto: kmod skipped ("), "log: %s", log);
	/* The last backend passed over says what was picked instead. */
	for (p = strstr(log, "tracker auto: "); p; p = strstr(p + 1, "tracker auto: "))
		last = p;
	ck_assert_ptr_nonnull(last);
	snprintf(line, sizeof(line), "%.*s", (int)strcspn(last, "\n"), last);
	ck_assert_uint_gt(strlen(line), strlen("; picked scan"));
	ck_assert_msg(strcmp(line + strlen(line) - strlen("; picked scan"), "; picked scan") == 0,
		      "the last skip should say scan was picked: %s", line);
	ck_assert_msg(strstr(log, "tracker scan: every 7 s"), "log: %s", log);
	stop_all(ts, 2);
}
END_TEST

/* A backend asked for by name that cannot track a source is a refusal, not a quiet
 * fallback: -errno, its reason logged under the option, and no tracker left running. */
START_TEST(test_track_pick_refuses_a_named_backend_that_cannot_track)
{
	static const enum track_kind kinds[] = { TRACK_EBPF, TRACK_KMOD };

	for (size_t k = 0; k < ARRAY_SIZE(kinds); k++) {
		struct track_conf c = conf(kinds[k]);
		struct track *ts[2] = { (struct track *)&c, (struct track *)&c };
		char want[64];

		ck_assert_int_lt(track_pick(&c, srcs, 2, ts), 0);
		/* ret_tracks is filled on success only. */
		ck_assert_ptr_eq(ts[0], (struct track *)&c);
		ck_assert_ptr_eq(ts[1], (struct track *)&c);
		snprintf(want, sizeof(want), "--tracker %s: ", track_kind_name(kinds[k]));
		ck_assert_msg(strstr(logged(), want), "log: %s", logged());
		ck_assert_msg(!strstr(logged(), "picked scan"), "log: %s", logged());
	}
}
END_TEST

/* --snapshot dm on image files with a store that is a file: refused with its reason
 * before anything is made; --snapshot auto finds no provider for images and leaves the
 * choice to the trackers. */
START_TEST(test_track_pick_snapshot_refusal_and_auto)
{
	struct track_conf c = conf(TRACK_SCAN);
	struct track *ts[2] = { NULL, NULL };
	char store[PATH_MAX];

	t_path(store, dir, "cow.img");
	t_create_file(store, 1 << 20, 9);
	c.snapshot = SNAP_DM;
	c.snap_store = store;
	ck_assert_int_lt(track_pick(&c, srcs, 2, ts), 0);
	ck_assert_ptr_null(ts[0]);
	ck_assert_msg(strstr(logged(), "--snapshot dm: "), "log: %s", logged());
	c.snapshot = SNAP_AUTO;
	ck_assert_int_eq(track_pick(&c, srcs, 2, ts), 0);
	ck_assert_str_eq(track_name(ts[0]), "scan");
	stop_all(ts, 2);
}
END_TEST

/* One name table: every kind's name parses back to it, snap is not a --tracker, and
 * anything else is refused. */
START_TEST(test_track_kind_names_round_trip)
{
	enum track_kind k = TRACK_NKINDS;

	for (unsigned i = 0; i < TRACK_NKINDS; i++) {
		if (i == TRACK_SNAP)
			continue;
		ck_assert_int_eq(track_kind_parse(track_kind_name((enum track_kind)i), &k), 0);
		ck_assert_uint_eq(k, i);
	}
	ck_assert_str_eq(track_kind_name(TRACK_AUTO), "auto");
	ck_assert_str_eq(track_kind_name(TRACK_SCAN), "scan");
	ck_assert_int_eq(track_kind_parse("snap", &k), -EINVAL);
	ck_assert_int_eq(track_kind_parse("Scan", &k), -EINVAL);
	ck_assert_int_eq(track_kind_parse("", &k), -EINVAL);
	ck_assert_str_eq(track_kind_name(TRACK_NKINDS), "?");
}
END_TEST

/* Scan records nothing: its change set sends everything without the receiver's
 * fingerprints, and with them reads the whole disk to compare (no bitmap of chunks). */
START_TEST(test_track_scan_change_sets)
{
	struct track *t = NULL;
	struct changeset cs;
	struct fp prev[16];

	memset(prev, 0, sizeof(prev));
	ck_assert_int_eq(track_start_scan(srcs[0], 65536, &t), 0);
	ck_assert_int_eq(track_changes(t, NULL, false, NULL, &cs), 0);
	ck_assert_ptr_null(cs.prev);
	ck_assert_ptr_null(cs.only);
	ck_assert_ptr_null(cs.blocks);
	ck_assert_int_eq(cs.fd, -1);
	ck_assert_int_eq(track_changes(t, prev, false, NULL, &cs), 0);
	ck_assert_ptr_eq(cs.prev, prev);
	ck_assert_ptr_null(cs.only);
	ck_assert_ptr_null(cs.marks);
	t = track_stop(t, true);
	ck_assert_ptr_null(t);
}
END_TEST

static Suite *track_suite(void)
{
	Suite *s = suite_create("track");
	TCase *tc = tcase_create("track");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_track_pick_scan_when_asked);
	tcase_add_test(tc, test_track_pick_auto_falls_back_to_scan_and_says_why);
	tcase_add_test(tc, test_track_pick_refuses_a_named_backend_that_cannot_track);
	tcase_add_test(tc, test_track_pick_snapshot_refusal_and_auto);
	tcase_add_test(tc, test_track_kind_names_round_trip);
	tcase_add_test(tc, test_track_scan_change_sets);
	suite_add_tcase(s, tc);
	return s;
}

Suite *(*const t_suites[])(void) = { track_suite, NULL };

// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests for agent/level.c, the adaptive zstd level: --level parsing (a level, a
 * range, and every refusal), and the controller's decisions from what the sender saw:
 * up while it is blocked on the link, down when it waits for compression a good part of
 * the time, still when the disk is the limit or the evidence is mixed, windows of at
 * least 100 ms at the current level, a level found too slow not tried again at once, a
 * raise as far as the workers' idle time pays for,
 * never past its range, and never onto 0 (zstd's "default"). */
#include "agent/level.h"

#include <check.h>

#include "common/codec.h"
#include "helpers.h"

#define MS 1000000ull

static uint64_t clock_ns = 1000 * MS;

/* Feeds n windows of 8 batches at the current level: `waits` of them waited wait_ms for
 * compression, each spent link_ms on the link and other_ms elsewhere (the disk). */
static void feed(struct lvl_ctl *c, unsigned n, unsigned waits, uint64_t wait_ms,
		 uint64_t link_ms, uint64_t other_ms)
{
	for (unsigned w = 0; w < n; w++)
		for (unsigned i = 0; i < 8; i++) {
			struct lvl_batch b = { .wait_ns = i >= 8 - waits ? wait_ms * MS : 0,
					       .link_ns = link_ms * MS, .level = lvl_now(c) };

			clock_ns += b.wait_ns + b.link_ns + other_ms * MS;
			b.at_ns = clock_ns;
			lvl_note(c, &b);
		}
}

/* Feeds n windows of 8 batches blocked on the link for 20 ms each, while the workers
 * spent work_ms on each at level `at` and were idle spare_ms. */
static void feed_work_at(struct lvl_ctl *c, unsigned n, uint64_t work_ms, uint64_t spare_ms,
			 int at)
{
	for (unsigned w = 0; w < n; w++)
		for (unsigned i = 0; i < 8; i++) {
			struct lvl_batch b = { .link_ns = 20 * MS, .level = lvl_now(c),
					       .work_ns = work_ms * MS, .spare_ns = spare_ms * MS };

			b.work1_ns = (uint64_t)((double)b.work_ns / lvl_cost(at));
			clock_ns += b.link_ns;
			b.at_ns = clock_ns;
			lvl_note(c, &b);
		}
}

/* The same with the workers at the controller's level. */
static void feed_work(struct lvl_ctl *c, unsigned n, uint64_t work_ms, uint64_t spare_ms)
{
	for (unsigned w = 0; w < n; w++)
		feed_work_at(c, 1, work_ms, spare_ms, lvl_now(c));
}

START_TEST(test_level_parse)
{
	int lo = 99, hi = 99;

	ck_assert_int_eq(lvl_parse("3", CODEC_LEVEL_MIN, CODEC_LEVEL_MAX, &lo, &hi), 0);
	ck_assert_int_eq(lo, 3);
	ck_assert_int_eq(hi, 3);
	ck_assert_int_eq(lvl_parse("0", CODEC_LEVEL_MIN, CODEC_LEVEL_MAX, &lo, &hi), 0);
	ck_assert_int_eq(lvl_parse("-7", CODEC_LEVEL_MIN, CODEC_LEVEL_MAX, &lo, &hi), 0);
	ck_assert_int_eq(lo, -7);
	ck_assert_int_eq(lvl_parse("1..12", CODEC_LEVEL_MIN, CODEC_LEVEL_MAX, &lo, &hi), 0);
	ck_assert_int_eq(lo, 1);
	ck_assert_int_eq(hi, 12);
	ck_assert_int_eq(lvl_parse("-5..-1", CODEC_LEVEL_MIN, CODEC_LEVEL_MAX, &lo, &hi), 0);
	lo = hi = 42;
	static const char *const bad[] = { "", "..", "1..", "..3", "3..1", "2..2", "0..3",
					   "-1..0", "1..20", "-8", "20", "1...3", "1..3x", "x",
					   "1 ..3", "99999999999999999999", "1..2..3" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(lvl_parse(bad[i], CODEC_LEVEL_MIN, CODEC_LEVEL_MAX, &lo, &hi) < 0,
			      "accepted '%s'", bad[i]);
	ck_assert_int_eq(lo, 42); /* a refusal leaves the outputs alone */
	ck_assert_int_eq(hi, 42);
}
END_TEST

START_TEST(test_level_follows_the_link)
{
	struct lvl_ctl c;

	lvl_init(&c, 1, 9);
	ck_assert_int_eq(lvl_now(&c), 1); /* the bottom to begin with */
	/* Blocked on the link all the time: two steps a window. */
	feed(&c, 1, 0, 0, 20, 0);
	ck_assert_int_eq(lvl_now(&c), 3);
	/* Nine tenths of the time: one step. */
	feed(&c, 1, 0, 0, 18, 2);
	ck_assert_int_eq(lvl_now(&c), 4);
	/* Behind a delayed link the socket drains in bursts: after each the sender finds
	 * the queue empty and waits a moment. Short waits beside long ones on the link are
	 * no reason to go down (counting them was: levels 1-3 where 9 was best). */
	feed(&c, 1, 4, 1, 20, 0);
	ck_assert_int_eq(lvl_now(&c), 5);
	feed(&c, 20, 0, 0, 20, 0);
	ck_assert_int_eq(lvl_now(&c), 9); /* not past the top */
	/* The disk is the limit (neither side waits long): it stays. */
	feed(&c, 5, 0, 0, 2, 18);
	ck_assert_int_eq(lvl_now(&c), 9);
	/* Waiting on compression a fifth of the time: it stays. */
	feed(&c, 5, 8, 5, 20, 0);
	ck_assert_int_eq(lvl_now(&c), 9);
	/* The link got fast: waiting for compression a third of the time, one step down;
	 * two thirds, two steps. */
	feed(&c, 1, 8, 6, 10, 0);
	ck_assert_int_eq(lvl_now(&c), 8);
	feed(&c, 1, 8, 15, 5, 0);
	ck_assert_int_eq(lvl_now(&c), 6);
	feed(&c, 20, 8, 15, 5, 0);
	ck_assert_int_eq(lvl_now(&c), 1); /* not below the bottom */
	ck_assert_int_eq(c.lowest, 1);
	ck_assert_int_eq(c.highest, 9);
}
END_TEST

/* A window is at least 100 ms of batches compressed at the current level: a burst of
 * fast batches decides nothing, nor do batches finished before the last change. */
START_TEST(test_level_windows)
{
	struct lvl_ctl c;

	lvl_init(&c, 1, 9);
	feed(&c, 2, 0, 0, 5, 0); /* 16 batches, 80 ms: no decision yet */
	ck_assert_int_eq(lvl_now(&c), 1);
	feed(&c, 1, 0, 0, 5, 0); /* 120 ms */
	ck_assert_int_eq(lvl_now(&c), 3);
	/* Frames compressed at 1 that waited in the queue, however they went, say nothing
	 * of 3. */
	for (unsigned i = 0; i < 40; i++) {
		struct lvl_batch b = { .wait_ns = 20 * MS, .level = 1 };

		clock_ns += b.wait_ns;
		b.at_ns = clock_ns;
		lvl_note(&c, &b);
	}
	ck_assert_int_eq(lvl_now(&c), 3);
	ck_assert_uint_eq(c.changes, 1);
}
END_TEST

/* A raise shows its cost once the frames finished before it have drained, and a level
 * that proved too slow is not tried again for 30 windows: it goes as high as the level
 * below it, then tries once more. */
START_TEST(test_level_ceiling)
{
	struct lvl_ctl c;

	lvl_init(&c, 1, 12);
	feed(&c, 3, 0, 0, 20, 0);
	ck_assert_int_eq(lvl_now(&c), 7);
	feed(&c, 1, 8, 15, 5, 0); /* too slow: two down */
	ck_assert_int_eq(lvl_now(&c), 5);
	feed(&c, 5, 0, 0, 20, 0); /* the link is the limit again: up to 6, not 7 */
	ck_assert_int_eq(lvl_now(&c), 6);
	feed(&c, 24, 0, 0, 20, 0);
	ck_assert_int_eq(lvl_now(&c), 6);
	feed(&c, 1, 0, 0, 20, 0); /* the 30th window on: 7 is tried again */
	ck_assert_int_eq(lvl_now(&c), 8);
	ck_assert_int_eq(c.highest, 8);
}
END_TEST

START_TEST(test_level_steps_over_zero)
{
	struct lvl_ctl c;

	lvl_init(&c, -2, 2);
	ck_assert_int_eq(lvl_now(&c), -2); /* the bottom of the range */
	feed(&c, 1, 0, 0, 18, 2);
	ck_assert_int_eq(lvl_now(&c), -1);
	feed(&c, 1, 0, 0, 20, 0);
	ck_assert_int_eq(lvl_now(&c), 2); /* two steps from -1 pass 0 (to 1), then 2 */
	feed(&c, 1, 8, 15, 5, 0);
	ck_assert_int_eq(lvl_now(&c), -1); /* 2, 1, then -1 */
	lvl_init(&c, -5, -2);
	ck_assert_int_eq(lvl_now(&c), -5);
	/* A fixed level never moves. */
	lvl_init(&c, 3, 3);
	feed(&c, 10, 0, 0, 20, 0);
	feed(&c, 10, 8, 15, 5, 0);
	ck_assert_int_eq(lvl_now(&c), 3);
	ck_assert_uint_eq(c.changes, 0);
}
END_TEST

/* A raise goes as far as the workers' idle time pays for, with a margin: a slow link gets
 * its level in one window, a link the workers barely keep up with none. */
START_TEST(test_level_raise_by_room)
{
	struct lvl_ctl c;

	lvl_init(&c, 1, 9);
	feed_work(&c, 1, 1, 19); /* 20 times the CPU to spare: level 9 costs 6.2 */
	ck_assert_int_eq(lvl_now(&c), 9);
	ck_assert_uint_eq(c.changes, 1);
	lvl_init(&c, 1, 9);
	feed_work(&c, 1, 5, 15); /* 4 times: up to the level costing 4 / 1.5 at most */
	ck_assert_int_eq(lvl_now(&c), 4);
	lvl_init(&c, 1, 9);
	feed_work(&c, 3, 10, 1); /* blocked on the link, but the workers are busy: no raise */
	ck_assert_int_eq(lvl_now(&c), 1);
	feed_work(&c, 1, 10, 4); /* 1.4 times: level 2 (1.25) would leave too little */
	ck_assert_int_eq(lvl_now(&c), 1);
	feed_work(&c, 1, 10, 6); /* 1.6 times: one level, not the jump's margin */
	ck_assert_int_eq(lvl_now(&c), 2);
	/* Past 9 each level is taken to cost 1.4 times the one below. */
	lvl_init(&c, 9, 12);
	feed_work(&c, 1, 10, 20);
	ck_assert_int_eq(lvl_now(&c), 11);
	/* A level found too slow stays a ceiling for the jump too. */
	lvl_init(&c, 1, 9);
	feed_work(&c, 1, 1, 19);
	feed(&c, 1, 8, 15, 5, 0);
	ck_assert_int_eq(lvl_now(&c), 7);
	feed_work(&c, 1, 1, 19);
	ck_assert_int_eq(lvl_now(&c), 8);
	feed_work(&c, 5, 1, 19);
	ck_assert_int_eq(lvl_now(&c), 8);
	/* Work counts at the level it was done at: workers still at level 1 after a raise
	 * to 4 (a stream takes a new level only once its frame has lasted), idle three
	 * times as long as they worked, have room for one level more, not for five. */
	lvl_init(&c, 1, 9);
	feed_work(&c, 1, 5, 15);
	ck_assert_int_eq(lvl_now(&c), 4);
	feed_work_at(&c, 1, 5, 15, 1);
	ck_assert_int_eq(lvl_now(&c), 5);
	/* Nothing known of the workers: a step at a time, as without room. */
	lvl_init(&c, 1, 9);
	feed_work_at(&c, 1, 0, 0, 1);
	ck_assert_int_eq(lvl_now(&c), 3);
}
END_TEST

static Suite *level_suite(void)
{
	Suite *s = suite_create("level");
	TCase *tc = tcase_create("level");

	tcase_add_test(tc, test_level_parse);
	tcase_add_test(tc, test_level_follows_the_link);
	tcase_add_test(tc, test_level_windows);
	tcase_add_test(tc, test_level_ceiling);
	tcase_add_test(tc, test_level_steps_over_zero);
	tcase_add_test(tc, test_level_raise_by_room);
	suite_add_tcase(s, tc);
	return s;
}

Suite *(*const t_suites[])(void) = { level_suite, NULL };

// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests for agent/level.c, the adaptive zstd level: --level parsing (a level, a
 * range, and every refusal), and the controller's decisions from the reader's evidence:
 * up while frames wait for the link, down when the link waits for compression, still when
 * the evidence is mixed, never past its range, and never onto 0 (zstd's "default"). */
#include "agent/level.h"

#include <check.h>

#include "common/codec.h"
#include "helpers.h"

/* Feeds n windows of 8 batches, each with the given counts of backlog and starved batches. */
static void feed(struct lvl_ctl *c, unsigned n, unsigned backlog, unsigned starved)
{
	for (unsigned w = 0; w < n; w++)
		for (unsigned i = 0; i < 8; i++)
			lvl_note(c, i < backlog, i >= 8 - starved);
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
	ck_assert_int_eq(lvl_now(&c), 3); /* zstd's default to begin with */
	/* A slow link: frames wait in at least half of each window, compression never. */
	feed(&c, 1, 4, 0);
	ck_assert_int_eq(lvl_now(&c), 4);
	/* Waiting in every batch: two steps a window. */
	feed(&c, 1, 8, 0);
	ck_assert_int_eq(lvl_now(&c), 6);
	feed(&c, 20, 8, 0);
	ck_assert_int_eq(lvl_now(&c), 9); /* not past the top */
	/* Mixed evidence (the disk is the limit): it stays. */
	feed(&c, 5, 3, 0);
	feed(&c, 5, 0, 1);
	ck_assert_int_eq(lvl_now(&c), 9);
	/* The link got fast: the sender waits for compression. */
	feed(&c, 2, 0, 2);
	ck_assert_int_eq(lvl_now(&c), 7);
	feed(&c, 20, 0, 8);
	ck_assert_int_eq(lvl_now(&c), 1); /* not below the bottom */
	ck_assert_int_eq(c.lowest, 1);
	ck_assert_int_eq(c.highest, 9);
	/* Starvation wins over backlog in the same window. */
	feed(&c, 1, 6, 2);
	ck_assert_int_eq(lvl_now(&c), 1);
}
END_TEST

START_TEST(test_level_steps_over_zero)
{
	struct lvl_ctl c;

	lvl_init(&c, -2, 2);
	ck_assert_int_eq(lvl_now(&c), 2); /* the end of the range nearest to 3 */
	feed(&c, 3, 0, 8);
	ck_assert_int_eq(lvl_now(&c), -2); /* 2, 1, then -1: 0 is zstd's "default" */
	feed(&c, 1, 4, 0);
	ck_assert_int_eq(lvl_now(&c), -1);
	feed(&c, 1, 8, 0);
	ck_assert_int_eq(lvl_now(&c), 2); /* two steps from -1 pass 0 (to 1), then 2 */
	lvl_init(&c, -5, -2);
	ck_assert_int_eq(lvl_now(&c), -2);
	/* A fixed level never moves. */
	lvl_init(&c, 3, 3);
	feed(&c, 10, 8, 0);
	ck_assert_int_eq(lvl_now(&c), 3);
	ck_assert_uint_eq(c.changes, 0);
}
END_TEST

static Suite *level_suite(void)
{
	Suite *s = suite_create("level");
	TCase *tc = tcase_create("level");

	tcase_add_test(tc, test_level_parse);
	tcase_add_test(tc, test_level_follows_the_link);
	tcase_add_test(tc, test_level_steps_over_zero);
	suite_add_tcase(s, tc);
	return s;
}

Suite *(*const t_suites[])(void) = { level_suite, NULL };

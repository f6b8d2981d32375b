// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests for the fingerprint arrays both sides keep (common/fptab.c, fps_alloc and
 * fps_grow): an array grown for a disk that grew keeps every fingerprint it held, reads as
 * zero chunks past the old end (what the grown target holds there), and refuses what is
 * not a growth; entries are stored and read back as the chunks' real fingerprints; zero
 * chunks recorded a frame at a time commit no memory. */
#include <check.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/fp.h"
#include "common/fptab.h"
#include "common/util.h"
#include "helpers.h"

static bool all_zero(const struct fp *fps, uint64_t first, uint64_t last)
{
	static const struct fp zero;

	for (uint64_t i = first; i < last; i++)
		if (memcmp(&fps[i], &zero, sizeof(zero)) != 0)
			return false;
	return true;
}

static void fill(struct fp *fps, uint64_t n, uint8_t seed)
{
	for (uint64_t i = 0; i < n; i++)
		memset(&fps[i], (int)((i + seed) % 255 + 1), sizeof(fps[i]));
}

static bool has_fill(const struct fp *fps, uint64_t n, uint8_t seed)
{
	for (uint64_t i = 0; i < n; i++)
		for (unsigned b = 0; b < FP_LEN; b++)
			if (fps[i].b[b] != (uint8_t)((i + seed) % 255 + 1))
				return false;
	return true;
}

/* Within a page, across pages, and by a lot (a 1 TiB disk's worth at 64 KiB chunks). */
START_TEST(test_fps_grow_keeps_what_it_held_and_adds_zero_chunks)
{
	const uint64_t sizes[][2] = { { 10, 100 }, { 100, 5000 }, { 5000, UINT64_C(1) << 24 } };

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		uint64_t old_n = sizes[k][0], n = sizes[k][1];
		struct fp *fps = fps_alloc(old_n), *g;

		ck_assert_ptr_nonnull(fps);
		fill(fps, old_n, (uint8_t)k);
		g = fps_grow(fps, old_n, n);
		ck_assert_ptr_nonnull(g);
		ck_assert(has_fill(g, old_n, (uint8_t)k));
		ck_assert(all_zero(g, old_n, MIN(n, old_n + 100000)));
		ck_assert(all_zero(g, n - 10, n));
		/* Writable to its new end, and freed at its new length. */
		memset(&g[n - 1], 0x5a, sizeof(g[n - 1]));
		ck_assert_uint_eq(g[n - 1].b[0], 0x5a);
		ck_assert_ptr_null(fps_free(g));
	}
}
END_TEST

/* The old last page's tail is zero even if something had written there. */
START_TEST(test_fps_grow_clears_the_old_tail)
{
	struct fp *fps = fps_alloc(3), *g;

	ck_assert_ptr_nonnull(fps);
	fill(fps, 3, 1);
	memset(&fps[3], 0x77, sizeof(fps[3])); /* past the old end, inside its page */
	g = fps_grow(fps, 3, 8);
	ck_assert_ptr_nonnull(g);
	ck_assert(has_fill(g, 3, 1));
	ck_assert(all_zero(g, 3, 8));
	fps_free(g);
}
END_TEST

/* Not a growth: refused, and the array is still valid at its old length. */
START_TEST(test_fps_grow_refuses_what_is_not_a_growth)
{
	struct fp *fps = fps_alloc(64);

	ck_assert_ptr_nonnull(fps);
	fill(fps, 64, 9);
	ck_assert_ptr_null(fps_grow(fps, 64, 64));
	ck_assert_ptr_null(fps_grow(fps, 64, 10));
	ck_assert_ptr_null(fps_grow(fps, 64, UINT64_MAX / 2));
	ck_assert_ptr_null(fps_grow(NULL, 0, 10));
	/* Not this array's length: refused rather than remapped wrong. */
	ck_assert_ptr_null(fps_grow(fps, 63, 100));
	ck_assert_ptr_null(fps_grow(fps, 65, 100));
	ck_assert(has_fill(fps, 64, 9));
	fps_free(fps);
}
END_TEST

/* What goes in comes out as the chunk's real fingerprint: a zero chunk's is stored as
 * zeros (also over a real one, and given in stored form), and read back as the zero
 * chunk's of its length, the short last chunk's of its own; the root is fp_merkle_root's
 * over the decoded entries. */
START_TEST(test_fps_put_get_and_root)
{
	const uint32_t cs = 65536;
	const uint64_t n = 1000, size = (n - 1) * cs + 100;
	static const struct fp none;
	struct fp *fps = fps_alloc(n), *plain = calloc(n, sizeof(*plain));
	struct fp zero, tail, real, got, root, want;
	uint8_t data[100];

	ck_assert_ptr_nonnull(fps);
	ck_assert_ptr_nonnull(plain);
	fp_zero(cs, &zero);
	fp_zero(100, &tail);
	memset(data, 7, sizeof(data));
	fp_compute(data, sizeof(data), &real);
	fps_put(fps, 5, &zero, size, cs);
	ck_assert_mem_eq(&fps[5], &none, FP_LEN);
	fps_put(fps, 7, &real, size, cs);
	ck_assert_mem_eq(&fps[7], &real, FP_LEN);
	fps_put(fps, 8, &real, size, cs);
	fps_put(fps, 8, &zero, size, cs);      /* a real one overwritten by a zero chunk's */
	ck_assert_mem_eq(&fps[8], &none, FP_LEN);
	fps_put(fps, 9, &real, size, cs);
	fps_put(fps, 9, &none, size, cs);      /* the stored form of a zero chunk */
	ck_assert_mem_eq(&fps[9], &none, FP_LEN);
	fps_put(fps, n - 1, &tail, size, cs);
	ck_assert_mem_eq(&fps[n - 1], &none, FP_LEN);
	fps_put(fps, n - 2, &tail, size, cs);  /* not a whole chunk's zero fingerprint */
	ck_assert_mem_eq(&fps[n - 2], &tail, FP_LEN);
	for (uint64_t i = 0; i < n; i++) {
		fps_get(fps, i, size, cs, &got);
		ck_assert(fp_equal(&got, i == 7 ? &real : i == n - 1 || i == n - 2 ? &tail : &zero));
		plain[i] = got;
	}
	fps_root(fps, size, cs, &root);
	ck_assert_int_eq(fp_merkle_root(plain, n, &want), 0);
	ck_assert(fp_equal(&root, &want));
	free(plain);
	fps_free(fps);
}
END_TEST

/* Zero chunks recorded a ZERO frame at a time (16 chunks, 256 bytes: less than a page) on
 * a fresh array of 16 MiB commit none of it, and a real fingerprint among them is cleared. */
START_TEST(test_fps_zero_commits_no_memory)
{
	const uint64_t n = UINT64_C(1) << 20;
	static const struct fp none;
	struct fp *fps = fps_alloc(n), real;
	uint64_t res;

	ck_assert_ptr_nonnull(fps);
	memset(&real, 0x5a, sizeof(real));
	fps[n / 2 + 3] = real;
	for (uint64_t i = 0; i < n; i += 16)
		fps_zero(fps, i, i + 16);
	ck_assert_mem_eq(&fps[n / 2 + 3], &none, FP_LEN);
	/* The page the real one was written to, and the array's own head page. */
	res = t_resident(fps);
	ck_assert_msg(res <= 4 * 4096, "%" PRIu64 " of %" PRIu64 " bytes resident", res,
		      n * FP_LEN);
	fps_free(fps);
}
END_TEST

static Suite *fps_suite(void)
{
	Suite *s = suite_create("fps");
	TCase *tc = tcase_create("fps");

	tcase_add_test(tc, test_fps_grow_keeps_what_it_held_and_adds_zero_chunks);
	tcase_add_test(tc, test_fps_grow_clears_the_old_tail);
	tcase_add_test(tc, test_fps_grow_refuses_what_is_not_a_growth);
	tcase_add_test(tc, test_fps_put_get_and_root);
	tcase_add_test(tc, test_fps_zero_commits_no_memory);
	suite_add_tcase(s, tc);
	return s;
}

Suite *(*const t_suites[])(void) = { fps_suite, NULL };

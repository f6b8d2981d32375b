// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests for agent/fsmap.c: a file system's free range marks exactly the chunks of the
 * source that lie wholly inside it (a chunk partly used stays, the source's short last
 * chunk counts when the range reaches the end, nothing past the source), and a source
 * that is not a block device has no file system to ask. */
#include "agent/fsmap.h"

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "agent/source.h"
#include "helpers.h"

#define CS 65536u

static bool bit(const uint64_t *b, uint64_t i)
{
	return (b[i / 64] >> (i % 64)) & 1;
}

START_TEST(test_fsmap_marks_whole_chunks_only)
{
	uint64_t b[2];
	const uint64_t size = 100ull * CS;

	memset(b, 0, sizeof(b));
	/* [1.5 chunks, 4.5 chunks): chunks 2 and 3 only. */
	ck_assert_uint_eq(fsm_mark_range(b, size, CS, CS + CS / 2, 3 * CS), 2ull * CS);
	ck_assert(!bit(b, 1) && bit(b, 2) && bit(b, 3) && !bit(b, 4));
	/* Marked again: nothing new counts. */
	ck_assert_uint_eq(fsm_mark_range(b, size, CS, 2 * CS, 2 * CS), 0);
	/* Less than a chunk, or a range straddling two chunks by less than one: nothing. */
	ck_assert_uint_eq(fsm_mark_range(b, size, CS, 10 * CS + 1, CS), 0);
	ck_assert_uint_eq(fsm_mark_range(b, size, CS, 10 * CS, CS - 512), 0);
	ck_assert(!bit(b, 10) && !bit(b, 11));
	/* Exactly one chunk. */
	ck_assert_uint_eq(fsm_mark_range(b, size, CS, 70 * CS, CS), CS);
	ck_assert(bit(b, 70) && !bit(b, 69) && !bit(b, 71));
	/* Empty and out-of-range ranges. */
	ck_assert_uint_eq(fsm_mark_range(b, size, CS, 5 * CS, 0), 0);
	ck_assert_uint_eq(fsm_mark_range(b, size, CS, size, CS), 0);
	/* Nothing else. */
	ck_assert_uint_eq(b[0], 3ull << 2);
	ck_assert_uint_eq(b[1], 1ull << (70 - 64));
}
END_TEST

START_TEST(test_fsmap_clips_to_the_source_and_its_short_tail)
{
	uint64_t b[1] = { 0 };
	const uint64_t size = 4ull * CS + 4096; /* a short fifth chunk */

	/* A range past the end is clipped; the short last chunk is wholly inside. */
	ck_assert_uint_eq(fsm_mark_range(b, size, CS, 3 * CS, UINT64_MAX / 2), CS + 4096);
	ck_assert(!bit(b, 2) && bit(b, 3) && bit(b, 4));
	ck_assert_uint_eq(b[0] >> 5, 0);
	/* A range ending inside the short chunk does not take it. */
	b[0] = 0;
	ck_assert_uint_eq(fsm_mark_range(b, size, CS, 0, 4 * CS + 2048), 4ull * CS);
	ck_assert(!bit(b, 4));
}
END_TEST

START_TEST(test_fsmap_image_file_has_no_file_system)
{
	char dir[PATH_MAX], path[PATH_MAX], why[256] = "", text[256];
	struct source *src = NULL;
	struct fsm_map *m = NULL;

	t_mkdtemp(dir, "fsmap");
	t_path(path, dir, "img");
	t_create_file(path, 1 << 20, 3);
	ck_assert_msg(src_open("d", path, &src, why, sizeof(why)) == 0, "src_open: %s", why);
	ck_assert_int_eq(fsm_read(src, CS, &m), 0);
	ck_assert_uint_eq(m->nfs, 0);
	ck_assert_uint_eq(m->free_bytes, 0);
	ck_assert_uint_eq(m->nchunks, 16);
	ck_assert_uint_eq(m->free[0], 0);
	fsm_describe(m, text, sizeof(text));
	ck_assert_str_eq(text, "no file system mounted from it: copied whole");
	ck_assert_ptr_null(fsm_free(m));
	ck_assert_ptr_null(fsm_free(NULL));
	src_free(src);
	t_rmtree(dir);
}
END_TEST

/* Only a file system whose free space was asked vouches for its range. */
START_TEST(test_fsmap_known_ranges)
{
	struct fsm_map m;

	memset(&m, 0, sizeof(m));
	m.nfs = 2;
	m.fs[0].start = 1 << 20;
	m.fs[0].len = 8 << 20;
	m.fs[1].start = 9 << 20;
	m.fs[1].len = 8 << 20;
	m.fs[1].err = -ENOTTY;
	ck_assert(fsm_known(&m, 1 << 20, CS));
	ck_assert(fsm_known(&m, (9 << 20) - CS, CS));
	ck_assert(!fsm_known(&m, (9 << 20) - CS, 2 * CS)); /* into the one not asked */
	ck_assert(!fsm_known(&m, 0, CS));                  /* before any */
	ck_assert(!fsm_known(&m, 10 << 20, CS));
}
END_TEST

static Suite *fsmap_suite(void)
{
	Suite *s = suite_create("fsmap");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_fsmap_marks_whole_chunks_only);
	tcase_add_test(tc, test_fsmap_clips_to_the_source_and_its_short_tail);
	tcase_add_test(tc, test_fsmap_image_file_has_no_file_system);
	tcase_add_test(tc, test_fsmap_known_ranges);
	suite_add_tcase(s, tc);
	return s;
}

Suite *(*const t_suites[])(void) = { fsmap_suite, NULL };

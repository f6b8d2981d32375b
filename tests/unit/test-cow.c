// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests for agent/cow.c: a dm-snapshot exception store, crafted byte by byte in a
 * temp file, is read into the right blocks; truncated, hostile and invalidated stores are
 * refused, never trusted. */
#include "agent/cow.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "helpers.h"

#define CS 4096u          /* chunk bytes of most stores here: 8 sectors */
#define PER_AREA (CS / 16)

static char path[PATH_MAX];
static int fd = -1;
static uint8_t *img;      /* the store being crafted */
static size_t img_len;
static uint64_t bm[64];   /* up to 4096 blocks */

static void setup(void)
{
	fd = t_mkstemp(path, "cow");
	img_len = 0;
	img = NULL;
	memset(bm, 0, sizeof(bm));
}

static void teardown(void)
{
	unlink(path);
	close(fd);
	free(img);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

/* A zeroed store of chunks chunks of cs bytes with a header. */
static void store(size_t chunks, uint32_t cs, uint32_t magic, uint32_t valid, uint32_t version)
{
	img_len = chunks * cs;
	img = calloc(1, img_len);
	ck_assert_ptr_nonnull(img);
	put32(img, magic);
	put32(img + 4, valid);
	put32(img + 8, version);
	put32(img + 12, cs / 512);
}

/* Exception i of area (per-area count for chunk size cs). */
static void exception(uint32_t cs, uint64_t area, uint64_t i, uint64_t old, uint64_t new)
{
	uint64_t at = (1 + area * (cs / 16 + 1)) * cs + i * 16;

	ck_assert_uint_le(at + 16, img_len);
	put64(img + at, old);
	put64(img + at + 8, new);
}

/* Writes the store and reads it back for an origin of origin_bytes, 4 KiB blocks. */
static int64_t read_back(uint64_t cow_bytes, uint64_t origin_bytes)
{
	ck_assert_int_eq(ftruncate(fd, 0), 0);
	ck_assert_int_eq(pwrite(fd, img, img_len, 0), (ssize_t)img_len);
	return cow_read_exceptions(fd, cow_bytes, origin_bytes, 4096, bm);
}

static bool bit(uint64_t b)
{
	return bm[b / 64] >> (b % 64) & 1;
}

static unsigned nbits(void)
{
	unsigned n = 0;

	for (size_t i = 0; i < 64; i++)
		n += (unsigned)__builtin_popcountll(bm[i]);
	return n;
}

START_TEST(test_cow_header_parses_and_refuses)
{
	uint8_t h[16] = { 0 };
	struct cow_header ch;

	ck_assert_int_eq(cow_parse_header(h, sizeof(h), &ch), -ENODATA);
	put32(h, COW_MAGIC);
	put32(h + 4, 1);
	put32(h + 8, 1);
	put32(h + 12, 8);
	ck_assert_int_eq(cow_parse_header(h, sizeof(h), &ch), 0);
	ck_assert(ch.valid);
	ck_assert_uint_eq(ch.chunk_sectors, 8);
	ck_assert_int_eq(cow_parse_header(h, 15, &ch), -EBADMSG);
	put32(h + 4, 0);
	ck_assert_int_eq(cow_parse_header(h, sizeof(h), &ch), 0);
	ck_assert(!ch.valid);
	put32(h + 4, 2);
	ck_assert_int_eq(cow_parse_header(h, sizeof(h), &ch), -EBADMSG);
	put32(h + 4, 1);
	put32(h + 8, 2);
	ck_assert_int_eq(cow_parse_header(h, sizeof(h), &ch), -EBADMSG);
	put32(h + 8, 1);
	for (uint32_t cs = 0; cs < 5000; cs += 3) {
		put32(h + 12, cs);
		ck_assert_int_eq(cow_parse_header(h, sizeof(h), &ch),
				 cs && cs <= 2048 && !(cs & (cs - 1)) ? 0 : -EBADMSG);
	}
	put32(h + 12, 0x80000000u);
	ck_assert_int_eq(cow_parse_header(h, sizeof(h), &ch), -EBADMSG);
	put32(h, COW_MAGIC + 1);
	put32(h + 12, 8);
	ck_assert_int_eq(cow_parse_header(h, sizeof(h), &ch), -EBADMSG);
}
END_TEST

START_TEST(test_cow_exceptions_mark_their_blocks)
{
	store(64, CS, COW_MAGIC, 1, 1);
	exception(CS, 0, 0, 0, 2);
	exception(CS, 0, 1, 5, 3);
	exception(CS, 0, 2, 255, 4);
	exception(CS, 0, 3, 5, 5); /* a chunk written twice by two snapshots' logic: harmless */
	ck_assert_int_eq(read_back(img_len, 1 << 20), 4);
	ck_assert(bit(0) && bit(5) && bit(255));
	ck_assert_uint_eq(nbits(), 3);
}
END_TEST

START_TEST(test_cow_empty_store_marks_nothing)
{
	store(8, CS, COW_MAGIC, 1, 1);
	ck_assert_int_eq(read_back(img_len, 1 << 20), 0);
	ck_assert_uint_eq(nbits(), 0);
}
END_TEST

START_TEST(test_cow_second_area_after_a_full_one)
{
	/* Area 0: metadata at chunk 1, data 2..257; area 1: metadata at 258. */
	store(2 + 2 * (PER_AREA + 1), CS, COW_MAGIC, 1, 1);
	for (uint64_t i = 0; i < PER_AREA; i++)
		exception(CS, 0, i, i, 2 + i);
	exception(CS, 1, 0, 1000, PER_AREA + 3);
	ck_assert_int_eq(read_back(img_len, 16 << 20), PER_AREA + 1);
	ck_assert(bit(0) && bit(PER_AREA - 1) && bit(1000) && !bit(PER_AREA));
	ck_assert_uint_eq(nbits(), PER_AREA + 1);
}
END_TEST

START_TEST(test_cow_chunks_larger_and_smaller_than_blocks)
{
	/* 8 KiB chunks over 4 KiB blocks: chunk 1 is blocks 2 and 3; the origin ends inside
	 * chunk 2, whose second block does not exist. */
	store(16, 8192, COW_MAGIC, 1, 1);
	exception(8192, 0, 0, 1, 2);
	exception(8192, 0, 1, 2, 3);
	ck_assert_int_eq(read_back(img_len, 5 * 4096), 2);
	ck_assert(bit(2) && bit(3) && bit(4) && !bit(5));
	ck_assert_uint_eq(nbits(), 3);
	free(img);
	memset(bm, 0, sizeof(bm));
	/* 512-byte chunks: chunk 9 lies in block 1. */
	store(64, 512, COW_MAGIC, 1, 1);
	exception(512, 0, 0, 9, 2);
	ck_assert_int_eq(read_back(img_len, 1 << 20), 1);
	ck_assert(bit(1));
	ck_assert_uint_eq(nbits(), 1);
}
END_TEST

START_TEST(test_cow_invalidated_snapshot_is_estale)
{
	store(8, CS, COW_MAGIC, 0, 1);
	exception(CS, 0, 0, 3, 2);
	ck_assert_int_eq(read_back(img_len, 1 << 20), -ESTALE);
	ck_assert_uint_eq(nbits(), 0);
}
END_TEST

START_TEST(test_cow_rejects_hostile_exceptions)
{
	/* The original outside the origin. */
	store(8, CS, COW_MAGIC, 1, 1);
	exception(CS, 0, 0, 256, 2);
	ck_assert_int_eq(read_back(img_len, 1 << 20), -EBADMSG);
	exception(CS, 0, 0, UINT64_MAX, 2);
	ck_assert_int_eq(read_back(img_len, 1 << 20), -EBADMSG);
	/* The copy in the header, in an area's metadata, or past the device. */
	exception(CS, 0, 0, 1, 1);
	ck_assert_int_eq(read_back(img_len, 1 << 20), -EBADMSG);
	exception(CS, 0, 0, 1, 8);
	ck_assert_int_eq(read_back(img_len, 1 << 20), -EBADMSG);
	exception(CS, 0, 0, 1, UINT64_MAX);
	ck_assert_int_eq(read_back(img_len, 1 << 20), -EBADMSG);
	free(img);
	store(2 + 2 * (PER_AREA + 1), CS, COW_MAGIC, 1, 1);
	for (uint64_t i = 0; i < PER_AREA; i++)
		exception(CS, 0, i, i, 2 + i);
	exception(CS, 1, 0, 7, PER_AREA + 2); /* area 1's own metadata chunk */
	ck_assert_int_eq(read_back(img_len, 16 << 20), -EBADMSG);
}
END_TEST

START_TEST(test_cow_rejects_truncated_and_endless_stores)
{
	/* Full areas to the end of the device: no terminator anywhere. */
	store(1 + (PER_AREA + 1), CS, COW_MAGIC, 1, 1);
	for (uint64_t i = 0; i < PER_AREA; i++)
		exception(CS, 0, i, i % 256, 2 + i);
	ck_assert_int_eq(read_back(img_len, 1 << 20), -EBADMSG);
	/* The device claims more than the file holds: the area read comes up short. */
	free(img);
	store(1, CS, COW_MAGIC, 1, 1);
	ck_assert_int_eq(read_back(64 * CS, 1 << 20), -EBADMSG);
	/* Smaller than a header read. */
	ck_assert_int_eq(read_back(100, 1 << 20), -EBADMSG);
	/* A header from another world; a never-written store. */
	free(img);
	store(8, CS, 0x12345678, 1, 1);
	ck_assert_int_eq(read_back(img_len, 1 << 20), -EBADMSG);
	free(img);
	store(8, CS, 0, 0, 0);
	ck_assert_int_eq(read_back(img_len, 1 << 20), -ENODATA);
	ck_assert_int_eq(cow_read_exceptions(fd, img_len, 0, 4096, bm), -EINVAL);
}
END_TEST

START_TEST(test_cow_random_areas_never_mark_outside_the_origin)
{
	/* Garbage after a valid header: refused or read, but every mark inside the origin. */
	srand(7);
	for (int round = 0; round < 200; round++) {
		free(img);
		store(40, CS, COW_MAGIC, 1, 1);
		for (size_t i = CS; i < img_len; i++)
			img[i] = (uint8_t)(rand() % 4 == 0 ? rand() : 0);
		memset(bm, 0, sizeof(bm));
		int64_t n = read_back(img_len, 100 * 4096 + 512);

		ck_assert(n == -EBADMSG || n >= 0);
		for (uint64_t b = 101; b < 64 * 64; b++)
			ck_assert(!bit(b));
	}
}
END_TEST

static Suite *cow_suite(void)
{
	Suite *s = suite_create("cow");
	TCase *tc = tcase_create("store");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_cow_header_parses_and_refuses);
	tcase_add_test(tc, test_cow_exceptions_mark_their_blocks);
	tcase_add_test(tc, test_cow_empty_store_marks_nothing);
	tcase_add_test(tc, test_cow_second_area_after_a_full_one);
	tcase_add_test(tc, test_cow_chunks_larger_and_smaller_than_blocks);
	tcase_add_test(tc, test_cow_invalidated_snapshot_is_estale);
	tcase_add_test(tc, test_cow_rejects_hostile_exceptions);
	tcase_add_test(tc, test_cow_rejects_truncated_and_endless_stores);
	tcase_add_test(tc, test_cow_random_areas_never_mark_outside_the_origin);
	suite_add_tcase(s, tc);
	return s;
}

Suite *(*const t_suites[])(void) = { cow_suite, NULL };

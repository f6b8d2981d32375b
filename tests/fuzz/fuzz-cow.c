// SPDX-License-Identifier: GPL-2.0-only
/* libFuzzer target for agent/cow.c, which reads a dm-snapshot's exception store from a
 * device the agent does not control. Input: a mode byte (how the device's size relates to
 * the image, which block size), the origin's size (4 bytes, big-endian), a device size in
 * sectors (2 bytes), then the store's image, held in a memfd. What it returns and marks
 * must match a walk of the format written here apart; a refused store may leave marks,
 * but only inside the origin. */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "agent/cow.h"
#include "common/util.h"

#include "fuzz-driver.h"

#define PARAMS_LEN 7
#define MAX_BITS (1u << 18) /* a 32 KiB bitmap at most */

/* Each input costs about a millisecond under ASan: cow_read_exceptions takes a zeroed
 * 1 MiB buffer (the largest chunk), which ASan maps afresh every time. */
const uint64_t tern_fuzz_default_runs = 5000;

/* The device's size against the image's: equal; the image then a sparse (zero) tail up to
 * the given size; larger than the file holds (reads come up short); smaller. */
enum dev_mode { DEV_EXACT, DEV_SPARSE, DEV_SHORT_FILE, DEV_CUT };

static const uint32_t block_sizes[8] = { 4096, 512, 65536, 1u << 20, 8192, 1, 3000, 4097 };

static void require(bool ok)
{
	if (!ok)
		abort();
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void check_header(const uint8_t *p, size_t len)
{
	struct cow_header h = { .valid = false, .chunk_sectors = 0 };
	int r = cow_parse_header(p, len, &h);

	require(r == 0 || r == -ENODATA || r == -EBADMSG);
	if (len < COW_HEADER_LEN) {
		require(r == -EBADMSG);
		return;
	}
	require((r == -ENODATA) == (le32(p) == 0));
	if (r < 0)
		return;
	require(le32(p) == COW_MAGIC && le32(p + 8) == COW_VERSION);
	require(le32(p + 4) <= 1 && h.valid == (le32(p + 4) == 1));
	require(h.chunk_sectors == le32(p + 12));
	require(h.chunk_sectors >= 1 && h.chunk_sectors <= 2048);
	require((h.chunk_sectors & (h.chunk_sectors - 1)) == 0);
}

/* The device cow_read_exceptions reads: the image, then zeros up to its size; the file
 * behind it may be shorter (reads past its end come up short) or longer. */
struct dev {
	const uint8_t *img;
	uint64_t img_len, file_len, cow_bytes;
};

static uint64_t dev_le64(const struct dev *d, uint64_t off)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < 8; i++)
		v |= (uint64_t)(off + i < d->img_len ? d->img[off + i] : 0) << (8 * i);
	return v;
}

/* What cow_read_exceptions must return for d, and the blocks it must mark in want when it
 * succeeds: the format of cow.h walked an exception at a time, apart from cow.c's loop
 * over areas, so that a check cow.c drops or gets wrong shows as a difference. */
static int64_t expect(const struct dev *d, uint64_t origin, uint32_t block, uint64_t *want)
{
	uint64_t chunk, per, cow_chunks, origin_chunks;
	uint8_t hdr[COW_HEADER_LEN];
	struct cow_header h;
	int r;

	if (origin == 0)
		return -EINVAL;
	/* The header is read as one 4 KiB block. */
	if (d->cow_bytes < 4096 || d->file_len < 4096)
		return -EBADMSG;
	for (unsigned i = 0; i < COW_HEADER_LEN; i++)
		hdr[i] = i < d->img_len ? d->img[i] : 0;
	r = cow_parse_header(hdr, sizeof(hdr), &h);
	if (r < 0)
		return r;
	if (!h.valid)
		return -ESTALE;
	chunk = (uint64_t)h.chunk_sectors * 512;
	per = chunk / COW_EXCEPTION_LEN;
	cow_chunks = d->cow_bytes / chunk;
	origin_chunks = (origin + chunk - 1) / chunk;
	for (uint64_t k = 0;; k++) {
		/* Exception k sits in area k / per, whose metadata chunk follows the header
		 * and each earlier area's metadata and per data chunks. */
		uint64_t meta = 1 + k / per * (per + 1);
		uint64_t at = meta * chunk + k % per * COW_EXCEPTION_LEN, old, new, end;

		if (meta >= cow_chunks || (meta + 1) * chunk > d->file_len)
			return -EBADMSG;
		old = dev_le64(d, at);
		new = dev_le64(d, at + 8);
		if (new == 0)
			return (int64_t)k;
		/* The copy in a data chunk of the device; the original in the origin. */
		if (new >= cow_chunks || (new - 1) % (per + 1) == 0 || old >= origin_chunks)
			return -EBADMSG;
		end = MIN((old + 1) * chunk, origin);
		for (uint64_t b = old * chunk / block; b * block < end; b++)
			want[b / 64] |= UINT64_C(1) << (b % 64);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	struct dev d = { .img = data + PARAMS_LEN };
	uint64_t origin, dev, nbits, nwords;
	uint64_t *blocks, *want;
	uint32_t block;
	int64_t r, e;

	if (size < PARAMS_LEN)
		return 0;
	d.img_len = d.file_len = size - PARAMS_LEN;
	check_header(d.img, d.img_len);
	block = block_sizes[(data[0] >> 2) & 7];
	origin = (uint64_t)data[1] << 24 | (uint64_t)data[2] << 16 | (uint64_t)data[3] << 8 | data[4];
	origin %= (uint64_t)MAX_BITS * block + 1;
	dev = ((uint64_t)data[5] << 8 | data[6]) * 512;
	switch (data[0] & 3) {
	case DEV_EXACT:
		d.cow_bytes = d.img_len;
		break;
	case DEV_SPARSE:
		d.cow_bytes = d.file_len = MAX(d.img_len, dev);
		break;
	case DEV_SHORT_FILE:
		d.cow_bytes = d.img_len + dev;
		break;
	default:
		d.cow_bytes = MIN(d.img_len, dev);
		break;
	}
	if (fd < 0) {
		fd = memfd_create("tern-fuzz-cow", MFD_CLOEXEC);
		require(fd >= 0);
#ifdef M_MMAP_THRESHOLD
		/* Without ASan, keep that buffer on the heap rather than mapped each time. */
		mallopt(M_MMAP_THRESHOLD, 4 << 20);
		mallopt(M_TRIM_THRESHOLD, 16 << 20);
#endif
	}
	require(ftruncate(fd, 0) == 0);
	require(pwrite_full(fd, d.img, d.img_len, 0) == 0);
	require(ftruncate(fd, (off_t)d.file_len) == 0);

	nbits = DIV_ROUND_UP(origin, block);
	nwords = MAX(DIV_ROUND_UP(nbits, 64), (uint64_t)1);
	/* Exactly as large as the bitmap, so ASan sees a mark past it. */
	blocks = calloc(nwords, sizeof(*blocks));
	want = calloc(nwords, sizeof(*want));
	require(blocks != NULL && want != NULL);
	e = expect(&d, origin, block, want);
	r = cow_read_exceptions(fd, d.cow_bytes, origin, block, blocks);
	require(r == e);
	/* A malformed store may leave some marks, but only inside the origin. */
	if (r != -EBADMSG)
		require(memcmp(blocks, want, nwords * sizeof(*want)) == 0);
	else if (nbits % 64)
		require(blocks[nwords - 1] >> (nbits % 64) == 0);
	free(want);
	free(blocks);
	return 0;
}

/* Seeds: stores as dm-snap-persistent lays them out, compact (the rest of the device a
 * sparse zero tail) or whole. */

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

struct store {
	uint8_t *b; /* params, then the image */
	size_t len;
	uint32_t cs; /* chunk bytes */
};

static struct store store_new(uint8_t mode, uint32_t origin, uint16_t dev_sectors,
			      size_t img_len, uint32_t cs, uint32_t magic, uint32_t valid)
{
	struct store s = { .b = calloc(1, PARAMS_LEN + img_len), .len = PARAMS_LEN + img_len,
			   .cs = cs };

	require(s.b != NULL && img_len >= COW_HEADER_LEN);
	s.b[0] = mode;
	for (int i = 0; i < 4; i++)
		s.b[1 + i] = (uint8_t)(origin >> (8 * (3 - i)));
	s.b[5] = (uint8_t)(dev_sectors >> 8);
	s.b[6] = (uint8_t)dev_sectors;
	put32(s.b + PARAMS_LEN, magic);
	put32(s.b + PARAMS_LEN + 4, valid);
	put32(s.b + PARAMS_LEN + 8, COW_VERSION);
	put32(s.b + PARAMS_LEN + 12, cs / 512);
	return s;
}

static void store_exception(struct store *s, uint64_t area, uint64_t i, uint64_t old,
			    uint64_t new)
{
	uint64_t at = (1 + area * (s->cs / COW_EXCEPTION_LEN + 1)) * s->cs + i * COW_EXCEPTION_LEN;

	require(PARAMS_LEN + at + COW_EXCEPTION_LEN <= s->len);
	put64(s->b + PARAMS_LEN + at, old);
	put64(s->b + PARAMS_LEN + at + 8, new);
}

static void store_add(struct store *s, void (*add)(const void *p, size_t n))
{
	add(s->b, s->len);
	free(s->b);
}

void tern_fuzz_seeds(void (*add)(const void *p, size_t n))
{
	/* Block size selectors (mode bits 2-4): 0 4 KiB, 1 512 bytes, 4 8 KiB. */
	const uint8_t exact = DEV_EXACT, sparse = DEV_SPARSE, b512 = 1 << 2, b8k = 4 << 2;
	struct store s;

	/* 512-byte chunks, a few exceptions in area 0, 64 KiB device: area 0 is chunk 1, its
	 * data chunks 2..33. */
	s = store_new(sparse, 1 << 20, 128, 1024, 512, COW_MAGIC, 1);
	store_exception(&s, 0, 0, 0, 2);
	store_exception(&s, 0, 1, 9, 3);
	store_exception(&s, 0, 2, 2047, 4);
	store_add(&s, add);
	/* The same over 512-byte blocks, and a short, odd origin. */
	s = store_new(sparse | b512, 5000, 128, 1024, 512, COW_MAGIC, 1);
	store_exception(&s, 0, 0, 9, 2);
	store_exception(&s, 0, 1, 0, 33);
	store_add(&s, add);
	/* Area 0 full, then area 1 (chunk 34) with one exception. */
	s = store_new(sparse, 16 << 20, 256, 35 * 512, 512, COW_MAGIC, 1);
	for (uint64_t i = 0; i < 32; i++)
		store_exception(&s, 0, i, i * 3, 2 + i);
	store_exception(&s, 1, 0, 1000, 35);
	store_add(&s, add);
	/* 4 KiB chunks, whole device in the file. */
	s = store_new(exact, 1 << 20, 0, 16 * 4096, 4096, COW_MAGIC, 1);
	store_exception(&s, 0, 0, 0, 2);
	store_exception(&s, 0, 1, 255, 15);
	store_add(&s, add);
	/* 8 KiB chunks over 8 KiB blocks; and 1 MiB chunks, the largest accepted. */
	s = store_new(sparse | b8k, 3 << 20, 2048, 2 * 8192, 8192, COW_MAGIC, 1);
	store_exception(&s, 0, 0, 1, 2);
	store_exception(&s, 0, 1, 383, 3);
	store_add(&s, add);
	s = store_new(sparse, 64 << 20, 8192, 16, 1 << 20, COW_MAGIC, 1);
	store_add(&s, add);
	/* Empty; invalidated by the kernel; never written; a device claiming more. */
	s = store_new(sparse, 1 << 20, 16, 16, 4096, COW_MAGIC, 1);
	store_add(&s, add);
	s = store_new(sparse, 1 << 20, 128, 1024, 512, COW_MAGIC, 0);
	store_exception(&s, 0, 0, 3, 2);
	store_add(&s, add);
	s = store_new(sparse, 1 << 20, 16, 16, 4096, 0, 0);
	store_add(&s, add);
	s = store_new(DEV_SHORT_FILE, 1 << 20, 64, 1024, 512, COW_MAGIC, 1);
	store_exception(&s, 0, 0, 1, 2);
	store_add(&s, add);
	/* Each one past a bound, to be refused: the original just past the origin (2048
	 * chunks); the copy in area 1's metadata chunk (34), or just past the device (128). */
	for (unsigned i = 0; i < 3; i++) {
		s = store_new(sparse, 1 << 20, 128, 1024, 512, COW_MAGIC, 1);
		store_exception(&s, 0, 0, 2047, 33);
		store_exception(&s, 0, 1, i == 0 ? 2048 : 0, i == 1 ? 34 : i == 2 ? 128 : 127);
		store_add(&s, add);
	}
}

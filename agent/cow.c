// SPDX-License-Identifier: GPL-2.0-only
/* A dm-snapshot's persistent exception store, read as untrusted input; see cow.h. */
#include "agent/cow.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"

/* The kernel takes chunks from 1 sector up; 1 MiB is well past what LVM allows (512 KiB). */
#define COW_MAX_CHUNK_SECTORS 2048u

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

int cow_parse_header(const void *buf, size_t len, struct cow_header *ret_h)
{
	const uint8_t *p = buf;
	uint32_t magic, valid, version, cs;

	if (len < COW_HEADER_LEN)
		return -EBADMSG;
	magic = le32(p);
	valid = le32(p + 4);
	version = le32(p + 8);
	cs = le32(p + 12);
	if (magic == 0)
		return -ENODATA;
	if (magic != COW_MAGIC || version != COW_VERSION || valid > 1 || cs == 0 ||
	    cs > COW_MAX_CHUNK_SECTORS || (cs & (cs - 1)))
		return -EBADMSG;
	ret_h->valid = valid == 1;
	ret_h->chunk_sectors = cs;
	return 0;
}

static int cow_pread(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EBADMSG; /* the store claims more than the device holds */
		done += (size_t)n;
	}
	return 0;
}

/* Sets the bits of every block that [first, end) bytes overlaps. */
static void mark_range(uint64_t *blocks, uint64_t first, uint64_t end, uint32_t block_size)
{
	for (uint64_t b = first / block_size; b < DIV_ROUND_UP(end, block_size); b++)
		blocks[b / 64] |= UINT64_C(1) << (b % 64);
}

int64_t cow_read_exceptions(int fd, uint64_t cow_bytes, uint64_t origin_bytes,
			    uint32_t block_size, uint64_t *blocks)
{
	uint64_t chunk, per_area, cow_chunks, origin_chunks, count = 0;
	struct cow_header h;
	uint8_t *buf = NULL;
	int64_t r;

	if (block_size == 0 || origin_bytes == 0)
		return -EINVAL;
	r = -ENOMEM;
	/* The largest chunk the header may claim: no second read, and O_DIRECT-aligned. */
	buf = alloc_aligned(4096, COW_MAX_CHUNK_SECTORS * 512);
	if (!buf)
		goto out;
	if (cow_bytes < 4096) {
		r = -EBADMSG;
		goto out;
	}
	r = cow_pread(fd, buf, 4096, 0);
	if (r < 0)
		goto out;
	r = cow_parse_header(buf, 4096, &h);
	if (r < 0)
		goto out;
	if (!h.valid) {
		r = -ESTALE;
		goto out;
	}
	chunk = (uint64_t)h.chunk_sectors * 512;
	per_area = chunk / COW_EXCEPTION_LEN;
	cow_chunks = cow_bytes / chunk;
	origin_chunks = DIV_ROUND_UP(origin_bytes, chunk);
	/* Area i's metadata sits at chunk 1 + i * (per_area + 1), its data right after it. */
	for (uint64_t area = 0;; area++) {
		uint64_t at = 1 + area * (per_area + 1);

		/* A valid store always has a zeroed area after its last full one, so running
		 * off the device means the store is not what it claims. */
		if (at >= cow_chunks) {
			r = -EBADMSG;
			goto out;
		}
		r = cow_pread(fd, buf, chunk, at * chunk);
		if (r < 0)
			goto out;
		for (uint64_t i = 0; i < per_area; i++) {
			uint64_t old = le64(buf + i * COW_EXCEPTION_LEN);
			uint64_t new = le64(buf + i * COW_EXCEPTION_LEN + 8);

			if (new == 0) {
				r = (int64_t)count;
				goto out;
			}
			/* The copy must lie in the device, in a data chunk (not the header, not
			 * an area's metadata), and the original inside the origin. */
			if (new >= cow_chunks || (new - 1) % (per_area + 1) == 0 || old >= origin_chunks) {
				r = -EBADMSG;
				goto out;
			}
			mark_range(blocks, old * chunk, MIN((old + 1) * chunk, origin_bytes), block_size);
			count++;
		}
	}
out:
	free(buf);
	return r;
}

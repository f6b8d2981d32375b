/* SPDX-License-Identifier: GPL-2.0-only */
/* Reads a persistent dm-snapshot's exception store (the COW device): which chunks of the
 * origin were written since the snapshot was taken. The device is input, not trusted:
 * every field is checked, and a store that does not add up is -EBADMSG. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The on-disk layout, as the kernel's dm-snap-persistent writes it (little-endian):
 * chunk 0 holds the header {magic, valid, version, chunk_size in sectors}; then metadata
 * areas, each one chunk of {old_chunk, new_chunk} pairs followed by as many data chunks
 * as it has pairs. A pair whose new_chunk is 0 (the header's chunk) ends the list. */
#define COW_MAGIC 0x70416e53u  /* "SnAp" */
#define COW_VERSION 1u
#define COW_HEADER_LEN 16u
#define COW_EXCEPTION_LEN 16u

struct cow_header {
	bool valid;             /* false: the kernel invalidated the snapshot (it overflowed) */
	uint32_t chunk_sectors; /* a power of two */
};

/* Parses the header at the start of chunk 0 (len >= COW_HEADER_LEN). Returns 0, -ENODATA
 * when the store was never written (magic 0), or -EBADMSG. */
int cow_parse_header(const void *buf, size_t len, struct cow_header *ret_h);
/* Reads the store on fd (cow_bytes long) of a snapshot of an origin_bytes-long origin and
 * sets, in blocks (a bit per block_size bytes of the origin, ceil(origin_bytes /
 * block_size) bits), every block that an exception's origin chunk overlaps. The store is
 * read with pread, in aligned buffers, so fd may be O_DIRECT. Returns the number of
 * exceptions, or -errno: -ESTALE when the store says the snapshot is invalid (nothing is
 * marked), -EBADMSG when it is malformed (blocks may be partly marked). */
int64_t cow_read_exceptions(int fd, uint64_t cow_bytes, uint64_t origin_bytes,
			    uint32_t block_size, uint64_t *blocks);

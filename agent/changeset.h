/* SPDX-License-Identifier: GPL-2.0-only */
/* One epoch's change set: what the read pipeline reads and sends of a disk. A tracker
 * (track.h) builds it; the reader (reader.h) consumes it. */
#pragma once
#include <stdint.h>

struct bsum;
struct fp;

struct changeset {
	/* Fingerprints of every chunk as the receiver holds them: only chunks whose
	 * fingerprint differs are sent. Read with fps_get (common/fptab.h: a stored zero is
	 * a zero chunk's). Borrowed; NULL sends everything (and the fields below must be
	 * NULL too). */
	const struct fp *prev;
	/* With prev: the chunks prev vouches for (a first copy resumed from the receiver's
	 * checkpoint); the others are unknown on the target, so they are sent whole (never as
	 * a patch), whatever their fingerprint, and never count as missed. NULL: all. */
	const uint64_t *held;
	/* With prev: a bitmap of the chunks that may have changed; the others are not read
	 * and keep their fingerprint from prev. NULL: read every chunk. */
	const uint64_t *only;
	/* With prev and only NULL: the tracker's marks, to count changed chunks it did not
	 * report (rd_out.missed_chunks). */
	const uint64_t *marks;
	/* With only: the changed blocks (bit per block_size bytes of the disk). A whole chunk
	 * with some but not all of its blocks changed is sent as a PATCH of just those blocks.
	 * NULL: whole chunks. block_size must then split a chunk into 2..64. */
	const uint64_t *blocks;
	uint32_t block_size;
	/* Without blocks: the scan tracker's block sums (blocksum.h), or NULL. A whole chunk
	 * whose fingerprint differs from prev, whose sums describe prev's content and with
	 * some but not all block sums changed, is sent as a PATCH of those blocks; every
	 * whole chunk read gets its sums updated (the workers write them: borrowed, not
	 * const). */
	struct bsum *sums;
	/* Chunks wholly in the free space of a file system on the source (fsmap.h), or NULL:
	 * sent as zeros without being read, in every epoch (with only too: space freed since
	 * is zeroed on the target), and never counted as missed. */
	const uint64_t *free;
	/* Where the epoch reads: a snapshot's descriptor (owned by its provider, same size and
	 * O_DIRECT-ness as the source), or -1 for the source's own. */
	int fd;
};

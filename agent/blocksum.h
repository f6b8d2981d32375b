/* SPDX-License-Identifier: GPL-2.0-only */
/* Block sums: for the scan tracker, a small hash of every block of every chunk of a disk,
 * so that a chunk whose fingerprint changed is sent as a PATCH of the blocks whose hash
 * changed instead of whole. Each chunk's sums carry a tag, the low 64 bits of the
 * fingerprint of the content they describe: they describe what the receiver holds exactly
 * when the tag matches the receiver's fingerprint of that chunk, so nothing has to be
 * invalidated when a connection, an epoch or a patch fails (see docs/ARCHITECTURE.md,
 * "Deltas without a block tracker"). The read pipeline's workers each touch their own
 * chunks, so no entry is shared and nothing needs a lock. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

struct fp;
struct bsum;

/* Most blocks a chunk may have: a PATCH frame's mask is 64 bits. */
#define BSUM_MAX_BLOCKS 64u

/* Bytes the sums of nchunks chunks of chunk_size bytes at block_size take (tags
 * included); 0 when a chunk cannot be patched in such blocks (proto_patch_fits). */
uint64_t bsum_bytes(uint64_t nchunks, uint32_t chunk_size, uint32_t block_size);
/* New sums for nchunks chunks, none describing anything yet. Returns 0, -EINVAL (a shape
 * bsum_bytes refuses) or -ENOMEM. */
int bsum_new(uint64_t nchunks, uint32_t chunk_size, uint32_t block_size, struct bsum **ret_b);
struct bsum *bsum_free(struct bsum *b);
/* Whether b has sums for chunks of chunk_size bytes (the reader checks its own). */
bool bsum_fits(const struct bsum *b, uint32_t chunk_size);
uint32_t bsum_block_size(const struct bsum *b);
/* Whether chunk idx's sums describe the content whose fingerprint is fp (false for a chunk
 * beyond the sums, e.g. of a disk grown since they were made). */
bool bsum_holds(const struct bsum *b, uint64_t idx, const struct fp *fp);
/* The sums of one whole chunk's bytes into out (one per block). */
void bsum_compute(const struct bsum *b, const uint8_t *chunk, uint32_t *out);
/* The blocks whose sum in now differs from chunk idx's stored ones, as a mask. */
uint64_t bsum_diff(const struct bsum *b, uint64_t idx, const uint32_t *now);
/* Test seam: block `block` of every chunk sums to the same value whatever it holds, as a
 * collision would make it (UINT32_MAX: off). */
void bsum_fault_blind(struct bsum *b, uint32_t block);
/* Chunk idx's sums become now (NULL: an all-zero chunk's), describing the content whose
 * fingerprint is fp. Nothing for a chunk beyond the sums. */
void bsum_store(struct bsum *b, uint64_t idx, const uint32_t *now, const struct fp *fp);

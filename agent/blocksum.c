// SPDX-License-Identifier: GPL-2.0-only
/* Block sums of a disk's chunks for the scan tracker's patches; see blocksum.h. */
#include "agent/blocksum.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/fp.h"
#include "common/proto.h"

struct bsum {
	uint32_t chunk_size, block_size, per;
	uint64_t nchunks;
	uint32_t zero_sum; /* the sum of an all-zero block */
	uint32_t blind;    /* test seam: this block of each chunk always sums to 0 */
	/* Per chunk: the low 64 bits of the fingerprint its sums describe. A chunk never
	 * summed holds 0, which a real fingerprint matches with odds of 2^-64 (and then
	 * the receiver's check of the patched chunk refuses it: never silent). */
	uint64_t *tag;
	uint32_t *sums;    /* per blocks of every chunk, chunk-major */
};

/* A block's sum: the low 32 bits of XXH3-64. A changed block with an unchanged sum (odds
 * 2^-32) is left out of its patch, and the receiver refuses the patch (ESTALE). */
static uint32_t block_sum(const uint8_t *p, uint32_t len)
{
	return (uint32_t)XXH3_64bits(p, len);
}

static uint64_t tag_of(const struct fp *fp)
{
	uint64_t t;

	memcpy(&t, fp->b + FP_LEN - sizeof(t), sizeof(t));
	return t;
}

uint64_t bsum_bytes(uint64_t nchunks, uint32_t chunk_size, uint32_t block_size)
{
	if (!proto_patch_fits(chunk_size, block_size))
		return 0;
	return nchunks * (sizeof(uint64_t) + (uint64_t)(chunk_size / block_size) * sizeof(uint32_t));
}

int bsum_new(uint64_t nchunks, uint32_t chunk_size, uint32_t block_size, struct bsum **ret_b)
{
	struct bsum *b;
	uint8_t *zero;

	if (nchunks == 0 || bsum_bytes(nchunks, chunk_size, block_size) == 0)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	zero = calloc(1, block_size);
	if (!b || !zero)
		goto nomem;
	b->chunk_size = chunk_size;
	b->block_size = block_size;
	b->per = chunk_size / block_size;
	b->nchunks = nchunks;
	b->blind = UINT32_MAX;
	b->zero_sum = block_sum(zero, block_size);
	/* calloc: untouched pages of a large disk's sums cost nothing until summed. */
	b->tag = calloc(nchunks, sizeof(*b->tag));
	b->sums = calloc(nchunks * b->per, sizeof(*b->sums));
	if (!b->tag || !b->sums)
		goto nomem;
	free(zero);
	*ret_b = b;
	return 0;
nomem:
	free(zero);
	bsum_free(b);
	return -ENOMEM;
}

struct bsum *bsum_free(struct bsum *b)
{
	if (!b)
		return NULL;
	free(b->tag);
	free(b->sums);
	free(b);
	return NULL;
}

bool bsum_fits(const struct bsum *b, uint32_t chunk_size)
{
	return b->chunk_size == chunk_size;
}

uint32_t bsum_block_size(const struct bsum *b)
{
	return b->block_size;
}

bool bsum_holds(const struct bsum *b, uint64_t idx, const struct fp *fp)
{
	return idx < b->nchunks && b->tag[idx] == tag_of(fp);
}

void bsum_compute(const struct bsum *b, const uint8_t *chunk, uint32_t *out)
{
	for (uint32_t i = 0; i < b->per; i++)
		out[i] = i == b->blind ? 0 : block_sum(chunk + (size_t)i * b->block_size, b->block_size);
}

void bsum_fault_blind(struct bsum *b, uint32_t block)
{
	b->blind = block;
}

uint64_t bsum_diff(const struct bsum *b, uint64_t idx, const uint32_t *now)
{
	const uint32_t *old = b->sums + idx * b->per;
	uint64_t mask = 0;

	for (uint32_t i = 0; i < b->per; i++)
		if (old[i] != now[i])
			mask |= UINT64_C(1) << i;
	return mask;
}

void bsum_store(struct bsum *b, uint64_t idx, const uint32_t *now, const struct fp *fp)
{
	uint32_t *dst = b->sums + idx * b->per;

	if (idx >= b->nchunks)
		return;
	for (uint32_t i = 0; i < b->per; i++)
		dst[i] = now ? now[i] : b->zero_sum;
	b->tag[idx] = tag_of(fp);
}

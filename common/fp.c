// SPDX-License-Identifier: GPL-2.0-only
/* Chunk fingerprints and the Merkle root over them; see fp.h. */
#include "common/fp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#ifdef TERN_XXH_DISPATCH
/* From xxh_x86dispatch.h, which cannot be combined with XXH_INLINE_ALL: the same XXH3,
 * dispatched at run time to the widest vector unit the CPU has. */
XXH128_hash_t XXH3_128bits_dispatch(const void *input, size_t len);
#define fp_xxh3 XXH3_128bits_dispatch
#else
#define fp_xxh3 XXH3_128bits
#endif

static void fp_from_hash(XXH128_hash_t h, struct fp *ret_fp)
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, h);
	memcpy(ret_fp->b, c.digest, FP_LEN);
}

void fp_compute(const void *data, size_t len, struct fp *ret_fp)
{
	fp_from_hash(fp_xxh3(data, len), ret_fp);
}

void fp_zero(size_t len, struct fp *ret_fp)
{
	static _Thread_local size_t cached_len = SIZE_MAX;
	static _Thread_local struct fp cached;

	if (len != cached_len) {
		void *z = calloc(1, len ? len : 1);
		if (!z) {
			/* Out of memory: hash in 4 KiB steps with a streaming state instead. */
			static const uint8_t zeros[4096];
			XXH3_state_t st;
			size_t left = len;

			XXH3_128bits_reset(&st);
			while (left > 0) {
				size_t n = left < sizeof(zeros) ? left : sizeof(zeros);
				XXH3_128bits_update(&st, zeros, n);
				left -= n;
			}
			fp_from_hash(XXH3_128bits_digest(&st), ret_fp);
			return;
		}
		fp_compute(z, len, &cached);
		free(z);
		cached_len = len;
	}
	*ret_fp = cached;
}

bool fp_equal(const struct fp *a, const struct fp *b)
{
	return memcmp(a->b, b->b, FP_LEN) == 0;
}

const char *fp_hex(const struct fp *fp, char *buf)
{
	for (int i = 0; i < FP_LEN; i++)
		sprintf(buf + 2 * i, "%02x", fp->b[i]);
	buf[2 * FP_LEN] = '\0';
	return buf;
}

int fp_merkle_root(const struct fp *fps, uint64_t n, struct fp *ret_root)
{
	struct fp *level;
	uint64_t cnt;

	if (n == 0) {
		memset(ret_root, 0, sizeof(*ret_root));
		return 0;
	}
	if (n == 1) {
		*ret_root = fps[0];
		return 0;
	}
	cnt = (n + 1) / 2;
	level = malloc(cnt * sizeof(*level));
	if (!level)
		return -ENOMEM;
	/* First level reads from the caller's leaves; later levels fold in place. */
	for (uint64_t i = 0; i < cnt; i++) {
		if (2 * i + 1 < n)
			fp_compute(&fps[2 * i], 2 * sizeof(struct fp), &level[i]);
		else
			level[i] = fps[2 * i];
	}
	while (cnt > 1) {
		uint64_t next = (cnt + 1) / 2;
		for (uint64_t i = 0; i < next; i++) {
			if (2 * i + 1 < cnt)
				fp_compute(&level[2 * i], 2 * sizeof(struct fp), &level[i]);
			else
				level[i] = level[2 * i];
		}
		cnt = next;
	}
	*ret_root = level[0];
	free(level);
	return 0;
}

void fp_merkle_init(struct fp_merkle *m)
{
	m->depth = 0;
}

/* Hashes two nodes as fp_merkle_root does: XXH3-128 over both 16-byte forms. */
static void merkle_join(const struct fp *l, const struct fp *r, struct fp *ret)
{
	struct fp pair[2] = { *l, *r };

	fp_compute(pair, sizeof(pair), ret);
}

/* Pushes the root of a complete subtree of `leaves` leaves (a power of two, at most the
 * top node's, so the stack stays the binary form of the count) and folds equal sizes. */
static void merkle_push(struct fp_merkle *m, const struct fp *node, uint64_t leaves)
{
	m->node[m->depth] = *node;
	m->leaves[m->depth++] = leaves;
	/* Two complete subtrees of one size become their parent. 2^64 leaves never come,
	 * so depth stays below 64. */
	while (m->depth >= 2 && m->leaves[m->depth - 1] == m->leaves[m->depth - 2]) {
		merkle_join(&m->node[m->depth - 2], &m->node[m->depth - 1], &m->node[m->depth - 2]);
		m->leaves[m->depth - 2] *= 2;
		m->depth--;
	}
}

void fp_merkle_add(struct fp_merkle *m, const struct fp *leaf)
{
	merkle_push(m, leaf, 1);
}

void fp_merkle_add_run(struct fp_merkle *m, const struct fp *leaf, uint64_t n)
{
	/* full[k]: the root of 2^k copies of leaf, made as far up as this run needs. */
	struct fp full[64];
	unsigned made = 1;

	full[0] = *leaf;
	while (n > 0) {
		/* The largest complete subtree that fits both the run and the alignment: the
		 * next leaf's index is a multiple of the top node's size. */
		uint64_t room = m->depth ? m->leaves[m->depth - 1] : UINT64_C(1) << 63;
		unsigned k = 63 - (unsigned)__builtin_clzll(n);

		while ((UINT64_C(1) << k) > room)
			k--;
		for (; made <= k; made++)
			merkle_join(&full[made - 1], &full[made - 1], &full[made]);
		merkle_push(m, &full[k], UINT64_C(1) << k);
		n -= UINT64_C(1) << k;
	}
}

void fp_merkle_final(const struct fp_merkle *m, struct fp *ret_root)
{
	struct fp acc;

	if (m->depth == 0) {
		memset(ret_root, 0, sizeof(*ret_root));
		return;
	}
	/* The carried-up odd nodes join from the right. */
	acc = m->node[m->depth - 1];
	for (unsigned i = m->depth - 1; i-- > 0;)
		merkle_join(&m->node[i], &acc, &acc);
	*ret_root = acc;
}

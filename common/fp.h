/* SPDX-License-Identifier: GPL-2.0-only */
/* Chunk fingerprints (XXH3-128 of a chunk's plain content, big-endian canonical form)
 * and the Merkle root over a disk's chunk fingerprints that both sides compare. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define FP_LEN 16

struct fp {
	uint8_t b[FP_LEN];
};

/* Fingerprints len bytes of plain chunk content. */
void fp_compute(const void *data, size_t len, struct fp *ret_fp);
/* The fingerprint of len zero bytes, without touching a buffer that large more than once
 * per length (cached per thread for the last length asked). */
void fp_zero(size_t len, struct fp *ret_fp);
bool fp_equal(const struct fp *a, const struct fp *b);
/* Hex form (32 characters + NUL) into buf of at least 33 bytes; returns buf. */
const char *fp_hex(const struct fp *fp, char *buf);

/* Root of a binary Merkle tree whose leaves are fps[0..n): a parent is XXH3-128 of its two
 * children's bytes; an odd last node is carried up unchanged; n == 0 gives all zeros.
 * Returns 0 or -ENOMEM. */
int fp_merkle_root(const struct fp *fps, uint64_t n, struct fp *ret_root);

/* The same root computed leaf by leaf in constant memory: the level-wise tree above is
 * the one whose left subtree holds the largest power of two of leaves below n, so a
 * stack of complete subtrees (at most 64) is all that needs keeping. */
struct fp_merkle {
	struct fp node[64];
	uint64_t leaves[64]; /* how many leaves node[i] covers (a power of two) */
	unsigned depth;
};

void fp_merkle_init(struct fp_merkle *m);
void fp_merkle_add(struct fp_merkle *m, const struct fp *leaf);
/* The same as n calls of fp_merkle_add with one leaf, in O(log n) hashes rather than n: a
 * run of zero chunks (a TiB of holes is 16M leaves at 64 KiB) adds whole subtrees of
 * identical leaves, whose roots are one hash per level. */
void fp_merkle_add_run(struct fp_merkle *m, const struct fp *leaf, uint64_t n);
/* The root of the leaves added so far (all zeros for none). */
void fp_merkle_final(const struct fp_merkle *m, struct fp *ret_root);

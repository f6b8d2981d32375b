/* SPDX-License-Identifier: GPL-2.0-only */
/* A disk's chunk fingerprints as both sides keep them: one array per disk in an anonymous
 * mapping whose untouched pages cost no memory and read as zeros, in which 16 zero bytes
 * stand for the fingerprint of a zero chunk (of that chunk's length: the last chunk may be
 * short). A sparse disk's holes therefore cost nothing, on either side, however large the
 * disk. A real XXH3-128 of all zeros would read as a zero chunk's; the roots then differ
 * and nothing is verified, so that can only fail closed. Entries are read with fps_get and
 * written with fps_put (or fps_zero for a range); a plain read gives the stored form. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "common/fp.h"

/* Bytes of the array's mapping for nchunks (whole pages): what a budget counts. */
size_t fps_map_len(uint64_t nchunks);
/* An array of nchunks entries, all zero chunks, no memory committed. NULL when out of
 * memory or nchunks is 0 or absurd. */
struct fp *fps_alloc(uint64_t nchunks);
/* NULL-safe; returns NULL. The array knows its own length (a page before it). */
struct fp *fps_free(struct fp *fps);
/* Grows an array from old_n to n entries (n > old_n, old_n its length), in place or moved;
 * the new entries are zero chunks and cost no memory until written. Returns the array, or
 * NULL (out of memory, or not a growth of this array: fps is then still valid at old_n). */
struct fp *fps_grow(struct fp *fps, uint64_t old_n, uint64_t n);
/* Records entries [first, last) as zero chunks without committing memory for them. */
void fps_zero(struct fp *fps, uint64_t first, uint64_t last);
/* Entry i's fingerprint as computed from the chunk's bytes, for a disk of size bytes in
 * chunks of cs: a stored zero becomes the zero chunk's fingerprint of its length. */
void fps_get(const struct fp *fps, uint64_t i, uint64_t size, uint32_t cs, struct fp *ret);
/* Stores fp as entry i: a zero chunk's fingerprint (or an all-zero one, the stored form)
 * as zeros, written only when the entry held something else, so that a page of zero
 * chunks is never touched. Entries of one array may be put by several threads at once as
 * long as each entry has one writer. */
void fps_put(struct fp *fps, uint64_t i, const struct fp *fp, uint64_t size, uint32_t cs);
/* The Merkle root (fp_merkle_root's) over every entry, decoded, leaf by leaf: no second
 * array as large as the first. */
void fps_root(const struct fp *fps, uint64_t size, uint32_t cs, struct fp *ret_root);

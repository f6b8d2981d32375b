// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests for common/codec.c and common/fp.c: one Check suite each (common/util.c's are
 * in test-util.c).
 * Decompression is watched with a guard region after the output; Merkle roots are checked
 * against a plain level-by-level computation of the tree fp.h describes. */
#include "common/codec.h"
#include "common/fp.h"
#include "common/util.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>
#include "helpers.h"

#define GUARD_LEN 4096
#define GUARD_BYTE 0x5a

static uint64_t rng_state;

/* splitmix64: deterministic, so a failure reproduces. */
static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
	rng_state = seed;
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rng_next();
}

/* Log-like lines from a small vocabulary: compresses well, but not trivially. */
static void fill_text(uint8_t *p, size_t n, uint64_t seed)
{
	static const char *const words[] = {
		"block", "extent", "epoch", "receiver", "agent", "chunk", "written", "bytes",
		"ok", "fingerprint", "disk", "vda", "merkle", "root", "sent", "zero", "tls",
	};
	size_t i = 0;

	rng_state = seed;
	while (i < n) {
		char word[32];
		uint64_t r = rng_next();
		int len;

		if (r % 9 == 0)
			len = snprintf(word, sizeof(word), "%u\n", (unsigned)(r >> 40) % 100000);
		else
			len = snprintf(word, sizeof(word), "%s ", words[(r >> 8) % ARRAY_SIZE(words)]);
		for (int k = 0; k < len && i < n; k++)
			p[i++] = (uint8_t)word[k];
	}
}

/* An output buffer of plain_len bytes followed by a guard region. */
static uint8_t *guarded_alloc(size_t plain_len)
{
	uint8_t *p = malloc(plain_len + GUARD_LEN);

	ck_assert_ptr_nonnull(p);
	memset(p, 0, plain_len);
	memset(p + plain_len, GUARD_BYTE, GUARD_LEN);
	return p;
}

/* Asserts once, not per byte: every passing ck_assert reports to the fork-mode parent. */
static void assert_guard_intact(const uint8_t *p, size_t plain_len)
{
	size_t i = 0;

	while (i < GUARD_LEN && p[plain_len + i] == GUARD_BYTE)
		i++;
	ck_assert_msg(i == GUARD_LEN, "wrote past plain_len %zu, at +%zu", plain_len, i);
}

/* Compresses n text bytes into a fresh buffer; the frame length goes to ret_len. */
static uint8_t *compress_text(struct codec *c, const uint8_t *src, size_t n, size_t *ret_len)
{
	size_t cap = codec_bound(n);
	uint8_t *dst = malloc(cap + 64);
	long r;

	ck_assert_ptr_nonnull(dst);
	r = codec_compress(c, dst, cap, src, n);
	ck_assert_int_gt(r, 0);
	*ret_len = (size_t)r;
	return dst;
}

/* Codec */

START_TEST(test_codec_roundtrip_text)
{
	static const int levels[] = { CODEC_LEVEL_MIN, CODEC_LEVEL_DEFAULT, 3, CODEC_LEVEL_MAX };
	static const size_t sizes[] = { 4096, 100000, 1u << 20 };
	int level = levels[_i];

	for (size_t s = 0; s < ARRAY_SIZE(sizes); s++) {
		size_t n = sizes[s], clen;
		struct codec *c = codec_new(level);
		uint8_t *src = malloc(n), *frame, *out;

		/* The slowest level only on the smaller sizes. */
		if (level == CODEC_LEVEL_MAX && n > 100000) {
			free(src);
			codec_free(c);
			continue;
		}
		ck_assert_ptr_nonnull(c);
		ck_assert_ptr_nonnull(src);
		fill_text(src, n, 1000 + s);
		frame = compress_text(c, src, n, &clen);
		/* It must save at least 1/32, or it would have been reported incompressible. */
		ck_assert_uint_lt(clen, n - n / 32);
		out = guarded_alloc(n);
		ck_assert_int_eq(codec_decompress(c, out, n, frame, clen), 0);
		ck_assert_mem_eq(out, src, n > 64 ? 64 : n);
		ck_assert(memcmp(out, src, n) == 0);
		assert_guard_intact(out, n);
		/* The contexts are reusable: a second round through the same codec. */
		memset(out, 0, n);
		ck_assert_int_eq(codec_decompress(c, out, n, frame, clen), 0);
		ck_assert(memcmp(out, src, n) == 0);
		free(out);
		free(frame);
		free(src);
		ck_assert_ptr_null(codec_free(c));
	}
}
END_TEST

START_TEST(test_codec_reports_random_incompressible)
{
	static const size_t sizes[] = { 0, 1, 100, 4096, 65536, 1u << 20 };
	struct codec *c = codec_new(CODEC_LEVEL_DEFAULT);

	ck_assert_ptr_nonnull(c);
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		size_t n = sizes[i];
		uint8_t *src = malloc(n + 1), *dst = malloc(codec_bound(n));

		ck_assert_ptr_nonnull(src);
		ck_assert_ptr_nonnull(dst);
		fill_random(src, n, 7 + i);
		ck_assert_int_eq(codec_compress(c, dst, codec_bound(n), src, n), 0);
		free(dst);
		free(src);
	}
	codec_free(c);
}
END_TEST

START_TEST(test_codec_compress_needs_bound)
{
	struct codec *c = codec_new(CODEC_LEVEL_DEFAULT);
	size_t n = 65536;
	uint8_t *src = malloc(n), *dst = malloc(codec_bound(n));

	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_nonnull(src);
	ck_assert_ptr_nonnull(dst);
	fill_text(src, n, 3);
	ck_assert_uint_ge(codec_bound(n), n);
	ck_assert_int_eq(codec_compress(c, dst, codec_bound(n) - 1, src, n), -ENOBUFS);
	ck_assert_int_eq(codec_compress(c, dst, 0, src, n), -ENOBUFS);
	ck_assert_int_gt(codec_compress(c, dst, codec_bound(n), src, n), 0);
	free(dst);
	free(src);
	codec_free(c);
	ck_assert_ptr_null(codec_free(NULL));
}
END_TEST

START_TEST(test_codec_rejects_wrong_plain_len)
{
	struct codec *c = codec_new(CODEC_LEVEL_DEFAULT);
	size_t n = 40000, clen;
	const size_t wrong[] = { 0, 1, n - 1, n + 1, 2 * n, n - 4096 };
	uint8_t *src = malloc(n), *frame;

	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_nonnull(src);
	fill_text(src, n, 11);
	frame = compress_text(c, src, n, &clen);
	for (size_t i = 0; i < ARRAY_SIZE(wrong); i++) {
		uint8_t *out = guarded_alloc(wrong[i]);

		ck_assert_int_eq(codec_decompress(c, out, wrong[i], frame, clen), -EBADMSG);
		assert_guard_intact(out, wrong[i]);
		free(out);
	}
	free(frame);
	free(src);
	codec_free(c);
}
END_TEST

/* Rewrites the Frame_Content_Size field of a zstd frame (RFC 8878, 3.1.1.1) to v. Returns
 * false when the frame has no such field or v does not fit the field it has. */
static bool patch_content_size(uint8_t *f, size_t n, uint64_t v)
{
	static const unsigned did_len[] = { 0, 1, 2, 4 };
	unsigned fhd, fcs_flag, single, fcs_len;
	size_t off;

	if (n < 5)
		return false;
	fhd = f[4];
	fcs_flag = fhd >> 6;
	single = (fhd >> 5) & 1;
	fcs_len = fcs_flag == 0 ? single : 1u << fcs_flag;
	off = 5 + (single ? 0 : 1) + did_len[fhd & 3];
	if (fcs_len == 0 || off + fcs_len > n)
		return false;
	if (fcs_len == 2) {
		if (v < 256 || v > 65535 + 256)
			return false;
		v -= 256;
	} else if (fcs_len < 8 && (v >> (8 * fcs_len)) != 0) {
		return false;
	}
	for (unsigned i = 0; i < fcs_len; i++)
		f[off + i] = (uint8_t)(v >> (8 * i));
	return true;
}

/* A frame that lies about its size, with plain_len matching the lie: the decoder must stop
 * at plain_len bytes (or notice too few) instead of trusting the header. */
START_TEST(test_codec_rejects_frame_content_size_lie)
{
	struct codec *c = codec_new(CODEC_LEVEL_DEFAULT);
	size_t n = 40000, clen;
	const size_t lies[] = { n - 1, n + 1, n - 1000, 300 };
	uint8_t *src = malloc(n), *frame;

	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_nonnull(src);
	fill_text(src, n, 12);
	frame = compress_text(c, src, n, &clen);
	for (size_t i = 0; i < ARRAY_SIZE(lies); i++) {
		uint8_t *bad = malloc(clen), *out = guarded_alloc(lies[i]);

		ck_assert_ptr_nonnull(bad);
		memcpy(bad, frame, clen);
		ck_assert(patch_content_size(bad, clen, lies[i]));
		ck_assert_uint_eq(ZSTD_getFrameContentSize(bad, clen), lies[i]);
		ck_assert_int_eq(codec_decompress(c, out, lies[i], bad, clen), -EBADMSG);
		assert_guard_intact(out, lies[i]);
		free(out);
		free(bad);
	}
	free(frame);
	free(src);
	codec_free(c);
}
END_TEST

START_TEST(test_codec_rejects_frame_without_content_size)
{
	struct codec *c = codec_new(CODEC_LEVEL_DEFAULT);
	ZSTD_CCtx *z = ZSTD_createCCtx();
	size_t n = 20000, clen;
	uint8_t *src = malloc(n), *frame = malloc(ZSTD_compressBound(n)), *out = guarded_alloc(n);
	ZSTD_outBuffer ob = { frame, ZSTD_compressBound(n), 0 };
	ZSTD_inBuffer ib = { src, n, 0 };

	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_nonnull(z);
	ck_assert_ptr_nonnull(src);
	ck_assert_ptr_nonnull(frame);
	fill_text(src, n, 13);
	/* Streaming without a pledged size leaves the content size out of the header. */
	ck_assert(!ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_contentSizeFlag, 0)));
	ck_assert_uint_eq(ZSTD_compressStream2(z, &ob, &ib, ZSTD_e_end), 0);
	clen = ob.pos;
	ck_assert_uint_eq(ZSTD_getFrameContentSize(frame, clen), ZSTD_CONTENTSIZE_UNKNOWN);
	ck_assert_int_eq(codec_decompress(c, out, n, frame, clen), -EBADMSG);
	assert_guard_intact(out, n);
	ZSTD_freeCCtx(z);
	free(out);
	free(frame);
	free(src);
	codec_free(c);
}
END_TEST

START_TEST(test_codec_rejects_truncated_frame)
{
	struct codec *c = codec_new(CODEC_LEVEL_DEFAULT);
	size_t n = 30000, clen;
	uint8_t *src = malloc(n), *frame, *out = guarded_alloc(n);

	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_nonnull(src);
	fill_text(src, n, 14);
	frame = compress_text(c, src, n, &clen);
	for (size_t k = 0; k < clen; k++) {
		/* A copy of exactly k bytes, so a read past the end is caught by ASan. */
		uint8_t *cut = malloc(k ? k : 1);

		ck_assert_ptr_nonnull(cut);
		memcpy(cut, frame, k);
		ck_assert_msg(codec_decompress(c, out, n, cut, k) == -EBADMSG, "prefix %zu of %zu",
			      k, clen);
		assert_guard_intact(out, n);
		free(cut);
	}
	free(out);
	free(frame);
	free(src);
	codec_free(c);
}
END_TEST

START_TEST(test_codec_rejects_trailing_frames)
{
	/* An empty zstd frame (magic, header, one empty last raw block) and a skippable one. */
	static const uint8_t empty[] = { 0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x00, 0x01, 0x00, 0x00 };
	static const uint8_t skippable[] = { 0x50, 0x2a, 0x4d, 0x18, 0x00, 0x00, 0x00, 0x00 };
	const uint8_t *tails[] = { empty, skippable };
	const size_t tail_len[] = { sizeof(empty), sizeof(skippable) };
	size_t n = 65536, clen;
	struct codec *c = codec_new(CODEC_LEVEL_DEFAULT);
	uint8_t *src = malloc(n), *frame, *out = malloc(n);

	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_nonnull(src);
	ck_assert_ptr_nonnull(out);
	fill_text(src, n, 7);
	frame = compress_text(c, src, n, &clen);
	ck_assert_int_eq(codec_decompress(c, out, n, frame, clen), 0);
	for (size_t t = 0; t < 2; t++) {
		uint8_t *both = malloc(clen + tail_len[t]);

		ck_assert_ptr_nonnull(both);
		memcpy(both, frame, clen);
		memcpy(both + clen, tails[t], tail_len[t]);
		ck_assert_int_eq(codec_decompress(c, out, n, both, clen + tail_len[t]), -EBADMSG);
		free(both);
	}
	free(frame);
	free(src);
	free(out);
	codec_free(c);
}
END_TEST

START_TEST(test_codec_rejects_corrupted_frame)
{
	struct codec *c = codec_new(CODEC_LEVEL_DEFAULT);
	size_t n = 30000, clen, refused = 0;
	uint8_t *src = malloc(n), *frame, *bad, *out = guarded_alloc(n);

	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_nonnull(src);
	fill_text(src, n, 15);
	frame = compress_text(c, src, n, &clen);
	bad = malloc(clen + 8);
	ck_assert_ptr_nonnull(bad);

	/* A damaged magic number, and bytes after the frame. */
	for (size_t i = 0; i < 4; i++) {
		memcpy(bad, frame, clen);
		bad[i] ^= 0x01;
		ck_assert_int_eq(codec_decompress(c, out, n, bad, clen), -EBADMSG);
	}
	memcpy(bad, frame, clen);
	for (size_t extra = 1; extra <= 8; extra++) {
		bad[clen + extra - 1] = (uint8_t)(0x28 + extra);
		ck_assert_int_eq(codec_decompress(c, out, n, bad, clen + extra), -EBADMSG);
	}

	/* Every byte inverted in turn: without a checksum some damage to literals decodes to
	 * other bytes (the chunk fingerprints catch that), but nothing may crash or overrun. */
	for (size_t i = 0; i < clen; i++) {
		int r;

		memcpy(bad, frame, clen);
		bad[i] ^= 0xff;
		r = codec_decompress(c, out, n, bad, clen);
		ck_assert_msg(r == 0 || r == -EBADMSG, "byte %zu: %d", i, r);
		assert_guard_intact(out, n);
		refused += r == -EBADMSG;
	}
	ck_assert_uint_gt(refused, clen / 4);
	free(bad);
	free(out);
	free(frame);
	free(src);
	codec_free(c);
}
END_TEST

/* Fingerprints */

static struct fp pair_fp(const struct fp *a, const struct fp *b)
{
	uint8_t cat[2 * FP_LEN];
	struct fp r;

	memcpy(cat, a->b, FP_LEN);
	memcpy(cat + FP_LEN, b->b, FP_LEN);
	fp_compute(cat, sizeof(cat), &r);
	return r;
}

/* The tree of fp.h computed the plain way: a fresh array per level. */
static struct fp reference_root(const struct fp *leaves, size_t n)
{
	struct fp *cur = malloc((n ? n : 1) * sizeof(*cur)), r;

	ck_assert_ptr_nonnull(cur);
	memset(&r, 0, sizeof(r));
	if (n == 0) {
		free(cur);
		return r;
	}
	memcpy(cur, leaves, n * sizeof(*cur));
	while (n > 1) {
		size_t m = (n + 1) / 2;
		struct fp *next = malloc(m * sizeof(*next));

		ck_assert_ptr_nonnull(next);
		for (size_t i = 0; i < m; i++)
			next[i] = 2 * i + 1 < n ? pair_fp(&cur[2 * i], &cur[2 * i + 1]) : cur[2 * i];
		free(cur);
		cur = next;
		n = m;
	}
	r = cur[0];
	free(cur);
	return r;
}

static void make_leaves(struct fp *leaves, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t chunk[64];

		memset(chunk, (int)(seed + i), sizeof(chunk));
		chunk[0] = (uint8_t)i;
		fp_compute(chunk, sizeof(chunk), &leaves[i]);
	}
}

START_TEST(test_fp_known_answer)
{
	struct fp f;
	char hex[2 * FP_LEN + 1];

	/* XXH3-128 of no bytes, in canonical (big-endian, high half first) form. */
	fp_compute("", 0, &f);
	ck_assert_str_eq(fp_hex(&f, hex), "99aa06d3014798d86001c324468d497f");
}
END_TEST

START_TEST(test_fp_compute_is_deterministic)
{
	size_t n = 65536;
	uint8_t *a = malloc(n), *b = malloc(n + 3);
	struct fp fa, fa2, fb;

	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	fill_random(a, n, 21);
	fp_compute(a, n, &fa);
	fp_compute(a, n, &fa2);
	ck_assert(fp_equal(&fa, &fa2));
	/* The same bytes at an unaligned address. */
	memcpy(b + 3, a, n);
	fp_compute(b + 3, n, &fb);
	ck_assert(fp_equal(&fa, &fb));
	free(b);
	free(a);
}
END_TEST

START_TEST(test_fp_changes_on_one_bit)
{
	size_t n = 4096;
	uint8_t *a = malloc(n);
	struct fp orig, f;

	ck_assert_ptr_nonnull(a);
	fill_random(a, n, 22);
	fp_compute(a, n, &orig);
	for (size_t byte = 0; byte < n; byte += (byte < 64 || byte >= n - 64) ? 1 : 61) {
		for (unsigned bit = 0; bit < 8; bit++) {
			a[byte] ^= (uint8_t)(1u << bit);
			fp_compute(a, n, &f);
			ck_assert_msg(!fp_equal(&f, &orig), "bit %u of byte %zu", bit, byte);
			a[byte] ^= (uint8_t)(1u << bit);
		}
	}
	fp_compute(a, n, &f);
	ck_assert(fp_equal(&f, &orig));
	free(a);
}
END_TEST

START_TEST(test_fp_depends_on_length)
{
	uint8_t zeros[65] = { 0 };
	struct fp f[65];

	for (size_t i = 0; i < ARRAY_SIZE(f); i++)
		fp_compute(zeros, i, &f[i]);
	for (size_t i = 0; i < ARRAY_SIZE(f); i++) {
		for (size_t j = i + 1; j < ARRAY_SIZE(f); j++)
			ck_assert_msg(!fp_equal(&f[i], &f[j]), "zero runs %zu and %zu", i, j);
	}
}
END_TEST

START_TEST(test_fp_zero_matches_compute)
{
	static const size_t lens[] = { 0, 1, 7, 4096, 4097, 65536, 1u << 20, 3u << 20 };
	uint8_t *zeros = calloc(1, 3u << 20);
	struct fp want[ARRAY_SIZE(lens)], f;

	ck_assert_ptr_nonnull(zeros);
	for (size_t i = 0; i < ARRAY_SIZE(lens); i++) {
		fp_compute(zeros, lens[i], &want[i]);
		fp_zero(lens[i], &f);
		ck_assert_msg(fp_equal(&f, &want[i]), "length %zu", lens[i]);
		/* Asked again: served from the cache, still right. */
		fp_zero(lens[i], &f);
		ck_assert(fp_equal(&f, &want[i]));
	}
	/* Alternating lengths must not return a stale cached value. */
	for (size_t i = ARRAY_SIZE(lens); i-- > 0;) {
		fp_zero(lens[i], &f);
		ck_assert_msg(fp_equal(&f, &want[i]), "length %zu again", lens[i]);
		fp_zero(lens[(i + 3) % ARRAY_SIZE(lens)], &f);
		ck_assert(fp_equal(&f, &want[(i + 3) % ARRAY_SIZE(lens)]));
	}
	free(zeros);
}
END_TEST

START_TEST(test_fp_hex_and_equal)
{
	struct fp a, b;
	char hex[2 * FP_LEN + 1];

	for (int i = 0; i < FP_LEN; i++)
		a.b[i] = (uint8_t)(i * 0x11);
	ck_assert_ptr_eq(fp_hex(&a, hex), hex);
	ck_assert_str_eq(hex, "00112233445566778899aabbccddeeff");
	b = a;
	ck_assert(fp_equal(&a, &b));
	b.b[FP_LEN - 1] ^= 1;
	ck_assert(!fp_equal(&a, &b));
}
END_TEST

START_TEST(test_fp_merkle_root_small_trees)
{
	struct fp l[5], root, zero, want;

	make_leaves(l, ARRAY_SIZE(l), 0x30);
	memset(&zero, 0, sizeof(zero));

	/* n = 0: all zeros, and the leaves are not read. */
	memset(&root, 0xff, sizeof(root));
	ck_assert_int_eq(fp_merkle_root(NULL, 0, &root), 0);
	ck_assert(fp_equal(&root, &zero));

	/* n = 1: the leaf itself. */
	ck_assert_int_eq(fp_merkle_root(l, 1, &root), 0);
	ck_assert(fp_equal(&root, &l[0]));

	/* n = 2: H(l0 || l1). */
	want = pair_fp(&l[0], &l[1]);
	ck_assert_int_eq(fp_merkle_root(l, 2, &root), 0);
	ck_assert(fp_equal(&root, &want));

	/* n = 3: l2 is carried up unchanged, then H(H(l0 || l1) || l2). */
	{
		struct fp p01 = pair_fp(&l[0], &l[1]);

		want = pair_fp(&p01, &l[2]);
		ck_assert_int_eq(fp_merkle_root(l, 3, &root), 0);
		ck_assert(fp_equal(&root, &want));
		/* Not the same as hashing the odd leaf with itself or with zeros. */
		want = pair_fp(&l[2], &l[2]);
		want = pair_fp(&p01, &want);
		ck_assert(!fp_equal(&root, &want));
	}

	/* n = 5: carried twice: H(H(H01 || H23) || l4). */
	{
		struct fp p01 = pair_fp(&l[0], &l[1]), p23 = pair_fp(&l[2], &l[3]);
		struct fp q = pair_fp(&p01, &p23);

		want = pair_fp(&q, &l[4]);
		ck_assert_int_eq(fp_merkle_root(l, 5, &root), 0);
		ck_assert(fp_equal(&root, &want));
	}
}
END_TEST

START_TEST(test_fp_merkle_root_matches_reference)
{
	size_t max = 130;
	struct fp *l = malloc(max * sizeof(*l)), *copy = malloc(max * sizeof(*l));

	ck_assert_ptr_nonnull(l);
	ck_assert_ptr_nonnull(copy);
	make_leaves(l, max, 0x40);
	memcpy(copy, l, max * sizeof(*l));
	for (size_t n = 0; n <= max; n++) {
		struct fp root, want = reference_root(l, n);

		ck_assert_int_eq(fp_merkle_root(l, n, &root), 0);
		ck_assert_msg(fp_equal(&root, &want), "n = %zu", n);
	}
	/* The leaves are read, never folded in place. */
	ck_assert(memcmp(l, copy, max * sizeof(*l)) == 0);
	free(copy);
	free(l);
}
END_TEST

/* The leaf-by-leaf root the receiver computes in constant memory is the same tree. */
START_TEST(test_fp_merkle_stream_matches_root)
{
	size_t max = 300;
	struct fp *l = malloc(max * sizeof(*l));
	struct fp_merkle m;

	ck_assert_ptr_nonnull(l);
	make_leaves(l, max, 0x60);
	for (size_t n = 0; n <= max; n++) {
		struct fp root, want;

		fp_merkle_init(&m);
		for (size_t i = 0; i < n; i++)
			fp_merkle_add(&m, &l[i]);
		fp_merkle_final(&m, &root);
		ck_assert_int_eq(fp_merkle_root(l, n, &want), 0);
		ck_assert_msg(fp_equal(&root, &want), "n = %zu", n);
	}
	free(l);
}
END_TEST

/* Adds l[0..before), n copies of *z one by one or as one run, then l[before..+after). */
static void merkle_with_run(const struct fp *l, size_t before, const struct fp *z, uint64_t n,
			    size_t after, bool run, struct fp *ret_root)
{
	struct fp_merkle m;

	fp_merkle_init(&m);
	for (size_t i = 0; i < before; i++)
		fp_merkle_add(&m, &l[i]);
	if (run)
		fp_merkle_add_run(&m, z, n);
	else
		for (uint64_t i = 0; i < n; i++)
			fp_merkle_add(&m, z);
	for (size_t i = 0; i < after; i++)
		fp_merkle_add(&m, &l[before + i]);
	fp_merkle_final(&m, ret_root);
}

/* A run of identical leaves added at once gives the root of adding them one by one, at
 * every alignment the stack can be in and for run lengths around every power of two. */
START_TEST(test_fp_merkle_run_matches_leaf_by_leaf)
{
	static const uint64_t lens[] = { 0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64,
					 65, 100, 127, 128, 129, 255, 256, 257, 1000, 1023,
					 1024, 1025, 4097 };
	struct fp l[80], z;

	make_leaves(l, ARRAY_SIZE(l), 0x70);
	fp_zero(65536, &z);
	for (size_t before = 0; before <= 70; before++)
		for (size_t k = 0; k < ARRAY_SIZE(lens); k++)
			for (size_t after = 0; after <= 3; after++) {
				struct fp want, got;

				merkle_with_run(l, before, &z, lens[k], after, false, &want);
				merkle_with_run(l, before, &z, lens[k], after, true, &got);
				ck_assert_msg(fp_equal(&got, &want), "before %zu, run %" PRIu64
					      ", after %zu", before, lens[k], after);
			}
}
END_TEST

/* Many runs of zeros between data leaves, as a sparse disk gives, and one long run (a
 * million leaves and a few): the same root as leaf by leaf and as fp_merkle_root. */
START_TEST(test_fp_merkle_runs_match_root)
{
	uint64_t total = 0, at = 0, seed = 0x2545f4914f6cdd1dull;
	struct fp_merkle a, b;
	struct fp *all, d[64], z, ra, rb, rc;
	size_t nd = 0;

	make_leaves(d, ARRAY_SIZE(d), 0x71);
	fp_zero(4096, &z);
	all = malloc(((size_t)1 << 21) * sizeof(*all));
	ck_assert_ptr_nonnull(all);
	fp_merkle_init(&a);
	fp_merkle_init(&b);
	while (nd < ARRAY_SIZE(d)) {
		/* xorshift: run lengths from 0 to 4095, reproducible. */
		uint64_t n;

		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		n = seed % 4096;
		if (nd == 40)
			n = (UINT64_C(1) << 20) + 3;
		fp_merkle_add_run(&a, &z, n);
		for (uint64_t i = 0; i < n; i++) {
			fp_merkle_add(&b, &z);
			all[at++] = z;
		}
		fp_merkle_add(&a, &d[nd]);
		fp_merkle_add(&b, &d[nd]);
		all[at++] = d[nd++];
		total += n + 1;
	}
	ck_assert_uint_eq(at, total);
	fp_merkle_final(&a, &ra);
	fp_merkle_final(&b, &rb);
	ck_assert_int_eq(fp_merkle_root(all, total, &rc), 0);
	ck_assert(fp_equal(&ra, &rb));
	ck_assert(fp_equal(&ra, &rc));
	free(all);
}
END_TEST

START_TEST(test_fp_merkle_root_changes_with_any_leaf)
{
	static const size_t counts[] = { 2, 3, 13, 16, 17 };

	for (size_t c = 0; c < ARRAY_SIZE(counts); c++) {
		size_t n = counts[c];
		struct fp l[17], orig, root, t;

		make_leaves(l, n, 0x50);
		ck_assert_int_eq(fp_merkle_root(l, n, &orig), 0);
		for (size_t i = 0; i < n; i++) {
			l[i].b[i % FP_LEN] ^= 0x80;
			ck_assert_int_eq(fp_merkle_root(l, n, &root), 0);
			ck_assert_msg(!fp_equal(&root, &orig), "n = %zu, leaf %zu", n, i);
			l[i].b[i % FP_LEN] ^= 0x80;
		}
		/* Order matters: swapping two neighbours changes the root. */
		t = l[0];
		l[0] = l[1];
		l[1] = t;
		ck_assert_int_eq(fp_merkle_root(l, n, &root), 0);
		ck_assert(!fp_equal(&root, &orig));
	}
}
END_TEST


/* ---- compression streams ---- */

#define SX (1u << 20)

/* Compresses src[0..len) as the stream's next extent into a buffer of the bound; returns
 * its size, *start whether it began a frame. */
static size_t stream_put(struct codec *c, uint8_t *dst, const uint8_t *src, size_t len,
			 bool *start)
{
	long n = codec_compress_stream(c, dst, codec_bound(len), src, len, start);

	ck_assert_int_gt(n, 0);
	return (size_t)n;
}

/* What a user gains: an extent that repeats one 3 MiB back costs almost nothing on the
 * wire, where a frame of its own would cost it all again; and it decodes exactly. */
START_TEST(test_codec_stream_refers_back)
{
	uint8_t *a = malloc(SX), *b = malloc(SX), *z = malloc(codec_bound(SX)), *out = malloc(SX);
	struct codec *enc = codec_new(1), *dec = codec_new(0), *one = codec_new(1);
	size_t n[4];
	bool start[4];

	ck_assert_ptr_nonnull(enc);
	ck_assert_ptr_nonnull(dec);
	ck_assert_int_eq(codec_stream_on(enc), 0);
	ck_assert_int_eq(codec_streams_accept(dec, 2, CODEC_STREAM_WLOG), 0);
	fill_random(a, SX, 1);
	fill_random(b, SX, 2);
	/* a, b, b, a: the last refers 3 MiB back, within the 8 MiB window. */
	const uint8_t *seq[4] = { a, b, b, a };
	for (int i = 0; i < 4; i++) {
		n[i] = stream_put(enc, z, seq[i], SX, &start[i]);
		ck_assert(start[i] == (i == 0));
		ck_assert_int_eq(codec_decompress_stream(dec, 1, start[i], out, SX, z, n[i]), 0);
		ck_assert_mem_eq(out, seq[i], SX);
	}
	ck_assert_uint_ge(n[0], SX);          /* random: stored, a few bytes over */
	ck_assert_uint_le(n[0], SX + SX / 128);
	ck_assert_uint_lt(n[2], SX / 100);
	ck_assert_uint_lt(n[3], SX / 100);
	/* The same extent in a frame of its own does not shrink at all. */
	ck_assert_int_eq(codec_compress(one, z, codec_bound(SX), a, SX), 0);
	codec_free(one);
	codec_free(enc);
	codec_free(dec);
	free(a);
	free(b);
	free(z);
	free(out);
}
END_TEST

/* A level change begins a new frame, which decodes after a decoder reset; a continuation
 * the decoder has no frame for, a stream it was not given, a wrong length, extra bytes or a
 * window past its limit are refused. */
START_TEST(test_codec_stream_refusals)
{
	uint8_t *p = malloc(SX), *z = malloc(codec_bound(SX) + 64), *out = malloc(SX + 1);
	struct codec *enc = codec_new(3), *dec = codec_new(0), *small = codec_new(0);
	size_t n, n2;
	bool start;

	fill_text(p, SX, 7);
	ck_assert_int_eq(codec_stream_on(enc), 0);
	ck_assert_int_eq(codec_streams_accept(dec, 1, CODEC_STREAM_WLOG), 0);
	ck_assert_int_eq(codec_streams_accept(small, 1, 20), 0);
	ck_assert_int_eq(codec_streams_accept(dec, CODEC_STREAMS_MAX + 1, CODEC_STREAM_WLOG), -EINVAL);
	/* A continuation before any frame, and a stream not given. */
	n = stream_put(enc, z, p, SX, &start);
	ck_assert(start);
	ck_assert_int_eq(codec_decompress_stream(dec, 0, false, out, SX, z, n), -EBADMSG);
	ck_assert_int_eq(codec_decompress_stream(dec, 1, true, out, SX, z, n), -EPROTO);
	/* The window is 8 MiB: a decoder limited to 1 MiB refuses the frame. */
	ck_assert_int_eq(codec_decompress_stream(small, 0, true, out, SX, z, n), -EBADMSG);
	/* Exactly plain_len: one byte less or more is refused. */
	ck_assert_int_eq(codec_decompress_stream(dec, 0, true, out, SX - 1, z, n), -EBADMSG);
	ck_assert_int_eq(codec_decompress_stream(dec, 0, true, out, SX + 1, z, n), -EBADMSG);
	/* After a failure only a new frame is taken. */
	n2 = stream_put(enc, z + n, p, SX / 2, &start);
	ck_assert(!start);
	ck_assert_int_eq(codec_decompress_stream(dec, 0, false, out, SX / 2, z + n, n2), -EBADMSG);
	ck_assert_int_eq(codec_decompress_stream(dec, 0, true, out, SX, z, n), 0);
	ck_assert_int_eq(codec_decompress_stream(dec, 0, false, out, SX / 2, z + n, n2), 0);
	ck_assert_mem_eq(out, p, SX / 2);
	/* Two extents in one payload decode to more than plain_len: refused. */
	ck_assert_int_eq(codec_decompress_stream(dec, 0, true, out, SX, z, n + n2), -EBADMSG);
	/* A new level: a new frame, decoded from a reset. */
	ck_assert_int_eq(codec_set_level(enc, 5), 0);
	n = stream_put(enc, z, p, SX, &start);
	ck_assert(start);
	ck_assert_int_eq(codec_decompress_stream(dec, 0, true, out, SX, z, n), 0);
	ck_assert_mem_eq(out, p, SX);
	/* A flipped byte in the middle of a piece. */
	n = stream_put(enc, z, p + 1000, SX / 4, &start);
	ck_assert(!start);
	z[n / 2] ^= 0xff;
	if (codec_decompress_stream(dec, 0, false, out, SX / 4, z, n) == 0)
		ck_assert_mem_ne(out, p + 1000, SX / 4);
	codec_free(enc);
	codec_free(dec);
	codec_free(small);
	free(p);
	free(z);
	free(out);
}
END_TEST

static Suite *codec_suite(void)
{
	Suite *s = suite_create("codec");
	TCase *tc = tcase_create("codec");

	/* Level 19 over a megabyte is slow under sanitizers. */
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_codec_roundtrip_text, 0, 4);
	tcase_add_test(tc, test_codec_reports_random_incompressible);
	tcase_add_test(tc, test_codec_compress_needs_bound);
	tcase_add_test(tc, test_codec_rejects_wrong_plain_len);
	tcase_add_test(tc, test_codec_rejects_frame_content_size_lie);
	tcase_add_test(tc, test_codec_rejects_frame_without_content_size);
	tcase_add_test(tc, test_codec_rejects_truncated_frame);
	tcase_add_test(tc, test_codec_rejects_corrupted_frame);
	tcase_add_test(tc, test_codec_rejects_trailing_frames);
	tcase_add_test(tc, test_codec_stream_refers_back);
	tcase_add_test(tc, test_codec_stream_refusals);
	suite_add_tcase(s, tc);
	return s;
}

static Suite *fp_suite(void)
{
	Suite *s = suite_create("fp");
	TCase *tc = tcase_create("fp");

	tcase_add_test(tc, test_fp_known_answer);
	tcase_add_test(tc, test_fp_compute_is_deterministic);
	tcase_add_test(tc, test_fp_changes_on_one_bit);
	tcase_add_test(tc, test_fp_depends_on_length);
	tcase_add_test(tc, test_fp_zero_matches_compute);
	tcase_add_test(tc, test_fp_hex_and_equal);
	tcase_add_test(tc, test_fp_merkle_root_small_trees);
	tcase_add_test(tc, test_fp_merkle_root_matches_reference);
	tcase_add_test(tc, test_fp_merkle_root_changes_with_any_leaf);
	tcase_add_test(tc, test_fp_merkle_stream_matches_root);
	tcase_add_test(tc, test_fp_merkle_run_matches_leaf_by_leaf);
	tcase_add_test(tc, test_fp_merkle_runs_match_root);
	suite_add_tcase(s, tc);
	return s;
}

Suite *(*const t_suites[])(void) = { codec_suite, fp_suite, NULL };

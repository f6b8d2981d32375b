// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests for agent/reader.c on real files with real io_uring: the frames it makes,
 * decoded and applied to an empty image, rebuild the source byte for byte, every chunk's
 * fingerprint and the Merkle root are those of the source's bytes; holes are not read; a
 * change set sends only what differs from the receiver's fingerprints (and reads only
 * what it marks); an unreadable range fails the read with its offset, or is zero-filled
 * and listed with skip_unreadable; free space goes as zeros unread; with block sums a
 * changed chunk goes as a PATCH of exactly its changed blocks while the sums describe what
 * the receiver holds, whole otherwise; a tracked epoch reads only its marked chunks; an
 * inconsistent change set is refused; a sparse disk's holes cost no fingerprint memory. */
#include "agent/reader.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/blocksum.h"
#include "agent/source.h"
#include "common/codec.h"
#include "common/fp.h"
#include "common/fptab.h"
#include "common/proto.h"
#include "common/util.h"
#include "helpers.h"

#define KIB 1024u
#define MIB (1024u * 1024u)
#define CS (64 * KIB)
#define BS (4 * KIB)
#define MAX_BLOCKS 4096 /* of BS: sources up to 16 MiB when patches are looked at */

static char dir[PATH_MAX], path[PATH_MAX];

static void setup(void)
{
	t_mkdtemp(dir, "reader");
	t_path(path, dir, "source.img");
}

static void teardown(void)
{
	t_rmtree(dir);
}

static struct rd_opts opts(void)
{
	return (struct rd_opts){ .chunk_size = CS, .batch = MIB, .queue_depth = 4, .workers = 2,
				 .level = 1, .fault_corrupt_chunk = UINT64_MAX };
}

/* What one read of a source produced. */
struct result {
	uint8_t *image;        /* the frames applied to a zeroed image of the source's size */
	uint64_t size;
	uint64_t nchunks;
	struct fp root;
	struct fp *fps;        /* the reader's fingerprint array (stored form, fps_get) */
	struct fp *fps_read;   /* the same, each entry as fps_get reads it */
	uint64_t plain, zero, read, sent, missed, frames_zero, frames_data, frames_patch;
	uint64_t pblocks[MAX_BLOCKS / 64]; /* the blocks PATCH frames carried */
	int err;               /* rd_next's error, or 0 */
	bool failed;           /* rd_source_failed */
	uint64_t failed_off;
	uint64_t unreadable;
};

static void result_free(struct result *r)
{
	free(r->image);
	fps_free(r->fps);
	free(r->fps_read);
}

/* Lays a DATA frame's chunks out at dst and checks each carries its real fingerprint. */
static void data_into(struct codec *codec, const struct proto_data *d, uint8_t *dst)
{
	if (d->encoding == PROTO_ENC_ZSTD)
		ck_assert_int_eq(codec_decompress(codec, dst, d->plain_len, d->payload,
						  d->payload_len), 0);
	else
		memcpy(dst, d->payload, d->plain_len);
	for (uint32_t i = 0; i < d->nchunks; i++) {
		uint32_t len = (uint32_t)MIN((uint64_t)CS, d->plain_len - (uint64_t)i * CS);
		struct fp f;

		fp_compute(dst + (size_t)i * CS, len, &f);
		ck_assert(fp_equal(&f, &d->fps[i]));
	}
}

/* Decodes the frames of one batch and applies them to r->image, checking each DATA
 * chunk against the fingerprint the frame carries. */
static void apply(struct result *r, struct codec *codec, const struct rd_out *o)
{
	size_t pos = 0;

	while (pos < o->len) {
		struct proto_hdr h;
		const uint8_t *p;

		ck_assert_uint_ge(o->len - pos, PROTO_HDR_LEN);
		ck_assert_int_eq(proto_decode_hdr(o->buf + pos, &h), 0);
		ck_assert_uint_ge(o->len - pos - PROTO_HDR_LEN, h.len);
		p = o->buf + pos + PROTO_HDR_LEN;
		if (h.type == PROTO_ZERO) {
			struct proto_zero z;

			ck_assert_int_eq(proto_decode_zero(p, h.len, CS, &z), 0);
			ck_assert_uint_le(z.offset + z.length, r->size);
			memset(r->image + z.offset, 0, z.length);
			r->frames_zero++;
		} else if (h.type == PROTO_PATCH) {
			static uint8_t plain[CS];
			struct proto_patch m;
			uint8_t *chunk;
			uint32_t at = 0;
			struct fp f;

			/* As the receiver does: the blocks over the chunk the image holds, and
			 * the result must have the patch's fingerprint. */
			ck_assert_int_eq(proto_decode_patch(p, h.len, CS, &m), 0);
			ck_assert_uint_eq(1u << m.block_shift, BS);
			ck_assert_uint_le(m.offset + CS, r->size);
			ck_assert_uint_le((m.offset + CS) / BS, MAX_BLOCKS);
			if (m.encoding == PROTO_ENC_ZSTD)
				ck_assert_int_eq(codec_decompress(codec, plain, m.plain_len, m.payload,
								  m.payload_len), 0);
			else
				memcpy(plain, m.payload, m.plain_len);
			chunk = r->image + m.offset;
			for (uint64_t bits = m.mask; bits; bits &= bits - 1) {
				uint64_t blk = m.offset / BS + (uint64_t)__builtin_ctzll(bits);

				memcpy(chunk + (size_t)__builtin_ctzll(bits) * BS, plain + at, BS);
				at += BS;
				r->pblocks[blk / 64] |= UINT64_C(1) << (blk % 64);
			}
			fp_compute(chunk, CS, &f);
			ck_assert(fp_equal(&f, &m.fp));
			r->frames_patch++;
		} else {
			struct proto_data d;
			uint8_t *dst;

			ck_assert_uint_eq(h.type, PROTO_DATA);
			ck_assert_int_eq(proto_decode_data(p, h.len, CS, &d), 0);
			ck_assert_uint_eq(d.disk_no, 3);
			ck_assert_uint_le(d.offset + d.plain_len, r->size);
			dst = r->image + d.offset;
			data_into(codec, &d, dst);
			r->frames_data++;
		}
		pos += PROTO_HDR_LEN + h.len;
	}
}

/* Reads path with o and cs to the end (or its first error) into r, its frames applied
 * over a copy of base (the receiver's image; NULL: zeros). */
static void read_over(const struct rd_opts *o, const struct changeset *cs, const uint8_t *base,
		      struct result *r)
{
	struct source *src = NULL;
	struct reader *rd = NULL;
	struct codec *codec = codec_new(1);
	struct rd_out *out;
	const uint64_t *bm;
	char why[256] = "";
	int n;

	memset(r, 0, sizeof(*r));
	ck_assert_ptr_nonnull(codec);
	ck_assert_msg(src_open("d", path, &src, why, sizeof(why)) == 0, "src_open: %s", why);
	r->size = src->size;
	r->image = calloc(1, r->size);
	ck_assert_ptr_nonnull(r->image);
	if (base)
		memcpy(r->image, base, r->size);
	ck_assert_int_eq(rd_start(src, 3, o, cs, &rd), 0);
	while ((n = rd_next(rd, &out)) == 1) {
		apply(r, codec, out);
		r->plain += out->plain_bytes;
		r->zero += out->zero_bytes;
		r->read += out->read_bytes;
		r->sent += out->sent_chunks;
		r->missed += out->missed_chunks;
		rd_out_free(out);
	}
	r->err = n;
	r->failed = rd_source_failed(rd, &r->failed_off);
	if (n == 0) {
		ck_assert_int_eq(rd_root(rd, &r->root, &r->nchunks), 0);
		r->unreadable = rd_unreadable(rd, &bm);
		r->fps = rd_take_fps(rd);
		ck_assert_ptr_nonnull(r->fps);
		r->fps_read = calloc(r->nchunks, sizeof(*r->fps_read));
		ck_assert_ptr_nonnull(r->fps_read);
		for (uint64_t i = 0; i < r->nchunks; i++)
			fps_get(r->fps, i, r->size, o->chunk_size, &r->fps_read[i]);
	}
	rd_free(rd);
	src_free(src);
	codec_free(codec);
}

static void read_all(const struct rd_opts *o, const struct changeset *cs, struct result *r)
{
	read_over(o, cs, NULL, r);
}

/* The fingerprints of path's chunks and their Merkle root, computed here from its bytes. */
static struct fp *source_fps(uint64_t *ret_n, struct fp *ret_root)
{
	uint64_t size = t_size(path), n = (size + CS - 1) / CS;
	struct fp *fps = calloc(n, sizeof(*fps));
	static uint8_t buf[CS];

	ck_assert_ptr_nonnull(fps);
	for (uint64_t i = 0; i < n; i++) {
		size_t len = (size_t)MIN((uint64_t)CS, size - i * CS);

		t_pread(path, i * CS, buf, len);
		fp_compute(buf, len, &fps[i]);
	}
	ck_assert_int_eq(fp_merkle_root(fps, n, ret_root), 0);
	*ret_n = n;
	return fps;
}

static bool image_is_source(const struct result *r)
{
	uint8_t *want = malloc(r->size);
	bool same;

	ck_assert_ptr_nonnull(want);
	t_pread(path, 0, want, r->size);
	same = memcmp(want, r->image, r->size) == 0;
	free(want);
	return same;
}

static void write_at(uint64_t off, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite_full(fd, buf, len, off), 0);
	close(fd);
}

/* Data, written zeros and an unaligned tail: the frames rebuild the source exactly, zero
 * chunks travel as ZERO frames, and the root is the source's. */
START_TEST(test_reader_frames_rebuild_the_source)
{
	static uint8_t zeros[3 * CS];
	const uint64_t size = 3 * MIB + 12 * KIB;
	struct result r;
	struct rd_opts o = opts();
	struct changeset cs = { .fd = -1 };
	struct fp root;
	uint64_t n;
	struct fp *fps;

	t_create_file(path, size, 5);
	write_at(MIB, zeros, sizeof(zeros));   /* three zero chunks, written, not a hole */
	fps = source_fps(&n, &root);
	read_all(&o, &cs, &r);
	ck_assert_int_eq(r.err, 0);
	ck_assert(image_is_source(&r));
	ck_assert_uint_eq(r.plain, size);
	ck_assert_uint_eq(r.zero, 3 * CS);
	ck_assert_uint_ge(r.frames_zero, 1);
	ck_assert_uint_eq(r.nchunks, n);
	ck_assert_uint_eq(r.sent, n);
	ck_assert(fp_equal(&r.root, &root));
	for (uint64_t i = 0; i < n; i++)
		ck_assert_msg(fp_equal(&r.fps_read[i], &fps[i]), "chunk %" PRIu64, i);
	free(fps);
	result_free(&r);
}
END_TEST

/* A sparse image: its holes become ZERO frames without being read. */
START_TEST(test_reader_does_not_read_holes)
{
	const uint64_t size = 8 * MIB;
	static uint8_t data[MIB];
	struct result r;
	struct rd_opts o = opts();
	struct changeset cs = { .fd = -1 };
	struct fp root;
	uint64_t n;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	t_fill(data, sizeof(data), 9, 4 * MIB);
	ck_assert_int_eq(pwrite_full(fd, data, sizeof(data), 4 * MIB), 0);
	close(fd);
	if (!t_is_hole(path, 0, MIB))
		return; /* a file system without holes: nothing to show here */
	free(source_fps(&n, &root));
	read_all(&o, &cs, &r);
	ck_assert_int_eq(r.err, 0);
	ck_assert(image_is_source(&r));
	ck_assert(fp_equal(&r.root, &root));
	ck_assert_uint_eq(r.zero, size - MIB);
	/* The data's batch was read; at most one more MiB of batch alignment around it. */
	ck_assert_uint_ge(r.read, MIB);
	ck_assert_uint_le(r.read, 2 * MIB);
	result_free(&r);
}
END_TEST

/* With the receiver's fingerprints as prev, only chunks that differ are sent; with a
 * bitmap of chunks to read, only those are read, and the others keep prev's fingerprint. */
START_TEST(test_reader_sends_only_what_differs)
{
	const uint64_t size = 4 * MIB;
	static uint8_t chunk[CS];
	struct result first, second, third;
	struct rd_opts o = opts();
	struct changeset cs = { .fd = -1 };
	uint64_t only[1] = { 0 }, n;
	struct fp root, *fps, *want;

	t_create_file(path, size, 13);
	read_all(&o, &cs, &first);
	ck_assert_int_eq(first.err, 0);
	/* Chunks 5 and 40 change on the source. */
	t_fill(chunk, CS, 14, 5 * CS);
	write_at(5 * CS, chunk, CS);
	t_fill(chunk, CS, 14, 40 * CS);
	write_at(40 * CS, chunk, CS);
	fps = source_fps(&n, &root);

	cs.prev = first.fps;
	read_all(&o, &cs, &second);
	ck_assert_int_eq(second.err, 0);
	ck_assert_uint_eq(second.sent, 2);
	ck_assert(fp_equal(&second.root, &root));
	/* Applied over the first image, the two chunks make the source again. */
	memcpy(first.image + 5 * CS, second.image + 5 * CS, CS);
	memcpy(first.image + 40 * CS, second.image + 40 * CS, CS);
	ck_assert(image_is_source(&first));

	/* A tracker that marked only chunk 5: chunk 40 is neither read nor sent, and keeps the
	 * fingerprint the receiver holds. */
	only[0] = 1ull << 5;
	cs.only = only;
	read_all(&o, &cs, &third);
	ck_assert_int_eq(third.err, 0);
	ck_assert_uint_eq(third.sent, 1);
	ck_assert(third.read < size);
	want = calloc(n, sizeof(*want));
	ck_assert_ptr_nonnull(want);
	memcpy(want, first.fps_read, n * sizeof(*want));
	want[5] = fps[5];
	ck_assert_int_eq(fp_merkle_root(want, n, &root), 0);
	ck_assert(fp_equal(&third.root, &root));
	free(want);
	free(fps);
	result_free(&first);
	result_free(&second);
	result_free(&third);
}
END_TEST

/* A range that cannot be read fails the read and says where; with skip_unreadable the
 * read completes, the range's chunks zero-filled and listed. */
START_TEST(test_reader_unreadable_range)
{
	const uint64_t size = 4 * MIB;
	struct result r;
	struct rd_opts o = opts();
	struct changeset cs = { .fd = -1 };
	uint8_t *want;

	t_create_file(path, size, 17);
	o.fault_eio_off = 2 * MIB + 8 * KIB;
	o.fault_eio_len = 4 * KIB;
	read_all(&o, &cs, &r);
	ck_assert_int_lt(r.err, 0);
	ck_assert(r.failed);
	ck_assert_uint_ge(r.failed_off, 2 * MIB - MIB);
	ck_assert_uint_le(r.failed_off, 2 * MIB + 8 * KIB);
	result_free(&r);

	o.skip_unreadable = true;
	read_all(&o, &cs, &r);
	ck_assert_int_eq(r.err, 0);
	ck_assert_uint_eq(r.unreadable, 1);
	/* The source with the one chunk holding the bad range zeroed, and nothing else. */
	want = malloc(size);
	ck_assert_ptr_nonnull(want);
	t_pread(path, 0, want, size);
	memset(want + 2 * MIB, 0, CS);
	ck_assert(memcmp(want, r.image, size) == 0);
	free(want);
	result_free(&r);
}
END_TEST

/* --copy used: chunks the file systems call free go as zeros without being read (a read
 * of the free batch would fail: the fault seam sits there), whatever stale bytes they
 * hold; in a tracked epoch a chunk freed since is zeroed although the tracker did not
 * mark it, and in a full epoch it does not count as missed. */
START_TEST(test_reader_free_space_sent_as_zeros_unread)
{
	const uint64_t size = 4 * MIB, n = size / CS;
	static uint8_t chunk[CS];
	struct result first, second, third;
	struct rd_opts o = opts();
	uint64_t free1[1] = { 0xffffull << 16 | 1ull << 40 }, free2[1], only[1] = { 1ull << 5 },
		 none[1] = { 0 };
	struct changeset cs = { .fd = -1, .free = free1 };
	struct fp root, *fps, *want;
	uint8_t *img;
	uint64_t nn;

	t_create_file(path, size, 21);
	o.fault_eio_off = MIB + 8 * KIB;
	o.fault_eio_len = 4 * KIB;
	read_all(&o, &cs, &first);
	ck_assert_int_eq(first.err, 0);
	/* The free batch (chunks 16..31) was not read, nor free chunk 40 in its batch. */
	ck_assert_uint_eq(first.read, size - MIB - CS);
	img = malloc(size);
	ck_assert_ptr_nonnull(img);
	t_pread(path, 0, img, size);
	memset(img + MIB, 0, MIB);
	memset(img + 40 * CS, 0, CS);
	ck_assert(memcmp(img, first.image, size) == 0);
	fps = source_fps(&nn, &root);
	want = calloc(n, sizeof(*want));
	ck_assert_ptr_nonnull(want);
	memcpy(want, fps, n * sizeof(*want));
	for (uint64_t i = 0; i < n; i++)
		if ((free1[0] >> i) & 1)
			fp_zero(CS, &want[i]);
	ck_assert_int_eq(fp_merkle_root(want, n, &root), 0);
	ck_assert(fp_equal(&first.root, &root));

	/* Tracked: chunk 5 rewritten and marked; chunk 50 freed since, unmarked; chunk 40 in
	 * use again and marked. */
	t_fill(chunk, CS, 22, 5 * CS);
	write_at(5 * CS, chunk, CS);
	only[0] |= 1ull << 40;
	free2[0] = (free1[0] & ~(1ull << 40)) | 1ull << 50;
	cs = (struct changeset){ .fd = -1, .prev = first.fps, .only = only, .free = free2 };
	read_all(&o, &cs, &second);
	ck_assert_int_eq(second.err, 0);
	ck_assert_uint_eq(second.sent, 3);
	ck_assert(memcmp(second.image + 50 * CS, img + 16 * CS, CS) == 0); /* zeros */
	ck_assert(memcmp(second.image + 5 * CS, chunk, CS) == 0);
	free(fps);
	fps = source_fps(&nn, &root);
	memcpy(want, fps, n * sizeof(*want));
	for (uint64_t i = 0; i < n; i++)
		if ((free2[0] >> i) & 1)
			fp_zero(CS, &want[i]);
	ck_assert_int_eq(fp_merkle_root(want, n, &root), 0);
	ck_assert(fp_equal(&second.root, &root));

	/* A full read against the tracker's (empty) marks: chunk 60 freed since is sent as
	 * zeros and is not a missed change. */
	free2[0] |= 1ull << 60;
	cs = (struct changeset){ .fd = -1, .prev = second.fps, .marks = none, .free = free2 };
	read_all(&o, &cs, &third);
	ck_assert_int_eq(third.err, 0);
	ck_assert_uint_eq(third.sent, 1);
	ck_assert_uint_eq(third.missed, 0);
	free(img);
	free(want);
	free(fps);
	result_free(&first);
	result_free(&second);
	result_free(&third);
}
END_TEST

/* Writes len seeded random bytes at block blk of the source. */
static void rewrite(uint64_t blk, size_t len, unsigned seed)
{
	static uint8_t buf[CS];

	t_fill(buf, len, seed, blk * BS);
	write_at(blk * BS, buf, len);
}

/* The blocks PATCH frames carried equal want (a list of block numbers, UINT64_MAX ends). */
static void assert_patched(const struct result *r, const uint64_t *want)
{
	uint64_t expect[MAX_BLOCKS / 64] = { 0 };

	for (; *want != UINT64_MAX; want++)
		expect[*want / 64] |= UINT64_C(1) << (*want % 64);
	for (unsigned w = 0; w < MAX_BLOCKS / 64; w++)
		ck_assert_msg(r->pblocks[w] == expect[w], "word %u: patched %#" PRIx64 ", want %#"
			      PRIx64, w, r->pblocks[w], expect[w]);
}

/* The scan tracker's block sums: after a first read, 4 KiB blocks rewritten here and there
 * go as PATCH frames carrying exactly those blocks; a chunk rewritten whole goes whole, a
 * zeroed one as zeros, and a block written into zeros as a patch. Sums that describe
 * another content than the receiver holds (it did not take the last read), or none (a new
 * agent's), send whole chunks, and that read makes them describe the source again. */
START_TEST(test_reader_block_sums_patch_changed_blocks)
{
	const uint64_t size = 4 * MIB, n = size / CS, per = CS / BS;
	static uint8_t zeros[CS];
	struct result first, second, third, fourth, fifth;
	struct rd_opts o = opts();
	struct bsum *sums = NULL, *fresh = NULL;
	struct changeset cs = { .fd = -1 };
	struct fp root;
	uint64_t nn;

	t_create_file(path, size, 31);
	ck_assert_int_eq(bsum_new(n, CS, BS, &sums), 0);
	cs.sums = sums;
	read_all(&o, &cs, &first);
	ck_assert_int_eq(first.err, 0);
	ck_assert_uint_eq(first.frames_patch, 0);
	ck_assert(image_is_source(&first));

	rewrite(3 * per + 2, BS, 32);
	rewrite(10 * per + 0, BS, 33);
	rewrite(10 * per + 15, BS, 34);
	rewrite(20 * per, CS, 35);              /* every block of chunk 20 */
	write_at(30 * CS + 7 * BS, zeros, BS);  /* a block zeroed: a patch of zeros */
	write_at(50 * CS, zeros, CS);           /* a chunk zeroed: a ZERO frame */
	free(source_fps(&nn, &root));
	cs.prev = first.fps;
	read_over(&o, &cs, first.image, &second);
	ck_assert_int_eq(second.err, 0);
	ck_assert(image_is_source(&second));
	ck_assert(fp_equal(&second.root, &root));
	ck_assert_uint_eq(second.sent, 5);
	ck_assert_uint_eq(second.frames_patch, 3);
	ck_assert_uint_eq(second.frames_data, 1);
	ck_assert_uint_eq(second.frames_zero, 1);
	assert_patched(&second, (const uint64_t[]){ 3 * per + 2, 10 * per, 10 * per + 15,
						    30 * per + 7, UINT64_MAX });

	/* The receiver still holds the first read's content (it never took the second):
	 * the sums describe the second's, so every chunk changed since the first goes whole. */
	rewrite(3 * per + 5, BS, 36);
	free(source_fps(&nn, &root));
	cs.prev = first.fps;
	read_over(&o, &cs, first.image, &third);
	ck_assert_int_eq(third.err, 0);
	ck_assert(image_is_source(&third));
	ck_assert(fp_equal(&third.root, &root));
	ck_assert_uint_eq(third.sent, 5);
	ck_assert_uint_eq(third.frames_patch, 0);

	/* A new agent's empty sums: a changed chunk goes whole; the read sums every chunk,
	 * so the next change of a block goes as a patch, also one written into zeros. */
	ck_assert_int_eq(bsum_new(n, CS, BS, &fresh), 0);
	cs.sums = fresh;
	rewrite(40 * per + 1, BS, 37);
	cs.prev = third.fps;
	read_over(&o, &cs, third.image, &fourth);
	ck_assert_int_eq(fourth.err, 0);
	ck_assert(image_is_source(&fourth));
	ck_assert_uint_eq(fourth.sent, 1);
	ck_assert_uint_eq(fourth.frames_patch, 0);
	rewrite(40 * per + 9, BS, 38);
	rewrite(50 * per + 4, BS, 39);
	free(source_fps(&nn, &root));
	cs.prev = fourth.fps;
	read_over(&o, &cs, fourth.image, &fifth);
	ck_assert_int_eq(fifth.err, 0);
	ck_assert(image_is_source(&fifth));
	ck_assert(fp_equal(&fifth.root, &root));
	ck_assert_uint_eq(fifth.sent, 2);
	ck_assert_uint_eq(fifth.frames_patch, 2);
	assert_patched(&fifth, (const uint64_t[]){ 40 * per + 9, 50 * per + 4, UINT64_MAX });
	bsum_free(sums);
	bsum_free(fresh);
	result_free(&first);
	result_free(&second);
	result_free(&third);
	result_free(&fourth);
	result_free(&fifth);
}
END_TEST

/* A tracked epoch's scattered marks: only the marked chunks are read (runs of them, the
 * batches around them not), the changed ones sent, and the frames over the receiver's
 * image make the source again; a bad range in an unmarked chunk is never touched, and one
 * in a marked run loses just its chunk with skip_unreadable. */
START_TEST(test_reader_reads_only_marked_chunks)
{
	const uint64_t size = 8 * MIB + 12 * KIB, n = (size + CS - 1) / CS;
	/* 3-4 a run, 6 after a gap, 20 and 47 alone in their batches, 90 marked but
	 * unchanged, 128 the source's short last chunk. */
	const uint64_t marked[] = { 3, 4, 6, 20, 47, 90, 128 };
	const uint64_t reads = 6 * CS + 12 * KIB;
	static uint8_t chunk[CS];
	struct result first, second, third, fourth;
	struct rd_opts o = opts();
	uint64_t only[3] = { 0 }, nn;
	struct changeset cs = { .fd = -1 };
	struct fp root, *fps;
	uint8_t *want;

	t_create_file(path, size, 31);
	read_all(&o, &cs, &first);
	ck_assert_int_eq(first.err, 0);
	ck_assert_uint_eq(first.read, size);
	for (size_t k = 0; k < sizeof(marked) / sizeof(marked[0]); k++) {
		uint64_t i = marked[k];
		size_t len = (size_t)MIN((uint64_t)CS, size - i * CS);

		only[i / 64] |= UINT64_C(1) << (i % 64);
		if (i == 90)
			continue;
		t_fill(chunk, len, 32, i * CS);
		write_at(i * CS, chunk, len);
	}
	fps = source_fps(&nn, &root);
	ck_assert_uint_eq(nn, n);

	cs = (struct changeset){ .fd = -1, .prev = first.fps, .only = only };
	read_over(&o, &cs, first.image, &second);
	ck_assert_int_eq(second.err, 0);
	ck_assert_uint_eq(second.read, reads);
	ck_assert_uint_eq(second.plain, size);
	ck_assert_uint_eq(second.sent, 6);
	ck_assert(image_is_source(&second));
	ck_assert(fp_equal(&second.root, &root));
	for (uint64_t i = 0; i < n; i++)
		ck_assert_msg(fp_equal(&second.fps_read[i], &fps[i]), "chunk %" PRIu64, i);

	/* A bad range in chunk 21, unmarked, in the batch of marked chunk 20: not read. */
	o.fault_eio_off = 21 * CS + 8 * KIB;
	o.fault_eio_len = 4 * KIB;
	read_over(&o, &cs, first.image, &third);
	ck_assert_int_eq(third.err, 0);
	ck_assert_uint_eq(third.read, reads);
	ck_assert(image_is_source(&third));

	/* In marked chunk 4, the end of the run 3-4: chunk 4 alone is lost and zeroed. */
	o.fault_eio_off = 4 * CS + 8 * KIB;
	o.skip_unreadable = true;
	read_over(&o, &cs, first.image, &fourth);
	ck_assert_int_eq(fourth.err, 0);
	ck_assert_uint_eq(fourth.unreadable, 1);
	ck_assert_uint_eq(fourth.read, reads - CS);
	want = malloc(size);
	ck_assert_ptr_nonnull(want);
	t_pread(path, 0, want, size);
	memset(want + 4 * CS, 0, CS);
	ck_assert(memcmp(want, fourth.image, size) == 0);
	free(want);
	free(fps);
	result_free(&first);
	result_free(&second);
	result_free(&third);
	result_free(&fourth);
}
END_TEST

/* Whether [off, off + len) overlaps one of the n ranges of data at[] (each dlen long). */
static bool overlaps(uint64_t off, uint64_t len, const uint64_t *at, size_t n, uint64_t dlen)
{
	for (size_t k = 0; k < n; k++)
		if (off < at[k] + dlen && at[k] < off + len)
			return true;
	return false;
}

/* Checks that every DATA frame of o carries the real fingerprints of its chunks. */
static void check_data_fps(struct codec *codec, const struct rd_out *o, uint64_t *ret_chunks)
{
	static uint8_t plain[MIB];
	size_t pos = 0;

	while (pos < o->len) {
		struct proto_hdr h;
		struct proto_data d;

		ck_assert_int_eq(proto_decode_hdr(o->buf + pos, &h), 0);
		if (h.type == PROTO_DATA) {
			ck_assert_int_eq(proto_decode_data(o->buf + pos + PROTO_HDR_LEN, h.len, CS,
							   &d), 0);
			ck_assert_uint_le(d.plain_len, sizeof(plain));
			data_into(codec, &d, plain);
			*ret_chunks += d.nchunks;
		}
		pos += PROTO_HDR_LEN + h.len;
	}
}

/* A sparse 8 GiB image with a little data, its size not a multiple of the chunk: the
 * fingerprint array of its 131073 chunks (2 MiB) stays almost all unwritten, so the agent's
 * memory does not grow with a disk's holes; yet every fingerprint read back from it, the
 * ones on the wire and the root are those of the source's bytes, the short last chunk's
 * included (with data in it, and as a zero chunk). */
START_TEST(test_reader_holes_cost_no_fingerprint_memory)
{
	const uint64_t size = 8ull * 1024 * MIB + 20 * KIB, n = DIV_ROUND_UP(size, CS);
	const uint64_t at[] = { 0, 512 * KIB, 3ull * 1024 * MIB + 7 * KIB,
				5ull * 1024 * MIB + 64 * KIB, 8ull * 1024 * MIB + 8 * KIB };
	const uint64_t dlen = 64 * KIB;
	static uint8_t buf[CS];

	for (int with_tail = 1; with_tail >= 0; with_tail--) {
		size_t nat = with_tail ? 5 : 4;
		struct rd_opts o = opts();
		struct changeset cs = { .fd = -1 };
		struct source *src = NULL;
		struct reader *rd = NULL;
		struct codec *codec = codec_new(1);
		struct rd_out *out;
		struct fp root, want_root, f, want;
		struct fp_merkle m;
		struct fp *fps;
		uint64_t nchunks, data_chunks = 0, want_data = 0, res;
		char why[256];
		int fd, r;

		ck_assert_ptr_nonnull(codec);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
		close(fd);
		/* The last range runs past the end: only its first 12 KiB are written. */
		for (size_t k = 0; k < nat; k++) {
			size_t len = (size_t)MIN(dlen, size - at[k]);
			static uint8_t data[64 * KIB];

			t_fill(data, len, 41, at[k]);
			write_at(at[k], data, len);
		}
		ck_assert_int_eq(src_open("d", path, &src, why, sizeof(why)), 0);
		ck_assert_int_eq(rd_start(src, 3, &o, &cs, &rd), 0);
		while ((r = rd_next(rd, &out)) == 1) {
			check_data_fps(codec, out, &data_chunks);
			rd_out_free(out);
		}
		ck_assert_int_eq(r, 0);
		ck_assert_int_eq(rd_root(rd, &root, &nchunks), 0);
		ck_assert_uint_eq(nchunks, n);
		fps = rd_take_fps(rd);
		ck_assert_ptr_nonnull(fps);
		rd_free(rd);
		src_free(src);
		codec_free(codec);

		/* A few pages of 512 hold the data chunks' fingerprints (and the root's
		 * reading every entry does not add to them). */
		res = t_resident(fps);
		ck_assert_msg(res <= n * FP_LEN / 32, "%" PRIu64 " of %" PRIu64 " bytes resident",
			      res, n * FP_LEN);

		fp_merkle_init(&m);
		for (uint64_t i = 0; i < n; i++) {
			uint64_t off = i * CS, len = MIN((uint64_t)CS, size - off);

			if (overlaps(off, len, at, nat, dlen)) {
				t_pread(path, off, buf, (size_t)len);
				fp_compute(buf, (size_t)len, &want);
				want_data++;
			} else {
				fp_zero((size_t)len, &want);
			}
			fps_get(fps, i, size, CS, &f);
			ck_assert_msg(fp_equal(&f, &want), "chunk %" PRIu64, i);
			fp_merkle_add(&m, &want);
		}
		fp_merkle_final(&m, &want_root);
		ck_assert(fp_equal(&root, &want_root));
		ck_assert_uint_eq(data_chunks, want_data);
		fps_free(fps);
	}
}
END_TEST

/* Batches of scattered runs read at once (every other chunk marked: 8 runs a batch, as
 * many as RD_RUNS_MAX), with queue_depth 1 so one batch holds every read in flight: each
 * marked chunk is read exactly once and sent, none of the others,
 * and the image and root come out the source's; a failed read among them loses only its
 * chunk with skip_unreadable, and without it fails the pipeline (no hang, no frames of a
 * partial batch). */
START_TEST(test_reader_many_runs_in_flight)
{
	const uint64_t size = 4 * MIB, n = size / CS;
	static uint8_t chunk[CS];
	struct result first, second, third, fourth;
	struct rd_opts o = opts();
	uint64_t only[1] = { 0 }, nmarked = 0, nn;
	struct changeset cs = { .fd = -1 };
	struct fp root, *fps;
	uint8_t *want;

	t_create_file(path, size, 41);
	read_all(&o, &cs, &first);
	ck_assert_int_eq(first.err, 0);
	/* Every other chunk of the first two batches, and of the last batch 2 runs of 3. */
	for (uint64_t i = 0; i < n; i++) {
		if (!((i < 32 && i % 2 == 0) || (i >= 48 && i < 51) || (i >= 60 && i < 63)))
			continue;
		only[i / 64] |= UINT64_C(1) << (i % 64);
		nmarked++;
		t_fill(chunk, CS, 42, i * CS);
		write_at(i * CS, chunk, CS);
	}
	fps = source_fps(&nn, &root);
	ck_assert_uint_eq(nn, n);
	o.queue_depth = 1;
	cs = (struct changeset){ .fd = -1, .prev = first.fps, .only = only };
	read_over(&o, &cs, first.image, &second);
	ck_assert_int_eq(second.err, 0);
	ck_assert_uint_eq(second.read, nmarked * CS);
	ck_assert_uint_eq(second.sent, nmarked);
	ck_assert(image_is_source(&second));
	ck_assert(fp_equal(&second.root, &root));
	for (uint64_t i = 0; i < n; i++)
		ck_assert_msg(fp_equal(&second.fps[i], &fps[i]), "chunk %" PRIu64, i);

	/* A bad range in chunk 10, the sixth of its batch's 8 runs. */
	o.fault_eio_off = 10 * CS + 4 * KIB;
	o.fault_eio_len = 4 * KIB;
	o.skip_unreadable = true;
	read_over(&o, &cs, first.image, &third);
	ck_assert_int_eq(third.err, 0);
	ck_assert_uint_eq(third.unreadable, 1);
	ck_assert_uint_eq(third.read, (nmarked - 1) * CS);
	want = malloc(size);
	ck_assert_ptr_nonnull(want);
	t_pread(path, 0, want, size);
	memset(want + 10 * CS, 0, CS);
	ck_assert(memcmp(want, third.image, size) == 0);
	free(want);

	o.skip_unreadable = false;
	read_over(&o, &cs, first.image, &fourth);
	ck_assert_int_eq(fourth.err, -EIO);
	ck_assert(fourth.failed);
	ck_assert_uint_eq(fourth.failed_off, 10 * CS);
	ck_assert_uint_eq(fourth.plain, 0);
	free(fps);
	result_free(&first);
	result_free(&second);
	result_free(&third);
	result_free(&fourth);
}
END_TEST

/* A change set that names chunks to read without the fingerprints to keep for the rest,
 * and options the pipeline cannot run with, are refused before anything starts. */
START_TEST(test_reader_refuses_inconsistent_requests)
{
	struct source *src = NULL;
	struct reader *rd = NULL;
	struct rd_opts o = opts();
	uint64_t only[1] = { 1 };
	struct changeset cs = { .only = only, .fd = -1 };
	struct bsum *sums = NULL;
	char why[256];

	t_create_file(path, MIB, 19);
	ck_assert_int_eq(src_open("d", path, &src, why, sizeof(why)), 0);
	ck_assert_int_eq(rd_start(src, 0, &o, &cs, &rd), -EINVAL);
	cs.only = NULL;
	o.chunk_size = 3000;
	ck_assert_int_eq(rd_start(src, 0, &o, &cs, &rd), -EINVAL);
	o = opts();
	o.batch = CS + 4096;
	ck_assert_int_eq(rd_start(src, 0, &o, &cs, &rd), -EINVAL);
	o = opts();
	o.workers = 0;
	ck_assert_int_eq(rd_start(src, 0, &o, &cs, &rd), -EINVAL);
	/* Block sums made for another chunk size. */
	o = opts();
	ck_assert_int_eq(bsum_new(MIB / (CS / 2), CS / 2, BS, &sums), 0);
	cs.sums = sums;
	ck_assert_int_eq(rd_start(src, 0, &o, &cs, &rd), -EINVAL);
	sums = bsum_free(sums);
	ck_assert_ptr_null(rd);
	src_free(src);
}
END_TEST

static Suite *reader_suite(void)
{
	Suite *s = suite_create("reader");
	TCase *tc = tcase_create("reader");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_reader_frames_rebuild_the_source);
	tcase_add_test(tc, test_reader_does_not_read_holes);
	tcase_add_test(tc, test_reader_sends_only_what_differs);
	tcase_add_test(tc, test_reader_unreadable_range);
	tcase_add_test(tc, test_reader_free_space_sent_as_zeros_unread);
	tcase_add_test(tc, test_reader_block_sums_patch_changed_blocks);
	tcase_add_test(tc, test_reader_reads_only_marked_chunks);
	tcase_add_test(tc, test_reader_many_runs_in_flight);
	tcase_add_test(tc, test_reader_refuses_inconsistent_requests);
	tcase_add_test(tc, test_reader_holes_cost_no_fingerprint_memory);
	suite_add_tcase(s, tc);
	return s;
}

const char *t_precheck(void)
{
	return t_need_io_uring();
}

Suite *(*const t_suites[])(void) = { reader_suite, NULL };

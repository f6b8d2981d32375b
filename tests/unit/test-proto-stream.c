// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests for common/proto-stream.c: an epoch's frames (DATA, ZERO, EPOCH_END,
 * EPOCH_ACK, PATCH) round-trip field for field, their layout is pinned, and every malformed
 * or rule-breaking one is refused with its exact errno. */
#include "common/proto.h"

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "helpers.h"
#include "test-proto.h"

/* DATA */

struct data_spec {
	uint16_t disk_no;
	uint8_t encoding;
	uint8_t reserved;
	uint32_t nchunks;
	uint32_t plain_len;
	uint64_t offset;
	size_t payload_len;
};

/* Builds a DATA payload by hand, fingerprints and payload patterned; returns its length. */
static size_t data_payload(uint8_t *p, const struct data_spec *s)
{
	size_t fps = (size_t)s->nchunks * FP_LEN;

	be_put(p, s->disk_no, 2);
	p[2] = s->encoding;
	p[3] = s->reserved;
	be_put(p + 4, s->nchunks, 4);
	be_put(p + 8, s->plain_len, 4);
	be_put(p + 12, s->offset, 8);
	ck_assert_uint_le(PROTO_DATA_FIXED + fps + s->payload_len, sizeof(buf));
	fill_pattern(p + PROTO_DATA_FIXED, fps + s->payload_len, 0x33);
	return PROTO_DATA_FIXED + fps + s->payload_len;
}

static struct data_spec good_data(void)
{
	struct data_spec s = {
		.disk_no = 7, .encoding = PROTO_ENC_RAW, .nchunks = 3,
		.plain_len = 3 * CS - 100, .offset = 100 * CS, .payload_len = 3 * CS - 100,
	};
	return s;
}

static int decode_spec(const struct data_spec *s)
{
	return dec_data(buf, data_payload(buf, s));
}

START_TEST(test_proto_data_roundtrip)
{
	static const uint8_t encodings[] = { PROTO_ENC_RAW, PROTO_ENC_ZSTD };

	for (size_t e = 0; e < ARRAY_SIZE(encodings); e++) {
		struct proto_data in = {
			.disk_no = 0xfffe, .encoding = encodings[e], .nchunks = 5,
			.plain_len = 5 * CS, .offset = (UINT64_C(1) << 40) + 12 * CS,
		};
		struct proto_data out;
		size_t fps = (size_t)in.nchunks * FP_LEN;
		const uint8_t *p;
		int head;

		in.payload_len = in.encoding == PROTO_ENC_RAW ? in.plain_len : 777;
		head = proto_encode_data_head(buf, sizeof(buf), &in);
		ck_assert_int_eq(head, PROTO_HDR_LEN + PROTO_DATA_FIXED);
		fill_pattern(buf + head, fps + in.payload_len, 0x77);
		p = check_hdr(buf, (int)proto_data_frame_len(in.nchunks, in.payload_len), PROTO_DATA);
		memset(&out, 0, sizeof(out));
		ck_assert_int_eq(proto_decode_data(p, PROTO_DATA_FIXED + fps + in.payload_len, CS,
						   &out), 0);
		ck_assert_uint_eq(out.disk_no, in.disk_no);
		ck_assert_uint_eq(out.encoding, in.encoding);
		ck_assert_uint_eq(out.nchunks, in.nchunks);
		ck_assert_uint_eq(out.plain_len, in.plain_len);
		ck_assert_uint_eq(out.offset, in.offset);
		ck_assert_uint_eq(out.payload_len, in.payload_len);
		/* Fingerprints and payload are borrowed from the frame, in place. */
		ck_assert_ptr_eq((const void *)out.fps, p + PROTO_DATA_FIXED);
		ck_assert_ptr_eq(out.payload, p + PROTO_DATA_FIXED + fps);
	}
}
END_TEST

START_TEST(test_proto_data_layout)
{
	static const uint8_t want[] = {
		0x00, 0x09, 0x01, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x1f, 0xff,
		0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x20, 0x00,
	};
	struct proto_data m = { .disk_no = 9, .encoding = PROTO_ENC_ZSTD, .nchunks = 2,
				.plain_len = 0x1fff, .offset = UINT64_C(0x100002000),
				.payload_len = 100 };
	struct proto_hdr h;

	ck_assert_int_eq(proto_encode_data_head(buf, sizeof(buf), &m), PROTO_HDR_LEN + 20);
	ck_assert_mem_eq(buf + PROTO_HDR_LEN, want, sizeof(want));
	ck_assert_int_eq(proto_decode_hdr(buf, &h), 0);
	ck_assert_uint_eq(h.len, 20 + 2 * 16 + 100);
	ck_assert_uint_eq(proto_data_frame_len(2, 100), PROTO_HDR_LEN + 20 + 2 * 16 + 100);
}
END_TEST

/* The largest extent at the smallest and the largest chunk size fits the header's bound. */
START_TEST(test_proto_data_accepts_largest_extent)
{
	static const uint32_t sizes[] = { PROTO_CHUNK_MIN, 64 << 10, PROTO_CHUNK_MAX };

	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		struct proto_data m = { .encoding = PROTO_ENC_RAW,
					.nchunks = PROTO_EXTENT_MAX / sizes[i],
					.plain_len = PROTO_EXTENT_MAX, .offset = 0,
					.payload_len = PROTO_EXTENT_MAX };
		size_t total = proto_data_frame_len(m.nchunks, m.payload_len);
		struct proto_data out;
		struct proto_hdr h;

		ck_assert_uint_le(total, sizeof(buf));
		ck_assert_int_eq(proto_encode_data_head(buf, sizeof(buf), &m), 36);
		ck_assert_int_eq(proto_decode_hdr(buf, &h), 0);
		ck_assert_uint_eq(h.len, total - PROTO_HDR_LEN);
		ck_assert_int_eq(proto_decode_data(buf + PROTO_HDR_LEN, h.len, sizes[i], &out), 0);
		ck_assert_uint_eq(out.nchunks, m.nchunks);
	}
}
END_TEST

START_TEST(test_proto_data_rejects_unaligned_offset)
{
	static const uint64_t bad[] = { 1, 512, CS - 1, CS + 512, UINT64_C(1) << 11,
					(UINT64_C(1) << 40) + 8 };
	struct data_spec s = good_data();

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		s.offset = bad[i];
		ck_assert_int_eq(decode_spec(&s), -EPROTO);
	}
	s.offset = 0;
	ck_assert_int_eq(decode_spec(&s), 0);
}
END_TEST

START_TEST(test_proto_data_rejects_zero_nchunks)
{
	struct data_spec s = good_data();

	s.nchunks = 0;
	ck_assert_int_eq(decode_spec(&s), -EPROTO);
	s.plain_len = 0;
	s.payload_len = 0;
	ck_assert_int_eq(decode_spec(&s), -EPROTO);
}
END_TEST

START_TEST(test_proto_data_rejects_extent_over_1mib)
{
	struct data_spec s = good_data();
	struct proto_data m;
	size_t n;

	s.nchunks = PROTO_EXTENT_MAX / CS + 1;
	s.plain_len = s.nchunks * CS;
	s.payload_len = s.plain_len;
	ck_assert_int_eq(decode_spec(&s), -EPROTO);
	/* A huge count must not be multiplied into a small number: build a one-chunk
	 * extent, then patch the count. */
	s = good_data();
	s.nchunks = 1;
	s.plain_len = 100;
	s.payload_len = 100;
	n = data_payload(buf, &s);
	be_put(buf + 4, UINT32_MAX, 4);
	ck_assert_int_eq(dec_data(buf, n), -EPROTO);
	be_put(buf + 4, 1u << 20, 4); /* 2^20 * 4096 wraps a 32-bit product to 0 */
	ck_assert_int_eq(dec_data(buf, n), -EPROTO);
	/* At 1 MiB chunks, two chunks are already too many. */
	s = good_data();
	s.nchunks = 2;
	s.plain_len = PROTO_CHUNK_MAX + 1;
	s.payload_len = s.plain_len;
	n = data_payload(buf, &s);
	ck_assert_int_eq(proto_decode_data(buf, n, PROTO_CHUNK_MAX, &m), -EPROTO);
}
END_TEST

START_TEST(test_proto_data_rejects_plain_len_mismatch)
{
	struct data_spec s = good_data();

	for (uint32_t n = 1; n <= 4; n++) {
		/* Too big: more than n whole chunks. */
		s.nchunks = n;
		s.plain_len = n * CS + 1;
		s.payload_len = s.plain_len;
		ck_assert_int_eq(decode_spec(&s), -EPROTO);
		/* Too small: the last chunk would be empty. */
		s.plain_len = (n - 1) * CS;
		s.payload_len = s.plain_len;
		ck_assert_int_eq(decode_spec(&s), -EPROTO);
		if (n > 1) {
			s.plain_len = (n - 1) * CS - 1;
			s.payload_len = s.plain_len;
			ck_assert_int_eq(decode_spec(&s), -EPROTO);
		}
		/* The bounds themselves are fine. */
		s.plain_len = (n - 1) * CS + 1;
		s.payload_len = s.plain_len;
		ck_assert_int_eq(decode_spec(&s), 0);
		s.plain_len = n * CS;
		s.payload_len = s.plain_len;
		ck_assert_int_eq(decode_spec(&s), 0);
	}
}
END_TEST

START_TEST(test_proto_data_rejects_raw_length_mismatch)
{
	struct data_spec s = good_data();

	s.payload_len = s.plain_len - 1;
	ck_assert_int_eq(decode_spec(&s), -EBADMSG);
	s.payload_len = s.plain_len + 1;
	ck_assert_int_eq(decode_spec(&s), -EBADMSG);
	s.payload_len = 0;
	ck_assert_int_eq(decode_spec(&s), -EBADMSG);
}
END_TEST

START_TEST(test_proto_data_rejects_zstd_not_smaller)
{
	struct data_spec s = good_data();

	s.encoding = PROTO_ENC_ZSTD;
	s.payload_len = s.plain_len;
	ck_assert_int_eq(decode_spec(&s), -EBADMSG);
	s.payload_len = s.plain_len + 1;
	ck_assert_int_eq(decode_spec(&s), -EBADMSG);
	s.payload_len = 0;
	ck_assert_int_eq(decode_spec(&s), -EBADMSG);
	s.payload_len = s.plain_len - 1;
	ck_assert_int_eq(decode_spec(&s), 0);
	s.payload_len = 1;
	ck_assert_int_eq(decode_spec(&s), 0);
}
END_TEST

START_TEST(test_proto_data_rejects_offset_overflow)
{
	struct data_spec s = good_data();

	/* The last aligned offset: the extent may end exactly at 2^64 - 1, not past it. */
	s.offset = UINT64_MAX & ~(uint64_t)(CS - 1);
	s.nchunks = 1;
	s.plain_len = CS;
	s.payload_len = CS;
	ck_assert_int_eq(decode_spec(&s), -EPROTO);
	s.plain_len = CS - 1;
	s.payload_len = CS - 1;
	ck_assert_int_eq(decode_spec(&s), 0);
	s.offset -= CS;
	s.nchunks = 2;
	s.plain_len = 2 * CS;
	s.payload_len = 2 * CS;
	ck_assert_int_eq(decode_spec(&s), -EPROTO);
}
END_TEST

START_TEST(test_proto_data_rejects_unknown_encoding)
{
	static const uint8_t bad[] = { 3, 4, 0x80, 0xff };
	struct data_spec s = good_data();

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		s.encoding = bad[i];
		ck_assert_int_eq(decode_spec(&s), -EBADMSG);
	}
}
END_TEST

/* The stream byte is 0 but for a stream's piece, which names one of PROTO_STREAMS_MAX
 * streams and may begin a frame. */
START_TEST(test_proto_data_rejects_reserved_byte)
{
	struct data_spec s = good_data();
	struct proto_data m;

	for (unsigned bit = 0; bit < 8; bit++) {
		s.reserved = (uint8_t)(1u << bit);
		ck_assert_int_eq(decode_spec(&s), -EBADMSG);
	}
	s.encoding = PROTO_ENC_ZSTD_STREAM;
	s.payload_len = 100;
	for (unsigned v = 0; v < 256; v++) {
		s.reserved = (uint8_t)v;
		if ((v & 0x7f) < PROTO_STREAMS_MAX) {
			ck_assert_int_eq(dec_data(buf, data_payload(buf, &s)), 0);
			ck_assert_int_eq(proto_decode_data(buf, data_payload(buf, &s), CS, &m), 0);
			ck_assert_uint_eq(m.stream, v & 0x7f);
			ck_assert(m.start == ((v & 0x80) != 0));
		} else {
			ck_assert_int_eq(decode_spec(&s), -EBADMSG);
		}
	}
}
END_TEST

/* A stream's piece may be as large as its plain bytes or a little larger (stored blocks),
 * never empty, never past the bound; and only DATA carries one. */
START_TEST(test_proto_data_stream_payload_rule)
{
	struct data_spec s = good_data();
	struct proto_data m = { .encoding = PROTO_ENC_ZSTD_STREAM, .nchunks = 1, .plain_len = CS,
				.stream = PROTO_STREAMS_MAX - 1, .start = true };
	struct proto_patch pt = { .encoding = PROTO_ENC_ZSTD_STREAM, .block_shift = 12,
				  .mask = 1 };

	s.encoding = PROTO_ENC_ZSTD_STREAM;
	s.payload_len = s.plain_len;
	ck_assert_int_eq(decode_spec(&s), 0);
	s.payload_len = PROTO_STREAM_PAYLOAD_MAX(s.plain_len);
	ck_assert_int_eq(decode_spec(&s), 0);
	s.payload_len++;
	ck_assert_int_eq(decode_spec(&s), -EBADMSG);
	s.payload_len = 0;
	ck_assert_int_eq(decode_spec(&s), -EBADMSG);

	m.payload_len = CS + 1;
	ck_assert_int_gt(proto_encode_data_head(buf, sizeof(buf), &m), 0);
	m.stream = PROTO_STREAMS_MAX;
	ck_assert_int_eq(proto_encode_data_head(buf, sizeof(buf), &m), -EINVAL);
	m.stream = 0;
	m.encoding = PROTO_ENC_ZSTD;
	m.payload_len = 100;
	ck_assert_int_eq(proto_encode_data_head(buf, sizeof(buf), &m), -EINVAL);
	ck_assert_int_eq(proto_encode_patch_head(buf, sizeof(buf), &pt), -EINVAL);
}
END_TEST

START_TEST(test_proto_data_rejects_bad_session_chunk_size)
{
	struct data_spec s = good_data();
	size_t n = data_payload(buf, &s);
	struct proto_data m;

	ck_assert_int_eq(proto_decode_data(buf, n, 0, &m), -EINVAL);
	ck_assert_int_eq(proto_decode_data(buf, n, 3000, &m), -EINVAL);
	ck_assert_int_eq(proto_decode_data(buf, n, 2u << 20, &m), -EINVAL);
}
END_TEST

START_TEST(test_proto_data_head_rejects_bad_values)
{
	struct proto_data good = { .encoding = PROTO_ENC_RAW, .nchunks = 1, .plain_len = CS,
				   .payload_len = CS };
	struct proto_data m;

	m = good;
	m.nchunks = 0;
	ck_assert_int_eq(proto_encode_data_head(buf, sizeof(buf), &m), -EINVAL);
	m = good;
	m.plain_len = 0;
	ck_assert_int_eq(proto_encode_data_head(buf, sizeof(buf), &m), -EINVAL);
	m = good;
	m.plain_len = PROTO_EXTENT_MAX + 1;
	ck_assert_int_eq(proto_encode_data_head(buf, sizeof(buf), &m), -EINVAL);
	m = good;
	m.encoding = 3;
	ck_assert_int_eq(proto_encode_data_head(buf, sizeof(buf), &m), -EINVAL);
	m = good;
	m.payload_len = PROTO_MAX_PAYLOAD;
	ck_assert_int_eq(proto_encode_data_head(buf, sizeof(buf), &m), -EINVAL);
	m = good;
	ck_assert_int_eq(proto_encode_data_head(buf, PROTO_HDR_LEN + PROTO_DATA_FIXED - 1, &m),
			 -ENOBUFS);
}
END_TEST

/* A truncated ZSTD extent is only caught by the frame length; every prefix that cuts into
 * the fixed part or the fingerprints, or leaves no payload, is refused here. */
START_TEST(test_proto_data_rejects_truncated_zstd_head)
{
	struct data_spec s = good_data();
	size_t n, head;

	s.encoding = PROTO_ENC_ZSTD;
	s.payload_len = 500;
	n = data_payload(buf, &s);
	head = PROTO_DATA_FIXED + (size_t)s.nchunks * FP_LEN;
	for (size_t k = 0; k <= head; k++)
		ck_assert_int_eq(dec_data(buf, k), -EBADMSG);
	ck_assert_int_eq(dec_data(buf, n), 0);
}
END_TEST

/* ZERO */

static size_t zero_payload(uint8_t *p, uint16_t disk_no, uint64_t off, uint64_t len)
{
	be_put(p, disk_no, 2);
	be_put(p + 2, off, 8);
	be_put(p + 10, len, 8);
	return 18;
}

START_TEST(test_proto_zero_roundtrip)
{
	static const uint8_t want[] = { 0x00, 0x05, 0, 0, 0, 0, 0, 0, 0x30, 0x00,
					0, 0, 0, 0, 0, 0, 0x10, 0x01 };
	struct proto_zero in = { .disk_no = 5, .offset = 3 * CS, .length = CS + 1 }, out;
	int n = proto_encode_zero(buf, sizeof(buf), &in);

	ck_assert_int_eq(n, PROTO_HDR_LEN + 18);
	ck_assert_mem_eq(buf + PROTO_HDR_LEN, want, sizeof(want));
	memset(&out, 0, sizeof(out));
	ck_assert_int_eq(proto_decode_zero(check_hdr(buf, n, PROTO_ZERO), 18, CS, &out), 0);
	ck_assert_uint_eq(out.disk_no, in.disk_no);
	ck_assert_uint_eq(out.offset, in.offset);
	ck_assert_uint_eq(out.length, in.length);
}
END_TEST

START_TEST(test_proto_zero_rejects_zero_length)
{
	struct proto_zero m = { .offset = 0, .length = 0 };

	ck_assert_int_eq(dec_zero(buf, zero_payload(buf, 0, 0, 0)), -EPROTO);
	ck_assert_int_eq(proto_encode_zero(buf, sizeof(buf), &m), -EINVAL);
}
END_TEST

START_TEST(test_proto_zero_rejects_unaligned_offset)
{
	static const uint64_t bad[] = { 1, 512, CS - 1, CS + 1, UINT64_MAX };

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		ck_assert_int_eq(dec_zero(buf, zero_payload(buf, 0, bad[i], CS)), -EPROTO);
}
END_TEST

START_TEST(test_proto_zero_rejects_overflow)
{
	uint64_t last = UINT64_MAX & ~(uint64_t)(CS - 1);
	struct proto_zero m;

	ck_assert_int_eq(dec_zero(buf, zero_payload(buf, 0, last, CS)), -EPROTO);
	ck_assert_int_eq(dec_zero(buf, zero_payload(buf, 0, CS, UINT64_MAX)), -EPROTO);
	ck_assert_int_eq(dec_zero(buf, zero_payload(buf, 0, last, CS - 1)), 0);
	ck_assert_int_eq(dec_zero(buf, zero_payload(buf, 0, 0, UINT64_MAX)), 0);
	ck_assert_int_eq(proto_decode_zero(buf, 18, 1000, &m), -EINVAL);
}
END_TEST

/* EPOCH_END and EPOCH_ACK */

START_TEST(test_proto_epoch_end_roundtrip)
{
	struct proto_epoch_end in = { .disk_no = 0x1234, .epoch = UINT64_MAX,
				      .nchunks = UINT64_C(0x0123456789abcdef) }, out;
	int n;

	fill_pattern(in.root.b, FP_LEN, 0x99);
	n = proto_encode_epoch_end(buf, sizeof(buf), &in);
	ck_assert_int_eq(n, PROTO_HDR_LEN + (int)expected_payload_max(PROTO_EPOCH_END));
	ck_assert_mem_eq(buf + PROTO_HDR_LEN + 18, in.root.b, FP_LEN);
	memset(&out, 0, sizeof(out));
	ck_assert_int_eq(proto_decode_epoch_end(check_hdr(buf, n, PROTO_EPOCH_END),
						(size_t)n - PROTO_HDR_LEN, &out), 0);
	ck_assert_uint_eq(out.disk_no, in.disk_no);
	ck_assert_uint_eq(out.epoch, in.epoch);
	ck_assert_uint_eq(out.nchunks, in.nchunks);
	ck_assert(fp_equal(&out.root, &in.root));
}
END_TEST

START_TEST(test_proto_epoch_ack_roundtrip)
{
	for (unsigned match = 0; match < 3; match++) {
		struct proto_epoch_ack in = { .disk_no = 1, .match = (uint8_t)match, .epoch = 42,
					      .bytes_written = UINT64_C(1) << 50 }, out;
		int n;

		fill_pattern(in.root.b, FP_LEN, (uint8_t)match);
		n = proto_encode_epoch_ack(buf, sizeof(buf), &in);
		ck_assert_int_eq(n, PROTO_HDR_LEN + (int)expected_payload_max(PROTO_EPOCH_ACK));
		memset(&out, 0xa5, sizeof(out));
		ck_assert_int_eq(proto_decode_epoch_ack(check_hdr(buf, n, PROTO_EPOCH_ACK),
							(size_t)n - PROTO_HDR_LEN, &out), 0);
		ck_assert_uint_eq(out.disk_no, in.disk_no);
		/* Any nonzero match is sent as 1. */
		ck_assert_uint_eq(out.match, match ? 1 : 0);
		ck_assert_uint_eq(out.epoch, in.epoch);
		ck_assert_uint_eq(out.bytes_written, in.bytes_written);
		ck_assert(fp_equal(&out.root, &in.root));
	}
}
END_TEST

START_TEST(test_proto_epoch_ack_rejects_bad_match)
{
	int n = build_sample(PROTO_EPOCH_ACK, buf, sizeof(buf));

	ck_assert_int_gt(n, 0);
	for (unsigned v = 2; v < 256; v++) {
		buf[PROTO_HDR_LEN + 2] = (uint8_t)v;
		ck_assert_int_eq(dec_epoch_ack(buf + PROTO_HDR_LEN, (size_t)n - PROTO_HDR_LEN),
				 -EBADMSG);
	}
}
END_TEST

/* PATCH */

/* Encodes a raw PATCH with m's fields and decodes it against chunk size cs. */
static int patch_trip(struct proto_patch m, uint32_t cs, struct proto_patch *ret)
{
	int n = proto_encode_patch_head(buf, sizeof(buf), &m);

	ck_assert_int_eq(n, PROTO_HDR_LEN + PROTO_PATCH_FIXED);
	fill_pattern(buf + n, m.payload_len, 0x33);
	return proto_decode_patch(check_hdr(buf, n + (int)m.payload_len, PROTO_PATCH),
				  PROTO_PATCH_FIXED + m.payload_len, cs, ret);
}

START_TEST(test_proto_patch_roundtrip)
{
	/* 4 KiB blocks of a 64 KiB chunk, blocks 0, 5 and 15. */
	struct proto_patch in = { .disk_no = 7, .encoding = PROTO_ENC_RAW, .block_shift = 12,
				  .mask = 0x8021, .offset = UINT64_C(1) << 40,
				  .plain_len = 3 * 4096, .payload_len = 3 * 4096 }, out;

	fill_pattern(in.fp.b, FP_LEN, 0x21);
	ck_assert_int_eq(patch_trip(in, 64 << 10, &out), 0);
	ck_assert_uint_eq(out.disk_no, 7);
	ck_assert_uint_eq(out.block_shift, 12);
	ck_assert_uint_eq(out.mask, 0x8021);
	ck_assert_uint_eq(out.offset, in.offset);
	ck_assert_uint_eq(out.plain_len, 3 * 4096);
	ck_assert_uint_eq(out.payload_len, 3 * 4096);
	ck_assert(fp_equal(&out.fp, &in.fp));
	ck_assert_ptr_eq(out.payload, buf + PROTO_HDR_LEN + PROTO_PATCH_FIXED);
	/* 64 blocks per chunk: the mask's top bit is a block too. */
	in.block_shift = 12;
	in.mask = UINT64_C(1) << 63;
	in.plain_len = in.payload_len = 4096;
	ck_assert_int_eq(patch_trip(in, 256 << 10, &out), 0);
	ck_assert_uint_eq(out.mask, UINT64_C(1) << 63);
}
END_TEST

START_TEST(test_proto_patch_rejects_bad_shapes)
{
	struct proto_patch ok = { .encoding = PROTO_ENC_RAW, .block_shift = 12, .mask = 0x3,
				  .offset = 0, .plain_len = 8192, .payload_len = 8192 }, m, out;

	memset(&out, 0xa5, sizeof(out));
	/* Every block of the chunk: that is a DATA frame. */
	m = ok;
	m.mask = 0xffff;
	m.plain_len = m.payload_len = 16 * 4096;
	ck_assert_int_eq(patch_trip(m, 64 << 10, &out), -EPROTO);
	/* A block past the end of the chunk. */
	m = ok;
	m.mask = 0x10001;
	ck_assert_int_eq(patch_trip(m, 64 << 10, &out), -EPROTO);
	/* Blocks as large as the chunk, and more than 64 blocks per chunk. */
	ck_assert_int_eq(patch_trip(ok, 4096, &out), -EPROTO);
	m = ok;
	m.block_shift = 9;
	m.plain_len = m.payload_len = 1024;
	ck_assert_int_eq(patch_trip(m, 64 << 10, &out), -EPROTO);
	/* An offset that is not a chunk's. */
	m = ok;
	m.offset = 4096;
	ck_assert_int_eq(patch_trip(m, 64 << 10, &out), -EPROTO);
	/* Chunks over 512 KiB are never patched. */
	m = ok;
	m.block_shift = 14;
	m.plain_len = m.payload_len = 2 << 14;
	ck_assert_int_eq(patch_trip(m, 1 << 20, &out), -EPROTO);
	ck_assert_int_eq(patch_trip(m, 512 << 10, &out), 0);
	memset(&out, 0xa5, sizeof(out));
	ck_assert_int_eq(patch_trip(ok, 4096, &out), -EPROTO);
	ck_assert(all_bytes(&out, sizeof(out), 0xa5));
	/* The session's chunk size itself must be valid. */
	ck_assert_int_eq(patch_trip(ok, 3000, &out), -EINVAL);
}
END_TEST

START_TEST(test_proto_patch_rejects_bad_payload)
{
	struct proto_patch m = { .encoding = PROTO_ENC_RAW, .block_shift = 12, .mask = 0x3,
				 .plain_len = 8192, .payload_len = 8192 }, out;
	uint8_t *p = buf + PROTO_HDR_LEN;
	int n = proto_encode_patch_head(buf, sizeof(buf), &m);

	ck_assert_int_eq(n, PROTO_HDR_LEN + PROTO_PATCH_FIXED);
	/* Raw but one byte short, and truncated inside the fixed part. */
	ck_assert_int_eq(proto_decode_patch(p, PROTO_PATCH_FIXED + 8191, 64 << 10, &out), -EBADMSG);
	ck_assert_int_eq(proto_decode_patch(p, PROTO_PATCH_FIXED - 1, 64 << 10, &out), -EBADMSG);
	/* zstd that saves nothing, and an unknown encoding. */
	p[2] = PROTO_ENC_ZSTD;
	ck_assert_int_eq(proto_decode_patch(p, PROTO_PATCH_FIXED + 8192, 64 << 10, &out), -EBADMSG);
	p[2] = 7;
	ck_assert_int_eq(proto_decode_patch(p, PROTO_PATCH_FIXED + 100, 64 << 10, &out), -EBADMSG);
	/* A stream's piece is DATA's alone, whatever its size. */
	p[2] = PROTO_ENC_ZSTD_STREAM;
	ck_assert_int_eq(proto_decode_patch(p, PROTO_PATCH_FIXED + 100, 64 << 10, &out), -EBADMSG);
	ck_assert_int_eq(proto_decode_patch(p, PROTO_PATCH_FIXED + 8192, 64 << 10, &out), -EBADMSG);
	/* A block shift that would overflow the length. */
	p[2] = PROTO_ENC_RAW;
	p[3] = 40;
	ck_assert_int_eq(proto_decode_patch(p, PROTO_PATCH_FIXED + 8192, 64 << 10, &out), -EPROTO);
}
END_TEST

START_TEST(test_proto_patch_head_rejects_bad_values)
{
	struct proto_patch ok = { .encoding = PROTO_ENC_RAW, .block_shift = 12, .mask = 0x3,
				  .plain_len = 8192, .payload_len = 8192 }, m;

	m = ok;
	m.mask = 0;
	m.plain_len = m.payload_len = 0;
	ck_assert_int_eq(proto_encode_patch_head(buf, sizeof(buf), &m), -EINVAL);
	m = ok;
	m.plain_len = 4096; /* not what the mask says */
	ck_assert_int_eq(proto_encode_patch_head(buf, sizeof(buf), &m), -EINVAL);
	m = ok;
	m.encoding = PROTO_ENC_ZSTD; /* not smaller */
	ck_assert_int_eq(proto_encode_patch_head(buf, sizeof(buf), &m), -EINVAL);
	m = ok;
	m.block_shift = 8;
	m.plain_len = m.payload_len = 512;
	ck_assert_int_eq(proto_encode_patch_head(buf, sizeof(buf), &m), -EINVAL);
	ck_assert_int_eq(proto_encode_patch_head(buf, PROTO_HDR_LEN + PROTO_PATCH_FIXED - 1, &ok),
			 -ENOBUFS);
}
END_TEST

/* FPS: every fingerprint vouched for, or (PROTO_FPS_SOME) those a bitmap names, with the
 * tracking generation they were read under. */
static size_t fps_payload(uint8_t *p, uint32_t count, uint8_t flags, uint64_t gen,
			  const uint8_t *held)
{
	size_t n = 0;

	be_put(p, 7, 2);
	be_put(p + 2, 0, 8);
	be_put(p + 10, 100, 8);
	be_put(p + 18, count, 4);
	p[22] = flags;
	be_put(p + 23, gen, 8);
	n = PROTO_FPS_FIXED;
	for (uint32_t i = 0; i < count; i++, n += FP_LEN)
		memset(p + n, held && !(held[i / 8] >> (i % 8) & 1) ? 0 : (int)(i + 1), FP_LEN);
	if (flags & PROTO_FPS_SOME) {
		memcpy(p + n, held, (count + 7) / 8);
		n += (count + 7) / 8;
	}
	return n;
}

START_TEST(test_proto_fps_roundtrip_some)
{
	uint8_t held[2] = { 0x81, 0x02 }; /* chunks 0, 7 and 9 of 10 */
	struct fp f[10];
	struct proto_fps in = { .disk_no = 7, .first_chunk = 100, .count = 10,
				.flags = PROTO_FPS_SOME, .track_gen = UINT64_C(0xfeedfacecafebeef),
				.fps = f, .held = held }, out;
	int n;

	memset(f, 0, sizeof(f));
	memset(&f[0], 1, FP_LEN);
	memset(&f[7], 8, FP_LEN);
	memset(&f[9], 10, FP_LEN);
	n = proto_encode_fps(buf, sizeof(buf), &in);
	ck_assert_int_eq(n, PROTO_HDR_LEN + PROTO_FPS_FIXED + 10 * FP_LEN + 2);
	ck_assert_mem_eq(buf + PROTO_HDR_LEN, buf2, fps_payload(buf2, 10, PROTO_FPS_SOME,
							     in.track_gen, held));
	ck_assert_int_eq(proto_decode_fps(check_hdr(buf, n, PROTO_FPS), (size_t)n - PROTO_HDR_LEN,
					  &out), 0);
	ck_assert_uint_eq(out.flags, PROTO_FPS_SOME);
	ck_assert_uint_eq(out.track_gen, in.track_gen);
	ck_assert_uint_eq(out.count, 10);
	ck_assert_mem_eq(out.fps, f, sizeof(f));
	ck_assert_mem_eq(out.held, held, 2);
	/* Without flags: no bitmap, no generation. */
	in.flags = 0;
	in.track_gen = 0;
	in.held = NULL;
	memset(f, 3, sizeof(f));
	n = proto_encode_fps(buf, sizeof(buf), &in);
	ck_assert_int_eq(n, PROTO_HDR_LEN + PROTO_FPS_FIXED + 10 * FP_LEN);
	ck_assert_int_eq(proto_decode_fps(buf + PROTO_HDR_LEN, (size_t)n - PROTO_HDR_LEN, &out), 0);
	ck_assert_ptr_null(out.held);
}
END_TEST

START_TEST(test_proto_fps_rejects_inconsistent)
{
	uint8_t held[2] = { 0x81, 0x02 }, past[2] = { 0x81, 0x06 };
	struct fp f[10];
	struct proto_fps m = { .count = 10, .flags = 0, .track_gen = 5, .fps = f };
	size_t n;

	memset(f, 1, sizeof(f));
	ck_assert_int_eq(dec_fps(buf, fps_payload(buf, 10, PROTO_FPS_SOME, 9, held)), 0);
	ck_assert_int_eq(dec_fps(buf, fps_payload(buf, 10, 0, 0, NULL)), 0);
	ck_assert_int_eq(dec_fps(buf, fps_payload(buf, 0, 0, 0, NULL)), 0);
	/* A generation without a bitmap, an unknown flag, a bit past the last chunk, an empty
	 * frame with a bitmap flag. */
	ck_assert_int_eq(dec_fps(buf, fps_payload(buf, 10, 0, 9, NULL)), -EPROTO);
	n = fps_payload(buf, 10, PROTO_FPS_SOME, 9, held);
	buf[22] = 3;
	ck_assert_int_eq(dec_fps(buf, n), -EPROTO);
	buf[22] = 2;
	ck_assert_int_eq(dec_fps(buf, n), -EPROTO);
	n = fps_payload(buf, 10, PROTO_FPS_SOME, 9, past);
	buf[n - 1] = 0x06;
	ck_assert_int_eq(dec_fps(buf, n), -EPROTO);
	ck_assert_int_eq(dec_fps(buf, fps_payload(buf, 0, PROTO_FPS_SOME, 0, held)), -EPROTO);
	/* An unknown chunk with a fingerprint: the receiver vouches for nothing there. */
	n = fps_payload(buf, 10, PROTO_FPS_SOME, 9, held);
	buf[PROTO_FPS_FIXED + 1 * FP_LEN + 3] = 1;
	ck_assert_int_eq(dec_fps(buf, n), -EPROTO);
	/* The bitmap cut short, or a byte too many. */
	n = fps_payload(buf, 10, PROTO_FPS_SOME, 9, held);
	ck_assert_int_eq(dec_fps(buf, n - 1), -EBADMSG);
	buf[n] = 0;
	ck_assert_int_eq(dec_fps(buf, n + 1), -EBADMSG);
	/* The encoder sends none of these. */
	ck_assert_int_eq(proto_encode_fps(buf, sizeof(buf), &m), -EINVAL);
	m.flags = PROTO_FPS_SOME;
	m.held = held;
	ck_assert_int_eq(proto_encode_fps(buf, sizeof(buf), &m), -EINVAL); /* chunk 1: not zero */
	m.held = (const uint8_t[]){ 0xff, 0x07 };
	ck_assert_int_eq(proto_encode_fps(buf, sizeof(buf), &m), -EINVAL); /* bit 10 */
	m.held = (const uint8_t[]){ 0xff, 0x03 };
	ck_assert_int_gt(proto_encode_fps(buf, sizeof(buf), &m), 0);
}
END_TEST

Suite *proto_stream_suite(void)
{
	Suite *s = suite_create("proto-stream");
	TCase *msg = tcase_create("messages");
	TCase *data = tcase_create("data");

	tcase_add_test(msg, test_proto_zero_roundtrip);
	tcase_add_test(msg, test_proto_zero_rejects_zero_length);
	tcase_add_test(msg, test_proto_zero_rejects_unaligned_offset);
	tcase_add_test(msg, test_proto_zero_rejects_overflow);
	tcase_add_test(msg, test_proto_epoch_end_roundtrip);
	tcase_add_test(msg, test_proto_epoch_ack_roundtrip);
	tcase_add_test(msg, test_proto_epoch_ack_rejects_bad_match);
	tcase_add_test(msg, test_proto_fps_roundtrip_some);
	tcase_add_test(msg, test_proto_fps_rejects_inconsistent);
	suite_add_tcase(s, msg);

	tcase_add_test(data, test_proto_data_roundtrip);
	tcase_add_test(data, test_proto_data_layout);
	tcase_add_test(data, test_proto_data_accepts_largest_extent);
	tcase_add_test(data, test_proto_data_rejects_unaligned_offset);
	tcase_add_test(data, test_proto_data_rejects_zero_nchunks);
	tcase_add_test(data, test_proto_data_rejects_extent_over_1mib);
	tcase_add_test(data, test_proto_data_rejects_plain_len_mismatch);
	tcase_add_test(data, test_proto_data_rejects_raw_length_mismatch);
	tcase_add_test(data, test_proto_data_rejects_zstd_not_smaller);
	tcase_add_test(data, test_proto_data_rejects_offset_overflow);
	tcase_add_test(data, test_proto_data_rejects_unknown_encoding);
	tcase_add_test(data, test_proto_data_rejects_reserved_byte);
	tcase_add_test(data, test_proto_data_stream_payload_rule);
	tcase_add_test(data, test_proto_data_rejects_bad_session_chunk_size);
	tcase_add_test(data, test_proto_data_head_rejects_bad_values);
	tcase_add_test(data, test_proto_data_rejects_truncated_zstd_head);
	tcase_add_test(data, test_proto_patch_roundtrip);
	tcase_add_test(data, test_proto_patch_rejects_bad_shapes);
	tcase_add_test(data, test_proto_patch_rejects_bad_payload);
	tcase_add_test(data, test_proto_patch_head_rejects_bad_values);
	suite_add_tcase(s, data);
	return s;
}

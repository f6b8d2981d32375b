// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests for common/proto.c: every message round-trips field for field, the byte layout
 * is pinned, and every malformed or rule-breaking frame is refused with its exact errno.
 * This file: the header, every type at once, the link's frames; test-proto-stream.c: an
 * epoch's stream (common/proto-stream.c). */
#include "common/proto.h"

#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "helpers.h"
#include "test-proto.h"

/* Header */

START_TEST(test_proto_hdr_layout_is_big_endian)
{
	static const uint8_t want[PROTO_HDR_LEN] = {
		0x54, 0x45, 0x52, 0x4e, 0x02, 0x05, 0x00, 0x00,
		0x00, 0x01, 0x02, 0x03, 0x00, 0x00, 0x00, 0x00,
	};
	struct proto_hdr h;

	proto_encode_hdr(buf, PROTO_DATA, 0x010203);
	ck_assert_mem_eq(buf, want, PROTO_HDR_LEN);
	ck_assert_int_eq(proto_decode_hdr(buf, &h), 0);
	ck_assert_uint_eq(h.len, 0x010203);
}
END_TEST

/* Looped over every type: the largest legal length passes, one more is -EMSGSIZE. */
START_TEST(test_proto_hdr_rejects_oversize_len)
{
	unsigned type = (unsigned)_i;
	uint32_t max = expected_payload_max(type);
	struct proto_hdr h;

	proto_encode_hdr(buf, type, max);
	ck_assert_int_eq(proto_decode_hdr(buf, &h), 0);
	ck_assert_uint_eq(h.type, type);
	ck_assert_uint_eq(h.len, max);

	memset(&h, 0xa5, sizeof(h));
	proto_encode_hdr(buf, type, max + 1);
	ck_assert_int_eq(proto_decode_hdr(buf, &h), -EMSGSIZE);
	ck_assert_uint_eq(h.magic, 0xa5a5a5a5u); /* untouched on failure */
	proto_encode_hdr(buf, type, UINT32_MAX);
	ck_assert_int_eq(proto_decode_hdr(buf, &h), -EMSGSIZE);
}
END_TEST

START_TEST(test_proto_hdr_rejects_bad_magic)
{
	struct proto_hdr h;

	for (unsigned i = 0; i < 4; i++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			proto_encode_hdr(buf, PROTO_HELLO, 10);
			buf[i] ^= (uint8_t)(1u << bit);
			ck_assert_int_eq(proto_decode_hdr(buf, &h), -EBADMSG);
		}
	}
	/* Magic is checked before the version. */
	proto_encode_hdr(buf, PROTO_HELLO, 10);
	buf[0] = 'X';
	buf[4] = 3;
	ck_assert_int_eq(proto_decode_hdr(buf, &h), -EBADMSG);
}
END_TEST

START_TEST(test_proto_hdr_rejects_bad_version)
{
	static const uint8_t versions[] = { 0, 1, 3, 0x7f, 0xff };
	struct proto_hdr h;

	for (size_t i = 0; i < ARRAY_SIZE(versions); i++) {
		proto_encode_hdr(buf, PROTO_HELLO, 10);
		buf[4] = versions[i];
		ck_assert_int_eq(proto_decode_hdr(buf, &h), -EPROTONOSUPPORT);
	}
}
END_TEST

START_TEST(test_proto_hdr_rejects_unknown_type)
{
	static const uint8_t types[] = { 0, PROTO_TYPE_MAX + 1, 0x80, 0xff };
	struct proto_hdr h;

	for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
		proto_encode_hdr(buf, PROTO_HELLO, 0);
		buf[5] = types[i];
		ck_assert_int_eq(proto_decode_hdr(buf, &h), -EBADMSG);
	}
	ck_assert_str_eq(proto_type_name(0), "unknown");
	ck_assert_str_eq(proto_type_name(PROTO_TYPE_MAX + 1), "unknown");
	ck_assert_str_eq(proto_type_name(0xffffffffu), "unknown");
	ck_assert_str_eq(proto_type_name(PROTO_HELLO), "HELLO");
	ck_assert_str_eq(proto_type_name(PROTO_DATA), "DATA");
	ck_assert_str_eq(proto_type_name(PROTO_BYE), "BYE");
}
END_TEST

START_TEST(test_proto_hdr_rejects_nonzero_flags_and_reserved)
{
	struct proto_hdr h;

	/* Bytes 6-7 are flags, 12-15 reserved: any set bit is refused. */
	for (unsigned i = 6; i < PROTO_HDR_LEN; i++) {
		if (i >= 8 && i < 12)
			continue;
		for (unsigned bit = 0; bit < 8; bit++) {
			proto_encode_hdr(buf, PROTO_BYE, 0);
			buf[i] = (uint8_t)(1u << bit);
			ck_assert_int_eq(proto_decode_hdr(buf, &h), -EBADMSG);
		}
	}
}
END_TEST

/* A reader holding only k bytes of a header, the rest stale (0xff), must not accept it. */
START_TEST(test_proto_rejects_short_header)
{
	struct proto_hdr h;
	uint8_t good[PROTO_HDR_LEN];

	proto_encode_hdr(good, PROTO_HELLO, 10);
	for (unsigned k = 0; k < PROTO_HDR_LEN; k++) {
		int want = k < 4 ? -EBADMSG : k == 4 ? -EPROTONOSUPPORT : -EBADMSG;

		memset(buf, 0xff, PROTO_HDR_LEN);
		memcpy(buf, good, k);
		ck_assert_int_eq(proto_decode_hdr(buf, &h), want);
	}
	memcpy(buf, good, PROTO_HDR_LEN);
	ck_assert_int_eq(proto_decode_hdr(buf, &h), 0);
}
END_TEST

START_TEST(test_proto_chunk_size_valid)
{
	static const uint32_t good[] = { 4096, 8192, 65536, 1u << 20 };
	static const uint32_t bad[] = { 0, 1, 2048, 3000, 4095, 4097, 12288, (1u << 20) + 4096,
					2u << 20, 1u << 31, UINT32_MAX };

	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		ck_assert(proto_chunk_size_valid(good[i]));
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		ck_assert(!proto_chunk_size_valid(bad[i]));
}
END_TEST

/* Every type, looped: a sample frame's header and payload decode. */
START_TEST(test_proto_sample_frames_decode)
{
	unsigned type = (unsigned)_i;
	int n = build_sample(type, buf, sizeof(buf));
	const uint8_t *p = check_hdr(buf, n, type);
	decode_fn dec = decoder_for(type);

	if (dec)
		ck_assert_int_eq(dec(p, (size_t)n - PROTO_HDR_LEN), 0);
	else
		ck_assert_int_eq(n, PROTO_HDR_LEN);
}
END_TEST

/* Every type, looped: every strict prefix of a valid payload is -EBADMSG. */
START_TEST(test_proto_rejects_truncated_payload)
{
	unsigned type = (unsigned)_i;
	int n = build_sample(type, buf, sizeof(buf));
	size_t plen = (size_t)n - PROTO_HDR_LEN;
	decode_fn dec = decoder_for(type);

	ck_assert(dec != NULL);
	/* Decode from a copy at the end of a buffer so no read past the prefix goes unseen. */
	for (size_t k = 0; k < plen; k++) {
		uint8_t *copy = malloc(k ? k : 1);

		ck_assert_ptr_nonnull(copy);
		memcpy(copy, buf + PROTO_HDR_LEN, k);
		ck_assert_msg(dec(copy, k) == -EBADMSG, "%s: prefix %zu of %zu accepted or wrong errno",
			      proto_type_name(type), k, plen);
		free(copy);
	}
	ck_assert_int_eq(dec(buf + PROTO_HDR_LEN, plen), 0);
}
END_TEST

/* Every type, looped: one byte after a valid payload is -EBADMSG. */
START_TEST(test_proto_rejects_trailing_garbage)
{
	unsigned type = (unsigned)_i;
	int n = build_sample(type, buf, sizeof(buf));
	size_t plen = (size_t)n - PROTO_HDR_LEN;
	decode_fn dec = decoder_for(type);

	ck_assert(dec != NULL);
	for (unsigned v = 0; v < 256; v += 51) {
		buf[n] = (uint8_t)v;
		ck_assert_int_eq(dec(buf + PROTO_HDR_LEN, plen + 1), -EBADMSG);
		ck_assert_int_eq(dec(buf + PROTO_HDR_LEN, plen + 16), -EBADMSG);
	}
}
END_TEST

/* Every type, looped: each too-small buffer gives -ENOBUFS and nothing is written past it. */
START_TEST(test_proto_encoders_return_enobufs)
{
	unsigned type = (unsigned)_i;
	int n = build_sample(type, buf2, sizeof(buf2));
	/* DATA's encoder writes only the head; the caller appends fingerprints and payload. */
	int need = type == PROTO_DATA ? PROTO_HDR_LEN + PROTO_DATA_FIXED : n;

	ck_assert_int_gt(n, 0);
	for (int cap = 0; cap < need; cap++) {
		memset(buf, 0xa5, (size_t)need + 16);
		ck_assert_int_eq(build_sample(type, buf, (size_t)cap), -ENOBUFS);
		for (int i = cap; i < need + 16; i++)
			ck_assert_msg(buf[i] == 0xa5, "byte %d written with cap %d", i, cap);
	}
	memset(buf, 0xa5, (size_t)need + 16);
	if (type == PROTO_DATA) {
		struct proto_data m = { .encoding = PROTO_ENC_RAW, .nchunks = SAMPLE_DATA_N,
					.plain_len = SAMPLE_DATA_PLAIN, .offset = 6 * CS,
					.disk_no = 1, .payload_len = SAMPLE_DATA_PLAIN };

		ck_assert_int_eq(proto_encode_data_head(buf, (size_t)need, &m), need);
	} else {
		ck_assert_int_eq(build_sample(type, buf, (size_t)need), n);
	}
	ck_assert_mem_eq(buf, buf2, (size_t)need);
	ck_assert_uint_eq(buf[need], 0xa5);
}
END_TEST

/* HELLO and WELCOME */

START_TEST(test_proto_hello_roundtrip)
{
	static const uint32_t sizes[] = { 4096, 65536, 1u << 20 };
	struct proto_hello in, out;
	const uint8_t *p;
	int n;

	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		memset(&in, 0, sizeof(in));
		in.chunk_size = sizes[i];
		/* The longest name fills the header's bound exactly. */
		memset(in.name, 'a' + (int)i, NAME_MAX_LEN);
		in.name[NAME_MAX_LEN] = '\0';
		in.streams = (uint8_t)(i * 2);
		n = proto_encode_hello(buf, sizeof(buf), &in);
		ck_assert_int_eq(n, PROTO_HDR_LEN + 4 + 1 + NAME_MAX_LEN + 1);
		p = check_hdr(buf, n, PROTO_HELLO);
		memset(&out, 0xa5, sizeof(out));
		ck_assert_int_eq(proto_decode_hello(p, (size_t)n - PROTO_HDR_LEN, &out), 0);
		ck_assert_uint_eq(out.chunk_size, in.chunk_size);
		ck_assert_str_eq(out.name, in.name);
		ck_assert_uint_eq(out.streams, in.streams);
	}
	strcpy(in.name, "A");
	n = proto_encode_hello(buf, sizeof(buf), &in);
	ck_assert_int_eq(proto_decode_hello(check_hdr(buf, n, PROTO_HELLO),
					    (size_t)n - PROTO_HDR_LEN, &out), 0);
	ck_assert_str_eq(out.name, "A");
}
END_TEST

START_TEST(test_proto_hello_layout)
{
	static const uint8_t want[] = { 0x00, 0x01, 0x00, 0x00, 3, 'a', 'g', '1', 2 };
	struct proto_hello m = { .chunk_size = 65536, .name = "ag1", .streams = 2 };
	int n = proto_encode_hello(buf, sizeof(buf), &m);

	ck_assert_int_eq(n, PROTO_HDR_LEN + (int)sizeof(want));
	ck_assert_mem_eq(buf + PROTO_HDR_LEN, want, sizeof(want));
}
END_TEST

/* A HELLO payload built by hand: chunk size, a name of len bytes, streams 0. */
static size_t hello_payload(uint8_t *p, uint32_t cs, const char *name, size_t len)
{
	be_put(p, cs, 4);
	p[4] = (uint8_t)len;
	memcpy(p + 5, name, len);
	p[5 + len] = 0;
	return 5 + len + 1;
}

/* A WELCOME payload built by hand: max payload, a name, the streams granted and window. */
static size_t welcome_payload(uint8_t *p, uint32_t max, const char *name, uint8_t streams,
			      uint8_t wlog)
{
	size_t n = hello_payload(p, max, name, strlen(name));

	p[n - 1] = streams;
	p[n] = wlog;
	return n + 1;
}

/* More streams than the protocol allows, a grant without a window or a window without a
 * grant, and a missing or extra byte are refused. */
START_TEST(test_proto_streams_negotiation)
{
	struct proto_hello h = { .chunk_size = 65536, .name = "ag" };
	struct proto_welcome w = { .max_payload = PROTO_MAX_PAYLOAD, .name = "rcv" }, out;
	size_t n;

	h.streams = PROTO_STREAMS_MAX + 1;
	ck_assert_int_eq(proto_encode_hello(buf2, sizeof(buf2), &h), -EINVAL);
	n = hello_payload(buf, 65536, "ag", 2);
	buf[n - 1] = PROTO_STREAMS_MAX + 1;
	ck_assert_int_eq(dec_hello(buf, n), -EPROTO);
	buf[n - 1] = PROTO_STREAMS_MAX;
	ck_assert_int_eq(dec_hello(buf, n), 0);
	ck_assert_int_eq(dec_hello(buf, n - 1), -EBADMSG);
	ck_assert_int_eq(dec_hello(buf, n + 1), -EBADMSG);

	ck_assert_int_eq(dec_welcome(buf, welcome_payload(buf, 65536, "rcv", 2, 23)), 0);
	ck_assert_int_eq(dec_welcome(buf, welcome_payload(buf, 65536, "rcv", 0, 0)), 0);
	ck_assert_int_eq(dec_welcome(buf, welcome_payload(buf, 65536, "rcv", 0, 23)), -EPROTO);
	ck_assert_int_eq(dec_welcome(buf, welcome_payload(buf, 65536, "rcv", 2, 0)), -EPROTO);
	ck_assert_int_eq(dec_welcome(buf, welcome_payload(buf, 65536, "rcv", 2, 31)), -EPROTO);
	ck_assert_int_eq(dec_welcome(buf, welcome_payload(buf, 65536, "rcv", 5, 23)), -EPROTO);
	n = welcome_payload(buf, 65536, "rcv", 2, 23);
	ck_assert_int_eq(dec_welcome(buf, n - 1), -EBADMSG);
	ck_assert_int_eq(dec_welcome(buf, n + 1), -EBADMSG);
	w.streams = 3;
	w.window_log = 23;
	n = (size_t)proto_encode_welcome(buf2, sizeof(buf2), &w);
	ck_assert_int_eq(proto_decode_welcome(check_hdr(buf2, (int)n, PROTO_WELCOME),
					      n - PROTO_HDR_LEN, &out), 0);
	ck_assert_uint_eq(out.streams, 3);
	ck_assert_uint_eq(out.window_log, 23);
	w.window_log = 0;
	ck_assert_int_eq(proto_encode_welcome(buf2, sizeof(buf2), &w), -EINVAL);
}
END_TEST

START_TEST(test_proto_hello_rejects_bad_chunk_size)
{
	static const uint32_t bad[] = { 3000, 2u << 20, 0, 2048, 4097, UINT32_MAX };
	struct proto_hello m = { .name = "agent" };

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		size_t n = hello_payload(buf, bad[i], "agent", 5);

		ck_assert_int_eq(dec_hello(buf, n), -EPROTO);
		m.chunk_size = bad[i];
		ck_assert_int_eq(proto_encode_hello(buf2, sizeof(buf2), &m), -EINVAL);
	}
	ck_assert_int_eq(dec_hello(buf, hello_payload(buf, 4096, "agent", 5)), 0);
}
END_TEST

START_TEST(test_proto_hello_rejects_bad_name)
{
	static const char *const bad[] = { "a/b", "../x", "", ".x", "-x", "a b", "a\nb", "\xc3\xa9" };
	char long_name[NAME_MAX_LEN + 2];
	struct proto_hello m = { .chunk_size = 4096 };

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		size_t n = hello_payload(buf, 4096, bad[i], strlen(bad[i]));

		ck_assert_int_eq(dec_hello(buf, n), -EPROTO);
		strcpy(m.name, bad[i]);
		ck_assert_int_eq(proto_encode_hello(buf2, sizeof(buf2), &m), -EINVAL);
	}
	memset(long_name, 'a', NAME_MAX_LEN + 1);
	long_name[NAME_MAX_LEN + 1] = '\0';
	ck_assert_int_eq(dec_hello(buf, hello_payload(buf, 4096, long_name, NAME_MAX_LEN + 1)),
			 -EPROTO);
	/* A length byte that runs past the payload. */
	hello_payload(buf, 4096, "agent", 5);
	buf[4] = 6;
	ck_assert_int_eq(dec_hello(buf, 10), -EBADMSG);
}
END_TEST

START_TEST(test_proto_welcome_roundtrip)
{
	static const uint32_t sizes[] = { PROTO_HDR_LEN + PROTO_DATA_FIXED, PROTO_MAX_PAYLOAD,
					  UINT32_MAX };
	struct proto_welcome in = { .name = "receiver.example:7" }, out;

	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		int n;

		in.max_payload = sizes[i];
		n = proto_encode_welcome(buf, sizeof(buf), &in);
		memset(&out, 0, sizeof(out));
		ck_assert_int_eq(proto_decode_welcome(check_hdr(buf, n, PROTO_WELCOME),
						      (size_t)n - PROTO_HDR_LEN, &out), 0);
		ck_assert_uint_eq(out.max_payload, in.max_payload);
		ck_assert_str_eq(out.name, in.name);
	}
}
END_TEST

START_TEST(test_proto_welcome_rejects_tiny_max_payload)
{
	size_t n = welcome_payload(buf, PROTO_HDR_LEN + PROTO_DATA_FIXED - 1, "recv", 0, 0);

	ck_assert_int_eq(dec_welcome(buf, n), -EPROTO);
	n = welcome_payload(buf, 0, "recv", 0, 0);
	ck_assert_int_eq(dec_welcome(buf, n), -EPROTO);
	n = welcome_payload(buf, PROTO_HDR_LEN + PROTO_DATA_FIXED, "recv", 0, 0);
	ck_assert_int_eq(dec_welcome(buf, n), 0);
	n = welcome_payload(buf, 65536, "re/cv", 0, 0);
	ck_assert_int_eq(dec_welcome(buf, n), -EPROTO);
}
END_TEST

/* DISK and DISK_OK */

static size_t disk_payload(uint8_t *p, uint16_t disk_no, uint32_t lb, uint64_t size,
			   const char *id, size_t len)
{
	be_put(p, disk_no, 2);
	be_put(p + 2, lb, 4);
	be_put(p + 6, size, 8);
	p[14] = (uint8_t)len;
	memcpy(p + 15, id, len);
	be_put(p + 15 + len, 0, 8);
	return 15 + len + 8;
}

START_TEST(test_proto_disk_roundtrip)
{
	static const uint32_t blocks[] = { 512, 4096, 65536 };
	struct proto_disk in = { .disk_no = 0xffff, .size = UINT64_C(1) << 62,
				 .track_gen = UINT64_MAX }, out;

	memset(in.id, 'd', NAME_MAX_LEN);
	in.id[NAME_MAX_LEN] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(blocks); i++) {
		int n;

		in.logical_block = blocks[i];
		n = proto_encode_disk(buf, sizeof(buf), &in);
		ck_assert_int_eq(n, PROTO_HDR_LEN + (int)expected_payload_max(PROTO_DISK));
		memset(&out, 0, sizeof(out));
		ck_assert_int_eq(proto_decode_disk(check_hdr(buf, n, PROTO_DISK),
						   (size_t)n - PROTO_HDR_LEN, &out), 0);
		ck_assert_uint_eq(out.disk_no, in.disk_no);
		ck_assert_uint_eq(out.logical_block, in.logical_block);
		ck_assert_uint_eq(out.size, in.size);
		ck_assert_str_eq(out.id, in.id);
		ck_assert_uint_eq(out.track_gen, in.track_gen);
		/* Without its generation the frame is short. */
		ck_assert_int_eq(proto_decode_disk(check_hdr(buf, n, PROTO_DISK),
						   (size_t)n - PROTO_HDR_LEN - 1, &out), -EBADMSG);
	}
}
END_TEST

START_TEST(test_proto_disk_layout)
{
	static const uint8_t want[] = {
		0x01, 0x02, 0x00, 0x00, 0x10, 0x00,
		0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x05,
		0x03, 'v', 'd', 'a',
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
	};
	struct proto_disk m = { .disk_no = 0x0102, .logical_block = 4096,
				.size = UINT64_C(0x400000005), .id = "vda",
				.track_gen = UINT64_C(0x0102030405060708) };

	ck_assert_int_eq(proto_encode_disk(buf, sizeof(buf), &m), PROTO_HDR_LEN + (int)sizeof(want));
	ck_assert_mem_eq(buf + PROTO_HDR_LEN, want, sizeof(want));
}
END_TEST

START_TEST(test_proto_disk_rejects_bad_id)
{
	static const char *const bad[] = { "a/b", "../x", "", ".", "-a", "a b", "a=b", "\x01" };
	char long_id[NAME_MAX_LEN + 2];
	struct proto_disk m = { .logical_block = 512, .size = 1 << 20 };

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		size_t n = disk_payload(buf, 0, 512, 1 << 20, bad[i], strlen(bad[i]));

		ck_assert_msg(dec_disk(buf, n) == -EPROTO, "id \"%s\" not refused", bad[i]);
		strcpy(m.id, bad[i]);
		ck_assert_int_eq(proto_encode_disk(buf2, sizeof(buf2), &m), -EINVAL);
	}
	memset(long_id, 'x', NAME_MAX_LEN + 1);
	long_id[NAME_MAX_LEN + 1] = '\0';
	ck_assert_int_eq(dec_disk(buf, disk_payload(buf, 0, 512, 1 << 20, long_id,
						     NAME_MAX_LEN + 1)), -EPROTO);
	ck_assert_int_eq(dec_disk(buf, disk_payload(buf, 0, 512, 1 << 20, long_id, NAME_MAX_LEN)),
			 0);
}
END_TEST

START_TEST(test_proto_disk_rejects_bad_logical_block)
{
	static const uint32_t bad[] = { 0, 1, 256, 513, 1000, 4095, 131072, 1u << 31, UINT32_MAX };

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		size_t n = disk_payload(buf, 0, bad[i], 1 << 20, "vda", 3);

		ck_assert_msg(dec_disk(buf, n) == -EPROTO, "logical block %u accepted", bad[i]);
	}
	for (uint32_t lb = 512; lb <= 65536; lb <<= 1)
		ck_assert_int_eq(dec_disk(buf, disk_payload(buf, 0, lb, 1 << 20, "vda", 3)), 0);
}
END_TEST

START_TEST(test_proto_disk_rejects_bad_size)
{
	struct proto_disk m = { .logical_block = 512, .size = 0, .id = "vda" };

	ck_assert_int_eq(dec_disk(buf, disk_payload(buf, 0, 512, 0, "vda", 3)), -EPROTO);
	ck_assert_int_eq(dec_disk(buf, disk_payload(buf, 0, 512, (UINT64_C(1) << 62) + 1, "vda", 3)),
			 -EPROTO);
	ck_assert_int_eq(dec_disk(buf, disk_payload(buf, 0, 512, UINT64_MAX, "vda", 3)), -EPROTO);
	ck_assert_int_eq(dec_disk(buf, disk_payload(buf, 0, 512, 1, "vda", 3)), 0);
	ck_assert_int_eq(proto_encode_disk(buf, sizeof(buf), &m), -EINVAL);
}
END_TEST

START_TEST(test_proto_disk_ok_roundtrip)
{
	static const uint64_t sizes[] = { 0, 1, UINT64_C(0x0102030405060708), UINT64_MAX };
	static const uint8_t want[] = { 0xab, 0xcd, 1, 2, 3, 4, 5, 6, 7, 8,
					0, 0, 0, 0, 0x40, 0, 0, 0 };
	struct proto_disk_ok in = { .disk_no = 0xabcd, .size = UINT64_C(1) << 30 }, out;

	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		int n;

		in.target_size = sizes[i];
		n = proto_encode_disk_ok(buf, sizeof(buf), &in);
		ck_assert_int_eq(n, PROTO_HDR_LEN + 18);
		if (i == 2)
			ck_assert_mem_eq(buf + PROTO_HDR_LEN, want, sizeof(want));
		memset(&out, 0, sizeof(out));
		ck_assert_int_eq(proto_decode_disk_ok(check_hdr(buf, n, PROTO_DISK_OK), 18, &out), 0);
		ck_assert_uint_eq(out.disk_no, in.disk_no);
		ck_assert_uint_eq(out.target_size, in.target_size);
		ck_assert_uint_eq(out.size, in.size);
		/* Without the registered size the frame is short. */
		ck_assert_int_eq(proto_decode_disk_ok(check_hdr(buf, n, PROTO_DISK_OK), 10, &out),
				 -EBADMSG);
	}
}
END_TEST

/* The registered size is bounded as DISK's is: neither end encodes or accepts 0 or more
 * than 4 EiB; the bounds themselves pass. */
START_TEST(test_proto_disk_ok_rejects_bad_size)
{
	static const uint64_t bad[] = { 0, (UINT64_C(1) << 62) + 1, UINT64_MAX };
	static const uint64_t good[] = { 1, UINT64_C(1) << 62 };
	struct proto_disk_ok m = { .disk_no = 1, .target_size = 1 << 20 }, out;
	uint8_t p[18];

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		m.size = bad[i];
		ck_assert_int_eq(proto_encode_disk_ok(buf, sizeof(buf), &m), -EINVAL);
		be_put(p, 1, 2);
		be_put(p + 2, 1 << 20, 8);
		be_put(p + 10, bad[i], 8);
		ck_assert_msg(dec_disk_ok(p, sizeof(p)) == -EPROTO, "size %" PRIu64 " accepted",
			      bad[i]);
	}
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		m.size = good[i];
		ck_assert_int_eq(proto_encode_disk_ok(buf, sizeof(buf), &m), PROTO_HDR_LEN + 18);
		ck_assert_int_eq(proto_decode_disk_ok(buf + PROTO_HDR_LEN, 18, &out), 0);
		ck_assert_uint_eq(out.size, good[i]);
	}
}
END_TEST

/* ERROR */

START_TEST(test_proto_error_roundtrip)
{
	struct proto_error in = { .code = ENOSPC }, out;
	int n;

	/* The longest message fills the header's bound exactly. */
	for (size_t i = 0; i < PROTO_MSG_MAX; i++)
		in.msg[i] = (char)(0x20 + i % 95);
	in.msg[PROTO_MSG_MAX] = '\0';
	n = proto_encode_error(buf, sizeof(buf), &in);
	ck_assert_int_eq(n, PROTO_HDR_LEN + (int)expected_payload_max(PROTO_ERROR));
	memset(&out, 0, sizeof(out));
	ck_assert_int_eq(proto_decode_error(check_hdr(buf, n, PROTO_ERROR),
					    (size_t)n - PROTO_HDR_LEN, &out), 0);
	ck_assert_uint_eq(out.code, ENOSPC);
	ck_assert_str_eq(out.msg, in.msg);

	in.msg[0] = '\0';
	n = proto_encode_error(buf, sizeof(buf), &in);
	ck_assert_int_eq(n, PROTO_HDR_LEN + 6);
	ck_assert_int_eq(proto_decode_error(check_hdr(buf, n, PROTO_ERROR), 6, &out), 0);
	ck_assert_str_eq(out.msg, "");
}
END_TEST

static size_t error_payload(uint8_t *p, uint32_t code, const void *msg, size_t len)
{
	be_put(p, code, 4);
	be_put(p + 4, len, 2);
	memcpy(p + 6, msg, len);
	return 6 + len;
}

START_TEST(test_proto_error_rejects_control_chars)
{
	static const uint8_t bad[] = { 0x00, 0x01, '\t', '\n', '\r', 0x1b, 0x1f, 0x7f, 0x80, 0xff };
	uint8_t msg[8];

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		for (size_t pos = 0; pos < sizeof(msg); pos++) {
			memcpy(msg, "failed!!", sizeof(msg));
			msg[pos] = bad[i];
			ck_assert_int_eq(dec_error(buf, error_payload(buf, EIO, msg, sizeof(msg))),
					 -EBADMSG);
		}
	}
	ck_assert_int_eq(dec_error(buf, error_payload(buf, EIO, " ~", 2)), 0);
}
END_TEST

START_TEST(test_proto_error_encode_replaces_control_chars)
{
	struct proto_error in = { .code = EPROTO, .msg = "bad\tdisk\n\x1b[1m\x7f\xc3\xa9!" }, out;
	int n = proto_encode_error(buf, sizeof(buf), &in);

	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(proto_decode_error(check_hdr(buf, n, PROTO_ERROR),
					    (size_t)n - PROTO_HDR_LEN, &out), 0);
	ck_assert_str_eq(out.msg, "bad?disk?\?[1m?\?\?!");
	ck_assert_uint_eq(out.code, EPROTO);
}
END_TEST

START_TEST(test_proto_error_rejects_overlong_message)
{
	uint8_t msg[PROTO_MSG_MAX + 1];

	memset(msg, 'e', sizeof(msg));
	ck_assert_int_eq(dec_error(buf, error_payload(buf, EIO, msg, PROTO_MSG_MAX + 1)), -EBADMSG);
	ck_assert_int_eq(dec_error(buf, error_payload(buf, EIO, msg, PROTO_MSG_MAX)), 0);
	/* A length that runs past the payload. */
	error_payload(buf, EIO, msg, 10);
	be_put(buf + 4, 11, 2);
	ck_assert_int_eq(dec_error(buf, 16), -EBADMSG);
}
END_TEST

START_TEST(test_proto_status_roundtrip_and_rules)
{
	struct proto_status m = { .disk_no = 9, .phase = PROTO_PHASE_RECONCILING,
				  .tracker = PROTO_TRACKER_SCAN, .active = 1, .epoch = 3,
				  .bytes_done = 5, .bytes_total = 5, .backlog_bytes = UINT64_MAX,
				  .churn_bps = 1, .throughput_bps = 2, .rate_limit_bps = 3 };
	struct proto_status got, bad;
	int n = proto_encode_status(buf, sizeof(buf), &m);

	ck_assert_int_eq(n, PROTO_HDR_LEN + PROTO_STATUS_LEN);
	ck_assert_int_eq(proto_decode_status(buf + PROTO_HDR_LEN, PROTO_STATUS_LEN, &got), 0);
	ck_assert_mem_eq(&got, &m, sizeof(m));
	/* Each out-of-range field is refused on the way out and on the way in. */
	for (int k = 0; k < 5; k++) {
		bad = m;
		switch (k) {
		case 0: bad.phase = 0; break;
		case 1: bad.phase = PROTO_PHASE_FAULTED + 1; break;
		case 2: bad.tracker = PROTO_TRACKER_MAX + 1; break;
		case 3: bad.paused = 2; break;
		case 4: bad.bytes_done = bad.bytes_total + 1; break;
		}
		ck_assert_int_eq(proto_encode_status(buf, sizeof(buf), &bad), -EINVAL);
	}
	proto_encode_status(buf, sizeof(buf), &m);
	buf[PROTO_HDR_LEN + 5] = 2; /* active */
	ck_assert_int_eq(proto_decode_status(buf + PROTO_HDR_LEN, PROTO_STATUS_LEN, &got), -EPROTO);
}
END_TEST

START_TEST(test_proto_control_roundtrip_and_rules)
{
	struct proto_control m = { .op = PROTO_CTL_PAUSE }, got;
	int n = proto_encode_control(buf, sizeof(buf), &m);

	ck_assert_int_eq(n, PROTO_HDR_LEN + 9);
	ck_assert_int_eq(proto_decode_control(buf + PROTO_HDR_LEN, 9, &got), 0);
	ck_assert_uint_eq(got.op, PROTO_CTL_PAUSE);
	ck_assert_uint_eq(got.rate_bps, 0);
	/* A rate rides only on RATE; unknown operations are refused. */
	m.rate_bps = 5;
	ck_assert_int_eq(proto_encode_control(buf, sizeof(buf), &m), -EINVAL);
	buf[PROTO_HDR_LEN + 8] = 5;
	ck_assert_int_eq(proto_decode_control(buf + PROTO_HDR_LEN, 9, &got), -EPROTO);
	buf[PROTO_HDR_LEN + 8] = 0;
	buf[PROTO_HDR_LEN] = 4;
	ck_assert_int_eq(proto_decode_control(buf + PROTO_HDR_LEN, 9, &got), -EPROTO);
	buf[PROTO_HDR_LEN] = 0;
	ck_assert_int_eq(proto_decode_control(buf + PROTO_HDR_LEN, 9, &got), -EPROTO);
}
END_TEST

START_TEST(test_proto_disk_fault_roundtrip_and_rules)
{
	struct proto_disk_fault m = { .disk_no = 2, .abandoned = 1, .code = EIO, .epoch = 9,
				      .msg = "read at 0: Input/output error" }, got;
	size_t plen = 2 + 1 + 4 + 8 + 2 + strlen(m.msg);
	int n = proto_encode_disk_fault(buf, sizeof(buf), &m);

	ck_assert_int_eq(n, (int)(PROTO_HDR_LEN + plen));
	check_hdr(buf, n, PROTO_DISK_FAULT);
	ck_assert_int_eq(proto_decode_disk_fault(buf + PROTO_HDR_LEN, plen, &got), 0);
	ck_assert_uint_eq(got.disk_no, 2);
	ck_assert_uint_eq(got.abandoned, 1);
	ck_assert_uint_eq(got.code, EIO);
	ck_assert_uint_eq(got.epoch, 9);
	ck_assert_str_eq(got.msg, m.msg);
	/* abandoned is a flag, the code an errno, the reason one printable line. */
	buf[PROTO_HDR_LEN + 2] = 2;
	ck_assert_int_eq(proto_decode_disk_fault(buf + PROTO_HDR_LEN, plen, &got), -EPROTO);
	buf[PROTO_HDR_LEN + 2] = 1;
	memset(buf + PROTO_HDR_LEN + 3, 0, 4);
	ck_assert_int_eq(proto_decode_disk_fault(buf + PROTO_HDR_LEN, plen, &got), -EPROTO);
	buf[PROTO_HDR_LEN + 6] = EIO;
	buf[PROTO_HDR_LEN + 17] = '\n';
	ck_assert_int_eq(proto_decode_disk_fault(buf + PROTO_HDR_LEN, plen, &got), -EBADMSG);
	m.msg[0] = '\0';
	ck_assert_int_eq(proto_encode_disk_fault(buf, sizeof(buf), &m), -EINVAL);
	m.msg[0] = 'r';
	m.code = 0;
	ck_assert_int_eq(proto_encode_disk_fault(buf, sizeof(buf), &m), -EINVAL);
}
END_TEST

START_TEST(test_proto_disk_grow_roundtrip_and_rules)
{
	struct proto_disk_grow m = { .disk_no = 3, .epoch = 12, .size = (UINT64_C(5) << 30) + 512 },
			       got;
	int n = proto_encode_disk_grow(buf, sizeof(buf), &m);

	ck_assert_int_eq(n, PROTO_HDR_LEN + 18);
	check_hdr(buf, n, PROTO_DISK_GROW);
	ck_assert_int_eq(proto_decode_disk_grow(buf + PROTO_HDR_LEN, 18, &got), 0);
	ck_assert_uint_eq(got.disk_no, 3);
	ck_assert_uint_eq(got.epoch, 12);
	ck_assert_uint_eq(got.size, m.size);
	/* Exactly 18 bytes; a size as DISK's: not 0, not past 4 EiB. */
	ck_assert_int_eq(proto_decode_disk_grow(buf + PROTO_HDR_LEN, 17, &got), -EBADMSG);
	ck_assert_int_eq(proto_decode_disk_grow(buf + PROTO_HDR_LEN, 19, &got), -EBADMSG);
	be_put(buf + PROTO_HDR_LEN + 10, 0, 8);
	ck_assert_int_eq(proto_decode_disk_grow(buf + PROTO_HDR_LEN, 18, &got), -EPROTO);
	be_put(buf + PROTO_HDR_LEN + 10, (UINT64_C(1) << 62) + 1, 8);
	ck_assert_int_eq(proto_decode_disk_grow(buf + PROTO_HDR_LEN, 18, &got), -EPROTO);
	m.size = 0;
	ck_assert_int_eq(proto_encode_disk_grow(buf, sizeof(buf), &m), -EINVAL);
	m.size = UINT64_C(1) << 20;
	ck_assert_int_eq(proto_encode_disk_grow(buf, PROTO_HDR_LEN + 17, &m), -ENOBUFS);
}
END_TEST

START_TEST(test_proto_disk_grown_roundtrip_and_rules)
{
	struct proto_disk_grown m = { .disk_no = 1, .code = 0, .size = UINT64_C(1) << 31 }, got;
	int n = proto_encode_disk_grown(buf, sizeof(buf), &m);
	size_t plen;

	/* Grown: no reason. */
	ck_assert_int_eq(n, PROTO_HDR_LEN + 16);
	check_hdr(buf, n, PROTO_DISK_GROWN);
	ck_assert_int_eq(proto_decode_disk_grown(buf + PROTO_HDR_LEN, 16, &got), 0);
	ck_assert_uint_eq(got.code, 0);
	ck_assert_uint_eq(got.size, m.size);
	ck_assert_str_eq(got.msg, "");
	/* Refused: a code and one printable line, and the one goes with the other. */
	m.code = ENOSPC;
	strcpy(m.msg, "the target is 1 GiB, the disk grew to 2 GiB");
	plen = 2 + 4 + 8 + 2 + strlen(m.msg);
	n = proto_encode_disk_grown(buf, sizeof(buf), &m);
	ck_assert_int_eq(n, (int)(PROTO_HDR_LEN + plen));
	ck_assert_int_eq(proto_decode_disk_grown(buf + PROTO_HDR_LEN, plen, &got), 0);
	ck_assert_uint_eq(got.code, ENOSPC);
	ck_assert_str_eq(got.msg, m.msg);
	be_put(buf + PROTO_HDR_LEN + 2, 0, 4);
	ck_assert_int_eq(proto_decode_disk_grown(buf + PROTO_HDR_LEN, plen, &got), -EPROTO);
	be_put(buf + PROTO_HDR_LEN + 2, 4096, 4);
	ck_assert_int_eq(proto_decode_disk_grown(buf + PROTO_HDR_LEN, plen, &got), -EPROTO);
	be_put(buf + PROTO_HDR_LEN + 2, ENOSPC, 4);
	buf[PROTO_HDR_LEN + 18] = '\n';
	ck_assert_int_eq(proto_decode_disk_grown(buf + PROTO_HDR_LEN, plen, &got), -EBADMSG);
	ck_assert_int_eq(proto_decode_disk_grown(buf + PROTO_HDR_LEN, plen - 1, &got), -EBADMSG);
	m.code = 0;
	ck_assert_int_eq(proto_encode_disk_grown(buf, sizeof(buf), &m), -EINVAL);
	m.code = ENOSPC;
	m.msg[0] = '\0';
	ck_assert_int_eq(proto_encode_disk_grown(buf, sizeof(buf), &m), -EINVAL);
	/* code 0 with a reason on the wire is refused too. */
	m.code = 0;
	n = proto_encode_disk_grown(buf, sizeof(buf), &m);
	ck_assert_int_eq(n, PROTO_HDR_LEN + 16);
	be_put(buf + PROTO_HDR_LEN + 14, 1, 2);
	buf[PROTO_HDR_LEN + 16] = 'x';
	ck_assert_int_eq(proto_decode_disk_grown(buf + PROTO_HDR_LEN, 17, &got), -EPROTO);
}
END_TEST

START_TEST(test_proto_bye_roundtrip)
{
	struct proto_hdr h;
	int n = proto_encode_bye(buf, sizeof(buf));

	ck_assert_int_eq(n, PROTO_HDR_LEN);
	check_hdr(buf, n, PROTO_BYE);
	ck_assert_int_eq(proto_encode_bye(buf, PROTO_HDR_LEN - 1), -ENOBUFS);
	proto_encode_hdr(buf, PROTO_BYE, 1);
	ck_assert_int_eq(proto_decode_hdr(buf, &h), -EMSGSIZE);
}
END_TEST

static Suite *proto_suite(void)
{
	Suite *s = suite_create("proto");
	TCase *hdr = tcase_create("header");
	TCase *all = tcase_create("every-type");
	TCase *msg = tcase_create("messages");

	tcase_add_test(hdr, test_proto_hdr_layout_is_big_endian);
	tcase_add_loop_test(hdr, test_proto_hdr_rejects_oversize_len, PROTO_HELLO,
			    PROTO_TYPE_MAX + 1);
	tcase_add_test(hdr, test_proto_hdr_rejects_bad_magic);
	tcase_add_test(hdr, test_proto_hdr_rejects_bad_version);
	tcase_add_test(hdr, test_proto_hdr_rejects_unknown_type);
	tcase_add_test(hdr, test_proto_hdr_rejects_nonzero_flags_and_reserved);
	tcase_add_test(hdr, test_proto_rejects_short_header);
	tcase_add_test(hdr, test_proto_chunk_size_valid);
	suite_add_tcase(s, hdr);

	tcase_add_loop_test(all, test_proto_sample_frames_decode, PROTO_HELLO, PROTO_TYPE_MAX + 1);
	/* BYE has no payload, so it is left out of the payload loops. */
	tcase_add_loop_test(all, test_proto_rejects_truncated_payload, PROTO_HELLO, PROTO_BYE);
	tcase_add_loop_test(all, test_proto_rejects_trailing_garbage, PROTO_HELLO, PROTO_BYE);
	tcase_add_loop_test(all, test_proto_encoders_return_enobufs, PROTO_HELLO,
			    PROTO_TYPE_MAX + 1);
	suite_add_tcase(s, all);

	tcase_add_test(msg, test_proto_hello_roundtrip);
	tcase_add_test(msg, test_proto_hello_layout);
	tcase_add_test(msg, test_proto_hello_rejects_bad_chunk_size);
	tcase_add_test(msg, test_proto_hello_rejects_bad_name);
	tcase_add_test(msg, test_proto_welcome_roundtrip);
	tcase_add_test(msg, test_proto_welcome_rejects_tiny_max_payload);
	tcase_add_test(msg, test_proto_streams_negotiation);
	tcase_add_test(msg, test_proto_disk_roundtrip);
	tcase_add_test(msg, test_proto_disk_layout);
	tcase_add_test(msg, test_proto_disk_rejects_bad_id);
	tcase_add_test(msg, test_proto_disk_rejects_bad_logical_block);
	tcase_add_test(msg, test_proto_disk_rejects_bad_size);
	tcase_add_test(msg, test_proto_disk_ok_roundtrip);
	tcase_add_test(msg, test_proto_disk_ok_rejects_bad_size);
	tcase_add_test(msg, test_proto_error_roundtrip);
	tcase_add_test(msg, test_proto_error_rejects_control_chars);
	tcase_add_test(msg, test_proto_error_encode_replaces_control_chars);
	tcase_add_test(msg, test_proto_error_rejects_overlong_message);
	tcase_add_test(msg, test_proto_bye_roundtrip);
	tcase_add_test(msg, test_proto_status_roundtrip_and_rules);
	tcase_add_test(msg, test_proto_disk_fault_roundtrip_and_rules);
	tcase_add_test(msg, test_proto_disk_grow_roundtrip_and_rules);
	tcase_add_test(msg, test_proto_disk_grown_roundtrip_and_rules);
	tcase_add_test(msg, test_proto_control_roundtrip_and_rules);
	suite_add_tcase(s, msg);
	return s;
}

Suite *(*const t_suites[])(void) = { proto_suite, proto_stream_suite, NULL };

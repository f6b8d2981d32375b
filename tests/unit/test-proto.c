// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests for common/proto.c: every message round-trips field for field, the byte layout
 * is pinned, and every malformed or rule-breaking frame is refused with its exact errno. */
#include "common/proto.h"

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "helpers.h"

/* The session chunk size the DATA and ZERO tests decode with. */
#define CS 4096u

/* Room for the largest frame plus slack for trailing-byte and guard checks. */
#define BUF_LEN (PROTO_HDR_LEN + PROTO_MAX_PAYLOAD + 64 * 1024)

static uint8_t buf[BUF_LEN];
static uint8_t buf2[BUF_LEN];

static void be_put(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static void fill_pattern(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 7 + (i >> 8));
}

/* Checks that frame f (n bytes) carries a valid header of type and returns its payload. */
static const uint8_t *check_hdr(const uint8_t *f, int n, enum proto_type type)
{
	struct proto_hdr h;

	ck_assert_int_ge(n, PROTO_HDR_LEN);
	ck_assert_int_eq(proto_decode_hdr(f, &h), 0);
	ck_assert_uint_eq(h.magic, PROTO_MAGIC);
	ck_assert_uint_eq(h.version, PROTO_VERSION);
	ck_assert_uint_eq(h.type, type);
	ck_assert_uint_eq(h.flags, 0);
	ck_assert_uint_eq(h.reserved, 0);
	ck_assert_uint_eq(h.len, (unsigned)n - PROTO_HDR_LEN);
	return f + PROTO_HDR_LEN;
}

/* Largest payload the header accepts for each type: the wire layout, written out by hand. */
static uint32_t expected_payload_max(unsigned type)
{
	switch (type) {
	case PROTO_HELLO: return 4 + 1 + 64;
	case PROTO_WELCOME: return 4 + 1 + 64;
	case PROTO_DISK: return 2 + 4 + 8 + 1 + 64;
	case PROTO_DISK_OK: return 2 + 8;
	case PROTO_DATA: return PROTO_MAX_PAYLOAD;
	case PROTO_ZERO: return 2 + 8 + 8;
	case PROTO_EPOCH_END: return 2 + 8 + 8 + 16;
	case PROTO_EPOCH_ACK: return 2 + 1 + 8 + 8 + 16;
	case PROTO_ERROR: return 4 + 2 + 512;
	case PROTO_BYE: return 0;
	case PROTO_FPS: return 22 + 65536 * 16;
	case PROTO_CUTOVER: return 10;
	case PROTO_PATCH: return 2 + 1 + 1 + 8 + 8 + 16 + (1u << 20);
	case PROTO_STATUS: return 2 + 4 + 7 * 8;
	case PROTO_CONTROL: return 1 + 8;
	case PROTO_DISK_FAULT: return 2 + 1 + 4 + 8 + 2 + 512;
	default: ck_abort_msg("no such type %u", type);
	}
	return 0;
}

/* One decoder per type behind a common signature, so loops can cover every type. Each
 * fills its output with a sentinel first and checks that a failing decoder left it alone. */
typedef int (*decode_fn)(const uint8_t *p, size_t len);

static bool all_bytes(const void *p, size_t n, uint8_t v)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++) {
		if (b[i] != v)
			return false;
	}
	return true;
}

#define DEFINE_DECODER(name, type, call)                                         \
	static int dec_##name(const uint8_t *p, size_t len)                      \
	{                                                                          \
		type m;                                                            \
		int r;                                                             \
		memset(&m, 0xa5, sizeof(m));                                       \
		r = call;                                                          \
		if (r < 0)                                                         \
			ck_assert_msg(all_bytes(&m, sizeof(m), 0xa5),              \
				      #name ": output written on failure");        \
		return r;                                                          \
	}

DEFINE_DECODER(hello, struct proto_hello, proto_decode_hello(p, len, &m))
DEFINE_DECODER(welcome, struct proto_welcome, proto_decode_welcome(p, len, &m))
DEFINE_DECODER(disk, struct proto_disk, proto_decode_disk(p, len, &m))
DEFINE_DECODER(disk_ok, struct proto_disk_ok, proto_decode_disk_ok(p, len, &m))
DEFINE_DECODER(data, struct proto_data, proto_decode_data(p, len, CS, &m))
DEFINE_DECODER(zero, struct proto_zero, proto_decode_zero(p, len, CS, &m))
DEFINE_DECODER(epoch_end, struct proto_epoch_end, proto_decode_epoch_end(p, len, &m))
DEFINE_DECODER(epoch_ack, struct proto_epoch_ack, proto_decode_epoch_ack(p, len, &m))
DEFINE_DECODER(error, struct proto_error, proto_decode_error(p, len, &m))
DEFINE_DECODER(fps, struct proto_fps, proto_decode_fps(p, len, &m))
DEFINE_DECODER(cutover, struct proto_cutover, proto_decode_cutover(p, len, &m))
DEFINE_DECODER(patch, struct proto_patch, proto_decode_patch(p, len, CS, &m))
DEFINE_DECODER(status, struct proto_status, proto_decode_status(p, len, &m))
DEFINE_DECODER(control, struct proto_control, proto_decode_control(p, len, &m))
DEFINE_DECODER(disk_fault, struct proto_disk_fault, proto_decode_disk_fault(p, len, &m))

static decode_fn decoder_for(unsigned type)
{
	switch (type) {
	case PROTO_HELLO: return dec_hello;
	case PROTO_WELCOME: return dec_welcome;
	case PROTO_DISK: return dec_disk;
	case PROTO_DISK_OK: return dec_disk_ok;
	case PROTO_DATA: return dec_data;
	case PROTO_ZERO: return dec_zero;
	case PROTO_EPOCH_END: return dec_epoch_end;
	case PROTO_EPOCH_ACK: return dec_epoch_ack;
	case PROTO_ERROR: return dec_error;
	case PROTO_FPS: return dec_fps;
	case PROTO_CUTOVER: return dec_cutover;
	case PROTO_PATCH: return dec_patch;
	case PROTO_STATUS: return dec_status;
	case PROTO_CONTROL: return dec_control;
	case PROTO_DISK_FAULT: return dec_disk_fault;
	default: return NULL; /* BYE has no payload to decode */
	}
}

/* DATA sample: two chunks, the last one short, raw. */
#define SAMPLE_DATA_N 2u
#define SAMPLE_DATA_PLAIN (2 * CS - 100)

/* Builds a valid frame of type with the encoders; returns its length. Long only by its
 * cases, one small literal message per frame type. */
static int build_sample(unsigned type, uint8_t *out, size_t cap)
{
	switch (type) {
	case PROTO_HELLO: {
		struct proto_hello m = { .chunk_size = 64 << 10, .name = "agent-1" };
		return proto_encode_hello(out, cap, &m);
	}
	case PROTO_WELCOME: {
		struct proto_welcome m = { .max_payload = PROTO_MAX_PAYLOAD, .name = "recv" };
		return proto_encode_welcome(out, cap, &m);
	}
	case PROTO_DISK: {
		struct proto_disk m = { .disk_no = 3, .logical_block = 512,
					.size = UINT64_C(1) << 34, .id = "vdb" };
		return proto_encode_disk(out, cap, &m);
	}
	case PROTO_DISK_OK: {
		struct proto_disk_ok m = { .disk_no = 3, .target_size = UINT64_C(1) << 35 };
		return proto_encode_disk_ok(out, cap, &m);
	}
	case PROTO_DATA: {
		struct proto_data m = { .disk_no = 1, .encoding = PROTO_ENC_RAW,
					.nchunks = SAMPLE_DATA_N, .plain_len = SAMPLE_DATA_PLAIN,
					.offset = 6 * CS, .payload_len = SAMPLE_DATA_PLAIN };
		size_t total = proto_data_frame_len(m.nchunks, m.payload_len);
		int n = proto_encode_data_head(out, cap, &m);

		if (n < 0)
			return n;
		if (total > cap)
			return -ENOBUFS;
		fill_pattern(out + n, total - (size_t)n, 0x11);
		return (int)total;
	}
	case PROTO_ZERO: {
		struct proto_zero m = { .disk_no = 1, .offset = 8 * CS, .length = 3 * CS };
		return proto_encode_zero(out, cap, &m);
	}
	case PROTO_EPOCH_END: {
		struct proto_epoch_end m = { .disk_no = 2, .epoch = 9, .nchunks = 1000 };
		fill_pattern(m.root.b, FP_LEN, 0x40);
		return proto_encode_epoch_end(out, cap, &m);
	}
	case PROTO_EPOCH_ACK: {
		struct proto_epoch_ack m = { .disk_no = 2, .match = 1, .epoch = 9,
					     .bytes_written = 12345 };
		fill_pattern(m.root.b, FP_LEN, 0x50);
		return proto_encode_epoch_ack(out, cap, &m);
	}
	case PROTO_ERROR: {
		struct proto_error m = { .code = EIO, .msg = "write failed" };
		return proto_encode_error(out, cap, &m);
	}
	case PROTO_BYE:
		return proto_encode_bye(out, cap);
	case PROTO_FPS: {
		struct fp f[3];
		struct proto_fps m = { .disk_no = 1, .next_epoch = 4, .first_chunk = 10, .count = 3,
				       .fps = f };
		fill_pattern(f[0].b, sizeof(f), 0x60);
		return proto_encode_fps(out, cap, &m);
	}
	case PROTO_CUTOVER: {
		struct proto_cutover m = { .phase = PROTO_CUT_FINAL, .verify = PROTO_VERIFY_FULL,
					   .frozen_ns = 123456789 };
		return proto_encode_cutover(out, cap, &m);
	}
	case PROTO_PATCH: {
		/* 512-byte blocks of a 4 KiB chunk: blocks 1 and 6 changed, raw. */
		struct proto_patch m = { .disk_no = 2, .encoding = PROTO_ENC_RAW, .block_shift = 9,
					 .mask = 0x42, .offset = 5 * CS, .plain_len = 1024,
					 .payload_len = 1024 };
		int n;

		fill_pattern(m.fp.b, FP_LEN, 0x70);
		n = proto_encode_patch_head(out, cap, &m);
		if (n < 0)
			return n;
		if ((size_t)n + m.payload_len > cap)
			return -ENOBUFS;
		fill_pattern(out + n, m.payload_len, 0x12);
		return n + (int)m.payload_len;
	}
	case PROTO_STATUS: {
		struct proto_status m = { .disk_no = 4, .phase = PROTO_PHASE_TRACKING,
					  .tracker = PROTO_TRACKER_EBPF, .paused = 1, .active = 1,
					  .epoch = 7, .bytes_done = 100, .bytes_total = 4096,
					  .backlog_bytes = 8192, .churn_bps = 300,
					  .throughput_bps = 1000000, .rate_limit_bps = 50 };
		return proto_encode_status(out, cap, &m);
	}
	case PROTO_CONTROL: {
		struct proto_control m = { .op = PROTO_CTL_RATE, .rate_bps = 20000000 };
		return proto_encode_control(out, cap, &m);
	}
	case PROTO_DISK_FAULT: {
		struct proto_disk_fault m = { .disk_no = 1, .abandoned = 1, .code = EIO, .epoch = 3,
					      .msg = "read at 1048576: Input/output error" };
		return proto_encode_disk_fault(out, cap, &m);
	}
	default:
		ck_abort_msg("no such type %u", type);
	}
	return -EINVAL;
}

/* Header */

START_TEST(test_proto_hdr_layout_is_big_endian)
{
	static const uint8_t want[PROTO_HDR_LEN] = {
		0x54, 0x45, 0x52, 0x4e, 0x01, 0x05, 0x00, 0x00,
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
	buf[4] = 2;
	ck_assert_int_eq(proto_decode_hdr(buf, &h), -EBADMSG);
}
END_TEST

START_TEST(test_proto_hdr_rejects_bad_version)
{
	static const uint8_t versions[] = { 0, 2, 0x7f, 0xff };
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
		n = proto_encode_hello(buf, sizeof(buf), &in);
		ck_assert_int_eq(n, PROTO_HDR_LEN + 4 + 1 + NAME_MAX_LEN);
		p = check_hdr(buf, n, PROTO_HELLO);
		memset(&out, 0xa5, sizeof(out));
		ck_assert_int_eq(proto_decode_hello(p, (size_t)n - PROTO_HDR_LEN, &out), 0);
		ck_assert_uint_eq(out.chunk_size, in.chunk_size);
		ck_assert_str_eq(out.name, in.name);
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
	static const uint8_t want[] = { 0x00, 0x01, 0x00, 0x00, 3, 'a', 'g', '1' };
	struct proto_hello m = { .chunk_size = 65536, .name = "ag1" };
	int n = proto_encode_hello(buf, sizeof(buf), &m);

	ck_assert_int_eq(n, PROTO_HDR_LEN + (int)sizeof(want));
	ck_assert_mem_eq(buf + PROTO_HDR_LEN, want, sizeof(want));
}
END_TEST

/* A HELLO payload built by hand: chunk size, then a name of len bytes. */
static size_t hello_payload(uint8_t *p, uint32_t cs, const char *name, size_t len)
{
	be_put(p, cs, 4);
	p[4] = (uint8_t)len;
	memcpy(p + 5, name, len);
	return 5 + len;
}

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
	size_t n = hello_payload(buf, PROTO_HDR_LEN + PROTO_DATA_FIXED - 1, "recv", 4);

	ck_assert_int_eq(dec_welcome(buf, n), -EPROTO);
	n = hello_payload(buf, 0, "recv", 4);
	ck_assert_int_eq(dec_welcome(buf, n), -EPROTO);
	n = hello_payload(buf, PROTO_HDR_LEN + PROTO_DATA_FIXED, "recv", 4);
	ck_assert_int_eq(dec_welcome(buf, n), 0);
	n = hello_payload(buf, 65536, "re/cv", 5);
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
	return 15 + len;
}

START_TEST(test_proto_disk_roundtrip)
{
	static const uint32_t blocks[] = { 512, 4096, 65536 };
	struct proto_disk in = { .disk_no = 0xffff, .size = UINT64_C(1) << 62 }, out;

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
	}
}
END_TEST

START_TEST(test_proto_disk_layout)
{
	static const uint8_t want[] = {
		0x01, 0x02, 0x00, 0x00, 0x10, 0x00,
		0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x05,
		0x03, 'v', 'd', 'a',
	};
	struct proto_disk m = { .disk_no = 0x0102, .logical_block = 4096,
				.size = UINT64_C(0x400000005), .id = "vda" };

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
	static const uint8_t want[] = { 0xab, 0xcd, 1, 2, 3, 4, 5, 6, 7, 8 };
	struct proto_disk_ok in = { .disk_no = 0xabcd }, out;

	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		int n;

		in.target_size = sizes[i];
		n = proto_encode_disk_ok(buf, sizeof(buf), &in);
		ck_assert_int_eq(n, PROTO_HDR_LEN + 10);
		if (i == 2)
			ck_assert_mem_eq(buf + PROTO_HDR_LEN, want, sizeof(want));
		memset(&out, 0, sizeof(out));
		ck_assert_int_eq(proto_decode_disk_ok(check_hdr(buf, n, PROTO_DISK_OK), 10, &out), 0);
		ck_assert_uint_eq(out.disk_no, in.disk_no);
		ck_assert_uint_eq(out.target_size, in.target_size);
	}
}
END_TEST

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
	static const uint8_t bad[] = { 2, 3, 0x80, 0xff };
	struct data_spec s = good_data();

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		s.encoding = bad[i];
		ck_assert_int_eq(decode_spec(&s), -EBADMSG);
	}
}
END_TEST

START_TEST(test_proto_data_rejects_reserved_byte)
{
	struct data_spec s = good_data();

	for (unsigned bit = 0; bit < 8; bit++) {
		s.reserved = (uint8_t)(1u << bit);
		ck_assert_int_eq(decode_spec(&s), -EBADMSG);
	}
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
	m.encoding = 2;
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

static Suite *proto_suite(void)
{
	Suite *s = suite_create("proto");
	TCase *hdr = tcase_create("header");
	TCase *all = tcase_create("every-type");
	TCase *msg = tcase_create("messages");
	TCase *data = tcase_create("data");

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
	tcase_add_test(msg, test_proto_disk_roundtrip);
	tcase_add_test(msg, test_proto_disk_layout);
	tcase_add_test(msg, test_proto_disk_rejects_bad_id);
	tcase_add_test(msg, test_proto_disk_rejects_bad_logical_block);
	tcase_add_test(msg, test_proto_disk_rejects_bad_size);
	tcase_add_test(msg, test_proto_disk_ok_roundtrip);
	tcase_add_test(msg, test_proto_zero_roundtrip);
	tcase_add_test(msg, test_proto_zero_rejects_zero_length);
	tcase_add_test(msg, test_proto_zero_rejects_unaligned_offset);
	tcase_add_test(msg, test_proto_zero_rejects_overflow);
	tcase_add_test(msg, test_proto_epoch_end_roundtrip);
	tcase_add_test(msg, test_proto_epoch_ack_roundtrip);
	tcase_add_test(msg, test_proto_epoch_ack_rejects_bad_match);
	tcase_add_test(msg, test_proto_error_roundtrip);
	tcase_add_test(msg, test_proto_error_rejects_control_chars);
	tcase_add_test(msg, test_proto_error_encode_replaces_control_chars);
	tcase_add_test(msg, test_proto_error_rejects_overlong_message);
	tcase_add_test(msg, test_proto_bye_roundtrip);
	tcase_add_test(msg, test_proto_status_roundtrip_and_rules);
	tcase_add_test(msg, test_proto_disk_fault_roundtrip_and_rules);
	tcase_add_test(msg, test_proto_control_roundtrip_and_rules);
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

Suite *(*const t_suites[])(void) = { proto_suite, NULL };

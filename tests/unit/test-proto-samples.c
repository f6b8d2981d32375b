// SPDX-License-Identifier: GPL-2.0-only
/* What the protocol's unit tests build frames with and check them against: the frame
 * buffers, byte helpers, every type's largest payload written out by hand, a decoder and a
 * valid sample frame per type. */
#include "common/proto.h"

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "test-proto.h"

uint8_t buf[BUF_LEN];
uint8_t buf2[BUF_LEN];

void be_put(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

void fill_pattern(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 7 + (i >> 8));
}

/* Checks that frame f (n bytes) carries a valid header of type and returns its payload. */
const uint8_t *check_hdr(const uint8_t *f, int n, enum proto_type type)
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
uint32_t expected_payload_max(unsigned type)
{
	switch (type) {
	case PROTO_HELLO: return 4 + 1 + 64 + 1;
	case PROTO_WELCOME: return 4 + 1 + 64 + 2;
	case PROTO_DISK: return 2 + 4 + 8 + 1 + 64 + 8;
	case PROTO_DISK_OK: return 2 + 8 + 8;
	case PROTO_DATA: return PROTO_MAX_PAYLOAD;
	case PROTO_ZERO: return 2 + 8 + 8;
	case PROTO_EPOCH_END: return 2 + 8 + 8 + 16;
	case PROTO_EPOCH_ACK: return 2 + 1 + 8 + 8 + 16;
	case PROTO_ERROR: return 4 + 2 + 512;
	case PROTO_BYE: return 0;
	case PROTO_FPS: return 2 + 8 + 8 + 4 + 1 + 8 + 65536 * 16 + 65536 / 8;
	case PROTO_CUTOVER: return 10;
	case PROTO_PATCH: return 2 + 1 + 1 + 8 + 8 + 16 + (1u << 20);
	case PROTO_STATUS: return 2 + 4 + 7 * 8;
	case PROTO_CONTROL: return 1 + 8;
	case PROTO_DISK_FAULT: return 2 + 1 + 4 + 8 + 2 + 512;
	case PROTO_DISK_GROW: return 2 + 8 + 8;
	case PROTO_DISK_GROWN: return 2 + 4 + 8 + 2 + 512;
	default: ck_abort_msg("no such type %u", type);
	}
	return 0;
}

decode_fn decoder_for(unsigned type)
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
	case PROTO_DISK_GROW: return dec_disk_grow;
	case PROTO_DISK_GROWN: return dec_disk_grown;
	default: return NULL; /* BYE has no payload to decode */
	}
}

/* Builds a valid frame of type with the encoders; returns its length. Long only by its
 * cases, one small literal message per frame type. */
int build_sample(unsigned type, uint8_t *out, size_t cap)
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
					.size = UINT64_C(1) << 34, .id = "vdb",
					.track_gen = UINT64_C(0x1122334455667788) };
		return proto_encode_disk(out, cap, &m);
	}
	case PROTO_DISK_OK: {
		struct proto_disk_ok m = { .disk_no = 3, .target_size = UINT64_C(1) << 35,
					   .size = UINT64_C(1) << 34 };
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
		/* A resumed first copy: chunks 10 and 12 held, 11 unknown. */
		static const uint8_t held = 0x05;
		struct fp f[3];
		struct proto_fps m = { .disk_no = 1, .next_epoch = 0, .first_chunk = 10, .count = 3,
				       .flags = PROTO_FPS_SOME, .track_gen = 77, .fps = f,
				       .held = &held };
		fill_pattern(f[0].b, sizeof(f), 0x60);
		memset(&f[1], 0, sizeof(f[1]));
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
	case PROTO_DISK_GROW: {
		struct proto_disk_grow m = { .disk_no = 1, .epoch = 4, .size = UINT64_C(3) << 30 };
		return proto_encode_disk_grow(out, cap, &m);
	}
	case PROTO_DISK_GROWN: {
		struct proto_disk_grown m = { .disk_no = 1, .code = ENOSPC, .size = UINT64_C(1) << 30,
					      .msg = "the target is 1073741824 bytes" };
		return proto_encode_disk_grown(out, cap, &m);
	}
	default:
		ck_abort_msg("no such type %u", type);
	}
	return -EINVAL;
}

/* SPDX-License-Identifier: GPL-2.0-only */
/* What the protocol's test files share (test-proto.c, test-proto-stream.c, and
 * test-proto-samples.c which defines what is declared here): the session chunk size they
 * decode with, the frame buffers, byte helpers, sample frames, and decoders that check a
 * refusal wrote nothing. */
#pragma once
#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/proto.h"

/* The session chunk size the DATA and ZERO tests decode with. */
#define CS 4096u

/* Room for the largest frame plus slack for trailing-byte and guard checks. */
#define BUF_LEN (PROTO_HDR_LEN + PROTO_MAX_PAYLOAD + 64 * 1024)

extern uint8_t buf[BUF_LEN];
extern uint8_t buf2[BUF_LEN];

/* v as n big-endian bytes at p. */
void be_put(uint8_t *p, uint64_t v, unsigned n);
/* n bytes of a pattern that depends on seed. */
void fill_pattern(uint8_t *p, size_t n, uint8_t seed);
/* Checks that frame f (n bytes) carries a valid header of type and returns its payload. */
const uint8_t *check_hdr(const uint8_t *f, int n, enum proto_type type);
/* Largest payload the header accepts for type: the wire layout, written out by hand. */
uint32_t expected_payload_max(unsigned type);

/* One decoder per type behind a common signature, so loops can cover every type. Each
 * fills its output with a sentinel first and checks that a failing decoder left it alone. */
typedef int (*decode_fn)(const uint8_t *p, size_t len);
/* The decoder of type, or NULL for BYE (no payload). */
decode_fn decoder_for(unsigned type);

/* DATA sample: two chunks, the last one short, raw. */
#define SAMPLE_DATA_N 2u
#define SAMPLE_DATA_PLAIN (2 * CS - 100)

/* Builds a valid frame of type with the encoders; returns its length. */
int build_sample(unsigned type, uint8_t *out, size_t cap);
/* The stream's frames: DATA, ZERO, EPOCH_END, EPOCH_ACK, PATCH. */
Suite *proto_stream_suite(void);

static inline bool all_bytes(const void *p, size_t n, uint8_t v)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++) {
		if (b[i] != v)
			return false;
	}
	return true;
}

#define DEFINE_DECODER(name, type, call)                                         \
	static inline int dec_##name(const uint8_t *p, size_t len)               \
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
DEFINE_DECODER(disk_grow, struct proto_disk_grow, proto_decode_disk_grow(p, len, &m))
DEFINE_DECODER(disk_grown, struct proto_disk_grown, proto_decode_disk_grown(p, len, &m))

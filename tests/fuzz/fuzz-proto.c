// SPDX-License-Identifier: GPL-2.0-only
/* libFuzzer target for the wire decoders. The input is tried as a whole frame (header, then
 * the payload by the header's type) and as a type byte (low nibble) followed by a payload.
 * Whatever a decoder accepts must re-encode to the same bytes and respect the header bound,
 * so the decoders accept nothing the encoders cannot produce. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/proto.h"
#include "common/util.h"

#define FUZZ_CHUNK_SIZE (64u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t out[PROTO_HDR_LEN + PROTO_MAX_PAYLOAD];
static volatile uint8_t sink;

static void require(bool ok)
{
	if (!ok)
		abort();
}

/* An accepted payload of len bytes re-encoded into n bytes at out must match it exactly. */
static void require_same(int n, enum proto_type type, const uint8_t *p, size_t len)
{
	struct proto_hdr h;

	require(n >= PROTO_HDR_LEN && (size_t)n - PROTO_HDR_LEN == len);
	require(memcmp(out + PROTO_HDR_LEN, p, len) == 0);
	require(proto_decode_hdr(out, &h) == 0);
	require(h.type == type && h.len == len);
}

static int check_data(const uint8_t *p, size_t len)
{
	struct proto_data m;
	struct proto_hdr h;
	const uint8_t *fps, *end = p + len;
	int r = proto_decode_data(p, len, FUZZ_CHUNK_SIZE, &m);

	if (r < 0)
		return r;
	/* Borrowed pointers stay inside the input: fingerprints right after the fixed part,
	 * payload right after them, running exactly to the end. */
	fps = (const uint8_t *)m.fps;
	require(fps == p + PROTO_DATA_FIXED);
	require(m.nchunks >= 1 && m.nchunks <= PROTO_EXTENT_MAX / FUZZ_CHUNK_SIZE);
	require((size_t)(end - fps) >= (size_t)m.nchunks * FP_LEN);
	require(m.payload == fps + (size_t)m.nchunks * FP_LEN);
	require(m.payload <= end && (size_t)(end - m.payload) == m.payload_len);
	require(m.offset % FUZZ_CHUNK_SIZE == 0 && m.offset <= UINT64_MAX - m.plain_len);
	require(m.plain_len > (uint64_t)(m.nchunks - 1) * FUZZ_CHUNK_SIZE);
	require(m.plain_len <= (uint64_t)m.nchunks * FUZZ_CHUNK_SIZE);
	if (m.encoding == PROTO_ENC_RAW)
		require(m.payload_len == m.plain_len);
	else
		require(m.encoding == PROTO_ENC_ZSTD && m.payload_len > 0 &&
			m.payload_len < m.plain_len);
	/* Touch every byte the receiver will read, so ASan sees any overrun. */
	for (size_t i = 0; i < (size_t)m.nchunks * FP_LEN; i++)
		sink ^= fps[i];
	for (size_t i = 0; i < m.payload_len; i++)
		sink ^= m.payload[i];
	r = proto_encode_data_head(out, sizeof(out), &m);
	require(r == PROTO_HDR_LEN + PROTO_DATA_FIXED);
	require(memcmp(out + PROTO_HDR_LEN, p, PROTO_DATA_FIXED) == 0);
	require(proto_decode_hdr(out, &h) == 0 && h.type == PROTO_DATA && h.len == len);
	return 0;
}

static int check_patch(const uint8_t *p, size_t len)
{
	struct proto_patch m;
	struct proto_hdr h;
	uint32_t nblocks;
	int r = proto_decode_patch(p, len, FUZZ_CHUNK_SIZE, &m);

	if (r < 0)
		return r;
	/* The blocks split the chunk into 2..64, some but not all are carried, and the
	 * payload runs exactly to the end of the input. */
	require(m.block_shift >= 9 && (1u << m.block_shift) < FUZZ_CHUNK_SIZE);
	nblocks = FUZZ_CHUNK_SIZE >> m.block_shift;
	require(nblocks >= 2 && nblocks <= PROTO_PATCH_MAX_BLOCKS);
	require(m.mask != 0 && (nblocks == 64 || m.mask >> nblocks == 0));
	require((uint32_t)__builtin_popcountll(m.mask) < nblocks);
	require(m.plain_len == (uint32_t)__builtin_popcountll(m.mask) << m.block_shift);
	require(m.offset % FUZZ_CHUNK_SIZE == 0);
	require(m.payload == p + PROTO_PATCH_FIXED && m.payload_len == len - PROTO_PATCH_FIXED);
	if (m.encoding == PROTO_ENC_RAW)
		require(m.payload_len == m.plain_len);
	else
		require(m.encoding == PROTO_ENC_ZSTD && m.payload_len > 0 &&
			m.payload_len < m.plain_len);
	for (size_t i = 0; i < m.payload_len; i++)
		sink ^= m.payload[i];
	r = proto_encode_patch_head(out, sizeof(out), &m);
	require(r == PROTO_HDR_LEN + PROTO_PATCH_FIXED);
	require(memcmp(out + PROTO_HDR_LEN, p, PROTO_PATCH_FIXED) == 0);
	require(proto_decode_hdr(out, &h) == 0 && h.type == PROTO_PATCH && h.len == len);
	return 0;
}

/* Decodes p as a payload of type with its decoder and checks what it accepted. Long only by
 * its cases, one per frame type, each a decode and its invariants. */
static void decode_payload(unsigned type, const uint8_t *p, size_t len)
{
	union {
		struct proto_hello hello;
		struct proto_welcome welcome;
		struct proto_disk disk;
		struct proto_disk_ok disk_ok;
		struct proto_zero zero;
		struct proto_epoch_end epoch_end;
		struct proto_epoch_ack epoch_ack;
		struct proto_error error;
		struct proto_fps fps;
		struct proto_cutover cutover;
		struct proto_status status;
		struct proto_control control;
		struct proto_disk_fault disk_fault;
		struct proto_disk_grow disk_grow;
		struct proto_disk_grown disk_grown;
	} m;
	int r = 0;

	switch (type) {
	case PROTO_HELLO:
		r = proto_decode_hello(p, len, &m.hello);
		if (r == 0) {
			require(proto_chunk_size_valid(m.hello.chunk_size));
			require(name_is_valid(m.hello.name, strlen(m.hello.name)));
			require_same(proto_encode_hello(out, sizeof(out), &m.hello), type, p, len);
		}
		break;
	case PROTO_WELCOME:
		r = proto_decode_welcome(p, len, &m.welcome);
		if (r == 0)
			require_same(proto_encode_welcome(out, sizeof(out), &m.welcome), type, p, len);
		break;
	case PROTO_DISK:
		r = proto_decode_disk(p, len, &m.disk);
		if (r == 0) {
			require(m.disk.size > 0 && m.disk.logical_block >= 512);
			require_same(proto_encode_disk(out, sizeof(out), &m.disk), type, p, len);
		}
		break;
	case PROTO_DISK_OK:
		r = proto_decode_disk_ok(p, len, &m.disk_ok);
		if (r == 0)
			require_same(proto_encode_disk_ok(out, sizeof(out), &m.disk_ok), type, p, len);
		break;
	case PROTO_DATA:
		r = check_data(p, len);
		break;
	case PROTO_PATCH:
		r = check_patch(p, len);
		break;
	case PROTO_ZERO:
		r = proto_decode_zero(p, len, FUZZ_CHUNK_SIZE, &m.zero);
		if (r == 0) {
			require(m.zero.length > 0 && m.zero.offset % FUZZ_CHUNK_SIZE == 0);
			require_same(proto_encode_zero(out, sizeof(out), &m.zero), type, p, len);
		}
		break;
	case PROTO_EPOCH_END:
		r = proto_decode_epoch_end(p, len, &m.epoch_end);
		if (r == 0)
			require_same(proto_encode_epoch_end(out, sizeof(out), &m.epoch_end), type, p,
				     len);
		break;
	case PROTO_EPOCH_ACK:
		r = proto_decode_epoch_ack(p, len, &m.epoch_ack);
		if (r == 0)
			require_same(proto_encode_epoch_ack(out, sizeof(out), &m.epoch_ack), type, p,
				     len);
		break;
	case PROTO_ERROR:
		r = proto_decode_error(p, len, &m.error);
		if (r == 0) {
			require(strlen(m.error.msg) <= PROTO_MSG_MAX);
			require_same(proto_encode_error(out, sizeof(out), &m.error), type, p, len);
		}
		break;
	case PROTO_CUTOVER:
		r = proto_decode_cutover(p, len, &m.cutover);
		if (r == 0)
			require_same(proto_encode_cutover(out, sizeof(out), &m.cutover), type, p, len);
		break;
	case PROTO_STATUS:
		r = proto_decode_status(p, len, &m.status);
		if (r == 0)
			require_same(proto_encode_status(out, sizeof(out), &m.status), type, p, len);
		break;
	case PROTO_CONTROL:
		r = proto_decode_control(p, len, &m.control);
		if (r == 0)
			require_same(proto_encode_control(out, sizeof(out), &m.control), type, p, len);
		break;
	case PROTO_DISK_FAULT:
		r = proto_decode_disk_fault(p, len, &m.disk_fault);
		if (r == 0) {
			require(strlen(m.disk_fault.msg) > 0 && strlen(m.disk_fault.msg) <= PROTO_MSG_MAX);
			require_same(proto_encode_disk_fault(out, sizeof(out), &m.disk_fault), type, p, len);
		}
		break;
	case PROTO_DISK_GROW:
		r = proto_decode_disk_grow(p, len, &m.disk_grow);
		if (r == 0) {
			require(m.disk_grow.size > 0);
			require_same(proto_encode_disk_grow(out, sizeof(out), &m.disk_grow), type, p, len);
		}
		break;
	case PROTO_DISK_GROWN:
		r = proto_decode_disk_grown(p, len, &m.disk_grown);
		if (r == 0) {
			require((m.disk_grown.code == 0) == (m.disk_grown.msg[0] == '\0'));
			require_same(proto_encode_disk_grown(out, sizeof(out), &m.disk_grown), type, p, len);
		}
		break;
	case PROTO_FPS:
		r = proto_decode_fps(p, len, &m.fps);
		if (r == 0) {
			const uint8_t *f = (const uint8_t *)m.fps.fps;

			require(m.fps.count <= PROTO_FPS_MAX);
			for (size_t i = 0; i < (size_t)m.fps.count * FP_LEN; i++)
				sink ^= f[i];
			require_same(proto_encode_fps(out, sizeof(out), &m.fps), type, p, len);
		}
		break;
	default:
		/* BYE and unknown types have no payload decoder. */
		break;
	}
	require(r == 0 || r == -EBADMSG || r == -EPROTO);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_hdr h;

	if (size >= PROTO_HDR_LEN) {
		int r = proto_decode_hdr(data, &h);

		require(r == 0 || r == -EBADMSG || r == -EPROTONOSUPPORT || r == -EMSGSIZE);
		if (r == 0) {
			uint8_t again[PROTO_HDR_LEN];

			require(h.type >= PROTO_HELLO && h.type <= PROTO_TYPE_MAX);
			require(h.len <= PROTO_MAX_PAYLOAD);
			proto_encode_hdr(again, h.type, h.len);
			require(memcmp(again, data, PROTO_HDR_LEN) == 0);
			require(strcmp(proto_type_name(h.type), "unknown") != 0);
			/* A whole frame: the payload as the header describes it. */
			if (h.len == size - PROTO_HDR_LEN)
				decode_payload(h.type, data + PROTO_HDR_LEN, h.len);
		}
	}
	if (size >= 1)
		decode_payload(data[0] & 0x0f, data + 1, size - 1);
	return 0;
}

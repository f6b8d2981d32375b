// SPDX-License-Identifier: GPL-2.0-only
/* libFuzzer target for codec_decompress and codec_decompress_stream: the first two bytes
 * choose plain_len (at most 1 MiB), the rest is the frame, or a stream's piece (a new
 * frame when the input's length is even; the stream lives on from one input to the next,
 * as a session's does). Each must return 0 or -EBADMSG and never write past plain_len,
 * which a guard region after the output checks. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/codec.h"
#include "common/proto.h"

#define GUARD_LEN 4096
#define GUARD_BYTE 0xa7

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static _Alignas(64) uint8_t dst[PROTO_EXTENT_MAX + GUARD_LEN];

static void require(bool ok)
{
	if (!ok)
		abort();
}

/* Exact lengths below 32 KiB, multiples of 32 bytes up to 1 MiB above. */
static size_t plain_len_of(const uint8_t *data)
{
	unsigned v = (unsigned)data[0] << 8 | data[1];

	if (v < 0x8000)
		return v;
	return ((size_t)(v & 0x7fff) + 1) << 5;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct codec *c;
	size_t plain_len;
	int r;

	if (size < 2)
		return 0;
	if (!c) {
		c = codec_new(CODEC_LEVEL_DEFAULT);
		require(c != NULL && codec_streams_accept(c, 1, CODEC_STREAM_WLOG) == 0);
	}
	plain_len = plain_len_of(data);
	require(plain_len <= PROTO_EXTENT_MAX);
	memset(dst + plain_len, GUARD_BYTE, GUARD_LEN);
	r = codec_decompress(c, dst, plain_len, data + 2, size - 2);
	require(r == 0 || r == -EBADMSG);
	for (size_t i = 0; i < GUARD_LEN; i++)
		require(dst[plain_len + i] == GUARD_BYTE);
	r = codec_decompress_stream(c, 0, size % 2 == 0, dst, plain_len, data + 2, size - 2);
	require(r == 0 || r == -EBADMSG);
	for (size_t i = 0; i < GUARD_LEN; i++)
		require(dst[plain_len + i] == GUARD_BYTE);
	return 0;
}

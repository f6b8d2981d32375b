// SPDX-License-Identifier: GPL-2.0-only
/* tern wire protocol v2, an epoch's stream: DATA, PATCH, ZERO, EPOCH_END, EPOCH_ACK and
 * FPS, encoded big-endian and decoded strictly (see proto.h). */
#include "common/proto.h"

#include <errno.h>
#include <string.h>

#include "common/cursor.h"
#include "common/proto-impl.h"
#include "common/util.h"

size_t proto_data_frame_len(uint32_t nchunks, uint32_t payload_len)
{
	return PROTO_HDR_LEN + PROTO_DATA_FIXED + (size_t)nchunks * FP_LEN + payload_len;
}

/* The payload rule of DATA and PATCH: raw is exact, a zstd frame only when it saves
 * space, a stream's piece within its bound (it may not shrink: the stream keeps it);
 * anything else is malformed or hostile. */
static bool payload_len_ok(uint8_t encoding, uint32_t plain_len, uint32_t payload_len)
{
	if (encoding == PROTO_ENC_RAW)
		return payload_len == plain_len;
	if (encoding == PROTO_ENC_ZSTD_STREAM)
		return payload_len > 0 && payload_len <= PROTO_STREAM_PAYLOAD_MAX(plain_len);
	return encoding == PROTO_ENC_ZSTD && payload_len > 0 && payload_len < plain_len;
}

/* DATA's stream byte: the stream and, in its top bit, a new frame; 0 but for a stream. */
#define STREAM_START 0x80u

static bool stream_ok(uint8_t encoding, uint8_t stream, bool start)
{
	if (encoding != PROTO_ENC_ZSTD_STREAM)
		return stream == 0 && !start;
	return stream < PROTO_STREAMS_MAX;
}

int proto_encode_data_head(uint8_t *out, size_t cap, const struct proto_data *m)
{
	size_t total = proto_data_frame_len(m->nchunks, m->payload_len);
	struct cur c = { .w = out, .left = cap };

	if (m->nchunks == 0 || m->plain_len == 0 || m->plain_len > PROTO_EXTENT_MAX ||
	    m->encoding > PROTO_ENC_ZSTD_STREAM || m->offset > UINT64_MAX - m->plain_len ||
	    !stream_ok(m->encoding, m->stream, m->start))
		return -EINVAL;
	if (!payload_len_ok(m->encoding, m->plain_len, m->payload_len))
		return -EINVAL;
	if (total - PROTO_HDR_LEN > PROTO_MAX_PAYLOAD)
		return -EINVAL;
	if (cap < PROTO_HDR_LEN + PROTO_DATA_FIXED)
		return -ENOBUFS;
	proto_encode_hdr(out, PROTO_DATA, (uint32_t)(total - PROTO_HDR_LEN));
	c.w += PROTO_HDR_LEN;
	c.left -= PROTO_HDR_LEN;
	put_be(&c, m->disk_no, 2);
	put_u8(&c, m->encoding);
	put_u8(&c, (uint8_t)(m->stream | (m->start ? STREAM_START : 0)));
	put_be(&c, m->nchunks, 4);
	put_be(&c, m->plain_len, 4);
	put_be(&c, m->offset, 8);
	if (c.bad)
		return -ENOBUFS;
	return PROTO_HDR_LEN + PROTO_DATA_FIXED;
}

int proto_decode_data(const uint8_t *p, size_t len, uint32_t cs, struct proto_data *ret_m)
{
	struct cur c = { .r = p, .left = len };
	struct proto_data m;
	uint8_t sbyte;
	uint64_t max_plain;

	if (!proto_chunk_size_valid(cs))
		return -EINVAL;
	m.disk_no = (uint16_t)get_be(&c, 2);
	m.encoding = (uint8_t)get_be(&c, 1);
	sbyte = (uint8_t)get_be(&c, 1);
	m.nchunks = (uint32_t)get_be(&c, 4);
	m.plain_len = (uint32_t)get_be(&c, 4);
	m.offset = get_be(&c, 8);
	if (c.bad)
		return -EBADMSG;
	m.stream = sbyte & (uint8_t)~STREAM_START;
	m.start = (sbyte & STREAM_START) != 0;
	if (m.encoding > PROTO_ENC_ZSTD_STREAM || !stream_ok(m.encoding, m.stream, m.start))
		return -EBADMSG;
	if (m.nchunks == 0 || m.nchunks > PROTO_EXTENT_MAX / cs)
		return -EPROTO;
	/* Every chunk but the last is whole; only the disk's last chunk may be short,
	 * which the session checks against the disk size. */
	max_plain = (uint64_t)m.nchunks * cs;
	if (m.plain_len == 0 || m.plain_len > max_plain || m.plain_len <= max_plain - cs)
		return -EPROTO;
	if (m.offset % cs != 0 || m.offset > UINT64_MAX - m.plain_len)
		return -EPROTO;
	m.fps = (const struct fp *)(const void *)get_bytes(&c, (size_t)m.nchunks * FP_LEN);
	if (!m.fps)
		return -EBADMSG;
	m.payload = c.r;
	m.payload_len = (uint32_t)c.left;
	if (!payload_len_ok(m.encoding, m.plain_len, m.payload_len))
		return -EBADMSG;
	*ret_m = m;
	return 0;
}

bool proto_patch_fits(uint32_t chunk_size, uint32_t block_size)
{
	/* The receiver stages a patch's blocks behind its chunk in one 1 MiB buffer, hence
	 * chunks of at most half that; one block per chunk would be a DATA frame. */
	return proto_chunk_size_valid(chunk_size) && chunk_size <= PROTO_CHUNK_MAX / 2 &&
	       block_size >= 512 && (block_size & (block_size - 1)) == 0 && block_size < chunk_size &&
	       chunk_size / block_size <= PROTO_PATCH_MAX_BLOCKS;
}

/* The rules a decoded patch must meet: a shape proto_patch_fits allows, at least one and
 * not all of the chunk's blocks carried, a chunk's offset, and the payload rule. */
static int patch_check(const struct proto_patch *m, uint32_t cs)
{
	uint32_t nblocks;

	if (!proto_chunk_size_valid(cs))
		return -EINVAL;
	if (m->block_shift < 9 || m->block_shift > 19 || !proto_patch_fits(cs, 1u << m->block_shift))
		return -EPROTO;
	nblocks = cs >> m->block_shift;
	if (m->mask == 0 || (nblocks < 64 && m->mask >> nblocks != 0) ||
	    (uint32_t)__builtin_popcountll(m->mask) == nblocks)
		return -EPROTO;
	if (m->offset % cs != 0 || m->offset > UINT64_MAX - cs)
		return -EPROTO;
	/* A patch is one frame of its own, never a stream's piece. */
	if (m->encoding > PROTO_ENC_ZSTD || !payload_len_ok(m->encoding, m->plain_len, m->payload_len))
		return -EBADMSG;
	return 0;
}

int proto_encode_patch_head(uint8_t *out, size_t cap, const struct proto_patch *m)
{
	struct cur c = { .w = out, .left = cap };
	uint64_t plain;

	if (m->block_shift < 9 || m->block_shift > 19 || m->mask == 0 || m->encoding > PROTO_ENC_ZSTD)
		return -EINVAL;
	/* The encoder does not know the session's chunk size; it checks what it can and the
	 * decoder checks the mask against the chunk. */
	plain = (uint64_t)__builtin_popcountll(m->mask) << m->block_shift;
	if (plain != m->plain_len || plain >= PROTO_CHUNK_MAX ||
	    !payload_len_ok(m->encoding, m->plain_len, m->payload_len))
		return -EINVAL;
	if (cap < PROTO_HDR_LEN + PROTO_PATCH_FIXED)
		return -ENOBUFS;
	proto_encode_hdr(out, PROTO_PATCH, (uint32_t)(PROTO_PATCH_FIXED + m->payload_len));
	c.w += PROTO_HDR_LEN;
	c.left -= PROTO_HDR_LEN;
	put_be(&c, m->disk_no, 2);
	put_u8(&c, m->encoding);
	put_u8(&c, m->block_shift);
	put_be(&c, m->mask, 8);
	put_be(&c, m->offset, 8);
	put_bytes(&c, m->fp.b, FP_LEN);
	if (c.bad)
		return -ENOBUFS;
	return PROTO_HDR_LEN + PROTO_PATCH_FIXED;
}

int proto_decode_patch(const uint8_t *p, size_t len, uint32_t cs, struct proto_patch *ret_m)
{
	struct cur c = { .r = p, .left = len };
	struct proto_patch m;
	const uint8_t *fp;
	int r;

	m.disk_no = (uint16_t)get_be(&c, 2);
	m.encoding = (uint8_t)get_be(&c, 1);
	m.block_shift = (uint8_t)get_be(&c, 1);
	m.mask = get_be(&c, 8);
	m.offset = get_be(&c, 8);
	fp = get_bytes(&c, FP_LEN);
	if (c.bad || !fp)
		return -EBADMSG;
	memcpy(m.fp.b, fp, FP_LEN);
	m.payload = c.r;
	m.payload_len = (uint32_t)c.left;
	/* Bounded before use: a shift past 19 is refused by patch_check. */
	m.plain_len = m.block_shift <= 19 ?
		(uint32_t)__builtin_popcountll(m.mask) << m.block_shift : 0;
	r = patch_check(&m, cs);
	if (r < 0)
		return r;
	*ret_m = m;
	return 0;
}

int proto_encode_zero(uint8_t *out, size_t cap, const struct proto_zero *m)
{
	struct cur c = begin(out, cap);

	if (m->length == 0)
		return -EINVAL;
	put_be(&c, m->disk_no, 2);
	put_be(&c, m->offset, 8);
	put_be(&c, m->length, 8);
	return finish(&c, out, PROTO_ZERO);
}

int proto_decode_zero(const uint8_t *p, size_t len, uint32_t cs, struct proto_zero *ret_m)
{
	struct cur c = { .r = p, .left = len };
	struct proto_zero m;
	int r;

	if (!proto_chunk_size_valid(cs))
		return -EINVAL;
	m.disk_no = (uint16_t)get_be(&c, 2);
	m.offset = get_be(&c, 8);
	m.length = get_be(&c, 8);
	r = done(&c);
	if (r < 0)
		return r;
	if (m.length == 0 || m.offset % cs != 0 || m.offset > UINT64_MAX - m.length)
		return -EPROTO;
	*ret_m = m;
	return 0;
}

int proto_encode_epoch_end(uint8_t *out, size_t cap, const struct proto_epoch_end *m)
{
	struct cur c = begin(out, cap);

	put_be(&c, m->disk_no, 2);
	put_be(&c, m->epoch, 8);
	put_be(&c, m->nchunks, 8);
	put_bytes(&c, m->root.b, FP_LEN);
	return finish(&c, out, PROTO_EPOCH_END);
}

int proto_decode_epoch_end(const uint8_t *p, size_t len, struct proto_epoch_end *ret_m)
{
	struct cur c = { .r = p, .left = len };
	struct proto_epoch_end m;
	const uint8_t *root;
	int r;

	m.disk_no = (uint16_t)get_be(&c, 2);
	m.epoch = get_be(&c, 8);
	m.nchunks = get_be(&c, 8);
	root = get_bytes(&c, FP_LEN);
	r = done(&c);
	if (r < 0)
		return r;
	memcpy(m.root.b, root, FP_LEN);
	*ret_m = m;
	return 0;
}

int proto_encode_epoch_ack(uint8_t *out, size_t cap, const struct proto_epoch_ack *m)
{
	struct cur c = begin(out, cap);

	put_be(&c, m->disk_no, 2);
	put_u8(&c, m->match ? 1 : 0);
	put_be(&c, m->epoch, 8);
	put_be(&c, m->bytes_written, 8);
	put_bytes(&c, m->root.b, FP_LEN);
	return finish(&c, out, PROTO_EPOCH_ACK);
}

int proto_decode_epoch_ack(const uint8_t *p, size_t len, struct proto_epoch_ack *ret_m)
{
	struct cur c = { .r = p, .left = len };
	struct proto_epoch_ack m;
	const uint8_t *root;
	int r;

	m.disk_no = (uint16_t)get_be(&c, 2);
	m.match = (uint8_t)get_be(&c, 1);
	m.epoch = get_be(&c, 8);
	m.bytes_written = get_be(&c, 8);
	root = get_bytes(&c, FP_LEN);
	r = done(&c);
	if (r < 0)
		return r;
	if (m.match > 1)
		return -EBADMSG;
	memcpy(m.root.b, root, FP_LEN);
	*ret_m = m;
	return 0;
}

/* Whether an FPS frame's flags, generation, vouched fingerprints and bitmap agree: unused
 * bits zero, unknown chunks as 16 zero bytes, a generation only with a bitmap. */
static bool fps_consistent(const struct proto_fps *m)
{
	static const struct fp zero;

	if (m->flags & ~PROTO_FPS_SOME)
		return false;
	if (!(m->flags & PROTO_FPS_SOME))
		return m->track_gen == 0;
	if (m->count == 0 || (m->count % 8 && m->held[m->count / 8] >> (m->count % 8)))
		return false;
	for (uint32_t i = 0; i < m->count; i++)
		if (!(m->held[i / 8] >> (i % 8) & 1) && memcmp(&m->fps[i], &zero, FP_LEN) != 0)
			return false;
	return true;
}

int proto_encode_fps(uint8_t *out, size_t cap, const struct proto_fps *m)
{
	struct cur c = begin(out, cap);

	if (m->count > PROTO_FPS_MAX || m->first_chunk > UINT64_MAX - m->count ||
	    !fps_consistent(m))
		return -EINVAL;
	put_be(&c, m->disk_no, 2);
	put_be(&c, m->next_epoch, 8);
	put_be(&c, m->first_chunk, 8);
	put_be(&c, m->count, 4);
	put_u8(&c, m->flags);
	put_be(&c, m->track_gen, 8);
	put_bytes(&c, m->fps, (size_t)m->count * FP_LEN);
	if (m->flags & PROTO_FPS_SOME)
		put_bytes(&c, m->held, DIV_ROUND_UP(m->count, 8));
	return finish(&c, out, PROTO_FPS);
}

int proto_decode_fps(const uint8_t *p, size_t len, struct proto_fps *ret_m)
{
	struct cur c = { .r = p, .left = len };
	struct proto_fps m;
	int r;

	m.disk_no = (uint16_t)get_be(&c, 2);
	m.next_epoch = get_be(&c, 8);
	m.first_chunk = get_be(&c, 8);
	m.count = (uint32_t)get_be(&c, 4);
	m.flags = (uint8_t)get_be(&c, 1);
	m.track_gen = get_be(&c, 8);
	if (c.bad)
		return -EBADMSG;
	if (m.count > PROTO_FPS_MAX || m.first_chunk > UINT64_MAX - m.count ||
	    (m.flags & ~PROTO_FPS_SOME))
		return -EPROTO;
	m.fps = (const struct fp *)(const void *)get_bytes(&c, (size_t)m.count * FP_LEN);
	m.held = m.flags & PROTO_FPS_SOME ?
		 get_bytes(&c, DIV_ROUND_UP(m.count, 8)) : NULL;
	r = done(&c);
	if (r < 0)
		return r;
	if (!fps_consistent(&m))
		return -EPROTO;
	*ret_m = m;
	return 0;
}

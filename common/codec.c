// SPDX-License-Identifier: GPL-2.0-only
/* zstd compression of extents; see codec.h. */
#include "common/codec.h"

#include <errno.h>
#include <stdlib.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getCParams */
#include <zstd.h>

#include "common/util.h"

/* A stream's match tables: each level's own, capped at level 9's (2^21 hash, 2^20 chain
 * entries), so an encoder holds ~21 MiB at most up to level 12 (level 12's own tables
 * made it 57 MiB for a ratio 3% better on /usr). */
#define STREAM_HASH_LOG_MAX 21u
#define STREAM_CHAIN_LOG_MAX 20u

struct dstream {
	ZSTD_DCtx *dctx;
	bool in_frame;
};

struct codec {
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	int level;
	/* compression stream (codec_stream_on) */
	ZSTD_CCtx *scctx;
	bool s_in_frame;
	uint64_t s_frame_bytes; /* plain bytes in the current frame */
	unsigned s_frames;      /* frames begun */
	/* decoding streams (codec_streams_accept) */
	struct dstream ds[CODEC_STREAMS_MAX];
	unsigned nds;
};

struct codec *codec_new(int level)
{
	struct codec *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->level = level;
	c->cctx = ZSTD_createCCtx();
	c->dctx = ZSTD_createDCtx();
	if (!c->cctx || !c->dctx)
		return codec_free(c);
	/* Checksums are redundant: every chunk carries an XXH3-128 fingerprint that the
	 * receiver checks after decompression. */
	if (ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_checksumFlag, 0)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_contentSizeFlag, 1)) ||
	    codec_set_level(c, level) < 0)
		return codec_free(c);
	return c;
}

int codec_set_level(struct codec *c, int level)
{
	/* Level 1 with a 2^15-entry hash table (default 2^13) compresses disk contents about
	 * 2% smaller at the same speed (zstd -b on the bench image's data chunks); other
	 * levels take their own (0: the level's default). */
	if (ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_compressionLevel, level)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_hashLog, level == 1 ? 15 : 0)))
		return -EINVAL;
	/* A stream's parameters are fixed for a frame: a new level takes a new frame. */
	if (level != c->level)
		c->s_in_frame = false;
	c->level = level;
	return 0;
}

int codec_stream_on(struct codec *c)
{
	if (!c->scctx) {
		c->scctx = ZSTD_createCCtx();
		if (!c->scctx)
			return -ENOMEM;
	}
	c->s_in_frame = false;
	return 0;
}

/* Starts a new frame of the stream at the codec's level. */
static int stream_frame(struct codec *c)
{
	ZSTD_compressionParameters cp = ZSTD_getCParams(c->level, 0, 0);
	ZSTD_CCtx *z = c->scctx;

	ZSTD_CCtx_reset(z, ZSTD_reset_session_and_parameters);
	if (ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, c->level)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_checksumFlag, 0)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_windowLog, CODEC_STREAM_WLOG)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_enableLongDistanceMatching, 1)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_hashLog,
						(int)MIN(cp.hashLog, STREAM_HASH_LOG_MAX))) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_chainLog,
						(int)MIN(cp.chainLog, STREAM_CHAIN_LOG_MAX))))
		return -EINVAL;
	c->s_in_frame = true;
	c->s_frame_bytes = 0;
	c->s_frames++;
	return 0;
}

/* The longest a frame must last before a level change, and the first frame's. */
#define STREAM_SETTLED_MAX (32u << 20)
#define STREAM_SETTLED_FIRST (1u << 20)

bool codec_stream_settled(const struct codec *c)
{
	unsigned k = c->s_frames ? c->s_frames - 1 : 0;
	uint64_t need = k >= 5 ? STREAM_SETTLED_MAX : (uint64_t)STREAM_SETTLED_FIRST << k;

	return !c->scctx || !c->s_in_frame || c->s_frame_bytes >= need;
}

long codec_compress_stream(struct codec *c, void *dst, size_t dst_cap, const void *src,
			   size_t len, bool *ret_start)
{
	ZSTD_outBuffer out = { .dst = dst, .size = dst_cap };
	ZSTD_inBuffer in = { .src = src, .size = len };
	bool start = false;
	size_t left;
	int r;

	if (!c->scctx)
		return -EINVAL;
	if (dst_cap < ZSTD_compressBound(len) || len == 0)
		return -ENOBUFS;
	if (!c->s_in_frame) {
		r = stream_frame(c);
		if (r < 0)
			return r;
		start = true;
	}
	/* A flush ends the extent's last block, so the receiver can decode all of it now. */
	do {
		left = ZSTD_compressStream2(c->scctx, &out, &in, ZSTD_e_flush);
		if (ZSTD_isError(left)) {
			c->s_in_frame = false;
			return -EIO;
		}
	} while (left != 0 && out.pos < out.size);
	if (left != 0 || in.pos != in.size) {
		c->s_in_frame = false;
		return -EIO;
	}
	c->s_frame_bytes += len;
	*ret_start = start;
	return (long)out.pos;
}

int codec_streams_accept(struct codec *c, unsigned n, unsigned window_log)
{
	if (n > CODEC_STREAMS_MAX || window_log < 10 ||
	    window_log > CODEC_STREAM_WLOG)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++) {
		if (!c->ds[i].dctx)
			c->ds[i].dctx = ZSTD_createDCtx();
		/* The window bounds what a hostile agent can make this stream hold. */
		if (!c->ds[i].dctx ||
		    ZSTD_isError(ZSTD_DCtx_setParameter(c->ds[i].dctx, ZSTD_d_windowLogMax,
							(int)window_log)))
			return -ENOMEM;
		c->ds[i].in_frame = false;
	}
	c->nds = n;
	return 0;
}

int codec_decompress_stream(struct codec *c, unsigned stream, bool start, void *dst,
			    size_t plain_len, const void *src, size_t len)
{
	ZSTD_outBuffer out = { .dst = dst, .size = plain_len };
	ZSTD_inBuffer in = { .src = src, .size = len };
	uint8_t extra;
	struct dstream *d;
	size_t r;

	if (stream >= c->nds)
		return -EPROTO;
	d = &c->ds[stream];
	if (!start && !d->in_frame)
		return -EBADMSG;
	if (start)
		ZSTD_DCtx_reset(d->dctx, ZSTD_reset_session_only);
	/* Cleared until the extent decodes whole: a failed stream takes only a new frame. */
	d->in_frame = false;
	while (in.pos < in.size && out.pos < out.size) {
		size_t was_in = in.pos, was_out = out.pos;

		r = ZSTD_decompressStream(d->dctx, &out, &in);
		if (ZSTD_isError(r) || (in.pos == was_in && out.pos == was_out))
			return -EBADMSG;
	}
	if (in.pos != in.size || out.pos != out.size)
		return -EBADMSG;
	/* Exactly plain_len: the payload may not hold more than the frame says. */
	out = (ZSTD_outBuffer){ .dst = &extra, .size = 1 };
	r = ZSTD_decompressStream(d->dctx, &out, &in);
	if (ZSTD_isError(r) || out.pos != 0)
		return -EBADMSG;
	d->in_frame = true;
	return 0;
}

struct codec *codec_free(struct codec *c)
{
	if (!c)
		return NULL;
	ZSTD_freeCCtx(c->cctx);
	ZSTD_freeDCtx(c->dctx);
	ZSTD_freeCCtx(c->scctx);
	for (unsigned i = 0; i < CODEC_STREAMS_MAX; i++)
		ZSTD_freeDCtx(c->ds[i].dctx);
	free(c);
	return NULL;
}

size_t codec_bound(size_t len)
{
	return ZSTD_compressBound(len);
}

long codec_compress(struct codec *c, void *dst, size_t dst_cap, const void *src, size_t len)
{
	size_t n;

	if (dst_cap < ZSTD_compressBound(len))
		return -ENOBUFS;
	n = ZSTD_compress2(c->cctx, dst, dst_cap, src, len);
	if (ZSTD_isError(n))
		return -EIO;
	if (n >= len - len / 32)
		return 0;
	return (long)n;
}

int codec_decompress(struct codec *c, void *dst, size_t plain_len, const void *src, size_t len)
{
	unsigned long long content;
	size_t n;

	/* Refuse frames that declare a different size before spending time on them. */
	content = ZSTD_getFrameContentSize(src, len);
	if (content != plain_len)
		return -EBADMSG;
	/* Exactly one frame and nothing after it: trailing empty or skippable frames would
	 * decode fine but mean the sender is not speaking our protocol. */
	if (ZSTD_findFrameCompressedSize(src, len) != len)
		return -EBADMSG;
	n = ZSTD_decompressDCtx(c->dctx, dst, plain_len, src, len);
	if (ZSTD_isError(n) || n != plain_len)
		return -EBADMSG;
	return 0;
}

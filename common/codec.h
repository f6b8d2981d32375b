/* SPDX-License-Identifier: GPL-2.0-only */
/* zstd compression of extents. One codec per thread (contexts are reused, not shared).
 * Data that does not shrink is reported as incompressible so it is sent raw. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct codec;

#define CODEC_LEVEL_MIN (-7)
#define CODEC_LEVEL_MAX 19
#define CODEC_LEVEL_DEFAULT 1
/* The default top of the agent's adaptive range (--level 1..9): past it zstd gains
 * little on disk contents for several times the CPU (/usr's files in 1 MiB frames: level
 * 12 0.5% smaller than 9 at 0.6x its speed, `zstd -b9e12 -B1M`; in a stream, whose match
 * tables are capped at level 9's, level 12 came out larger in a test with zstd's API). */
#define CODEC_LEVEL_ADAPT_MAX 9

/* Creates a codec compressing at level; NULL on allocation failure. */
struct codec *codec_new(int level);
/* NULL-safe; returns NULL. */
struct codec *codec_free(struct codec *c);
/* Compresses the next extents at level instead. 0, or -EINVAL (a level zstd refuses). */
int codec_set_level(struct codec *c, int level);

/* Streams: a codec may carry a compression stream across extents (one zstd frame flushed
 * after each extent), so an extent can refer to the 8 MiB before it (zstd's long-distance
 * matching finds repeats that far back: a sample of /usr's files came out 1.10x smaller
 * at level 1 and 1.14x at level 9 than as independent 1 MiB frames at the same level, with
 * `zstd -b1e9 --long=23` against `-B1M`). The receiver decodes each stream in
 * the order it was compressed and bounds what a stream may make it hold by the window. */
#define CODEC_STREAM_WLOG 23
/* The most streams one agent connection may use (a decoder window each at the receiver;
 * an encoder of up to ~21 MiB each at the agent). */
#define CODEC_STREAMS_MAX 4

/* Turns compression streaming on for this codec's codec_compress_stream. 0 or -ENOMEM. */
int codec_stream_on(struct codec *c);

/* Whether a new level may begin a new frame now (codec_set_level always takes effect for
 * frames of their own). A new frame forgets the window: resetting every 4 MiB made /usr's
 * files 10% larger at level 9, every 8 MiB 7% (a test with zstd's API). So the k-th frame of the stream lasts
 * min(2^k, 32) MiB before a change: a fast start, then a level that holds. */
bool codec_stream_settled(const struct codec *c);
/* Compresses the next extent of the stream into dst (dst_cap >= codec_bound(len)). Returns
 * the bytes written (never 0: incompressible data stays in the stream as stored blocks) or
 * -errno; *ret_start is true when this extent begins a new frame (the first one, after a
 * level change, after an error), whose decoder must start afresh. */
long codec_compress_stream(struct codec *c, void *dst, size_t dst_cap, const void *src,
			   size_t len, bool *ret_start);
/* Gives this codec n (<= CODEC_STREAMS_MAX) decoding streams, each holding at most a
 * 2^window_log window. 0, -EINVAL or -ENOMEM. */
int codec_streams_accept(struct codec *c, unsigned n, unsigned window_log);
/* Decodes the next extent of stream `stream` into exactly plain_len bytes at dst; start:
 * the extent begins a new frame. Returns 0, -EBADMSG (corrupt, a continuation without a
 * frame begun, output not exactly plain_len) or -EPROTO (no such stream). A failed stream
 * accepts only a new frame after. */
int codec_decompress_stream(struct codec *c, unsigned stream, bool start, void *dst,
			    size_t plain_len, const void *src, size_t len);

/* Worst-case compressed size of len bytes. */
size_t codec_bound(size_t len);
/* Compresses src into dst (dst_cap >= codec_bound(len)). Returns the compressed size, 0
 * when the result would not save at least 1/32 of the input (send raw), or -errno. */
long codec_compress(struct codec *c, void *dst, size_t dst_cap, const void *src, size_t len);
/* Decompresses exactly plain_len bytes from src into dst. Returns 0, or -EBADMSG when the
 * frame is corrupt or does not decode to exactly plain_len bytes. */
int codec_decompress(struct codec *c, void *dst, size_t plain_len, const void *src, size_t len);

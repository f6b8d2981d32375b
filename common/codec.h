/* SPDX-License-Identifier: GPL-2.0-only */
/* zstd compression of extents. One codec per thread (contexts are reused, not shared).
 * Data that does not shrink is reported as incompressible so it is sent raw. */
#pragma once
#include <stddef.h>
#include <stdint.h>

struct codec;

#define CODEC_LEVEL_MIN (-7)
#define CODEC_LEVEL_MAX 19
#define CODEC_LEVEL_DEFAULT 1
/* The default top of the agent's adaptive range (--level 1..12): past it zstd gains
 * little on disk contents for several times the CPU. */
#define CODEC_LEVEL_ADAPT_MAX 12

/* Creates a codec compressing at level; NULL on allocation failure. */
struct codec *codec_new(int level);
/* NULL-safe; returns NULL. */
struct codec *codec_free(struct codec *c);
/* Compresses the next extents at level instead. 0, or -EINVAL (a level zstd refuses). */
int codec_set_level(struct codec *c, int level);

/* Worst-case compressed size of len bytes. */
size_t codec_bound(size_t len);
/* Compresses src into dst (dst_cap >= codec_bound(len)). Returns the compressed size, 0
 * when the result would not save at least 1/32 of the input (send raw), or -errno. */
long codec_compress(struct codec *c, void *dst, size_t dst_cap, const void *src, size_t len);
/* Decompresses exactly plain_len bytes from src into dst. Returns 0, or -EBADMSG when the
 * frame is corrupt or does not decode to exactly plain_len bytes. */
int codec_decompress(struct codec *c, void *dst, size_t plain_len, const void *src, size_t len);

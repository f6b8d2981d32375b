// SPDX-License-Identifier: GPL-2.0-only
/* The read pipeline's workers: a slot's chunks tested for zeros, fingerprinted, compared
 * with the receiver's, compressed and framed (DATA, ZERO, PATCH) into the output queue. */
#include "agent/reader-impl.h"

#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/blocksum.h"
#include "common/codec.h"
#include "common/fptab.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/util.h"

/* Chunk idx's fingerprint in fps (rd->fps or cs.prev, stored as common/fptab.h says). */
static void fp_of(const struct reader *rd, const struct fp *fps, uint64_t idx, struct fp *ret)
{
	fps_get(fps, idx, rd->src->size, rd->o.chunk_size, ret);
}

/* Emits one ZERO frame for chunks [i, j) of the slot. */
static int emit_zero(struct reader *rd, struct rd_out *out, size_t cap, const struct slot *s,
		     uint64_t start, uint64_t end)
{
	struct proto_zero z = { .disk_no = rd->disk_no, .offset = s->off + start,
				.length = end - start };
	int n = proto_encode_zero(out->buf + out->len, cap - out->len, &z);

	if (n < 0)
		return n;
	out->len += (size_t)n;
	out->zero_bytes += z.length;
	return 0;
}

/* Encodes a DATA frame's payload from len bytes at src into payload (room bytes), and
 * says how in d: the next piece of the worker's compression stream (stream >= 0, once an
 * extent of the disk has shrunk), else a zstd frame of its own, else the raw bytes. */
static int encode_payload(struct reader *rd, struct codec *codec, int stream, uint8_t *payload,
			  size_t room, const uint8_t *src, uint32_t len, struct proto_data *d)
{
	long c;

	if (stream >= 0 && __atomic_load_n(&rd->shrank, __ATOMIC_RELAXED)) {
		c = codec_compress_stream(codec, payload, room, src, len, &d->start);
		if (c < 0)
			return (int)c;
		d->encoding = PROTO_ENC_ZSTD_STREAM;
		d->stream = (uint8_t)stream;
		d->payload_len = (uint32_t)c;
		return 0;
	}
	c = codec_compress(codec, payload, room, src, len);
	if (c < 0)
		return (int)c;
	if (c > 0) {
		__atomic_store_n(&rd->shrank, true, __ATOMIC_RELAXED);
		d->encoding = PROTO_ENC_ZSTD;
		d->payload_len = (uint32_t)c;
	} else {
		d->encoding = PROTO_ENC_RAW;
		d->payload_len = len;
		memcpy(payload, src, len);
	}
	return 0;
}

/* Emits one DATA frame for the slot's bytes [start, end) = chunks [ci, cj). */
static int emit_data(struct reader *rd, struct codec *codec, int stream, struct rd_out *out,
		     size_t cap, const struct slot *s, uint64_t start, uint64_t end,
		     uint64_t first_chunk, uint32_t nchunks)
{
	struct proto_data d = { .disk_no = rd->disk_no, .nchunks = nchunks,
				.plain_len = (uint32_t)(end - start), .offset = s->off + start };
	uint8_t *head = out->buf + out->len;
	size_t fixed = PROTO_HDR_LEN + PROTO_DATA_FIXED + (size_t)nchunks * FP_LEN;
	int n;

	if (cap - out->len < fixed + d.plain_len)
		return -ENOBUFS;
	n = encode_payload(rd, codec, stream, head + fixed, cap - out->len - fixed,
			   s->buf + start, d.plain_len, &d);
	if (n < 0)
		return n;
	n = proto_encode_data_head(head, cap - out->len, &d);
	if (n < 0)
		return n;
	/* The real fingerprints: the receiver checks each chunk against its own. */
	for (uint32_t k = 0; k < nchunks; k++)
		fp_of(rd, rd->fps, first_chunk + k, (struct fp *)(head + n + (size_t)k * FP_LEN));
	out->len += fixed + d.payload_len;
	return 0;
}

/* The changed blocks of a whole chunk per the tracker; 0 when the chunk goes whole. */
static uint64_t patch_mask(const struct reader *rd, uint64_t chunk)
{
	uint32_t per;
	uint64_t bit, mask;

	/* A chunk the receiver does not vouch for has no known blocks to patch. */
	if (!rd->cs.blocks || !rd->cs.only || !chunk_held(rd, chunk))
		return 0;
	per = rd->o.chunk_size / rd->cs.block_size;
	bit = chunk * per;
	mask = rd->cs.blocks[bit / 64] >> (bit % 64);
	if (per < 64)
		mask &= (UINT64_C(1) << per) - 1;
	/* Every block changed: a DATA frame says the same with less. */
	return (uint32_t)__builtin_popcountll(mask) == per ? 0 : mask;
}

/* With block sums: whole chunk idx (at p, all zeros when z) gets sums that describe its
 * content now, and when it is data that changed (kind 1) and its old sums describe the
 * receiver's copy (prev), returns the blocks whose sum changed: 0 sends it whole (none
 * changed, a collision; or all of them: a DATA frame says the same with less). */
static uint64_t sums_mask(struct reader *rd, uint64_t idx, const uint8_t *p, bool z,
			  uint8_t kind)
{
	struct bsum *b = rd->cs.sums;
	uint32_t now[BSUM_MAX_BLOCKS], per = rd->o.chunk_size / bsum_block_size(b);
	uint64_t mask = 0;
	struct fp fp_now, fp_prev;
	const struct fp *fp = &fp_now;

	fp_of(rd, rd->fps, idx, &fp_now);
	/* Already this content's (the chunk is unchanged since it was summed): no hashing. */
	if (bsum_holds(b, idx, fp))
		return 0;
	if (z) {
		bsum_store(b, idx, NULL, fp);
		return 0;
	}
	bsum_compute(b, p, now);
	if (kind == 1 && rd->cs.prev)
		fp_of(rd, rd->cs.prev, idx, &fp_prev);
	if (kind == 1 && rd->cs.prev && bsum_holds(b, idx, &fp_prev)) {
		mask = bsum_diff(b, idx, now);
		if ((uint32_t)__builtin_popcountll(mask) == per)
			mask = 0;
	}
	bsum_store(b, idx, now, fp);
	return mask;
}

/* The block size of the epoch's patches: the tracker's, or the block sums'. */
static uint32_t patch_block(const struct reader *rd)
{
	return rd->cs.blocks ? rd->cs.block_size : bsum_block_size(rd->cs.sums);
}

/* Emits one PATCH frame: the chunk's changed blocks (mask), gathered and compressed. */
static int emit_patch(struct reader *rd, struct codec *codec, struct rd_out *out, size_t cap,
		      const struct slot *s, uint32_t i, uint64_t mask, uint8_t *scratch)
{
	uint32_t bs = patch_block(rd);
	struct proto_patch m = { .disk_no = rd->disk_no, .mask = mask,
				 .block_shift = (uint8_t)__builtin_ctz(bs),
				 .offset = s->off + (uint64_t)i * rd->o.chunk_size };
	const uint8_t *chunk = s->buf + (size_t)i * rd->o.chunk_size;
	uint8_t *head = out->buf + out->len, *payload;
	size_t fixed = PROTO_HDR_LEN + PROTO_PATCH_FIXED;
	long c;
	int n;

	fp_of(rd, rd->fps, s->off / rd->o.chunk_size + i, &m.fp);
	for (uint64_t bits = mask; bits; bits &= bits - 1) {
		memcpy(scratch + m.plain_len, chunk + (size_t)__builtin_ctzll(bits) * bs, bs);
		m.plain_len += bs;
	}
	if (cap - out->len < fixed + m.plain_len)
		return -ENOBUFS;
	payload = head + fixed;
	c = codec_compress(codec, payload, cap - out->len - fixed, scratch, m.plain_len);
	if (c < 0)
		return (int)c;
	m.encoding = c > 0 ? PROTO_ENC_ZSTD : PROTO_ENC_RAW;
	m.payload_len = c > 0 ? (uint32_t)c : m.plain_len;
	if (c == 0)
		memcpy(payload, scratch, m.plain_len);
	n = proto_encode_patch_head(head, cap - out->len, &m);
	if (n < 0)
		return n;
	out->len += fixed + m.payload_len;
	return 0;
}

/* Chunk idx of a hole's slot (clen bytes), all zeros and never read: its fingerprint, and
 * its kind as process() gives it (0 unchanged, not sent; 2 zero). */
static uint8_t hole_kind(struct reader *rd, struct rd_out *out, uint64_t idx, uint32_t clen)
{
	uint8_t kind = 2;
	struct fp f, pv;

	if (!chunk_dirty(rd, idx)) {
		fp_of(rd, rd->cs.prev, idx, &f);
		fps_put(rd->fps, idx, &f, rd->src->size, rd->o.chunk_size);
		return 0;
	}
	/* Stored as the fresh array's zeros (fptab.h): a run of holes commits no memory. */
	fp_zero(clen, &f);
	fps_put(rd->fps, idx, &f, rd->src->size, rd->o.chunk_size);
	if (rd->cs.prev && chunk_held(rd, idx))
		fp_of(rd, rd->cs.prev, idx, &pv);
	if (rd->cs.prev && chunk_held(rd, idx) && fp_equal(&pv, &f))
		kind = 0;
	else if (rd->cs.marks && !chunk_free(rd, idx) && chunk_held(rd, idx) &&
		 !((rd->cs.marks[idx / 64] >> (idx % 64)) & 1))
		out->missed_chunks++;
	if (rd->cs.sums && clen == rd->o.chunk_size)
		sums_mask(rd, idx, NULL, true, kind);
	return kind;
}

/* A hole's slot (up to RD_HOLE_MAX, never read): one ZERO frame per run of chunks to send,
 * so a run of holes costs one frame, not one per MiB. The frame buffer grows with the
 * runs (at most one frame per two chunks), not with the slot. */
static int process_hole(struct reader *rd, struct slot *s, struct rd_out *out)
{
	uint32_t cs = rd->o.chunk_size;
	uint64_t first = s->off / cs, n = DIV_ROUND_UP((uint64_t)s->want, cs), run = 0;
	size_t cap = 256;
	int r = 0;

	if (!(out->buf = malloc(cap)))
		return -ENOMEM;
	for (uint64_t i = 0; i <= n && r == 0; i++) {
		uint32_t clen = i < n ? (uint32_t)MIN((uint64_t)cs, s->want - i * cs) : 0;
		uint8_t kind = i < n ? hole_kind(rd, out, first + i, clen) : 0;

		if (kind == 2) {
			out->sent_chunks++;
			continue;
		}
		if (run < i) {
			/* A ZERO frame is a few dozen bytes: keep room for one more. */
			if (cap - out->len < 128) {
				uint8_t *b = realloc(out->buf, cap * 2);

				if (!b)
					return -ENOMEM;
				out->buf = b;
				cap *= 2;
			}
			r = emit_zero(rd, out, cap, s, run * cs, MIN(i * cs, (uint64_t)s->want));
		}
		run = i + 1;
	}
	return r;
}

/* scratch: a chunk-sized buffer of the worker's, to gather a patch's blocks in; stream:
 * the worker's compression stream, or -1. */
static int process(struct reader *rd, struct codec *codec, int stream, uint8_t *scratch,
		   struct slot *s, struct rd_out **ret_out)
{
	uint32_t cs = rd->o.chunk_size;
	uint64_t first = s->off / cs;
	uint32_t n = (uint32_t)DIV_ROUND_UP((uint64_t)s->want, cs);
	/* Per chunk: 0 unchanged since the previous scan (not sent), 1 data, 2 zero, 3 only
	 * some blocks changed (a PATCH of patch[i]). */
	uint8_t kind[PROTO_EXTENT_MAX / PROTO_CHUNK_MIN];
	uint64_t patch[PROTO_EXTENT_MAX / PROTO_CHUNK_MIN];
	struct rd_out *out;
	size_t cap;
	int r = 0;

	out = calloc(1, sizeof(*out));
	if (!out)
		return -ENOMEM;
	out->plain_bytes = s->want;
	out->read_bytes = s->read;
	/* Not read, nothing to send (the tracker marked none of its chunks): the receiver's
	 * fingerprints stand, and no frame buffer is needed. */
	if (s->clean) {
		for (uint32_t i = 0; i < n; i++) {
			struct fp f;

			fp_of(rd, rd->cs.prev, first + i, &f);
			fps_put(rd->fps, first + i, &f, rd->src->size, cs);
		}
		*ret_out = out;
		return 0;
	}
	if (s->hole) {
		r = process_hole(rd, s, out);
		if (r < 0) {
			rd_out_free(out);
			return r;
		}
		*ret_out = out;
		return 0;
	}
	/* Worst case: every data run incompressible (a stream's pieces may take its bound,
	 * and a run under 128 KiB up to 64 bytes more) plus a frame head per chunk. */
	cap = codec_bound(s->want) + (size_t)n * (PROTO_HDR_LEN + PROTO_DATA_FIXED + FP_LEN + 96) + 64;
	if (!(out->buf = malloc(cap))) {
		free(out);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *p = s->buf + (size_t)i * cs;
		uint32_t clen = (uint32_t)MIN((uint64_t)cs, (uint64_t)s->want - (uint64_t)i * cs);
		uint64_t smask = 0;
		struct fp f, pv;
		bool z;

		if (!chunk_dirty(rd, first + i)) {
			/* Unchanged per the tracker: the receiver already holds this chunk. */
			fp_of(rd, rd->cs.prev, first + i, &f);
			fps_put(rd->fps, first + i, &f, rd->src->size, cs);
			kind[i] = 0;
			continue;
		}
		/* Free space is sent as zeros whatever stale bytes it holds (read or not). */
		z = s->hole || chunk_free(rd, first + i) || mem_is_zero(p, clen);
		if (z)
			fp_zero(clen, &f);
		else
			fp_compute(p, clen, &f);
		/* A zero chunk's is left as the fresh array's zeros: holes cost no memory. */
		fps_put(rd->fps, first + i, &f, rd->src->size, cs);
		kind[i] = z ? 2 : 1;
		if (rd->cs.prev && chunk_held(rd, first + i))
			fp_of(rd, rd->cs.prev, first + i, &pv);
		if (rd->cs.prev && chunk_held(rd, first + i) && fp_equal(&pv, &f))
			kind[i] = 0;
		else if (rd->cs.marks && !chunk_free(rd, first + i) && chunk_held(rd, first + i) &&
			 !((rd->cs.marks[(first + i) / 64] >> ((first + i) % 64)) & 1))
			out->missed_chunks++;
		/* Before the fault seam below: the sums describe what the fingerprint does. */
		if (rd->cs.sums && clen == cs)
			smask = sums_mask(rd, first + i, p, z, kind[i]);
		if (first + i == rd->o.fault_corrupt_chunk) {
			/* Test seam: the content no longer matches the fingerprint sent. */
			p[clen / 2] ^= 0x5a;
			kind[i] = 1;
			log_warn("fault injection: corrupting chunk %" PRIu64, first + i);
		}
		/* A changed whole chunk with only some changed blocks: the receiver holds the
		 * others (the tracker or the block sums say so, and the fingerprint proves it
		 * there). */
		if (kind[i] == 1 && clen == cs &&
		    ((patch[i] = patch_mask(rd, first + i)) != 0 || (patch[i] = smask) != 0))
			kind[i] = 3;
	}
	for (uint32_t i = 0; i < n && r == 0;) {
		uint32_t j = i + 1;
		uint64_t start = (uint64_t)i * cs, end;

		while (j < n && kind[j] == kind[i] && kind[i] != 3)
			j++;
		end = MIN((uint64_t)j * cs, (uint64_t)s->want);
		if (kind[i] == 3) {
			r = emit_patch(rd, codec, out, cap, s, i, patch[i], scratch);
			out->patched_chunks++;
		} else if (kind[i] == 2)
			r = emit_zero(rd, out, cap, s, start, end);
		else if (kind[i] == 1)
			r = emit_data(rd, codec, stream, out, cap, s, start, end, first + i, j - i);
		if (kind[i] != 0)
			out->sent_chunks += j - i;
		i = j;
	}
	if (r < 0) {
		rd_out_free(out);
		return r;
	}
	*ret_out = out;
	return 0;
}

void *worker_main(void *arg)
{
	struct reader *rd = arg;
	int level = rd->o.lvl ? lvl_now(rd->o.lvl) : rd->o.level;
	struct codec *codec = codec_new(level);
	/* Only an epoch that may send patches needs somewhere to gather their blocks. */
	bool patches = rd->cs.blocks || rd->cs.sums;
	uint8_t *scratch = patches ? malloc(rd->o.chunk_size) : NULL;
	int stream = -1;
	uint64_t idle_since = now_ns(), idle_ns;

	pthread_mutex_lock(&rd->lock);
	if (rd->workers_named < rd->o.streams)
		stream = (int)rd->workers_named;
	rd->workers_named++;
	pthread_mutex_unlock(&rd->lock);
	if (!codec || (patches && !scratch) || (stream >= 0 && codec_stream_on(codec) < 0))
		rd_fail(rd, -ENOMEM);
	for (;;) {
		struct rd_out *out = NULL;
		uint64_t t0, t1;
		struct slot *s;
		int r;

		pthread_mutex_lock(&rd->lock);
		while (!rd->work_head && !rd->io_done && !rd->stop && !rd->err)
			pthread_cond_wait(&rd->work_cv, &rd->lock);
		if (rd->stop || rd->err || !rd->work_head) {
			pthread_mutex_unlock(&rd->lock);
			break;
		}
		s = rd->work_head;
		rd->work_head = s->next;
		if (!rd->work_head)
			rd->work_tail = NULL;
		pthread_mutex_unlock(&rd->lock);

		/* The adaptive level may have moved since the last batch; a stream takes it
		 * when its frame has lasted long enough to be worth forgetting. */
		if (rd->o.lvl && lvl_now(rd->o.lvl) != level &&
		    (stream < 0 || codec_stream_settled(codec))) {
			level = lvl_now(rd->o.lvl);
			if (codec_set_level(codec, level) < 0)
				rd_fail(rd, -EINVAL);
		}
		t0 = now_ns();
		r = process(rd, codec, stream, scratch, s, &out);
		t1 = now_ns();
		if (r == 0)
			out->level = level;
		/* Idle until t0: waiting for a read, which is held back (the reads in flight
		 * count the finished frames) when the link is slower than the workers. */
		idle_ns = t0 - MIN(t0, idle_since);

		pthread_mutex_lock(&rd->lock);
		s->next = rd->free_head;
		rd->free_head = s;
		pthread_cond_signal(&rd->free_cv);
		while (r == 0 && rd->out_count >= rd->out_max && !rd->stop && !rd->err)
			pthread_cond_wait(&rd->space_cv, &rd->lock);
		if (r == 0 && !rd->stop && !rd->err) {
			/* For the adaptive level: the work, and the time the link left this
			 * worker idle, the wait for this read and for room in the queue. */
			rd->busy_ns += t1 - t0;
			rd->busy1_ns += (uint64_t)((double)(t1 - t0) / lvl_cost(level));
			rd->idle_ns += idle_ns + (now_ns() - t1);
			out->next = NULL;
			if (rd->out_tail)
				rd->out_tail->next = out;
			else
				rd->out_head = out;
			rd->out_tail = out;
			rd->out_count++;
			out = NULL;
			pthread_cond_signal(&rd->out_cv);
		}
		pthread_mutex_unlock(&rd->lock);
		idle_since = now_ns();
		rd_out_free(out);
		if (r < 0) {
			rd_fail(rd, r);
			break;
		}
	}
	codec_free(codec);
	free(scratch);
	pthread_mutex_lock(&rd->lock);
	rd->workers_live--;
	pthread_cond_broadcast(&rd->out_cv);
	pthread_mutex_unlock(&rd->lock);
	return NULL;
}

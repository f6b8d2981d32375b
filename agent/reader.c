// SPDX-License-Identifier: GPL-2.0-only
/* The read pipeline: io_uring reads -> chunk/fingerprint/compress workers -> bounded
 * queue of frames; see reader.h. */
#include "agent/reader.h"

#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/codec.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/util.h"

struct slot {
	uint8_t *buf;
	uint64_t off;
	uint32_t want; /* bytes of the source this batch covers */
	uint32_t got;  /* bytes read so far; short reads are requeued */
	unsigned idx;  /* registered buffer index */
	bool hole;     /* a sparse file's hole or file systems' free space: zeros, never read */
	bool clean;    /* no chunk the tracker marked: not read, fingerprints from prev */
	struct slot *next;
};

struct reader {
	struct source *src;
	uint16_t disk_no;
	struct rd_opts o;
	struct changeset cs;
	int fd;          /* cs.fd, or the source's own */
	uint64_t nchunks;
	struct fp *fps; /* one per chunk, each written by exactly one worker */

	struct io_uring ring;
	bool ring_ok, fixed;
	bool leak_buffers; /* reads may still be in flight: do not free the slots */
	/* Image files: the next offset holding data per SEEK_DATA (UINT64_MAX: none). */
	bool seek_data;
	uint64_t data_from;
	struct slot *slots;
	unsigned nslots;

	pthread_mutex_t lock;
	pthread_cond_t free_cv, work_cv, out_cv, space_cv;
	struct slot *free_head, *work_head, *work_tail;
	struct rd_out *out_head, *out_tail;
	unsigned out_count, out_max;
	bool io_done, stop;
	unsigned workers_live;
	int err;
	bool src_err;       /* err is the source's: a read failed or the source ended early */
	uint64_t src_err_off;
	uint64_t *bad;      /* skip_unreadable: chunks that could not be read (zero-filled) */
	uint64_t nbad;

	pthread_t io_thread;
	bool io_started;
	pthread_t *workers;
	unsigned nworkers;
};

static void rd_fail(struct reader *rd, int err)
{
	pthread_mutex_lock(&rd->lock);
	if (!rd->err)
		rd->err = err;
	pthread_cond_broadcast(&rd->free_cv);
	pthread_cond_broadcast(&rd->work_cv);
	pthread_cond_broadcast(&rd->out_cv);
	pthread_cond_broadcast(&rd->space_cv);
	pthread_mutex_unlock(&rd->lock);
}

static void queue_read(struct reader *rd, struct slot *s)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&rd->ring);
	uint32_t len = s->want - s->got;

	/* The ring has twice as many entries as slots, so an SQE is always free. O_DIRECT
	 * wants whole blocks; the round-up never reaches past the slot's buffer. */
	if (rd->src->direct)
		len = MIN((uint32_t)((len + 4095u) & ~4095u), rd->o.batch - s->got);
	if (rd->fixed)
		io_uring_prep_read_fixed(sqe, rd->fd, s->buf + s->got, len, s->off + s->got,
					 (int)s->idx);
	else
		io_uring_prep_read(sqe, rd->fd, s->buf + s->got, len, s->off + s->got);
	/* Carried by the request itself: an O_DIRECT read is submitted from the ring, not
	 * from a thread whose priority we set. */
	sqe->ioprio = rd->o.ioprio;
	io_uring_sqe_set_data(sqe, s);
}

/* True when [off, off+len) of a regular file is one hole: it reads as zeros, so it needs
 * neither the read nor the zero test. A cached SEEK_DATA answer stays valid while it lies
 * at or beyond off, since nothing between the two offsets held data. */
static bool is_hole(struct reader *rd, uint64_t off, uint64_t len)
{
	off_t d;

	if (!rd->seek_data)
		return false;
	if (rd->data_from != 0 && rd->data_from >= off)
		return rd->data_from >= off + len;
	d = lseek(rd->fd, (off_t)off, SEEK_DATA);
	if (d < 0) {
		if (errno == ENXIO) {
			rd->data_from = UINT64_MAX;
			return true;
		}
		rd->seek_data = false; /* not supported here: read everything */
		return false;
	}
	rd->data_from = (uint64_t)d;
	return rd->data_from >= off + len;
}

static bool chunk_free(const struct reader *rd, uint64_t idx)
{
	return rd->cs.free && (rd->cs.free[idx / 64] >> (idx % 64)) & 1;
}

static bool chunk_dirty(const struct reader *rd, uint64_t idx)
{
	return !rd->cs.only || (rd->cs.only[idx / 64] >> (idx % 64)) & 1 || chunk_free(rd, idx);
}

/* True when [off, off+len) holds free space and nothing to read (each other chunk is
 * unchanged per the tracker): the batch is not read, its free chunks are zeros. */
static bool batch_free(const struct reader *rd, uint64_t off, uint64_t len)
{
	uint64_t first = off / rd->o.chunk_size, last = DIV_ROUND_UP(off + len, rd->o.chunk_size);
	bool any = false;

	for (uint64_t i = first; rd->cs.free && i < last; i++) {
		if (chunk_free(rd, i))
			any = true;
		else if (chunk_dirty(rd, i))
			return false;
	}
	return any;
}

/* True when the tracker marked any chunk of [off, off+len). */
static bool batch_dirty(const struct reader *rd, uint64_t off, uint64_t len)
{
	uint64_t first = off / rd->o.chunk_size, last = DIV_ROUND_UP(off + len, rd->o.chunk_size);

	for (uint64_t i = first; i < last; i++)
		if (chunk_dirty(rd, i))
			return true;
	return false;
}

static void push_work(struct reader *rd, struct slot *s)
{
	s->next = NULL;
	if (rd->work_tail)
		rd->work_tail->next = s;
	else
		rd->work_head = s;
	rd->work_tail = s;
	pthread_cond_signal(&rd->work_cv);
}

/* Test seam: whether a read of [off, off+len) meets the injected bad range. */
static bool fault_hit(const struct reader *rd, uint64_t off, uint64_t len)
{
	if (!rd->o.fault_eio_len || off + len <= rd->o.fault_eio_off ||
	    off >= rd->o.fault_eio_off + rd->o.fault_eio_len)
		return false;
	return !rd->o.fault_eio_flag || access(rd->o.fault_eio_flag, F_OK) == 0;
}

/* Reads [off, off+len) into buf whole with plain preads (short reads resumed). */
static int read_chunk(struct reader *rd, uint8_t *buf, uint64_t off, uint32_t len)
{
	uint32_t got = 0;

	if (fault_hit(rd, off, len))
		return -EIO;
	while (got < len) {
		/* O_DIRECT wants whole blocks: the round-up stays inside the chunk's room. */
		size_t want = rd->src->direct ? ((len - got + 4095u) & ~4095u) : len - got;
		ssize_t n = pread(rd->fd, buf + got, want, (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0 || (rd->src->direct && ((uint32_t)n & 4095u) && got + (uint32_t)n < len))
			return -EIO;
		got += (uint32_t)MIN((uint64_t)n, (uint64_t)(len - got));
	}
	return 0;
}

/* A batch read failed and skip_unreadable is set: reads it again chunk by chunk, so only
 * the chunks that really cannot be read are lost; those become zeros (the target gets
 * zeros there) and are listed. The I/O thread does this itself: it is rare, and the
 * reads already in flight complete meanwhile. */
static void salvage(struct reader *rd, struct slot *s)
{
	uint32_t cs = rd->o.chunk_size;

	for (uint32_t at = 0; at < s->want; at += cs) {
		uint32_t len = MIN(cs, s->want - at);
		uint64_t idx = (s->off + at) / cs;
		int r = read_chunk(rd, s->buf + at, s->off + at, len);

		if (r == 0)
			continue;
		log_warn("%s: chunk %" PRIu64 " at %" PRIu64 " unreadable (%s): sent as zeros",
			 rd->src->id, idx, s->off + at, strerror(-r));
		memset(s->buf + at, 0, len);
		pthread_mutex_lock(&rd->lock);
		rd->bad[idx / 64] |= UINT64_C(1) << (idx % 64);
		rd->nbad++;
		pthread_mutex_unlock(&rd->lock);
	}
	s->got = s->want;
}

static void *io_main(void *arg)
{
	struct reader *rd = arg;
	uint64_t next_off = 0, size = rd->src->size;
	unsigned inflight = 0;
	int err = 0;

	/* Buffered reads (and a read io_uring punts to its workers, which share this thread's
	 * I/O context) are issued by readahead on this thread's behalf: give it the
	 * priority too. who = 0 is the calling thread. */
	if (rd->o.ioprio && syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, rd->o.ioprio) < 0)
		log_debug("%s: cannot set the read thread's I/O priority: %s", rd->src->id,
			  strerror(errno));
	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned queued = 0;
		int r;

		pthread_mutex_lock(&rd->lock);
		while (!rd->stop && !rd->err && next_off < size && !rd->free_head && inflight == 0)
			pthread_cond_wait(&rd->free_cv, &rd->lock);
		if (rd->stop || rd->err) {
			pthread_mutex_unlock(&rd->lock);
			break;
		}
		/* No more than queue_depth reads in flight: the other slots are there so the
		 * workers can hold theirs meanwhile, not to deepen the queue. */
		while (next_off < size && rd->free_head && inflight + queued < rd->o.queue_depth) {
			struct slot *s = rd->free_head;

			rd->free_head = s->next;
			s->off = next_off;
			s->want = (uint32_t)MIN((uint64_t)rd->o.batch, size - next_off);
			s->got = 0;
			next_off += s->want;
			s->hole = batch_free(rd, s->off, s->want) || is_hole(rd, s->off, s->want);
			s->clean = !s->hole && !batch_dirty(rd, s->off, s->want);
			if (s->hole || s->clean) {
				push_work(rd, s);
				continue;
			}
			queue_read(rd, s);
			queued++;
		}
		pthread_mutex_unlock(&rd->lock);
		inflight += queued;
		if (inflight == 0) {
			if (next_off >= size)
				break; /* everything read and handed to the workers */
			continue; /* only holes so far: wait for slots to come back */
		}
		r = io_uring_submit_and_wait(&rd->ring, 1);
		if (r < 0 && r != -EINTR) {
			err = r;
			break;
		}
		while (io_uring_peek_cqe(&rd->ring, &cqe) == 0) {
			struct slot *s = io_uring_cqe_get_data(cqe);
			int res = cqe->res;

			io_uring_cqe_seen(&rd->ring, cqe);
			if (res >= 0 && fault_hit(rd, s->off + s->got, (uint64_t)s->want - s->got))
				res = -EIO;
			if (res < 0 && rd->o.skip_unreadable && !err && res != -ECANCELED) {
				salvage(rd, s);
				inflight--;
				pthread_mutex_lock(&rd->lock);
				push_work(rd, s);
				pthread_mutex_unlock(&rd->lock);
				continue;
			}
			if (res < 0) {
				if (!err) {
					rd->src_err = true;
					rd->src_err_off = s->off + s->got;
				}
				/* Said once, by the session, which knows what it means for the disk. */
				log_debug("%s: read at %" PRIu64 ": %s", rd->src->path, s->off + s->got,
					  strerror(-res));
				err = res;
				inflight--;
				continue;
			}
			if (res == 0 && s->got < s->want) {
				if (!err) {
					rd->src_err = true;
					rd->src_err_off = s->off + s->got;
				}
				err = -EIO;
				log_error("%s: source ended early at %" PRIu64 " (did it shrink?)",
					  rd->src->path, s->off + s->got);
				inflight--;
				continue;
			}
			s->got = (uint32_t)MIN((uint64_t)s->want, (uint64_t)s->got + (uint64_t)res);
			if (err) {
				inflight--; /* stopping: a partial batch must not be sent */
				continue;
			}
			if (s->got < s->want) {
				if (rd->src->direct && (s->got & 4095u)) {
					err = -EIO;
					log_error("%s: unaligned short read at %" PRIu64, rd->src->path,
						  s->off + s->got);
					inflight--;
					continue;
				}
				queue_read(rd, s); /* short read: ask for the rest */
				continue;
			}
			inflight--;
			pthread_mutex_lock(&rd->lock);
			push_work(rd, s);
			pthread_mutex_unlock(&rd->lock);
		}
		if (err)
			break;
	}
	/* Buffers may not be freed while the kernel still writes into them. */
	while (inflight > 0) {
		struct io_uring_cqe *cqe;

		int r;

		io_uring_submit(&rd->ring);
		r = io_uring_wait_cqe(&rd->ring, &cqe);
		if (r == -EINTR)
			continue;
		if (r < 0) {
			/* Never free what the kernel may still write into: leak instead. */
			log_errno(r, "io_uring wait while stopping; leaking read buffers");
			rd->leak_buffers = true;
			break;
		}
		io_uring_cqe_seen(&rd->ring, cqe);
		inflight--;
	}
	if (err)
		rd_fail(rd, err);
	pthread_mutex_lock(&rd->lock);
	rd->io_done = true;
	pthread_cond_broadcast(&rd->work_cv);
	pthread_mutex_unlock(&rd->lock);
	return NULL;
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

/* Emits one DATA frame for the slot's bytes [start, end) = chunks [ci, cj). */
static int emit_data(struct reader *rd, struct codec *codec, struct rd_out *out, size_t cap,
		     const struct slot *s, uint64_t start, uint64_t end, uint64_t first_chunk,
		     uint32_t nchunks)
{
	struct proto_data d = { .disk_no = rd->disk_no, .nchunks = nchunks,
				.plain_len = (uint32_t)(end - start), .offset = s->off + start };
	uint8_t *head = out->buf + out->len;
	size_t fixed = PROTO_HDR_LEN + PROTO_DATA_FIXED + (size_t)nchunks * FP_LEN;
	uint8_t *payload = head + fixed;
	long c;
	int n;

	if (cap - out->len < fixed + d.plain_len)
		return -ENOBUFS;
	c = codec_compress(codec, payload, cap - out->len - fixed, s->buf + start, d.plain_len);
	if (c < 0)
		return (int)c;
	if (c > 0) {
		d.encoding = PROTO_ENC_ZSTD;
		d.payload_len = (uint32_t)c;
	} else {
		d.encoding = PROTO_ENC_RAW;
		d.payload_len = d.plain_len;
		memcpy(payload, s->buf + start, d.plain_len);
	}
	n = proto_encode_data_head(head, cap - out->len, &d);
	if (n < 0)
		return n;
	memcpy(head + n, &rd->fps[first_chunk], (size_t)nchunks * FP_LEN);
	out->len += fixed + d.payload_len;
	return 0;
}

/* The changed blocks of a whole chunk per the tracker; 0 when the chunk goes whole. */
static uint64_t patch_mask(const struct reader *rd, uint64_t chunk)
{
	uint32_t per;
	uint64_t bit, mask;

	if (!rd->cs.blocks || !rd->cs.only)
		return 0;
	per = rd->o.chunk_size / rd->cs.block_size;
	bit = chunk * per;
	mask = rd->cs.blocks[bit / 64] >> (bit % 64);
	if (per < 64)
		mask &= (UINT64_C(1) << per) - 1;
	/* Every block changed: a DATA frame says the same with less. */
	return (uint32_t)__builtin_popcountll(mask) == per ? 0 : mask;
}

/* Emits one PATCH frame: the chunk's changed blocks (mask), gathered and compressed. */
static int emit_patch(struct reader *rd, struct codec *codec, struct rd_out *out, size_t cap,
		      const struct slot *s, uint32_t i, uint64_t mask, uint8_t *scratch)
{
	uint32_t bs = rd->cs.block_size;
	struct proto_patch m = { .disk_no = rd->disk_no, .mask = mask,
				 .block_shift = (uint8_t)__builtin_ctz(bs),
				 .offset = s->off + (uint64_t)i * rd->o.chunk_size,
				 .fp = rd->fps[s->off / rd->o.chunk_size + i] };
	const uint8_t *chunk = s->buf + (size_t)i * rd->o.chunk_size;
	uint8_t *head = out->buf + out->len, *payload;
	size_t fixed = PROTO_HDR_LEN + PROTO_PATCH_FIXED;
	long c;
	int n;

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

/* scratch: a chunk-sized buffer of the worker's, to gather a patch's blocks in. */
static int process(struct reader *rd, struct codec *codec, uint8_t *scratch, struct slot *s,
		   struct rd_out **ret_out)
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
	out->read_bytes = s->hole || s->clean ? 0 : s->want;
	/* Not read, nothing to send (the tracker marked none of its chunks): the receiver's
	 * fingerprints stand, and no frame buffer is needed. */
	if (s->clean) {
		memcpy(&rd->fps[first], &rd->cs.prev[first], (size_t)n * sizeof(*rd->fps));
		*ret_out = out;
		return 0;
	}
	/* Worst case: every data run incompressible plus a frame head per chunk. */
	cap = codec_bound(s->want) + (size_t)n * (PROTO_HDR_LEN + PROTO_DATA_FIXED + FP_LEN + 32) + 64;
	if (!(out->buf = malloc(cap))) {
		free(out);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *p = s->buf + (size_t)i * cs;
		uint32_t clen = (uint32_t)MIN((uint64_t)cs, (uint64_t)s->want - (uint64_t)i * cs);

		bool z;

		if (!chunk_dirty(rd, first + i)) {
			/* Unchanged per the tracker: the receiver already holds this chunk. */
			rd->fps[first + i] = rd->cs.prev[first + i];
			kind[i] = 0;
			continue;
		}
		/* Free space is sent as zeros whatever stale bytes it holds (read or not). */
		z = s->hole || chunk_free(rd, first + i) || mem_is_zero(p, clen);
		if (z)
			fp_zero(clen, &rd->fps[first + i]);
		else
			fp_compute(p, clen, &rd->fps[first + i]);
		kind[i] = z ? 2 : 1;
		if (rd->cs.prev && fp_equal(&rd->cs.prev[first + i], &rd->fps[first + i]))
			kind[i] = 0;
		else if (rd->cs.marks && !chunk_free(rd, first + i) &&
			 !((rd->cs.marks[(first + i) / 64] >> ((first + i) % 64)) & 1))
			out->missed_chunks++;
		if (first + i == rd->o.fault_corrupt_chunk) {
			/* Test seam: the content no longer matches the fingerprint sent. */
			p[clen / 2] ^= 0x5a;
			kind[i] = 1;
			log_warn("fault injection: corrupting chunk %" PRIu64, first + i);
		}
		/* A changed whole chunk with only some changed blocks: the receiver holds the
		 * others (the tracker says so, and the fingerprint proves it there). */
		if (kind[i] == 1 && clen == cs && (patch[i] = patch_mask(rd, first + i)) != 0)
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
			r = emit_data(rd, codec, out, cap, s, start, end, first + i, j - i);
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

static void *worker_main(void *arg)
{
	struct reader *rd = arg;
	int level = rd->o.lvl ? lvl_now(rd->o.lvl) : rd->o.level;
	struct codec *codec = codec_new(level);
	/* Only an epoch that may send patches needs somewhere to gather their blocks. */
	uint8_t *scratch = rd->cs.blocks ? malloc(rd->o.chunk_size) : NULL;

	if (!codec || (rd->cs.blocks && !scratch))
		rd_fail(rd, -ENOMEM);
	for (;;) {
		struct rd_out *out = NULL;
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

		/* The adaptive level may have moved since the last batch. */
		if (rd->o.lvl && lvl_now(rd->o.lvl) != level) {
			level = lvl_now(rd->o.lvl);
			if (codec_set_level(codec, level) < 0)
				rd_fail(rd, -EINVAL);
		}
		r = process(rd, codec, scratch, s, &out);

		pthread_mutex_lock(&rd->lock);
		s->next = rd->free_head;
		rd->free_head = s;
		pthread_cond_signal(&rd->free_cv);
		while (r == 0 && rd->out_count >= rd->out_max && !rd->stop && !rd->err)
			pthread_cond_wait(&rd->space_cv, &rd->lock);
		if (r == 0 && !rd->stop && !rd->err) {
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

void rd_out_free(struct rd_out *o)
{
	if (!o)
		return;
	free(o->buf);
	free(o);
}

int rd_start(struct source *src, uint16_t disk_no, const struct rd_opts *o,
	     const struct changeset *cs, struct reader **ret_rd)
{
	struct reader *rd;
	struct iovec *iov = NULL;
	int r;

	if (((cs->only || cs->marks) && !cs->prev) || !proto_chunk_size_valid(o->chunk_size) || o->batch < o->chunk_size ||
	    o->batch % o->chunk_size || o->batch > PROTO_EXTENT_MAX || o->queue_depth == 0 ||
	    o->workers == 0)
		return -EINVAL;
	if (cs->blocks && (!cs->only || !proto_patch_fits(o->chunk_size, cs->block_size)))
		return -EINVAL;
	rd = calloc(1, sizeof(*rd));
	if (!rd)
		return -ENOMEM;
	rd->src = src;
	rd->disk_no = disk_no;
	rd->o = *o;
	rd->cs = *cs;
	rd->fd = cs->fd >= 0 ? cs->fd : src->fd;
	rd->nchunks = DIV_ROUND_UP(src->size, o->chunk_size);
	rd->seek_data = !src->blockdev;
	pthread_mutex_init(&rd->lock, NULL);
	pthread_cond_init(&rd->free_cv, NULL);
	pthread_cond_init(&rd->work_cv, NULL);
	pthread_cond_init(&rd->out_cv, NULL);
	pthread_cond_init(&rd->space_cv, NULL);
	rd->out_max = o->workers * 2 + 2;
	r = -ENOMEM;
	rd->fps = calloc(rd->nchunks, sizeof(*rd->fps));
	rd->bad = calloc(DIV_ROUND_UP(rd->nchunks, 64), sizeof(*rd->bad));
	if (!rd->fps || !rd->bad)
		goto fail;
	/* Enough slots to keep queue_depth reads in flight while every worker holds one. */
	rd->nslots = o->queue_depth + o->workers + 1;
	rd->slots = calloc(rd->nslots, sizeof(*rd->slots));
	iov = calloc(rd->nslots, sizeof(*iov));
	if (!rd->slots || !iov)
		goto fail;
	for (unsigned i = 0; i < rd->nslots; i++) {
		rd->slots[i].buf = alloc_aligned(4096, o->batch);
		if (!rd->slots[i].buf)
			goto fail;
		rd->slots[i].idx = i;
		rd->slots[i].next = rd->free_head;
		rd->free_head = &rd->slots[i];
		iov[i] = (struct iovec){ .iov_base = rd->slots[i].buf, .iov_len = o->batch };
	}
	r = io_uring_queue_init(rd->nslots * 2, &rd->ring, 0);
	if (r < 0) {
		log_errno(r, "io_uring setup");
		goto fail;
	}
	rd->ring_ok = true;
	r = io_uring_register_buffers(&rd->ring, iov, rd->nslots);
	if (r == 0)
		rd->fixed = true;
	else
		log_info("io_uring buffer registration refused (%s); using plain reads",
			 strerror(-r));
	free(iov);
	iov = NULL;

	rd->workers = calloc(o->workers, sizeof(*rd->workers));
	r = -ENOMEM;
	if (!rd->workers)
		goto fail;
	for (unsigned i = 0; i < o->workers; i++) {
		/* Counted before it runs, so a worker that fails at once cannot underflow. */
		pthread_mutex_lock(&rd->lock);
		rd->workers_live++;
		pthread_mutex_unlock(&rd->lock);
		r = -pthread_create(&rd->workers[i], NULL, worker_main, rd);
		if (r < 0) {
			pthread_mutex_lock(&rd->lock);
			rd->workers_live--;
			pthread_mutex_unlock(&rd->lock);
			goto fail;
		}
		rd->nworkers++;
	}
	r = -pthread_create(&rd->io_thread, NULL, io_main, rd);
	if (r < 0)
		goto fail;
	rd->io_started = true;
	*ret_rd = rd;
	return 0;
fail:
	free(iov);
	rd_free(rd);
	return r;
}

int rd_next(struct reader *rd, struct rd_out **ret_out)
{
	struct rd_out *o = NULL;
	bool backlog, starved;
	int r;

	pthread_mutex_lock(&rd->lock);
	/* What the adaptive level learns from this batch: frames piled up waiting for the
	 * link, or the sender waiting while read batches wait for a worker. */
	backlog = rd->out_count >= rd->out_max;
	starved = !rd->out_head && rd->work_head;
	while (!rd->out_head && rd->workers_live > 0 && !rd->err)
		pthread_cond_wait(&rd->out_cv, &rd->lock);
	if (rd->err) {
		r = rd->err;
	} else if ((o = rd->out_head)) {
		rd->out_head = o->next;
		if (!rd->out_head)
			rd->out_tail = NULL;
		rd->out_count--;
		pthread_cond_signal(&rd->space_cv);
		o->next = NULL;
		*ret_out = o;
		r = 1;
	} else {
		r = 0;
	}
	pthread_mutex_unlock(&rd->lock);
	/* Only a batch that carried data tells how compression keeps up. */
	if (r == 1 && rd->o.lvl && o->read_bytes > o->zero_bytes) {
		int was = lvl_now(rd->o.lvl), moved = lvl_note(rd->o.lvl, backlog, starved);

		if (moved)
			log_debug("%s: zstd level %d (%s)", rd->src->id, moved, moved > was ?
				  "frames wait for the link" : "the link waits for compression");
	}
	return r;
}

int rd_root(struct reader *rd, struct fp *ret_root, uint64_t *ret_nchunks)
{
	int r;

	pthread_mutex_lock(&rd->lock);
	r = (rd->out_head || rd->workers_live > 0 || !rd->io_done) ? -EBUSY : rd->err;
	pthread_mutex_unlock(&rd->lock);
	if (r < 0)
		return r;
	r = fp_merkle_root(rd->fps, rd->nchunks, ret_root);
	if (r < 0)
		return r;
	*ret_nchunks = rd->nchunks;
	return 0;
}

bool rd_source_failed(struct reader *rd, uint64_t *ret_off)
{
	bool failed;

	pthread_mutex_lock(&rd->lock);
	failed = rd->err && rd->src_err;
	if (failed)
		*ret_off = rd->src_err_off;
	pthread_mutex_unlock(&rd->lock);
	return failed;
}

uint64_t rd_unreadable(struct reader *rd, const uint64_t **ret_bitmap)
{
	*ret_bitmap = rd->bad;
	return rd->nbad;
}

struct fp *rd_take_fps(struct reader *rd)
{
	struct fp *f = rd->fps;

	rd->fps = NULL;
	return f;
}

struct reader *rd_free(struct reader *rd)
{
	if (!rd)
		return NULL;
	pthread_mutex_lock(&rd->lock);
	rd->stop = true;
	pthread_cond_broadcast(&rd->free_cv);
	pthread_cond_broadcast(&rd->work_cv);
	pthread_cond_broadcast(&rd->space_cv);
	pthread_mutex_unlock(&rd->lock);
	if (rd->io_started)
		pthread_join(rd->io_thread, NULL);
	for (unsigned i = 0; i < rd->nworkers; i++)
		pthread_join(rd->workers[i], NULL);
	while (rd->out_head) {
		struct rd_out *o = rd->out_head;

		rd->out_head = o->next;
		rd_out_free(o);
	}
	if (rd->ring_ok)
		io_uring_queue_exit(&rd->ring);
	for (unsigned i = 0; rd->slots && !rd->leak_buffers && i < rd->nslots; i++)
		free(rd->slots[i].buf);
	free(rd->slots);
	free(rd->workers);
	free(rd->fps);
	free(rd->bad);
	pthread_cond_destroy(&rd->free_cv);
	pthread_cond_destroy(&rd->work_cv);
	pthread_cond_destroy(&rd->out_cv);
	pthread_cond_destroy(&rd->space_cv);
	pthread_mutex_destroy(&rd->lock);
	free(rd);
	return NULL;
}

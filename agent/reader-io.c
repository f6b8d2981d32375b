// SPDX-License-Identifier: GPL-2.0-only
/* The read pipeline's I/O thread: io_uring reads of the source into free slots (holes and
 * batches the tracker left clean skipped; of the others only the runs of chunks the
 * tracker marked, several at once), short reads requeued, unreadable runs salvaged chunk
 * by chunk with skip_unreadable; full slots go to the workers. */
#include "agent/reader-impl.h"

#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/codec.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/util.h"

static void queue_read(struct reader *rd, struct rd_req *q)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&rd->ring);
	struct slot *s = q->s;
	uint32_t len = q->end - q->got;

	/* The ring has RD_RUNS_MAX entries per slot (each has that many reads in flight at
	 * most), so an SQE is always free. O_DIRECT wants whole blocks: runs are whole
	 * chunks, so only the source's unaligned end rounds up, and never past the slot's
	 * buffer (nor into another run: nothing of the batch lies after the source's end). */
	if (rd->src->direct)
		len = MIN((uint32_t)((len + 4095u) & ~4095u), rd->o.batch - q->got);
	if (rd->fixed)
		io_uring_prep_read_fixed(sqe, rd->fd, s->buf + q->got, len, s->off + q->got,
					 (int)s->idx);
	else
		io_uring_prep_read(sqe, rd->fd, s->buf + q->got, len, s->off + q->got);
	/* Carried by the request itself: an O_DIRECT read is submitted from the ring, not
	 * from a thread whose priority we set. */
	sqe->ioprio = rd->o.ioprio;
	io_uring_sqe_set_data(sqe, q);
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

/* Whether chunk idx must be read: the tracker marked it (or marked none) and it is not
 * free space, which goes as zeros unread. */
static bool chunk_wanted(const struct reader *rd, uint64_t idx)
{
	return chunk_dirty(rd, idx) && !chunk_free(rd, idx);
}

/* Points q at s's first run of consecutive chunks to read at or after s->scan (a chunk
 * boundary, or the batch's end) and moves scan past it: a scattered change reads its
 * chunks, not the whole batch. Returns false when no chunk is left to read. */
static bool next_run(const struct reader *rd, struct slot *s, struct rd_req *q)
{
	uint32_t cs = rd->o.chunk_size, n = (uint32_t)DIV_ROUND_UP((uint64_t)s->want, cs);
	uint64_t first = s->off / cs;
	/* Rounded up: a run that ends the source's short last chunk has nothing after it. */
	uint32_t i = (uint32_t)DIV_ROUND_UP((uint64_t)s->scan, cs), j;

	while (i < n && !chunk_wanted(rd, first + i))
		i++;
	if (i >= n) {
		s->scan = s->want;
		return false;
	}
	for (j = i + 1; j < n && chunk_wanted(rd, first + j); j++)
		;
	q->s = s;
	q->at = i * cs;
	q->end = (uint32_t)MIN((uint64_t)j * cs, (uint64_t)s->want);
	q->got = q->at;
	s->scan = q->end;
	return true;
}

/* Queues reads of s's next runs while it has fewer than RD_RUNS_MAX in flight. Returns the
 * number queued. */
static unsigned queue_runs(struct reader *rd, struct slot *s)
{
	unsigned queued = 0;

	while (s->pending < RD_RUNS_MAX) {
		struct rd_req *q = NULL;

		/* A free request: one whose read is not in flight (end == 0 marks it). */
		for (unsigned k = 0; k < RD_RUNS_MAX && !q; k++)
			if (s->req[k].end == 0)
				q = &s->req[k];
		if (!q || !next_run(rd, s, q))
			break;
		queue_read(rd, q);
		s->pending++;
		queued++;
	}
	return queued;
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

/* A run's read failed and skip_unreadable is set: reads the run again chunk by chunk, so
 * only the chunks that really cannot be read are lost; those become zeros (the target
 * gets zeros there) and are listed. The I/O thread does this itself: it is rare, and the
 * reads already in flight complete meanwhile. */
static void salvage(struct reader *rd, struct rd_req *q)
{
	struct slot *s = q->s;
	uint32_t cs = rd->o.chunk_size;

	for (uint32_t at = q->at; at < q->end; at += cs) {
		uint32_t len = MIN(cs, q->end - at);
		uint64_t idx = (s->off + at) / cs;
		int r = read_chunk(rd, s->buf + at, s->off + at, len);

		if (r == 0) {
			s->read += len;
			continue;
		}
		log_warn("%s: chunk %" PRIu64 " at %" PRIu64 " unreadable (%s): sent as zeros",
			 rd->src->id, idx, s->off + at, strerror(-r));
		memset(s->buf + at, 0, len);
		pthread_mutex_lock(&rd->lock);
		rd->bad[idx / 64] |= UINT64_C(1) << (idx % 64);
		rd->nbad++;
		pthread_mutex_unlock(&rd->lock);
	}
	q->got = q->end;
}

/* Hands out free slots from *next_off on, while fewer than queue_depth batches are being
 * read: holes and clean batches go straight to the workers, the others' runs are queued
 * as reads (counted in *nreq). Called with rd->lock held. Returns the number of batches
 * queued. */
static unsigned fill_slots(struct reader *rd, uint64_t *next_off, uint64_t size,
			   unsigned inflight, unsigned *nreq)
{
	unsigned queued = 0;

	while (*next_off < size && rd->free_head && inflight + queued < rd->o.queue_depth) {
		struct slot *s = rd->free_head;

		rd->free_head = s->next;
		s->off = *next_off;
		s->want = (uint32_t)MIN((uint64_t)rd->o.batch, size - *next_off);
		s->read = 0;
		s->scan = 0;
		s->pending = 0;
		for (unsigned k = 0; k < RD_RUNS_MAX; k++)
			s->req[k].end = 0;
		*next_off += s->want;
		s->hole = batch_free(rd, s->off, s->want) || is_hole(rd, s->off, s->want);
		/* A hole is never read, so its slot may stand for the whole run of holes that
		 * follows (up to RD_HOLE_MAX): one batch and one ZERO frame per run instead of
		 * one per MiB, on both sides. */
		while (s->hole && *next_off < size && s->want <= RD_HOLE_MAX - rd->o.batch) {
			uint32_t more = (uint32_t)MIN((uint64_t)rd->o.batch, size - *next_off);

			if (!batch_free(rd, *next_off, more) && !is_hole(rd, *next_off, more))
				break;
			s->want += more;
			*next_off += more;
		}
		s->clean = !s->hole && !batch_dirty(rd, s->off, s->want);
		/* A batch with nothing to read (its marked chunks all free space) goes as is. */
		if (s->hole || s->clean || queue_runs(rd, s) == 0) {
			push_work(rd, s);
			continue;
		}
		*nreq += s->pending;
		queued++;
	}
	return queued;
}

/* A read of q's slot is over (read whole, salvaged, or failed while stopping): q is free
 * again and, unless stopping, the slot's next runs are queued, and a batch with no read
 * left in flight goes to the workers. */
static void req_done(struct reader *rd, struct rd_req *q, unsigned *inflight, unsigned *nreq,
		     bool stopping)
{
	struct slot *s = q->s;

	q->end = 0;
	s->pending--;
	(*nreq)--;
	if (stopping)
		return; /* a partial batch must not be sent */
	*nreq += queue_runs(rd, s);
	if (s->pending > 0)
		return;
	(*inflight)--;
	pthread_mutex_lock(&rd->lock);
	push_work(rd, s);
	pthread_mutex_unlock(&rd->lock);
}

/* Takes the completed reads: a full run is followed by the slot's next runs or, its last,
 * sends the batch to the workers; a short one is asked for the rest, a failed one is
 * salvaged (skip_unreadable) or ends the pipeline with its error in *err (a source's
 * error: rd->src_err and where). */
static void complete_reads(struct reader *rd, unsigned *inflight, unsigned *nreq, int *err)
{
	struct io_uring_cqe *cqe;

	while (io_uring_peek_cqe(&rd->ring, &cqe) == 0) {
		struct rd_req *q = io_uring_cqe_get_data(cqe);
		struct slot *s = q->s;
		int res = cqe->res;

		io_uring_cqe_seen(&rd->ring, cqe);
		if (res >= 0 && fault_hit(rd, s->off + q->got, (uint64_t)q->end - q->got))
			res = -EIO;
		if (res < 0 && rd->o.skip_unreadable && !*err && res != -ECANCELED) {
			salvage(rd, q);
			req_done(rd, q, inflight, nreq, false);
			continue;
		}
		if (res < 0) {
			if (!*err) {
				rd->src_err = true;
				rd->src_err_off = s->off + q->got;
			}
			/* Said once, by the session, which knows what it means for the disk. */
			log_debug("%s: read at %" PRIu64 ": %s", rd->src->path, s->off + q->got,
				  strerror(-res));
			*err = res;
			req_done(rd, q, inflight, nreq, true);
			continue;
		}
		if (res == 0 && q->got < q->end) {
			if (!*err) {
				rd->src_err = true;
				rd->src_err_off = s->off + q->got;
			}
			*err = -EIO;
			log_error("%s: source ended early at %" PRIu64 " (did it shrink?)",
				  rd->src->path, s->off + q->got);
			req_done(rd, q, inflight, nreq, true);
			continue;
		}
		res = (int)MIN((uint64_t)res, (uint64_t)q->end - q->got);
		q->got += (uint32_t)res;
		s->read += (uint32_t)res;
		if (*err) {
			req_done(rd, q, inflight, nreq, true);
			continue;
		}
		if (q->got < q->end) {
			if (rd->src->direct && (q->got & 4095u)) {
				*err = -EIO;
				log_error("%s: unaligned short read at %" PRIu64, rd->src->path,
					  s->off + q->got);
				req_done(rd, q, inflight, nreq, true);
				continue;
			}
			queue_read(rd, q); /* short read: ask for the rest */
			continue;
		}
		req_done(rd, q, inflight, nreq, false);
	}
}

/* Waits for the reads still in flight: buffers may not be freed while the kernel still
 * writes into them. */
static void drain_reads(struct reader *rd, unsigned inflight)
{
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
}

void *io_main(void *arg)
{
	struct reader *rd = arg;
	uint64_t next_off = 0, size = rd->src->size;
	unsigned inflight = 0, nreq = 0; /* batches being read; reads in flight */
	int err = 0;

	/* Buffered reads (and a read io_uring punts to its workers, which share this thread's
	 * I/O context) are issued by readahead on this thread's behalf: give it the
	 * priority too. who = 0 is the calling thread. */
	if (rd->o.ioprio && syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, rd->o.ioprio) < 0)
		log_debug("%s: cannot set the read thread's I/O priority: %s", rd->src->id,
			  strerror(errno));
	for (;;) {
		unsigned queued;
		int r;

		pthread_mutex_lock(&rd->lock);
		while (!rd->stop && !rd->err && next_off < size && !rd->free_head && inflight == 0)
			pthread_cond_wait(&rd->free_cv, &rd->lock);
		if (rd->stop || rd->err) {
			pthread_mutex_unlock(&rd->lock);
			break;
		}
		/* No more than queue_depth batches being read: the other slots are there so the
		 * workers can hold theirs meanwhile, not to deepen the queue. */
		queued = fill_slots(rd, &next_off, size, inflight, &nreq);
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
		complete_reads(rd, &inflight, &nreq, &err);
		if (err)
			break;
	}
	drain_reads(rd, nreq);
	if (err)
		rd_fail(rd, err);
	pthread_mutex_lock(&rd->lock);
	rd->io_done = true;
	pthread_cond_broadcast(&rd->work_cv);
	pthread_mutex_unlock(&rd->lock);
	return NULL;
}

// SPDX-License-Identifier: GPL-2.0-only
/* The read pipeline: io_uring reads -> chunk/fingerprint/compress workers -> bounded
 * queue of frames; see reader.h. */
#include "agent/reader-impl.h"

#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "agent/blocksum.h"
#include "common/codec.h"
#include "common/fptab.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/util.h"

void rd_fail(struct reader *rd, int err)
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
	/* Block sums stand in for a block tracker's marks, and are made for one chunk size. */
	if (cs->sums && (cs->blocks || !bsum_fits(cs->sums, o->chunk_size)))
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
	/* Holes cost nothing in it (common/fptab.h): a sparse disk's array stays small. */
	rd->fps = fps_alloc(rd->nchunks);
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
	r = io_uring_queue_init(rd->nslots * RD_RUNS_MAX, &rd->ring, 0);
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
	uint64_t t0 = 0;
	bool behind;
	int r;

	pthread_mutex_lock(&rd->lock);
	/* What the adaptive level learns from this batch: how long the sender waited while
	 * read batches waited for a worker (compression is behind; a wait with none waiting
	 * is the disk's). */
	behind = !rd->out_head && rd->work_head;
	if (behind)
		t0 = now_ns();
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
		o->wait_ns = behind ? now_ns() - t0 : 0;
		o->work_ns = rd->busy_ns;
		o->work1_ns = rd->busy1_ns;
		o->spare_ns = rd->idle_ns;
		rd->busy_ns = rd->busy1_ns = rd->idle_ns = 0;
		*ret_out = o;
		r = 1;
	} else {
		r = 0;
	}
	pthread_mutex_unlock(&rd->lock);
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
	fps_root(rd->fps, rd->src->size, rd->o.chunk_size, ret_root);
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
	fps_free(rd->fps);
	free(rd->bad);
	pthread_cond_destroy(&rd->free_cv);
	pthread_cond_destroy(&rd->work_cv);
	pthread_cond_destroy(&rd->out_cv);
	pthread_cond_destroy(&rd->space_cv);
	pthread_mutex_destroy(&rd->lock);
	free(rd);
	return NULL;
}

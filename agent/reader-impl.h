/* SPDX-License-Identifier: GPL-2.0-only */
/* What the read pipeline's files share (reader.c: its life and the public API; reader-io.c:
 * the I/O thread; reader-work.c: the workers' framing): the reader and its slots. Included
 * only by agent/reader*.c. */
#pragma once
#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent/changeset.h"
#include "agent/reader.h"

/* The most a hole's slot covers: holes are never read, so this bounds only the work one
 * batch (and one ZERO frame at the receiver) stands for, not any buffer. */
#define RD_HOLE_MAX (1u << 30)

/* Reads in flight at once for one batch: each of its runs of marked chunks is a read of
 * its own, so a batch of scattered changes keeps several in flight, as a disk serving
 * random reads wants, without more (or larger) slot buffers. */
#define RD_RUNS_MAX 8

/* One read of a slot's batch: [at, end) of the slot, read up to got (short reads are
 * requeued). */
struct rd_req {
	struct slot *s;
	uint32_t at, end, got;
};

struct slot {
	uint8_t *buf;
	uint64_t off;
	/* bytes of the source this batch covers: at most the batch size, or RD_HOLE_MAX for
	 * a hole (whose buffer is never read or looked at) */
	uint32_t want;
	/* Only the chunks that must be read are (marked, not free space), a run of
	 * consecutive ones per read, up to RD_RUNS_MAX of them in flight (pending); scan is
	 * where the next run is looked for. The bytes of the other chunks are stale and
	 * never looked at. */
	struct rd_req req[RD_RUNS_MAX];
	unsigned pending;
	uint32_t scan;
	uint32_t read; /* bytes read from the source for this batch */
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
	unsigned workers_named; /* workers that took their index (their stream, if any) */
	/* An extent of this disk shrank: the workers' streams may begin. Until then extents
	 * go on their own, so a disk whose data does not compress (an encrypted volume)
	 * costs no stream: neither its ~9-21 MiB here nor a decoder's window at the
	 * receiver. Relaxed atomics: a worker that reads it late sends one more extent
	 * alone. */
	bool shrank;
	/* The workers' time since rd_next last took a batch, for the adaptive level: busy,
	 * busy scaled to level 1's cost per byte, idle. */
	uint64_t busy_ns, busy1_ns, idle_ns;
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

/* Whether chunk idx lies wholly in a file system's free space (--copy used). */
static inline bool chunk_free(const struct reader *rd, uint64_t idx)
{
	return rd->cs.free && (rd->cs.free[idx / 64] >> (idx % 64)) & 1;
}

/* Whether the receiver vouches for chunk idx of prev (see changeset.held). */
static inline bool chunk_held(const struct reader *rd, uint64_t idx)
{
	return !rd->cs.held || (rd->cs.held[idx / 64] >> (idx % 64)) & 1;
}

/* Whether the tracker marked chunk idx (every chunk, when it marked none), or it is free
 * space (sent as zeros whatever the tracker says). */
static inline bool chunk_dirty(const struct reader *rd, uint64_t idx)
{
	return !rd->cs.only || (rd->cs.only[idx / 64] >> (idx % 64)) & 1 || chunk_free(rd, idx);
}

/* Records the pipeline's first error and wakes every thread that waits, so all stop. */
void rd_fail(struct reader *rd, int err);
/* The I/O thread (arg: the reader). */
void *io_main(void *arg);
/* A worker thread (arg: the reader). */
void *worker_main(void *arg);

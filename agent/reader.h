/* SPDX-License-Identifier: GPL-2.0-only */
/* The read pipeline: one I/O thread reads a source in large batches with io_uring
 * (registered buffers, O_DIRECT where allowed), a pool of workers splits each batch into
 * chunks, fingerprints them, folds zero runs into ZERO frames and compresses data runs
 * into DATA frames. Finished frames wait in a bounded queue for the session to send, so
 * memory stays bounded whatever the network does. */
#pragma once
#include <stdint.h>

#include "agent/changeset.h"
#include "agent/level.h"
#include "agent/source.h"
#include "common/fp.h"

struct reader;

/* I/O priorities in ioprio_set(2)'s encoding (class << 13 | level), spelled out here
 * because older uapi headers lack <linux/ioprio.h>. Idle reads wait for every other I/O
 * of the disk (with a scheduler that knows classes: bfq, mq-deadline; "none" ignores them). */
#define RD_IOPRIO_BE ((2u << 13) | 4u)   /* best effort, the default level */
#define RD_IOPRIO_IDLE (3u << 13)

struct rd_opts {
	uint32_t chunk_size;   /* bytes, power of two */
	uint32_t batch;        /* bytes per read, a multiple of chunk_size, <= 1 MiB */
	unsigned queue_depth;  /* reads in flight, >= 1 */
	unsigned workers;      /* compression threads, >= 1 */
	/* compression streams the receiver granted: workers 0..streams-1 each carry one
	 * (DATA frames of PROTO_ENC_ZSTD_STREAM), the others compress extents alone */
	unsigned streams;
	int level;             /* zstd level, when lvl is NULL */
	struct lvl_ctl *lvl;   /* the adaptive level (agent/level.h), or NULL: level */
	uint16_t ioprio;       /* I/O priority of the source reads (RD_IOPRIO_*); 0: inherit */
	/* Test seam: flip one byte of this chunk after fingerprinting (UINT64_MAX: never). */
	uint64_t fault_corrupt_chunk;
	/* Test seam: a read touching [fault_eio_off, + fault_eio_len) fails with EIO, as a bad
	 * sector range would; while fault_eio_flag names a file, only while it exists. 0: off. */
	uint64_t fault_eio_off, fault_eio_len;
	const char *fault_eio_flag;
	/* A batch that cannot be read is read again chunk by chunk: the chunks that still fail
	 * are zero-filled (sent as zeros) and listed (rd_unreadable) instead of failing. */
	bool skip_unreadable;
};

/* Frames for one batch, ready to send. */
struct rd_out {
	uint8_t *buf;
	size_t len;           /* bytes of frames in buf */
	uint64_t plain_bytes; /* source bytes this batch covers */
	uint64_t zero_bytes;  /* of which all-zero */
	uint64_t read_bytes;  /* read from the source: only marked chunks (0: a hole, none marked) */
	uint64_t sent_chunks; /* chunks in frames (all but the unchanged ones) */
	uint64_t patched_chunks; /* of which sent as PATCH frames */
	uint64_t missed_chunks; /* changed although the tracker's marks said not */
	/* For the adaptive level (agent/level.h): how long rd_next waited for it while read
	 * batches waited for a worker, and the zstd level its frames were compressed at. */
	uint64_t wait_ns;
	int level;
	/* The workers' time since the batch before was taken: working, that work scaled to
	 * level 1's cost, and idle (agent/level.h) */
	uint64_t work_ns, work1_ns, spare_ns;
	struct rd_out *next;
};

/* Starts reading src (borrowed; must outlive the reader) as disk_no, what the change set cs
 * says (copied; what it points to is borrowed until rd_free). Returns 0 or -errno (-EINVAL:
 * an inconsistent change set). */
int rd_start(struct source *src, uint16_t disk_no, const struct rd_opts *o,
	     const struct changeset *cs, struct reader **ret_rd);
/* Waits for the next batch's frames. Returns 1 with *ret_out (caller frees with rd_out_free),
 * 0 when the whole source has been read and every batch handed out, or -errno. */
int rd_next(struct reader *rd, struct rd_out **ret_out);
void rd_out_free(struct rd_out *o);
/* After rd_next returned 0: the Merkle root over every chunk's fingerprint and the chunk
 * count. Returns 0 or -errno. */
int rd_root(struct reader *rd, struct fp *ret_root, uint64_t *ret_nchunks);
/* Whether the reader failed because the source could not be read (not for want of memory
 * or the like); *ret_off is then where. */
bool rd_source_failed(struct reader *rd, uint64_t *ret_off);
/* With skip_unreadable, after rd_next returned 0: the chunks that could not be read, as a
 * bitmap of one bit per chunk (owned by the reader), and their count. */
uint64_t rd_unreadable(struct reader *rd, const uint64_t **ret_bitmap);
/* After rd_root: takes the fingerprint array (one per chunk, an array of fps_alloc's: read
 * it with fps_get) out of the reader, for the caller to own and free (fps_free), e.g. as
 * the next epoch's changeset.prev. */
struct fp *rd_take_fps(struct reader *rd);
/* Stops the threads (abandoning unread batches) and frees; NULL-safe, returns NULL. */
struct reader *rd_free(struct reader *rd);

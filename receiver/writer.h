/* SPDX-License-Identifier: GPL-2.0-only */
/* A target volume: a regular file (created, then grown or cut to the source's size) or a
 * block device (held with O_EXCL, so a mounted or otherwise claimed device is refused), written
 * with io_uring from a pool of aligned buffers and made durable with fdatasync. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/fp.h"

struct writer;

#define WR_BUF_LEN (1u << 20)

/* Opens path as the target for a source of src_size bytes. Refuses (-ENOSPC) a block
 * device smaller than the source, or a file that would have to grow past max_size bytes
 * to hold it (max_size 0: past what it holds now plus its filesystem's free space),
 * (-EBUSY) one mounted or open exclusively elsewhere, and (-EINVAL) anything that is
 * neither a regular file nor a block device. A file is not resized yet (wr_fit does it),
 * and nothing is written on refusal; a file created here is removed again. why gets a
 * one-line reason. Returns 0 or -errno. */
int wr_open(const char *path, uint64_t src_size, uint64_t max_size, struct writer **ret_wr,
	    char *why, size_t why_len);
/* Makes a file target exactly the source's size: grown (wr_open checked the room), or
 * cut where it is larger, so no stale byte lies past the disk's end outside the proof. A
 * block device keeps its size. 0 or -errno, with why set. */
int wr_fit(struct writer *w, char *why, size_t why_len);
/* The source grew to src_size bytes (more than before), between epochs (no write in
 * flight). A file grows to it within max_size (0: what it holds plus its filesystem's
 * free space) and reads as zeros past the old end; a block device is sized again (a
 * volume attached or enlarged since, e.g. losetup -c) and must hold it, and its new range
 * is zeroed, so that the receiver's fingerprints (zero chunks there) are true. On refusal
 * (-ENOSPC: too small, or past max_size) nothing is written and *ret_have says how many
 * bytes the target could hold; why gets a one-line reason. 0 or -errno. */
int wr_grow(struct writer *w, uint64_t src_size, uint64_t max_size, uint64_t *ret_have,
	    char *why, size_t why_len);
/* An aligned buffer of WR_BUF_LEN bytes for the next write: a new one while fewer than 16
 * exist, else waits for a completed write. NULL with *ret_err set when a write failed, or
 * -ENOMEM when no buffer can be had (none exists free or in flight). */
void *wr_get_buf(struct writer *w, int *ret_err);
/* Gives a buffer from wr_get_buf back unused. */
void wr_put_buf(struct writer *w, void *buf);
/* Queues a write of len bytes of buf (from wr_get_buf; ownership returns to the pool when
 * it completes) at off. Returns 0 or -errno from an earlier failed write. */
int wr_submit(struct writer *w, void *buf, size_t len, uint64_t off);
/* Patches the whole chunk [off, off+len) (2 * len <= WR_BUF_LEN): buf, from wr_get_buf,
 * holds the chunk's changed blocks in order at buf + len (block i of the chunk where bit i
 * of mask is set, 1 << shift bytes each). The chunk is read from the target into buf, the
 * blocks are laid over it and, only if the result's fingerprint is want, the changed
 * blocks are written (each run of adjacent ones as one write, widened to 4 KiB pages
 * under O_DIRECT); all of it as the I/O completes, so patches pipeline like writes. A mismatch writes nothing
 * of that chunk and fails the writer with -ESTALE (sticky; wr_error_text says where).
 * Returns 0 or -errno from an earlier failure. */
int wr_patch(struct writer *w, void *buf, size_t len, uint64_t off, uint64_t mask, unsigned shift,
	     const struct fp *want);
/* What made the writer fail, when it says more than the error code ("" otherwise). */
const char *wr_error_text(const struct writer *w);
/* Makes [off, off+len) read back as zeros: a hole in a file, ZERO_RANGE on a device,
 * written zeros where neither is supported. The range is recorded (merged with its
 * neighbour) and applied by the next wr_flush, because punching a hole waits for every
 * O_DIRECT write in flight on the file and would serialise the pipeline; the caller must
 * not write data into a pending zero range before that flush. 0 or -errno. */
int wr_zero(struct writer *w, uint64_t off, uint64_t len);
/* Waits for every queued write, applies pending zero ranges, then fdatasync. The buffers
 * not held by the caller are given back to the system (a disk between epochs holds no
 * memory for them). 0 or -errno. */
int wr_flush(struct writer *w);
/* Reads len bytes at off from the target (buffered), for reconciliation. 0 or -errno. */
int wr_read(struct writer *w, void *buf, size_t len, uint64_t off);
uint64_t wr_size(const struct writer *w);
uint64_t wr_bytes_written(const struct writer *w);
/* How many write buffers the writer has mapped now (free, in flight or handed out). */
unsigned wr_buffers_held(const struct writer *w);
/* Waits for queued writes (without syncing), closes; NULL-safe, returns NULL. */
struct writer *wr_close(struct writer *w);

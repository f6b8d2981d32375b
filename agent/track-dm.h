/* SPDX-License-Identifier: GPL-2.0-only */
/* The dm-snapshot source (--snapshot dm): each epoch reads a device-mapper snapshot of a
 * device-mapper source, a point-in-time image, and the snapshot's exceptions (the chunks
 * copied out because the origin was written) are the next epoch's changed blocks. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct source;
struct trk_dm;

/* Whether src is a device-mapper block device (an LVM LV, a dmsetup device). */
bool trk_dm_source_ok(const struct source *src);
/* Removes what an agent that did not stop cleanly left for disk id read from path: puts
 * back the own table of the origin it had turned into a snapshot-origin (resuming it if it
 * was left suspended), then removes its tern-ID-* snapshot, real and COW devices, logging
 * each. Call it before opening path: an origin left suspended would hang any read. Returns
 * 0 (also when path is no device-mapper device, or there was nothing), or -errno when
 * something could not be undone. */
int trk_dm_cleanup(const char *id, const char *path);
/* Checks, before anything is made, that the block device cow may serve as the snapshot
 * store of the n sources: it is not in use (an O_EXCL open succeeds: not mounted, not
 * held by device-mapper or md), and it neither is nor lies on any source (a partition of
 * one, a device under one's dm/md stack), nor does a source lie on it. Returns 0, or
 * -errno with a reason in why. */
int trk_dm_check_cow(const char *cow, struct source *const *srcs, unsigned n, char *why,
		     size_t why_len);
/* Sets up src (a device-mapper device; borrowed, must outlive the tracker) for snapshots:
 * tern-ID-real takes its table, tern-ID-cow0/1 are slices slot*2 and slot*2+1 of nslots*2
 * equal slices of the block device cow, and src becomes a snapshot-origin at the first
 * harvest. Snapshot chunks are block_size bytes. Returns 0 or -errno with a reason in why;
 * on failure everything made is undone. */
int trk_dm_start(struct source *src, uint32_t block_size, const char *cow, unsigned slot,
		 unsigned nslots, struct trk_dm **ret_t, char *why, size_t why_len);
/* Takes a new snapshot, which src->fd reads from then on, and retires the previous one:
 * its exceptions join the pending set, returned as a bitmap of ceil(nblocks / 64) words
 * valid until the next call. *ret_overflow: a snapshot overflowed its COW slice (or its
 * store could not be read), so the changes are unknown until an epoch is acknowledged:
 * read the whole disk. */
int trk_dm_harvest(struct trk_dm *t, const uint64_t **ret_pending, bool *ret_overflow);
/* The receiver acknowledged epoch: forget the pending set and any overflow. */
int trk_dm_acked(struct trk_dm *t, uint64_t epoch);
/* The last acknowledged epoch (UINT64_MAX: none). */
uint64_t trk_dm_acked_epoch(const struct trk_dm *t);
uint64_t trk_dm_nblocks(const struct trk_dm *t);
/* Gives src its own descriptor back, removes the snapshot, restores the origin's table
 * and removes every device it made. Always: a snapshot does not outlive its agent.
 * NULL-safe, returns NULL. */
struct trk_dm *trk_dm_stop(struct trk_dm *t);

/* SPDX-License-Identifier: GPL-2.0-only */
/* The agent's side of a replication session: handshake, disk registration, streaming the
 * read pipeline's frames, and waiting for the receiver's durable, verified acknowledgement.
 * Its parts (link.c, epoch.c, pacer.c, cutover.c) share session-impl.h. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "agent/reader.h"
#include "agent/track.h"

struct agent_disk {
	char *id;
	char *path;
};

struct agent_opts {
	const char *receiver;    /* HOST:PORT */
	const char *credentials; /* bundle path */
	const char *name;        /* agent name */
	struct agent_disk *disks;
	unsigned ndisks;
	struct rd_opts rd;
	/* --level MIN..MAX: the zstd level adapts within it (agent/level.h); equal: fixed at
	 * rd.level. */
	int level_min, level_max;
	unsigned streams;        /* --streams: compression streams to ask the receiver for */
	int connect_timeout_ms;
	int ack_timeout_ms;      /* how long to wait for durability (fdatasync of a big target) */
	bool progress;           /* print progress lines to stderr */
	bool once;               /* copy once and exit; otherwise keep the target in step */
	bool reconcile;          /* --once sends only what differs from the receiver's copy */
	unsigned interval_s;     /* continuous: seconds between epochs */
	uint64_t epochs;         /* continuous: stop after this many epochs past the copy (0: never) */
	const char *pre_cutover; /* shell command run before the source is frozen, or NULL */
	unsigned freeze_limit_s; /* the watchdog thaws the source after this long */
	unsigned fault_stall_frozen_s; /* test seam: stay frozen this long before the final epoch */
	/* Test seam (TERN_FAULT_SUM_BLIND): this block of every chunk sums to 0 in the scan
	 * tracker's block sums, as a collision would: the block number + 1; 0: none. */
	uint32_t fault_sum_blind;
	uint64_t max_rate;       /* bytes per second on the wire, 0: unlimited */
	enum track_kind tracker;
	uint32_t track_block;    /* the trackers' block, a divisor of the chunk size */
	const char *bpf_pin_root; /* where the eBPF tracker is pinned, one directory per disk */
	enum snap_kind snapshot; /* where epochs read from (see snap_pick) */
	const char *snapshot_cow; /* block device whose slices hold the snapshots' copies */
	/* Copy what can be read: chunks that cannot are zero-filled on the target, listed,
	 * and the disk is never called a verified copy. Off: such a disk is not copied. */
	bool skip_unreadable;
	/* --copy used: chunks wholly in the free space of a mounted file system are sent as
	 * zeros without being read (agent/fsmap.h); false (--copy all): every chunk is read. */
	bool copy_used;
	/* The scan tracker's block sums may take this many bytes over all disks (0: none). */
	uint64_t block_sums_memory;
	/* Test seam (TERN_FAULT_EIO): reads of this disk touching [off, off+len) fail with
	 * EIO, while flag (a file) exists when flag is set. NULL: off. */
	const char *fault_eio_disk;
	uint64_t fault_eio_off, fault_eio_len;
	const char *fault_eio_flag;
};

/* Copies every disk once (epoch 0), end to end; unless o->once, then keeps each target in
 * step with the tracker track_pick chose: every interval a new epoch sends the chunks that
 * changed (or the operator's cutover runs a final one), until o->epochs have run or SIGINT/SIGTERM arrives. A disk whose source cannot
 * be read is reported (log, receiver) and retried with backoff while the others go on.
 * Returns 0 only when the receiver has reported every epoch durable and its Merkle root
 * equal to ours; 1 when every disk was copied but some had unreadable ranges zero-filled
 * (o->skip_unreadable: not a verified copy); -errno otherwise (a disk whose source could
 * not be read: -EIO, naming it). Prints a summary per epoch on stdout. On failure logs
 * one line saying why. */
int session_run(const struct agent_opts *o);

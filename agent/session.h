/* SPDX-License-Identifier: GPL-2.0-only */
/* The agent's side of a replication session: handshake, disk registration, streaming the
 * read pipeline's frames, and waiting for the receiver's durable, verified acknowledgement. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "agent/reader.h"

struct agent_disk {
	char *id;
	char *path;
};

enum tracker_kind { TRACKER_AUTO, TRACKER_SCAN, TRACKER_EBPF, TRACKER_KMOD };
/* Where epochs read from: auto is dm when every source is a device-mapper device and a
 * COW store is given, else the live source. */
enum snapshot_kind { SNAPSHOT_AUTO, SNAPSHOT_NONE, SNAPSHOT_DM };

struct agent_opts {
	const char *receiver;    /* HOST:PORT */
	const char *credentials; /* bundle path */
	const char *name;        /* agent name */
	struct agent_disk *disks;
	unsigned ndisks;
	struct rd_opts rd;
	int connect_timeout_ms;
	int ack_timeout_ms;      /* how long to wait for durability (fdatasync of a big target) */
	bool progress;           /* print progress lines to stderr */
	bool once;               /* copy once and exit; otherwise keep the target in step */
	unsigned interval_s;     /* continuous: seconds between the scan tracker's epochs */
	uint64_t epochs;         /* continuous: stop after this many epochs past the copy (0: never) */
	const char *pre_cutover; /* shell command run before the source is frozen, or NULL */
	unsigned freeze_limit_s; /* the watchdog thaws the source after this long */
	unsigned fault_stall_frozen_s; /* test seam: stay frozen this long before the final epoch */
	uint64_t max_rate;       /* bytes per second on the wire, 0: unlimited */
	enum tracker_kind tracker;
	uint32_t track_block;    /* the eBPF tracker's block, a divisor of the chunk size */
	const char *bpf_pin_root; /* where the eBPF tracker is pinned, one directory per disk */
	enum snapshot_kind snapshot;
	const char *snapshot_cow; /* block device whose slices hold the dm snapshots' copies */
};

/* Copies every disk once (epoch 0), end to end; unless o->once, then keeps each target in
 * step with the scan tracker: every interval a new epoch sends the chunks whose fingerprint
 * changed, until o->epochs have run or SIGINT/SIGTERM arrives. Returns 0 only when the
 * receiver has reported every epoch durable and its Merkle root equal to ours. Prints a
 * summary per epoch on stdout. On failure logs one line saying why and returns -errno. */
int session_run(const struct agent_opts *o);

/* SPDX-License-Identifier: GPL-2.0-only */
/* The eBPF change tracker for one block-device source: a tp_btf/block_rq_complete
 * program marks changed tracking blocks in one of two bitmaps; a harvest flips them,
 * waits out an RCU grace period and collects the idle one. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/source.h"

struct trk_ebpf;

/* True when this build has the eBPF tracker. */
bool trk_ebpf_built(void);
/* Starts tracking src (a block device or partition) in blocks of block_size bytes, or
 * resumes the tracking an earlier agent left pinned under pin_root/ID, when its identity
 * (disk, range, block size) matches. Returns 0 or -errno with a one-line reason in why
 * (-EOPNOTSUPP: not built, not a block device, no BTF; -EPERM: BPF not allowed). */
int trk_ebpf_start(const struct source *src, uint32_t block_size, const char *pin_root,
		   struct trk_ebpf **ret_t, char *why, size_t why_len);
/* Moves the blocks changed since the last harvest into the pending set and returns it: a
 * bitmap of ceil(nblocks / 64) words, valid until the next call. *ret_overflow is set
 * when a change was too large to record and the whole disk must be read. */
int trk_ebpf_harvest(struct trk_ebpf *t, const uint64_t **ret_pending, bool *ret_overflow);
/* The receiver acknowledged epoch: forget the pending set, remember the epoch. */
int trk_ebpf_acked(struct trk_ebpf *t, uint64_t epoch);
/* The last acknowledged epoch this tracking saw (UINT64_MAX: none): when the receiver
 * expects the next one, tracking has been continuous since its state. */
uint64_t trk_ebpf_acked_epoch(const struct trk_ebpf *t);
bool trk_ebpf_resumed(const struct trk_ebpf *t);
uint64_t trk_ebpf_nblocks(const struct trk_ebpf *t);
/* Detaches and frees; with unpin the pinned program and maps are removed as well, else
 * they keep tracking for the next agent. NULL-safe, returns NULL. */
struct trk_ebpf *trk_ebpf_stop(struct trk_ebpf *t, bool unpin);
/* Removes the tracking an earlier agent left pinned for disk id under pin_root, if any:
 * another tracker replaces it, and it would otherwise record writes for nobody for as
 * long as the machine runs. Returns true when there was one. */
bool trk_ebpf_forget(const char *pin_root, const char *id);

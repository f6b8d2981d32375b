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
/* Starts tracking src (a block device or partition) in blocks of block_size bytes.
 * Returns 0 or -errno with a one-line reason in why (-EOPNOTSUPP: not built, not a
 * block device, no BTF; -EPERM: not allowed to load BPF). */
int trk_ebpf_start(const struct source *src, uint32_t block_size, struct trk_ebpf **ret_t,
		   char *why, size_t why_len);
/* Collects the blocks changed since the previous harvest (or the start) into bits, a
 * bitmap of ceil(nblocks / 64) words that the caller ORs into; *ret_overflow is set when
 * a change was too large to record and the whole disk must be treated as changed. */
int trk_ebpf_harvest(struct trk_ebpf *t, uint64_t *bits, bool *ret_overflow);
uint64_t trk_ebpf_nblocks(const struct trk_ebpf *t);
/* Detaches and frees; NULL-safe, returns NULL. */
struct trk_ebpf *trk_ebpf_stop(struct trk_ebpf *t);

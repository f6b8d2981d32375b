/* SPDX-License-Identifier: GPL-2.0-only */
/* The kernel-module change tracker: tern.ko (kmod-optional/) marks the blocks each
 * completed write touched in a bitmap per registered disk; the agent harvests it through
 * /dev/tern. The module keeps tracking between agents, like the eBPF tracker's pins. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct source;
struct trk_kmod;

/* True when /dev/tern exists, i.e. tern.ko is loaded. */
bool trk_kmod_loaded(void);
/* Registers src (a block device or partition of a blk-mq disk) with tern.ko in blocks of
 * block_size bytes, or resumes the tracker an earlier agent left registered under the
 * same disk id when its identity (disk, range, block size) matches; a stale one is
 * replaced. Returns 0 or -errno with a one-line reason in why (-ENOENT: not loaded,
 * -EOPNOTSUPP: not a blk-mq block device, -EPROTO: another uapi version). */
int trk_kmod_start(const struct source *src, uint32_t block_size, struct trk_kmod **ret_t,
		   char *why, size_t why_len);
/* Moves the blocks changed since the last harvest into the pending set and returns it: a
 * bitmap of ceil(nblocks / 64) words, valid until the next call. The module records any
 * change, so *ret_overflow is always false. */
int trk_kmod_harvest(struct trk_kmod *t, const uint64_t **ret_pending, bool *ret_overflow);
/* The receiver acknowledged epoch: the module forgets the pending set, keeps the epoch. */
int trk_kmod_acked(struct trk_kmod *t, uint64_t epoch);
/* The last acknowledged epoch of this tracking (UINT64_MAX: none). */
uint64_t trk_kmod_acked_epoch(const struct trk_kmod *t);
bool trk_kmod_resumed(const struct trk_kmod *t);
uint64_t trk_kmod_nblocks(const struct trk_kmod *t);
/* Closes and frees; with unregister the module's tracker is removed too, else it keeps
 * recording for the next agent. NULL-safe, returns NULL. */
struct trk_kmod *trk_kmod_stop(struct trk_kmod *t, bool unregister);

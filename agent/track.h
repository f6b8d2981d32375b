/* SPDX-License-Identifier: GPL-2.0-only */
/* The block-level change trackers behind one interface: the eBPF program
 * (track-ebpf.c), tern.ko (track-kmod.c) or dm-snapshots (track-dm.c). Each reports the
 * blocks written since the last harvest and keeps a pending set until the receiver
 * acknowledges an epoch; the first two keep tracking between agents, the dm one ends
 * with its agent. (The scan tracker is the absence of one: session.c re-reads.) */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct source;
struct track;

enum track_kind { TRACK_EBPF, TRACK_KMOD, TRACK_DM };

/* Starts (or resumes) a tracker of kind for src; pin_root is the eBPF tracker's. Returns
 * 0 or -errno with a one-line reason in why. */
int track_start(enum track_kind kind, const struct source *src, uint32_t block_size,
		const char *pin_root, struct track **ret_t, char *why, size_t why_len);
/* Starts the dm-snapshot source on src, which it borrows and whose fd it points at each
 * epoch's snapshot (see track-dm.h: cow, slot of nslots). Returns 0 or -errno with why. */
int track_start_dm(struct source *src, uint32_t block_size, const char *cow, unsigned slot,
		   unsigned nslots, struct track **ret_t, char *why, size_t why_len);
/* Moves the changes since the last harvest into the pending set and returns it (a bitmap
 * of ceil(nblocks / 64) words, valid until the next call); *ret_overflow: read the whole
 * disk. */
int track_harvest(struct track *t, const uint64_t **ret_pending, bool *ret_overflow);
/* The receiver acknowledged epoch: forget the pending set, remember the epoch. */
int track_acked(struct track *t, uint64_t epoch);
/* The last acknowledged epoch this tracking saw (UINT64_MAX: none). */
uint64_t track_acked_epoch(const struct track *t);
bool track_resumed(const struct track *t);
uint64_t track_nblocks(const struct track *t);
enum track_kind track_kind(const struct track *t);
/* "ebpf", "kmod" or "dm". */
const char *track_name(enum track_kind kind);
/* Stops and frees; with forget the kernel side (pins, the module's tracker) goes too,
 * else it keeps recording for the next agent. dm snapshots always go, and give their
 * source its own descriptor back: stop it before freeing the source. NULL-safe, returns
 * NULL. */
struct track *track_stop(struct track *t, bool forget);

/* SPDX-License-Identifier: GPL-2.0-only */
/* Shared between the eBPF tracker program and the agent: fixed-width fields only. */
#pragma once

/* One event marks at most this many 64-block words (1 GiB of 4 KiB blocks). */
#define TERN_TRACK_MAX_WORDS_PER_EVENT 4096

struct tern_track_cfg {
	__u32 major, first_minor;  /* the whole disk the requests arrive on */
	__u64 start_sector;        /* the tracked range, in 512-byte whole-disk sectors */
	__u64 nr_sectors;
	__u32 block_shift;         /* log2 of the tracking block */
	__u32 unused;              /* 0 (was the index of a second bitmap) */
	__u32 armed;
	__u32 pad;
	__u64 acked_epoch;         /* user space: the last epoch acknowledged (~0: none) */
	/* user space: the tracking generation, random and nonzero, new at a fresh start and
	 * at every acknowledgement (when the pending set is cleared): the same generation
	 * means the pending set has only grown since (see track_gen). */
	__u64 gen;
	/* user space: the overflow count (stats) last answered by marking every block */
	__u64 overflow_seen;
};

struct tern_track_stats {
	__u64 events;    /* requests that changed the tracked range */
	__u64 overflow;  /* ranges too large to mark: the whole disk counts as changed */
};

/* SPDX-License-Identifier: GPL-2.0-only */
/* The zstd level that fits the link (`--level MIN..MAX`), as zstd's own --adapt does. The
 * session's sender alternates between waiting for the next batch's frames and handing
 * them to the link; how long each wait lasted says which side is the bottleneck. When
 * the sender spends its time blocked on the link, compression has time to spare and the
 * level goes up; when it spends a good part of it waiting for frames while read batches
 * wait for a compression worker, compression is the bottleneck and the level goes down.
 * Lengths, not counts: behind a link with delay the socket drains in bursts a round trip
 * apart, and the sender briefly finds the queue empty after each burst although the link
 * is, on average, the limit. A wait for the disk says neither. Windows are at least
 * 100 ms and hold only batches compressed at the current level; a level found too slow
 * is not tried again for 30 windows. A raise goes as far as the workers' idle time pays
 * for (each level's cost per byte relative to level 1, measured on /usr's files), so a
 * slow link reaches its level in one window instead of a window per step: with streams a
 * level held counts (a change begins a new frame, see codec.h). One controller per
 * agent, shared by every reader and epoch, so what it learned carries over; workers read
 * the level per batch. */
#pragma once
#include <stdint.h>

/* What the sender saw of one batch that carried data, and what its worker did. */
struct lvl_batch {
	uint64_t wait_ns; /* waited for it while read batches waited for a worker */
	uint64_t link_ns; /* spent handing it to the link (pacing included) */
	/* The workers' time since the batch before it was taken, as it went (not as it
	 * went for this batch, which may have been compressed a dozen batches ago): spent
	 * working (fingerprints, compression), that work scaled to level 1's cost per byte
	 * (workers may be at different levels: a stream takes a new one late), and idle,
	 * waiting for a read (held back while the reads in flight are finished frames the
	 * link has not taken) or for room in the finished frames' queue. Together: how much
	 * more CPU per byte the workers have time for. work1_ns 0: not known (raises then
	 * go a level or two at a time). */
	uint64_t work_ns, work1_ns, spare_ns;
	int level;        /* the level it was compressed at */
	uint64_t at_ns;   /* when it had been sent (a monotonic clock) */
};

struct lvl_ctl {
	int min, max;
	int cur;            /* read by workers with __atomic loads */
	/* The current window's evidence, kept by the session's thread alone. */
	unsigned seen;
	uint64_t wait_ns, link_ns, start_ns;
	uint64_t work_ns, work1_ns, spare_ns;
	/* The level last found too slow, and the windows left in which no raise goes back
	 * onto it. */
	int ceil;
	unsigned ceil_windows;
	uint64_t changes;   /* level changes so far */
	int lowest, highest; /* the levels used so far */
};

/* A controller from min to max (min == max: a fixed level), starting at the bottom of the
 * range: a fast link never pays for a level it cannot use, and a slow one climbs in a
 * few windows (two levels a window while the link is the whole limit). */
void lvl_init(struct lvl_ctl *c, int min, int max);
/* zstd's CPU per byte at level relative to level 1's (a table measured on /usr). */
double lvl_cost(int level);
/* The level to compress the next batch at. */
int lvl_now(const struct lvl_ctl *c);
/* One batch handed to the link. Returns the new level when this batch ended a window
 * that moved it, else 0 (an adaptive range never holds 0: see lvl_parse). */
int lvl_note(struct lvl_ctl *c, const struct lvl_batch *b);
/* Parses "N" or "MIN..MAX" (MIN < MAX, neither 0: zstd's "default") within [lo, hi].
 * 0 or -EINVAL. */
int lvl_parse(const char *s, int lo, int hi, int *ret_min, int *ret_max);

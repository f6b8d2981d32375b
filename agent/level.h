/* SPDX-License-Identifier: GPL-2.0-only */
/* The zstd level that fits the link (`--level MIN..MAX`), as zstd's own --adapt does: when
 * the reader's finished frames pile up waiting for the link, compression has time to
 * spare and the level goes up; when the sender waits for frames while read batches wait
 * for a compression worker, compression is the bottleneck and the level goes down. A
 * disk read that keeps everyone waiting says neither. One controller per agent, shared by
 * every reader and epoch, so what it learned carries over; workers read the level per
 * batch. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

struct lvl_ctl {
	int min, max;
	int cur;            /* read by workers with __atomic loads */
	/* The current window's evidence, counted by the session's thread alone. */
	unsigned seen, backlog, starved;
	uint64_t changes;   /* level changes so far */
	int lowest, highest; /* the levels used so far */
};

/* A controller from min to max (min == max: a fixed level), starting at 3 (zstd's
 * default) or the end of the range nearest to it. */
void lvl_init(struct lvl_ctl *c, int min, int max);
/* The level to compress the next batch at; c NULL-safe callers pass a fixed level. */
int lvl_now(const struct lvl_ctl *c);
/* One batch handed to the sender: backlog when the finished frames' queue was full (the
 * link is slower than compression), starved when the sender had to wait while read
 * batches waited for a worker (compression is slower than the link). Returns the new
 * level when this batch ended a window that moved it, else 0 (an adaptive range never
 * holds 0: see lvl_parse). */
int lvl_note(struct lvl_ctl *c, bool backlog, bool starved);
/* Parses "N" or "MIN..MAX" (MIN < MAX, neither 0: zstd's "default") within [lo, hi].
 * 0 or -EINVAL. */
int lvl_parse(const char *s, int lo, int hi, int *ret_min, int *ret_max);

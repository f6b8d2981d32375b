// SPDX-License-Identifier: GPL-2.0-only
/* The adaptive zstd level; see level.h. */
#include "agent/level.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

/* Batches (1 MiB each by default) per decision: enough to tell a trend from a hiccup,
 * few enough that a link's change is followed within seconds. */
#define LVL_WINDOW 8
/* ...and at least this long: behind a delayed link the socket takes a round trip's
 * worth of frames at once now and then, and a window of that burst alone says nothing. */
#define LVL_WINDOW_NS (100 * 1000000ull)
/* Windows after a level proved too slow in which no raise goes back onto it: a link
 * does not change that often, and each try costs a window at the slow level. */
#define LVL_CEIL_WINDOWS 30
/* A raise by more than one level leaves the workers this much of their idle time spare:
 * the cost table is one machine's and one data set's. */
#define LVL_JUMP_MARGIN 1.5
/* ...and a raise by one level a quarter: a raise that leaves no slack makes compression
 * the limit at the first hiccup, and where the receiver shares the agent's cores (the
 * bench) the link's speed is partly CPU the workers would take from it. */
#define LVL_STEP_MARGIN 1.25

/* zstd's CPU per byte at each level relative to level 1, levels 1..9 (/usr's files in
 * two streams of 1 MiB extents, an 8 MiB window, with zstd's API; `zstd -b1e9 --long=23`
 * and `-B1M` give the same within ~10%); past 9 assumed 1.4x a level, below 1 0.9x. */
double lvl_cost(int level)
{
	static const double cost[] = { 1.0, 1.25, 1.8, 2.4, 2.75, 3.6, 4.5, 5.4, 6.2 };
	double c = 1.0;

	if (level >= 1 && level <= 9)
		return cost[level - 1];
	for (int l = level; l > 9; l--)
		c *= 1.4;
	for (int l = level; l < 1; l++)
		c *= 0.9;
	return level > 9 ? cost[8] * c : c;
}

void lvl_init(struct lvl_ctl *c, int min, int max)
{
	memset(c, 0, sizeof(*c));
	c->min = min;
	c->max = max;
	/* The bottom: a copy's first megabytes go into socket buffers before the link
	 * pushes back, so the first windows look like a fast link whatever the link is. */
	c->cur = min;
	c->lowest = c->highest = c->cur;
}

int lvl_now(const struct lvl_ctl *c)
{
	return __atomic_load_n(&c->cur, __ATOMIC_RELAXED);
}

/* cur moved by d levels; zstd has no level 0 (it means "default"): a step across it
 * does not count it. */
static int step(int cur, int d)
{
	int next = cur + d;

	if (cur < 0 && next >= 0)
		next++;
	else if (cur > 0 && next <= 0)
		next--;
	return next;
}

/* The link is the limit and the window says how busy the workers were: the highest level
 * whose cost their time covers with LVL_JUMP_MARGIN to spare, or one level up when it
 * covers that with LVL_STEP_MARGIN, or none when it does not (the raise would only make
 * compression the limit). */
static int raise_to(const struct lvl_ctl *c)
{
	/* The CPU per byte, relative to level 1's, the workers could spend. */
	double room = (double)(c->work_ns + c->spare_ns) / (double)c->work1_ns;
	int next = c->cur;

	while (next < c->max && lvl_cost(step(next, 1)) * LVL_JUMP_MARGIN <= room)
		next = step(next, 1);
	if (next == c->cur && lvl_cost(step(next, 1)) * LVL_STEP_MARGIN <= room)
		next = step(next, 1);
	return next;
}

int lvl_note(struct lvl_ctl *c, const struct lvl_batch *b)
{
	uint64_t elapsed;
	int next = c->cur;

	/* A batch compressed before the last change (it waited in the queue, or a worker
	 * had it in hand) tells of the old level: a window holds the current one's alone. */
	if (b->level != c->cur) {
		c->seen = 0;
		c->wait_ns = c->link_ns = c->work_ns = c->work1_ns = c->spare_ns = 0;
		return 0;
	}
	if (c->seen == 0)
		c->start_ns = b->at_ns - MIN(b->at_ns, b->wait_ns + b->link_ns);
	c->seen++;
	c->wait_ns += b->wait_ns;
	c->link_ns += b->link_ns;
	c->work_ns += b->work_ns;
	c->work1_ns += b->work1_ns;
	c->spare_ns += b->spare_ns;
	elapsed = b->at_ns - MIN(b->at_ns, c->start_ns);
	if (c->seen < LVL_WINDOW || elapsed < LVL_WINDOW_NS)
		return 0;
	if (c->wait_ns * 3 > elapsed) {
		/* A third of the time waiting on compression: spend less CPU per byte; two
		 * thirds: two levels less. */
		next = step(c->cur, c->wait_ns * 3 > elapsed * 2 ? -2 : -1);
	} else if (c->link_ns * 5 > elapsed * 4 && c->wait_ns * 10 < elapsed) {
		/* Blocked on the link four fifths of the time, hardly waiting on compression:
		 * spend more; blocked nearly all the time, the link is far slower: two levels.
		 * (Whether the finished frames' queue is full says little: the reads in flight
		 * bound it before its own limit does.) A raise shows its cost late, once the
		 * frames finished before it have drained: the ceiling below keeps one that
		 * proved too slow from being tried again at once. */
		next = step(c->cur, c->link_ns * 20 > elapsed * 19 && c->wait_ns * 50 < elapsed ?
				    2 : 1);
		if (c->work1_ns)
			next = raise_to(c);
	}
	next = MAX(c->min, MIN(next, c->max)); /* never 0: lvl_parse keeps it out of ranges */
	if (next < c->cur) {
		/* Too slow for this link: no raise back onto it for a while. */
		c->ceil = c->cur;
		c->ceil_windows = LVL_CEIL_WINDOWS;
	} else if (c->ceil_windows && --c->ceil_windows && next >= c->ceil) {
		next = MAX(c->cur, step(c->ceil, -1));
	}
	c->seen = 0;
	c->wait_ns = c->link_ns = c->work_ns = c->work1_ns = c->spare_ns = 0;
	if (next == c->cur)
		return 0;
	__atomic_store_n(&c->cur, next, __ATOMIC_RELAXED);
	c->changes++;
	if (next < c->lowest)
		c->lowest = next;
	if (next > c->highest)
		c->highest = next;
	return next;
}

static int parse_one(const char *s, size_t len, int lo, int hi, int *ret)
{
	char buf[16], *end;
	long v;

	if (len == 0 || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -EINVAL;
	*ret = (int)v;
	return 0;
}

int lvl_parse(const char *s, int lo, int hi, int *ret_min, int *ret_max)
{
	const char *dots = strstr(s, "..");
	int a, b;

	if (!dots) {
		if (parse_one(s, strlen(s), lo, hi, &a) < 0)
			return -EINVAL;
		b = a;
	} else if (parse_one(s, (size_t)(dots - s), lo, hi, &a) < 0 ||
		   parse_one(dots + 2, strlen(dots + 2), lo, hi, &b) < 0 || b <= a || a == 0 ||
		   b == 0) {
		/* A range of one level is a fixed level; 0 (zstd's default) only fixed. */
		return -EINVAL;
	}
	*ret_min = a;
	*ret_max = b;
	return 0;
}

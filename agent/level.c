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

void lvl_init(struct lvl_ctl *c, int min, int max)
{
	memset(c, 0, sizeof(*c));
	c->min = min;
	c->max = max;
	/* zstd's own default, 3, within the range: a link's first windows pass into the
	 * socket buffers before either side learns anything, and 3 costs little where the
	 * link turns out fast (it comes down within two windows). */
	c->cur = MAX(min, MIN(3, max));
	c->lowest = c->highest = c->cur;
}

int lvl_now(const struct lvl_ctl *c)
{
	return __atomic_load_n(&c->cur, __ATOMIC_RELAXED);
}

int lvl_note(struct lvl_ctl *c, bool backlog, bool starved)
{
	int next = c->cur;

	c->seen++;
	c->backlog += backlog;
	c->starved += starved;
	if (c->seen < LVL_WINDOW)
		return 0;
	/* Often waiting on the link and never on compression: spend more CPU per byte (a full
	 * queue is not seen at every batch even on a slow link: a worker may be refilling the
	 * slot just freed). Waiting on compression twice: spend less. Otherwise (the disk is
	 * the limit, or a mix) stay. */
	if (c->starved >= 2 && c->cur > c->min)
		next = c->cur - 1;
	else if (c->starved == 0 && c->backlog * 2 >= LVL_WINDOW && c->cur < c->max)
		/* Every batch waited: the link is far slower, climb faster. */
		next = c->cur + (c->backlog == LVL_WINDOW ? 2 : 1);
	c->seen = c->backlog = c->starved = 0;
	/* zstd has no level 0 (it means "default"): a step across it does not count it. */
	if (c->cur < 0 && next >= 0)
		next++;
	else if (c->cur > 0 && next <= 0)
		next--;
	next = MAX(c->min, MIN(next, c->max)); /* never 0: lvl_parse keeps it out of ranges */
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

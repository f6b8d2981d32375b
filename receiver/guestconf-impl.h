/* SPDX-License-Identifier: GPL-2.0-only */
/* Private to receiver/guestconf.c and guestconf-initnet.c: the string builder and line
 * reader both halves of the text rewrites use. */
#pragma once
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* A growing string; an allocation failure sticks and is reported once at the end. */
struct sb {
	char *p;
	size_t len, cap;
	bool oom;
};

static inline void sb_add(struct sb *s, const char *str, size_t n)
{
	if (s->oom)
		return;
	if (s->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 256;
		char *p;

		while (cap < s->len + n + 1)
			cap *= 2;
		p = realloc(s->p, cap);
		if (!p) {
			s->oom = true;
			return;
		}
		s->p = p;
		s->cap = cap;
	}
	memcpy(s->p + s->len, str, n);
	s->len += n;
	s->p[s->len] = '\0';
}

static inline void sb_str(struct sb *s, const char *str)
{
	sb_add(s, str, strlen(str));
}

/* Hands the string over: 0 and *ret (never NULL, "" when empty), or -ENOMEM. */
static inline int sb_done(struct sb *s, char **ret)
{
	sb_add(s, "", 0);
	if (s->oom) {
		free(s->p);
		return -ENOMEM;
	}
	*ret = s->p;
	return 0;
}

static inline bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* The next line of *pos: its start, its length without the newline; advances *pos past
 * the newline. NULL at the end. *ret_nl says whether the line had a newline. */
static inline const char *next_line(const char **pos, size_t *ret_len, bool *ret_nl)
{
	const char *s = *pos, *e;

	if (!*s)
		return NULL;
	e = strchr(s, '\n');
	if (e) {
		*ret_len = (size_t)(e - s);
		*ret_nl = true;
		*pos = e + 1;
	} else {
		*ret_len = strlen(s);
		*ret_nl = false;
		*pos = s + *ret_len;
	}
	return s;
}

static inline char *strndup_or_null(const char *s, size_t n)
{
	return strndup(s, n);
}


/* A word of a command line, as a pointer into it and a length. */
struct word {
	const char *s;
	size_t n;
};

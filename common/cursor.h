/* SPDX-License-Identifier: GPL-2.0-only */
/* A bounded byte cursor for explicit big-endian encoders and decoders (the wire protocol,
 * the enrolment frames): every get/put checks the remaining room first, and a failed
 * step poisons the cursor, so a decoder checks once at the end instead of after every
 * field, and never reads or writes past its buffer. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct cur {
	uint8_t *w;
	const uint8_t *r;
	size_t left;
	bool bad;
};

static inline bool cur_room(struct cur *c, size_t n)
{
	if (c->bad || c->left < n) {
		c->bad = true;
		return false;
	}
	return true;
}

static inline void put_u8(struct cur *c, uint8_t v)
{
	if (!cur_room(c, 1))
		return;
	*c->w++ = v;
	c->left--;
}

/* The low n bytes of v, most significant first. */
static inline void put_be(struct cur *c, uint64_t v, unsigned n)
{
	if (!cur_room(c, n))
		return;
	for (unsigned i = 0; i < n; i++)
		c->w[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	c->w += n;
	c->left -= n;
}

static inline void put_bytes(struct cur *c, const void *p, size_t n)
{
	if (!cur_room(c, n))
		return;
	if (n)
		memcpy(c->w, p, n);
	c->w += n;
	c->left -= n;
}

/* n bytes, most significant first; 0 once the cursor is poisoned. */
static inline uint64_t get_be(struct cur *c, unsigned n)
{
	uint64_t v = 0;

	if (!cur_room(c, n))
		return 0;
	for (unsigned i = 0; i < n; i++)
		v = (v << 8) | c->r[i];
	c->r += n;
	c->left -= n;
	return v;
}

/* A pointer to the next n bytes (borrowed), or NULL once the cursor is poisoned. */
static inline const uint8_t *get_bytes(struct cur *c, size_t n)
{
	const uint8_t *p = c->r;

	if (!cur_room(c, n))
		return NULL;
	c->r += n;
	c->left -= n;
	return p;
}

/* SPDX-License-Identifier: GPL-2.0-only */
/* What the protocol's two files share (proto.c: the header and the link's frames;
 * proto-stream.c: an epoch's stream): framing a message on a cursor. Included only by
 * common/proto*.c. */
#pragma once
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cursor.h"
#include "common/proto.h"

/* Starts a frame: leaves room for the header, filled in by finish() once the length is known. */
static inline struct cur begin(uint8_t *out, size_t cap)
{
	struct cur c = { .w = out, .left = cap };

	if (cap < PROTO_HDR_LEN) {
		c.bad = true;
		return c;
	}
	c.w += PROTO_HDR_LEN;
	c.left -= PROTO_HDR_LEN;
	return c;
}

static inline int finish(struct cur *c, uint8_t *out, enum proto_type type)
{
	size_t len;

	if (c->bad)
		return -ENOBUFS;
	len = (size_t)(c->w - out);
	proto_encode_hdr(out, type, (uint32_t)(len - PROTO_HDR_LEN));
	return (int)len;
}

/* A decoder is done when the cursor is intact and nothing is left over. */
static inline int done(const struct cur *c)
{
	if (c->bad || c->left != 0)
		return -EBADMSG;
	return 0;
}

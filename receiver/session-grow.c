// SPDX-License-Identifier: GPL-2.0-only
/* A disk whose source grew (DISK_GROW, between two epochs): its target, fingerprints,
 * chunk bitmap, record and registry entry follow, or, when the target cannot hold the new
 * size (a block device too small, a file past its bound) or the fingerprint budget is
 * spent, the disk is held with a reason the operator sees and the agent asks again later.
 * The session goes on either way; only a frame that breaks the rules ends it. */
#include "receiver/session-impl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fp.h"
#include "common/log.h"
#include "common/net.h"
#include "common/proto.h"
#include "common/util.h"
#include "receiver/registry.h"
#include "receiver/writer.h"

/* DISK_GROWN: code 0 (grown to size) or a positive errno with the reason. */
static int answer(struct rsession *s, uint16_t disk_no, int code, uint64_t size, const char *msg)
{
	struct proto_disk_grown m = { .disk_no = disk_no, .code = (uint32_t)code, .size = size };
	uint8_t out[PROTO_HDR_LEN + 2 + 4 + 8 + 2 + PROTO_MSG_MAX];
	int n;

	snprintf(m.msg, sizeof(m.msg), "%s", msg);
	n = proto_encode_disk_grown(out, sizeof(out), &m);
	return n < 0 ? n : conn_send(s->c, out, (size_t)n);
}

/* Rewrites the record with the disk's last event, claiming what it claimed before: the
 * epoch in progress, or the last verified one (this session's, or the one it resumed
 * from, whose fingerprints it still holds unchanged). */
static void keep_record(struct rsession *s, struct rdisk *d)
{
	struct fp root;
	int r = 0;

	if (d->marked) {
		r = save_disk_state(s, d, d->epoch, NULL);
	} else if (d->last_match) {
		r = save_disk_state(s, d, d->epoch - 1, &d->last_root);
	} else if (d->fps_saved && d->epoch > 0) {
		disk_root(s, d, d->fps, &root);
		r = save_disk_state(s, d, d->epoch - 1, &root);
	}
	if (r < 0)
		log_warn_errno(r, "disk %s: cannot record its last event", d->t->id);
}

void disk_hold_note(struct rsession *s, struct rdisk *d, const char *why, char *ret_line,
		    size_t line_len)
{
	const char *rest = strncmp(why, "the target ", 11) == 0 ? why + 11 : NULL;
	char mine[PROTO_MSG_MAX + 1];

	/* The operator's copy names the target ("target /dev/X is N bytes, ..."). */
	if (rest)
		snprintf(mine, sizeof(mine), "target %s %s", d->t->path, rest);
	else
		snprintf(mine, sizeof(mine), "target %s: %s", d->t->path, why);
	/* The agent asks again every few seconds: an unchanged reason is said once. */
	if (strstr(d->event, mine)) {
		log_info("agent %s: disk %s: still held: %s", s->agent, d->t->id, mine);
	} else {
		log_error("agent %s: disk %s: %s; its epochs are held until then", s->agent,
			  d->t->id, mine);
		note_event(d, "%s; replication of this disk is held until then (the other disks "
			   "go on)", mine);
		d->fault_noted = true;
		reg_disk_fault(s->srv->reg, d->rd, d->event);
		reg_disk_error(s->srv->reg, d->rd, mine);
		keep_record(s, d);
	}
	snprintf(ret_line, line_len, "%s", mine);
}

/* The target cannot follow (code ENOSPC) or the budget cannot (ENOMEM): nothing was
 * written; the operator sees why (log, record, registry) and so does the agent, which
 * holds the disk's epochs and asks again later. */
static int hold(struct rsession *s, struct rdisk *d, uint16_t disk_no, int code, const char *why)
{
	char msg[PROTO_MSG_MAX + 1], mine[PROTO_MSG_MAX + 1];

	disk_hold_note(s, d, why, mine, sizeof(mine));
	/* The agent hears the disk and the reason, never the receiver's path. */
	snprintf(msg, sizeof(msg), "disk %s: %s", d->t->id, why);
	return answer(s, disk_no, code, d->size, msg);
}

int disk_grow(struct rsession *s, struct rdisk *d, uint64_t size, char *why, size_t why_len)
{
	uint64_t n, need, extra, avail, have = 0, old = d->size;
	char b1[32], b2[32];
	struct fp *fps;
	uint8_t *bits;
	int r;

	n = DIV_ROUND_UP(size, s->cs);
	/* The same price as on_disk's: 16 bytes a chunk and a bit, from the same budget. */
	need = n > SIZE_MAX / FP_LEN / 2 ? UINT64_MAX : fps_map_len(n) + DIV_ROUND_UP(n, 8);
	extra = need - MIN(need, d->reserved);
	r = fp_reserve(s->srv, extra, &avail);
	if (r < 0) {
		snprintf(why, why_len, "%" PRIu64 " chunks of %u bytes need %s more fingerprint "
			 "memory than the %s this receiver has left (--fp-memory)", n, s->cs,
			 fmt_bytes(extra, b1, sizeof(b1)), fmt_bytes(avail, b2, sizeof(b2)));
		return -ENOMEM;
	}
	why[0] = '\0';
	r = wr_grow(d->w, size, d->t->max_size, &have, why, why_len);
	if (r < 0) {
		fp_release(s->srv, extra);
		if (!why[0])
			snprintf(why, why_len, "cannot grow the target: %s", strerror(-r));
		/* -ENOSPC: the target cannot hold it (held); anything else is a failure. */
		return r == -ENOSPC ? r : -EIO;
	}
	/* Zero chunks past the old end: what the grown target holds there. */
	fps = fps_grow(d->fps, d->nchunks, n);
	bits = fps ? realloc(d->have, DIV_ROUND_UP(n, 8)) : NULL;
	if (fps)
		d->fps = fps;
	d->reserved += extra;
	if (!bits) {
		/* The target grew, the record did not: the next session cuts it back. */
		snprintf(why, why_len, "out of memory");
		return -EIO;
	}
	memset(bits + DIV_ROUND_UP(d->nchunks, 8), 0,
	       DIV_ROUND_UP(n, 8) - DIV_ROUND_UP(d->nchunks, 8));
	d->have = bits;
	/* The checkpoint's held bitmap covers the new range too (none of it is held yet). */
	bits = realloc(d->held, DIV_ROUND_UP(n, 8));
	if (!bits) {
		snprintf(why, why_len, "out of memory");
		return -EIO;
	}
	memset(bits + DIV_ROUND_UP(d->nchunks, 8), 0,
	       DIV_ROUND_UP(n, 8) - DIV_ROUND_UP(d->nchunks, 8));
	d->held = bits;
	d->size = size;
	d->nchunks = n;
	/* The .fps file and the record describe the old size: the record says "in
	 * progress" at the new one (a resume reconciles by reading), and the next verified
	 * epoch saves both. */
	d->fps_saved = false;
	note_event(d, "the source grew from %" PRIu64 " to %" PRIu64 " bytes in epoch %" PRIu64
		   "; the target followed", old, size, d->epoch);
	r = save_disk_state(s, d, d->epoch, NULL);
	if (r < 0) {
		snprintf(why, why_len, "cannot record its state: %s", strerror(-r));
		return -EIO;
	}
	d->marked = true;
	reg_disk_resize(s->srv->reg, d->rd, size);
	reg_disk_fault(s->srv->reg, d->rd, d->event);
	log_info("agent %s: disk %s grew from %" PRIu64 " to %" PRIu64 " bytes; target %s "
		 "follows", s->agent, d->t->id, old, size, d->t->path);
	return 0;
}

int on_disk_grow(struct rsession *s, const struct proto_hdr *h)
{
	struct proto_disk_grow m;
	struct rdisk *d;
	char why[256];
	int r;

	r = proto_decode_disk_grow(s->buf, h->len, &m);
	if (r < 0)
		return refuse(s, r, "malformed DISK_GROW frame");
	if (m.disk_no >= s->ndisks || !s->disks[m.disk_no].w)
		return refuse(s, -EPROTO, "DISK_GROW for unregistered disk number %u", m.disk_no);
	d = &s->disks[m.disk_no];
	if (d->cut_over)
		return refuse(s, -EPERM, "disk %s was cut over; its target is no longer written",
			      d->t->id);
	/* Between epochs only: no chunk of the open epoch may lie past the old end. */
	if (m.epoch != d->epoch || d->have_count > 0)
		return refuse(s, -EPROTO, "disk %s: DISK_GROW for epoch %" PRIu64 " where epoch %"
			      PRIu64 " is open%s", d->t->id, m.epoch, d->epoch,
			      d->have_count ? " and under way" : "");
	if (m.size <= d->size)
		return refuse(s, -EPROTO, "disk %s: DISK_GROW to %" PRIu64 " bytes, not more than "
			      "its %" PRIu64 ": a disk only grows (shrinking is refused)", d->t->id,
			      m.size, d->size);
	r = disk_grow(s, d, m.size, why, sizeof(why));
	if (r == -ENOSPC || r == -ENOMEM)
		return hold(s, d, m.disk_no, -r, why);
	if (r < 0) {
		log_error("agent %s: disk %s: target %s: %s", s->agent, d->t->id, d->t->path, why);
		return refuse(s, r, "disk %s: %s", d->t->id, why);
	}
	return answer(s, m.disk_no, 0, m.size, "");
}

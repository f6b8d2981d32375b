// SPDX-License-Identifier: GPL-2.0-only
/* The checkpoint of a disk's unfinished first copy (epoch 0) in a receiver session: the
 * chunks the target holds durably and their fingerprints (record.c: rec_ckpt_*), saved
 * every few seconds or MiB after the writer has made everything before it durable, so a
 * restarted receiver offers them again without reading its target. A chunk the checkpoint
 * vouches for leaves it, durably, before it is written again. */
#include "receiver/session-impl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "receiver/record.h"
#include "receiver/writer.h"

/* A checkpoint is due after this much time or data since the last, whichever comes
 * first (2 s, or 1/64 of the disk within [4 MiB, 64 MiB]: never more than ~2% of a large
 * disk behind; a small disk is not flushed every MiB, which would slow its copy enough
 * to leave more in flight, and lost at a cut, than a checkpoint saves)... */
#define CKPT_NS (2 * 1000000000ull)
#define CKPT_BYTES (64ull << 20)
#define CKPT_BYTES_MIN (4ull << 20)
/* ...and once the data since is worth CKPT_AMORTIZE times the checkpoint itself (a bit a
 * chunk and 16 bytes a held one: up to 258 MiB a TiB of 64 KiB chunks), so that on a large
 * disk the checkpoints cost at most a fifth of the copy's writes. */
#define CKPT_AMORTIZE 4

static bool held_get(const struct rdisk *d, uint64_t i)
{
	return d->held[i / 8] >> (i % 8) & 1;
}

static uint64_t ckpt_len(const struct rdisk *d)
{
	return 64 + DIV_ROUND_UP(d->nchunks, 8) + (d->held_count + 1) * FP_LEN;
}

/* Writes the checkpoint; the caller has flushed the writer. */
static int ckpt_write(struct rsession *s, struct rdisk *d)
{
	struct rec_ckpt ck = { .size = d->size, .chunk_size = s->cs, .track_gen = d->ckpt_gen,
			       .held = d->held_count };
	int r;

	r = rec_ckpt_save(s->srv->state_dir, d->t->id, &ck, d->fps, d->held);
	if (r < 0)
		return r;
	d->ckpt_bytes = 0;
	d->ckpt_ns = now_ns();
	d->ckpts++;
	return 0;
}

int ckpt_save(struct rsession *s, struct rdisk *d)
{
	/* Every write so far completed, deferred zero ranges applied, fdatasync: only then
	 * may the checkpoint say the target holds them. */
	int r = wr_flush(d->w);

	return r < 0 ? r : ckpt_write(s, d);
}

int ckpt_before_write(struct rsession *s, struct rdisk *d, uint64_t first, uint64_t last,
		      const struct fp *fps)
{
	static const struct fp zero;
	uint64_t dropped = 0;
	int r;

	if (!d->ckpt)
		return 0;
	for (uint64_t i = first; i < last; i++) {
		/* A ZERO frame may cover millions of chunks: whole bytes without a bit at once. */
		if (i % 8 == 0 && last - i >= 8 && !d->held[i / 8]) {
			i += 7;
			continue;
		}
		/* The same content written again: whatever a crash leaves of the write, the
		 * chunk holds what the checkpoint says (a resend by --once, a retry). */
		if (held_get(d, i) && fp_equal(&d->fps[i], fps ? &fps[i - first] : &zero))
			continue;
		if (held_get(d, i)) {
			d->held[i / 8] &= (uint8_t)~(1u << (i % 8));
			d->held_count--;
			dropped++;
		}
	}
	if (!dropped)
		return 0;
	/* The target is about to hold something else there: a restart must not find these
	 * chunks vouched for with their old fingerprints, so they leave the checkpoint
	 * before the write is issued. */
	r = wr_flush(d->w);
	if (r < 0)
		return r;
	r = ckpt_write(s, d);
	if (r < 0)
		return refuse(s, r, "disk %s: cannot checkpoint the first copy before writing "
			      "chunks again: %s", d->t->id, strerror(-r));
	return 0;
}

int ckpt_after_write(struct rsession *s, struct rdisk *d, uint64_t first, uint64_t last,
		     uint64_t bytes)
{
	uint64_t now = now_ns();
	int r;

	if (!d->ckpt)
		return 0;
	for (uint64_t i = first; i < last; i++) {
		if (i % 8 == 0 && last - i >= 8) {
			d->held_count += 8 - (uint64_t)__builtin_popcount(d->held[i / 8]);
			d->held[i / 8] = 0xff;
			i += 7;
			continue;
		}
		if (!held_get(d, i)) {
			d->held[i / 8] |= (uint8_t)(1u << (i % 8));
			d->held_count++;
		}
	}
	d->ckpt_bytes += bytes;
	if (d->ckpt_bytes < CKPT_AMORTIZE * ckpt_len(d) ||
	    (d->ckpt_bytes < MIN(CKPT_BYTES, MAX(d->size / 64, CKPT_BYTES_MIN)) && now - d->ckpt_ns < CKPT_NS))
		return 0;
	r = wr_flush(d->w);
	if (r < 0)
		return r;
	r = ckpt_write(s, d);
	/* The checkpoint before stands and vouches for less: a restart re-sends more. */
	if (r < 0)
		log_warn_errno(r, "agent %s: disk %s: cannot checkpoint the first copy", s->agent,
			       d->t->id);
	return 0;
}

void ckpt_final(struct rsession *s, struct rdisk *d)
{
	int r;

	if (!d->ckpt || !d->w || d->ckpt_bytes == 0)
		return;
	r = ckpt_save(s, d);
	if (r < 0)
		log_warn_errno(r, "agent %s: disk %s: cannot checkpoint the first copy at the "
			       "session's end", s->agent, d->t->id);
	else
		log_info("agent %s: disk %s: first copy checkpointed at the session's end: %" PRIu64
			 " of %" PRIu64 " chunks held", s->agent, d->t->id, d->held_count, d->nchunks);
}

void ckpt_done(struct rsession *s, struct rdisk *d)
{
	int r;

	if (!d->ckpt)
		return;
	d->ckpt = false;
	r = rec_ckpt_remove(s->srv->state_dir, d->t->id);
	if (r < 0)
		log_warn_errno(r, "agent %s: disk %s: cannot remove the first copy's checkpoint",
			       s->agent, d->t->id);
}

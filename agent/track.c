// SPDX-License-Identifier: GPL-2.0-only
/* Dispatch from the tracker interface (track.h) to its backends, the choice among them
 * (track_pick) and the change sets they make. */
#include "agent/track.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/source.h"
#include "agent/track-ops.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/util.h"

struct track {
	const struct track_ops *ops;
	void *b;
	const struct source *src;
	uint32_t chunk_size, block_size;
	uint64_t nchunks;
	uint64_t size;  /* the source's size the backend was started at */
	uint64_t *only; /* the chunks of the pending blocks, for the change set */
	/* What start was given, for a restart at a new size (track_grow). */
	struct track_conf conf;
	unsigned slot, nslots;
	/* After a growth, until the next ack: the old tracker's last pending blocks (carry,
	 * carry_words words), ORed into each harvest's set (merged); the first chunk of the
	 * new range, every chunk of which is read (UINT64_MAX: none); and whether the epoch
	 * must read the whole disk (the old tracker stopped before the new one recorded). */
	uint64_t *carry, *merged;
	uint64_t carry_words, new_from;
	bool carry_overflow, grow_full;
};

#define NAME_(kind, name) [TRACK_##kind] = #name,
static const char *const names[TRACK_NKINDS] = { [TRACK_AUTO] = "auto", TRACK_BACKENDS(NAME_) };
#undef NAME_

/* Every backend, in auto's order (track.h). */
#define OPS_(kind, name) &track_##name##_ops,
static const struct track_ops *const backends[] = { TRACK_BACKENDS(OPS_) };
#undef OPS_

const char *track_kind_name(enum track_kind kind)
{
	return (unsigned)kind < TRACK_NKINDS ? names[kind] : "?";
}

int track_kind_parse(const char *name, enum track_kind *ret_kind)
{
	for (unsigned k = 0; k < TRACK_NKINDS; k++) {
		if (k != TRACK_SNAP && strcmp(name, names[k]) == 0) {
			*ret_kind = (enum track_kind)k;
			return 0;
		}
	}
	return -EINVAL;
}

static int start(const struct track_ops *ops, const struct track_conf *conf, struct source *src,
		 unsigned slot, unsigned nslots, struct track **ret_t, char *why, size_t why_len)
{
	struct track *t = calloc(1, sizeof(*t));
	int r;

	if (!t) {
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	t->ops = ops;
	t->src = src;
	t->conf = *conf;
	t->slot = slot;
	t->nslots = nslots;
	t->new_from = UINT64_MAX;
	t->chunk_size = conf->chunk_size;
	t->block_size = conf->block_size;
	t->nchunks = DIV_ROUND_UP(src->size, conf->chunk_size);
	t->size = src->size;
	r = ops->start(src, conf, slot, nslots, &t->b, why, why_len);
	if (r < 0) {
		free(t);
		return r;
	}
	t->only = calloc(DIV_ROUND_UP(t->nchunks, 64), 8);
	if (!t->only) {
		snprintf(why, why_len, "out of memory");
		track_stop(t, !ops->resumed(t->b));
		return -ENOMEM;
	}
	*ret_t = t;
	return 0;
}

int track_start_scan(struct source *src, uint32_t chunk_size, struct track **ret_t)
{
	struct track_conf conf = { .kind = TRACK_SCAN, .chunk_size = chunk_size };
	char why[64];

	return start(&track_scan_ops, &conf, src, 0, 1, ret_t, why, sizeof(why));
}

int track_start_one(const struct track_conf *conf, struct source *src, struct track **ret_t,
		    char *why, size_t why_len)
{
	for (size_t k = 0; k < sizeof(backends) / sizeof(*backends); k++)
		if (backends[k]->kind == conf->kind)
			return start(backends[k], conf, src, 0, 1, ret_t, why, why_len);
	snprintf(why, why_len, "no tracker %s", track_kind_name(conf->kind));
	return -EINVAL;
}

bool track_resumed(const struct track *t)
{
	return t->ops->resumed(t->b);
}

uint64_t track_nblocks(const struct track *t)
{
	return t->ops->nblocks(t->b);
}

int track_peek(struct track *t, uint64_t *out, uint64_t *ret_acked)
{
	return t->ops->peek ? t->ops->peek(t->b, out, ret_acked) : -EOPNOTSUPP;
}

int track_seed(struct track *t, const uint64_t *pending, uint64_t acked_epoch)
{
	return t->ops->seed ? t->ops->seed(t->b, pending, acked_epoch) : -EOPNOTSUPP;
}

/* Starts ops on every source, or on none (then why says why not). */
static int start_all(const struct track_ops *ops, const struct track_conf *conf,
		     struct source **srcs, unsigned n, struct track **ts, char *why, size_t why_len)
{
	int r = 0;

	for (unsigned i = 0; i < n && r == 0; i++)
		r = start(ops, conf, srcs[i], i, n, &ts[i], why, why_len);
	if (r == 0)
		return 0;
	for (unsigned i = 0; i < n; i++)
		if (ts[i])
			ts[i] = track_stop(ts[i], !ts[i]->ops->resumed(ts[i]->b));
	return r;
}

/* Whether auto tries ops: a recording backend whose prerequisites are there. */
static bool auto_tries(const struct track_ops *ops)
{
	return ops->kind != TRACK_SCAN && ops->kind != TRACK_SNAP &&
	       (!ops->available || ops->available());
}

/* Another tracker than chosen runs: what other backends left recording for these disks
 * would go on recording for nobody (eBPF: and hold its program attached) until reboot. */
static void forget_others(const struct track_ops *chosen, const struct track_conf *conf,
			  struct source **srcs, unsigned n, const char *instead)
{
	for (size_t k = 0; k < sizeof(backends) / sizeof(*backends); k++) {
		if (backends[k] == chosen || !backends[k]->forget)
			continue;
		for (unsigned i = 0; i < n; i++)
			backends[k]->forget(conf->pin_root, srcs[i]->id, instead);
	}
}

int track_pick(const struct track_conf *conf, struct source **srcs, unsigned n,
	       struct track **ret_tracks)
{
	struct track_conf c = *conf;
	struct track **ts = calloc(n, sizeof(*ts));
	char why[256] = "";
	int r;

	if (!ts)
		return log_errno(-ENOMEM, "allocation");
	r = snap_pick(conf->snapshot, conf->snap_store, srcs, n, &c.snapshot);
	if (r < 0)
		goto out;
	if (r == 0) {
		r = start_all(&track_snap_ops, &c, srcs, n, ts, why, sizeof(why));
		if (r < 0) {
			log_errno(r, "--snapshot %s: %s", snap_kind_name(c.snapshot), why);
			goto out;
		}
		log_info("snapshot %s: each epoch reads a snapshot taken as it starts; the "
			 "snapshot's exceptions are the next epoch's changed blocks",
			 snap_kind_name(c.snapshot));
		forget_others(&track_snap_ops, &c, srcs, n, snap_kind_name(c.snapshot));
		goto out;
	}
	if (conf->kind == TRACK_SCAN)
		goto scan;
	for (size_t k = 0; k < sizeof(backends) / sizeof(*backends); k++) {
		const struct track_ops *ops = backends[k];
		const char *name = track_kind_name(ops->kind);
		bool more = false;

		if (conf->kind != ops->kind && (conf->kind != TRACK_AUTO || !auto_tries(ops)))
			continue;
		r = start_all(ops, &c, srcs, n, ts, why, sizeof(why));
		if (r == 0) {
			log_info("tracker %s: block writes are recorded as they complete; each "
				 "epoch reads only the chunks they touched", name);
			forget_others(ops, &c, srcs, n, name);
			goto out;
		}
		if (conf->kind == ops->kind) {
			log_errno(r, "--tracker %s: %s", name, why);
			goto out;
		}
		for (size_t j = k + 1; j < sizeof(backends) / sizeof(*backends); j++)
			more = more || auto_tries(backends[j]);
		log_info("tracker auto: %s skipped (%s)%s", name, why, more ? "" : "; picked scan");
	}
scan:
	r = start_all(&track_scan_ops, &c, srcs, n, ts, why, sizeof(why));
	if (r < 0) {
		log_errno(r, "tracker scan: %s", why);
		goto out;
	}
	forget_others(&track_scan_ops, &c, srcs, n, "scan");
	log_info("tracker scan: every %u s, each disk is re-read and only chunks whose "
		 "fingerprint changed are sent", conf->interval_s);
out:
	if (r == 0)
		memcpy(ret_tracks, ts, n * sizeof(*ts));
	free(ts);
	return r;
}

int track_changes(struct track *t, const struct fp *prev, bool full, const uint64_t *bad,
		  struct changeset *ret_cs)
{
	const uint64_t *pending = NULL, *only = NULL, *marks = NULL;
	bool overflow = false;
	int fd = -1, r;

	r = t->ops->harvest(t->b, &pending, &overflow, &fd);
	if (r < 0)
		return r;
	/* After a growth the old tracker's last harvest stays pending until the ack. */
	if (pending && t->carry) {
		for (uint64_t w = 0; w < DIV_ROUND_UP(t->ops->nblocks(t->b), 64); w++)
			t->merged[w] = pending[w] | (w < t->carry_words ? t->carry[w] : 0);
		pending = t->merged;
	}
	overflow = overflow || t->carry_overflow;
	full = full || t->grow_full;
	if (overflow)
		log_warn("%s: a change too large to track: reading the whole disk", t->src->id);
	if (pending && !overflow) {
		uint64_t per = t->chunk_size / t->block_size, words = DIV_ROUND_UP(t->nchunks, 64);

		memset(t->only, 0, words * 8);
		for (uint64_t w = 0; w < DIV_ROUND_UP(t->ops->nblocks(t->b), 64); w++) {
			for (uint64_t bits = pending[w]; bits; bits &= bits - 1) {
				uint64_t chunk = (w * 64 + (uint64_t)__builtin_ctzll(bits)) / per;

				t->only[chunk / 64] |= UINT64_C(1) << (chunk % 64);
			}
		}
		/* Chunks an earlier epoch could not read are tried again. */
		for (uint64_t w = 0; bad && w < words; w++)
			t->only[w] |= bad[w];
		/* A grown disk's new range is read whole: nothing of it is on the target. */
		for (uint64_t i = t->new_from; i < t->nchunks; i++)
			t->only[i / 64] |= UINT64_C(1) << (i % 64);
		/* A full read still learns what the tracker would have missed. */
		if (full)
			marks = t->only;
		else
			only = t->only;
	}
	/* Without the receiver's fingerprints everything is sent, whatever changed. */
	*ret_cs = (struct changeset){
		.prev = prev,
		.only = prev ? only : NULL,
		.marks = prev && !only ? marks : NULL,
		/* A growth's epoch sends whole chunks: the old tail chunk is longer now. */
		.blocks = prev && only && t->new_from == UINT64_MAX &&
			  proto_patch_fits(t->chunk_size, t->block_size) ? pending : NULL,
		.block_size = t->block_size,
		.sums = t->ops->sums ? t->ops->sums(t->b) : NULL,
		.fd = fd,
	};
	return 0;
}

/* Forgets what a growth carried over. */
static void grow_done(struct track *t)
{
	free(t->carry);
	free(t->merged);
	t->carry = t->merged = NULL;
	t->carry_words = 0;
	t->carry_overflow = t->grow_full = false;
	t->new_from = UINT64_MAX;
}

int track_acked(struct track *t, uint64_t epoch)
{
	int r = t->ops->acked(t->b, epoch);

	if (r == 0)
		grow_done(t);
	return r;
}

int track_grow(struct track *t, uint64_t old_size)
{
	uint64_t nchunks = DIV_ROUND_UP(t->src->size, t->chunk_size), words, *only, *carry = NULL;
	uint64_t *merged = NULL, old_nb = t->ops->nblocks(t->b);
	const uint64_t *pending = NULL;
	bool overflow = false;
	void *nb = NULL;
	char why[256] = "";
	int fd, r;

	if (t->ops->kind == TRACK_SNAP) {
		log_error("%s: the %s snapshot tracker cannot follow a disk that grew; restart the "
			  "agent", t->src->id, track_name(t));
		return -EOPNOTSUPP;
	}
	words = DIV_ROUND_UP(nchunks, 64);
	only = calloc(words, 8);
	if (!only)
		return log_errno(-ENOMEM, "allocation");
	/* A backend started at this size already records all of it (a disk the receiver
	 * registered smaller than its source, see link_register_disk): it goes on. */
	if (old_nb > 0 && t->size != t->src->size) {
		/* A recording tracker is sized at its start: a new one for the new size is
		 * started first, then the old one harvested a last time, so that every write
		 * is in one or the other; its blocks stay pending with the new one's. */
		r = t->ops->start((struct source *)t->src, &t->conf, t->slot, t->nslots, &nb, why,
				  sizeof(why));
		if (r < 0) {
			free(only);
			return log_errno(r, "%s: cannot start the %s tracker at the new size: %s",
					 t->src->id, track_name(t), why);
		}
		r = t->ops->harvest(t->b, &pending, &overflow, &fd);
		if (r == 0) {
			uint64_t cw = DIV_ROUND_UP(old_nb, 64);

			carry = calloc(cw, 8);
			merged = calloc(DIV_ROUND_UP(t->ops->nblocks(nb), 64), 8);
			if (!carry || !merged)
				r = -ENOMEM;
			for (uint64_t w = 0; r == 0 && w < cw; w++)
				carry[w] = pending[w] | (w < t->carry_words ? t->carry[w] : 0);
		}
		if (r < 0) {
			free(carry);
			free(merged);
			free(only);
			/* The old one goes on; the new one's pins were made over its own. */
			t->ops->stop(nb, false);
			return log_errno(r, "%s: harvesting the %s tracker", t->src->id, track_name(t));
		}
		/* The old kernel side is replaced by the new one (same pins, same module
		 * id): stopped without forgetting, which would remove the new one. */
		t->ops->stop(t->b, false);
		t->b = nb;
		t->carry_overflow = t->carry_overflow || overflow;
		/* A backend whose new tracker replaced the old one before recording (tern.ko
		 * swaps its registration) may have missed a write in between: read it all. */
		t->grow_full = t->grow_full || !t->ops->grow_overlaps;
		free(t->carry);
		free(t->merged);
		t->carry = carry;
		t->carry_words = DIV_ROUND_UP(old_nb, 64);
		t->merged = merged;
		t->size = t->src->size;
	}
	free(t->only);
	t->only = only;
	/* The old last chunk, if short, is longer now: it is read again with the new range. */
	t->new_from = MIN(t->new_from, old_size / t->chunk_size);
	t->nchunks = nchunks;
	return 0;
}

bool track_continuous(const struct track *t, uint64_t next_epoch)
{
	uint64_t acked = t->ops->acked_epoch(t->b);

	/* The tracker may be one acknowledgement behind: an agent killed between the
	 * receiver's ack and recording it. Its pending blocks then still hold that epoch's
	 * set, so they cover everything changed since the receiver's epoch too. */
	return acked != UINT64_MAX && (acked + 1 == next_epoch || acked + 2 == next_epoch);
}

uint64_t track_gen(const struct track *t)
{
	return t->ops->gen ? t->ops->gen(t->b) : 0;
}

const char *track_name(const struct track *t)
{
	return t->ops->name ? t->ops->name(t->b) : track_kind_name(t->ops->kind);
}

uint8_t track_proto(const struct track *t)
{
	return t->ops->proto_of ? t->ops->proto_of(t->b) : t->ops->proto;
}

struct track *track_stop(struct track *t, bool forget)
{
	if (!t)
		return NULL;
	t->ops->stop(t->b, forget);
	grow_done(t);
	free(t->only);
	free(t);
	return NULL;
}

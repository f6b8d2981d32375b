/* SPDX-License-Identifier: GPL-2.0-only */
/* What a tracker backend implements; track.c dispatches to it. Only track*.c include this.
 * A backend's state is the void * its start returns. */
#pragma once
#include "agent/track.h"
#include "common/proto.h"

struct track_ops {
	enum track_kind kind;
	uint8_t proto;               /* PROTO_TRACKER_*; snap reports its provider's */
	/* A second start for the same source (at a new size) records beside the first until
	 * that is stopped, so a growth loses no write (track_grow). */
	bool grow_overlaps;
	/* Whether auto should try it (kmod: tern.ko is loaded). NULL: always. */
	bool (*available)(void);
	/* Starts (or resumes what an earlier agent left) tracking src, slot of nslots sources.
	 * Returns 0 or -errno with a one-line reason in why. */
	int (*start)(struct source *src, const struct track_conf *conf, unsigned slot,
		     unsigned nslots, void **ret_b, char *why, size_t why_len);
	/* Moves the changes since the last harvest into the pending set and returns it: a
	 * bitmap of ceil(nblocks / 64) words valid until the next call, or NULL when the
	 * backend records no blocks (scan). *ret_overflow: read the whole disk. *ret_fd: where
	 * the epoch reads (-1: the source). */
	int (*harvest)(void *b, const uint64_t **ret_pending, bool *ret_overflow, int *ret_fd);
	int (*acked)(void *b, uint64_t epoch);
	uint64_t (*acked_epoch)(const void *b); /* UINT64_MAX: none */
	bool (*resumed)(const void *b);
	uint64_t (*gen)(const void *b);         /* NULL: no generation (0), see track_gen */
	uint64_t (*nblocks)(const void *b);
	const char *(*name)(const void *b);     /* NULL: track_kind_name(kind) */
	uint8_t (*proto_of)(const void *b);     /* NULL: proto */
	void (*stop)(void *b, bool forget);
	/* The block sums the reader keeps for the backend's disk (blocksum.h), or NULL. NULL:
	 * none. */
	struct bsum *(*sums)(void *b);
	/* Removes (and says so) what an earlier agent left recording for disk id, when
	 * tracker instead replaces it. NULL: nothing outlives its agent. */
	void (*forget)(const char *pin_root, const char *id, const char *instead);
	/* Kept across a reboot (persist.h); NULL: not. peek copies the pending set as it
	 * stands, writes not yet harvested included, into out (nblocks bits) and the last
	 * acknowledged epoch, moving nothing; seed adds pending to the pending set and sets
	 * the last acknowledged epoch. 0 or -errno. */
	int (*peek)(void *b, uint64_t *out, uint64_t *ret_acked);
	int (*seed)(void *b, const uint64_t *pending, uint64_t acked_epoch);
};

#define TRACK_OPS_DECL_(kind, name) extern const struct track_ops track_##name##_ops;
TRACK_BACKENDS(TRACK_OPS_DECL_)
#undef TRACK_OPS_DECL_

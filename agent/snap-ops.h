/* SPDX-License-Identifier: GPL-2.0-only */
/* What a snapshot provider implements (snap.h says what each call means); only snap*.c and
 * track-snap.c include this. A provider's state is the void * its start returns. */
#pragma once
#include "agent/snap.h"
#include "common/proto.h"

struct snap_ops {
	enum snap_kind kind;
	uint8_t proto; /* PROTO_TRACKER_* */
	bool (*source_ok)(const struct source *src);
	int (*cleanup)(const char *id, const char *path);
	int (*check_store)(const char *store, struct source *const *srcs, unsigned n, char *why,
			   size_t why_len);
	int (*start)(struct source *src, uint32_t block_size, const char *store, unsigned slot,
		     unsigned nslots, void **ret_b, char *why, size_t why_len);
	int (*take)(void *b, int *ret_fd, const uint64_t **ret_pending, bool *ret_overflow);
	int (*acked)(void *b, uint64_t epoch);
	uint64_t (*acked_epoch)(const void *b);
	uint64_t (*nblocks)(const void *b);
	void (*stop)(void *b);
};

#define SNAP_OPS_DECL_(kind, name) extern const struct snap_ops snap_##name##_ops;
SNAP_PROVIDERS(SNAP_OPS_DECL_)
#undef SNAP_OPS_DECL_

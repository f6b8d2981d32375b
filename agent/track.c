// SPDX-License-Identifier: GPL-2.0-only
/* Dispatch from the tracker interface (track.h) to its backends. */
#include "agent/track.h"

#include <errno.h>
#include <stdlib.h>

#include "agent/track-dm.h"
#include "agent/track-ebpf.h"
#include "agent/track-kmod.h"

struct track {
	enum track_kind kind;
	struct trk_ebpf *ebpf;
	struct trk_kmod *kmod;
	struct trk_dm *dm;
};

int track_start(enum track_kind kind, const struct source *src, uint32_t block_size,
		const char *pin_root, struct track **ret_t, char *why, size_t why_len)
{
	struct track *t;
	int r;

	if (kind == TRACK_DM)
		return -EINVAL; /* track_start_dm: it needs its COW store */
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->kind = kind;
	if (kind == TRACK_KMOD)
		r = trk_kmod_start(src, block_size, &t->kmod, why, why_len);
	else
		r = trk_ebpf_start(src, block_size, pin_root, &t->ebpf, why, why_len);
	if (r < 0) {
		free(t);
		return r;
	}
	*ret_t = t;
	return 0;
}

int track_start_dm(struct source *src, uint32_t block_size, const char *cow, unsigned slot,
		   unsigned nslots, struct track **ret_t, char *why, size_t why_len)
{
	struct track *t = calloc(1, sizeof(*t));
	int r;

	if (!t)
		return -ENOMEM;
	t->kind = TRACK_DM;
	r = trk_dm_start(src, block_size, cow, slot, nslots, &t->dm, why, why_len);
	if (r < 0) {
		free(t);
		return r;
	}
	*ret_t = t;
	return 0;
}

int track_harvest(struct track *t, const uint64_t **ret_pending, bool *ret_overflow)
{
	switch (t->kind) {
	case TRACK_KMOD: return trk_kmod_harvest(t->kmod, ret_pending, ret_overflow);
	case TRACK_DM: return trk_dm_harvest(t->dm, ret_pending, ret_overflow);
	default: return trk_ebpf_harvest(t->ebpf, ret_pending, ret_overflow);
	}
}

int track_acked(struct track *t, uint64_t epoch)
{
	switch (t->kind) {
	case TRACK_KMOD: return trk_kmod_acked(t->kmod, epoch);
	case TRACK_DM: return trk_dm_acked(t->dm, epoch);
	default: return trk_ebpf_acked(t->ebpf, epoch);
	}
}

uint64_t track_acked_epoch(const struct track *t)
{
	switch (t->kind) {
	case TRACK_KMOD: return trk_kmod_acked_epoch(t->kmod);
	case TRACK_DM: return trk_dm_acked_epoch(t->dm);
	default: return trk_ebpf_acked_epoch(t->ebpf);
	}
}

bool track_resumed(const struct track *t)
{
	switch (t->kind) {
	case TRACK_KMOD: return trk_kmod_resumed(t->kmod);
	case TRACK_DM: return false; /* snapshots never outlive their agent */
	default: return trk_ebpf_resumed(t->ebpf);
	}
}

uint64_t track_nblocks(const struct track *t)
{
	switch (t->kind) {
	case TRACK_KMOD: return trk_kmod_nblocks(t->kmod);
	case TRACK_DM: return trk_dm_nblocks(t->dm);
	default: return trk_ebpf_nblocks(t->ebpf);
	}
}

enum track_kind track_kind(const struct track *t)
{
	return t->kind;
}

const char *track_name(enum track_kind kind)
{
	switch (kind) {
	case TRACK_KMOD: return "kmod";
	case TRACK_DM: return "dm";
	default: return "ebpf";
	}
}

struct track *track_stop(struct track *t, bool forget)
{
	if (!t)
		return NULL;
	trk_kmod_stop(t->kmod, forget);
	trk_ebpf_stop(t->ebpf, forget);
	trk_dm_stop(t->dm);
	free(t);
	return NULL;
}

// SPDX-License-Identifier: GPL-2.0-only
/* The snapshot tracker: a snapshot provider (snap.h) as a change tracker. Each harvest
 * takes a snapshot, which the epoch reads; the previous one's copies are the changes. */
#include "agent/snap.h"
#include "agent/track-ops.h"

static int snap_track_start(struct source *src, const struct track_conf *conf, unsigned slot,
			    unsigned nslots, void **ret_b, char *why, size_t why_len)
{
	struct snap *s;
	int r = snap_start(conf->snapshot, src, conf->block_size, conf->snap_store, slot, nslots,
			   &s, why, why_len);

	if (r == 0)
		*ret_b = s;
	return r;
}

static int snap_track_harvest(void *b, const uint64_t **ret_pending, bool *ret_overflow,
			      int *ret_fd)
{
	return snap_take(b, ret_fd, ret_pending, ret_overflow);
}

static int snap_track_acked(void *b, uint64_t epoch)
{
	return snap_acked(b, epoch);
}

static uint64_t snap_track_acked_epoch(const void *b)
{
	return snap_acked_epoch(b);
}

/* Snapshots never outlive their agent. */
static bool snap_track_resumed(const void *b)
{
	(void)b;
	return false;
}

static uint64_t snap_track_nblocks(const void *b)
{
	return snap_nblocks(b);
}

static const char *snap_track_name(const void *b)
{
	return snap_name(b);
}

static uint8_t snap_track_proto(const void *b)
{
	return snap_proto(b);
}

static void snap_track_stop(void *b, bool forget)
{
	(void)forget;
	snap_stop(b);
}

const struct track_ops track_snap_ops = {
	.kind = TRACK_SNAP,
	.start = snap_track_start,
	.harvest = snap_track_harvest,
	.acked = snap_track_acked,
	.acked_epoch = snap_track_acked_epoch,
	.resumed = snap_track_resumed,
	.nblocks = snap_track_nblocks,
	.name = snap_track_name,
	.proto_of = snap_track_proto,
	.stop = snap_track_stop,
};

// SPDX-License-Identifier: GPL-2.0-only
/* The scan tracker: records nothing. Each epoch reads the whole disk and the reader sends
 * the chunks whose fingerprint differs from the receiver's; it works on any source. */
#include <stdint.h>

#include "agent/track-ops.h"

static int scan_start(struct source *src, const struct track_conf *conf, unsigned slot,
		      unsigned nslots, void **ret_b, char *why, size_t why_len)
{
	(void)src, (void)conf, (void)slot, (void)nslots, (void)why, (void)why_len;
	*ret_b = NULL;
	return 0;
}

static int scan_harvest(void *b, const uint64_t **ret_pending, bool *ret_overflow, int *ret_fd)
{
	(void)b;
	*ret_pending = NULL;
	*ret_overflow = false;
	*ret_fd = -1;
	return 0;
}

static int scan_acked(void *b, uint64_t epoch)
{
	(void)b, (void)epoch;
	return 0;
}

/* Nothing was watched between epochs, so no connection may rely on it. */
static uint64_t scan_acked_epoch(const void *b)
{
	(void)b;
	return UINT64_MAX;
}

static bool scan_resumed(const void *b)
{
	(void)b;
	return false;
}

static uint64_t scan_nblocks(const void *b)
{
	(void)b;
	return 0;
}

static void scan_stop(void *b, bool forget)
{
	(void)b, (void)forget;
}

const struct track_ops track_scan_ops = {
	.kind = TRACK_SCAN,
	.proto = PROTO_TRACKER_SCAN,
	.start = scan_start,
	.harvest = scan_harvest,
	.acked = scan_acked,
	.acked_epoch = scan_acked_epoch,
	.resumed = scan_resumed,
	.nblocks = scan_nblocks,
	.stop = scan_stop,
};

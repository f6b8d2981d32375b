// SPDX-License-Identifier: GPL-2.0-only
/* The scan tracker: records nothing. Each epoch reads the whole disk and the reader sends
 * the chunks whose fingerprint differs from the receiver's; it works on any source. With
 * room in --block-sums-memory it keeps every chunk's block sums (blocksum.h), so a changed
 * chunk goes as a PATCH of its changed blocks, not whole. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/blocksum.h"
#include "agent/source.h"
#include "agent/track-ops.h"
#include "common/log.h"
#include "common/util.h"

struct scan {
	struct bsum *sums; /* NULL: changed chunks go whole */
};

static int scan_start(struct source *src, const struct track_conf *conf, unsigned slot,
		      unsigned nslots, void **ret_b, char *why, size_t why_len)
{
	uint64_t nchunks = DIV_ROUND_UP(src->size, conf->chunk_size);
	uint64_t need = bsum_bytes(nchunks, conf->chunk_size, conf->block_size);
	struct scan *sc = calloc(1, sizeof(*sc));
	char b1[32], b2[32];
	int r;

	(void)slot, (void)nslots;
	if (!sc) {
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	if (conf->sums_left && need > 0 && need <= *conf->sums_left) {
		r = bsum_new(nchunks, conf->chunk_size, conf->block_size, &sc->sums);
		if (r < 0) {
			free(sc);
			snprintf(why, why_len, "block sums: %s", strerror(-r));
			return r;
		}
		*conf->sums_left -= need;
		/* Test seam: sums that miss every change of one block of each chunk, as a
		 * collision would (tests/integration/scan-delta.sh). */
		if (conf->fault_sum_blind)
			bsum_fault_blind(sc->sums, conf->fault_sum_blind - 1);
		log_debug("%s: block sums take %s: a changed chunk goes as its changed blocks",
			  src->id, fmt_bytes(need, b1, sizeof(b1)));
	} else if (conf->sums_left && need > 0) {
		/* Said once, when the disk starts: every later epoch is the same. */
		log_warn("%s: its block sums would take %s, more than the %s left of "
			 "--block-sums-memory: each changed chunk of it is sent whole", src->id,
			 fmt_bytes(need, b1, sizeof(b1)), fmt_bytes(*conf->sums_left, b2, sizeof(b2)));
	}
	*ret_b = sc;
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

static struct bsum *scan_sums(void *b)
{
	return ((struct scan *)b)->sums;
}

static void scan_stop(void *b, bool forget)
{
	struct scan *sc = b;

	(void)forget;
	if (!sc)
		return;
	bsum_free(sc->sums);
	free(sc);
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
	.sums = scan_sums,
	.stop = scan_stop,
};

// SPDX-License-Identifier: GPL-2.0-only
/* HAVE_RQ_COMPLETE_STATUS: block_rq_complete passes (rq, blk_status_t, nr_bytes), as the
 * probe in tern-main.c expects (4.13 and later); kbuild makes a pointer mismatch an error. */
#include <linux/blk-mq.h>
#include <trace/events/block.h>

static void tern_cb(void *data, struct request *rq, blk_status_t error, unsigned int nr_bytes)
{
}

void tern_probe(void);
void tern_probe(void)
{
	check_trace_callback_type_block_rq_complete(tern_cb);
}

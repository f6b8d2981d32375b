// SPDX-License-Identifier: GPL-2.0-only
/* HAVE_RQ_RQ_DISK: struct request still names its gendisk (before 5.17 moved it to q). */
#include <linux/blk-mq.h>

struct gendisk *tern_probe(struct request *rq);
struct gendisk *tern_probe(struct request *rq)
{
	return rq->rq_disk;
}

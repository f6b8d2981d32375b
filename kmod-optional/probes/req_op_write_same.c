// SPDX-License-Identifier: GPL-2.0-only
/* HAVE_REQ_OP_WRITE_SAME: the op removed in 5.18 still exists. */
#include <linux/blk_types.h>

int tern_probe(void);
int tern_probe(void)
{
	return REQ_OP_WRITE_SAME;
}

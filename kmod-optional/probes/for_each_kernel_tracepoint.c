// SPDX-License-Identifier: GPL-2.0-only
/* HAVE_FOR_EACH_KERNEL_TRACEPOINT: core tracepoints can be found by name (3.15 and later). */
#include <linux/tracepoint.h>

static void tern_cb(struct tracepoint *tp, void *priv)
{
}

void tern_probe(void);
void tern_probe(void)
{
	for_each_kernel_tracepoint(tern_cb, NULL);
}

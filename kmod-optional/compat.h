/* SPDX-License-Identifier: GPL-2.0-only */
/* Maps the kernel API differences the compile probes found (tern-probed.h) onto the names
 * tern-main.c uses, and refuses kernels the module cannot work on. */
#ifndef TERN_COMPAT_H
#define TERN_COMPAT_H

#include "tern-probed.h"

#ifndef HAVE_FOR_EACH_KERNEL_TRACEPOINT
#error "this kernel cannot look tracepoints up by name (for_each_kernel_tracepoint)"
#endif
#ifndef HAVE_RQ_COMPLETE_STATUS
#error "block_rq_complete does not pass (rq, blk_status_t, nr_bytes) in this kernel"
#endif

/* 5.17 dropped request->rq_disk; the queue has named its disk since 5.15. */
#ifdef HAVE_RQ_RQ_DISK
#define TERN_RQ_DISK(rq) ((rq)->rq_disk)
#else
#define TERN_RQ_DISK(rq) ((rq)->q->disk)
#endif

#endif

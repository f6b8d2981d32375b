// SPDX-License-Identifier: GPL-2.0-only
/* The io_uring probe of the suites that drive the reader and the writer; see helpers.h.
 * Its own object, so that a suite that does not ask for it does not pull it in. */
#include "helpers.h"

#include <errno.h>
#include <liburing.h>

const char *t_need_io_uring(void)
{
	struct io_uring ring;
	int r = io_uring_queue_init(4, &ring, 0);

	/* liburing's habit: a kernel (or a sandbox) that refuses io_uring skips, not fails. */
	if (r == -EPERM || r == -ENOSYS || r == -EACCES)
		return "io_uring is not available here (io_uring_queue_init refused it)";
	if (r == 0)
		io_uring_queue_exit(&ring);
	return NULL;
}

// SPDX-License-Identifier: GPL-2.0-only
/* The one main() of every unit suite: runs the suites the test file lists in t_suites, or
 * skips (77) with the reason its t_precheck gives; see helpers.h. The tests' temporary
 * files go under a directory of this run, removed at its end: a test that fails ends its
 * process at the assertion, before its teardown could clean up. */
#include "helpers.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

int main(int argc, char **argv)
{
	const char *why = t_precheck ? t_precheck() : NULL, *prog;
	char run_dir[PATH_MAX];
	SRunner *sr;
	int failed;

	prog = argc > 0 && argv[0] ? strrchr(argv[0], '/') : NULL;
	prog = prog ? prog + 1 : argc > 0 && argv[0] ? argv[0] : "test";
	if (why) {
		printf("%s: skipped: %s\n", prog, why);
		return 77;
	}
	if (snprintf(run_dir, sizeof(run_dir), "%s/tern-unit-%s.XXXXXX", t_tmpbase(), prog) >=
	    (int)sizeof(run_dir) || !mkdtemp(run_dir) || setenv("TMPDIR", run_dir, 1) < 0) {
		fprintf(stderr, "%s: cannot make a temporary directory under %s: %s\n", prog,
			t_tmpbase(), strerror(errno));
		return EXIT_FAILURE;
	}
	log_setup(prog, getenv("TERN_TEST_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_WARN);
	/* A refused peer closes its socket; writing to it must fail, not kill the test. */
	signal(SIGPIPE, SIG_IGN);
	sr = srunner_create(NULL);
	for (size_t i = 0; t_suites[i]; i++)
		srunner_add_suite(sr, t_suites[i]());
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	t_rmtree(run_dir);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

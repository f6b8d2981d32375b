// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests for common/log.c: plain lines on a terminal or file, syslog priority prefixes
 * only when JOURNAL_STREAM names our own stderr, and the config-line context. */
#include "common/log.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "helpers.h"

static char path[PATH_MAX];
static int fd = -1;

/* stderr goes to a temp file for the test; each test runs in its own process. */
static void setup(void)
{
	fd = t_mkstemp(path, "log");
	ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
	unsetenv("JOURNAL_STREAM");
}

static void teardown(void)
{
	unlink(path);
	close(fd);
}

static const char *captured(void)
{
	static char buf[4096];
	ssize_t n;

	fflush(stderr);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* Sets JOURNAL_STREAM as systemd does: "DEV:INO" of the stream it connected. */
static void set_stream_of(int which)
{
	struct stat st;
	char v[64];

	ck_assert_int_eq(fstat(which, &st), 0);
	snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", v, 1);
}

START_TEST(test_log_plain_lines_name_program_and_level)
{
	log_setup("tern-x", LOG_LVL_INFO);
	log_error("disk %s failed", "a");
	log_warn("slow");
	log_info("hello");
	log_debug("hidden at info");
	ck_assert_int_eq(log_errno(-ENOENT, "open %s", "/x"), -ENOENT);
	ck_assert_str_eq(captured(), "tern-x: error: disk a failed\n"
				     "tern-x: warning: slow\n"
				     "tern-x: info: hello\n"
				     "tern-x: error: open /x: No such file or directory\n");
}
END_TEST

START_TEST(test_log_journal_stream_gets_priorities)
{
	set_stream_of(STDERR_FILENO);
	log_setup("tern-x", LOG_LVL_DEBUG);
	log_error("e");
	log_warn("w");
	log_info("i");
	log_debug("d");
	log_warn_errno(-EIO, "read");
	ck_assert_str_eq(captured(), "<3>e\n<4>w\n<6>i\n<7>d\n<4>read: Input/output error\n");
}
END_TEST

START_TEST(test_log_inherited_journal_stream_is_ignored)
{
	/* A JOURNAL_STREAM inherited by a process whose stderr was redirected elsewhere. */
	set_stream_of(STDIN_FILENO);
	log_setup("tern-x", LOG_LVL_INFO);
	log_error("e");
	setenv("JOURNAL_STREAM", "garbage", 1);
	log_setup("tern-x", LOG_LVL_INFO);
	log_error("f");
	set_stream_of(STDERR_FILENO);
	{
		/* Trailing junk after DEV:INO is not systemd's format. */
		char v[80];

		snprintf(v, sizeof(v), "%sx", getenv("JOURNAL_STREAM"));
		setenv("JOURNAL_STREAM", v, 1);
	}
	log_setup("tern-x", LOG_LVL_INFO);
	log_error("g");
	ck_assert_str_eq(captured(), "tern-x: error: e\ntern-x: error: f\ntern-x: error: g\n");
}
END_TEST

START_TEST(test_log_context_names_config_line)
{
	log_setup("tern-x", LOG_LVL_INFO);
	log_set_context("/etc/tern/agent.conf:7");
	log_error("--interval 0: seconds from 1 to 86400");
	log_set_context(NULL);
	log_error("after");
	set_stream_of(STDERR_FILENO);
	log_setup("tern-x", LOG_LVL_INFO);
	log_set_context("f:1");
	log_error("x");
	log_set_context(NULL);
	ck_assert_str_eq(captured(),
			 "tern-x: error: /etc/tern/agent.conf:7: --interval 0: seconds from 1 to 86400\n"
			 "tern-x: error: after\n"
			 "<3>f:1: x\n");
}
END_TEST

static Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("lines");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_log_plain_lines_name_program_and_level);
	tcase_add_test(tc, test_log_journal_stream_gets_priorities);
	tcase_add_test(tc, test_log_inherited_journal_stream_is_ignored);
	tcase_add_test(tc, test_log_context_names_config_line);
	suite_add_tcase(s, tc);
	return s;
}

Suite *(*const t_suites[])(void) = { log_suite, NULL };

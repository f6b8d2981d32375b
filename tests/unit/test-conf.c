// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests for common/conf.c: the entries a good file yields, one error line naming
 * file:line for each kind of bad line, and the argv conf_args_build puts together. */
#include "common/conf.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "helpers.h"

enum { O_RECEIVER = 0x100, O_CREDENTIALS, O_DISK, O_ONCE, O_CONFIG, O_PRE };

static const struct option opts[] = {
	{ "receiver", required_argument, NULL, O_RECEIVER },
	{ "credentials", required_argument, NULL, O_CREDENTIALS },
	{ "disk", required_argument, NULL, O_DISK },
	{ "once", no_argument, NULL, O_ONCE },
	{ "pre-cutover", required_argument, NULL, O_PRE },
	{ "config", required_argument, NULL, O_CONFIG },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};
static const char *const repeatable[] = { "disk", NULL };

static char dir[PATH_MAX], path[256], errpath[256];

static void setup(void)
{
	t_mkdtemp(dir, "conf");
	ck_assert_int_lt(snprintf(path, sizeof(path), "%s/agent.conf", dir), (int)sizeof(path));
	ck_assert_int_lt(snprintf(errpath, sizeof(errpath), "%s/stderr", dir), (int)sizeof(errpath));
	log_setup("test", LOG_LVL_INFO);
}

static void teardown(void)
{
	t_rmtree(dir);
}

static void write_conf(const char *text, size_t len, unsigned mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
}

/* Runs the parser with stderr sent to a file; returns its result and what it printed. */
static int parse_capture(char ***entries, unsigned **lines, size_t *n, char *out, size_t outlen)
{
	int saved = dup(STDERR_FILENO), fd, r;
	ssize_t got;

	fd = open(errpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	r = conf_parse_file(path, opts, repeatable, entries, lines, n);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	got = pread(fd, out, outlen - 1, 0);
	close(fd);
	out[got > 0 ? got : 0] = '\0';
	return r;
}

static void free_entries(char **e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(e[i]);
	free(e);
}

/* Lengths from the literal, which may hold a NUL. */
#define BAD(text, line, what) expect_bad_line(text, sizeof(text) - 1, line, what)

/* A bad file: -EINVAL and exactly one error line naming path:line. */
static void expect_bad_line(const char *text, size_t len, unsigned line, const char *what)
{
	char out[8192], where[300];
	char **e = NULL;
	unsigned *l = NULL;
	size_t n = 99;
	int r;

	write_conf(text, len, 0600);
	r = parse_capture(&e, &l, &n, out, sizeof(out));
	ck_assert_int_eq(r, -EINVAL);
	ck_assert_ptr_null(e);
	ck_assert_ptr_null(l);
	ck_assert_uint_eq(n, 99);
	snprintf(where, sizeof(where), "test: error: %s:%u: ", path, line);
	ck_assert_msg(strncmp(out, where, strlen(where)) == 0, "got '%s', want '%s...'", out, where);
	ck_assert_msg(strstr(out, what), "got '%s', want it to say '%s'", out, what);
	ck_assert_ptr_eq(strchr(out, '\n'), out + strlen(out) - 1);
}

START_TEST(test_conf_parses_a_good_file)
{
	static const char text[] =
		"# written by tern-agent join\n"
		"receiver = 10.0.0.5:7480\n"
		"credentials=/etc/tern/agent.pem\n"
		"\n"
		"   # indented comment\n"
		"\tdisk =  root=/dev/disk/by-id/wwn-0x5000c500a1b2c3d4  \n"
		"disk = data=/dev/disk/by-id/nvme-eui.0025388b91b2a3c4\r\n"
		"once = true\n"
		"pre-cutover = systemctl stop app # not a comment: part of the command\n"
		"   \t\n"
		"once = false";
	static const char *const want[] = {
		"--receiver=10.0.0.5:7480",
		"--credentials=/etc/tern/agent.pem",
		"--disk=root=/dev/disk/by-id/wwn-0x5000c500a1b2c3d4",
		"--disk=data=/dev/disk/by-id/nvme-eui.0025388b91b2a3c4",
		"--once",
		"--pre-cutover=systemctl stop app # not a comment: part of the command",
	};
	static const unsigned want_lines[] = { 2, 3, 6, 7, 8, 9 };
	char out[4096];
	char **e = NULL;
	unsigned *l = NULL;
	size_t n = 0;

	/* The whole text sets once twice, which is refused. */
	write_conf(text, sizeof(text) - 1, 0600);
	ck_assert_int_eq(parse_capture(&e, &l, &n, out, sizeof(out)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(out, ":11: 'once' given twice (first on line 8)"));

	/* Without the duplicate: every entry, in order, with its line. */
	write_conf(text, strstr(text, "   \t\n") - text, 0640);
	ck_assert_int_eq(parse_capture(&e, &l, &n, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "");
	ck_assert_uint_eq(n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < n; i++) {
		ck_assert_str_eq(e[i], want[i]);
		ck_assert_uint_eq(l[i], want_lines[i]);
	}
	ck_assert_ptr_null(e[n]);
	free_entries(e, n);
	free(l);
}
END_TEST

START_TEST(test_conf_false_flag_and_empty_file_yield_nothing)
{
	char out[4096];
	char **e = NULL;
	unsigned *l = NULL;
	size_t n = 99;

	write_conf("", 0, 0600);
	ck_assert_int_eq(parse_capture(&e, &l, &n, out, sizeof(out)), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(e[0]);
	free_entries(e, n);
	free(l);

	write_conf("once = off\n# nothing else\n", 26, 0600);
	ck_assert_int_eq(parse_capture(&e, &l, &n, out, sizeof(out)), 0);
	ck_assert_uint_eq(n, 0);
	free_entries(e, n);
	free(l);
}
END_TEST

START_TEST(test_conf_rejects_unknown_key)
{
	BAD("receiver = a:1\nreciever = b:2\n", 2, "unknown key 'reciever'");
	/* getopt would take an abbreviation; a file must spell keys out. */
	BAD("recv = a:1\n", 1, "unknown key 'recv'");
	/* --config inside a config would loop; --help is no setting. */
	BAD("config = /etc/x\n", 1, "unknown key 'config'");
	BAD("\nhelp = true\n", 2, "unknown key 'help'");
	BAD(" = value\n", 1, "unknown key ''");
	BAD("--once = true\n", 1, "unknown key '--once'");
}
END_TEST

START_TEST(test_conf_rejects_missing_equals)
{
	BAD("# ok\nreceiver 10.0.0.5:7480\n", 2, "expected 'key = value'");
	BAD("once\n", 1, "expected 'key = value'");
}
END_TEST

START_TEST(test_conf_rejects_overlong_line)
{
	size_t len = CONF_LINE_MAX + 1 + 2;
	char *text = malloc(len + 1);

	ck_assert_ptr_nonnull(text);
	memcpy(text, "#\n", 2);
	memset(text + 2, 'x', len - 2);
	memcpy(text + 2, "pre-cutover = ", 14);
	text[len] = '\0';
	expect_bad_line(text, len, 2, "line longer than 4095 characters");
	/* Exactly the limit is fine. */
	write_conf(text + 2, CONF_LINE_MAX, 0600);
	{
		char out[4096];
		char **e = NULL;
		unsigned *l = NULL;
		size_t n = 0;

		ck_assert_int_eq(parse_capture(&e, &l, &n, out, sizeof(out)), 0);
		ck_assert_uint_eq(n, 1);
		free_entries(e, n);
		free(l);
	}
	free(text);
}
END_TEST

START_TEST(test_conf_rejects_bad_boolean)
{
	BAD("once = maybe\n", 1, "once = maybe: expected true or false");
	BAD("once =\n", 1, "expected true or false");
	BAD("once = TRUE\n", 1, "expected true or false");
}
END_TEST

START_TEST(test_conf_rejects_empty_value_duplicate_and_nul)
{
	BAD("receiver =   \n", 1, "'receiver' needs a value");
	BAD("receiver = a:1\n\nreceiver = b:2\n", 3,
			"'receiver' given twice (first on line 1)");
	BAD("once = true\nreceiver = a\0b\n", 2, "NUL byte");
}
END_TEST

START_TEST(test_conf_refuses_unsafe_or_missing_files)
{
	char out[4096];
	char **e = NULL;
	unsigned *l = NULL;
	size_t n = 0;

	/* It can name a command run as root: nobody but root or us may be able to change it. */
	write_conf("once = true\n", 12, 0620);
	ck_assert_int_eq(parse_capture(&e, &l, &n, out, sizeof(out)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(out, "writable by group or others"));
	write_conf("once = true\n", 12, 0602);
	ck_assert_int_eq(parse_capture(&e, &l, &n, out, sizeof(out)), -EINVAL);
	unlink(path);
	ck_assert_int_eq(parse_capture(&e, &l, &n, out, sizeof(out)), -ENOENT);
	ck_assert_ptr_nonnull(strstr(out, "cannot read config"));
	ck_assert_int_eq(mkdir(path, 0700), 0);
	ck_assert_int_eq(parse_capture(&e, &l, &n, out, sizeof(out)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(out, "not a regular file"));
	rmdir(path);
}
END_TEST

/* The argv getopt then parses, as tern-agent and tern-receiver build it. */
START_TEST(test_conf_args_put_file_before_command_line)
{
	char cfg_opt[300];
	char *argv[] = { (char *)"run", (char *)"--disk", (char *)"x=/dev/x", cfg_opt, NULL };
	struct conf_args *ca = NULL;
	char where[300], want[300];
	int c, ndisk = 0, from_file = 0;

	snprintf(cfg_opt, sizeof(cfg_opt), "--conf=%s", path); /* an abbreviation counts */
	write_conf("receiver = a:1\ndisk = r=/dev/r\n", 31, 0600);
	ck_assert_int_eq(conf_args_build(4, argv, opts, O_CONFIG, "/nonexistent/default.conf",
					 repeatable, &ca), 0);
	ck_assert_int_eq(ca->argc, 6);
	ck_assert_int_eq(ca->nfile, 2);
	ck_assert_str_eq(ca->argv[0], "run");
	ck_assert_str_eq(ca->argv[1], "--receiver=a:1");
	ck_assert_str_eq(ca->argv[2], "--disk=r=/dev/r");
	ck_assert_ptr_null(ca->argv[6]);
	snprintf(want, sizeof(want), "%s:2", path);
	ck_assert_str_eq(conf_args_origin(ca, 2, where, sizeof(where)), want);
	ck_assert_ptr_null(conf_args_origin(ca, 3, where, sizeof(where)));
	while ((c = getopt_long(ca->argc, ca->argv, "h", opts, NULL)) != -1) {
		if (c != O_DISK)
			continue;
		ndisk++;
		from_file += conf_args_from_file(ca, optind - 1);
	}
	ck_assert_int_eq(ndisk, 2);
	ck_assert_int_eq(from_file, 1);
	conf_args_free(ca);
}
END_TEST

START_TEST(test_conf_args_default_file_is_optional_explicit_is_not)
{
	char *argv[] = { (char *)"run", (char *)"--once", NULL };
	char *argv_missing[] = { (char *)"run", (char *)"--config", (char *)"/nonexistent/x.conf", NULL };
	char *argv_two[] = { (char *)"run", (char *)"--config=a", (char *)"--config=b", NULL };
	char *argv_help[] = { (char *)"run", (char *)"--help", (char *)"--config", (char *)"/nonexistent/x", NULL };
	struct conf_args *ca = NULL;

	ck_assert_int_eq(conf_args_build(2, argv, opts, O_CONFIG, "/nonexistent/default.conf",
					 repeatable, &ca), 0);
	ck_assert_int_eq(ca->argc, 2);
	ck_assert_int_eq(ca->nfile, 0);
	ck_assert_ptr_null(ca->path);
	ca = conf_args_free(ca);
	/* The default, when it exists, is read. */
	write_conf("once = yes\n", 11, 0600);
	ck_assert_int_eq(conf_args_build(2, argv, opts, O_CONFIG, path, repeatable, &ca), 0);
	ck_assert_int_eq(ca->nfile, 1);
	ck_assert_str_eq(ca->path, path);
	ca = conf_args_free(ca);
	ck_assert_int_eq(conf_args_build(3, argv_missing, opts, O_CONFIG, path, repeatable, &ca),
			 -ENOENT);
	ck_assert_int_eq(conf_args_build(3, argv_two, opts, O_CONFIG, path, repeatable, &ca),
			 -EINVAL);
	/* --help reads nothing, so a broken config cannot hide the usage. */
	ck_assert_int_eq(conf_args_build(4, argv_help, opts, O_CONFIG, path, repeatable, &ca), 0);
	ck_assert_int_eq(ca->nfile, 0);
	conf_args_free(ca);
	ck_assert_ptr_null(conf_args_free(NULL));
}
END_TEST

static Suite *conf_suite(void)
{
	Suite *s = suite_create("conf");
	TCase *tc = tcase_create("parse");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_conf_parses_a_good_file);
	tcase_add_test(tc, test_conf_false_flag_and_empty_file_yield_nothing);
	tcase_add_test(tc, test_conf_rejects_unknown_key);
	tcase_add_test(tc, test_conf_rejects_missing_equals);
	tcase_add_test(tc, test_conf_rejects_overlong_line);
	tcase_add_test(tc, test_conf_rejects_bad_boolean);
	tcase_add_test(tc, test_conf_rejects_empty_value_duplicate_and_nul);
	tcase_add_test(tc, test_conf_refuses_unsafe_or_missing_files);
	tcase_add_test(tc, test_conf_args_put_file_before_command_line);
	tcase_add_test(tc, test_conf_args_default_file_is_optional_explicit_is_not);
	suite_add_tcase(s, tc);
	return s;
}

Suite *(*const t_suites[])(void) = { conf_suite, NULL };

// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests for common/util.c: the parsers (sizes, numbers, names, ID=PATH options), the
 * zero test, and the atomic file writes on real files in a temp dir. */
#include "common/util.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

START_TEST(test_util_parse_size_accepts)
{
	static const struct {
		const char *s;
		uint64_t v;
	} ok[] = {
		{ "10", 10 }, { "0", 0 }, { "64K", 64 << 10 }, { "64k", 64 << 10 },
		{ "1M", 1 << 20 }, { "1MB", 1 << 20 }, { "1MiB", 1 << 20 }, { "1mib", 1 << 20 },
		{ "1GiB", UINT64_C(1) << 30 }, { "2G", UINT64_C(2) << 30 }, { "1Ki", 1024 },
		{ "3T", UINT64_C(3) << 40 }, { "0K", 0 },
		{ "16777215T", UINT64_C(16777215) << 40 },
		{ "18446744073709551615", UINT64_MAX },
	};

	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		uint64_t v = 12345;

		ck_assert_msg(parse_size(ok[i].s, &v) == 0, "\"%s\" refused", ok[i].s);
		ck_assert_uint_eq(v, ok[i].v);
	}
}
END_TEST

START_TEST(test_util_parse_size_rejects)
{
	static const struct {
		const char *s;
		int err;
	} bad[] = {
		{ "", -EINVAL }, { "-1", -EINVAL }, { "1X", -EINVAL }, { "K", -EINVAL },
		{ "+1", -EINVAL }, { " 1", -EINVAL }, { "\t1", -EINVAL }, { "\t-1", -EINVAL },
		{ "\n-5K", -EINVAL }, { "1 K", -EINVAL }, { "1KiBx", -EINVAL }, { "1iB", -EINVAL },
		{ "1B", -EINVAL }, { "1.5M", -EINVAL }, { "0x10", -EINVAL }, { "1KK", -EINVAL },
		{ "99999999999T", -ERANGE }, { "16777216T", -ERANGE },
		{ "17179869184G", -ERANGE }, { "18446744073709551616", -ERANGE },
	};
	uint64_t v = 12345;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int r = parse_size(bad[i].s, &v);

		ck_assert_msg(r == bad[i].err, "\"%s\": got %d, want %d", bad[i].s, r, bad[i].err);
		ck_assert_uint_eq(v, 12345);
	}
	ck_assert_int_eq(parse_size(NULL, &v), -EINVAL);
}
END_TEST

START_TEST(test_util_parse_u64)
{
	uint64_t v = 7;

	ck_assert_int_eq(parse_u64("0", 0, UINT64_MAX, &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(parse_u64("18446744073709551615", 0, UINT64_MAX, &v), 0);
	ck_assert_uint_eq(v, UINT64_MAX);
	ck_assert_int_eq(parse_u64("6", 6, 10, &v), 0);
	ck_assert_uint_eq(v, 6);
	ck_assert_int_eq(parse_u64("10", 6, 10, &v), 0);
	ck_assert_uint_eq(v, 10);

	v = 7;
	ck_assert_int_eq(parse_u64("5", 6, 10, &v), -ERANGE);
	ck_assert_int_eq(parse_u64("11", 6, 10, &v), -ERANGE);
	ck_assert_int_eq(parse_u64("18446744073709551616", 0, UINT64_MAX, &v), -ERANGE);
	ck_assert_int_eq(parse_u64("", 0, 10, &v), -EINVAL);
	ck_assert_int_eq(parse_u64(NULL, 0, 10, &v), -EINVAL);
	ck_assert_int_eq(parse_u64("-1", 0, UINT64_MAX, &v), -EINVAL);
	ck_assert_int_eq(parse_u64("+1", 0, 10, &v), -EINVAL);
	ck_assert_int_eq(parse_u64(" 1", 0, 10, &v), -EINVAL);
	ck_assert_int_eq(parse_u64("\t1", 0, 10, &v), -EINVAL);
	ck_assert_int_eq(parse_u64("\t-1", 0, UINT64_MAX, &v), -EINVAL);
	ck_assert_int_eq(parse_u64("1a", 0, 10, &v), -EINVAL);
	ck_assert_int_eq(parse_u64("1K", 0, UINT64_MAX, &v), -EINVAL);
	ck_assert_int_eq(parse_u64("0x1", 0, 10, &v), -EINVAL);
	ck_assert_uint_eq(v, 7);
}
END_TEST

START_TEST(test_util_name_is_valid)
{
	static const char *const good[] = { "vda", "a", "A", "0", "disk-01", "a.b_c:d", "x.",
					    "sda1", "nvme0n1p2", "host:disk" };
	static const char *const bad[] = { "", ".x", "..", "-x", "a/b", "../x", "a b", "a\tb",
					   "a\n", "a=b", "a@b", "caf\xc3\xa9", "a\\b", "*" };
	char name[NAME_MAX_LEN + 2];

	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		ck_assert_msg(name_is_valid(good[i], strlen(good[i])), "\"%s\" refused", good[i]);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		ck_assert_msg(!name_is_valid(bad[i], strlen(bad[i])), "\"%s\" accepted", bad[i]);

	memset(name, 'n', sizeof(name));
	ck_assert(name_is_valid(name, NAME_MAX_LEN));
	ck_assert(!name_is_valid(name, NAME_MAX_LEN + 1));
	/* Only len bytes count; an embedded NUL inside them does not pass. */
	ck_assert(name_is_valid("ab/c", 2));
	ck_assert(!name_is_valid("ab/c", 3));
	ck_assert(!name_is_valid("a\0b", 3));
}
END_TEST

static int collect_opt(void *ud, const char *key, const char *value)
{
	char *out = ud;

	if (strcmp(key, "bad") == 0)
		return -ENOENT;
	snprintf(out + strlen(out), 256 - strlen(out), "[%s=%s]", key, value);
	return 0;
}

START_TEST(test_util_parse_id_path_opts)
{
	static const struct {
		const char *arg, *path, *opts;
	} ok[] = {
		{ "d=/srv/d.img", "/srv/d.img", "" },
		{ "d=/srv/a,b.img", "/srv/a,b.img", "" },
		{ "d=/srv/a=b,c.img", "/srv/a=b,c.img", "" },
		{ "d=/srv/d.img,max-size=10G", "/srv/d.img", "[max-size=10G]" },
		{ "d=/srv/a,b.img,max-size=1M,agent=x", "/srv/a,b.img", "[max-size=1M][agent=x]" },
	};
	static const char *const bad[] = {
		"d=/x,max-size=", "d=/x,max-size=1,", "d=/x,max-size=1,,agent=y",
		"d=/x,max-size=1,Agent=y", "d=/x,max-size=1,junk", "d=,max-size=1", "=/x", "d",
	};
	char out[256], *id, *path;

	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		out[0] = '\0';
		ck_assert_msg(parse_id_path_opts(ok[i].arg, &id, &path, collect_opt, out) == 0,
			      "\"%s\" refused", ok[i].arg);
		ck_assert_str_eq(id, "d");
		ck_assert_str_eq(path, ok[i].path);
		ck_assert_str_eq(out, ok[i].opts);
		free(id);
		free(path);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		out[0] = '\0';
		ck_assert_msg(parse_id_path_opts(bad[i], &id, &path, collect_opt, out) == -EINVAL,
			      "\"%s\" accepted", bad[i]);
	}
	/* The option handler's own refusal comes back as it is. */
	out[0] = '\0';
	ck_assert_int_eq(parse_id_path_opts("d=/x,bad=1", &id, &path, collect_opt, out), -ENOENT);
}
END_TEST

START_TEST(test_util_parse_id_path)
{
	static const char *const bad[] = { "", "=", "=/dev/vda", "vda=", "vda", "/dev/vda",
					   "a/b=/dev/vda", "../x=/dev/vda", ".x=/p", "-x=/p",
					   "a b=/p" };
	char long_arg[NAME_MAX_LEN + 16];
	char *id = (char *)"unset", *path = (char *)"unset";

	ck_assert_int_eq(parse_id_path("vda=/dev/vda", &id, &path), 0);
	ck_assert_str_eq(id, "vda");
	ck_assert_str_eq(path, "/dev/vda");
	free(id);
	free(path);
	/* Only the first '=' splits; the path may hold more. */
	ck_assert_int_eq(parse_id_path("root:0=/srv/a=b.img", &id, &path), 0);
	ck_assert_str_eq(id, "root:0");
	ck_assert_str_eq(path, "/srv/a=b.img");
	free(id);
	free(path);

	id = path = (char *)"unset";
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		ck_assert_msg(parse_id_path(bad[i], &id, &path) == -EINVAL, "\"%s\" accepted", bad[i]);
		ck_assert_str_eq(id, "unset");
		ck_assert_str_eq(path, "unset");
	}
	memset(long_arg, 'i', NAME_MAX_LEN + 1);
	strcpy(long_arg + NAME_MAX_LEN + 1, "=/dev/x");
	ck_assert_int_eq(parse_id_path(long_arg, &id, &path), -EINVAL);
	strcpy(long_arg + NAME_MAX_LEN, "=/dev/x");
	ck_assert_int_eq(parse_id_path(long_arg, &id, &path), 0);
	ck_assert_uint_eq(strlen(id), NAME_MAX_LEN);
	free(id);
	free(path);
}
END_TEST

START_TEST(test_util_mem_is_zero_all_zero)
{
	_Alignas(64) uint8_t area[512];

	memset(area, 0, sizeof(area));
	for (size_t off = 0; off < 9; off++) {
		for (size_t len = 0; len <= 300; len++)
			ck_assert_msg(mem_is_zero(area + off, len), "off %zu len %zu", off, len);
	}
}
END_TEST

/* A single nonzero byte anywhere in an unaligned 200-byte buffer is found; bytes just
 * outside the buffer are not looked at. */
START_TEST(test_util_mem_is_zero_finds_any_byte)
{
	_Alignas(64) uint8_t area[512];
	size_t len = 200;

	for (size_t off = 1; off < 9; off += 2) {
		uint8_t *p = area + off;

		memset(area, 0, sizeof(area));
		p[-1] = 0xff;
		p[len] = 0xff;
		ck_assert(mem_is_zero(p, len));
		for (size_t pos = 0; pos < len; pos++) {
			p[pos] = (uint8_t)(pos & 1 ? 0x80 : 0x01);
			ck_assert_msg(!mem_is_zero(p, len), "off %zu pos %zu", off, pos);
			p[pos] = 0;
		}
		ck_assert(mem_is_zero(p, len));
	}
}
END_TEST

START_TEST(test_util_mem_is_zero_chunk)
{
	size_t n = 1u << 20;
	uint8_t *p = alloc_aligned(4096, n);

	ck_assert_ptr_nonnull(p);
	ck_assert(mem_is_zero(p, n));
	for (size_t pos = 0; pos < n; pos += 4093) {
		p[pos] = 1;
		ck_assert_msg(!mem_is_zero(p, n), "pos %zu", pos);
		p[pos] = 0;
	}
	p[n - 1] = 1;
	ck_assert(!mem_is_zero(p, n));
	ck_assert(mem_is_zero(p, n - 1));
	free(p);
}
END_TEST

static char tmpdir[PATH_MAX];

static void tmpdir_setup(void)
{
	t_mkdtemp(tmpdir, "util");
}

static void tmpdir_teardown(void)
{
	t_rmtree(tmpdir);
}

/* Names in tmpdir, sorted, joined by spaces. */
static const char *dir_names(char *out, size_t cap)
{
	struct dirent **list;
	int n = scandir(tmpdir, &list, NULL, alphasort);
	size_t used = 0;

	ck_assert_int_ge(n, 0);
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		const char *name = list[i]->d_name;

		if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0)
			used += (size_t)snprintf(out + used, cap - used, "%s%s", used ? " " : "", name);
		free(list[i]);
	}
	free(list);
	ck_assert_uint_lt(used, cap);
	return out;
}

static void join(char *out, const char *name)
{
	ck_assert_int_lt(snprintf(out, PATH_MAX, "%s/%s", tmpdir, name), PATH_MAX);
}

static void assert_file(const char *path, const char *content, unsigned mode)
{
	char *data = NULL;
	size_t len = 0;
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, mode);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_int_eq(read_file_all(path, 1 << 20, &data, &len), 0);
	ck_assert_uint_eq(len, strlen(content));
	ck_assert_str_eq(data, content);
	free(data);
}

START_TEST(test_util_write_file_atomic_creates_with_mode)
{
	static const unsigned modes[] = { 0600, 0640, 0644, 0400, 0755 };
	char path[PATH_MAX], names[512];

	join(path, "state.conf");
	/* fchmod, not the umask, decides the mode. */
	umask(077);
	for (size_t i = 0; i < ARRAY_SIZE(modes); i++) {
		char content[64];

		snprintf(content, sizeof(content), "generation %zu\n", i);
		ck_assert_int_eq(write_file_atomic(path, content, strlen(content), modes[i]), 0);
		assert_file(path, content, modes[i]);
		/* Only the target is left: no temp file beside it. */
		ck_assert_str_eq(dir_names(names, sizeof(names)), "state.conf");
	}
	ck_assert_int_eq(write_file_atomic(path, "", 0, 0600), 0);
	assert_file(path, "", 0600);
}
END_TEST

START_TEST(test_util_write_file_atomic_failure_leaves_nothing)
{
	char path[PATH_MAX], names[512];

	join(path, "missing/dir/file");
	ck_assert_int_eq(write_file_atomic(path, "x", 1, 0600), -ENOENT);
	ck_assert_str_eq(dir_names(names, sizeof(names)), "");

	/* The rename onto a directory fails after the temp file was written. */
	join(path, "adir");
	ck_assert_int_eq(mkdir(path, 0700), 0);
	ck_assert_int_eq(write_file_atomic(path, "x", 1, 0600), -EISDIR);
	ck_assert_str_eq(dir_names(names, sizeof(names)), "adir");
}
END_TEST

static Suite *util_suite(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("parse");
	TCase *files = tcase_create("files");

	tcase_add_test(tc, test_util_parse_size_accepts);
	tcase_add_test(tc, test_util_parse_size_rejects);
	tcase_add_test(tc, test_util_parse_u64);
	tcase_add_test(tc, test_util_name_is_valid);
	tcase_add_test(tc, test_util_parse_id_path);
	tcase_add_test(tc, test_util_parse_id_path_opts);
	tcase_add_test(tc, test_util_mem_is_zero_all_zero);
	tcase_add_test(tc, test_util_mem_is_zero_finds_any_byte);
	tcase_add_test(tc, test_util_mem_is_zero_chunk);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(files, tmpdir_setup, tmpdir_teardown);
	tcase_add_test(files, test_util_write_file_atomic_creates_with_mode);
	tcase_add_test(files, test_util_write_file_atomic_failure_leaves_nothing);
	suite_add_tcase(s, files);
	return s;
}

Suite *(*const t_suites[])(void) = { util_suite, NULL };

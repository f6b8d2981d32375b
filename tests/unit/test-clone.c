// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests for receiver/clone.c (copy-on-write clones of targets) and boot_is_uefi of
 * receiver/boot.c, on real temp files: a copy keeps every byte and every hole, a clone
 * never overwrites, a reflink where the file system has one, a thin snapshot's removal
 * refuses names tern did not give (the snapshots themselves are tested in the VM:
 * tests/vm/guest-50-thin.sh); a GPT is recognised by its EFI system partition, and a
 * hostile header is not trusted. */
#include "receiver/boot.h"
#include "receiver/clone.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "helpers.h"

static char dir[PATH_MAX], src[256], dst[256];

static void setup(void)
{
	t_mkdtemp(dir, "clone");
	ck_assert_int_lt(snprintf(src, sizeof(src), "%s/src.img", dir), (int)sizeof(src));
	ck_assert_int_lt(snprintf(dst, sizeof(dst), "%s/dst.img", dir), (int)sizeof(dst));
}

static void teardown(void)
{
	t_rmtree(dir);
}

/* A sparse file of size bytes with random data in [off, off + len) pairs. */
static void make_sparse(const char *path, uint64_t size, const uint64_t *ranges, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	uint8_t buf[65536];

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	for (size_t i = 0; i < n; i += 2) {
		for (uint64_t o = ranges[i]; o < ranges[i] + ranges[i + 1]; o += sizeof(buf)) {
			size_t k = (size_t)MIN((uint64_t)sizeof(buf), ranges[i] + ranges[i + 1] - o);

			for (size_t j = 0; j < k; j++)
				buf[j] = (uint8_t)(rand() | 1); /* never zero: data, not a hole */
			ck_assert_int_eq(pwrite_full(fd, buf, k, o), 0);
		}
	}
	close(fd);
}

static bool same_bytes(const char *a, const char *b)
{
	char cmd[1200];

	snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", a, b);
	return system(cmd) == 0;
}

START_TEST(test_clone_copy_keeps_bytes_and_holes)
{
	const uint64_t ranges[] = { 0, 1 << 20, 10 << 20, 2 << 20, (64 << 20) - 4096, 4101 };
	struct clone_result r;
	struct stat a, b;
	char why[512];

	make_sparse(src, (64 << 20) + 5, ranges, 6);
	ck_assert_int_eq(clone_file(src, dst, true, &r, why, sizeof(why)), 0);
	ck_assert_int_eq(r.how, CLONE_COPY);
	ck_assert_uint_eq(r.size, (64 << 20) + 5);
	ck_assert_str_eq(r.path, dst);
	/* Said before the copy: what and how much. */
	ck_assert_ptr_nonnull(strstr(r.warning, "copying"));
	ck_assert(same_bytes(src, dst));
	/* Only the data was copied: the 61 MiB hole stays a hole. */
	ck_assert_uint_ge(r.copied, (3 << 20) + 4101);
	ck_assert_uint_lt(r.copied, 8 << 20);
	ck_assert_int_eq(stat(src, &a), 0);
	ck_assert_int_eq(stat(dst, &b), 0);
	ck_assert_int_le(b.st_blocks, a.st_blocks + 2048);
	ck_assert_int_eq(b.st_mode & 0777, 0600);
}
END_TEST

START_TEST(test_clone_reflink_where_possible_else_copy)
{
	const uint64_t ranges[] = { 4096, 1 << 20 };
	struct clone_result r;
	char why[512];

	make_sparse(src, 8 << 20, ranges, 2);
	ck_assert_int_eq(clone_file(src, dst, false, &r, why, sizeof(why)), 0);
	ck_assert(same_bytes(src, dst));
	if (r.how == CLONE_REFLINK) {
		ck_assert_uint_eq(r.copied, 0);
		ck_assert_str_eq(r.warning, "");
	} else {
		ck_assert_ptr_nonnull(strstr(r.warning, "no reflink on this file system"));
	}
	/* clone_reflink gives a reflink or nothing: never a copy. */
	unlink(dst);
	if (clone_reflink(src, dst, &r, why, sizeof(why)) == 0)
		ck_assert_int_eq(r.how, CLONE_REFLINK);
	else
		ck_assert_int_eq(access(dst, F_OK), -1);
}
END_TEST

START_TEST(test_clone_never_overwrites)
{
	const uint64_t ranges[] = { 0, 65536 };
	struct clone_result r;
	char why[512];
	int fd;

	make_sparse(src, 1 << 20, ranges, 2);
	fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "keep", 4), 4);
	close(fd);
	ck_assert_int_eq(clone_file(src, dst, true, &r, why, sizeof(why)), -EEXIST);
	ck_assert_ptr_nonnull(strstr(why, dst));
	/* Refused, and the file there is as it was. */
	ck_assert_int_eq(access(dst, F_OK), 0);
	{
		struct stat st;

		ck_assert_int_eq(stat(dst, &st), 0);
		ck_assert_int_eq(st.st_size, 4);
	}
	ck_assert_int_eq(clone_file("/nonexistent/tern", dst, true, &r, why, sizeof(why)), -ENOENT);
	ck_assert_ptr_nonnull(strstr(why, "cannot open"));
}
END_TEST

START_TEST(test_clone_target_goes_under_the_launch_dir)
{
	const uint64_t ranges[] = { 0, 65536 };
	struct clone_result r;
	char launch[300], want[400], why[512];

	make_sparse(src, 1 << 20, ranges, 2);
	ck_assert_int_lt(snprintf(launch, sizeof(launch), "%s/launch", dir), (int)sizeof(launch));
	ck_assert_int_eq(mkdir(launch, 0700), 0);
	ck_assert_int_eq(clone_target(src, launch, "web1/20260101-000000", "d.img", &r, why,
				      sizeof(why)), 0);
	/* Same file system as the target: in the launch dir, whichever way it was made. */
	snprintf(want, sizeof(want), "%s/web1/20260101-000000/d.img", launch);
	ck_assert_str_eq(r.path, want);
	ck_assert(same_bytes(src, want));
	/* A second clone of the same name is refused, not overwritten. */
	ck_assert_int_eq(clone_target(src, launch, "web1/20260101-000000", "d.img", &r, why,
				      sizeof(why)), -EEXIST);
}
END_TEST

START_TEST(test_clone_thin_remove_refuses_what_tern_did_not_make)
{
	/* Refused by name, before lvm is run at all: what a clones file restored from
	 * elsewhere, or edited, could name besides a snapshot tern made. */
	static const char *const bad[] = { "vg", "vg/", "/tern-x", "vg/lv", "vg/root",
					   "-vg/tern-x", "vg/tern-x/y", "vg/tern-x;reboot",
					   "vg/tern-x y", "../vg/tern-x", "vg/tern-$(id)", "" };
	char why[512];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		ck_assert_msg(clone_thin_remove(bad[i], why, sizeof(why)) == -EINVAL, "%s", bad[i]);
		ck_assert_ptr_nonnull(strstr(why, "not the name of a snapshot tern made"));
	}
	ck_assert_str_eq(clone_how_name(CLONE_THIN), "thin-snapshot");
	ck_assert_str_eq(clone_how_name(CLONE_COPY), "copy");
}
END_TEST

/* A raw disk with a GPT at LBA 1 (512-byte sectors), entries at LBA 2. */
static void make_gpt(const char *path, const uint8_t *type, uint32_t count, uint32_t esize)
{
	uint8_t hdr[512] = "EFI PART", ent[128] = { 0 };
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 1 << 20), 0);
	hdr[72] = 2; /* partition entries' LBA, little endian */
	memcpy(hdr + 80, &count, 4);
	memcpy(hdr + 84, &esize, 4);
	ck_assert_int_eq(pwrite_full(fd, hdr, sizeof(hdr), 512), 0);
	memcpy(ent, type, 16);
	ck_assert_int_eq(pwrite_full(fd, ent, sizeof(ent), 1024 + 128), 0); /* entry 2 */
	close(fd);
}

START_TEST(test_boot_is_uefi_finds_the_esp)
{
	static const uint8_t esp[16] = { 0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11,
					 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b };
	static const uint8_t linux_fs[16] = { 0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47,
					      0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4 };

	make_gpt(src, esp, 128, 128);
	ck_assert_int_eq(boot_is_uefi(src), 1);
	make_gpt(src, linux_fs, 128, 128);
	ck_assert_int_eq(boot_is_uefi(src), 0);
	/* Hostile headers: entries counted past any real table, or of absurd size. */
	make_gpt(src, esp, 1u << 30, 128);
	ck_assert_int_eq(boot_is_uefi(src), 0);
	make_gpt(src, esp, 128, 1u << 31);
	ck_assert_int_eq(boot_is_uefi(src), 0);
	/* No GPT at all (an MBR disk, or nothing). */
	make_sparse(src, 1 << 20, NULL, 0);
	ck_assert_int_eq(boot_is_uefi(src), 0);
	ck_assert_int_eq(boot_is_uefi("/nonexistent/tern"), -ENOENT);
}
END_TEST

static Suite *clone_suite(void)
{
	Suite *s = suite_create("clone");
	TCase *tc = tcase_create("clone");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_clone_copy_keeps_bytes_and_holes);
	tcase_add_test(tc, test_clone_reflink_where_possible_else_copy);
	tcase_add_test(tc, test_clone_never_overwrites);
	tcase_add_test(tc, test_clone_target_goes_under_the_launch_dir);
	tcase_add_test(tc, test_clone_thin_remove_refuses_what_tern_did_not_make);
	tcase_add_test(tc, test_boot_is_uefi_finds_the_esp);
	suite_add_tcase(s, tc);
	return s;
}

Suite *(*const t_suites[])(void) = { clone_suite, NULL };

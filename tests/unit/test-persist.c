// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests for agent/persist.c: a tracker's saved pending set round-trips through its
 * state file; torn, garbled, unsealed and wrong-disk states and file systems written since
 * the seal are refused with the reason; the seal's plan round-trips and a plan that does
 * not cover the file is refused; an ext4 superblock's write evidence is read. */
#include "agent/persist.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

#define NB 1000u /* not a multiple of 64: the last word is partial */

static struct pst_state sample(void)
{
	struct pst_state s = { .sealed = true, .acked_epoch = 41, .nblocks = NB };

	snprintf(s.ident.id, sizeof(s.ident.id), "disk-1");
	s.ident.disk_size = 1 << 30;
	s.ident.start_sector = 2048;
	s.ident.src_size = (uint64_t)NB * 4096 - 512;
	s.ident.block_size = 4096;
	snprintf(s.ident.disk_key, sizeof(s.ident.disk_key), "naa.600a0b80001234");
	memset(s.ident.gpt_guid, 0x5a, 16);
	s.ident.nfs = 2;
	s.ident.fs[0] = (struct pst_fs){ .start_sector = 2048, .kind = PST_FS_EXT4, .state = 1,
					 .mnt_count = 7, .wtime = 1700000000,
					 .kbytes_written = 123456 };
	memset(s.ident.fs[0].uuid, 0x11, 16);
	s.ident.fs[1] = s.ident.fs[0];
	s.ident.fs[1].start_sector = 1 << 20;
	s.ident.fs[1].uuid[0] = 0x22;
	s.pending = calloc((NB + 63) / 64, 8);
	ck_assert_ptr_nonnull(s.pending);
	for (unsigned b = 0; b < NB; b += 37)
		s.pending[b / 64] |= UINT64_C(1) << (b % 64);
	s.pending[(NB - 1) / 64] |= UINT64_C(1) << ((NB - 1) % 64);
	return s;
}

static void *encode(const struct pst_state *s, size_t *ret_len)
{
	size_t len = pst_encoded_len(s->nblocks);
	void *buf = malloc(len);

	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(pst_encode(s, buf, len), 0);
	*ret_len = len;
	return buf;
}

/* Decoding buf must fail with -EBADMSG and a reason holding want. */
static void refused(const void *buf, size_t len, const char *want)
{
	struct pst_state d = { 0 };
	char why[256] = "";

	ck_assert_int_eq(pst_decode(buf, len, &d, why, sizeof(why)), -EBADMSG);
	ck_assert_msg(strstr(why, want), "reason '%s' lacks '%s'", why, want);
	ck_assert_ptr_null(d.pending);
}

static void distrusted(const struct pst_state *saved, const struct pst_ident *now,
		       const char *want)
{
	char why[256] = "";

	ck_assert_int_eq(pst_trust(saved, now, why, sizeof(why)), -ESTALE);
	ck_assert_msg(strstr(why, want), "reason '%s' lacks '%s'", why, want);
}

START_TEST(test_persist_round_trip)
{
	struct pst_state s = sample(), d = { 0 };
	char why[256] = "";
	size_t len;
	void *buf = encode(&s, &len);

	ck_assert_uint_eq(len % 4096, 0);
	ck_assert_int_eq(pst_decode(buf, len, &d, why, sizeof(why)), 0);
	ck_assert(d.sealed);
	ck_assert_uint_eq(d.acked_epoch, 41);
	ck_assert_uint_eq(d.nblocks, NB);
	ck_assert_mem_eq(&d.ident, &s.ident, sizeof(d.ident));
	ck_assert_mem_eq(d.pending, s.pending, (NB + 63) / 64 * 8);
	/* The disk as it is now, the same: trusted. */
	ck_assert_int_eq(pst_trust(&d, &s.ident, why, sizeof(why)), 0);
	pst_state_clear(&d);
	pst_state_clear(&s);
	pst_state_clear(&s); /* twice: NULL-safe */
	free(buf);
}
END_TEST

START_TEST(test_persist_torn_and_garbled_refused)
{
	struct pst_state s = sample();
	uint8_t *b;
	size_t len;

	b = encode(&s, &len);
	refused(b, 100, "torn");
	refused(b, len - 4096, "torn");
	b[20] ^= 1; /* the id */
	refused(b, len, "header's checksum");
	b[20] ^= 1;
	b[4096 + 3] ^= 0x40; /* the pending set */
	refused(b, len, "pending set's checksum");
	b[4096 + 3] ^= 0x40;
	b[0] = 'X';
	refused(b, len, "bad magic");
	free(b);
	/* A pending set marking blocks the source does not have, checksums right. */
	s.pending[(NB - 1) / 64] |= UINT64_C(1) << 63;
	b = encode(&s, &len);
	refused(b, len, "past the end");
	free(b);
	pst_state_clear(&s);
}
END_TEST

START_TEST(test_persist_untrusted_states_refused)
{
	struct pst_state s = sample();
	struct pst_ident now = s.ident;

	s.sealed = false;
	distrusted(&s, &now, "not sealed");
	s.sealed = true;
	snprintf(now.id, sizeof(now.id), "disk-2");
	distrusted(&s, &now, "saved for disk disk-1, not disk-2");
	now = s.ident;
	now.disk_key[0] = 'x';
	distrusted(&s, &now, "another disk");
	now = s.ident;
	now.gpt_guid[3] ^= 1;
	distrusted(&s, &now, "another disk");
	now = s.ident;
	now.disk_size += 4096;
	distrusted(&s, &now, "another disk");
	now = s.ident;
	now.start_sector = 4096;
	distrusted(&s, &now, "another range");
	now = s.ident;
	now.block_size = 8192;
	distrusted(&s, &now, "another range");
	/* Another system mounted a file system read-write in between. */
	now = s.ident;
	now.fs[1].mnt_count++;
	distrusted(&s, &now, "was written since the seal");
	now = s.ident;
	now.fs[0].kbytes_written += 4;
	distrusted(&s, &now, "was written since the seal");
	now = s.ident;
	now.fs[0].uuid[5] ^= 1;
	distrusted(&s, &now, "not the one sealed");
	now = s.ident;
	now.nfs = 1;
	distrusted(&s, &now, "1 file systems, 2 when sealed");
	/* XFS's evidence is not read; no ext4 at all leaves nothing to show a write. */
	now = s.ident;
	s.ident.fs[1].kind = now.fs[1].kind = PST_FS_XFS;
	distrusted(&s, &now, "XFS");
	s.ident.nfs = now.nfs = 0;
	distrusted(&s, &now, "no ext4 file system");
	pst_state_clear(&s);
}
END_TEST

START_TEST(test_persist_save_load_and_plan)
{
	struct pst_state s = sample(), d = { 0 };
	struct pst_plan p = { 0 }, q = { 0 };
	char dir[PATH_MAX], path[PATH_MAX], plan[PATH_MAX], why[256] = "";
	int r;

	t_mkdtemp(dir, "persist");
	t_path(path, dir, "disk-1.state");
	t_path(plan, dir, "disk-1.plan");
	r = pst_save(path, &s, &p, why, sizeof(why));
	if (r == -EOPNOTSUPP) {
		/* $TMPDIR on tmpfs has no FIEMAP: the load still round-trips. */
		ck_assert_msg(strstr(why, "FIEMAP") || strstr(why, "not on a disk"), "%s", why);
	} else {
		ck_assert_msg(r == 0, "pst_save: %s", why);
		ck_assert_uint_eq(p.len, pst_encoded_len(NB));
		ck_assert_uint_ge(p.n, 1);
		ck_assert_int_eq(pst_plan_write(plan, &p), 0);
		ck_assert_int_eq(pst_plan_read(plan, &q, why, sizeof(why)), 0);
		ck_assert_mem_eq(&p, &q, sizeof(p));
		/* Saved again at the same length: overwritten where it was. */
		s.acked_epoch = 42;
		ck_assert_int_eq(pst_save(path, &s, &q, why, sizeof(why)), 0);
		ck_assert_mem_eq(&p, &q, sizeof(p));
	}
	ck_assert_int_eq(pst_load(path, &d, why, sizeof(why)), 0);
	ck_assert_mem_eq(d.pending, s.pending, (NB + 63) / 64 * 8);
	ck_assert_uint_eq(d.acked_epoch, s.acked_epoch);
	pst_state_clear(&d);
	/* A torn file (a crash in the middle of a save) is refused. */
	ck_assert_int_eq(truncate(path, 4096 + 100), 0);
	ck_assert_int_eq(pst_load(path, &d, why, sizeof(why)), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(why, "torn"));
	t_path(path, dir, "absent.state");
	ck_assert_int_eq(pst_load(path, &d, why, sizeof(why)), -ENOENT);
	pst_state_clear(&s);
	t_rmtree(dir);
}
END_TEST

static void plan_refused(const char *dir, const char *text, const char *want)
{
	struct pst_plan p = { 0 };
	char path[PATH_MAX], why[256] = "";

	t_path(path, dir, "bad.plan");
	t_write_text(path, text);
	ck_assert_int_eq(pst_plan_read(path, &p, why, sizeof(why)), -EBADMSG);
	ck_assert_msg(strstr(why, want), "reason '%s' lacks '%s'", why, want);
}

START_TEST(test_persist_bad_plans_refused)
{
	char dir[PATH_MAX];

	t_mkdtemp(dir, "plan");
	plan_refused(dir, "tern-seal 2\ndisk 8:0\nlength 8192\nextent 0 0 8192\n", "not a seal");
	plan_refused(dir, "tern-seal 1\ndisk 8\nlength 8192\nextent 0 0 8192\n", "MAJ:MIN");
	plan_refused(dir, "tern-seal 1\ndisk 8:0\nlength 8000\nextent 0 0 8000\n", "4 KiB");
	/* A gap, an overlap, a length past the file, an unaligned disk offset, too short. */
	plan_refused(dir, "tern-seal 1\ndisk 8:0\nlength 8192\nextent 0 0 4096\n"
		     "extent 8192 4096 4096\n", "cover");
	plan_refused(dir, "tern-seal 1\ndisk 8:0\nlength 8192\nextent 0 0 4096\n"
		     "extent 0 4096 4096\n", "cover");
	plan_refused(dir, "tern-seal 1\ndisk 8:0\nlength 8192\nextent 0 0 12288\n", "cover");
	plan_refused(dir, "tern-seal 1\ndisk 8:0\nlength 8192\nextent 0 512 8192\n", "cover");
	plan_refused(dir, "tern-seal 1\ndisk 8:0\nlength 8192\nextent 0 0 4096\n", "cover");
	plan_refused(dir, "tern-seal 1\ndisk 8:0\nlength 8192\nextent 0 0 8192 junk\n",
		     "expected extent");
	t_rmtree(dir);
}
END_TEST

/* An ext4 superblock's evidence from a real mkfs.ext4 image when the tool is here, and
 * from crafted bytes always. */
START_TEST(test_persist_reads_ext4_evidence)
{
	uint8_t sb[8192] = { 0 };
	struct pst_fs f = { 0 };
	char path[PATH_MAX], cmd[2 * PATH_MAX + 128];
	int fd;

	fd = t_mkstemp(path, "fs");
	sb[4096 + 1024 + 0x38] = 0x53;
	sb[4096 + 1024 + 0x39] = 0xef;
	sb[4096 + 1024 + 0x34] = 9;            /* s_mnt_count */
	sb[4096 + 1024 + 0x3a] = 1;            /* s_state: clean */
	sb[4096 + 1024 + 0x178] = 0x10;        /* s_kbytes_written */
	sb[4096 + 1024 + 0x68] = 0xab;         /* s_uuid */
	ck_assert_int_eq(pwrite(fd, sb, sizeof(sb), 0), (ssize_t)sizeof(sb));
	ck_assert_int_eq(pst_read_fs(fd, 0, &f), 0);  /* nothing at sector 0 */
	ck_assert_int_eq(pst_read_fs(fd, 8, &f), 1);
	ck_assert_uint_eq(f.kind, PST_FS_EXT4);
	ck_assert_uint_eq(f.start_sector, 8);
	ck_assert_uint_eq(f.mnt_count, 9);
	ck_assert_uint_eq(f.state, 1);
	ck_assert_uint_eq(f.kbytes_written, 0x10);
	ck_assert_uint_eq(f.uuid[0], 0xab);
	memcpy(sb, "XFSB", 4);
	ck_assert_int_eq(pwrite(fd, sb, 4096, 0), 4096);
	ck_assert_int_eq(pst_read_fs(fd, 0, &f), 1);
	ck_assert_uint_eq(f.kind, PST_FS_XFS);
	close(fd);
	snprintf(cmd, sizeof(cmd), "command -v mkfs.ext4 >/dev/null && truncate -s 32M %s && "
		 "mkfs.ext4 -q -F -U 01234567-89ab-cdef-0123-456789abcdef %s", path, path);
	if (system(cmd) == 0) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(pst_read_fs(fd, 0, &f), 1);
		ck_assert_uint_eq(f.kind, PST_FS_EXT4);
		ck_assert_uint_eq(f.uuid[0], 0x01);
		ck_assert_uint_eq(f.uuid[15], 0xef);
		ck_assert_uint_eq(f.mnt_count, 0);
		close(fd);
	}
	unlink(path);
}
END_TEST

static Suite *persist_suite(void)
{
	Suite *s = suite_create("persist");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_persist_round_trip);
	tcase_add_test(tc, test_persist_torn_and_garbled_refused);
	tcase_add_test(tc, test_persist_untrusted_states_refused);
	tcase_add_test(tc, test_persist_save_load_and_plan);
	tcase_add_test(tc, test_persist_bad_plans_refused);
	tcase_add_test(tc, test_persist_reads_ext4_evidence);
	suite_add_tcase(s, tc);
	return s;
}

Suite *(*const t_suites[])(void) = { persist_suite, NULL };

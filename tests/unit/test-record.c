// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests for receiver/record.c, on real files in a state dir under $TMPDIR: every
 * field of a record and every fingerprint comes back as saved; a torn, garbled or
 * oversized record and a fingerprints file of the wrong size are refused with -errno and
 * change nothing; a save replaces the old file whole; the reconcile read fingerprints a
 * real target; a checkpoint comes back as saved and a torn, garbled or foreign one is
 * refused whole; the queries over all records see what the records say. */
#include "receiver/record.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fp.h"
#include "common/util.h"
#include "helpers.h"

static char dir[512];
static char disks[600];

static void setup(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/tern-test-record.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(disks, sizeof(disks), "%s/disks", dir);
}

static void teardown(void)
{
	char cmd[700];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* A record with every field set to something other than its default. */
static void full_record(struct disk_record *rec, const char *id, const char *agent)
{
	memset(rec, 0, sizeof(*rec));
	rec->present = true;
	rec->verified = true;
	rec->cut_over = true;
	rec->size = (UINT64_C(1) << 40) + 4097;
	rec->chunk_size = 1 << 20;
	rec->epoch = UINT64_MAX - 2;
	for (size_t i = 0; i < FP_LEN; i++)
		rec->root.b[i] = (uint8_t)(0xf0 + i * 7);
	snprintf(rec->disk, sizeof(rec->disk), "%s", id);
	snprintf(rec->agent, sizeof(rec->agent), "%s", agent);
	snprintf(rec->target, sizeof(rec->target), "%s/targets/%s with space=and,comma.img", dir, id);
	memset(rec->event, 'e', sizeof(rec->event) - 1);
	memcpy(rec->event, "2026-01-01T00:00:00Z: ", 22);
}

static void path_of(const char *id, const char *suffix, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s%s", disks, id, suffix);
}

static char *slurp(const char *path, size_t *ret_len)
{
	char *text = NULL;

	ck_assert_int_eq(read_file_all(path, 1 << 20, &text, ret_len), 0);
	return text;
}

static void spew(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write_full(fd, data, len), 0);
	close(fd);
}

static unsigned count_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	unsigned n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

START_TEST(test_record_round_trips_every_field)
{
	struct disk_record in, out;
	char path[700], *text;
	struct stat st;

	/* No record yet: not an error, and nothing present. */
	memset(&out, 0xa5, sizeof(out));
	ck_assert_int_eq(rec_load(dir, "root", &out), 0);
	ck_assert(!out.present && out.size == 0 && !out.agent[0]);

	full_record(&in, "root", "db-2.example:primary");
	ck_assert_int_eq(rec_save(dir, &in), 0);
	memset(&out, 0xa5, sizeof(out));
	ck_assert_int_eq(rec_load(dir, "root", &out), 0);
	ck_assert_mem_eq(&out, &in, sizeof(in));
	path_of("root", ".state", path, sizeof(path));
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	ck_assert_int_eq(stat(disks, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0700);

	/* A copy in progress: no root, no event, epoch 0, a disk of one short chunk. */
	memset(&in, 0, sizeof(in));
	in.present = true;
	in.size = 1;
	in.chunk_size = 4096;
	snprintf(in.disk, sizeof(in.disk), "d");
	snprintf(in.agent, sizeof(in.agent), "a");
	snprintf(in.target, sizeof(in.target), "/t");
	ck_assert_int_eq(rec_save(dir, &in), 0);
	memset(&out, 0xa5, sizeof(out));
	ck_assert_int_eq(rec_load(dir, "d", &out), 0);
	ck_assert_mem_eq(&out, &in, sizeof(in));
	/* The format as an operator's grep and ternctl see it. */
	path_of("d", ".state", path, sizeof(path));
	text = slurp(path, NULL);
	ck_assert_str_eq(text,
			 "disk=d\nagent=a\ntarget=/t\nsize=1\nchunk_size=4096\nchunks=1\nepoch=0\n"
			 "root=-\nverified=0\ncutover=0\nevent=\n");
	free(text);
}
END_TEST

/* Every damaged form of a good record is refused with err, leaves ret as it was and the
 * file as it is. */
static void expect_refused(const char *id, const void *text, size_t len, int err)
{
	struct disk_record out, pattern;
	char path[700], owner[64] = "unset";
	size_t after_len;
	char *after;

	path_of(id, ".state", path, sizeof(path));
	spew(path, text, len);
	memset(&out, 0xa5, sizeof(out));
	pattern = out;
	ck_assert_int_eq(rec_load(dir, id, &out), err);
	ck_assert_mem_eq(&out, &pattern, sizeof(out));
	/* Whose target it is cannot be known: not "nobody's". */
	ck_assert_int_eq(rec_owner(dir, id, owner, sizeof(owner)), err);
	ck_assert_str_eq(owner, "unset");
	after = slurp(path, &after_len);
	ck_assert_uint_eq(after_len, len);
	ck_assert_mem_eq(after, text, len);
	free(after);
}

START_TEST(test_record_refuses_torn_garbled_oversized)
{
	static const char *const garbled[] = {
		"future=1\n",                  /* a key it does not know */
		"size=5\n",                    /* a key twice */
		"=\n", "no equals sign\n", "\n", /* not key=value */
	};
	static const struct { const char *from, *to; } edits[] = {
		{ "size=1099511631873\n", "size=-1\n" },
		{ "size=1099511631873\n", "size= 1099511631873\n" },
		{ "epoch=18446744073709551613\n", "epoch=18446744073709551614\n" },
		{ "epoch=18446744073709551613\n", "epoch=018446744073709551613\n" },
		{ "chunk_size=1048576\n", "chunk_size=1000\n" },
		{ "chunks=1048577\n", "chunks=1048576\n" },
		{ "verified=1\n", "verified=yes\n" },
		{ "cutover=1\n", "cutover=2\n" },
		{ "verified=1\n", "verified=0\n" },   /* a root, yet not verified */
		{ "agent=web1\n", "agent=.x\n" },
		{ "agent=web1\n", "agent=web1\r\n" },
		{ "disk=root\n", "disk=other\n" },    /* another disk's record under this name */
		{ "root=", "root=X" },
		{ "target=", "target\n" },
		{ "cutover=1\n", "" },                /* a field missing */
		{ "event=", "event\n" },
	};
	struct disk_record in;
	char path[700], *good, *bad;
	size_t len;

	full_record(&in, "root", "web1");
	snprintf(in.event, sizeof(in.event), "2026-01-01T00:00:00Z: a fault");
	ck_assert_int_eq(rec_save(dir, &in), 0);
	path_of("root", ".state", path, sizeof(path));
	good = slurp(path, &len);
	bad = malloc(REC_FILE_MAX + 2);
	ck_assert_ptr_nonnull(bad);

	/* Torn: cut short at every byte, as a crash before an atomic rename could. */
	for (size_t cut = 0; cut < len; cut++)
		expect_refused("root", good, cut, -EBADMSG);
	/* A NUL anywhere. */
	memcpy(bad, good, len);
	bad[len / 2] = '\0';
	expect_refused("root", bad, len, -EBADMSG);
	/* Garbled: lines added. */
	for (size_t i = 0; i < ARRAY_SIZE(garbled); i++) {
		size_t n = strlen(garbled[i]);

		memcpy(bad, good, len);
		memcpy(bad + len, garbled[i], n);
		expect_refused("root", bad, len + n, -EBADMSG);
	}
	/* Garbled: one field made wrong. */
	for (size_t i = 0; i < ARRAY_SIZE(edits); i++) {
		size_t head = 0, flen = strlen(edits[i].from), tlen = strlen(edits[i].to);

		/* An offset, not a pointer from strstr: gcc -O3 takes such a pointer for one
		 * into slurp's local and refuses it (-Werror=dangling-pointer). */
		while (head + flen <= len && memcmp(good + head, edits[i].from, flen) != 0)
			head++;
		ck_assert_uint_le(head + flen, len);
		memcpy(bad, good, head);
		memcpy(bad + head, edits[i].to, tlen);
		memcpy(bad + head + tlen, good + head + flen, len - head - flen);
		expect_refused("root", bad, len - flen + tlen, -EBADMSG);
	}
	/* Oversized: an event line past the bound. */
	memcpy(bad, good, len);
	memset(bad + len, 'e', REC_FILE_MAX + 1 - len);
	memcpy(bad + len, "event", 5);
	bad[REC_FILE_MAX] = '\n';
	expect_refused("root", bad, REC_FILE_MAX + 1, -EFBIG);
	/* A record under a name that is no disk id is not looked up at all. */
	ck_assert_int_eq(rec_load(dir, "../root", &in), -EINVAL);
	/* And the good one still reads. */
	spew(path, good, len);
	ck_assert_int_eq(rec_load(dir, "root", &in), 0);
	free(bad);
	free(good);
}
END_TEST

START_TEST(test_record_save_replaces_whole)
{
	struct disk_record a, b, out;
	char path[700], *old, *now;
	size_t old_len;
	int fd;

	full_record(&a, "v", "web1");
	ck_assert_int_eq(rec_save(dir, &a), 0);
	path_of("v", ".state", path, sizeof(path));
	old = slurp(path, &old_len);
	/* A reader holding the old file keeps reading the old record whole. */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	b = a;
	b.verified = false;
	b.cut_over = false;
	memset(&b.root, 0, sizeof(b.root));
	b.epoch = 7;
	memset(b.event, 0, sizeof(b.event));
	ck_assert_int_eq(rec_save(dir, &b), 0);
	now = malloc(old_len + 1);
	ck_assert_ptr_nonnull(now);
	ck_assert_int_eq(pread_full(fd, now, old_len, 0), 0);
	ck_assert_mem_eq(now, old, old_len);
	ck_assert_int_eq(pread(fd, now, 1, (off_t)old_len), 0);
	close(fd);
	ck_assert_int_eq(rec_load(dir, "v", &out), 0);
	ck_assert_mem_eq(&out, &b, sizeof(b));
	/* Nothing left behind but the record. */
	ck_assert_uint_eq(count_entries(disks), 1);

	/* A record that would not read back as written is not written; the last stands. */
	snprintf(a.event, sizeof(a.event), "two\nlines");
	ck_assert_int_eq(rec_save(dir, &a), -EINVAL);
	full_record(&a, "v", "web1");
	snprintf(a.target, sizeof(a.target), "/a\nverified=1");
	ck_assert_int_eq(rec_save(dir, &a), -EINVAL);
	full_record(&a, "v", "bad name");
	ck_assert_int_eq(rec_save(dir, &a), -EINVAL);
	full_record(&a, "v/../w", "web1");
	ck_assert_int_eq(rec_save(dir, &a), -EINVAL);
	ck_assert_int_eq(rec_load(dir, "v", &out), 0);
	ck_assert_mem_eq(&out, &b, sizeof(b));
	ck_assert_uint_eq(count_entries(disks), 1);
	free(now);
	free(old);
}
END_TEST

START_TEST(test_record_fps_round_trip_and_size_mismatch)
{
	const uint64_t cs = 65536, size = 5 * cs + 100, n = 6;
	struct fp fps[6], out[7], pattern[7], z;
	char path[700];
	uint8_t *raw;
	size_t len;

	memset(fps, 0, sizeof(fps));
	/* Chunks 1, 3 and 5 carry data; 0, 2, 4 are zero chunks (16 zero bytes). */
	for (unsigned i = 1; i < n; i += 2)
		for (unsigned j = 0; j < FP_LEN; j++)
			fps[i].b[j] = (uint8_t)(i * 16 + j + 1);
	ck_assert_int_eq(rec_fps_load(dir, "d", out, n), -ENOENT);
	ck_assert_int_eq(rec_fps_save(dir, "d", fps, n, size, (uint32_t)cs), 0);
	path_of("d", ".fps", path, sizeof(path));
	raw = (uint8_t *)slurp(path, &len);
	ck_assert_uint_eq(len, n * FP_LEN);
	/* The file holds real fingerprints: a zero chunk's of its own length. */
	for (unsigned i = 0; i < n; i++) {
		if (i % 2) {
			ck_assert_mem_eq(raw + i * FP_LEN, &fps[i], FP_LEN);
		} else {
			fp_zero((size_t)MIN(cs, size - i * cs), &z);
			ck_assert_mem_eq(raw + i * FP_LEN, &z, FP_LEN);
		}
	}
	memset(out, 0x5a, sizeof(out));
	ck_assert_int_eq(rec_fps_load(dir, "d", out, n), 0);
	ck_assert_mem_eq(out, raw, len);

	/* A file of another disk's size is refused, and nothing is read into the array. */
	memset(out, 0x5a, sizeof(out));
	memcpy(pattern, out, sizeof(out));
	ck_assert_int_eq(rec_fps_load(dir, "d", out, n + 1), -EBADMSG);
	ck_assert_int_eq(rec_fps_load(dir, "d", out, n - 1), -EBADMSG);
	spew(path, raw, len - 1);
	ck_assert_int_eq(rec_fps_load(dir, "d", out, n), -EBADMSG);
	ck_assert_mem_eq(out, pattern, sizeof(out));
	ck_assert_int_eq(rec_fps_load(dir, "../d", out, n), -EINVAL);
	/* A symlink in its place is not followed. */
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(symlink("/dev/zero", path), 0);
	ck_assert_int_eq(rec_fps_load(dir, "d", out, n), -ELOOP);
	ck_assert_mem_eq(out, pattern, sizeof(out));
	/* A save replaces it. */
	ck_assert_int_eq(rec_fps_save(dir, "d", fps, n, size, (uint32_t)cs), 0);
	ck_assert_int_eq(rec_fps_load(dir, "d", out, n), 0);
	ck_assert_mem_eq(out, raw, len);
	ck_assert_uint_eq(count_entries(disks), 1);
	free(raw);
}
END_TEST

/* A checkpoint of 20 chunks (the last one short) holding chunks 0, 3, 7..9 and 19. */
static void ckpt_sample(struct fp *fps, uint8_t *held, struct rec_ckpt *ck)
{
	static const unsigned set[] = { 0, 3, 7, 8, 9, 19 };

	memset(fps, 0, 20 * sizeof(*fps));
	memset(held, 0, 3);
	for (unsigned k = 0; k < sizeof(set) / sizeof(*set); k++) {
		held[set[k] / 8] |= (uint8_t)(1u << (set[k] % 8));
		/* Chunk 8 stays a zero chunk (16 zero bytes), the others carry data. */
		for (unsigned j = 0; set[k] != 8 && j < FP_LEN; j++)
			fps[set[k]].b[j] = (uint8_t)(set[k] * 16 + j + 1);
	}
	/* What the session holds for a chunk the checkpoint does not: never written out. */
	fps[5].b[0] = 0x77;
	*ck = (struct rec_ckpt){ .size = 19 * 65536 + 512, .chunk_size = 65536,
				 .track_gen = UINT64_C(0x0123456789abcdef), .held = 6 };
}

START_TEST(test_record_ckpt_round_trip_and_refusals)
{
	struct fp fps[20], out[20], pattern[20];
	uint8_t held[3], hout[3], hpattern[3], *raw, *bad;
	struct rec_ckpt ck, got = { 0 }, gpattern;
	char path[700];
	size_t len;

	ckpt_sample(fps, held, &ck);
	ck_assert_int_eq(rec_ckpt_load(dir, "d", ck.size, ck.chunk_size, out, hout, &got), -ENOENT);
	ck_assert_int_eq(rec_ckpt_remove(dir, "d"), 0);
	ck_assert_int_eq(rec_ckpt_save(dir, "d", &ck, fps, held), 0);
	memset(out, 0x5a, sizeof(out));
	memset(hout, 0xa5, sizeof(hout));
	ck_assert_int_eq(rec_ckpt_load(dir, "d", ck.size, ck.chunk_size, out, hout, &got), 0);
	ck_assert_uint_eq(got.track_gen, ck.track_gen);
	ck_assert_uint_eq(got.held, 6);
	ck_assert_uint_eq(got.size, ck.size);
	ck_assert_uint_eq(got.chunk_size, ck.chunk_size);
	ck_assert_mem_eq(hout, held, sizeof(held));
	for (unsigned i = 0; i < 20; i++) {
		struct fp want;

		memset(&want, 0x5a, sizeof(want));
		if (held[i / 8] >> (i % 8) & 1)
			want = fps[i];
		/* Held chunks as the session keeps them; the others untouched, chunk 5 too. */
		ck_assert_mem_eq(&out[i], &want, FP_LEN);
	}

	/* A count that is not the bitmap's, or bits past the last chunk: not written. */
	ck.held = 5;
	ck_assert_int_eq(rec_ckpt_save(dir, "d", &ck, fps, held), -EINVAL);
	ck.held = 6;
	held[2] |= 0x80;
	ck_assert_int_eq(rec_ckpt_save(dir, "d", &ck, fps, held), -EINVAL);
	held[2] &= 0x7f;

	path_of("d", ".ckpt", path, sizeof(path));
	raw = (uint8_t *)slurp(path, &len);
	/* Only the held chunks' fingerprints are written. */
	ck_assert_uint_eq(len, 64 + 3 + 6 * FP_LEN + FP_LEN);
	memset(out, 0x5a, sizeof(out));
	memset(hout, 0xa5, sizeof(hout));
	memcpy(pattern, out, sizeof(out));
	memcpy(hpattern, hout, sizeof(hout));
	gpattern = got = (struct rec_ckpt){ .track_gen = 42 };
	/* Another shape of disk: refused as stale, nothing changed. */
	ck_assert_int_eq(rec_ckpt_load(dir, "d", ck.size + 65536, ck.chunk_size, out, hout, &got),
			 -ESTALE);
	ck_assert_int_eq(rec_ckpt_load(dir, "d", ck.size, 4096, out, hout, &got), -ESTALE);
	/* Torn at every length, and one flipped bit anywhere: refused whole, nothing changed. */
	bad = malloc(len);
	ck_assert_ptr_nonnull(bad);
	for (size_t cut = 0; cut < len; cut += 7) {
		spew(path, raw, cut);
		ck_assert_int_eq(rec_ckpt_load(dir, "d", ck.size, ck.chunk_size, out, hout, &got),
				 -EBADMSG);
	}
	for (size_t at = 0; at < len; at++) {
		int r;

		memcpy(bad, raw, len);
		bad[at] ^= (uint8_t)(1u << (at % 8));
		spew(path, bad, len);
		r = rec_ckpt_load(dir, "d", ck.size, ck.chunk_size, out, hout, &got);
		/* A flip in the head's size or chunk fields reads as another disk's shape. */
		ck_assert_msg(r == -EBADMSG || (r == -ESTALE && at >= 8 && at < 32),
			      "flip at %zu: %d", at, r);
	}
	/* Longer than its head says. */
	memcpy(bad, raw, len);
	spew(path, bad, len);
	{
		int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);

		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write_full(fd, "x", 1), 0);
		close(fd);
	}
	ck_assert_int_eq(rec_ckpt_load(dir, "d", ck.size, ck.chunk_size, out, hout, &got), -EBADMSG);
	ck_assert_mem_eq(out, pattern, sizeof(out));
	ck_assert_mem_eq(hout, hpattern, sizeof(hout));
	ck_assert_mem_eq(&got, &gpattern, sizeof(got));
	/* Not followed through a symlink; removed by rec_ckpt_remove. */
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(symlink("/dev/zero", path), 0);
	ck_assert_int_eq(rec_ckpt_load(dir, "d", ck.size, ck.chunk_size, out, hout, &got), -ELOOP);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(rec_ckpt_save(dir, "d", &ck, fps, held), 0);
	ck_assert_uint_eq(count_entries(disks), 1);
	ck_assert_int_eq(rec_ckpt_remove(dir, "d"), 0);
	ck_assert_uint_eq(count_entries(disks), 0);
	ck_assert_int_eq(rec_ckpt_load(dir, "../d", ck.size, ck.chunk_size, out, hout, &got), -EINVAL);
	/* An empty one (a new copy): a head, a bitmap of zeros and the digest. */
	memset(held, 0, sizeof(held));
	ck.held = 0;
	ck_assert_int_eq(rec_ckpt_save(dir, "d", &ck, fps, held), 0);
	free(raw);
	raw = (uint8_t *)slurp(path, &len);
	ck_assert_uint_eq(len, 64 + 3 + FP_LEN);
	memset(hout, 0xa5, sizeof(hout));
	ck_assert_int_eq(rec_ckpt_load(dir, "d", ck.size, ck.chunk_size, out, hout, &got), 0);
	ck_assert_uint_eq(got.held, 0);
	ck_assert_mem_eq(hout, held, sizeof(held));
	ck_assert_mem_eq(out, pattern, sizeof(out));
	free(bad);
	free(raw);
}
END_TEST

static int read_fd(void *ctx, void *buf, size_t len, uint64_t off)
{
	return pread_full(*(int *)ctx, buf, len, off);
}

/* Reads zeros up to *ctx, then fails as a dying disk would. */
static int read_fails(void *ctx, void *buf, size_t len, uint64_t off)
{
	if (off >= *(uint64_t *)ctx)
		return -EIO;
	memset(buf, 0, len);
	return 0;
}

START_TEST(test_record_reconcile_reads_the_target)
{
	const uint32_t cs = 4096;
	const uint64_t size = 4 * cs + 10, n = 5;
	struct fp fps[5], want, zero;
	uint8_t buf[4096];
	char path[700];
	uint64_t fail_at = 2 * cs;
	int fd;

	snprintf(path, sizeof(path), "%s/target.img", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	/* Data in chunks 1 and 4 (the short tail); 0, 2 and 3 read as zeros. */
	memset(buf, 0x11, sizeof(buf));
	ck_assert_int_eq(pwrite_full(fd, buf, cs, cs), 0);
	ck_assert_int_eq(pwrite_full(fd, buf, 10, 4 * cs), 0);
	/* Stale fingerprints where the target now holds zeros: they must go. */
	memset(fps, 0x77, sizeof(fps));
	ck_assert_int_eq(rec_reconcile(read_fd, &fd, size, cs, fps), 0);
	memset(&zero, 0, sizeof(zero));
	for (unsigned i = 0; i < n; i++) {
		if (i == 1 || i == 4) {
			fp_compute(buf, i == 4 ? 10 : cs, &want);
			ck_assert_mem_eq(&fps[i], &want, FP_LEN);
		} else {
			ck_assert_mem_eq(&fps[i], &zero, FP_LEN);
		}
	}
	close(fd);
	/* A read that fails is the caller's error. */
	ck_assert_int_eq(rec_reconcile(read_fails, &fail_at, size, cs, fps), -EIO);
}
END_TEST

struct seen {
	unsigned good, bad;
	int last_err;
};

static int count_visit(void *ctx, const char *id, int r, const struct disk_record *rec)
{
	struct seen *s = ctx;

	if (r < 0) {
		s->bad++;
		s->last_err = r;
		ck_assert_ptr_null(rec);
	} else {
		s->good++;
		ck_assert_str_eq(rec->disk, id);
	}
	return 0;
}

START_TEST(test_record_queries)
{
	struct disk_record rec;
	struct seen seen = { 0 };
	char other[64], owner[64], target[700], link[700], path[700];

	snprintf(target, sizeof(target), "%s/t.img", dir);
	snprintf(link, sizeof(link), "%s/t-link.img", dir);
	spew(target, "x", 1);
	ck_assert_int_eq(symlink(target, link), 0);

	/* No records at all. */
	ck_assert_int_eq(rec_vouched_elsewhere(dir, "b", target, other, sizeof(other)), 0);
	ck_assert_int_eq(rec_disk_of_agent(dir, "web1", owner, sizeof(owner)), 0);
	ck_assert_str_eq(owner, "");
	ck_assert_int_eq(rec_owner(dir, "a", owner, sizeof(owner)), 0);
	ck_assert_str_eq(owner, "");

	/* Disk a, written by web1, unfinished: it vouches for nothing yet. */
	full_record(&rec, "a", "web1");
	snprintf(rec.target, sizeof(rec.target), "%s", target);
	rec.verified = rec.cut_over = false;
	memset(&rec.root, 0, sizeof(rec.root));
	ck_assert_int_eq(rec_save(dir, &rec), 0);
	ck_assert_int_eq(rec_owner(dir, "a", owner, sizeof(owner)), 0);
	ck_assert_str_eq(owner, "web1");
	ck_assert_int_eq(rec_disk_of_agent(dir, "web1", owner, sizeof(owner)), 0);
	ck_assert_str_eq(owner, "a");
	ck_assert_int_eq(rec_disk_of_agent(dir, "web2", owner, sizeof(owner)), 0);
	ck_assert_str_eq(owner, "");
	ck_assert_int_eq(rec_vouched_elsewhere(dir, "b", target, other, sizeof(other)), 0);

	/* Verified: it vouches for the file, by its path and through a link to it, to any
	 * other disk, but not to itself. */
	rec.verified = true;
	ck_assert_int_eq(rec_save(dir, &rec), 0);
	ck_assert_int_eq(rec_vouched_elsewhere(dir, "b", target, other, sizeof(other)), 1);
	ck_assert_str_eq(other, "a");
	other[0] = '\0';
	ck_assert_int_eq(rec_vouched_elsewhere(dir, "b", link, other, sizeof(other)), 1);
	ck_assert_str_eq(other, "a");
	ck_assert_int_eq(rec_vouched_elsewhere(dir, "a", target, other, sizeof(other)), 0);
	snprintf(path, sizeof(path), "%s/elsewhere.img", dir);
	ck_assert_int_eq(rec_vouched_elsewhere(dir, "b", path, other, sizeof(other)), 0);

	/* A damaged record and a file whose name is no disk id reach the walk's callback as
	 * errors; the enrolment query cannot say the name is free, the vouching one skips
	 * them. */
	path_of("c", ".state", path, sizeof(path));
	spew(path, "disk=c\n", 7);
	path_of("no good", ".state", path, sizeof(path));
	spew(path, "x\n", 2);
	path_of("c", ".state.tmp.1", path, sizeof(path));
	spew(path, "x\n", 2);
	ck_assert_int_eq(rec_foreach(dir, count_visit, &seen), 0);
	ck_assert_uint_eq(seen.good, 1);
	ck_assert_uint_eq(seen.bad, 2);
	ck_assert_int_lt(rec_disk_of_agent(dir, "web2", owner, sizeof(owner)), 0);
	ck_assert_int_eq(rec_vouched_elsewhere(dir, "b", target, other, sizeof(other)), 1);
}
END_TEST

static Suite *record_suite(void)
{
	Suite *s = suite_create("record");
	TCase *tc = tcase_create("record");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_record_round_trips_every_field);
	tcase_add_test(tc, test_record_refuses_torn_garbled_oversized);
	tcase_add_test(tc, test_record_save_replaces_whole);
	tcase_add_test(tc, test_record_fps_round_trip_and_size_mismatch);
	tcase_add_test(tc, test_record_ckpt_round_trip_and_refusals);
	tcase_add_test(tc, test_record_reconcile_reads_the_target);
	tcase_add_test(tc, test_record_queries);
	suite_add_tcase(s, tc);
	return s;
}

Suite *(*const t_suites[])(void) = { record_suite, NULL };

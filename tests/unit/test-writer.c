// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests for receiver/writer.c on real files with real io_uring: data lands at its
 * offset (aligned buffers and an unaligned tail), ZERO ranges read back as zeros and
 * become holes where the file system punches them, a patch is written only when its
 * fingerprint matches and then only its changed blocks, requests outside the target or larger than a buffer are refused
 * and change nothing, a target that does not fit is refused before anything is made, and
 * the write buffers take memory only while a disk is written. */
#include "receiver/writer.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fp.h"
#include "common/util.h"
#include "helpers.h"

#define MIB (1u << 20)

static char dir[PATH_MAX], target[PATH_MAX];

static void setup(void)
{
	t_mkdtemp(dir, "writer");
	t_path(target, dir, "target.img");
}

static void teardown(void)
{
	t_rmtree(dir);
}

static struct writer *open_target(uint64_t size)
{
	struct writer *w = NULL;
	char why[256] = "";

	ck_assert_msg(wr_open(target, size, 0, &w, why, sizeof(why)) == 0, "wr_open: %s", why);
	ck_assert_msg(wr_fit(w, why, sizeof(why)) == 0, "wr_fit: %s", why);
	ck_assert_uint_eq(wr_size(w), size);
	return w;
}

/* Writes [off, off + len) of the t_fill(seed) image through the writer, a buffer at a time. */
static void write_fill(struct writer *w, uint64_t off, uint64_t len, uint64_t seed)
{
	while (len > 0) {
		size_t n = (size_t)MIN((uint64_t)WR_BUF_LEN, len);
		int err = 0;
		void *buf = wr_get_buf(w, &err);

		ck_assert_ptr_nonnull(buf);
		t_fill(buf, n, seed, off);
		ck_assert_int_eq(wr_submit(w, buf, n, off), 0);
		off += n;
		len -= n;
	}
}

/* A field of /proc/self/status in KiB (VmSize, RssAnon, ...). */
static long status_kib(const char *field)
{
	char line[256];
	size_t n = strlen(field);
	long v = -1;
	FILE *f = fopen("/proc/self/status", "re");

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, field, n) == 0 && line[n] == ':')
			v = strtol(line + n + 1, NULL, 10);
	fclose(f);
	ck_assert_int_ge(v, 0);
	return v;
}

/* Whether the file system under dir punches holes (tmpfs, ext4, xfs and btrfs do). */
static bool can_punch(void)
{
	char path[PATH_MAX];
	int fd, r;

	t_path(path, dir, "probe");
	t_create_file(path, 65536, 1);
	fd = open(path, O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	r = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 65536);
	close(fd);
	unlink(path);
	return r == 0;
}

/* A disk whose size is not a multiple of 4 KiB: every byte lands where it belongs,
 * including the last chunk's unaligned tail, and the file is exactly the disk's size. */
START_TEST(test_writer_data_lands_at_its_offsets)
{
	const uint64_t size = 5 * MIB + 4097;
	struct writer *w = open_target(size);

	/* Out of order, as batches complete in the agent. */
	write_fill(w, 3 * MIB, 2 * MIB + 4097, 7);
	write_fill(w, 0, 3 * MIB, 7);
	ck_assert_int_eq(wr_flush(w), 0);
	ck_assert_uint_eq(wr_bytes_written(w), size);
	w = wr_close(w);
	ck_assert_ptr_null(w);
	ck_assert_uint_eq(t_size(target), size);
	ck_assert(t_has_fill(target, 0, size, 7));
	/* And not by accident: another seed's image differs. */
	ck_assert(!t_has_fill(target, 0, 4096, 8));
}
END_TEST

/* ZERO ranges read back as zeros once flushed, merged with their neighbour, and leave
 * the data around them alone; on a file system that punches holes they are holes. */
START_TEST(test_writer_zero_makes_zeros_and_holes)
{
	const uint64_t size = 8 * MIB;
	struct writer *w = open_target(size);
	struct stat before, after;

	write_fill(w, 0, size, 11);
	ck_assert_int_eq(wr_flush(w), 0);
	ck_assert_int_eq(stat(target, &before), 0);
	/* Two adjacent ranges (merged) and one apart. */
	ck_assert_int_eq(wr_zero(w, 1 * MIB, MIB), 0);
	ck_assert_int_eq(wr_zero(w, 2 * MIB, MIB), 0);
	ck_assert_int_eq(wr_zero(w, 6 * MIB, 512 * 1024), 0);
	/* Recorded, not applied: the data is still there until the flush. */
	ck_assert(t_has_fill(target, 1 * MIB, 2 * MIB, 11));
	ck_assert_int_eq(wr_flush(w), 0);
	w = wr_close(w);
	ck_assert(t_is_zero(target, 1 * MIB, 2 * MIB));
	ck_assert(t_is_zero(target, 6 * MIB, 512 * 1024));
	ck_assert(t_has_fill(target, 0, MIB, 11));
	ck_assert(t_has_fill(target, 3 * MIB, 3 * MIB, 11));
	ck_assert(t_has_fill(target, 6 * MIB + 512 * 1024, MIB + 512 * 1024, 11));
	ck_assert_uint_eq(t_size(target), size);
	if (can_punch()) {
		ck_assert(t_is_hole(target, 1 * MIB, 2 * MIB));
		ck_assert(t_is_hole(target, 6 * MIB, 512 * 1024));
		ck_assert(!t_is_hole(target, 0, MIB));
		ck_assert_int_eq(stat(target, &after), 0);
		ck_assert_int_le((after.st_blocks + 2560 * 2) * 512, before.st_blocks * 512);
	}
}
END_TEST

/* Requests that do not fit the target or a buffer are refused with -EINVAL, give their
 * buffer back, and write nothing. */
START_TEST(test_writer_refuses_requests_outside_the_target)
{
	const uint64_t size = 4 * MIB;
	struct writer *w = open_target(size);
	void *buf;
	int err = 0;

	write_fill(w, 0, size, 21);
	ck_assert_int_eq(wr_flush(w), 0);
	/* A whole buffer past the end, one straddling it, one starting beyond it. */
	buf = wr_get_buf(w, &err);
	memset(buf, 0xee, WR_BUF_LEN);
	ck_assert_int_eq(wr_submit(w, buf, WR_BUF_LEN, size), -EINVAL);
	buf = wr_get_buf(w, &err);
	memset(buf, 0xee, WR_BUF_LEN);
	ck_assert_int_eq(wr_submit(w, buf, 8192, size - 4096), -EINVAL);
	buf = wr_get_buf(w, &err);
	memset(buf, 0xee, WR_BUF_LEN);
	ck_assert_int_eq(wr_submit(w, buf, 4096, size + 4096), -EINVAL);
	/* Longer than a buffer holds. */
	buf = wr_get_buf(w, &err);
	memset(buf, 0xee, WR_BUF_LEN);
	ck_assert_int_eq(wr_submit(w, buf, WR_BUF_LEN + 1, 0), -EINVAL);
	/* A length whose end wraps around. */
	ck_assert_int_eq(wr_zero(w, MIB, UINT64_MAX - 4096), -EINVAL);
	ck_assert_int_eq(wr_zero(w, size + 1, 1), -EINVAL);
	ck_assert_int_eq(wr_zero(w, size - 4096, 8192), -EINVAL);
	/* A patch must be whole 4 KiB blocks, aligned, and fit twice in a buffer. */
	buf = wr_get_buf(w, &err);
	ck_assert_int_eq(wr_patch(w, buf, 0, 0, 1, 12, &(struct fp){ 0 }), -EINVAL);
	buf = wr_get_buf(w, &err);
	ck_assert_int_eq(wr_patch(w, buf, 4095, 0, 1, 12, &(struct fp){ 0 }), -EINVAL);
	buf = wr_get_buf(w, &err);
	ck_assert_int_eq(wr_patch(w, buf, 4096, 100, 1, 12, &(struct fp){ 0 }), -EINVAL);
	buf = wr_get_buf(w, &err);
	ck_assert_int_eq(wr_patch(w, buf, MIB, 0, 1, 12, &(struct fp){ 0 }), -EINVAL);
	/* The refused buffers went back to the pool: all 16 can be had and used again. */
	for (int i = 0; i < 16; i++) {
		buf = wr_get_buf(w, &err);
		ck_assert_ptr_nonnull(buf);
		t_fill(buf, 4096, 21, (uint64_t)i * 4096);
		ck_assert_int_eq(wr_submit(w, buf, 4096, (uint64_t)i * 4096), 0);
	}
	ck_assert_int_eq(wr_flush(w), 0);
	w = wr_close(w);
	/* Not one byte of the refused requests (0xee) landed, and the file did not grow. */
	ck_assert(t_has_fill(target, 0, size, 21));
	ck_assert_uint_eq(t_size(target), size);
}
END_TEST

/* A patch lays the changed blocks over the chunk read from the target and writes it only
 * when the result has the wanted fingerprint; otherwise the writer fails with -ESTALE,
 * says where, and the chunk is left as it was. */
START_TEST(test_writer_patch_writes_only_a_matching_chunk)
{
	const uint64_t size = 2 * MIB, chunk = 64 * 1024, off = 256 * 1024;
	static uint8_t want_chunk[64 * 1024];
	struct writer *w = open_target(size);
	struct fp want, wrong;
	uint64_t written;
	uint8_t *buf;
	int err = 0, r;

	write_fill(w, 0, size, 31);
	ck_assert_int_eq(wr_flush(w), 0);
	/* The chunk as it should become: blocks 1 and 5 (4 KiB each) from another image. */
	t_fill(want_chunk, chunk, 31, off);
	t_fill(want_chunk + 1 * 4096, 4096, 32, off + 1 * 4096);
	t_fill(want_chunk + 5 * 4096, 4096, 32, off + 5 * 4096);
	fp_compute(want_chunk, chunk, &want);
	buf = wr_get_buf(w, &err);
	memcpy(buf + chunk, want_chunk + 1 * 4096, 4096);
	memcpy(buf + chunk + 4096, want_chunk + 5 * 4096, 4096);
	written = wr_bytes_written(w);
	ck_assert_int_eq(wr_patch(w, buf, chunk, off, (1u << 1) | (1u << 5), 12, &want), 0);
	ck_assert_int_eq(wr_flush(w), 0);
	/* Only the two changed blocks were written, not the whole chunk around them. */
	ck_assert_uint_eq(wr_bytes_written(w) - written, 2 * 4096);
	ck_assert(t_has_fill(target, 0, off + 4096, 31));
	ck_assert(t_has_fill(target, off + 4096, 4096, 32));
	ck_assert(t_has_fill(target, off + 5 * 4096, 4096, 32));
	ck_assert(t_has_fill(target, off + 6 * 4096, size - off - 6 * 4096, 31));

	/* Now a patch whose result does not match. */
	fp_compute(want_chunk, 4096, &wrong);
	buf = wr_get_buf(w, &err);
	memset(buf + chunk, 0x5a, 4096);
	/* The read and the check may complete within the call, which then reports the
	 * mismatch at once; otherwise the flush does. */
	r = wr_patch(w, buf, chunk, 0, 1, 12, &wrong);
	ck_assert_msg(r == 0 || r == -ESTALE, "wr_patch: %d", r);
	ck_assert_int_eq(wr_flush(w), -ESTALE);
	ck_assert_msg(wr_error_text(w)[0] != '\0', "no text for the mismatch");
	w = wr_close(w);
	ck_assert(t_has_fill(target, 0, chunk, 31));
}
END_TEST

/* A patch writes each run of its changed blocks as one write, and only those: with 32
 * runs in each of 16 chunks in flight at once (every request one buffer can have, on
 * every buffer), each buffer returns only when its last run is written. The target ends
 * up as the patches say, and the writer wrote exactly the changed blocks' bytes. */
START_TEST(test_writer_patch_writes_only_the_changed_runs)
{
	const uint64_t size = 8 * MIB, chunk = 256 * 1024;
	const uint64_t even = UINT64_C(0x5555555555555555);
	static uint8_t want_chunk[256 * 1024];
	struct writer *w = open_target(size);
	uint64_t written, off;
	unsigned k;

	write_fill(w, 0, size, 41);
	ck_assert_int_eq(wr_flush(w), 0);
	written = wr_bytes_written(w);
	/* Chunks 0..15: every even 4 KiB block from another image (32 runs of one block);
	 * chunk 16: blocks 3..9 and 60..63 (two runs, the last up to the chunk's end). */
	for (off = 0; off < 17 * chunk; off += chunk) {
		uint64_t mask = off < 16 * chunk ? even : (UINT64_C(0x7f) << 3) | (UINT64_C(0xf) << 60);
		struct fp want;
		int err = 0;
		uint8_t *buf = wr_get_buf(w, &err);

		ck_assert_ptr_nonnull(buf);
		t_fill(want_chunk, chunk, 41, off);
		k = 0;
		for (unsigned i = 0; i < 64; i++) {
			if (!(mask >> i & 1))
				continue;
			t_fill(want_chunk + i * 4096, 4096, 42, off + i * 4096);
			memcpy(buf + chunk + k++ * 4096, want_chunk + i * 4096, 4096);
		}
		fp_compute(want_chunk, chunk, &want);
		ck_assert_int_eq(wr_patch(w, buf, chunk, off, mask, 12, &want), 0);
	}
	ck_assert_int_eq(wr_flush(w), 0);
	ck_assert_uint_eq(wr_bytes_written(w) - written, (16 * 32 + 7 + 4) * 4096);
	w = wr_close(w);
	for (off = 0; off < 16 * chunk; off += 2 * 4096) {
		ck_assert(t_has_fill(target, off, 4096, 42));
		ck_assert(t_has_fill(target, off + 4096, 4096, 41));
	}
	ck_assert(t_has_fill(target, off, 3 * 4096, 41));
	ck_assert(t_has_fill(target, off + 3 * 4096, 7 * 4096, 42));
	ck_assert(t_has_fill(target, off + 10 * 4096, 50 * 4096, 41));
	ck_assert(t_has_fill(target, off + 60 * 4096, 4 * 4096, 42));
	ck_assert(t_has_fill(target, off + chunk, size - off - chunk, 41));
}
END_TEST

static uint64_t xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Rounds of patches of random 4 KiB blocks (about 1% of a sparse target a round, so
 * chunks stay part holes, part data, as an eBPF-tracked epoch leaves them), each checked
 * against a model of the target: every patch must fit what the earlier ones wrote (a
 * lost or misplaced run fails a later patch with -ESTALE), and the target read back at
 * the end equals the model. */
START_TEST(test_writer_patches_of_random_blocks_keep_the_target_exact)
{
	const uint64_t size = 64 * MIB, chunk = 64 * 1024, nch = size / chunk;
	static uint64_t masks[64 * MIB / (64 * 1024)];
	uint8_t *model = calloc(1, size), *got = malloc(size);
	struct writer *w = open_target(size);
	uint64_t x = 0x9e3779b97f4a7c15ull;
	int fd;

	ck_assert_ptr_nonnull(model);
	ck_assert_ptr_nonnull(got);
	for (unsigned round = 0; round < 12; round++) {
		memset(masks, 0, sizeof(masks));
		for (unsigned i = 0; i < size / 4096 / 100; i++) {
			uint64_t b = xorshift(&x) % (size / 4096);

			masks[b / 16] |= UINT64_C(1) << (b % 16);
		}
		for (uint64_t c = 0; c < nch; c++) {
			struct fp want;
			unsigned k = 0;
			int err = 0;
			uint8_t *buf;

			if (!masks[c])
				continue;
			buf = wr_get_buf(w, &err);
			ck_assert_msg(buf, "round %u: %d %s", round, err, wr_error_text(w));
			for (unsigned i = 0; i < 16; i++) {
				uint8_t *blk = model + c * chunk + i * 4096;

				if (!(masks[c] >> i & 1))
					continue;
				for (unsigned j = 0; j < 4096; j += 8) {
					uint64_t v = xorshift(&x);

					memcpy(blk + j, &v, 8);
				}
				memcpy(buf + chunk + k++ * 4096, blk, 4096);
			}
			fp_compute(model + c * chunk, chunk, &want);
			err = wr_patch(w, buf, chunk, c * chunk, masks[c], 12, &want);
			ck_assert_msg(err == 0, "round %u chunk %" PRIu64 ": %d %s", round, c, err,
				      wr_error_text(w));
		}
		ck_assert_msg(wr_flush(w) == 0, "round %u: %s", round, wr_error_text(w));
	}
	w = wr_close(w);
	fd = open(target, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread_full(fd, got, size, 0), 0);
	close(fd);
	ck_assert(memcmp(got, model, size) == 0);
	free(got);
	free(model);
}
END_TEST

/* wr_fit cuts a larger existing file to the source's size, so nothing stale lies past the
 * disk's end; wr_read reads the target back. */
/* A receiver serves many disks, most of them idle at any moment: a disk's write buffers
 * exist only while it is written. None before the first write; up to 16 in flight, never
 * more; after a flush none is left and their pages are back with the system (the resident
 * set shrinks by them), except one the caller still holds, which stays usable. The data
 * lands exactly. */
START_TEST(test_writer_buffers_held_only_while_writing)
{
	const uint64_t size = 24 * MIB;
	struct writer *w = open_target(size);
	void *bufs[16], *held;
	long rss_busy, rss_idle;
	int err = 0;

	ck_assert_uint_eq(wr_buffers_held(w), 0);
	/* All 16 at once, as a busy epoch pipelines them. */
	for (unsigned i = 0; i < 16; i++) {
		bufs[i] = wr_get_buf(w, &err);
		ck_assert_ptr_nonnull(bufs[i]);
		ck_assert_uint_eq((uintptr_t)bufs[i] % 4096, 0);
		t_fill(bufs[i], WR_BUF_LEN, 5, (uint64_t)i * MIB);
	}
	ck_assert_uint_eq(wr_buffers_held(w), 16);
	rss_busy = status_kib("RssAnon");
	for (unsigned i = 0; i < 16; i++)
		ck_assert_int_eq(wr_submit(w, bufs[i], WR_BUF_LEN, (uint64_t)i * MIB), 0);
	/* More writes wait for completed ones rather than taking more memory. */
	write_fill(w, 16 * MIB, 8 * MIB, 5);
	ck_assert_uint_eq(wr_buffers_held(w), 16);
	ck_assert_int_eq(wr_flush(w), 0);
	ck_assert_uint_eq(wr_buffers_held(w), 0);
	rss_idle = status_kib("RssAnon");
	/* 16 MiB of written buffers gone; a margin for whatever else the process touched. */
	ck_assert_msg(rss_busy - rss_idle >= 12 * 1024, "RssAnon %ld KiB busy, %ld KiB idle",
		      rss_busy, rss_idle);

	/* A buffer handed out before a flush (a checkpoint between wr_get_buf and
	 * wr_submit) outlives it. */
	held = wr_get_buf(w, &err);
	ck_assert_ptr_nonnull(held);
	ck_assert_uint_eq(wr_buffers_held(w), 1);
	ck_assert_int_eq(wr_flush(w), 0);
	ck_assert_uint_eq(wr_buffers_held(w), 1);
	t_fill(held, WR_BUF_LEN, 5, 3 * MIB);
	ck_assert_int_eq(wr_submit(w, held, WR_BUF_LEN, 3 * MIB), 0);
	ck_assert_int_eq(wr_flush(w), 0);
	ck_assert_uint_eq(wr_buffers_held(w), 0);
	ck_assert_uint_eq(wr_bytes_written(w), size + MIB);
	w = wr_close(w);
	ck_assert(t_has_fill(target, 0, size, 5));
}
END_TEST

/* No memory for a buffer: wr_get_buf says -ENOMEM (the session refuses the disk's write
 * as it does a failed one), and the writer still flushes and closes. Run in a child,
 * whose address space is capped just above what it uses. */
START_TEST(test_writer_no_memory_is_an_error)
{
	struct writer *w = open_target(4 * MIB);
	pid_t pid;
	int st;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct rlimit rl;
		int err = 0, code = 0;
		void *buf;

		rl.rlim_cur = rl.rlim_max = (rlim_t)(status_kib("VmSize") + 256) * 1024;
		if (setrlimit(RLIMIT_AS, &rl) < 0)
			_exit(10);
		buf = wr_get_buf(w, &err);
		if (buf || err != -ENOMEM)
			code = 11;
		else if (wr_buffers_held(w) != 0)
			code = 12;
		else if (wr_flush(w) != 0)
			code = 13;
		wr_close(w);
		_exit(code);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
	/* The parent's writer was untouched by the child's failure. */
	write_fill(w, 0, 4 * MIB, 9);
	ck_assert_int_eq(wr_flush(w), 0);
	w = wr_close(w);
	ck_assert(t_has_fill(target, 0, 4 * MIB, 9));
}
END_TEST

START_TEST(test_writer_fit_cuts_a_larger_file)
{
	struct writer *w = NULL;
	uint8_t back[4096];
	char why[256] = "";

	t_create_file(target, 3 * MIB, 41);
	ck_assert_int_eq(wr_open(target, MIB + 512, 0, &w, why, sizeof(why)), 0);
	ck_assert_int_eq(wr_fit(w, why, sizeof(why)), 0);
	ck_assert_int_eq(wr_read(w, back, sizeof(back), MIB - 4096), 0);
	w = wr_close(w);
	ck_assert_uint_eq(t_size(target), MIB + 512);
	ck_assert(t_has_fill(target, 0, MIB + 512, 41));
}
END_TEST

/* A target that cannot be one is refused with a reason, and nothing is left behind. */
START_TEST(test_writer_open_refuses_what_cannot_be_a_target)
{
	struct writer *w = NULL;
	char why[256] = "", path[PATH_MAX];
	struct stat st;

	/* Larger than its max-size allows: the file this call would create is not left. */
	ck_assert_int_eq(wr_open(target, 8 * MIB, 4 * MIB, &w, why, sizeof(why)), -ENOSPC);
	ck_assert_ptr_null(w);
	ck_assert_msg(why[0], "no reason given");
	ck_assert_int_eq(stat(target, &st), -1);
	ck_assert_int_eq(errno, ENOENT);
	/* Neither a file nor a block device. */
	why[0] = '\0';
	ck_assert_int_eq(wr_open(dir, MIB, 0, &w, why, sizeof(why)), -EINVAL);
	ck_assert_msg(why[0], "no reason given");
	/* An existing file is kept, with its bytes, when refused. */
	t_path(path, dir, "kept.img");
	t_create_file(path, MIB, 51);
	ck_assert_int_eq(wr_open(path, 8 * MIB, 2 * MIB, &w, why, sizeof(why)), -ENOSPC);
	ck_assert_uint_eq(t_size(path), MIB);
	ck_assert(t_has_fill(path, 0, MIB, 51));
}
END_TEST

/* A source that grew: the file follows within its max-size, reads as zeros past the old
 * end and takes writes there; past max-size it is refused with a reason and nothing
 * changes; it never shrinks or grows while anything is pending. */
START_TEST(test_writer_grow_follows_within_max_size)
{
	struct writer *w = NULL;
	uint64_t have = 0;
	char why[256] = "";
	int err = 0;
	void *buf;

	ck_assert_int_eq(wr_open(target, MIB + 512, 3 * MIB, &w, why, sizeof(why)), 0);
	ck_assert_int_eq(wr_fit(w, why, sizeof(why)), 0);
	write_fill(w, 0, MIB + 512, 61);
	ck_assert_int_eq(wr_flush(w), 0);
	/* Not smaller, not the same. */
	ck_assert_int_eq(wr_grow(w, MIB, 3 * MIB, &have, why, sizeof(why)), -EINVAL);
	ck_assert_int_eq(wr_grow(w, MIB + 512, 3 * MIB, &have, why, sizeof(why)), -EINVAL);
	/* Grown: the old bytes kept, the old short tail's rest and the new range zeros. */
	ck_assert_int_eq(wr_grow(w, 2 * MIB, 3 * MIB, &have, why, sizeof(why)), 0);
	ck_assert_uint_eq(wr_size(w), 2 * MIB);
	ck_assert_uint_eq(t_size(target), 2 * MIB);
	ck_assert(t_has_fill(target, 0, MIB + 512, 61));
	ck_assert(t_is_zero(target, MIB + 512, MIB - 512));
	write_fill(w, MIB + MIB / 2, MIB / 2, 62);
	ck_assert_int_eq(wr_flush(w), 0);
	ck_assert(t_has_fill(target, MIB + MIB / 2, MIB / 2, 62));
	/* Past max-size: refused with both sizes named, the file as it was. */
	why[0] = '\0';
	ck_assert_int_eq(wr_grow(w, 4 * MIB, 3 * MIB, &have, why, sizeof(why)), -ENOSPC);
	ck_assert_msg(strstr(why, "4194304") && strstr(why, "max-size"), "why: %s", why);
	ck_assert_uint_eq(have, 2 * MIB);
	ck_assert_uint_eq(wr_size(w), 2 * MIB);
	ck_assert_uint_eq(t_size(target), 2 * MIB);
	buf = wr_get_buf(w, &err);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(wr_submit(w, buf, 4096, 2 * MIB), -EINVAL);
	/* A pending zero range must be flushed before the size changes. */
	ck_assert_int_eq(wr_zero(w, 0, 4096), 0);
	ck_assert_int_eq(wr_grow(w, 3 * MIB, 3 * MIB, &have, why, sizeof(why)), -EINVAL);
	ck_assert_int_eq(wr_flush(w), 0);
	ck_assert_int_eq(wr_grow(w, 3 * MIB, 3 * MIB, &have, why, sizeof(why)), 0);
	w = wr_close(w);
	ck_assert_uint_eq(t_size(target), 3 * MIB);
	ck_assert(t_is_zero(target, 0, 4096));
	ck_assert(t_has_fill(target, 4096, MIB + 512 - 4096, 61));
}
END_TEST

static Suite *writer_suite(void)
{
	Suite *s = suite_create("writer");
	TCase *tc = tcase_create("writer");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_writer_data_lands_at_its_offsets);
	tcase_add_test(tc, test_writer_zero_makes_zeros_and_holes);
	tcase_add_test(tc, test_writer_refuses_requests_outside_the_target);
	tcase_add_test(tc, test_writer_patch_writes_only_a_matching_chunk);
	tcase_add_test(tc, test_writer_patch_writes_only_the_changed_runs);
	tcase_add_test(tc, test_writer_patches_of_random_blocks_keep_the_target_exact);
	tcase_add_test(tc, test_writer_buffers_held_only_while_writing);
	tcase_add_test(tc, test_writer_no_memory_is_an_error);
	tcase_add_test(tc, test_writer_fit_cuts_a_larger_file);
	tcase_add_test(tc, test_writer_open_refuses_what_cannot_be_a_target);
	tcase_add_test(tc, test_writer_grow_follows_within_max_size);
	suite_add_tcase(s, tc);
	return s;
}

const char *t_precheck(void)
{
	return t_need_io_uring();
}

Suite *(*const t_suites[])(void) = { writer_suite, NULL };

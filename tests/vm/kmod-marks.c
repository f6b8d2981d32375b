// SPDX-License-Identifier: GPL-2.0-only
/* Runs inside the test VM against tern.ko: every kind of write to a disk (random O_DIRECT,
 * buffered + fsync, discard, write-zeroes, a concurrent writer across flips) must be in
 * the harvested bitmap; a tracker outlives its agent's fd. Exit 0 pass, 1 fail, 77 skip. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "kmod-optional/uapi/tern.h"

#define BLOCK 4096u
#define ID "vm-marks"

struct ctx {
	int ctl, dev;
	uint64_t nblocks, nwords;
	uint64_t *got;     /* union of harvests since the phase began */
	uint64_t epoch;
	uint64_t gen;      /* the tracker's generation as last returned */
	unsigned gen_bad;  /* generations that broke the rule (uapi tern.h, tern_ack) */
	uint8_t *buf;      /* aligned, 1 MiB */
};

static bool bit(const uint64_t *bm, uint64_t b)
{
	return bm[b / 64] >> (b % 64) & 1;
}

/* Harvests into c->got and acknowledges, as the agent does after each epoch. */
static int harvest(struct ctx *c)
{
	uint64_t *bm = calloc(c->nwords, 8);
	struct tern_harvest h = { .buf = (uintptr_t)bm, .buf_len = c->nwords * 8 };
	struct tern_ack a = { 0 };
	int r = 0;

	if (!bm)
		return -ENOMEM;
	snprintf(h.id, sizeof(h.id), ID);
	snprintf(a.id, sizeof(a.id), ID);
	if (ioctl(c->ctl, TERN_IOC_HARVEST, &h) < 0)
		r = -errno;
	for (uint64_t w = 0; r == 0 && w < c->nwords; w++)
		c->got[w] |= bm[w];
	a.epoch = c->epoch++;
	if (r == 0 && ioctl(c->ctl, TERN_IOC_ACK, &a) < 0)
		r = -errno;
	/* An ack forgets the pending set: the generation must change, and never to 0. */
	if (r == 0 && (a.gen == 0 || a.gen == c->gen)) {
		printf("kmod-marks: an ack left generation %" PRIu64 " (was %" PRIu64 ")\n",
		       (uint64_t)a.gen, c->gen);
		c->gen_bad++;
	}
	if (r == 0)
		c->gen = a.gen;
	free(bm);
	return r;
}

static int reg(struct ctx *c, uint32_t *ret_flags)
{
	struct tern_register g = { .version = TERN_UAPI_VERSION, .block_size = BLOCK };
	struct stat st;
	uint64_t size;

	if (fstat(c->dev, &st) < 0 || ioctl(c->dev, BLKGETSIZE64, &size) < 0)
		return -errno;
	g.major = major(st.st_rdev);
	g.first_minor = minor(st.st_rdev);
	g.nr_sectors = size / 512;
	snprintf(g.id, sizeof(g.id), ID);
	if (ioctl(c->ctl, TERN_IOC_REGISTER, &g) < 0)
		return -errno;
	c->nblocks = g.nblocks;
	c->nwords = (g.nblocks + 63) / 64;
	/* A resumed tracker keeps its generation (its pending set only grew); a new one has
	 * its own, never 0. */
	if (g.gen == 0 || ((g.flags & TERN_REG_RESUMED) && g.gen != c->gen)) {
		printf("kmod-marks: registration returned generation %" PRIu64 " (%s %" PRIu64
		       ")\n", (uint64_t)g.gen, g.flags & TERN_REG_RESUMED ? "resumed, was" :
		       "new, last", c->gen);
		c->gen_bad++;
	}
	c->gen = g.gen;
	*ret_flags = g.flags;
	return 0;
}

/* The blocks [first, first + n) must all be in c->got; says how many are not. */
static uint64_t missed(const struct ctx *c, uint64_t first, uint64_t n)
{
	uint64_t m = 0;

	for (uint64_t b = first; b < first + n; b++)
		m += !bit(c->got, b);
	return m;
}

static uint64_t rnd(uint64_t n)
{
	return (((uint64_t)random() << 31) ^ (uint64_t)random()) % n;
}

static int check(const char *what, uint64_t writes, uint64_t miss)
{
	printf("kmod-marks: %s: %" PRIu64 " writes, %" PRIu64 " blocks missed\n", what, writes, miss);
	return miss ? 1 : 0;
}

static int phase_direct(struct ctx *c)
{
	uint64_t miss = 0, n = 200;
	struct {
		uint64_t b, len;
	} w[200];

	memset(c->got, 0, c->nwords * 8);
	for (uint64_t i = 0; i < n; i++) {
		w[i].len = 1 + rnd(16);
		w[i].b = rnd(c->nblocks - w[i].len);
		if (pwrite(c->dev, c->buf, w[i].len * BLOCK, (off_t)(w[i].b * BLOCK)) < 0)
			return -errno;
	}
	if (harvest(c) < 0)
		return -errno;
	for (uint64_t i = 0; i < n; i++)
		miss += missed(c, w[i].b, w[i].len);
	return check("random O_DIRECT", n, miss);
}

static int phase_buffered(struct ctx *c, const char *path)
{
	uint64_t miss = 0, n = 50, b[50];
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	memset(c->got, 0, c->nwords * 8);
	for (uint64_t i = 0; i < n; i++) {
		b[i] = rnd(c->nblocks);
		/* Unaligned inside the block: the page cache writes the whole page back. */
		if (pwrite(fd, c->buf, 100, (off_t)(b[i] * BLOCK + 17)) < 0) {
			close(fd);
			return -errno;
		}
	}
	if (fsync(fd) < 0) {
		close(fd);
		return -errno;
	}
	close(fd);
	if (harvest(c) < 0)
		return -errno;
	for (uint64_t i = 0; i < n; i++)
		miss += missed(c, b[i], 1);
	return check("buffered + fsync", n, miss);
}

/* BLKDISCARD or BLKZEROOUT over random ranges; 77 when the disk refuses the op. */
static int phase_range(struct ctx *c, unsigned long op, const char *what)
{
	uint64_t miss = 0, n = 20;

	memset(c->got, 0, c->nwords * 8);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t len = 1 + rnd(256), b = rnd(c->nblocks - len);
		uint64_t range[2] = { b * BLOCK, len * BLOCK };

		if (ioctl(c->dev, op, range) < 0) {
			if (errno == EOPNOTSUPP) {
				printf("kmod-marks: %s: not supported by the disk\n", what);
				return 77;
			}
			return -errno;
		}
		if (harvest(c) < 0)
			return -errno;
		miss += missed(c, b, len);
	}
	return check(what, n, miss);
}

struct writer {
	struct ctx *c;
	int fd;
	uint64_t *log;
	uint64_t cap;
	atomic_uint_fast64_t done;  /* writes completed, their blocks in log[0..done) */
	atomic_bool stop;
	int err;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint8_t *buf = w->c->buf + 512 * 1024;

	for (uint64_t i = 0; i < w->cap && !atomic_load(&w->stop); i++) {
		uint64_t b = rnd(w->c->nblocks);

		if (pwrite(w->fd, buf, BLOCK, (off_t)(b * BLOCK)) < 0) {
			w->err = -errno;
			break;
		}
		w->log[i] = b;
		atomic_store_explicit(&w->done, i + 1, memory_order_release);
	}
	return NULL;
}

/* A write that completed before a harvest began must be in that harvest or an earlier
 * one: no write may fall between the two bitmaps at a flip. */
static int phase_flips(struct ctx *c, const char *path)
{
	struct writer w = { .c = c, .cap = 1 << 20 };
	struct timespec pause = { 0, 5 * 1000 * 1000 };
	uint64_t miss = 0, flips = 0, done;
	pthread_t th;
	time_t end = time(NULL) + 4;

	w.fd = open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
	w.log = calloc(w.cap, 8);
	if (w.fd < 0 || !w.log)
		return -ENOMEM;
	memset(c->got, 0, c->nwords * 8);
	if (pthread_create(&th, NULL, writer_main, &w) != 0)
		return -EAGAIN;
	while (time(NULL) < end && miss == 0) {
		done = atomic_load_explicit(&w.done, memory_order_acquire);
		if (harvest(c) < 0)
			break;
		flips++;
		for (uint64_t i = 0; i < done; i++)
			miss += !bit(c->got, w.log[i]);
		nanosleep(&pause, NULL);
	}
	atomic_store(&w.stop, true);
	pthread_join(th, NULL);
	done = atomic_load(&w.done);
	harvest(c);
	for (uint64_t i = 0; i < done; i++)
		miss += !bit(c->got, w.log[i]);
	printf("kmod-marks: concurrent writer: %" PRIu64 " flips\n", flips);
	close(w.fd);
	free(w.log);
	if (w.err)
		return w.err;
	return check("writes across flips", done, miss);
}

/* The tracker keeps marking with no agent: a new fd resumes it and sees the write. */
static int phase_resume(struct ctx *c, const char *ctl_path)
{
	uint64_t b = rnd(c->nblocks);
	uint32_t flags = 0;
	int r;

	memset(c->got, 0, c->nwords * 8);
	close(c->ctl);
	if (pwrite(c->dev, c->buf, BLOCK, (off_t)(b * BLOCK)) < 0)
		return -errno;
	c->ctl = open(ctl_path, O_RDWR | O_CLOEXEC);
	if (c->ctl < 0)
		return -errno;
	r = reg(c, &flags);
	if (r < 0)
		return r;
	if (!(flags & TERN_REG_RESUMED)) {
		printf("kmod-marks: a second registration did not resume the tracker\n");
		return 1;
	}
	if (harvest(c) < 0)
		return -errno;
	return check("write with no agent, then resumed", 1, missed(c, b, 1));
}

int main(int argc, char **argv)
{
	const char *ctl_path = "/dev/" TERN_DEV_NAME;
	struct ctx c = { .ctl = -1, .dev = -1 };
	struct tern_unregister u = { 0 };
	struct tern_stats s = { 0 };
	struct tern_version v;
	uint32_t flags;
	int r, res[6], fails = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: kmod-marks DISK (its contents are overwritten)\n"
			"       kmod-marks --trackers (prints how many trackers are registered)\n");
		return 2;
	}
	srandom((unsigned)time(NULL));
	c.ctl = open(ctl_path, O_RDWR | O_CLOEXEC);
	if (c.ctl < 0) {
		printf("SKIP: %s: %s (is tern.ko loaded?)\n", ctl_path, strerror(errno));
		return 77;
	}
	if (ioctl(c.ctl, TERN_IOC_VERSION, &v) < 0 || v.version != TERN_UAPI_VERSION) {
		printf("kmod-marks: the module speaks another uapi version\n");
		return 1;
	}
	if (strcmp(argv[1], "--trackers") == 0) {
		printf("%u\n", v.ntrackers);
		return 0;
	}
	c.dev = open(argv[1], O_RDWR | O_DIRECT | O_CLOEXEC);
	if (c.dev < 0 || posix_memalign((void **)&c.buf, 4096, 1 << 20) != 0) {
		perror(argv[1]);
		return 1;
	}
	memset(c.buf, 0xa5, 1 << 20);
	r = reg(&c, &flags);
	if (r < 0) {
		printf("kmod-marks: register: %s\n", strerror(-r));
		return 1;
	}
	c.got = calloc(c.nwords, 8);
	if (!c.got)
		return 1;
	/* The registration itself must start clean: a first harvest has nothing. */
	harvest(&c);
	/* In this order: the resume phase closes and reopens the control fd. */
	res[0] = phase_direct(&c);
	res[1] = phase_buffered(&c, argv[1]);
	res[2] = phase_range(&c, BLKDISCARD, "discard");
	res[3] = phase_range(&c, BLKZEROOUT, "write-zeroes");
	res[4] = phase_flips(&c, argv[1]);
	res[5] = phase_resume(&c, ctl_path);
	for (size_t i = 0; i < sizeof(res) / sizeof(res[0]); i++) {
		if (res[i] < 0)
			printf("kmod-marks: phase %zu failed: %s\n", i, strerror(-res[i]));
		fails += res[i] != 0 && res[i] != 77;
	}
	snprintf(s.id, sizeof(s.id), ID);
	if (ioctl(c.ctl, TERN_IOC_STATS, &s) == 0 && s.gen != c.gen) {
		printf("kmod-marks: stats report generation %" PRIu64 ", the last ack %" PRIu64
		       "\n", (uint64_t)s.gen, c.gen);
		c.gen_bad++;
	}
	printf("kmod-marks: generations: %u broke the rule\n", c.gen_bad);
	fails += c.gen_bad > 0;
	if (ioctl(c.ctl, TERN_IOC_STATS, &s) == 0)
		printf("kmod-marks: stats: %" PRIu64 " requests, %" PRIu64 " sectors, %" PRIu64
		       " harvests\n", (uint64_t)s.requests, (uint64_t)s.sectors, (uint64_t)s.harvests);
	snprintf(u.id, sizeof(u.id), ID);
	if (ioctl(c.ctl, TERN_IOC_UNREGISTER, &u) < 0 ||
	    ioctl(c.ctl, TERN_IOC_STATS, &s) == 0 || errno != ENOENT) {
		printf("kmod-marks: unregister did not remove the tracker\n");
		fails++;
	}
	free(c.got);
	free(c.buf);
	close(c.dev);
	close(c.ctl);
	printf("kmod-marks: %s\n", fails ? "FAIL" : "PASS");
	return fails ? 1 : 0;
}

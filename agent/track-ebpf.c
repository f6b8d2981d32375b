// SPDX-License-Identifier: GPL-2.0-only
/* The eBPF change tracker, a backend of track.h (see bpf/track.bpf.c): for one block-device
 * source tp_btf/block_rq_issue and block_rq_complete programs mark changed tracking blocks
 * in a bitmap; a harvest takes each word with an atomic exchange into the pending set.
 * Its programs and maps are pinned under pin_root/ID, so tracking outlives the agent and
 * the next one resumes it when its identity (disk, range, block size) matches. */
#include "agent/track-ops.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/statfs.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "agent/source.h"
#include "common/log.h"
#include "common/util.h"

#ifdef HAVE_EBPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/types.h>

#include "bpf/track-ebpf-abi.h"
/* The generated skeleton embeds the BPF object as one long string literal. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverlength-strings"
#include "track.skel.h"
#pragma GCC diagnostic pop

struct trk_ebpf {
	struct track_bpf *skel;  /* NULL when resumed from pins */
	uint64_t nblocks, nwords;
	uint64_t *bm;            /* what the program marks, mmapped */
	uint64_t *pend;          /* harvested, not yet acknowledged, mmapped */
	int fd_cfg, fd_bm, fd_pend, fd_stats;
	bool resumed;
	struct tern_track_cfg cfg;
	/* A resumed tracker's links (completion, issue), held open: a tracker started for a
	 * new size over the same pins must not detach this one before its last harvest
	 * (track_grow). */
	int fd_link, fd_link_issue;
	/* The disk's in-flight request counts (sysfs "reads writes"), or -1: see
	 * writes_settled. */
	int fd_inflight;
	/* The words the last harvest took (index, bits), when it did not see every write
	 * issued before it land: they stay pending through the next ack, to be read once
	 * more (writes_settled). Bounded: past CARRY_MAX words the whole pending set stays. */
	struct carry { uint64_t i, w; } *carry;
	size_t ncarry;
	bool carry_all;
	char dir[256];       /* pin directory */
};

static struct trk_ebpf *trk_ebpf_stop(struct trk_ebpf *t, bool unpin);

static const char *const pin_names[] = { "cfg", "bm", "pend", "stats" };
#define NPINS (sizeof(pin_names) / sizeof(pin_names[0]))
/* Everything a pin directory may hold, removed together: the maps, the links of
 * block_rq_complete and block_rq_issue, and an older agent's two flipped bitmaps (never
 * resumed). */
static const char *const pin_files[] = { "cfg", "bm", "pend", "stats", "link", "link-issue",
					 "bm0", "bm1" };

/* A new tracking generation: random, never 0 (0 means none). */
static int new_gen(__u64 *ret_gen)
{
	__u64 g = 0;

	while (g == 0)
		if (getrandom(&g, sizeof(g), 0) != (ssize_t)sizeof(g))
			return -errno ? -errno : -EIO;
	*ret_gen = g;
	return 0;
}

static void unpin_all(const char *dir)
{
	char path[320];

	for (size_t i = 0; i < sizeof(pin_files) / sizeof(pin_files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, pin_files[i]);
		unlink(path);
	}
	rmdir(dir);
}

/* The pin directory of disk id. bpffs reserves names with a dot; disk ids may have one. */
static void pin_dir(const char *pin_root, const char *id, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", pin_root, id);
	for (char *p = buf + strlen(pin_root) + 1; *p; p++)
		if (*p == '.')
			*p = '_';
}

/* Removes the tracking an earlier agent left pinned for disk id under pin_root, if any:
 * another tracker replaces it, and it would otherwise record writes for nobody for as
 * long as the machine runs. Returns true when there was one. */
static bool trk_ebpf_forget(const char *pin_root, const char *id)
{
	char dir[256], link[300];

	pin_dir(pin_root, id, dir, sizeof(dir));
	snprintf(link, sizeof(link), "%s/link", dir);
	if (access(link, F_OK) < 0 && access(dir, F_OK) < 0)
		return false;
	unpin_all(dir);
	return true;
}

/* bpffs may not be mounted yet on a fresh boot. */
static int ensure_bpffs(const char *root)
{
	struct statfs sf;

	if (statfs("/sys/fs/bpf", &sf) == 0 && sf.f_type == BPF_FS_MAGIC)
		return mkdir_p(root, 0700);
	if (mount("bpf", "/sys/fs/bpf", "bpf", 0, NULL) < 0)
		return -errno;
	return mkdir_p(root, 0700);
}

static int map_all(struct trk_ebpf *t)
{
	size_t len = (size_t)t->nwords * 8;
	int fds[2] = { t->fd_bm, t->fd_pend };
	uint64_t **dst[2] = { &t->bm, &t->pend };

	for (int i = 0; i < 2; i++) {
		void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fds[i], 0);

		if (p == MAP_FAILED)
			return -errno;
		*dst[i] = p;
	}
	return 0;
}

/* Takes over the tracking a previous agent pinned, if it is this disk's. 1: resumed. */
static int try_resume(struct trk_ebpf *t, const struct tern_track_cfg *want)
{
	char path[320];
	struct bpf_map_info info = { 0 };
	__u32 len = sizeof(info), k = 0;
	int fds[NPINS], r = 0;

	snprintf(path, sizeof(path), "%s/link", t->dir);
	if (access(path, F_OK) < 0)
		return 0;
	for (size_t i = 0; i < NPINS; i++) {
		snprintf(path, sizeof(path), "%s/%s", t->dir, pin_names[i]);
		fds[i] = bpf_obj_get(path);
		if (fds[i] < 0)
			r = -1;
	}
	t->fd_cfg = fds[0];
	t->fd_bm = fds[1];
	t->fd_pend = fds[2];
	t->fd_stats = fds[3];
	snprintf(path, sizeof(path), "%s/link", t->dir);
	t->fd_link = bpf_obj_get(path);
	/* Pins of an agent that hooked completions only: loaded afresh (a whole read), as
	 * that tracker may have lost writes (bpf/track.bpf.c, tern_rq_issue). */
	snprintf(path, sizeof(path), "%s/link-issue", t->dir);
	t->fd_link_issue = bpf_obj_get(path);
	if (r < 0 || t->fd_link < 0 || t->fd_link_issue < 0 ||
	    bpf_map_lookup_elem(t->fd_cfg, &k, &t->cfg) < 0 ||
	    bpf_obj_get_info_by_fd(t->fd_bm, &info, &len) < 0)
		return 0;
	/* Identity: the same disk, range and block size, and bitmaps of the same size. */
	if (t->cfg.major != want->major || t->cfg.first_minor != want->first_minor ||
	    t->cfg.start_sector != want->start_sector || t->cfg.nr_sectors != want->nr_sectors ||
	    t->cfg.block_shift != want->block_shift || !t->cfg.armed ||
	    info.max_entries != t->nwords)
		return 0;
	if (map_all(t) < 0)
		return 0;
	return 1;
}

static void close_fds(struct trk_ebpf *t)
{
	int *fds[NPINS] = { &t->fd_cfg, &t->fd_bm, &t->fd_pend, &t->fd_stats };

	for (size_t i = 0; i < NPINS; i++) {
		if (*fds[i] >= 0 && !t->skel)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

static void unmap_all(struct trk_ebpf *t)
{
	uint64_t **p[2] = { &t->bm, &t->pend };

	for (int i = 0; i < 2; i++) {
		if (*p[i])
			munmap(*p[i], (size_t)t->nwords * 8);
		*p[i] = NULL;
	}
}

/* Loads, configures (c), attaches and pins a new tracker under t->dir, over whatever
 * stale or foreign pins were there. 0, or -errno with why; the caller unwinds. */
static int load_fresh(struct trk_ebpf *t, const struct tern_track_cfg *c,
		      const struct source *src, uint32_t block_size, char *why, size_t why_len)
{
	char path[320];
	__u32 k = 0;
	int r;

	/* Stale or foreign pins: start afresh. */
	unmap_all(t);
	close_fds(t);
	if (t->fd_link >= 0)
		close(t->fd_link);
	if (t->fd_link_issue >= 0)
		close(t->fd_link_issue);
	t->fd_link = t->fd_link_issue = -1;
	unpin_all(t->dir);
	r = mkdir_p(t->dir, 0700);
	if (r < 0) {
		snprintf(why, why_len, "cannot create %s: %s", t->dir, strerror(-r));
		return r;
	}
	t->skel = track_bpf__open();
	if (!t->skel) {
		r = -errno ? -errno : -EINVAL;
		snprintf(why, why_len, "cannot open the BPF object: %s", strerror(-r));
		return r;
	}
	bpf_map__set_max_entries(t->skel->maps.bm, (__u32)t->nwords);
	bpf_map__set_max_entries(t->skel->maps.pend, (__u32)t->nwords);
	r = track_bpf__load(t->skel);
	if (r < 0) {
		snprintf(why, why_len, "the kernel refused the BPF program: %s", strerror(-r));
		return r;
	}
	t->fd_cfg = bpf_map__fd(t->skel->maps.cfg);
	t->fd_bm = bpf_map__fd(t->skel->maps.bm);
	t->fd_pend = bpf_map__fd(t->skel->maps.pend);
	t->fd_stats = bpf_map__fd(t->skel->maps.stats);
	r = map_all(t);
	if (r < 0) {
		snprintf(why, why_len, "cannot map the bitmaps: %s", strerror(-r));
		return r;
	}
	t->cfg = *c;
	r = new_gen(&t->cfg.gen);
	if (r == 0)
		r = bpf_map_update_elem(t->fd_cfg, &k, &t->cfg, BPF_ANY) < 0 ? -errno : 0;
	if (r < 0) {
		snprintf(why, why_len, "cannot configure the tracker: %s", strerror(-r));
		return r;
	}
	r = track_bpf__attach(t->skel);
	if (r < 0) {
		snprintf(why, why_len, "cannot attach to tp_btf/block_rq_complete and "
			 "block_rq_issue: %s", strerror(-r));
		return r;
	}
	/* Pinned, the program keeps tracking if this agent dies: the next one resumes. */
	for (size_t i = 0; i < NPINS && r == 0; i++) {
		struct bpf_map *maps[NPINS] = { t->skel->maps.cfg, t->skel->maps.bm,
						t->skel->maps.pend, t->skel->maps.stats };

		snprintf(path, sizeof(path), "%s/%s", t->dir, pin_names[i]);
		r = bpf_map__pin(maps[i], path);
	}
	snprintf(path, sizeof(path), "%s/link", t->dir);
	if (r == 0)
		r = bpf_link__pin(t->skel->links.tern_rq_complete, path);
	snprintf(path, sizeof(path), "%s/link-issue", t->dir);
	if (r == 0)
		r = bpf_link__pin(t->skel->links.tern_rq_issue, path);
	if (r < 0) {
		snprintf(why, why_len, "cannot pin the tracker under %s: %s", t->dir,
			 strerror(-r));
		return r;
	}
	log_info("%s: eBPF tracker on disk %u:%u from sector %" PRIu64 ", %" PRIu64
		 " blocks of %u, pinned at %s", src->id, c->major, c->first_minor, (uint64_t)c->start_sector, t->nblocks,
		 block_size, t->dir);
	return 0;
}

/* Starts tracking src (a block device or partition) in blocks of block_size bytes, or
 * resumes the tracking an earlier agent left pinned under pin_root/ID, when its identity
 * (disk, range, block size) matches. Returns 0 or -errno with a one-line reason in why
 * (-EOPNOTSUPP: not built, not a block device, no BTF; -EPERM: BPF not allowed). One
 * sequence (probe, resume or load_fresh) with one unwinding path. */
static int trk_ebpf_start(const struct source *src, uint32_t block_size, const char *pin_root,
			  struct trk_ebpf **ret_t, char *why, size_t why_len)
{
	struct tern_track_cfg c = { 0 };
	struct trk_ebpf *t = NULL;
	struct stat st;
	uint64_t start;
	unsigned maj, min;
	dev_t whole;
	char path[320];
	int r;

	if (!src->blockdev) {
		snprintf(why, why_len, "%s is not a block device", src->path);
		return -EOPNOTSUPP;
	}
	if (access("/sys/kernel/btf/vmlinux", R_OK) < 0) {
		snprintf(why, why_len, "the kernel has no BTF (/sys/kernel/btf/vmlinux)");
		return -EOPNOTSUPP;
	}
	if (fstat(src->fd, &st) < 0 || src_whole_disk(st.st_rdev, &whole, &start) < 0) {
		snprintf(why, why_len, "cannot find the disk of %s in sysfs", src->path);
		return -ENODEV;
	}
	maj = major(whole);
	min = minor(whole);
	/* block_rq_complete fires for requests of request-based (blk-mq) disks only; a
	 * bio-based device (device-mapper, md, a multipath head) never completes one of
	 * its own, so a tracker there would see nothing. */
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/mq", maj, min);
	if (access(path, F_OK) < 0) {
		snprintf(why, why_len, "%s is not a request-based (blk-mq) disk, whose writes the "
			 "block_rq_complete tracepoint would not see", src->path);
		return -EOPNOTSUPP;
	}
	r = ensure_bpffs(pin_root);
	if (r < 0) {
		snprintf(why, why_len, "cannot use bpffs at %s: %s", pin_root, strerror(-r));
		return r;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->fd_link = t->fd_link_issue = -1;
	t->fd_cfg = t->fd_bm = t->fd_pend = t->fd_stats = -1;
	/* The whole disk's count: the tracker watches the disk's requests. Test seam:
	 * TERN_TEST_INFLIGHT names a file read in its place (a test cannot hold a real write
	 * in flight across a harvest). */
	if (getenv("TERN_TEST_INFLIGHT"))
		snprintf(path, sizeof(path), "%s", getenv("TERN_TEST_INFLIGHT"));
	else
		snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/inflight", maj, min);
	t->fd_inflight = open(path, O_RDONLY | O_CLOEXEC);
	t->nblocks = DIV_ROUND_UP(src->size, block_size);
	t->nwords = DIV_ROUND_UP(t->nblocks, 64);
	pin_dir(pin_root, src->id, t->dir, sizeof(t->dir));
	c.major = maj;
	c.first_minor = min;
	c.start_sector = start;
	c.nr_sectors = src->size / 512;
	c.block_shift = (__u32)__builtin_ctz(block_size);
	c.armed = 1;
	c.acked_epoch = UINT64_MAX;

	r = try_resume(t, &c);
	if (r == 1 && t->cfg.gen == 0) {
		/* Pins an agent without generations left: the pending set grows on from here. */
		__u32 k = 0;

		r = new_gen(&t->cfg.gen) == 0 &&
		    bpf_map_update_elem(t->fd_cfg, &k, &t->cfg, BPF_ANY) == 0 ? 1 : 0;
	}
	if (r == 1) {
		t->resumed = true;
		log_info("%s: eBPF tracker resumed from %s (tracking since an earlier agent; last "
			 "acknowledged epoch %" PRIu64 ")", src->id, t->dir, (uint64_t)t->cfg.acked_epoch);
	} else {
		r = load_fresh(t, &c, src, block_size, why, why_len);
		if (r < 0)
			goto fail;
	}
	*ret_t = t;
	return 0;
fail:
	trk_ebpf_stop(t, !t->resumed);
	return r < 0 ? r : -EINVAL;
}

/* How long a harvest waits for the writes in flight at it to land. */
#define INFLIGHT_WAIT_NS (100 * 1000000ull)
/* Words of a harvest carried over one ack, in a 1 MiB list: 65,536 scattered blocks at
 * least, 4 M (16 GiB at 4 KiB) when dense; a larger harvest keeps the whole pending set. */
#define CARRY_MAX (1u << 16)

/* Whether every write the disk had in flight at the harvest has landed: polls the
 * disk's in-flight count for a moment, true when it reads 0. Why it matters: a write is
 * marked at its issue and again at its completion, and now and then the kernel runs no
 * program for a completion (track-stress.sh). A write issued before the harvest whose
 * completion is lost and that lands after the agent read its chunk is marked by nothing
 * after that read; once no write is in flight, every one issued before the harvest has
 * landed, so the reads that follow see it. A disk that never settles (busy, or no count
 * to read) keeps the harvested set for one more epoch instead. */
static bool writes_settled(const struct trk_ebpf *t)
{
	uint64_t end = now_ns() + INFLIGHT_WAIT_NS;
	unsigned long long rd, wr;
	char buf[64];
	ssize_t n;

	if (t->fd_inflight < 0)
		return false;
	for (;;) {
		n = pread(t->fd_inflight, buf, sizeof(buf) - 1, 0);
		if (n <= 0)
			return false;
		buf[n] = '\0';
		if (sscanf(buf, "%llu %llu", &rd, &wr) != 2)
			return false;
		if (wr == 0)
			return true;
		if (now_ns() >= end)
			return false;
		usleep(1000);
	}
}

/* Moves the blocks changed since the last harvest into the pending set and returns it: a
 * bitmap of ceil(nblocks / 64) words, valid until the next call. *ret_overflow is set
 * when a change was too large to record and the whole disk must be read. */
static int trk_ebpf_harvest(struct trk_ebpf *t, const uint64_t **ret_pending, bool *ret_overflow)
{
	struct tern_track_stats s = { 0 };
	__u32 k = 0;

	if (bpf_map_lookup_elem(t->fd_cfg, &k, &t->cfg) < 0)
		return -errno;
	/* A word's bits set before its exchange are taken; those set after stay for the
	 * next harvest (the program ORs them in atomically, on the same memory). */
	t->ncarry = 0;
	t->carry_all = false;
	for (uint64_t i = 0; i < t->nwords; i++) {
		uint64_t w = __atomic_exchange_n(&t->bm[i], 0, __ATOMIC_RELAXED);

		if (!w)
			continue;
		t->pend[i] |= w;
		if (t->carry_all)
			continue;
		if (!t->carry)
			t->carry = malloc(CARRY_MAX * sizeof(*t->carry));
		if (!t->carry || t->ncarry == CARRY_MAX)
			t->carry_all = true;
		else
			t->carry[t->ncarry++] = (struct carry){ i, w };
	}
	if (t->ncarry || t->carry_all) {
		if (writes_settled(t)) {
			t->ncarry = 0;
			t->carry_all = false;
		} else {
			log_debug("%s: writes still in flight after the harvest: its blocks are "
				  "read again next epoch", t->dir);
		}
	}
	if (bpf_map_lookup_elem(t->fd_stats, &k, &s) < 0)
		return -errno;
	/* The program only ever counts overflows up; the count this tracking has answered
	 * is kept with it, so one counted while this runs is seen by the next harvest. */
	*ret_overflow = s.overflow != t->cfg.overflow_seen;
	if (*ret_overflow) {
		/* A change too large to record: every block is pending, in the pinned set, so
		 * the whole disk is sent even when this epoch fails or the agent dies before
		 * its ack; only then is the overflow counted as answered. */
		memset(t->pend, 0xff, (size_t)t->nwords * 8);
		if (t->nblocks % 64)
			t->pend[t->nwords - 1] = (UINT64_C(1) << (t->nblocks % 64)) - 1;
		t->cfg.overflow_seen = s.overflow;
		if (bpf_map_update_elem(t->fd_cfg, &k, &t->cfg, BPF_ANY) < 0)
			return -errno;
	}
	*ret_pending = t->pend;
	return 0;
}

/* The receiver acknowledged epoch: forget the pending set, remember the epoch. The
 * generation changes first: an agent killed between the two then reports a generation no
 * checkpoint was taken under, never the old one with a pending set cleared. */
static int trk_ebpf_acked(struct trk_ebpf *t, uint64_t epoch)
{
	__u32 k = 0;
	int r;

	if (bpf_map_lookup_elem(t->fd_cfg, &k, &t->cfg) < 0)
		return -errno;
	r = new_gen(&t->cfg.gen);
	if (r < 0)
		return r;
	if (bpf_map_update_elem(t->fd_cfg, &k, &t->cfg, BPF_ANY) < 0)
		return -errno;
	/* What a harvest took before writes landed stays: its chunks may have been read
	 * before one of them, whose completion no program saw (writes_settled). */
	if (!t->carry_all) {
		memset(t->pend, 0, (size_t)t->nwords * 8);
		for (size_t i = 0; i < t->ncarry; i++)
			t->pend[t->carry[i].i] |= t->carry[i].w;
	}
	t->ncarry = 0;
	t->carry_all = false;
	t->cfg.acked_epoch = epoch;
	if (bpf_map_update_elem(t->fd_cfg, &k, &t->cfg, BPF_ANY) < 0)
		return -errno;
	return 0;
}

/* The last acknowledged epoch this tracking saw (UINT64_MAX: none): when the receiver
 * expects the next one, tracking has been continuous since its state. */
static uint64_t trk_ebpf_acked_epoch(const struct trk_ebpf *t)
{
	return t->cfg.acked_epoch;
}

static bool trk_ebpf_resumed(const struct trk_ebpf *t)
{
	return t->resumed;
}

static uint64_t trk_ebpf_gen(const struct trk_ebpf *t)
{
	return t->cfg.gen;
}

static uint64_t trk_ebpf_nblocks(const struct trk_ebpf *t)
{
	return t->nblocks;
}

/* The pending set as a reboot's save records it (track.h's track_peek): the harvested
 * set and the bitmap, so writes not yet harvested count; an overflow not yet answered by a
 * harvest marks everything. */
static int trk_ebpf_peek(struct trk_ebpf *t, uint64_t *out, uint64_t *ret_acked)
{
	struct tern_track_stats s = { 0 };
	__u32 k = 0;

	if (bpf_map_lookup_elem(t->fd_cfg, &k, &t->cfg) < 0)
		return -errno;
	for (uint64_t i = 0; i < t->nwords; i++)
		out[i] = __atomic_load_n(&t->pend[i], __ATOMIC_RELAXED) |
			 __atomic_load_n(&t->bm[i], __ATOMIC_RELAXED);
	if (bpf_map_lookup_elem(t->fd_stats, &k, &s) < 0 || s.overflow != t->cfg.overflow_seen)
		memset(out, 0xff, (size_t)t->nwords * 8);
	if (t->nblocks % 64)
		out[t->nwords - 1] &= (UINT64_C(1) << (t->nblocks % 64)) - 1;
	*ret_acked = t->cfg.acked_epoch;
	return 0;
}

/* A fresh tracker takes over a saved pending set: it joins the pinned one, and the last
 * acknowledged epoch is the saved tracker's, so the next agent finds tracking continuous. */
static int trk_ebpf_seed(struct trk_ebpf *t, const uint64_t *pending, uint64_t acked_epoch)
{
	__u32 k = 0;

	for (uint64_t i = 0; i < t->nwords; i++)
		__atomic_fetch_or(&t->pend[i], pending[i], __ATOMIC_RELAXED);
	if (bpf_map_lookup_elem(t->fd_cfg, &k, &t->cfg) < 0)
		return -errno;
	t->cfg.acked_epoch = acked_epoch;
	if (bpf_map_update_elem(t->fd_cfg, &k, &t->cfg, BPF_ANY) < 0)
		return -errno;
	return 0;
}

/* Detaches and frees; with unpin the pinned program and maps are removed as well, else
 * they keep tracking for the next agent. NULL-safe, returns NULL. */
static struct trk_ebpf *trk_ebpf_stop(struct trk_ebpf *t, bool unpin)
{
	if (!t)
		return NULL;
	unmap_all(t);
	if (t->fd_link >= 0)
		close(t->fd_link);
	if (t->fd_link_issue >= 0)
		close(t->fd_link_issue);
	if (t->fd_inflight >= 0)
		close(t->fd_inflight);
	free(t->carry);
	close_fds(t);
	if (unpin)
		unpin_all(t->dir);
	/* A pinned link keeps the program attached after the skeleton lets go of it. */
	track_bpf__destroy(t->skel);
	free(t);
	return NULL;
}

#else

struct trk_ebpf {
	int unused;
};

static int trk_ebpf_start(const struct source *src, uint32_t block_size, const char *pin_root,
			  struct trk_ebpf **ret_t, char *why, size_t why_len)
{
	snprintf(why, why_len, "this build has no eBPF tracker (clang, bpftool or libbpf missing)");
	return -EOPNOTSUPP;
}

static int trk_ebpf_harvest(struct trk_ebpf *t, const uint64_t **ret_pending, bool *ret_overflow)
{
	return -EOPNOTSUPP;
}

static int trk_ebpf_acked(struct trk_ebpf *t, uint64_t epoch)
{
	return -EOPNOTSUPP;
}

static uint64_t trk_ebpf_acked_epoch(const struct trk_ebpf *t)
{
	return UINT64_MAX;
}

static bool trk_ebpf_resumed(const struct trk_ebpf *t)
{
	return false;
}

static uint64_t trk_ebpf_gen(const struct trk_ebpf *t)
{
	return 0;
}

static uint64_t trk_ebpf_nblocks(const struct trk_ebpf *t)
{
	return 0;
}

static struct trk_ebpf *trk_ebpf_stop(struct trk_ebpf *t, bool unpin)
{
	return NULL;
}

static bool trk_ebpf_forget(const char *pin_root, const char *id)
{
	return false;
}

static int trk_ebpf_peek(struct trk_ebpf *t, uint64_t *out, uint64_t *ret_acked)
{
	return -EOPNOTSUPP;
}

static int trk_ebpf_seed(struct trk_ebpf *t, const uint64_t *pending, uint64_t acked_epoch)
{
	return -EOPNOTSUPP;
}
#endif

static int ebpf_start(struct source *src, const struct track_conf *conf, unsigned slot,
		      unsigned nslots, void **ret_b, char *why, size_t why_len)
{
	struct trk_ebpf *t;
	int r = trk_ebpf_start(src, conf->block_size, conf->pin_root, &t, why, why_len);

	if (r == 0)
		*ret_b = t;
	return r;
}

static int ebpf_harvest(void *b, const uint64_t **ret_pending, bool *ret_overflow, int *ret_fd)
{
	*ret_fd = -1;
	return trk_ebpf_harvest(b, ret_pending, ret_overflow);
}

static int ebpf_acked(void *b, uint64_t epoch)
{
	return trk_ebpf_acked(b, epoch);
}

static uint64_t ebpf_acked_epoch(const void *b)
{
	return trk_ebpf_acked_epoch(b);
}

static bool ebpf_resumed(const void *b)
{
	return trk_ebpf_resumed(b);
}

static uint64_t ebpf_gen(const void *b)
{
	return trk_ebpf_gen(b);
}

static uint64_t ebpf_nblocks(const void *b)
{
	return trk_ebpf_nblocks(b);
}

static void ebpf_stop(void *b, bool forget)
{
	trk_ebpf_stop(b, forget);
}

static void ebpf_forget(const char *pin_root, const char *id, const char *instead)
{
	if (trk_ebpf_forget(pin_root, id))
		log_info("%s: removed the eBPF tracking an earlier agent left pinned; tracker %s "
			 "replaces it", id, instead);
}

static int ebpf_peek(void *b, uint64_t *out, uint64_t *ret_acked)
{
	return trk_ebpf_peek(b, out, ret_acked);
}

static int ebpf_seed(void *b, const uint64_t *pending, uint64_t acked_epoch)
{
	return trk_ebpf_seed(b, pending, acked_epoch);
}

const struct track_ops track_ebpf_ops = {
	.kind = TRACK_EBPF,
	.proto = PROTO_TRACKER_EBPF,
	.grow_overlaps = true,
	.start = ebpf_start,
	.harvest = ebpf_harvest,
	.acked = ebpf_acked,
	.acked_epoch = ebpf_acked_epoch,
	.resumed = ebpf_resumed,
	.gen = ebpf_gen,
	.nblocks = ebpf_nblocks,
	.stop = ebpf_stop,
	.forget = ebpf_forget,
	.peek = ebpf_peek,
	.seed = ebpf_seed,
};

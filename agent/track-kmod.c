// SPDX-License-Identifier: GPL-2.0-only
/* The kernel-module change tracker, a backend of track.h: tern.ko (kmod-optional/) marks
 * the blocks each completed write touched in a bitmap per registered disk; the agent
 * harvests it through /dev/tern. The module keeps tracking between agents, like the eBPF
 * tracker's pins; a registration whose identity differs is replaced. */
#include "agent/track-ops.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "agent/source.h"
#include "common/log.h"
#include "common/util.h"
#include "kmod-optional/uapi/tern.h"

#define KMOD_DEV "/dev/" TERN_DEV_NAME

struct trk_kmod {
	int fd;
	char id[TERN_ID_LEN];
	uint64_t nblocks, nwords;
	uint64_t *pend;          /* the module's pending set as of the last harvest */
	uint64_t acked_epoch;
	uint64_t gen;            /* the module's generation (uapi tern.h, struct tern_ack) */
	bool resumed;
};

static struct trk_kmod *trk_kmod_stop(struct trk_kmod *t, bool unregister);

/* True when /dev/tern exists, i.e. tern.ko is loaded. */
static bool trk_kmod_loaded(void)
{
	return access(KMOD_DEV, F_OK) == 0;
}

/* Registers src (a block device or partition of a blk-mq disk) with tern.ko in blocks of
 * block_size bytes, or resumes the tracker an earlier agent left registered under the
 * same disk id when its identity (disk, range, block size) matches; a stale one is
 * replaced. Returns 0 or -errno with a one-line reason in why (-ENOENT: not loaded,
 * -EOPNOTSUPP: not a blk-mq block device, -EPROTO: another uapi version). */
static int trk_kmod_start(const struct source *src, uint32_t block_size, struct trk_kmod **ret_t,
			  char *why, size_t why_len)
{
	struct tern_register reg = { .version = TERN_UAPI_VERSION, .flags = TERN_REG_REPLACE };
	struct tern_version v;
	struct trk_kmod *t = NULL;
	struct stat st;
	char path[320];
	uint64_t start;
	dev_t whole;
	int r;

	if (!src->blockdev) {
		snprintf(why, why_len, "%s is not a block device", src->path);
		return -EOPNOTSUPP;
	}
	if (strlen(src->id) >= TERN_ID_LEN) {
		snprintf(why, why_len, "disk id %s is longer than tern.ko's %d characters", src->id,
			 TERN_ID_LEN - 1);
		return -ENAMETOOLONG;
	}
	if (fstat(src->fd, &st) < 0 || src_whole_disk(st.st_rdev, &whole, &start) < 0) {
		snprintf(why, why_len, "cannot find the disk of %s in sysfs", src->path);
		return -ENODEV;
	}
	/* The module hooks block_rq_complete, which bio-based devices (dm, md) never fire. */
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/mq", major(whole), minor(whole));
	if (access(path, F_OK) < 0) {
		snprintf(why, why_len, "%s is not a request-based (blk-mq) disk, whose writes the "
			 "block_rq_complete tracepoint would not see", src->path);
		return -EOPNOTSUPP;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->fd = open(KMOD_DEV, O_RDWR | O_CLOEXEC);
	if (t->fd < 0) {
		r = -errno;
		snprintf(why, why_len, r == -ENOENT ? "tern.ko is not loaded (no " KMOD_DEV ")" :
			 "cannot open " KMOD_DEV ": %s", strerror(-r));
		goto fail;
	}
	r = ioctl(t->fd, TERN_IOC_VERSION, &v) < 0 ? -errno : 0;
	if (r == 0 && v.version != TERN_UAPI_VERSION)
		r = -EPROTO;
	if (r < 0) {
		snprintf(why, why_len, "tern.ko speaks another interface (uapi %u, the agent %u)",
			 r == -EPROTO ? v.version : 0, TERN_UAPI_VERSION);
		goto fail;
	}
	snprintf(t->id, sizeof(t->id), "%s", src->id);
	memcpy(reg.id, t->id, sizeof(reg.id));
	reg.major = major(whole);
	reg.first_minor = minor(whole);
	reg.start_sector = start;
	reg.nr_sectors = DIV_ROUND_UP(src->size, 512);
	reg.block_size = block_size;
	if (ioctl(t->fd, TERN_IOC_REGISTER, &reg) < 0) {
		r = -errno;
		snprintf(why, why_len, "tern.ko refused to track %s: %s", src->path, strerror(-r));
		goto fail;
	}
	t->resumed = reg.flags & TERN_REG_RESUMED;
	t->acked_epoch = reg.acked_epoch;
	t->gen = reg.gen;
	t->nblocks = reg.nblocks;
	t->nwords = DIV_ROUND_UP(t->nblocks, 64);
	t->pend = calloc(t->nwords ? t->nwords : 1, 8);
	if (!t->pend) {
		r = -ENOMEM;
		snprintf(why, why_len, "out of memory");
		goto fail;
	}
	if (t->resumed)
		log_info("%s: kmod tracker resumed (tracking since an earlier agent; last "
			 "acknowledged epoch %" PRIu64 ")", src->id, t->acked_epoch);
	else
		log_info("%s: kmod tracker on disk %u:%u from sector %" PRIu64 ", %" PRIu64
			 " blocks of %u", src->id, major(whole), minor(whole), start, t->nblocks,
			 block_size);
	*ret_t = t;
	return 0;
fail:
	/* A tracker this call created is removed; one it resumed keeps recording. */
	trk_kmod_stop(t, t->fd >= 0 && t->nblocks && !t->resumed);
	return r;
}

/* Moves the blocks changed since the last harvest into the pending set and returns it: a
 * bitmap of ceil(nblocks / 64) words, valid until the next call. The module records any
 * change, so *ret_overflow is always false. */
static int trk_kmod_harvest(struct trk_kmod *t, const uint64_t **ret_pending, bool *ret_overflow)
{
	struct tern_harvest h = { .buf = (uintptr_t)t->pend, .buf_len = t->nwords * 8 };

	memcpy(h.id, t->id, sizeof(h.id));
	if (ioctl(t->fd, TERN_IOC_HARVEST, &h) < 0)
		return -errno;
	*ret_overflow = false;
	*ret_pending = t->pend;
	return 0;
}

/* The receiver acknowledged epoch: the module forgets the pending set, keeps the epoch. */
static int trk_kmod_acked(struct trk_kmod *t, uint64_t epoch)
{
	struct tern_ack a = { .epoch = epoch };

	memcpy(a.id, t->id, sizeof(a.id));
	if (ioctl(t->fd, TERN_IOC_ACK, &a) < 0)
		return -errno;
	memset(t->pend, 0, t->nwords * 8);
	t->acked_epoch = epoch;
	t->gen = a.gen;
	return 0;
}

/* The last acknowledged epoch of this tracking (UINT64_MAX: none). */
static uint64_t trk_kmod_acked_epoch(const struct trk_kmod *t)
{
	return t->acked_epoch;
}

static bool trk_kmod_resumed(const struct trk_kmod *t)
{
	return t->resumed;
}

static uint64_t trk_kmod_nblocks(const struct trk_kmod *t)
{
	return t->nblocks;
}

/* Closes and frees; with unregister the module's tracker is removed too, else it keeps
 * recording for the next agent. NULL-safe, returns NULL. */
static struct trk_kmod *trk_kmod_stop(struct trk_kmod *t, bool unregister)
{
	if (!t)
		return NULL;
	if (unregister && t->fd >= 0) {
		struct tern_unregister u;

		memcpy(u.id, t->id, sizeof(u.id));
		if (ioctl(t->fd, TERN_IOC_UNREGISTER, &u) < 0 && errno != ENOENT)
			log_warn("%s: cannot unregister the kmod tracker: %s", t->id, strerror(errno));
	}
	if (t->fd >= 0)
		close(t->fd);
	free(t->pend);
	free(t);
	return NULL;
}

static int kmod_start(struct source *src, const struct track_conf *conf, unsigned slot,
		      unsigned nslots, void **ret_b, char *why, size_t why_len)
{
	struct trk_kmod *t;
	int r = trk_kmod_start(src, conf->block_size, &t, why, why_len);

	if (r == 0)
		*ret_b = t;
	return r;
}

static int kmod_harvest(void *b, const uint64_t **ret_pending, bool *ret_overflow, int *ret_fd)
{
	*ret_fd = -1;
	return trk_kmod_harvest(b, ret_pending, ret_overflow);
}

static int kmod_acked(void *b, uint64_t epoch)
{
	return trk_kmod_acked(b, epoch);
}

static uint64_t kmod_acked_epoch(const void *b)
{
	return trk_kmod_acked_epoch(b);
}

static bool kmod_resumed(const void *b)
{
	return trk_kmod_resumed(b);
}

/* The module keeps the generation with the tracking, so a resumed tracker reports the
 * one its chunks were read under (the first copy's checkpoint records it). */
static uint64_t kmod_gen(const void *b)
{
	return ((const struct trk_kmod *)b)->gen;
}

static uint64_t kmod_nblocks(const void *b)
{
	return trk_kmod_nblocks(b);
}

static void kmod_stop(void *b, bool forget)
{
	trk_kmod_stop(b, forget);
}

const struct track_ops track_kmod_ops = {
	.kind = TRACK_KMOD,
	.proto = PROTO_TRACKER_KMOD,
	.available = trk_kmod_loaded,
	.start = kmod_start,
	.harvest = kmod_harvest,
	.acked = kmod_acked,
	.acked_epoch = kmod_acked_epoch,
	.resumed = kmod_resumed,
	.gen = kmod_gen,
	.nblocks = kmod_nblocks,
	.stop = kmod_stop,
};

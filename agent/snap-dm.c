// SPDX-License-Identifier: GPL-2.0-only
/* The dm-snapshot provider (--snapshot dm), behind snap.h: each epoch reads a
 * device-mapper snapshot of a device-mapper source, a point-in-time image, and the
 * snapshot's exceptions (the chunks copied out because the origin was written) are the
 * next epoch's changed blocks. The classic layout, as LVM builds it:
 *   ORIGIN (the user's device)  snapshot-origin tern-ID-real
 *   tern-ID-real                the origin's own table
 *   tern-ID-sN                  snapshot tern-ID-real tern-ID-cow(N%2) P chunk
 *   tern-ID-cow0, -cow1         linear slices of the --snapshot-cow device
 * Two slices, because snapshot N+1 is taken before snapshot N is retired: writes between
 * the two land in both, so no write falls between epochs. This file: the devices' life
 * across epochs; the store's and source's checks are in snap-dm-store.c, the removal of
 * what a killed agent left in snap-dm-cleanup.c. */
#include "agent/snap-dm-impl.h"
#include "agent/snap-ops.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/dm-ioctl.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "agent/cow.h"
#include "agent/dmctl.h"
#include "agent/source.h"
#include "common/log.h"
#include "common/util.h"

struct snap_dm {
	int ctl;
	struct source *src;
	int snap_fd;              /* the snapshot read now, which the epoch reads */
	char id[72];
	char origin_name[DMCTL_NAME_LEN];
	dev_t origin, real, cow[2];
	dev_t snap, stale;        /* the snapshot read now; one that could not be removed */
	unsigned snap_slice, stale_slice;
	bool origin_loaded;       /* the origin has our snapshot-origin table, inactive or live */
	bool switched;            /* ... live */
	struct dmctl_table *own;  /* the origin's table before us */
	uint64_t sectors, slice_sectors;
	uint32_t block_size;
	uint64_t nblocks, *pend;
	uint64_t seq, acked_epoch;
	bool overflow;            /* changes unknown until the next acknowledgement */
};

static struct snap_dm *snap_dm_stop(struct snap_dm *t);

static void dev_name(char *buf, size_t len, const char *id, const char *suffix)
{
	snprintf(buf, len, PREFIX "%s-%s", id, suffix);
}

/* Creates tern-ID-suffix with table tbl and makes it live. */
static int make_dev(struct snap_dm *t, const char *suffix, const struct dmctl_table *tbl,
		    bool resume, dev_t *ret_dev)
{
	char name[DMCTL_NAME_LEN], uuid[DMCTL_UUID_LEN];
	dev_t dev;
	int r;

	dev_name(name, sizeof(name), t->id, suffix);
	snprintf(uuid, sizeof(uuid), "TERN-%s-%s", t->id, suffix);
	r = dmctl_create(t->ctl, name, uuid, &dev);
	if (r < 0)
		return log_errno(r, "%s: cannot create device-mapper device %s", t->id, name);
	r = dmctl_load(t->ctl, dev, tbl);
	if (r < 0) {
		log_errno(r, "%s: the kernel refused the table of %s (%s %s)", t->id, name,
			  tbl->t[0].type, tbl->t[0].params);
		goto fail;
	}
	if (resume) {
		r = dmctl_resume(t->ctl, dev);
		if (r < 0) {
			log_errno(r, "%s: cannot activate %s", t->id, name);
			goto fail;
		}
	}
	*ret_dev = dev;
	return 0;
fail:
	dmctl_remove(t->ctl, dev);
	return r;
}

int remove_dev(int ctl, dev_t dev, const char *what)
{
	int r = dmctl_remove(ctl, dev);

	if (r < 0)
		log_errno(r, "cannot remove device-mapper device %s (%u:%u); run the agent again, "
			  "which removes what it left, or dmsetup remove it", what, major(dev),
			  minor(dev));
	return r;
}

static int one_target(struct dmctl_table *tbl, uint64_t sectors, const char *type,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int one_target(struct dmctl_table *tbl, uint64_t sectors, const char *type,
		      const char *fmt, ...)
{
	char params[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(params, sizeof(params), fmt, ap);
	va_end(ap);
	return dmctl_table_add(tbl, 0, sectors, type, params);
}

/* A new snapshot gets a fresh store: the kernel starts one where the header is zero. */
static int zero_header(struct snap_dm *t, dev_t cow)
{
	size_t len = t->block_size;
	void *buf = alloc_aligned(4096, len);
	int fd, r = 0;

	if (!buf)
		return -ENOMEM;
	memset(buf, 0, len);
	fd = dmctl_open_dev(cow, O_RDWR | O_DIRECT);
	if (fd < 0) {
		r = fd;
	} else {
		ssize_t n = pwrite(fd, buf, len, 0);

		if (n != (ssize_t)len)
			r = n < 0 ? -errno : -EIO;
		else if (fdatasync(fd) < 0)
			r = -errno;
		close(fd);
	}
	free(buf);
	return r;
}

/* Suspends the origin so no write is in flight while a snapshot becomes active. lockfs
 * freezes a filesystem on it first, for an image it would mount cleanly; at the cutover
 * the filesystem is already frozen (FIFREEZE), which makes that freeze fail with EBUSY. */
static int suspend_origin(struct snap_dm *t)
{
	int r = dmctl_suspend(t->ctl, t->origin, true);

	if (r == -EBUSY)
		r = dmctl_suspend(t->ctl, t->origin, false);
	return r;
}

/* Takes snapshot tern-ID-sSEQ on COW slice slice, and opens it for reading. */
static int take(struct snap_dm *t, unsigned slice, dev_t *ret_snap, int *ret_fd)
{
	struct dmctl_table *tbl = calloc(1, sizeof(*tbl)), *otbl = NULL;
	char suffix[32];
	dev_t snap = 0;
	int r, r2, fd = -1;

	if (!tbl)
		return -ENOMEM;
	snprintf(suffix, sizeof(suffix), "s%" PRIu64, t->seq);
	r = zero_header(t, t->cow[slice]);
	if (r < 0) {
		log_errno(r, "%s: cannot reset COW slice %u", t->id, slice);
		goto out;
	}
	r = one_target(tbl, t->sectors, "snapshot", "%u:%u %u:%u P %u", major(t->real),
		       minor(t->real), major(t->cow[slice]), minor(t->cow[slice]),
		       t->block_size / 512);
	if (r < 0)
		goto out;
	/* Loaded, not resumed: an inactive snapshot gets no copies yet. */
	r = make_dev(t, suffix, tbl, false, &snap);
	if (r < 0)
		goto out;
	if (!t->origin_loaded) {
		r = -ENOMEM;
		otbl = calloc(1, sizeof(*otbl));
		if (!otbl)
			goto out;
		r = one_target(otbl, t->sectors, "snapshot-origin", "%u:%u", major(t->real),
			       minor(t->real));
		if (r == 0)
			r = dmctl_load(t->ctl, t->origin, otbl);
		if (r < 0) {
			log_errno(r, "%s: cannot load a snapshot-origin table into %s", t->id,
				  t->origin_name);
			goto out;
		}
		t->origin_loaded = true;
	}
	r = suspend_origin(t);
	if (r < 0) {
		log_errno(r, "%s: cannot suspend %s", t->id, t->origin_name);
		goto out;
	}
	/* The point in time: the origin is quiet, the snapshot becomes active, then the
	 * origin resumes (as a snapshot-origin, the first time). Resume whatever happened. */
	r = dmctl_resume(t->ctl, snap);
	r2 = dmctl_resume(t->ctl, t->origin);
	if (r2 < 0)
		log_errno(r2, "%s: cannot resume %s", t->id, t->origin_name);
	else
		t->switched = true;
	if (r < 0)
		log_errno(r, "%s: cannot activate snapshot " PREFIX "%s-%s", t->id, t->id, suffix);
	if (r < 0 || r2 < 0) {
		r = r < 0 ? r : r2;
		goto out;
	}
	fd = dmctl_open_dev(snap, O_RDONLY | (t->src->direct ? O_DIRECT : 0));
	if (fd < 0) {
		r = log_errno(fd, "%s: cannot open snapshot /dev/dm-%u", t->id, minor(snap));
		goto out;
	}
	log_info("%s: snapshot " PREFIX "%s-%s taken; this epoch reads it", t->id, t->id, suffix);
	t->seq++;
	*ret_snap = snap;
	*ret_fd = fd;
	snap = 0;
	r = 0;
out:
	if (snap)
		dmctl_remove(t->ctl, snap);
	dmctl_table_free(otbl);
	dmctl_table_free(tbl);
	return r;
}

/* Removes snapshot snap (its descriptor closed) and adds its exceptions to the pending set;
 * when they are lost (it overflowed, its store does not add up) sets t->overflow. Returns
 * 0, or -errno when the snapshot could not be removed. */
static int retire(struct snap_dm *t, dev_t snap, unsigned slice)
{
	struct dmctl_table *st = NULL;
	const char *why = NULL;
	int64_t n = 0;
	int r, fd;

	/* A full COW turns the snapshot "Invalid" (the store's header says so too). */
	r = dmctl_table(t->ctl, snap, DMCTL_STATUS, &st);
	if (r == 0 && (st->n != 1 || !(st->t[0].params[0] >= '0' && st->t[0].params[0] <= '9')))
		why = "its COW slice is full";
	dmctl_table_free(st);
	r = remove_dev(t->ctl, snap, "snapshot");
	if (r < 0)
		return r;
	if (!why) {
		fd = dmctl_open_dev(t->cow[slice], O_RDONLY | O_DIRECT);
		n = fd < 0 ? fd : cow_read_exceptions(fd, t->slice_sectors * 512, t->src->size,
						       t->block_size, t->pend);
		if (fd >= 0)
			close(fd);
		if (n == -ESTALE)
			why = "its COW slice is full";
		else if (n < 0)
			why = n == -EBADMSG ? "its exception store is malformed" :
					      "its exception store cannot be read";
	}
	if (why) {
		log_warn("%s: the snapshot before this one is lost (%s): the changes since it was "
			 "taken are unknown, so this epoch reads the whole disk and sends what "
			 "differs from the receiver's fingerprints; nothing is lost, since only "
			 "acknowledged epochs count", t->id, why);
		t->overflow = true;
	} else {
		log_debug("%s: %" PRId64 " chunk(s) written since the previous snapshot", t->id, n);
	}
	return 0;
}

/* Sets up src (a device-mapper device; borrowed, must outlive the tracker) for snapshots:
 * tern-ID-real takes its table, tern-ID-cow0/1 are slices slot*2 and slot*2+1 of nslots*2
 * equal slices of the block device cow, and src becomes a snapshot-origin at the first
 * harvest. Snapshot chunks are block_size bytes. Returns 0 or -errno with a reason in why;
 * on failure everything made is undone. Long, as a sequence of checks and devices made in
 * order with one unwinding path (snap_dm_stop): split, the order would be harder to see. */
static int snap_dm_start(struct source *src, uint32_t block_size, const char *cow, unsigned slot,
			 unsigned nslots, struct snap_dm **ret_t, char *why, size_t why_len)
{
	struct snap_dm *t = calloc(1, sizeof(*t));
	struct dmctl_info info;
	struct stat st;
	uint64_t cow_bytes = 0;
	int r, fd;

	if (!t)
		return -ENOMEM;
	t->ctl = t->snap_fd = -1;
	t->src = src;
	t->block_size = block_size;
	t->acked_epoch = UINT64_MAX;
	snprintf(t->id, sizeof(t->id), "%s", src->id);
	r = -EOPNOTSUPP;
	if (!src->blockdev || fstat(src->fd, &st) < 0 || !dmctl_is_dm(st.st_rdev)) {
		snprintf(why, why_len, "%s is not a device-mapper device (an LVM volume or a "
			 "dmsetup device)", src->path);
		goto fail;
	}
	t->origin = st.st_rdev;
	r = dmctl_open(&t->ctl);
	if (r < 0) {
		snprintf(why, why_len, "cannot open /dev/mapper/control: %s", strerror(-r));
		goto fail;
	}
	r = dmctl_info(t->ctl, NULL, t->origin, &info);
	if (r == 0)
		r = dmctl_table(t->ctl, t->origin, DMCTL_LIVE_TABLE, &t->own);
	if (r < 0) {
		snprintf(why, why_len, "cannot read the table of %s: %s", src->path, strerror(-r));
		goto fail;
	}
	snprintf(t->origin_name, sizeof(t->origin_name), "%s", info.name);
	r = -EOPNOTSUPP;
	if (strncmp(info.name, PREFIX, strlen(PREFIX)) == 0 || t->own->n == 0) {
		snprintf(why, why_len, "%s is tern's own device or has no table", info.name);
		goto fail;
	}
	for (unsigned i = 0; i < t->own->n; i++) {
		if (strncmp(t->own->t[i].type, "snapshot", 8) == 0) {
			snprintf(why, why_len, "%s is itself a %s; stacking snapshots is not supported",
				 info.name, t->own->t[i].type);
			goto fail;
		}
	}
	t->sectors = dmctl_table_sectors(t->own);
	if (t->sectors * 512 < src->size) {
		snprintf(why, why_len, "the table of %s is shorter than the device", info.name);
		goto fail;
	}
	fd = open(cow, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	r = fd < 0 ? -errno : 0;
	if (r == 0 && (fstat(fd, &st) < 0 || !S_ISBLK(st.st_mode) ||
		       ioctl(fd, BLKGETSIZE64, &cow_bytes) < 0))
		r = -ENOTBLK;
	if (fd >= 0)
		close(fd);
	if (r < 0) {
		snprintf(why, why_len, "--snapshot-cow %s: not a block device (%s)", cow, strerror(-r));
		goto fail;
	}
	/* Each disk takes two slices, each a whole number of chunks. */
	t->slice_sectors = cow_bytes / 512 / (2 * (uint64_t)nslots);
	t->slice_sectors -= t->slice_sectors % (block_size / 512);
	if (t->slice_sectors * 512 < 64 * (uint64_t)block_size) {
		r = -ENOSPC;
		snprintf(why, why_len, "--snapshot-cow %s is too small for %u disk(s)", cow, nslots);
		goto fail;
	}
	{
		struct dmctl_table *tbl = calloc(1, sizeof(*tbl));

		r = tbl ? 0 : -ENOMEM;
		for (unsigned k = 0; r == 0 && k < 2; k++) {
			char suffix[8];

			snprintf(suffix, sizeof(suffix), "cow%u", k);
			dmctl_table_free(tbl);
			tbl = calloc(1, sizeof(*tbl));
			r = tbl ? one_target(tbl, t->slice_sectors, "linear", "%u:%u %" PRIu64,
					     major(st.st_rdev), minor(st.st_rdev),
					     (2 * (uint64_t)slot + k) * t->slice_sectors) : -ENOMEM;
			if (r == 0)
				r = make_dev(t, suffix, tbl, true, &t->cow[k]);
		}
		dmctl_table_free(tbl);
		if (r == 0)
			r = make_dev(t, "real", t->own, true, &t->real);
		if (r < 0) {
			snprintf(why, why_len, "cannot set up the snapshot devices: %s", strerror(-r));
			goto fail;
		}
	}
	r = -ENOMEM;
	t->nblocks = DIV_ROUND_UP(src->size, block_size);
	t->pend = calloc(DIV_ROUND_UP(t->nblocks, 64) ? DIV_ROUND_UP(t->nblocks, 64) : 1, 8);
	if (!t->pend) {
		snprintf(why, why_len, "out of memory");
		goto fail;
	}
	log_info("%s: dm-snapshot source: %s (%s) is read through snapshots of %u KiB chunks, "
		 "each epoch from one taken as it starts; COW slices of %" PRIu64 " MiB on %s",
		 src->id, src->path, info.name, block_size / 1024, t->slice_sectors / 2048, cow);
	*ret_t = t;
	return 0;
fail:
	snap_dm_stop(t);
	return r;
}

/* Takes a new snapshot, which *ret_fd reads from then on, and retires the previous one: its
 * exceptions join the pending set, returned as a bitmap of ceil(nblocks / 64) words valid
 * until the next call. *ret_overflow: a snapshot overflowed its COW slice (or its store
 * could not be read), so the changes are unknown until an epoch is acknowledged: read the
 * whole disk. */
static int snap_dm_take(void *b, int *ret_fd, const uint64_t **ret_pending, bool *ret_overflow)
{
	struct snap_dm *t = b;
	dev_t prev = t->snap, snap = 0;
	unsigned slice;
	int r, fd = -1;

	/* A snapshot that could not be removed last time still uses its slice. */
	if (t->stale) {
		r = retire(t, t->stale, t->stale_slice);
		if (r < 0)
			return r;
		t->stale = 0;
	}
	slice = prev ? !t->snap_slice : 0;
	r = take(t, slice, &snap, &fd);
	if (r < 0)
		return r;
	/* The previous snapshot is closed before it is removed: an open device stays. */
	if (t->snap_fd >= 0)
		close(t->snap_fd);
	t->snap_fd = fd;
	t->snap = snap;
	if (prev) {
		unsigned prev_slice = t->snap_slice;

		t->snap_slice = slice;
		r = retire(t, prev, prev_slice);
		if (r < 0) {
			t->stale = prev;
			t->stale_slice = prev_slice;
			return r;
		}
	}
	t->snap_slice = slice;
	*ret_fd = t->snap_fd;
	*ret_pending = t->pend;
	*ret_overflow = t->overflow;
	return 0;
}

/* The receiver acknowledged epoch: forget the pending set and any overflow. */
static int snap_dm_acked(void *b, uint64_t epoch)
{
	struct snap_dm *t = b;

	memset(t->pend, 0, DIV_ROUND_UP(t->nblocks, 64) * 8);
	t->overflow = false;
	t->acked_epoch = epoch;
	return 0;
}

/* The last acknowledged epoch (UINT64_MAX: none). */
static uint64_t snap_dm_acked_epoch(const void *b)
{
	const struct snap_dm *t = b;

	return t->acked_epoch;
}

static uint64_t snap_dm_nblocks(const void *b)
{
	const struct snap_dm *t = b;

	return t->nblocks;
}

/* Gives src its own descriptor back, removes the snapshot, restores the origin's table
 * and removes every device it made. Always: a snapshot does not outlive its agent.
 * NULL-safe, returns NULL. */
static struct snap_dm *snap_dm_stop(struct snap_dm *t)
{
	bool clean = true;

	if (!t)
		return NULL;
	if (t->snap_fd >= 0)
		close(t->snap_fd);
	if (t->snap && remove_dev(t->ctl, t->snap, "snapshot") < 0)
		clean = false;
	if (t->stale && remove_dev(t->ctl, t->stale, "snapshot") < 0)
		clean = false;
	/* The origin gets its own table back; the resume suspends it for the swap. */
	if (t->switched) {
		int r = dmctl_load(t->ctl, t->origin, t->own);

		if (r == 0)
			r = dmctl_resume(t->ctl, t->origin);
		if (r < 0) {
			log_errno(r, "%s: cannot give %s its own table back", t->id, t->origin_name);
			clean = false;
		}
	} else if (t->origin_loaded && dmctl_clear(t->ctl, t->origin) < 0) {
		clean = false;
	}
	if (t->real && remove_dev(t->ctl, t->real, "real") < 0)
		clean = false;
	for (unsigned k = 0; k < 2; k++)
		if (t->cow[k] && remove_dev(t->ctl, t->cow[k], "cow") < 0)
			clean = false;
	if (t->switched && clean)
		log_info("%s: snapshots removed; %s has its own table again", t->id, t->origin_name);
	if (t->ctl >= 0)
		close(t->ctl);
	dmctl_table_free(t->own);
	free(t->pend);
	free(t);
	return NULL;
}

static int dm_start(struct source *src, uint32_t block_size, const char *store, unsigned slot,
		    unsigned nslots, void **ret_b, char *why, size_t why_len)
{
	struct snap_dm *t;
	int r = snap_dm_start(src, block_size, store, slot, nslots, &t, why, why_len);

	if (r == 0)
		*ret_b = t;
	return r;
}

static void dm_stop(void *b)
{
	snap_dm_stop(b);
}

const struct snap_ops snap_dm_ops = {
	.kind = SNAP_DM,
	.proto = PROTO_TRACKER_DM,
	.source_ok = snap_dm_source_ok,
	.cleanup = snap_dm_cleanup,
	.check_store = snap_dm_check_cow,
	.start = dm_start,
	.take = snap_dm_take,
	.acked = snap_dm_acked,
	.acked_epoch = snap_dm_acked_epoch,
	.nblocks = snap_dm_nblocks,
	.stop = dm_stop,
};

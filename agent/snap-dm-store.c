// SPDX-License-Identifier: GPL-2.0-only
/* The dm-snapshot provider's checks before anything is made: a source must be a
 * device-mapper device, and the --snapshot-cow store a device of its own, unused, that
 * neither is nor lies on a source, nor holds one. */
#include "agent/snap-dm-impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "agent/dmctl.h"
#include "agent/source.h"
#include "common/util.h"

/* The devices a block device's data lies on (a bounded set). */
#define LOWER_MAX 256
#define LOWER_DEPTH 16

struct lower {
	dev_t dev[LOWER_MAX];
	unsigned n;
};

static bool lower_has(const struct lower *l, dev_t dev)
{
	for (unsigned i = 0; i < l->n; i++)
		if (l->dev[i] == dev)
			return true;
	return false;
}

/* Adds dev and everything its data lies on: the whole disk of a partition, and, for a
 * stacked device (dm, md), the devices in its sysfs slaves/, recursively. A stack deeper
 * or wider than the bounds is refused (-E2BIG) rather than judged half-seen. */
static int lower_add(struct lower *l, dev_t dev, unsigned depth)
{
	char path[96], name[512], text[32];
	uint64_t start;
	struct dirent *de;
	dev_t whole;
	DIR *d;
	int r = 0;

	if (lower_has(l, dev))
		return 0;
	if (l->n == LOWER_MAX || depth > LOWER_DEPTH)
		return -E2BIG;
	l->dev[l->n++] = dev;
	if (src_whole_disk(dev, &whole, &start) == 0 && whole != dev) {
		r = lower_add(l, whole, depth + 1);
		if (r < 0)
			return r;
	}
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/slaves", major(dev), minor(dev));
	d = opendir(path);
	if (!d)
		return 0; /* not a stacked device */
	while (r == 0 && (de = readdir(d))) {
		unsigned maj, min;

		if (de->d_name[0] == '.')
			continue;
		snprintf(name, sizeof(name), "%s/%s/dev", path, de->d_name);
		r = attr_read(AT_FDCWD, name, text, sizeof(text));
		if (r < 0)
			break;
		if (sscanf(text, "%u:%u", &maj, &min) != 2) {
			r = -EINVAL;
			break;
		}
		r = lower_add(l, makedev(maj, min), depth + 1);
	}
	closedir(d);
	return r;
}

/* Checks, before anything is made, that the block device cow may serve as the snapshot
 * store of the n sources: it is not in use (an O_EXCL open succeeds: not mounted, not
 * held by device-mapper or md), and it neither is nor lies on any source (a partition of
 * one, a device under one's dm/md stack), nor does a source lie on it. Returns 0, or
 * -errno with a reason in why. */
int snap_dm_check_cow(const char *cow, struct source *const *srcs, unsigned n, char *why,
			     size_t why_len)
{
	struct lower *lc = calloc(1, sizeof(*lc)), *ls = calloc(1, sizeof(*ls));
	struct stat st, ss;
	int fd = -1, r;

	r = -ENOMEM;
	if (!lc || !ls) {
		snprintf(why, why_len, "out of memory");
		goto cleanup;
	}
	fd = open(cow, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		snprintf(why, why_len, "--snapshot-cow %s: %s", cow, strerror(-r));
		goto cleanup;
	}
	if (fstat(fd, &st) < 0 || !S_ISBLK(st.st_mode)) {
		r = -ENOTBLK;
		snprintf(why, why_len, "--snapshot-cow %s is not a block device", cow);
		goto cleanup;
	}
	close(fd);
	fd = -1;
	r = lower_add(lc, st.st_rdev, 0);
	for (unsigned i = 0; r == 0 && i < n; i++) {
		if (!srcs[i]->blockdev || fstat(srcs[i]->fd, &ss) < 0)
			continue;
		ls->n = 0;
		r = lower_add(ls, ss.st_rdev, 0);
		if (r < 0)
			break;
		/* The store lies on the source (a partition of it, a device under its stack, the
		 * device itself), or the source on the store: snapshots would write the data
		 * they are meant to preserve. */
		if (lower_has(ls, st.st_rdev) || lower_has(lc, ss.st_rdev)) {
			r = -EXDEV;
			snprintf(why, why_len, "--snapshot-cow %s overlaps source %s (%s): the store "
				 "must be a device of its own", cow, srcs[i]->id, srcs[i]->path);
			goto cleanup;
		}
	}
	if (r < 0) {
		snprintf(why, why_len, "--snapshot-cow %s: cannot tell which devices it lies on: %s",
			 cow, strerror(-r));
		goto cleanup;
	}
	/* O_EXCL on a block device: EBUSY when it is mounted, held by device-mapper or md,
	 * or open exclusively elsewhere; whatever holds it would be overwritten. Released
	 * again: the COW slices made next claim it themselves. */
	fd = open(cow, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_EXCL);
	if (fd < 0) {
		r = -errno;
		snprintf(why, why_len, r == -EBUSY ? "--snapshot-cow %s is in use (mounted, or "
			 "held by device-mapper, md or another exclusive opener)" :
			 "--snapshot-cow %s: %s", cow, strerror(-r));
		goto cleanup;
	}
	/* The same device still: not swapped behind the path since the checks above. */
	if (fstat(fd, &ss) < 0 || ss.st_rdev != st.st_rdev) {
		r = -EBUSY;
		snprintf(why, why_len, "--snapshot-cow %s changed while it was checked", cow);
		goto cleanup;
	}
	r = 0;
cleanup:
	if (fd >= 0)
		close(fd);
	free(lc);
	free(ls);
	return r;
}

/* Whether src is a device-mapper block device (an LVM LV, a dmsetup device). */
bool snap_dm_source_ok(const struct source *src)
{
	struct stat st;

	return src->blockdev && fstat(src->fd, &st) == 0 && dmctl_is_dm(st.st_rdev);
}

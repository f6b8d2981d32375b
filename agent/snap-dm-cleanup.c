// SPDX-License-Identifier: GPL-2.0-only
/* The dm-snapshot provider's cleanup of what an agent that did not stop cleanly left: the
 * origin's own table back, then its tern-ID-* snapshot, real and COW devices removed. */
#include "agent/snap-dm-impl.h"

#include <linux/dm-ioctl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "agent/dmctl.h"
#include "common/log.h"
#include "common/util.h"

/* Whether name is one of the devices this agent makes for disk id. */
static bool ours(const char *name, const char *id, const char *suffix)
{
	size_t p = strlen(PREFIX), l = strlen(id);
	const char *rest;

	if (strncmp(name, PREFIX, p) != 0 || strncmp(name + p, id, l) != 0 || name[p + l] != '-')
		return false;
	rest = name + p + l + 1;
	if (suffix)
		return strcmp(rest, suffix) == 0;
	if (strcmp(rest, "real") == 0 || strcmp(rest, "cow0") == 0 || strcmp(rest, "cow1") == 0)
		return true;
	if (rest[0] != 's' || !rest[1])
		return false;
	for (const char *c = rest + 1; *c; c++)
		if (*c < '0' || *c > '9')
			return false;
	return true;
}

/* Whether tbl is one snapshot-origin over real. */
static bool origin_of(const struct dmctl_table *tbl, dev_t real)
{
	unsigned maj, min;

	return tbl->n == 1 && strcmp(tbl->t[0].type, "snapshot-origin") == 0 &&
	       sscanf(tbl->t[0].params, "%u:%u", &maj, &min) == 2 && makedev(maj, min) == real;
}

/* An origin left pointing at real: its own table (real's) back, and resumed. */
static int restore_origin(int ctl, const struct dmctl_dev *d, dev_t real)
{
	struct dmctl_table *live = NULL, *inactive = NULL, *own = NULL;
	struct dmctl_info info;
	int r;

	r = dmctl_info(ctl, NULL, d->dev, &info);
	if (r < 0)
		return r;
	r = dmctl_table(ctl, d->dev, DMCTL_LIVE_TABLE, &live);
	if (r < 0)
		goto out;
	if (info.flags & DM_INACTIVE_PRESENT_FLAG) {
		r = dmctl_table(ctl, d->dev, DMCTL_INACTIVE_TABLE, &inactive);
		if (r < 0)
			goto out;
	}
	if (origin_of(live, real)) {
		r = dmctl_table(ctl, real, DMCTL_LIVE_TABLE, &own);
		if (r == 0)
			r = dmctl_load(ctl, d->dev, own);
		if (r == 0)
			r = dmctl_resume(ctl, d->dev);
		if (r < 0)
			log_errno(r, "cannot give %s its own table back", d->name);
		else
			log_warn("%s had been left a snapshot-origin by an agent that did not stop "
				 "cleanly; its own table is back", d->name);
	} else if (inactive && origin_of(inactive, real)) {
		r = dmctl_clear(ctl, d->dev);
		if (r == 0 && (info.flags & DM_SUSPEND_FLAG))
			r = dmctl_resume(ctl, d->dev);
		if (r < 0)
			log_errno(r, "cannot undo what an earlier agent loaded into %s", d->name);
		else
			log_warn("%s: dropped the snapshot-origin table an agent that did not stop "
				 "cleanly had loaded%s", d->name,
				 info.flags & DM_SUSPEND_FLAG ? ", and resumed it" : "");
	}
out:
	dmctl_table_free(live);
	dmctl_table_free(inactive);
	dmctl_table_free(own);
	return r;
}

/* Removes what an agent that did not stop cleanly left for disk id read from path: puts
 * back the own table of the origin it had turned into a snapshot-origin (resuming it if it
 * was left suspended), then removes its tern-ID-* snapshot, real and COW devices, logging
 * each. Call it before opening path: an origin left suspended would hang any read. Returns
 * 0 (also when path is no device-mapper device, or there was nothing), or -errno when
 * something could not be undone. */
int snap_dm_cleanup(const char *id, const char *path)
{
	struct dmctl_dev *devs = NULL;
	struct stat st;
	size_t n = 0;
	dev_t real = 0;
	int ctl = -1, r;

	/* Only a device-mapper source can have been made an origin; stat does no I/O, which
	 * would hang on an origin left suspended. */
	if (stat(path, &st) < 0 || !S_ISBLK(st.st_mode) || !dmctl_is_dm(st.st_rdev))
		return 0;
	r = dmctl_open(&ctl);
	if (r < 0)
		return r == -ENOENT ? 0 : r;
	r = dmctl_list(ctl, &devs, &n);
	if (r < 0) {
		log_errno(r, "cannot list device-mapper devices");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (ours(devs[i].name, id, "real"))
			real = devs[i].dev;
	for (size_t i = 0; real && i < n; i++) {
		if (strncmp(devs[i].name, PREFIX, strlen(PREFIX)) == 0)
			continue;
		r = restore_origin(ctl, &devs[i], real);
		if (r < 0)
			goto out;
	}
	/* Snapshots first: they hold the real and COW devices open. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < n; i++) {
			if (!devs[i].dev || !ours(devs[i].name, id, NULL) ||
			    (devs[i].name[strlen(PREFIX) + strlen(id) + 1] == 's') != (pass == 0))
				continue;
			r = remove_dev(ctl, devs[i].dev, devs[i].name);
			if (r < 0)
				goto out;
			log_warn("removed %s, left by an agent that did not stop cleanly", devs[i].name);
			devs[i].dev = 0;
		}
	}
	r = 0;
out:
	free(devs);
	close(ctl);
	return r;
}

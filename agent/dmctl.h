/* SPDX-License-Identifier: GPL-2.0-only */
/* Device-mapper through its ioctl interface (/dev/mapper/control, <linux/dm-ioctl.h>),
 * so the agent needs no libdevmapper: create, load, suspend, resume, remove, list, and
 * read tables and status. Devices are named by dev_t once they exist. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define DMCTL_NAME_LEN 128
#define DMCTL_UUID_LEN 129
#define DMCTL_TYPE_LEN 16

struct dmctl_target {
	uint64_t start, len;          /* sectors */
	char type[DMCTL_TYPE_LEN];    /* "linear", "snapshot", ... */
	char *params;                 /* owned by the table */
};

struct dmctl_table {
	unsigned n;
	struct dmctl_target *t;
};

struct dmctl_info {
	dev_t dev;
	char name[DMCTL_NAME_LEN];
	char uuid[DMCTL_UUID_LEN];
	uint32_t flags;               /* DM_*_FLAG: suspended, tables present */
	int32_t open_count;
	uint32_t target_count;
};

struct dmctl_dev {
	dev_t dev;
	char name[DMCTL_NAME_LEN];
};

enum dmctl_query { DMCTL_LIVE_TABLE, DMCTL_INACTIVE_TABLE, DMCTL_STATUS };

/* Opens /dev/mapper/control read-write. Returns 0 or -errno (-ENOENT: no device-mapper). */
int dmctl_open(int *ret_fd);
/* Information on the device called name, or (name NULL) the one with number dev. -ENXIO
 * when there is none. */
int dmctl_info(int ctl, const char *name, dev_t dev, struct dmctl_info *ret_info);
/* Creates an empty device name with uuid (may be NULL). */
int dmctl_create(int ctl, const char *name, const char *uuid, dev_t *ret_dev);
/* Loads t as dev's inactive table; a resume makes it live. */
int dmctl_load(int ctl, dev_t dev, const struct dmctl_table *t);
/* Drops dev's inactive table. */
int dmctl_clear(int ctl, dev_t dev);
/* Suspends dev, waiting for its I/O in flight; lockfs also freezes a filesystem on it. */
int dmctl_suspend(int ctl, dev_t dev, bool lockfs);
/* Resumes dev, swapping in its inactive table if it has one. */
int dmctl_resume(int ctl, dev_t dev);
/* Removes dev, retrying for a short while when something (udev, blkid) holds it open. */
int dmctl_remove(int ctl, dev_t dev);
/* dev's live or inactive table, or the status of each live target (its text in params).
 * *ret_t is the caller's to free with dmctl_table_free. */
int dmctl_table(int ctl, dev_t dev, enum dmctl_query what, struct dmctl_table **ret_t);
/* Every device-mapper device; *ret is the caller's to free(). */
int dmctl_list(int ctl, struct dmctl_dev **ret, size_t *ret_n);
/* Adds a target to t (copying params). */
int dmctl_table_add(struct dmctl_table *t, uint64_t start, uint64_t len, const char *type,
		    const char *params);
/* NULL-safe; returns NULL. */
struct dmctl_table *dmctl_table_free(struct dmctl_table *t);
/* Sum of the targets' lengths, in sectors. */
uint64_t dmctl_table_sectors(const struct dmctl_table *t);
/* Whether dev is a device-mapper device (sysfs has its dm directory). */
bool dmctl_is_dm(dev_t dev);
/* Opens the block device dev read-only (flags added, e.g. O_DIRECT) through its devtmpfs
 * node /dev/dm-MINOR, checked to be that device. Returns the fd or -errno. */
int dmctl_open_dev(dev_t dev, int flags);

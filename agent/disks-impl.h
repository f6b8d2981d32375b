/* SPDX-License-Identifier: GPL-2.0-only */
/* What the disk discovery files share (disks.c: the scan of sysfs, by-id, mountinfo and
 * libblkid; disks-pick.c: the rule `run` picks disks by; disks-show.c: the table and the
 * JSON of `tern-agent disks`): the list's types. Included by agent/disks*.c, and by the
 * unit test that checks what the scan found. */
#pragma once
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/disks.h"
#include "common/util.h"

struct disks_dev {
	char name[64];
	char path[80];
	char parent[64];       /* partitions: the whole disk's name */
	unsigned major, minor;
	bool whole;
	unsigned partno;
	uint64_t start, size;  /* bytes */
	uint32_t log_sec, phy_sec;
	bool rota, removable, ro;
	char *pttype, *fstype, *uuid, *label;
	char **mounts;
	size_t nmounts;
	char **holders;        /* devices stacked on this one (dm, md) */
	size_t nholders;
	bool dm, lvm;
	char *dm_name, *dm_uuid;
	char *id;              /* whole disks: stable id, or NULL */
	const char *id_source; /* "by-id", "serial", "wwid" or "none" */
	char disk_id[NAME_MAX_LEN + 1]; /* id made a valid DISK_ID, "" without one */
	char *id_path;         /* by-id: the link's path; else NULL (the kernel name is used) */
	bool pick;             /* whole disks: `run` without --disk would copy it */
	bool loop;
	const char *loop_skip_reason; /* loop devices: why not even with --include-loop */
	const char *skip_reason;
	int probe_err;         /* -errno of a failed libblkid probe, or 0 */
	const char *probe_what;
	struct disks_dev *parts;
	size_t nparts;
};

struct disks_list {
	struct disks_dev *disks;
	size_t n;
};

struct mount_ent {
	unsigned major, minor;
	char *dir;
};

struct by_id_ent {
	char *link;   /* e.g. wwn-0x5000c500a1b2c3d4 */
	char *target; /* kernel name it resolves to, e.g. sda */
};

struct scan_ctx {
	char sys_block[PATH_MAX];
	char by_id[PATH_MAX];
	struct mount_ent *mounts;
	size_t nmounts;
	struct by_id_ent *ids;
	size_t nids;
};

/* Reallocates an array of n elements of size sz to n + 1, the new one zeroed; returns the
 * new array (the caller stores it and bumps n) or NULL, the old array left intact. */
void *disks_grow(void *arr, size_t n, size_t sz);
/* Whether s starts with prefix. */
bool disks_has_prefix(const char *s, const char *prefix);
/* Sets d's pick, skip_reason, loop and loop_skip_reason from what the scan found about it
 * and its sysfs directory devfd (disks-pick.c). */
void disks_decide_pick(int devfd, struct disks_dev *d);

/* SPDX-License-Identifier: GPL-2.0-only */
/* Disk discovery for `tern-agent disks`: whole disks and partitions from sysfs, their
 * signatures from libblkid, mount points from mountinfo, and whether `run` would pick each. */
#pragma once
#include <stdio.h>

struct disks_list;

/* Scans /sys/block, probing each device read-only. A device that cannot be probed is kept,
 * with the failure recorded, so one bad disk does not hide the others. Returns 0 and a list
 * owned by the caller, or -errno when sysfs or mountinfo cannot be read at all. */
int disks_scan(struct disks_list **ret_list);
/* Frees a list; accepts NULL and returns NULL. */
struct disks_list *disks_list_free(struct disks_list *l);

/* Prints an aligned table for people, then one warning line per device that could not be
 * probed. Returns 0 or -EIO when f could not be written. */
int disks_print_table(const struct disks_list *l, FILE *f);
/* Prints the list as one JSON document {"disks":[...]}. Returns 0, -ENOMEM or -EIO. */
int disks_print_json(const struct disks_list *l, FILE *f);

/* SPDX-License-Identifier: GPL-2.0-only */
/* Disk discovery for `tern-agent disks`: whole disks and partitions from sysfs, their
 * signatures from libblkid, mount points from mountinfo, and whether `run` would pick each. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct disks_list;

/* Scans /sys/block, probing each device read-only. A device that cannot be probed is kept,
 * with the failure recorded, so one bad disk does not hide the others. Returns 0 and a list
 * owned by the caller, or -errno when sysfs or mountinfo cannot be read at all. */
int disks_scan(struct disks_list **ret_list);
/* Frees a list; accepts NULL and returns NULL. */
struct disks_list *disks_list_free(struct disks_list *l);

/* A disk `run` replicates when no --disk is given. */
struct disks_pick {
	char *id;   /* its stable id made a valid DISK_ID */
	char *path; /* its /dev/disk/by-id link, else /dev/NAME */
};

/* Chooses the whole disks that qualify for automatic selection (the AUTO column of
 * `tern-agent disks`), and with include_loop also loop devices that would qualify but for
 * being loop devices. Logs one info line per disk: chosen, or why not. Returns 0 with
 * *ret_picks (free with disks_picks_free) and *ret_n, possibly 0; or -EEXIST (logged) when
 * two chosen disks share an id, -ENOMEM. */
int disks_pick_auto(const struct disks_list *l, bool include_loop, struct disks_pick **ret_picks,
		    size_t *ret_n);
/* Frees n picks; accepts NULL and returns NULL. */
struct disks_pick *disks_picks_free(struct disks_pick *p, size_t n);

/* Prints an aligned table for people, then one warning line per device that could not be
 * probed. Returns 0 or -EIO when f could not be written. */
int disks_print_table(const struct disks_list *l, FILE *f);
/* Prints the list as one JSON document {"disks":[...]}. Returns 0, -ENOMEM or -EIO. */
int disks_print_json(const struct disks_list *l, FILE *f);

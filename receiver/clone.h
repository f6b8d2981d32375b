/* SPDX-License-Identifier: GPL-2.0-only */
/* Copy-on-write clones of a replication target for test launches (receiver/launch.h):
 * FICLONE on a reflink file system (XFS, btrfs), or an LVM thin snapshot of a block
 * target that is a thin volume, in time independent of the target's size; otherwise a
 * sparse copy, whose cost is announced before it starts. The target is only read. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum clone_how {
	CLONE_REFLINK, /* FICLONE: shares every extent with the target */
	CLONE_COPY,    /* a sparse copy of the target's data */
	CLONE_THIN,    /* an LVM thin snapshot of a thin volume: shares the pool's blocks */
};

struct clone_result {
	enum clone_how how;
	uint64_t size;   /* the clone's size: the target's */
	uint64_t copied; /* data bytes copied (0 for a reflink or a thin snapshot) */
	uint64_t ns;     /* how long it took */
	char path[4096]; /* where the clone is (a thin snapshot's device node) */
	char lv[260];    /* a thin snapshot's "VG/LV" for clone_thin_remove, else "" */
	/* Said before a copy started ("no reflink on this file system: copying 2.1 GiB"),
	 * lvcreate's warning for a thin snapshot (an overcommitted pool), else "". */
	char warning[256];
};

/* Clones target (a regular file or a block device) into a new file named fname.
 * Where: DIR/fname, DIR = launch_dir/rel, when target lies on launch_dir's file system;
 * otherwise a reflink is tried beside the target, in TARGETDIR/.tern-launch/rel/ (a
 * reflink needs the same file system), and a copy goes to DIR — a copy never takes
 * space from the target's file system, whose holes replication may still fill. A block
 * device that is an LVM thin volume (its dm uuid says LVM, `lvm lvs` says segment type
 * thin) gets a thin snapshot in its own volume group instead, named tern-AGENT-ID-DISK
 * from rel ("AGENT/ID") and fname ("DISK.img"), active, with activation skip off; any
 * other block device is copied. Directories are made 0700, the clone 0600, made with
 * O_EXCL: an existing file or LV is never overwritten. 0 with *ret set, or -errno with a
 * one-line why; nothing is left behind on failure (DIR itself stays). */
int clone_target(const char *target, const char *launch_dir, const char *rel,
		 const char *fname, struct clone_result *ret, char *why, size_t why_len);

/* Copies src into dst (a new file, O_EXCL) as a reflink when force_copy is false and the
 * file system allows one, else as a sparse copy (SEEK_DATA/SEEK_HOLE and
 * copy_file_range for a file; all-zero MiBs skipped for a block device); then fsyncs it.
 * The building block of clone_target, exported for tests. */
int clone_file(const char *src, const char *dst, bool force_copy, struct clone_result *ret,
	       char *why, size_t why_len);

/* A reflink of src at dst (a new file, O_EXCL) or nothing: -EOPNOTSUPP (with why) when
 * the file system cannot share extents between them, or src is not a regular file. */
int clone_reflink(const char *src, const char *dst, struct clone_result *ret, char *why,
		  size_t why_len);

/* Removes the thin snapshot lv ("VG/LV", as clone_target set it in clone_result.lv)
 * with `lvm lvremove -y`, after checking that it is one tern made: a name starting with
 * "tern-", segment type thin, with an origin. 0 also when it is gone already; -EPERM for
 * an LV that is not such a snapshot, -EINVAL for a malformed name, else -errno; why says
 * it in one line. */
int clone_thin_remove(const char *lv, char *why, size_t why_len);

/* Removes the clone c (a file, or a thin snapshot): for the failure paths of a launch
 * that made it. 0 or -errno with why. */
int clone_remove(const struct clone_result *c, char *why, size_t why_len);

/* "reflink", "copy" or "thin-snapshot". */
const char *clone_how_name(enum clone_how how);

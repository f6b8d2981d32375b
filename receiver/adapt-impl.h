/* SPDX-License-Identifier: GPL-2.0-only */
/* Private to the adaptation's files (adapt.c the run and what they share, adapt-check.c the
 * checks, adapt-steps.c the changes, adapt-save.c the undo record, adapt-undo.c its
 * application): the run's state, struct ad, and the helpers they call across. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "receiver/adapt-config.h"
#include "receiver/adapt.h"

#define UNDO_MAGIC "tern-adapt-undo 1"
#define UNDO_MANIFEST "manifest"
#define UNDO_REPORT "report.json"

#if TERN_HAVE_GUESTFS
#include <guestfs.h>
#include <json-c/json.h>

/* The file a guest-path change is saved as, and how to put it back. */
enum entry_kind { E_FILE, E_LINK, E_DIR, E_ABSENT, E_TREE };

struct entry {
	enum entry_kind kind;
	char *path;
	char *saved; /* E_FILE: file name in UNDO_DIR/files; E_LINK: the link's target */
	char sha[65]; /* E_FILE: SHA-256 of the content, to skip restoring an unchanged file */
	bool same;    /* undo: found unchanged (set for a tree's files in one batch) */
	unsigned mode; /* E_FILE, E_DIR: mode, owner and times */
	int64_t uid, gid, atime_s, atime_ns, mtime_s, mtime_ns;
};

struct mnt {
	char *dev, *mp;
};

struct ad {
	guestfs_h *g;
	const struct prof *p;
	const struct adapt_opts *o;
	const char *undo_dir;
	FILE *manifest;
	struct entry *e;
	size_t n, cap;
	unsigned nsaved;
	struct mnt *m;
	size_t nm;
	char *why;
	size_t why_len;
	json_object *report, *steps, *warnings, *checks;
	char root_dev[256], root_uuid[128], root_alt[300];
	bool itools, dracut;
	char **kernels;
	size_t nkernels;
	const char *unitdir;
	/* What the resolver replaced during one rewrite, for the report. */
	char renamed[1024];
};

static inline void strv_free(char **v)
{
	if (!v)
		return;
	for (size_t i = 0; v[i]; i++)
		free(v[i]);
	free(v);
}

static inline size_t strv_len(char *const *v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

static inline bool path_ok(const char *p)
{
	return p[0] == '/' && !strpbrk(p, "\t\n");
}

/* adapt.c: errors, the report, guest files, the appliance */

/* libguestfs's last error on one line (commands' stderr spans several), in buf. */
const char *gerr(struct ad *a, char *buf, size_t len);
/* Records the first reason a run fails; returns r. */
int fail(struct ad *a, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* fail() with libguestfs's last error appended; returns -EIO. */
int gfail(struct ad *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A change, in the report and the log. */
void report_step(struct ad *a, const char *step, const char *path, const char *change,
		 const char *why);
/* A warning, in the report and the log. */
void ad_warn(struct ad *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reads a guest text file: 0 and *ret (NUL-terminated), -ENOENT, or -errno. */
int get_file(struct ad *a, const char *path, char **ret);
/* Writes a guest file after saving what was there; a new file gets mode. */
int put_file(struct ad *a, const char *path, const char *content, unsigned mode);
/* Removes a guest file after saving it. */
int remove_path(struct ad *a, const char *path);
/* Makes dir (and its parents) after recording which of them did not exist. */
int make_dir(struct ad *a, const char *dir);
/* A symlink made after saving what was at linkname. */
int put_link(struct ad *a, const char *target, const char *linkname);
bool is_file(struct ad *a, const char *path);
/* Runs a shell command in the guest's root with the guest's own PATH; *ret_out gets
 * stdout when asked. */
int guest_sh(struct ad *a, const char *cmd, char **ret_out);
/* A libguestfs handle with image added read-write and launched (KVM, else TCG, as accel
 * says). 0, or -errno with why. */
int appliance_start(const char *image, enum adapt_accel accel, guestfs_h **ret_g,
		    char *why, size_t why_len);
/* Frees what a holds and closes its appliance; not a itself. */
void ad_free(struct ad *a);

/* adapt-check.c: the checks before any change */

/* Mounts the guest's file systems (a->m), read-only or read-write with noatime. */
int mount_all(struct ad *a, bool ro);
/* One Linux root, mounted read-only; systemd, an initramfs tool, GRUB, and every profile
 * driver in every kernel. Fills a (root, mounts, tools, kernels) and os (the report's
 * "os"). 0, or -errno with the first failed check in a->why. */
int preflight(struct ad *a, json_object *os);

/* adapt-steps.c: the changes */

/* Makes every change, in order (names, drivers, network, guest tools, caches, the marker
 * when asked, the UEFI fallback loader, the guest's tools regenerating the initramfs and
 * grub.cfg), each saved in the undo record first. Stops at the first failure: 0, or
 * -errno with a->why. */
int adapt_steps(struct ad *a);
/* What step_marker adds (adapt_unmark removes them): the script, the unit, its link. */
extern const char *const marker_paths[3];

/* adapt-save.c: the undo record */

/* Saves what path is (and first its directory) before anything changes it. Once per path. */
int save_path(struct ad *a, const char *path);
/* Saves a whole tree a guest tool will rewrite, in a few calls. */
int save_tree(struct ad *a, const char *dir);
/* Whether path lies on a file system mounted below dir (the ESP under /boot). */
bool under_other_mount(struct ad *a, const char *dir, const char *path);
/* Reads a checksums_out file into names' order: sums[i] gets the hash of names[i], or "". */
int read_sums(const char *file, char *const *names, size_t n, char (*sums)[65]);
/* lstat (and, with ret_links, readlink) of names below dir, batched per directory. */
int stat_names(struct ad *a, const char *dir, char *const *names, size_t n,
	       struct guestfs_statns *ret_st, char **ret_links);
void entries_free(struct ad *a);
/* Creates the undo directory: absent or empty, made 0700. 0, or -errno with why. */
int undo_dir_make(const char *dir, char *why, size_t why_len);
/* Creates UNDO_DIR/manifest with its header (root UUID, mounts). 0, or -errno with a->why. */
int manifest_create(struct ad *a);
/* Loads dir's manifest into a (root UUID, mounts, entries). 0, or -errno with why. */
int manifest_load(struct ad *a, const char *dir, char *why, size_t why_len);

/* adapt-undo.c: applying the record */

/* Puts every recorded path back, last change first; goes on past a failure and returns
 * the first error. */
int undo_entries(struct ad *a, const char *undo_dir);

#endif /* TERN_HAVE_GUESTFS */

// SPDX-License-Identifier: GPL-2.0-only
/* Applying an adaptation's undo record (adapt-impl.h): every saved path put back, last
 * change first, on the disk the record was made from; adapt_undo and adapt_unmark. */
#include "receiver/adapt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "receiver/adapt-impl.h"

#if TERN_HAVE_GUESTFS

/* Marks the files of tree entry ti that are as saved (content, mode, owner, times), in a
 * few calls: most of a saved tree is untouched, and need not be written back. */
static void tree_mark_same(struct ad *a, size_t ti, const char *undo_dir)
{
	const char *dir = a->e[ti].path;
	size_t dn = strlen(dir), n = 0;
	struct guestfs_statns *sts = NULL;
	char **names, (*sums)[65] = NULL, sumfile[4096];
	size_t *idx;

	names = calloc(ti + 1, sizeof(*names));
	idx = calloc(ti + 1, sizeof(*idx));
	if (!names || !idx)
		goto cleanup;
	for (size_t i = 0; i < ti; i++)
		if (a->e[i].kind == E_FILE && strncmp(a->e[i].path, dir, dn) == 0 &&
		    a->e[i].path[dn] == '/') {
			names[n] = a->e[i].path + dn + 1;
			idx[n++] = i;
		}
	snprintf(sumfile, sizeof(sumfile), "%s/check.sha256", undo_dir);
	sums = calloc(n ? n : 1, sizeof(*sums));
	sts = calloc(n ? n : 1, sizeof(*sts));
	if (!sums || !sts || n == 0 || guestfs_is_dir(a->g, dir) <= 0 ||
	    stat_names(a, dir, names, n, sts, NULL) < 0 ||
	    guestfs_checksums_out(a->g, "sha256", dir, sumfile) < 0 ||
	    read_sums(sumfile, names, n, sums) < 0)
		goto cleanup;
	for (size_t k = 0; k < n; k++) {
		struct entry *e = &a->e[idx[k]];
		const struct guestfs_statns *st = &sts[k];

		e->same = st->st_ino >= 0 && S_ISREG(st->st_mode) &&
			  (unsigned)(st->st_mode & 07777) == e->mode && st->st_uid == e->uid &&
			  st->st_gid == e->gid && st->st_mtime_sec == e->mtime_s &&
			  st->st_mtime_nsec == e->mtime_ns && st->st_atime_sec == e->atime_s &&
			  st->st_atime_nsec == e->atime_ns && strcmp(sums[k], e->sha) == 0;
	}
cleanup:
	unlink(sumfile);
	free(sts);
	free(sums);
	free(names);
	free(idx);
}

/* Whether path is already what e saved: a file of the same content, mode, owner and
 * times (most of a saved tree is), so that undo need not write it. */
static bool file_same(struct ad *a, const struct entry *e)
{
	struct guestfs_statns *st = guestfs_lstatns(a->g, e->path);
	bool same = st && S_ISREG(st->st_mode) && (unsigned)(st->st_mode & 07777) == e->mode &&
		    st->st_uid == e->uid && st->st_gid == e->gid &&
		    st->st_mtime_sec == e->mtime_s && st->st_mtime_nsec == e->mtime_ns &&
		    st->st_atime_sec == e->atime_s && st->st_atime_nsec == e->atime_ns;
	char *sum;

	guestfs_free_statns(st);
	if (!same)
		return false;
	sum = guestfs_checksum(a->g, "sha256", e->path);
	same = sum && strcmp(sum, e->sha) == 0;
	free(sum);
	return same;
}

/* Mode, owner and times back as e saved them. Mode and owner are set only when they
 * differ: a FAT file system (the ESP) has them fixed by its mount and refuses both. */
static int restore_attrs(struct ad *a, const struct entry *e)
{
	struct guestfs_statns *st = guestfs_lstatns(a->g, e->path);
	char b[768];
	int r = 0;

	if (!st)
		return fail(a, -EIO, "undo: cannot stat %s: %s", e->path, gerr(a, b, sizeof(b)));
	if ((st->st_uid != e->uid || st->st_gid != e->gid) &&
	    guestfs_chown(a->g, (int)e->uid, (int)e->gid, e->path) < 0)
		r = -EIO;
	if (r == 0 && (unsigned)(st->st_mode & 07777) != e->mode &&
	    guestfs_chmod(a->g, (int)e->mode, e->path) < 0)
		r = -EIO;
	guestfs_free_statns(st);
	if (r == 0 && guestfs_utimens(a->g, e->path, e->atime_s, e->atime_ns, e->mtime_s,
				      e->mtime_ns) < 0)
		r = -EIO;
	if (r < 0)
		return fail(a, r, "undo: cannot restore the mode, owner or times of %s: %s",
			    e->path, gerr(a, b, sizeof(b)));
	return 0;
}

static int put_back(struct ad *a, const struct entry *e, const char *undo_dir)
{
	char local[4096], b[768];

	switch (e->kind) {
	case E_ABSENT:
		if (guestfs_rm_rf(a->g, e->path) < 0)
			return fail(a, -EIO, "undo: cannot remove %s: %s", e->path,
				    gerr(a, b, sizeof(b)));
		return 0;
	case E_DIR:
		if (guestfs_is_dir(a->g, e->path) <= 0 &&
		    (guestfs_rm_f(a->g, e->path) < 0 || guestfs_mkdir_p(a->g, e->path) < 0))
			return fail(a, -EIO, "undo: cannot make %s: %s", e->path,
				    gerr(a, b, sizeof(b)));
		/* Last change first: the directory's own entries are back by now. */
		return restore_attrs(a, e);
	case E_LINK:
		if (guestfs_is_symlink(a->g, e->path) > 0) {
			char *t = guestfs_readlink(a->g, e->path);
			bool same = t && strcmp(t, e->saved) == 0;

			free(t);
			if (same)
				return 0;
		}
		if (guestfs_rm_rf(a->g, e->path) < 0 || guestfs_ln_s(a->g, e->saved, e->path) < 0)
			return fail(a, -EIO, "undo: cannot restore the link %s: %s", e->path,
				    gerr(a, b, sizeof(b)));
		return 0;
	case E_FILE:
		if (e->same || file_same(a, e))
			return 0;
		snprintf(local, sizeof(local), "%s/files/%s", undo_dir, e->saved);
		if (access(local, R_OK) < 0)
			return fail(a, -errno, "undo: the saved copy of %s (%s) is missing",
				    e->path, local);
		/* A path that became a link or a directory is replaced, not written through. */
		if (guestfs_is_symlink(a->g, e->path) > 0 || guestfs_is_dir(a->g, e->path) > 0)
			guestfs_rm_rf(a->g, e->path);
		if (guestfs_upload(a->g, local, e->path) < 0)
			return fail(a, -EIO, "undo: cannot restore %s: %s", e->path,
				    gerr(a, b, sizeof(b)));
		return restore_attrs(a, e);
	case E_TREE:
		break;
	}
	return 0;
}

/* Removes from tree e what was not in it when it was saved (entries before it). */
static int prune_tree(struct ad *a, size_t ti)
{
	const char *dir = a->e[ti].path;
	size_t dn = strlen(dir);
	char **found, b[768];
	int r = 0;

	if (guestfs_is_dir(a->g, dir) <= 0)
		return 0;
	found = guestfs_find(a->g, dir);
	if (!found)
		return fail(a, -EIO, "undo: cannot list %s: %s", dir, gerr(a, b, sizeof(b)));
	for (size_t i = 0; found[i] && r >= 0; i++) {
		char full[4096];
		bool had = false;

		snprintf(full, sizeof(full), "%s/%s", dir, found[i] + (found[i][0] == '/'));
		if (under_other_mount(a, dir, full))
			continue;
		for (size_t j = 0; j < ti && !had; j++)
			had = a->e[j].kind != E_TREE && a->e[j].kind != E_ABSENT &&
			      strncmp(a->e[j].path, dir, dn) == 0 &&
			      strcmp(a->e[j].path, full) == 0;
		if (!had && guestfs_rm_rf(a->g, full) < 0)
			r = fail(a, -EIO, "undo: cannot remove %s: %s", full,
				 gerr(a, b, sizeof(b)));
	}
	strv_free(found);
	return r;
}

/* Puts every recorded path back, last change first. Goes on past a failure, so that as
 * much as possible is restored, and returns the first error. */
int undo_entries(struct ad *a, const char *undo_dir)
{
	int ret = 0;

	for (size_t i = 0; i < a->n; i++)
		if (a->e[i].kind == E_TREE)
			tree_mark_same(a, i, undo_dir);
	for (size_t i = a->n; i-- > 0;) {
		int r = a->e[i].kind == E_TREE ? prune_tree(a, i) : put_back(a, &a->e[i], undo_dir);

		if (r < 0 && ret == 0)
			ret = r;
	}
	return ret;
}

/* Opens the image an undo record was made from, with its file systems mounted as the
 * adaptation mounted them: the record loaded, the appliance started, and the root's UUID
 * checked against the record's (any other disk is refused). 0, or -errno with a->why. */
static int open_recorded(struct ad *a, const char *image, const char *undo_dir,
			 enum adapt_accel accel)
{
	bool root_seen = false;
	int r;

	r = manifest_load(a, undo_dir, a->why, a->why_len);
	if (r < 0)
		return r;
	if (access(image, R_OK | W_OK) < 0) {
		r = -errno;
		snprintf(a->why, a->why_len, "cannot open %s for writing: %s", image, strerror(errno));
		return r;
	}
	r = appliance_start(image, accel, &a->g, a->why, a->why_len);
	if (r < 0)
		return r;
	for (size_t i = 0; i < a->nm; i++) {
		char *u;

		if (strcmp(a->m[i].mp, "/") != 0)
			continue;
		u = guestfs_vfs_uuid(a->g, a->m[i].dev);
		if (!u || strcmp(u, a->root_uuid) != 0) {
			r = fail(a, -EINVAL, "%s is not the disk this undo record was made from "
				 "(root file system %s has UUID %s, the record says %s)", image,
				 a->m[i].dev, u ? u : "none", a->root_uuid);
			free(u);
			return r;
		}
		free(u);
		root_seen = true;
	}
	if (!root_seen)
		return fail(a, -EBADMSG, "the undo record mounts no root file system");
	return mount_all(a, false);
}

/* Runs job on the disk an undo record was made from (open_recorded), then closes it
 * cleanly. 0, or -errno with why. */
static int on_recorded(const char *image, const char *undo_dir, enum adapt_accel accel,
		       int (*job)(struct ad *a), char *why, size_t why_len)
{
	struct ad a = { .undo_dir = undo_dir, .why = why, .why_len = why_len };
	int r;

	why[0] = '\0';
	r = open_recorded(&a, image, undo_dir, accel);
	if (r >= 0)
		r = job(&a);
	if (r >= 0 && (guestfs_umount_all(a.g) < 0 || guestfs_shutdown(a.g) < 0))
		r = gfail(&a, "cannot close the image cleanly");
	if (r < 0 && !why[0])
		snprintf(why, why_len, "%s", strerror(-r));
	ad_free(&a);
	return r < 0 ? r : 0;
}

static int undo_job(struct ad *a)
{
	return undo_entries(a, a->undo_dir);
}

/* The undo record lists the marker's files as created: undoing later finds them gone,
 * which is what it would have made of them. */
static int unmark_job(struct ad *a)
{
	for (size_t i = 0; i < ARRAY_SIZE(marker_paths); i++)
		if (guestfs_rm_f(a->g, marker_paths[i]) < 0)
			return gfail(a, "cannot remove %s", marker_paths[i]);
	return 0;
}

int adapt_undo(const char *image, const char *undo_dir, enum adapt_accel accel, char *why,
	       size_t why_len)
{
	return on_recorded(image, undo_dir, accel, undo_job, why, why_len);
}

int adapt_unmark(const char *image, const char *undo_dir, enum adapt_accel accel, char *why,
		 size_t why_len)
{
	return on_recorded(image, undo_dir, accel, unmark_job, why, why_len);
}

#endif /* TERN_HAVE_GUESTFS */

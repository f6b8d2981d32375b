// SPDX-License-Identifier: GPL-2.0-only
/* OS adaptation of a guest disk with libguestfs (adapt.h): checks, then changes recorded
 * in a report and in an undo directory on the host, then the guest's own tools. */
#include "receiver/adapt.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "receiver/adapt-config.h"
#include "receiver/guestconf.h"
#include "receiver/profile.h"

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

static void strv_free(char **v)
{
	if (!v)
		return;
	for (size_t i = 0; v[i]; i++)
		free(v[i]);
	free(v);
}

static size_t strv_len(char *const *v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

/* libguestfs's last error on one line (commands' stderr spans several). */
static const char *gerr(struct ad *a, char *buf, size_t len)
{
	const char *e = guestfs_last_error(a->g);
	size_t j = 0;

	if (!e)
		e = "unknown libguestfs error";
	for (size_t i = 0; e[i] && j + 1 < len; i++) {
		char c = e[i];

		if (c == '\n' || c == '\r') {
			if (e[i + 1] == '\0')
				break;
			if (j + 3 < len) {
				buf[j++] = ';';
				buf[j++] = ' ';
			}
			continue;
		}
		buf[j++] = c;
	}
	buf[j] = '\0';
	return buf;
}

/* Records the first reason a run fails; returns r. */
static int fail(struct ad *a, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct ad *a, int r, const char *fmt, ...)
{
	va_list ap;

	if (a->why && a->why_len && !a->why[0]) {
		va_start(ap, fmt);
		vsnprintf(a->why, a->why_len, fmt, ap);
		va_end(ap);
	}
	return r;
}

/* fail() with libguestfs's last error appended. */
static int gfail(struct ad *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int gfail(struct ad *a, const char *fmt, ...)
{
	char msg[1024], b[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return fail(a, -EIO, "%s: %s", msg, gerr(a, b, sizeof(b)));
}

static void report_step(struct ad *a, const char *step, const char *path, const char *change,
			const char *why)
{
	json_object *s = json_object_new_object();

	json_object_object_add(s, "step", json_object_new_string(step));
	json_object_object_add(s, "path", json_object_new_string(path));
	json_object_object_add(s, "change", json_object_new_string(change));
	json_object_object_add(s, "why", json_object_new_string(why));
	json_object_array_add(a->steps, s);
	log_info("%s: %s", path, change);
}

static void warn(struct ad *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(struct ad *a, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	json_object_array_add(a->warnings, json_object_new_string(buf));
	log_warn("%s", buf);
}

/* ---- the undo record ---- */

static bool path_ok(const char *p)
{
	return p[0] == '/' && !strpbrk(p, "\t\n");
}

static struct entry *entry_find(struct ad *a, const char *path)
{
	for (size_t i = 0; i < a->n; i++)
		if (a->e[i].kind != E_TREE && strcmp(a->e[i].path, path) == 0)
			return &a->e[i];
	return NULL;
}

static int entry_add(struct ad *a, const struct entry *src)
{
	struct entry *e;

	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		struct entry *ne = realloc(a->e, cap * sizeof(*ne));

		if (!ne)
			return -ENOMEM;
		a->e = ne;
		a->cap = cap;
	}
	e = &a->e[a->n];
	*e = *src;
	e->path = strdup(src->path);
	e->saved = src->saved ? strdup(src->saved) : NULL;
	if (!e->path || (src->saved && !e->saved)) {
		free(e->path);
		free(e->saved);
		return -ENOMEM;
	}
	a->n++;
	if (!a->manifest)
		return 0;
	/* One line per entry, flushed at once: a run cut off midway leaves an undo record
	 * of everything it changed. */
	switch (e->kind) {
	case E_FILE:
		fprintf(a->manifest, "file\t%s\t%s\t%s\t%o\t%lld\t%lld\t%lld\t%lld\t%lld\t%lld\n",
			e->path, e->saved, e->sha, e->mode, (long long)e->uid, (long long)e->gid,
			(long long)e->atime_s, (long long)e->atime_ns, (long long)e->mtime_s,
			(long long)e->mtime_ns);
		break;
	case E_LINK:
		fprintf(a->manifest, "link\t%s\t%s\n", e->path, e->saved);
		break;
	case E_DIR:
		fprintf(a->manifest, "dir\t%s\t%o\t%lld\t%lld\t%lld\t%lld\t%lld\t%lld\n", e->path,
			e->mode, (long long)e->uid, (long long)e->gid, (long long)e->atime_s,
			(long long)e->atime_ns, (long long)e->mtime_s, (long long)e->mtime_ns);
		break;
	case E_ABSENT:
		fprintf(a->manifest, "absent\t%s\n", e->path);
		break;
	case E_TREE:
		fprintf(a->manifest, "tree\t%s\n", e->path);
		break;
	}
	if (fflush(a->manifest) != 0 || fsync(fileno(a->manifest)) < 0)
		return fail(a, -errno, "cannot write the undo record in %s: %s", a->undo_dir,
			    strerror(errno));
	return 0;
}

static void entry_stat(struct entry *e, const struct guestfs_statns *st)
{
	e->mode = (unsigned)(st->st_mode & 07777);
	e->uid = st->st_uid;
	e->gid = st->st_gid;
	e->atime_s = st->st_atime_sec;
	e->atime_ns = st->st_atime_nsec;
	e->mtime_s = st->st_mtime_sec;
	e->mtime_ns = st->st_mtime_nsec;
}

static int save_one(struct ad *a, const char *path);

/* Saves what path is before anything changes it: its content, mode, owner and times, a
 * symlink's target, or that it did not exist; and first its directory's mode and times,
 * which adding or removing path changes. Once per path. */
static int save_path(struct ad *a, const char *path)
{
	char parent[4096], *slash;
	int r;

	if (entry_find(a, path))
		return 0;
	snprintf(parent, sizeof(parent), "%s", path);
	slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		if (!entry_find(a, parent) && guestfs_is_dir(a->g, parent) > 0) {
			r = save_one(a, parent);
			if (r < 0)
				return r;
		}
	}
	return save_one(a, path);
}

static int save_one(struct ad *a, const char *path)
{
	struct guestfs_statns *st;
	struct entry e = { 0 };
	char local[4096], name[32], *sum;
	int r;

	if (!path_ok(path))
		return fail(a, -EINVAL, "cannot record %s for undo (tab or newline in it)", path);
	e.path = (char *)path;
	st = guestfs_lstatns(a->g, path);
	if (!st) {
		if (guestfs_last_errno(a->g) != ENOENT)
			return gfail(a, "cannot stat %s", path);
		e.kind = E_ABSENT;
		return entry_add(a, &e);
	}
	entry_stat(&e, st);
	if (S_ISREG(st->st_mode)) {
		guestfs_free_statns(st);
		snprintf(name, sizeof(name), "%05u", a->nsaved++);
		snprintf(local, sizeof(local), "%s/files/%s", a->undo_dir, name);
		e.kind = E_FILE;
		e.saved = name;
		sum = guestfs_checksum(a->g, "sha256", path);
		if (!sum || strlen(sum) != 64) {
			free(sum);
			return gfail(a, "cannot checksum %s", path);
		}
		memcpy(e.sha, sum, 65);
		free(sum);
		if (guestfs_download(a->g, path, local) < 0)
			return gfail(a, "cannot save %s for undo", path);
		return entry_add(a, &e);
	}
	if (S_ISLNK(st->st_mode)) {
		char *t;

		guestfs_free_statns(st);
		t = guestfs_readlink(a->g, path);
		if (!t)
			return gfail(a, "cannot read the link %s", path);
		if (strpbrk(t, "\t\n")) {
			free(t);
			return fail(a, -EINVAL, "cannot record the link %s for undo", path);
		}
		e.kind = E_LINK;
		e.saved = t;
		r = entry_add(a, &e);
		free(t);
		return r;
	}
	if (S_ISDIR(st->st_mode)) {
		guestfs_free_statns(st);
		e.kind = E_DIR;
		return entry_add(a, &e);
	}
	guestfs_free_statns(st);
	return fail(a, -EINVAL, "%s is neither a file, a link nor a directory", path);
}

/* Whether path lies on a file system mounted below dir (the ESP under /boot). */
static bool under_other_mount(struct ad *a, const char *dir, const char *path)
{
	for (size_t i = 0; i < a->nm; i++) {
		size_t n = strlen(a->m[i].mp);

		if (strlen(a->m[i].mp) <= strlen(dir) || strncmp(a->m[i].mp, dir, strlen(dir)))
			continue;
		if (strncmp(path, a->m[i].mp, n) == 0 && (path[n] == '/' || path[n] == '\0'))
			return true;
	}
	return false;
}

/* Reads a checksums_out file ("HASH  ./path" lines) into names' order: sums[i] gets the
 * hash of names[i], or stays "" when the file was not listed. */
static int read_sums(const char *file, char *const *names, size_t n, char (*sums)[65])
{
	char *data = NULL, *save = NULL, *l;
	size_t len;
	int r;

	r = read_file_all(file, 256 << 20, &data, &len);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		sums[i][0] = '\0';
	for (l = strtok_r(data, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		const char *path = l + 66;

		if (strlen(l) < 67 || l[64] != ' ' || l[65] != ' ')
			continue;
		if (strncmp(path, "./", 2) == 0)
			path += 2;
		for (size_t i = 0; i < n; i++)
			if (!sums[i][0] && strcmp(names[i], path) == 0) {
				memcpy(sums[i], l, 64);
				sums[i][64] = '\0';
				break;
			}
	}
	free(data);
	return 0;
}

/* lstat (and, with ret_links, readlink) of names below dir, which may hold '/': the
 * batch calls take plain names, so they are made once per directory. ret_st[i].st_ino is
 * -1 for a name that does not exist; ret_links[i] is "" for what is not a link. */
static int stat_names(struct ad *a, const char *dir, char *const *names, size_t n,
		      struct guestfs_statns *ret_st, char **ret_links)
{
	bool *done = calloc(n ? n : 1, sizeof(*done));
	char **bases = calloc(n + 1, sizeof(*bases));
	size_t *idx = calloc(n ? n : 1, sizeof(*idx));
	int r = 0;

	if (!done || !bases || !idx) {
		r = -ENOMEM;
		goto cleanup;
	}
	for (size_t i = 0; i < n && r >= 0; i++) {
		const char *slash = strrchr(names[i], '/');
		size_t pl = slash ? (size_t)(slash - names[i]) : 0, k = 0;
		struct guestfs_statns_list *sts;
		char sub[4096], **links = NULL;

		if (done[i])
			continue;
		for (size_t j = i; j < n; j++) {
			const char *s2 = strrchr(names[j], '/');
			size_t pl2 = s2 ? (size_t)(s2 - names[j]) : 0;

			if (done[j] || pl2 != pl || strncmp(names[j], names[i], pl) != 0)
				continue;
			bases[k] = (char *)(s2 ? s2 + 1 : names[j]);
			idx[k++] = j;
			done[j] = true;
		}
		bases[k] = NULL;
		snprintf(sub, sizeof(sub), "%s%s%.*s", dir, pl ? "/" : "", (int)pl, names[i]);
		sts = guestfs_lstatnslist(a->g, sub, bases);
		if (ret_links && sts)
			links = guestfs_readlinklist(a->g, sub, bases);
		if (!sts || sts->len != k || (ret_links && strv_len(links) != k)) {
			guestfs_free_statns_list(sts);
			strv_free(links);
			r = gfail(a, "cannot stat the files of %s", sub);
			break;
		}
		for (size_t m = 0; m < k; m++) {
			ret_st[idx[m]] = sts->val[m];
			if (ret_links) {
				ret_links[idx[m]] = links[m];
				links[m] = NULL;
			}
		}
		guestfs_free_statns_list(sts);
		strv_free(links);
	}
cleanup:
	free(done);
	free(bases);
	free(idx);
	return r;
}

/* The entries below dir (relative names, NULL-terminated) except those on another file
 * system mounted below it. */
static int tree_names(struct ad *a, const char *dir, char ***ret_names, size_t *ret_n)
{
	char **found = guestfs_find(a->g, dir);
	size_t n = 0;

	if (!found)
		return gfail(a, "cannot list %s", dir);
	for (size_t i = 0; found[i]; i++) {
		char full[4096];

		/* this libguestfs answers "/name" for a relative "name" */
		if (found[i][0] == '/')
			memmove(found[i], found[i] + 1, strlen(found[i]));
		snprintf(full, sizeof(full), "%s/%s", dir, found[i]);
		if (under_other_mount(a, dir, full) || !path_ok(full)) {
			if (!path_ok(full)) {
				strv_free(found);
				return fail(a, -EINVAL, "cannot record %s for undo (tab or newline "
					    "in it)", full);
			}
			free(found[i]);
			continue;
		}
		found[n++] = found[i];
	}
	found[n] = NULL;
	*ret_names = found;
	*ret_n = n;
	return 0;
}

/* Saves a whole tree a guest tool will rewrite (every file: initramfs images, grub.cfg,
 * the tool's own state), so that undo can also remove what the tool created. In a few
 * calls for the whole tree, not a few per file: under TCG each call costs milliseconds. */
static int save_tree(struct ad *a, const char *dir)
{
	struct entry t = { .kind = E_TREE, .path = (char *)dir };
	struct guestfs_statns *sts = NULL;
	char **names = NULL, **links = NULL, (*sums)[65] = NULL;
	char local[4096], sumfile[4096], rel[64];
	const char *base = strrchr(dir, '/') + 1;
	size_t n = 0;
	int r;

	if (guestfs_is_dir(a->g, dir) <= 0)
		return 0;
	r = save_path(a, dir);
	if (r < 0)
		return r;
	r = tree_names(a, dir, &names, &n);
	if (r < 0)
		return r;
	snprintf(rel, sizeof(rel), "tree%u", a->nsaved++);
	snprintf(local, sizeof(local), "%s/files/%s", a->undo_dir, rel);
	snprintf(sumfile, sizeof(sumfile), "%s/files/%s.sha256", a->undo_dir, rel);
	sums = calloc(n ? n : 1, sizeof(*sums));
	sts = calloc(n ? n : 1, sizeof(*sts));
	links = calloc(n + 1, sizeof(*links));
	if (!sums || !sts || !links) {
		r = -ENOMEM;
		goto cleanup;
	}
	r = stat_names(a, dir, names, n, sts, links);
	if (r < 0)
		goto cleanup;
	if (guestfs_checksums_out(a->g, "sha256", dir, sumfile) < 0) {
		r = gfail(a, "cannot checksum the tree %s", dir);
		goto cleanup;
	}
	r = read_sums(sumfile, names, n, sums);
	if (r < 0) {
		r = fail(a, r, "cannot read %s", sumfile);
		goto cleanup;
	}
	if (mkdir(local, 0700) < 0 || guestfs_copy_out(a->g, dir, local) < 0) {
		r = gfail(a, "cannot save the tree %s in %s", dir, local);
		goto cleanup;
	}
	for (size_t i = 0; i < n && r >= 0; i++) {
		struct guestfs_statns *st = &sts[i];
		struct entry e = { 0 };
		char full[4096], saved[4096];

		snprintf(full, sizeof(full), "%s/%s", dir, names[i]);
		if (entry_find(a, full))
			continue;
		e.path = full;
		entry_stat(&e, st);
		if (S_ISREG(st->st_mode)) {
			if (!sums[i][0]) {
				r = fail(a, -EIO, "no checksum of %s", full);
				break;
			}
			snprintf(saved, sizeof(saved), "%s/%s/%s", rel, base, names[i]);
			e.kind = E_FILE;
			e.saved = saved;
			memcpy(e.sha, sums[i], 65);
		} else if (S_ISLNK(st->st_mode)) {
			if (!links[i] || strpbrk(links[i], "\t\n")) {
				r = fail(a, -EINVAL, "cannot record the link %s for undo", full);
				break;
			}
			e.kind = E_LINK;
			e.saved = links[i];
		} else if (S_ISDIR(st->st_mode)) {
			e.kind = E_DIR;
		} else {
			continue; /* no device nodes or sockets in /boot: nothing tools make */
		}
		r = entry_add(a, &e);
	}
	if (r >= 0)
		r = entry_add(a, &t);
cleanup:
	for (size_t i = 0; links && i < n; i++)
		free(links[i]);
	free(links);
	free(sts);
	strv_free(names);
	free(sums);
	return r;
}

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
static int undo_entries(struct ad *a, const char *undo_dir)
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

static void entries_free(struct ad *a)
{
	for (size_t i = 0; i < a->n; i++) {
		free(a->e[i].path);
		free(a->e[i].saved);
	}
	free(a->e);
	a->e = NULL;
	a->n = a->cap = 0;
}

/* ---- guest files ---- */

/* Reads a guest text file: 0 and *ret (NUL-terminated), -ENOENT, or -errno. */
static int get_file(struct ad *a, const char *path, char **ret)
{
	size_t size;
	char *d, *s;

	if (guestfs_is_file(a->g, path) <= 0)
		return -ENOENT;
	d = guestfs_read_file(a->g, path, &size);
	if (!d)
		return gfail(a, "cannot read %s", path);
	if (memchr(d, '\0', size)) {
		free(d);
		return fail(a, -EBADMSG, "%s is not a text file", path);
	}
	s = malloc(size + 1);
	if (!s) {
		free(d);
		return -ENOMEM;
	}
	memcpy(s, d, size);
	s[size] = '\0';
	free(d);
	*ret = s;
	return 0;
}

/* Writes a guest file after saving what was there; a new file gets mode. */
static int put_file(struct ad *a, const char *path, const char *content, unsigned mode)
{
	bool existed = guestfs_exists(a->g, path) > 0;
	int r = save_path(a, path);

	if (r < 0)
		return r;
	if (guestfs_write(a->g, path, content, strlen(content)) < 0)
		return gfail(a, "cannot write %s", path);
	if (!existed && guestfs_chmod(a->g, (int)mode, path) < 0)
		return gfail(a, "cannot set the mode of %s", path);
	return 0;
}

static int remove_path(struct ad *a, const char *path)
{
	int r = save_path(a, path);

	if (r < 0)
		return r;
	if (guestfs_rm_f(a->g, path) < 0)
		return gfail(a, "cannot remove %s", path);
	return 0;
}

/* Makes dir (and its parents) after recording which of them did not exist. */
static int make_dir(struct ad *a, const char *dir)
{
	char tmp[4096];
	int r;

	if (guestfs_is_dir(a->g, dir) > 0)
		return 0;
	snprintf(tmp, sizeof(tmp), "%s", dir);
	for (char *s = strchr(tmp + 1, '/');; s = strchr(s + 1, '/')) {
		if (s)
			*s = '\0';
		if (guestfs_is_dir(a->g, tmp) <= 0) {
			r = save_path(a, tmp);
			if (r < 0)
				return r;
			if (guestfs_mkdir(a->g, tmp) < 0)
				return gfail(a, "cannot make %s", tmp);
		}
		if (!s)
			break;
		*s = '/';
	}
	return 0;
}

/* A symlink made after saving what was at linkname. */
static int put_link(struct ad *a, const char *target, const char *linkname)
{
	char dir[4096], *slash;
	int r;

	snprintf(dir, sizeof(dir), "%s", linkname);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		r = make_dir(a, dir);
		if (r < 0)
			return r;
	}
	r = save_path(a, linkname);
	if (r < 0)
		return r;
	if (guestfs_rm_rf(a->g, linkname) < 0 || guestfs_ln_s(a->g, target, linkname) < 0)
		return gfail(a, "cannot link %s to %s", linkname, target);
	return 0;
}

static bool is_file(struct ad *a, const char *path)
{
	return guestfs_is_file(a->g, path) > 0;
}

/* Runs a shell command in the guest's root (libguestfs chroots into it with /dev, /proc
 * and /sys bound), with the guest's own PATH. *ret_out gets stdout when asked. */
static int guest_sh(struct ad *a, const char *cmd, char **ret_out)
{
	char full[2048], *out;

	snprintf(full, sizeof(full),
		 "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; "
		 "export PATH; LC_ALL=C; export LC_ALL; %s", cmd);
	out = guestfs_sh(a->g, full);
	if (!out)
		return gfail(a, "%s failed in the guest", cmd);
	if (ret_out)
		*ret_out = out;
	else
		free(out);
	return 0;
}

/* ---- resolving device names ---- */

static int resolve(void *ctx, const char *dev, char **ret_spec)
{
	struct ad *a = ctx;
	char adev[64], *uuid, *spec;
	unsigned part;
	int disk;

	if (gconf_dev_parse(dev, &disk, &part) < 0)
		return -ENOENT;
	/* The image is one disk: the appliance's /dev/sda. */
	if (disk > 0) {
		warn(a, "%s names a disk other than the one being adapted; left as is", dev);
		return -ENOENT;
	}
	snprintf(adev, sizeof(adev), part ? "/dev/sda%u" : "/dev/sda", part);
	uuid = guestfs_vfs_uuid(a->g, adev);
	if (!uuid || !uuid[0]) {
		free(uuid);
		warn(a, "%s has no file system UUID to name it by; left as is", dev);
		return -ENOENT;
	}
	if (asprintf(&spec, "UUID=%s", uuid) < 0) {
		free(uuid);
		return -ENOMEM;
	}
	free(uuid);
	if (strlen(a->renamed) + strlen(dev) + strlen(spec) + 8 < sizeof(a->renamed))
		snprintf(a->renamed + strlen(a->renamed), sizeof(a->renamed) - strlen(a->renamed),
			 "%s%s -> %s", a->renamed[0] ? ", " : "", dev, spec);
	*ret_spec = spec;
	return 0;
}

/* ---- checks before any change ---- */

static int mount_all(struct ad *a, bool ro)
{
	char b[768];

	for (size_t i = 0; i < a->nm; i++) {
		/* noatime: reading a file to save it, or a tool reading it, must not change
		 * what undo compares and restores. */
		int r = ro ? guestfs_mount_ro(a->g, a->m[i].dev, a->m[i].mp)
			   : guestfs_mount_options(a->g, "noatime", a->m[i].dev, a->m[i].mp);

		if (r < 0)
			return fail(a, -EIO, "cannot mount %s%s (%s): %s",
				    strcmp(a->m[i].mp, "/") == 0 ? "the root file system " : "",
				    a->m[i].dev, a->m[i].mp, gerr(a, b, sizeof(b)));
	}
	return 0;
}

static int mnt_cmp(const void *x, const void *y)
{
	const struct mnt *p = x, *q = y;
	size_t a = strlen(p->mp), b = strlen(q->mp);

	return a < b ? -1 : a > b;
}

static int load_mounts(struct ad *a, const char *root)
{
	char **mp = guestfs_inspect_get_mountpoints(a->g, root);
	size_t n = strv_len(mp) / 2;

	if (!mp)
		return gfail(a, "cannot read the guest's mount points");
	a->m = calloc(n ? n : 1, sizeof(*a->m));
	if (!a->m) {
		strv_free(mp);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		a->m[i].mp = mp[2 * i];
		a->m[i].dev = mp[2 * i + 1];
		if (!path_ok(a->m[i].mp) || strpbrk(a->m[i].dev, "\t\n")) {
			for (size_t j = 2 * i + 2; mp[j]; j++)
				free(mp[j]);
			free(mp);
			a->nm = i + 1;
			return fail(a, -EINVAL, "a mount point of the guest has a tab or newline");
		}
	}
	free(mp);
	a->nm = n;
	qsort(a->m, n, sizeof(*a->m), mnt_cmp);
	return 0;
}

static const char *first_file(struct ad *a, const char *const *paths)
{
	for (size_t i = 0; paths[i]; i++)
		if (is_file(a, paths[i]))
			return paths[i];
	return NULL;
}

static int check_kernels(struct ad *a)
{
	char **boot = guestfs_ls(a->g, "/boot");
	int r = 0;

	if (!boot)
		return gfail(a, "cannot list /boot");
	a->kernels = calloc(strv_len(boot) + 1, sizeof(char *));
	if (!a->kernels) {
		strv_free(boot);
		return -ENOMEM;
	}
	for (size_t i = 0; boot[i]; i++) {
		char moddir[512];

		if (strncmp(boot[i], "vmlinuz-", 8) != 0 || strpbrk(boot[i], " \t\n'\"\\$`;"))
			continue;
		snprintf(moddir, sizeof(moddir), "/lib/modules/%s", boot[i] + 8);
		if (guestfs_is_dir(a->g, moddir) <= 0) {
			warn(a, "kernel /boot/%s has no %s; its initramfs is left as is", boot[i],
			     moddir);
			continue;
		}
		a->kernels[a->nkernels] = strdup(boot[i] + 8);
		if (!a->kernels[a->nkernels++]) {
			r = -ENOMEM;
			break;
		}
	}
	strv_free(boot);
	if (r < 0)
		return r;
	if (a->nkernels == 0)
		return fail(a, -ENOENT, "no kernel with its modules in /boot and /lib/modules");
	for (size_t k = 0; k < a->nkernels; k++) {
		char dep[512], builtin[512], *deps = NULL, *bi = NULL;

		snprintf(dep, sizeof(dep), "/lib/modules/%s/modules.dep", a->kernels[k]);
		snprintf(builtin, sizeof(builtin), "/lib/modules/%s/modules.builtin", a->kernels[k]);
		r = get_file(a, dep, &deps);
		if (r < 0)
			return fail(a, r, "cannot read %s", dep);
		if (get_file(a, builtin, &bi) < 0)
			bi = NULL;
		for (size_t d = 0; a->p->drivers[d] && r >= 0; d++)
			if (!gconf_modlist_has(deps, a->p->drivers[d]) &&
			    !(bi && gconf_modlist_has(bi, a->p->drivers[d])))
				r = fail(a, -ENOENT, "kernel %s has no %s driver, which profile %s "
					 "needs", a->kernels[k], a->p->drivers[d], a->p->name);
		free(deps);
		free(bi);
		if (r < 0)
			return r;
	}
	return 0;
}

static int preflight(struct ad *a, json_object *os)
{
	static const char *const itools[] = { "/usr/sbin/update-initramfs",
		"/sbin/update-initramfs", NULL };
	static const char *const dracut[] = { "/usr/bin/dracut", "/usr/sbin/dracut", NULL };
	static const char *const mkconfig[] = { "/usr/sbin/grub-mkconfig", "/sbin/grub-mkconfig",
		"/usr/sbin/grub2-mkconfig", NULL };
	static const char *const units[] = { "/lib/systemd/system", "/usr/lib/systemd/system",
		NULL };
	char **roots, *type, *s, *init;
	int r;

	roots = guestfs_inspect_os(a->g);
	if (!roots)
		return gfail(a, "cannot inspect the disk");
	if (strv_len(roots) != 1) {
		r = strv_len(roots) == 0
			    ? fail(a, -ENOENT, "no operating system found on the disk")
			    : fail(a, -EINVAL, "%zu operating systems found on the disk; tern "
				   "adapts a disk with one", strv_len(roots));
		strv_free(roots);
		return r;
	}
	snprintf(a->root_dev, sizeof(a->root_dev), "%s", roots[0]);
	strv_free(roots);
	type = guestfs_inspect_get_type(a->g, a->root_dev);
	if (!type || strcmp(type, "linux") != 0) {
		r = fail(a, -EINVAL, "the disk holds a %s system; tern adapts Linux guests",
			 type ? type : "unknown");
		free(type);
		return r;
	}
	free(type);
	if ((s = guestfs_inspect_get_product_name(a->g, a->root_dev))) {
		json_object_object_add(os, "product", json_object_new_string(s));
		free(s);
	}
	if ((s = guestfs_inspect_get_distro(a->g, a->root_dev))) {
		json_object_object_add(os, "distro", json_object_new_string(s));
		free(s);
	}
	json_object_object_add(os, "root", json_object_new_string(a->root_dev));
	s = guestfs_vfs_uuid(a->g, a->root_dev);
	if (!s || !s[0]) {
		free(s);
		return fail(a, -EINVAL, "the root file system %s has no UUID to name it by",
			    a->root_dev);
	}
	snprintf(a->root_uuid, sizeof(a->root_uuid), "%s", s);
	free(s);
	json_object_object_add(os, "root_uuid", json_object_new_string(a->root_uuid));
	/* An LVM root keeps its /dev/mapper name on any platform, and grub-mkconfig names
	 * it so: that is as good as a UUID. */
	if (guestfs_is_lv(a->g, a->root_dev) > 0) {
		char *c = guestfs_lvm_canonical_lv_name(a->g, a->root_dev);
		char *vg = c && strncmp(c, "/dev/", 5) == 0 ? c + 5 : NULL;
		char *lv = vg ? strchr(vg, '/') : NULL;

		if (lv) {
			size_t j = snprintf(a->root_alt, sizeof(a->root_alt), "/dev/mapper/");

			*lv++ = '\0';
			/* device-mapper doubles the dashes inside VG and LV names */
			for (const char *q = vg; *q && j + 4 < sizeof(a->root_alt); q++) {
				a->root_alt[j++] = *q;
				if (*q == '-')
					a->root_alt[j++] = '-';
			}
			a->root_alt[j++] = '-';
			for (const char *q = lv; *q && j + 3 < sizeof(a->root_alt); q++) {
				a->root_alt[j++] = *q;
				if (*q == '-')
					a->root_alt[j++] = '-';
			}
			a->root_alt[j] = '\0';
		}
		free(c);
	}
	r = load_mounts(a, a->root_dev);
	if (r < 0)
		return r;
	r = mount_all(a, true);
	if (r < 0)
		return r;
	init = guestfs_realpath(a->g, "/sbin/init");
	if (!init || !strstr(init, "systemd")) {
		r = fail(a, -ENOTSUP, "unknown init system: /sbin/init is %s, not systemd",
			 init ? init : "missing");
		free(init);
		return r;
	}
	free(init);
	json_object_object_add(os, "init", json_object_new_string("systemd"));
	a->unitdir = NULL;
	for (size_t i = 0; units[i] && !a->unitdir; i++)
		if (guestfs_is_dir(a->g, units[i]) > 0)
			a->unitdir = units[i];
	if (!a->unitdir)
		return fail(a, -ENOTSUP, "systemd's unit directory is missing");
	a->itools = first_file(a, itools) != NULL;
	a->dracut = !a->itools && first_file(a, dracut) != NULL;
	if (!a->itools && !a->dracut)
		return fail(a, -ENOTSUP, "no initramfs tool: neither initramfs-tools "
			    "(update-initramfs) nor dracut is installed in the guest");
	json_object_object_add(os, "initramfs",
			       json_object_new_string(a->itools ? "initramfs-tools" : "dracut"));
	if (!first_file(a, mkconfig) || !is_file(a, "/boot/grub/grub.cfg"))
		return fail(a, -ENOTSUP, "no GRUB: tern regenerates the boot configuration with "
			    "the guest's grub-mkconfig and /boot/grub/grub.cfg");
	r = check_kernels(a);
	if (r < 0)
		return r;
	{
		json_object *k = json_object_new_array();

		for (size_t i = 0; i < a->nkernels; i++)
			json_object_array_add(k, json_object_new_string(a->kernels[i]));
		json_object_object_add(os, "kernels", k);
	}
	return 0;
}

/* ---- the steps ---- */

/* Rewrites one guest file with fn when it exists and changes. */
static int rewrite_file(struct ad *a, const char *path, const char *step, const char *why,
			int (*fn)(struct ad *a, const char *in, char **ret_out, unsigned *ret_n))
{
	char *in = NULL, *out = NULL, change[1400];
	unsigned n = 0;
	int r;

	r = get_file(a, path, &in);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	a->renamed[0] = '\0';
	r = fn(a, in, &out, &n);
	if (r < 0)
		goto cleanup;
	if (n == 0 || strcmp(in, out) == 0)
		goto cleanup;
	r = put_file(a, path, out, 0644);
	if (r < 0)
		goto cleanup;
	if (a->renamed[0])
		snprintf(change, sizeof(change), "%u change(s): %s", n, a->renamed);
	else
		snprintf(change, sizeof(change), "%u change(s)", n);
	report_step(a, step, path, change, why);
cleanup:
	free(in);
	free(out);
	return r;
}

static int fstab_fn(struct ad *a, const char *in, char **out, unsigned *n)
{
	return gconf_fstab_rewrite(in, resolve, a, out, n);
}

static int resume_fn(struct ad *a, const char *in, char **out, unsigned *n)
{
	return gconf_resume_rewrite(in, resolve, a, out, n);
}

static int grub_main_fn(struct ad *a, const char *in, char **out, unsigned *n)
{
	return gconf_grub_default_rewrite(in, resolve, a, true, true, out, n);
}

static int grub_d_fn(struct ad *a, const char *in, char **out, unsigned *n)
{
	return gconf_grub_default_rewrite(in, resolve, a, true, false, out, n);
}

static int ifaces_fn(struct ad *a, const char *in, char **out, unsigned *n)
{
	return gconf_interfaces_disable(in, out, n);
}

static int itools_conf_fn(struct ad *a, const char *in, char **out, unsigned *n)
{
	bool changed = false;
	int r = gconf_initramfs_conf(in, out, &changed);

	*n = changed;
	return r;
}

/* Calls fn for every regular file in dir whose name ends in suffix (NULL: any). */
static int each_file(struct ad *a, const char *dir, const char *suffix,
		     int (*fn)(struct ad *a, const char *path))
{
	char **names;
	int r = 0;

	if (guestfs_is_dir(a->g, dir) <= 0)
		return 0;
	names = guestfs_ls(a->g, dir);
	if (!names)
		return gfail(a, "cannot list %s", dir);
	for (size_t i = 0; names[i] && r >= 0; i++) {
		size_t n = strlen(names[i]), sn = suffix ? strlen(suffix) : 0;
		char path[4096];

		if (n < sn || (suffix && strcmp(names[i] + n - sn, suffix) != 0))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (guestfs_is_file(a->g, path) > 0 && guestfs_is_symlink(a->g, path) <= 0)
			r = fn(a, path);
	}
	strv_free(names);
	return r;
}

static int grub_d_one(struct ad *a, const char *path)
{
	return rewrite_file(a, path, "kernel command line", "root and resume by UUID, serial "
			    "console for the new platform", grub_d_fn);
}

static int ifaces_one(struct ad *a, const char *path)
{
	return rewrite_file(a, path, "network", "ifupdown stanzas name the old machine's "
			    "interfaces; DHCP on any Ethernet interface replaces them", ifaces_fn);
}

static int step_names(struct ad *a)
{
	int r;

	r = rewrite_file(a, "/etc/fstab", "fstab", "device names follow the bus, which the "
			 "new platform changes; UUIDs do not", fstab_fn);
	if (r >= 0)
		r = rewrite_file(a, "/etc/initramfs-tools/conf.d/resume", "resume", "the "
				 "resume device by UUID", resume_fn);
	if (r >= 0)
		r = rewrite_file(a, "/etc/default/grub", "kernel command line", "root and "
				 "resume by UUID (grub-mkconfig must not name the root by bus), "
				 "serial console for the new platform", grub_main_fn);
	if (r >= 0)
		r = each_file(a, "/etc/default/grub.d", ".cfg", grub_d_one);
	return r;
}

static int itools_conf_one(struct ad *a, const char *path)
{
	return rewrite_file(a, path, "initramfs drivers", "MODULES=dep would pick the drivers "
			    "of the machine doing the rebuild", itools_conf_fn);
}

static int step_drivers(struct ad *a)
{
	char comment[128], *in = NULL, *out = NULL;
	unsigned added = 0;
	int r;

	snprintf(comment, sizeof(comment), "added by tern: the %s platform's drivers",
		 a->p->name);
	if (a->dracut) {
		r = gconf_dracut_conf(a->p->drivers, comment, &out);
		if (r < 0)
			return r;
		r = make_dir(a, "/etc/dracut.conf.d");
		if (r >= 0)
			r = put_file(a, "/etc/dracut.conf.d/90-tern-adapt.conf", out, 0644);
		if (r >= 0)
			report_step(a, "initramfs drivers", "/etc/dracut.conf.d/90-tern-adapt.conf",
				    "add_drivers for the profile", "the new platform's storage and "
				    "network drivers must be in every initramfs");
		free(out);
		return r;
	}
	r = get_file(a, "/etc/initramfs-tools/modules", &in);
	if (r == -ENOENT) {
		in = strdup("");
		r = in ? 0 : -ENOMEM;
	}
	if (r < 0)
		return r;
	r = gconf_modules_add(in, a->p->drivers, comment, &out, &added);
	if (r >= 0 && added > 0) {
		r = put_file(a, "/etc/initramfs-tools/modules", out, 0644);
		if (r >= 0) {
			char change[64];

			snprintf(change, sizeof(change), "%u driver(s) listed", added);
			report_step(a, "initramfs drivers", "/etc/initramfs-tools/modules", change,
				    "the new platform's storage and network drivers must be in "
				    "every initramfs");
		}
	}
	free(in);
	free(out);
	if (r >= 0)
		r = rewrite_file(a, "/etc/initramfs-tools/initramfs.conf", "initramfs drivers",
				 "MODULES=dep would pick the drivers of the machine doing the "
				 "rebuild", itools_conf_fn);
	if (r >= 0)
		r = each_file(a, "/etc/initramfs-tools/conf.d", NULL, itools_conf_one);
	return r;
}

static int networkd_one(struct ad *a, const char *path)
{
	char *in = NULL;
	int r = get_file(a, path, &in);

	if (r < 0)
		return r == -ENOENT ? 0 : r;
	if (gconf_networkd_bound(in)) {
		r = remove_path(a, path);
		if (r >= 0)
			report_step(a, "network", path, "removed", "bound to the old machine's "
				    "interface name, MAC or a static address");
	}
	free(in);
	return r;
}

static int nm_one(struct ad *a, const char *path)
{
	char *in = NULL;
	int r = get_file(a, path, &in);

	if (r < 0)
		return r == -ENOENT ? 0 : r;
	if (gconf_nm_bound(in)) {
		r = remove_path(a, path);
		if (r >= 0)
			report_step(a, "network", path, "removed", "NetworkManager profile bound "
				    "to the old machine's interface, MAC or a static address");
	}
	free(in);
	return r;
}

static int netplan_one(struct ad *a, const char *path)
{
	char *in = NULL;
	int r = get_file(a, path, &in);

	if (r < 0)
		return r == -ENOENT ? 0 : r;
	if (gconf_netplan_bound(in)) {
		r = remove_path(a, path);
		if (r >= 0)
			report_step(a, "network", path, "removed", "netplan configuration of the "
				    "old machine's interfaces");
	}
	free(in);
	return r;
}

static const char networkd_dhcp[] =
	"# Added by tern (adaptation): DHCP on any Ethernet interface, whatever the new\n"
	"# platform names it. Undone by tern-receiver adapt --undo.\n"
	"[Match]\nType=ether\n\n[Network]\nDHCP=yes\n";

static const char nm_dhcp[] =
	"# Added by tern (adaptation): DHCP on any Ethernet interface.\n"
	"[connection]\nid=tern-dhcp\nuuid=4f3c2e1d-7a6b-4c5d-9e8f-0a1b2c3d4e5f\n"
	"type=ethernet\nautoconnect=true\nautoconnect-priority=-10\n\n"
	"[ethernet]\n\n[ipv4]\nmethod=auto\n\n[ipv6]\nmethod=auto\n";

static const char netplan_dhcp[] =
	"# Added by tern (adaptation): DHCP on any Ethernet interface.\n"
	"network:\n  version: 2\n  ethernets:\n    tern-any:\n      match:\n"
	"        name: \"e*\"\n      dhcp4: true\n";

static int enable_unit(struct ad *a, const char *unit, const char *wants)
{
	char src[256], dst[512];

	snprintf(src, sizeof(src), "%s/%s", a->unitdir, unit);
	if (!is_file(a, src))
		return 0;
	snprintf(dst, sizeof(dst), "/etc/systemd/system/%s/%s", wants, unit);
	if (guestfs_exists(a->g, dst) > 0)
		return 0;
	return put_link(a, src, dst);
}

static int step_network(struct ad *a)
{
	const char *rules = "/etc/udev/rules.d/70-persistent-net.rules";
	bool nm = guestfs_exists(a->g, "/etc/systemd/system/multi-user.target.wants/"
				 "NetworkManager.service") > 0;
	bool netplan = !nm && is_file(a, "/usr/sbin/netplan");
	int r = 0;

	if (is_file(a, rules)) {
		r = remove_path(a, rules);
		if (r < 0)
			return r;
		report_step(a, "network", rules, "removed", "names interfaces after the old "
			    "machine's MAC addresses");
	}
	r = rewrite_file(a, "/etc/network/interfaces", "network", "ifupdown stanzas name the "
			 "old machine's interfaces; DHCP on any Ethernet interface replaces them",
			 ifaces_fn);
	if (r >= 0)
		r = each_file(a, "/etc/network/interfaces.d", NULL, ifaces_one);
	if (r >= 0)
		r = each_file(a, "/etc/systemd/network", ".network", networkd_one);
	if (r >= 0)
		r = each_file(a, "/etc/NetworkManager/system-connections", NULL, nm_one);
	if (r >= 0)
		r = each_file(a, "/etc/netplan", ".yaml", netplan_one);
	if (r < 0)
		return r;
	if (nm) {
		const char *p = "/etc/NetworkManager/system-connections/tern-dhcp.nmconnection";

		r = make_dir(a, "/etc/NetworkManager/system-connections");
		if (r >= 0)
			r = put_file(a, p, nm_dhcp, 0600);
		if (r >= 0)
			report_step(a, "network", p, "added", "NetworkManager runs the network: "
				    "DHCP on any Ethernet interface");
		return r;
	}
	if (netplan) {
		const char *p = "/etc/netplan/90-tern-dhcp.yaml";

		r = make_dir(a, "/etc/netplan");
		if (r >= 0)
			r = put_file(a, p, netplan_dhcp, 0600);
		if (r >= 0)
			report_step(a, "network", p, "added", "netplan runs the network: DHCP on "
				    "any Ethernet interface");
		return r;
	}
	r = make_dir(a, "/etc/systemd/network");
	if (r >= 0)
		r = put_file(a, "/etc/systemd/network/80-tern-dhcp.network", networkd_dhcp, 0644);
	if (r >= 0)
		r = enable_unit(a, "systemd-networkd.service", "multi-user.target.wants");
	if (r >= 0)
		r = enable_unit(a, "systemd-networkd.socket", "sockets.target.wants");
	if (r >= 0)
		r = enable_unit(a, "systemd-networkd-wait-online.service",
				"network-online.target.wants");
	if (r >= 0)
		report_step(a, "network", "/etc/systemd/network/80-tern-dhcp.network",
			    "added, systemd-networkd enabled", "systemd-networkd is part of "
			    "systemd on every such guest and matches any Ethernet interface by "
			    "type, whatever the new platform names it");
	return r;
}

static int step_tools(struct ad *a)
{
	for (size_t i = 0; a->p->foreign_units[i]; i++) {
		const char *u = a->p->foreign_units[i];
		char unit[512], mask[512], *t;
		bool masked;
		int r;

		snprintf(unit, sizeof(unit), "%s/%s", a->unitdir, u);
		if (!is_file(a, unit))
			continue;
		snprintf(mask, sizeof(mask), "/etc/systemd/system/%s", u);
		t = guestfs_is_symlink(a->g, mask) > 0 ? guestfs_readlink(a->g, mask) : NULL;
		masked = t && strcmp(t, "/dev/null") == 0;
		free(t);
		if (masked)
			continue;
		r = put_link(a, "/dev/null", mask);
		if (r < 0)
			return r;
		report_step(a, "guest tools", mask, "masked", "a guest tool of another "
			    "platform, which waits for or fails without its hypervisor");
	}
	return 0;
}

static int step_caches(struct ad *a)
{
	static const char *const paths[] = { "/etc/lvm/devices/system.devices",
		"/etc/blkid.tab", "/etc/blkid/blkid.tab", NULL };

	for (size_t i = 0; paths[i]; i++) {
		int r;

		if (!is_file(a, paths[i]))
			continue;
		r = remove_path(a, paths[i]);
		if (r < 0)
			return r;
		report_step(a, "device caches", paths[i], "removed", i == 0
			    ? "the LVM devices file lists the old disks' IDs; LVM would ignore "
			      "the new ones"
			    : "a blkid cache of the old machine's devices");
	}
	return 0;
}

static const char marker_script[] =
	"#!/bin/sh\n"
	"# Added by tern's test launch (tern-receiver adapt --marker): prints the guest's\n"
	"# first IPv4 address on the console once DHCP gave it one. Undone with the rest.\n"
	"i=0\n"
	"while [ $i -lt 300 ]; do\n"
	"\tfor a in $(hostname -I 2>/dev/null); do\n"
	"\t\tcase $a in *:*) continue ;; esac\n"
	"\t\tfor t in /dev/ttyS0 /dev/console; do\n"
	"\t\t\techo \"TERN-BOOT-OK $a\" >$t 2>/dev/null\n"
	"\t\tdone\n"
	"\t\texit 0\n"
	"\tdone\n"
	"\tsleep 1\n"
	"\ti=$((i + 1))\n"
	"done\n"
	"echo TERN-BOOT-NOADDR >/dev/ttyS0 2>/dev/null\n"
	"exit 1\n";

static const char marker_unit[] =
	"# Added by tern's test launch: reports the DHCP address on the console.\n"
	"[Unit]\n"
	"Description=tern test-launch marker\n"
	"After=multi-user.target network.target\n"
	"\n[Service]\n"
	"Type=oneshot\n"
	"ExecStart=/usr/local/sbin/tern-boot-marker\n"
	"\n[Install]\n"
	"WantedBy=multi-user.target\n";

/* What step_marker adds (adapt_unmark removes them): the script, the unit, its link. */
static const char *const marker_paths[] = {
	"/usr/local/sbin/tern-boot-marker",
	"/etc/systemd/system/tern-boot-marker.service",
	"/etc/systemd/system/multi-user.target.wants/tern-boot-marker.service",
};

static int step_marker(struct ad *a)
{
	const char *unit = marker_paths[1];
	int r;

	r = make_dir(a, "/usr/local/sbin");
	if (r >= 0)
		r = put_file(a, marker_paths[0], marker_script, 0755);
	if (r >= 0)
		r = put_file(a, unit, marker_unit, 0644);
	if (r >= 0)
		r = put_link(a, unit, marker_paths[2]);
	if (r >= 0)
		report_step(a, "test-launch marker", unit, "added and enabled", "prints "
			    "TERN-BOOT-OK and the DHCP address on the console, the boot proof");
	return r;
}

/* The EFI system partition's mount point: a vfat file system mounted at /boot/efi or
 * /efi, or NULL. */
static const char *esp_mount(struct ad *a)
{
	for (size_t i = 0; i < a->nm; i++) {
		char *t;
		bool vfat;

		if (strcmp(a->m[i].mp, "/boot/efi") != 0 && strcmp(a->m[i].mp, "/efi") != 0)
			continue;
		t = guestfs_vfs_type(a->g, a->m[i].dev);
		vfat = t && strcmp(t, "vfat") == 0;
		free(t);
		if (vfat)
			return a->m[i].mp;
	}
	return NULL;
}

/* Copies src to dst inside the guest after recording dst. */
static int copy_in_guest(struct ad *a, const char *src, const char *dst)
{
	int r = save_path(a, dst);

	if (r < 0)
		return r;
	if (guestfs_cp(a->g, src, dst) < 0)
		return gfail(a, "cannot copy %s to %s", src, dst);
	return 0;
}

static int step_efi(struct ad *a)
{
	static const char *const vendors[] = { "debian", "ubuntu", "fedora", "centos", "redhat",
		"rocky", "almalinux", "opensuse", "sles", NULL };
	const char *mp = esp_mount(a);
	char efi[512], boot[1024], fallback[1024], *cs;
	int r;

	if (!mp)
		return 0;
	snprintf(efi, sizeof(efi), "%s/EFI", mp);
	cs = guestfs_case_sensitive_path(a->g, efi);
	if (!cs || guestfs_is_dir(a->g, cs) <= 0) {
		free(cs);
		warn(a, "the EFI system partition at %s has no EFI directory", mp);
		return 0;
	}
	snprintf(efi, sizeof(efi), "%s", cs);
	free(cs);
	snprintf(fallback, sizeof(fallback), "%s/BOOT/BOOTX64.EFI", efi);
	cs = guestfs_case_sensitive_path(a->g, fallback);
	if (cs && is_file(a, cs)) {
		free(cs);
		return 0;
	}
	free(cs);
	for (size_t v = 0; vendors[v]; v++) {
		char dir[1024], shim[1100], grub[1100], mm[1100];
		bool has_shim, has_grub;

		snprintf(dir, sizeof(dir), "%s/%s", efi, vendors[v]);
		cs = guestfs_case_sensitive_path(a->g, dir);
		if (!cs || guestfs_is_dir(a->g, cs) <= 0) {
			free(cs);
			continue;
		}
		snprintf(dir, sizeof(dir), "%s", cs);
		free(cs);
		snprintf(shim, sizeof(shim), "%s/shimx64.efi", dir);
		snprintf(grub, sizeof(grub), "%s/grubx64.efi", dir);
		snprintf(mm, sizeof(mm), "%s/mmx64.efi", dir);
		has_shim = is_file(a, shim);
		has_grub = is_file(a, grub);
		if (!has_shim && !has_grub)
			continue;
		/* vfat: an existing \EFI\Boot is the same directory as \EFI\BOOT. */
		snprintf(boot, sizeof(boot), "%s/BOOT", efi);
		cs = guestfs_case_sensitive_path(a->g, boot);
		if (!cs)
			return gfail(a, "cannot resolve %s", boot);
		snprintf(boot, sizeof(boot), "%.512s", cs);
		free(cs);
		r = make_dir(a, boot);
		if (r < 0)
			return r;
		snprintf(fallback, sizeof(fallback), "%.512s/BOOTX64.EFI", boot);
		/* shim loads grubx64.efi (and mmx64.efi) from its own directory. */
		r = copy_in_guest(a, has_shim ? shim : grub, fallback);
		if (r >= 0 && has_shim) {
			char dst[1100];

			snprintf(dst, sizeof(dst), "%s/grubx64.efi", boot);
			r = copy_in_guest(a, grub, dst);
			if (r >= 0 && is_file(a, mm)) {
				snprintf(dst, sizeof(dst), "%s/mmx64.efi", boot);
				r = copy_in_guest(a, mm, dst);
			}
		}
		if (r < 0)
			return r;
		report_step(a, "uefi fallback", fallback, has_shim ? "copied from shimx64.efi "
			    "(with grubx64.efi)" : "copied from grubx64.efi", "a new machine's "
			    "NVRAM has no boot entry: firmware boots the removable-media path");
		return 0;
	}
	warn(a, "no distribution boot loader under %s to copy to \\EFI\\BOOT\\BOOTX64.EFI", efi);
	return 0;
}

/* The initramfs file of kernel ver, or NULL. */
static const char *initrd_of(struct ad *a, const char *ver, char *buf, size_t len)
{
	static const char *const pre[] = { "/boot/initrd.img-", "/boot/initramfs-",
		"/boot/initrd-", NULL };
	static const char *const suf[] = { "", ".img", "" };

	for (size_t i = 0; pre[i]; i++) {
		snprintf(buf, len, "%s%s%s", pre[i], ver, suf[i]);
		if (is_file(a, buf))
			return buf;
	}
	return NULL;
}

static int check_initramfs(struct ad *a)
{
	int r = 0;

	for (size_t k = 0; k < a->nkernels && r >= 0; k++) {
		char img[512], cmd[700], builtin[512], *list = NULL, *bi = NULL;
		json_object *c, *drv;

		if (!initrd_of(a, a->kernels[k], img, sizeof(img)))
			return fail(a, -ENOENT, "kernel %s has no initramfs after the rebuild",
				    a->kernels[k]);
		snprintf(cmd, sizeof(cmd), "%s '%s'", a->itools ? "lsinitramfs" : "lsinitrd", img);
		r = guest_sh(a, cmd, &list);
		if (r < 0)
			return r;
		snprintf(builtin, sizeof(builtin), "/lib/modules/%s/modules.builtin", a->kernels[k]);
		if (get_file(a, builtin, &bi) < 0)
			bi = NULL;
		c = json_object_new_object();
		drv = json_object_new_array();
		json_object_object_add(c, "check", json_object_new_string("initramfs"));
		json_object_object_add(c, "path", json_object_new_string(img));
		for (size_t d = 0; a->p->drivers[d] && r >= 0; d++) {
			const char *m = a->p->drivers[d];

			if (gconf_listing_has_module(list, m) || (bi && gconf_modlist_has(bi, m)))
				json_object_array_add(drv, json_object_new_string(m));
			else
				r = fail(a, -ENOENT, "%s lacks the %s driver after the rebuild",
					 img, m);
		}
		json_object_object_add(c, "drivers", drv);
		json_object_array_add(a->checks, c);
		free(list);
		free(bi);
	}
	return r;
}

static int step_regenerate(struct ad *a)
{
	char *cfg = NULL, *why = NULL;
	json_object *c;
	int r;

	/* Everything the tools may rewrite or create, saved first; their temporary
	 * directories come and go in /var/tmp and /tmp, whose times undo puts back. */
	r = save_path(a, "/var/tmp");
	if (r >= 0)
		r = save_path(a, "/tmp");
	if (r >= 0)
		r = save_tree(a, "/boot");
	if (r >= 0)
		r = save_tree(a, "/var/lib/initramfs-tools");
	if (r < 0)
		return r;
	log_info("rebuilding the initramfs of %zu kernel(s) with %s", a->nkernels,
		 a->itools ? "update-initramfs" : "dracut");
	if (a->itools) {
		r = guest_sh(a, "update-initramfs -u -k all", NULL);
	} else {
		for (size_t k = 0; k < a->nkernels && r >= 0; k++) {
			char cmd[600], img[512];

			if (!initrd_of(a, a->kernels[k], img, sizeof(img)))
				snprintf(img, sizeof(img), "/boot/initramfs-%s.img", a->kernels[k]);
			snprintf(cmd, sizeof(cmd), "dracut -f '%s' '%s'", img, a->kernels[k]);
			r = guest_sh(a, cmd, NULL);
		}
	}
	if (r < 0)
		return r;
	report_step(a, "initramfs", "/boot", a->itools ? "update-initramfs -u -k all"
		    : "dracut -f for every kernel", "the initramfs must hold the new platform's "
		    "drivers to find the root disk");
	r = check_initramfs(a);
	if (r < 0)
		return r;
	log_info("regenerating the GRUB configuration");
	r = guest_sh(a, is_file(a, "/usr/sbin/update-grub") ? "update-grub"
		     : "grub-mkconfig -o /boot/grub/grub.cfg", NULL);
	if (r < 0)
		return r;
	report_step(a, "bootloader", "/boot/grub/grub.cfg", "regenerated with the guest's "
		    "grub-mkconfig", "to take the kernel command line above");
	r = get_file(a, "/boot/grub/grub.cfg", &cfg);
	if (r < 0)
		return fail(a, r, "cannot read the regenerated /boot/grub/grub.cfg");
	{
		char spec[200];

		snprintf(spec, sizeof(spec), "UUID=%s", a->root_uuid);
		r = gconf_grubcfg_check(cfg, spec, true, &why);
	}
	if (r == -EBADMSG && a->root_alt[0]) {
		free(why);
		why = NULL;
		r = gconf_grubcfg_check(cfg, a->root_alt, true, &why);
	}
	free(cfg);
	if (r < 0) {
		r = fail(a, r, "the regenerated grub.cfg is wrong: %s", why ? why : "?");
		free(why);
		return r;
	}
	c = json_object_new_object();
	json_object_object_add(c, "check", json_object_new_string("grub.cfg"));
	json_object_object_add(c, "entries", json_object_new_int(r));
	json_object_object_add(c, "root", json_object_new_string(a->root_uuid));
	json_object_array_add(a->checks, c);
	return 0;
}

/* ---- the appliance ---- */

static int appliance_start(const char *image, enum adapt_accel accel, guestfs_h **ret_g,
			   char *why, size_t why_len)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		bool tcg = accel == ADAPT_ACCEL_TCG || attempt == 1;
		guestfs_h *g = guestfs_create();
		const char *e;

		if (!g) {
			snprintf(why, why_len, "cannot create a libguestfs handle");
			return -ENOMEM;
		}
		guestfs_set_error_handler(g, NULL, NULL);
		if (!getenv("LIBGUESTFS_BACKEND"))
			guestfs_set_backend(g, "direct");
		if (tcg)
			guestfs_set_backend_setting(g, "force_tcg", "1");
		if (guestfs_add_drive_opts(g, image, GUESTFS_ADD_DRIVE_OPTS_FORMAT, "raw",
					   GUESTFS_ADD_DRIVE_OPTS_READONLY, 0, -1) < 0) {
			snprintf(why, why_len, "cannot open %s: %s", image,
				 (e = guestfs_last_error(g)) ? e : "?");
			guestfs_close(g);
			return -EIO;
		}
		if (guestfs_launch(g) == 0) {
			*ret_g = g;
			return 0;
		}
		e = guestfs_last_error(g);
		if (tcg || accel == ADAPT_ACCEL_KVM) {
			snprintf(why, why_len, "the libguestfs appliance did not start: %s",
				 e ? e : "?");
			guestfs_close(g);
			return -EIO;
		}
		log_info("the libguestfs appliance did not start with KVM (%s); trying TCG",
			 e ? e : "?");
		guestfs_close(g);
	}
	return -EIO;
}

static void ad_free(struct ad *a)
{
	for (size_t i = 0; i < a->nm; i++) {
		free(a->m[i].dev);
		free(a->m[i].mp);
	}
	free(a->m);
	strv_free(a->kernels);
	entries_free(a);
	if (a->manifest)
		fclose(a->manifest);
	json_object_put(a->report);
	if (a->g)
		guestfs_close(a->g);
}

/* Creates the undo directory: absent or empty, made 0700. */
static int undo_dir_make(const char *dir, char *why, size_t why_len)
{
	char files[4096];
	int r;

	r = mkdir_p(dir, 0700);
	if (r < 0) {
		snprintf(why, why_len, "cannot make the undo directory %s: %s", dir, strerror(-r));
		return r;
	}
	snprintf(files, sizeof(files), "%s/%s", dir, UNDO_MANIFEST);
	if (access(files, F_OK) == 0) {
		snprintf(why, why_len, "the undo directory %s already holds an adaptation's "
			 "undo record; give another one", dir);
		return -EEXIST;
	}
	snprintf(files, sizeof(files), "%s/files", dir);
	if (mkdir(files, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		snprintf(why, why_len, "cannot make %s: %s", files, strerror(errno));
		return r;
	}
	return 0;
}

int adapt_run(const char *image, const struct prof *p, const struct adapt_opts *o,
	      char **ret_report, char *why, size_t why_len)
{
	struct ad a = { .p = p, .o = o, .undo_dir = o->undo_dir, .why = why,
			.why_len = why_len };
	json_object *os = NULL;
	bool changing = false, made_dir;
	char path[4096];
	const char *js;
	int r, fd;

	why[0] = '\0';
	if (!o->undo_dir) {
		snprintf(why, why_len, "an undo directory is required");
		return -EINVAL;
	}
	if (access(image, R_OK | W_OK) < 0) {
		r = -errno;
		snprintf(why, why_len, "cannot open %s for writing: %s", image, strerror(errno));
		return r;
	}
	made_dir = access(o->undo_dir, F_OK) < 0;
	r = undo_dir_make(o->undo_dir, why, why_len);
	if (r < 0)
		return r;
	a.report = json_object_new_object();
	a.steps = json_object_new_array();
	a.warnings = json_object_new_array();
	a.checks = json_object_new_array();
	os = json_object_new_object();
	json_object_object_add(a.report, "image", json_object_new_string(image));
	json_object_object_add(a.report, "profile", json_object_new_string(p->name));
	json_object_object_add(a.report, "platform", json_object_new_string(p->platform));
	json_object_object_add(a.report, "os", os);
	json_object_object_add(a.report, "steps", a.steps);
	json_object_object_add(a.report, "checks", a.checks);
	json_object_object_add(a.report, "warnings", a.warnings);
	json_object_object_add(a.report, "undo_dir", json_object_new_string(o->undo_dir));
	json_object_object_add(a.report, "marker", json_object_new_boolean(o->marker));

	log_info("starting the libguestfs appliance for %s", image);
	r = appliance_start(image, o->accel, &a.g, why, why_len);
	if (r < 0)
		goto cleanup;
	r = preflight(&a, os);
	if (r < 0)
		goto cleanup;
	/* Checked with nothing written; from here on every change is recorded first. */
	snprintf(path, sizeof(path), "%s/%s", o->undo_dir, UNDO_MANIFEST);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || !(a.manifest = fdopen(fd, "w"))) {
		r = fail(&a, -errno, "cannot create %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		goto cleanup;
	}
	fprintf(a.manifest, "%s\nroot-uuid\t%s\n", UNDO_MAGIC, a.root_uuid);
	for (size_t i = 0; i < a.nm; i++)
		fprintf(a.manifest, "mount\t%s\t%s\n", a.m[i].dev, a.m[i].mp);
	if (guestfs_umount_all(a.g) < 0) {
		r = gfail(&a, "cannot unmount the guest's file systems");
		goto cleanup;
	}
	r = mount_all(&a, false);
	if (r < 0)
		goto cleanup;
	changing = true;
	r = step_names(&a);
	if (r >= 0)
		r = step_drivers(&a);
	if (r >= 0)
		r = step_network(&a);
	if (r >= 0)
		r = step_tools(&a);
	if (r >= 0)
		r = step_caches(&a);
	if (r >= 0 && o->marker)
		r = step_marker(&a);
	if (r >= 0)
		r = step_efi(&a);
	if (r >= 0)
		r = step_regenerate(&a);
	if (r < 0)
		goto cleanup;
	if (guestfs_umount_all(a.g) < 0 || guestfs_shutdown(a.g) < 0) {
		r = gfail(&a, "cannot close the adapted image cleanly");
		changing = false; /* the appliance is gone: nothing more can be undone here */
		goto cleanup;
	}
	changing = false;
	js = json_object_to_json_string_ext(a.report, JSON_C_TO_STRING_PRETTY |
					    JSON_C_TO_STRING_NOSLASHESCAPE);
	snprintf(path, sizeof(path), "%s/%s", o->undo_dir, UNDO_REPORT);
	r = write_file_atomic(path, js, strlen(js), 0600);
	if (r < 0) {
		fail(&a, r, "cannot write %s: %s", path, strerror(-r));
		goto cleanup;
	}
	*ret_report = strdup(js);
	r = *ret_report ? 0 : -ENOMEM;
cleanup:
	if (r < 0 && changing) {
		char first[512];

		snprintf(first, sizeof(first), "%s", why);
		log_warn("adaptation failed (%s); undoing what it changed", first);
		if (undo_entries(&a, o->undo_dir) < 0 || guestfs_umount_all(a.g) < 0 ||
		    guestfs_shutdown(a.g) < 0)
			log_error("the undo after the failure did not complete: %s; "
				  "tern-receiver adapt --undo %s %s retries it", why, o->undo_dir,
				  image);
		snprintf(why, why_len, "%s", first);
	}
	if (r < 0 && !why[0])
		snprintf(why, why_len, "%s", strerror(-r));
	if (r < 0 && !a.manifest && made_dir) {
		/* refused before any change: no trace of it on the host either */
		snprintf(path, sizeof(path), "%s/files", o->undo_dir);
		rmdir(path);
		rmdir(o->undo_dir);
	}
	ad_free(&a);
	return r;
}

/* Splits a manifest line at tabs into at most n fields; returns the count. */
static size_t split_tabs(char *l, char **f, size_t n)
{
	size_t k = 0;

	while (k < n) {
		f[k++] = l;
		l = strchr(l, '\t');
		if (!l)
			break;
		*l++ = '\0';
	}
	return k;
}

/* A saved copy's name in UNDO_DIR/files: relative, and never climbing out of it. */
static bool saved_name_ok(const char *s)
{
	if (!s[0] || s[0] == '/')
		return false;
	for (const char *c = s; c; c = strchr(c, '/')) {
		if (*c == '/')
			c++;
		if (strncmp(c, "..", 2) == 0 && (c[2] == '/' || c[2] == '\0'))
			return false;
	}
	return true;
}

/* mode, uid, gid, atime s/ns, mtime s/ns as the manifest writes them */
static void parse_stat(struct entry *e, char *const *f)
{
	e->mode = (unsigned)strtoul(f[0], NULL, 8) & 07777;
	e->uid = strtoll(f[1], NULL, 10);
	e->gid = strtoll(f[2], NULL, 10);
	e->atime_s = strtoll(f[3], NULL, 10);
	e->atime_ns = strtoll(f[4], NULL, 10);
	e->mtime_s = strtoll(f[5], NULL, 10);
	e->mtime_ns = strtoll(f[6], NULL, 10);
}

static int manifest_load(struct ad *a, const char *dir, char *why, size_t why_len)
{
	char path[4096], *data = NULL, *save = NULL, *l;
	size_t len;
	int r;

	snprintf(path, sizeof(path), "%s/%s", dir, UNDO_MANIFEST);
	r = read_file_all(path, 64 << 20, &data, &len);
	if (r < 0) {
		snprintf(why, why_len, "cannot read %s: %s", path, strerror(-r));
		return r;
	}
	l = strtok_r(data, "\n", &save);
	if (!l || strcmp(l, UNDO_MAGIC) != 0) {
		snprintf(why, why_len, "%s is not a tern undo record", path);
		free(data);
		return -EBADMSG;
	}
	while (r >= 0 && (l = strtok_r(NULL, "\n", &save))) {
		char *f[12];
		size_t n = split_tabs(l, f, 12);
		struct entry e = { 0 };

		e.path = n > 1 ? f[1] : NULL;
		if (n == 2 && strcmp(f[0], "root-uuid") == 0) {
			snprintf(a->root_uuid, sizeof(a->root_uuid), "%s", f[1]);
			continue;
		}
		if (n == 3 && strcmp(f[0], "mount") == 0) {
			struct mnt *m = realloc(a->m, (a->nm + 1) * sizeof(*m));

			if (!m) {
				r = -ENOMEM;
				break;
			}
			a->m = m;
			m[a->nm].dev = strdup(f[1]);
			m[a->nm].mp = strdup(f[2]);
			if (!m[a->nm].dev || !m[a->nm].mp) {
				free(m[a->nm].dev);
				free(m[a->nm].mp);
				r = -ENOMEM;
				break;
			}
			a->nm++;
			continue;
		}
		if (n == 11 && strcmp(f[0], "file") == 0 && saved_name_ok(f[2]) &&
		    strlen(f[3]) == 64) {
			e.kind = E_FILE;
			e.saved = f[2];
			memcpy(e.sha, f[3], 65);
			parse_stat(&e, f + 4);
		} else if (n == 3 && strcmp(f[0], "link") == 0) {
			e.kind = E_LINK;
			e.saved = f[2];
		} else if (n == 9 && strcmp(f[0], "dir") == 0) {
			e.kind = E_DIR;
			parse_stat(&e, f + 2);
		} else if (n == 2 && strcmp(f[0], "absent") == 0) {
			e.kind = E_ABSENT;
		} else if (n == 2 && strcmp(f[0], "tree") == 0) {
			e.kind = E_TREE;
		} else {
			snprintf(why, why_len, "%s: malformed line '%s'", path, f[0]);
			r = -EBADMSG;
			break;
		}
		if (!path_ok(e.path)) {
			snprintf(why, why_len, "%s: '%s' is not an absolute path", path, e.path);
			r = -EBADMSG;
			break;
		}
		r = entry_add(a, &e);
	}
	free(data);
	if (r >= 0 && (!a->root_uuid[0] || a->nm == 0)) {
		snprintf(why, why_len, "%s names no root file system", path);
		r = -EBADMSG;
	}
	return r;
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

#else /* !TERN_HAVE_GUESTFS */

int adapt_run(const char *image, const struct prof *p, const struct adapt_opts *o,
	      char **ret_report, char *why, size_t why_len)
{
	snprintf(why, why_len, "this tern-receiver was built without libguestfs; adapt is "
		 "not available (rebuild with libguestfs-dev installed)");
	return -EOPNOTSUPP;
}

int adapt_undo(const char *image, const char *undo_dir, enum adapt_accel accel, char *why,
	       size_t why_len)
{
	return adapt_run(image, NULL, NULL, NULL, why, why_len);
}

int adapt_unmark(const char *image, const char *undo_dir, enum adapt_accel accel, char *why,
		 size_t why_len)
{
	return adapt_run(image, NULL, NULL, NULL, why, why_len);
}

#endif

/* ---- the command ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tern-receiver adapt --profile P [--report FILE] [--undo-dir DIR]\n"
		"                           [--marker] [--accel auto|kvm|tcg] IMAGE\n"
		"       tern-receiver adapt --undo DIR [--accel auto|kvm|tcg] IMAGE\n"
		"\n"
		"Adapts the disk image IMAGE, offline, to boot on platform P (%s):\n"
		"root, swap and resume by UUID, the platform's drivers in every initramfs,\n"
		"DHCP on any Ethernet interface, a serial console, the old platform's tools\n"
		"masked, the UEFI fallback loader. Every file it touches is saved in the undo\n"
		"directory (default IMAGE.adapt-undo), with report.json saying what changed\n"
		"and why; --undo DIR puts them back.\n"
		"  --marker   add the test-launch unit that prints TERN-BOOT-OK ADDRESS on the\n"
		"             console once DHCP gave the guest an address\n"
		"  --accel    how the libguestfs appliance runs (auto: KVM, else TCG)\n",
		prof_names());
}

int adapt_cmd(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "profile", required_argument, NULL, 'p' },
		{ "report", required_argument, NULL, 'r' },
		{ "undo-dir", required_argument, NULL, 'd' },
		{ "undo", required_argument, NULL, 'u' },
		{ "marker", no_argument, NULL, 'm' },
		{ "accel", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *profile = NULL, *report = NULL, *undo_dir = NULL, *undo = NULL;
	struct adapt_opts o = { 0 };
	const struct prof *p = NULL;
	char why[1024], *dflt = NULL, *rep = NULL;
	int c, r, ret = 2;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			profile = optarg;
			break;
		case 'r':
			report = optarg;
			break;
		case 'd':
			undo_dir = optarg;
			break;
		case 'u':
			undo = optarg;
			break;
		case 'm':
			o.marker = true;
			break;
		case 'a':
			if (strcmp(optarg, "auto") == 0) {
				o.accel = ADAPT_ACCEL_AUTO;
			} else if (strcmp(optarg, "kvm") == 0) {
				o.accel = ADAPT_ACCEL_KVM;
			} else if (strcmp(optarg, "tcg") == 0) {
				o.accel = ADAPT_ACCEL_TCG;
			} else {
				log_error("--accel must be auto, kvm or tcg, not '%s'", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind + 1 != argc) {
		log_error(optind == argc ? "adapt needs an IMAGE; see tern-receiver adapt --help"
					 : "adapt takes one IMAGE; see tern-receiver adapt --help");
		return 2;
	}
	if (undo) {
		if (profile || report || undo_dir || o.marker) {
			log_error("--undo takes only --accel besides the IMAGE");
			return 2;
		}
		r = adapt_undo(argv[optind], undo, o.accel, why, sizeof(why));
		if (r < 0) {
			log_error("cannot undo the adaptation of %s: %s", argv[optind], why);
			return 1;
		}
		printf("restored %s from %s\n", argv[optind], undo);
		return 0;
	}
	if (!profile) {
		log_error("adapt needs --profile (%s)", prof_names());
		return 2;
	}
	p = prof_find(profile);
	if (!p) {
		log_error("unknown profile '%s'; profiles: %s", profile, prof_names());
		return 2;
	}
	if (!undo_dir) {
		if (asprintf(&dflt, "%s.adapt-undo", argv[optind]) < 0) {
			log_error("out of memory");
			return 1;
		}
		undo_dir = dflt;
	}
	o.undo_dir = undo_dir;
	ret = 1;
	r = adapt_run(argv[optind], p, &o, &rep, why, sizeof(why));
	if (r < 0) {
		log_error("cannot adapt %s for %s: %s", argv[optind], p->name, why);
		goto out;
	}
	if (report) {
		r = write_file_atomic(report, rep, strlen(rep), 0644);
		if (r < 0) {
			log_errno(r, "adapted, but cannot write the report %s", report);
			goto out;
		}
	}
	printf("adapted %s for %s; report %s, undo with: tern-receiver adapt --undo %s %s\n",
	       argv[optind], p->name, report ? report : undo_dir, undo_dir, argv[optind]);
	ret = 0;
out:
	free(rep);
	free(dflt);
	return ret;
}

// SPDX-License-Identifier: GPL-2.0-only
/* The undo record of an adaptation (adapt-impl.h): what a change is about to touch, saved
 * on the host first (a file's copy, a link, a directory, a tree), and the manifest that
 * lists it, written line by line and read back for undo. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "receiver/adapt-impl.h"

#if TERN_HAVE_GUESTFS

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
int save_path(struct ad *a, const char *path)
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
bool under_other_mount(struct ad *a, const char *dir, const char *path)
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
int read_sums(const char *file, char *const *names, size_t n, char (*sums)[65])
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
int stat_names(struct ad *a, const char *dir, char *const *names, size_t n,
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
int save_tree(struct ad *a, const char *dir)
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

void entries_free(struct ad *a)
{
	for (size_t i = 0; i < a->n; i++) {
		free(a->e[i].path);
		free(a->e[i].saved);
	}
	free(a->e);
	a->e = NULL;
	a->n = a->cap = 0;
}

/* Creates the undo directory: absent or empty, made 0700. */
int undo_dir_make(const char *dir, char *why, size_t why_len)
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

/* Creates UNDO_DIR/manifest (O_EXCL) with its header: the magic, the root's UUID and the
 * guest's mounts, which undo mounts as the adaptation did. 0, or -errno with a->why. */
int manifest_create(struct ad *a)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", a->undo_dir, UNDO_MANIFEST);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || !(a->manifest = fdopen(fd, "w"))) {
		int r = fail(a, -errno, "cannot create %s: %s", path, strerror(errno));

		if (fd >= 0)
			close(fd);
		return r;
	}
	fprintf(a->manifest, "%s\nroot-uuid\t%s\n", UNDO_MAGIC, a->root_uuid);
	for (size_t i = 0; i < a->nm; i++)
		fprintf(a->manifest, "mount\t%s\t%s\n", a->m[i].dev, a->m[i].mp);
	return 0;
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

int manifest_load(struct ad *a, const char *dir, char *why, size_t why_len)
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

#endif /* TERN_HAVE_GUESTFS */

// SPDX-License-Identifier: GPL-2.0-only
/* Copy-on-write clones of replication targets; see clone.h. */
#include "receiver/clone.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

#define COPY_BUF (1u << 20)
/* LVM's one binary, run with the command as its first argument: `lvs`, `lvcreate` and
 * `lvremove` are links to it that a minimal install may lack. */
#define LVM_PROG "lvm"
#define THIN_PREFIX "tern-"
#define LVM_NAME_MAX 127 /* LVM's NAME_LEN less the NUL */
/* A snapshot's name leaves room for its VG's in the dm name "VG-LV" (127 bytes at most,
 * every '-' doubled), or tern falls back to a hashed name. */
#define SNAP_NAME_MAX 60

extern char **environ;

const char *clone_how_name(enum clone_how how)
{
	return how == CLONE_REFLINK ? "reflink" : how == CLONE_THIN ? "thin-snapshot" : "copy";
}

/* FICLONE's answers that mean "this file system (or pair) cannot share extents", as
 * opposed to a real failure such as ENOSPC or EIO. */
static bool no_reflink(int err)
{
	return err == -EOPNOTSUPP || err == -EXDEV || err == -EINVAL || err == -ENOTTY ||
	       err == -ENOSYS || err == -EBADF;
}

/* The source's size; a block device's from the kernel. */
static int source_size(int fd, const struct stat *st, uint64_t *ret_size)
{
	uint64_t size;

	if (S_ISREG(st->st_mode)) {
		*ret_size = (uint64_t)st->st_size;
		return 0;
	}
	if (!S_ISBLK(st->st_mode))
		return -EINVAL;
	if (ioctl(fd, BLKGETSIZE64, &size) < 0)
		return -errno;
	*ret_size = size;
	return 0;
}

/* Copies [off, end) of sfd into dfd at the same offsets: copy_file_range, or read and
 * write where the kernel cannot copy between these two files. */
static int copy_range(int sfd, int dfd, uint64_t off, uint64_t end, char **buf,
		      bool *plain_io, uint64_t *copied)
{
	while (off < end) {
		size_t want = (size_t)MIN(end - off, (uint64_t)1 << 30);
		ssize_t n;

		if (!*plain_io) {
			loff_t in = (loff_t)off, out = (loff_t)off;

			n = copy_file_range(sfd, &in, dfd, &out, want, 0);
			if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
				      errno == EOPNOTSUPP)) {
				*plain_io = true;
				continue;
			}
			if (n < 0)
				return -errno;
			if (n == 0)
				return -ENODATA; /* the target shrank under us */
		} else {
			int r;

			if (!*buf && !(*buf = malloc(COPY_BUF)))
				return -ENOMEM;
			want = MIN(want, (size_t)COPY_BUF);
			r = pread_full(sfd, *buf, want, off);
			if (r < 0)
				return r;
			r = pwrite_full(dfd, *buf, want, off);
			if (r < 0)
				return r;
			n = (ssize_t)want;
		}
		off += (uint64_t)n;
		*copied += (uint64_t)n;
	}
	return 0;
}

/* A sparse copy: only the source's data extents (a file), or its MiBs that are not all
 * zero (a block device, which has no holes to ask about). */
static int copy_data(int sfd, const struct stat *st, uint64_t size, int dfd, uint64_t *copied)
{
	bool plain_io = false;
	char *buf = NULL;
	uint64_t off = 0;
	int r;

	if (ftruncate(dfd, (off_t)size) < 0)
		return -errno;
	if (S_ISBLK(st->st_mode)) {
		buf = malloc(COPY_BUF);
		if (!buf)
			return -ENOMEM;
		for (r = 0; r == 0 && off < size; off += COPY_BUF) {
			size_t n = (size_t)MIN(size - off, (uint64_t)COPY_BUF);

			r = pread_full(sfd, buf, n, off);
			if (r == 0 && !mem_is_zero(buf, n)) {
				r = pwrite_full(dfd, buf, n, off);
				*copied += n;
			}
		}
		free(buf);
		return r;
	}
	for (r = 0; r == 0 && off < size;) {
		off_t data = lseek(sfd, (off_t)off, SEEK_DATA), hole;

		if (data < 0) {
			r = errno == ENXIO ? 0 : -errno; /* ENXIO: no data past off */
			break;
		}
		hole = lseek(sfd, data, SEEK_HOLE);
		if (hole < 0) {
			r = -errno;
			break;
		}
		r = copy_range(sfd, dfd, (uint64_t)data, MIN((uint64_t)hole, size), &buf,
			       &plain_io, copied);
		off = (uint64_t)hole;
	}
	free(buf);
	return r;
}

/* Data bytes a copy will move: what the file has allocated, or a device's size. */
static uint64_t copy_cost(const struct stat *st, uint64_t size)
{
	return S_ISREG(st->st_mode) ? MIN((uint64_t)st->st_blocks * 512u, size) : size;
}

/* clone_file on an open source; reflink_only: fail with the FICLONE error (dst removed)
 * instead of copying. blk_note: why a block device is copied, for the warning. */
static int clone_fd(int sfd, const struct stat *st, const char *dst, bool force_copy,
		    bool reflink_only, const char *blk_note, struct clone_result *ret, char *why,
		    size_t why_len)
{
	struct clone_result res = { .how = CLONE_REFLINK };
	uint64_t t0 = now_ns();
	char sz[32];
	int dfd, r;

	r = source_size(sfd, st, &res.size);
	if (r < 0) {
		snprintf(why, why_len, "the target is neither a file nor a block device");
		return r;
	}
	if (strlen(dst) >= sizeof(res.path)) {
		snprintf(why, why_len, "clone path too long");
		return -ENAMETOOLONG;
	}
	dfd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (dfd < 0) {
		r = -errno;
		snprintf(why, why_len, "cannot create %s: %s", dst, strerror(errno));
		return r;
	}
	r = -EOPNOTSUPP;
	if (!force_copy && S_ISREG(st->st_mode))
		r = ioctl(dfd, FICLONE, sfd) < 0 ? -errno : 0;
	if (r < 0 && !no_reflink(r)) {
		snprintf(why, why_len, "cannot clone the target into %s: %s", dst, strerror(-r));
		goto cleanup;
	}
	if (r < 0 && reflink_only)
		goto cleanup;
	if (r < 0) {
		res.how = CLONE_COPY;
		snprintf(res.warning, sizeof(res.warning), "%s: copying %s",
			 S_ISBLK(st->st_mode) ? (blk_note ? blk_note : "a block target") :
			 force_copy ? "copy asked for" : "no reflink on this file system",
			 fmt_bytes(copy_cost(st, res.size), sz, sizeof(sz)));
		/* Said before the cost is paid, not after. */
		log_warn("clone %s: %s", dst, res.warning);
		r = copy_data(sfd, st, res.size, dfd, &res.copied);
		if (r < 0) {
			snprintf(why, why_len, "cannot copy the target into %s: %s", dst,
				 strerror(-r));
			goto cleanup;
		}
	}
	if (fsync(dfd) < 0) {
		r = -errno;
		snprintf(why, why_len, "cannot make %s durable: %s", dst, strerror(errno));
		goto cleanup;
	}
	r = fsync_dir_of(dst);
	if (r < 0) {
		snprintf(why, why_len, "cannot make %s durable: %s", dst, strerror(-r));
		goto cleanup;
	}
	res.ns = now_ns() - t0;
	snprintf(res.path, sizeof(res.path), "%s", dst);
	*ret = res;
cleanup:
	close(dfd);
	if (r < 0)
		unlink(dst);
	return r;
}

/* Opens src read-only and stats it: its descriptor, or -errno with why. */
static int open_src(const char *src, struct stat *ret_st, char *why, size_t why_len)
{
	int sfd = open(src, O_RDONLY | O_CLOEXEC), r;

	if (sfd >= 0 && fstat(sfd, ret_st) == 0)
		return sfd;
	r = -errno;
	snprintf(why, why_len, "cannot open %s: %s", src, strerror(-r));
	if (sfd >= 0)
		close(sfd);
	return r;
}

int clone_file(const char *src, const char *dst, bool force_copy, struct clone_result *ret,
	       char *why, size_t why_len)
{
	struct stat st;
	int sfd, r;

	sfd = open_src(src, &st, why, why_len);
	if (sfd < 0)
		return sfd;
	r = clone_fd(sfd, &st, dst, force_copy, false, NULL, ret, why, why_len);
	close(sfd);
	return r;
}

int clone_reflink(const char *src, const char *dst, struct clone_result *ret, char *why,
		  size_t why_len)
{
	struct stat st;
	int sfd, r;

	sfd = open_src(src, &st, why, why_len);
	if (sfd < 0)
		return sfd;
	r = -EOPNOTSUPP;
	if (S_ISREG(st.st_mode))
		r = clone_fd(sfd, &st, dst, false, true, NULL, ret, why, why_len);
	close(sfd);
	if (no_reflink(r)) {
		snprintf(why, why_len, "no reflink of %s possible here", src);
		r = -EOPNOTSUPP;
	}
	return r;
}

/* ---- LVM thin snapshots ---- */

/* LVM's characters for a VG or LV name; not "." or "..", not starting with '-' (it
 * would read as an option: the names go to lvm as arguments). */
static bool lvm_name_ok(const char *s, size_t len)
{
	if (len == 0 || len > LVM_NAME_MAX || s[0] == '-' ||
	    (s[0] == '.' && (len == 1 || (len == 2 && s[1] == '.'))))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("+_.-", s[i]))
			return false;
	return true;
}

/* Splits "VG/LV" into two valid names; -EINVAL otherwise. */
static int lvm_split(const char *vglv, char *vg, size_t vg_len, char *lv, size_t lv_len)
{
	const char *slash = strchr(vglv, '/');
	size_t n;

	if (!slash)
		return -EINVAL;
	n = (size_t)(slash - vglv);
	if (!lvm_name_ok(vglv, n) || !lvm_name_ok(slash + 1, strlen(slash + 1)) || n >= vg_len ||
	    strlen(slash + 1) >= lv_len)
		return -EINVAL;
	memcpy(vg, vglv, n);
	vg[n] = '\0';
	snprintf(lv, lv_len, "%s", slash + 1);
	return 0;
}

/* What the child wrote into the memfd fd, NUL-terminated, cut to len. */
static void memfd_text(int fd, char *buf, size_t len)
{
	ssize_t n = fd >= 0 && len > 1 ? pread(fd, buf, len - 1, 0) : -1;

	if (len)
		buf[n > 0 ? n : 0] = '\0';
}

/* The line of LVM's stderr worth an operator's one-line error: the first that is not a
 * WARNING, trimmed; else the first. */
static void lvm_summary(const char *err, char *buf, size_t len)
{
	const char *pick = NULL;

	for (const char *l = err; *l;) {
		size_t n = strcspn(l, "\n");
		const char *t = l;

		while (t < l + n && isspace((unsigned char)*t))
			t++;
		if (t < l + n && (!pick || (strncmp(pick, "WARNING", 7) == 0 &&
					    strncmp(t, "WARNING", 7) != 0)))
			pick = t;
		l += n + (l[n] == '\n');
	}
	if (!pick) {
		snprintf(buf, len, "no message");
		return;
	}
	snprintf(buf, len, "%.*s", (int)strcspn(pick, "\n"), pick);
}

/* Runs lvm with argv (argv[0] is LVM_PROG) directly, no shell: stdin /dev/null, stdout
 * into out (NUL-terminated, cut to out_len), stderr summarised into why when it fails;
 * when it succeeds, its first WARNING line into warn (NULL: not wanted), "" for none.
 * LVM_SUPPRESS_FD_WARNINGS: lvm would complain on stderr of descriptors the receiver's
 * libraries opened without O_CLOEXEC. 0 when it exited 0, -ENOENT when lvm cannot be
 * run, -EIO when it failed. */
static int lvm_run_warn(const char *const *argv, char *out, size_t out_len, char *warn,
			size_t warn_len, char *why, size_t why_len)
{
	char err[4096], **envp = NULL;
	int ofd = -1, efd = -1, nul = -1, status, r;
	size_t n = 0, k = 0;
	pid_t pid;

	while (environ && environ[n])
		n++;
	envp = calloc(n + 2, sizeof(*envp));
	ofd = memfd_create("tern-lvm-out", MFD_CLOEXEC);
	efd = memfd_create("tern-lvm-err", MFD_CLOEXEC);
	nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (!envp || ofd < 0 || efd < 0 || nul < 0) {
		r = envp ? -errno : -ENOMEM;
		snprintf(why, why_len, "cannot run %s: %s", LVM_PROG, strerror(-r));
		goto cleanup;
	}
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "LVM_SUPPRESS_FD_WARNINGS=", 25) != 0)
			envp[k++] = environ[i];
	envp[k] = (char *)"LVM_SUPPRESS_FD_WARNINGS=1";
	pid = fork();
	if (pid < 0) {
		r = -errno;
		snprintf(why, why_len, "cannot run %s: %s", LVM_PROG, strerror(-r));
		goto cleanup;
	}
	if (pid == 0) {
		if (dup2(nul, 0) < 0 || dup2(ofd, 1) < 0 || dup2(efd, 2) < 0)
			_exit(126);
		execvpe(argv[0], (char *const *)argv, envp);
		_exit(127);
	}
	while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
		;
	if (r < 0) {
		r = -errno;
		snprintf(why, why_len, "cannot wait for %s: %s", LVM_PROG, strerror(-r));
		goto cleanup;
	}
	memfd_text(ofd, out, out_len);
	memfd_text(efd, err, sizeof(err));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		const char *w = strstr(err, "WARNING");

		r = 0;
		if (warn && warn_len)
			snprintf(warn, warn_len, "%.*s", w ? (int)strcspn(w, "\n") : 0, w ? w : "");
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
		r = -ENOENT;
		snprintf(why, why_len, "cannot run %s (is lvm2 installed?)", LVM_PROG);
	} else {
		char line[600];

		r = -EIO;
		lvm_summary(err, line, sizeof(line));
		snprintf(why, why_len, "%s %s failed: %s", LVM_PROG, argv[1], line);
	}
cleanup:
	free(envp);
	if (ofd >= 0)
		close(ofd);
	if (efd >= 0)
		close(efd);
	if (nul >= 0)
		close(nul);
	return r;
}

static int lvm_run(const char *const *argv, char *out, size_t out_len, char *why,
		   size_t why_len)
{
	return lvm_run_warn(argv, out, out_len, NULL, 0, why, why_len);
}

/* Splits lvs's one line of --separator , output into at most max trimmed fields; their
 * number. */
static size_t lvs_fields(char *line, char **f, size_t max)
{
	size_t n = 0;
	char *save = NULL;

	line[strcspn(line, "\n")] = '\0';
	for (char *t = strtok_r(line, ",", &save); t && n < max; t = strtok_r(NULL, ",", &save)) {
		char *e;

		while (isspace((unsigned char)*t))
			t++;
		e = t + strlen(t);
		while (e > t && isspace((unsigned char)e[-1]))
			*--e = '\0';
		f[n++] = t;
	}
	return n;
}

/* Is the block device st an LVM thin volume? Recognised, not guessed: its dm uuid
 * (sysfs) starts with "LVM-", and lvs, asked about its /dev/mapper name, says segment
 * type thin. 1 with its VG and LV names; 0 for any other block device, with note saying
 * why it is copied. */
static int thin_volume(const struct stat *st, char *vg, size_t vg_len, char *lv,
		       size_t lv_len, char *note, size_t note_len)
{
	char sys[128], uuid[160], name[160], dev[200], out[1024], why[700], *f[3];
	const char *argv[] = { LVM_PROG, "lvs", "--noheadings", "--separator", ",", "-o",
			       "vg_name,lv_name,segtype", dev, NULL };
	int dfd, r;

	snprintf(note, note_len, "a block target that is not an LVM thin volume");
	snprintf(sys, sizeof(sys), "/sys/dev/block/%u:%u/dm", major(st->st_rdev),
		 minor(st->st_rdev));
	dfd = open(sys, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return 0; /* not a device-mapper device */
	r = attr_read(dfd, "uuid", uuid, sizeof(uuid));
	if (r == 0)
		r = attr_read(dfd, "name", name, sizeof(name));
	close(dfd);
	if (r < 0 || strncmp(uuid, "LVM-", 4) != 0)
		return 0;
	snprintf(dev, sizeof(dev), "/dev/mapper/%s", name);
	r = lvm_run(argv, out, sizeof(out), why, sizeof(why));
	if (r < 0) {
		snprintf(note, note_len, "an LVM volume lvs cannot describe (%.300s)", why);
		return 0;
	}
	if (lvs_fields(out, f, 3) != 3 || strcmp(f[2], "thin") != 0 ||
	    !lvm_name_ok(f[0], strlen(f[0])) || !lvm_name_ok(f[1], strlen(f[1])) ||
	    strlen(f[0]) >= vg_len || strlen(f[1]) >= lv_len) {
		snprintf(note, note_len, "an LVM volume that is not thin");
		return 0;
	}
	snprintf(vg, vg_len, "%s", f[0]);
	snprintf(lv, lv_len, "%s", f[1]);
	return 1;
}

/* The snapshot's name: tern-AGENT-ID-DISK from rel "AGENT/ID" and fname "DISK.img",
 * ':' (valid in tern's names, not in LVM's) as '+' (not in tern's). Too long for LVM,
 * tern- and a hash of both. */
static void thin_name(const char *rel, const char *fname, char *buf, size_t len)
{
	const char *dot = strrchr(fname, '.');
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	int n;

	n = snprintf(buf, len, THIN_PREFIX "%s-%.*s", rel,
		     (int)(dot ? (size_t)(dot - fname) : strlen(fname)), fname);
	for (char *c = buf; *c; c++)
		*c = *c == '/' ? '-' : *c == ':' ? '+' : *c;
	if (n > 0 && (size_t)n < len && (size_t)n <= SNAP_NAME_MAX && lvm_name_ok(buf, (size_t)n))
		return;
	for (const char *s = rel; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
	for (const char *s = fname; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
	snprintf(buf, len, THIN_PREFIX "%016" PRIx64, h);
}

/* Whether VG vg holds an LV named name: 1 or 0, -errno with why when lvs fails. */
static int lv_listed(const char *vg, const char *name, char *why, size_t why_len)
{
	const char *list[] = { LVM_PROG, "lvs", "--noheadings", "-o", "lv_name", vg, NULL };
	char out[8192];
	bool listed = false;
	int r;

	r = lvm_run(list, out, sizeof(out), why, why_len);
	if (r < 0)
		return r;
	for (char *save = NULL, *t = strtok_r(out, " \n", &save); t; t = strtok_r(NULL, " \n", &save))
		listed |= strcmp(t, name) == 0;
	return listed;
}

/* A thin snapshot VG/snap of VG/lv (the open target sfd): active, activation skip off,
 * its device node the clone's path. Removed again when anything after lvcreate fails. */
static int thin_snapshot(int sfd, const char *vg, const char *lv, const char *snap,
			 struct clone_result *ret, char *why, size_t why_len)
{
	struct clone_result res = { .how = CLONE_THIN };
	char origin[300], out[4500], rwhy[512], warn[200], *f[3];
	const char *create[] = { LVM_PROG, "lvcreate", "--snapshot", "--name", snap,
				 "--setactivationskip", "n", "--activate", "y", origin, NULL };
	const char *show[] = { LVM_PROG, "lvs", "--noheadings", "--separator", ",", "-o",
			       "lv_path,origin,segtype", res.lv, NULL };
	uint64_t t0 = now_ns();
	struct stat st;
	int fd = -1, r;

	snprintf(origin, sizeof(origin), "%s/%s", vg, lv);
	snprintf(res.lv, sizeof(res.lv), "%s/%s", vg, snap);
	/* The snapshot shares the pool's blocks as they are: what the page cache still
	 * holds of the target's last epoch goes down first. */
	if (fsync(sfd) < 0) {
		r = -errno;
		snprintf(why, why_len, "cannot flush the target %s: %s", origin, strerror(-r));
		return r;
	}
	/* A name taken is refused here, so that what a failed lvcreate leaves (an LV made
	 * but not activated) can only be its own, and is removed. */
	r = lv_listed(vg, snap, why, why_len);
	if (r > 0) {
		snprintf(why, why_len, "an LV named %s exists already", res.lv);
		return -EEXIST;
	}
	if (r < 0)
		return r;
	r = lvm_run_warn(create, out, sizeof(out), warn, sizeof(warn), why, why_len);
	if (r < 0) {
		if (clone_thin_remove(res.lv, rwhy, sizeof(rwhy)) < 0)
			log_warn("lvcreate failed and left %s: %s", res.lv, rwhy);
		return r;
	}
	/* Such as a pool whose thin volumes may outgrow it: the snapshot takes pool space
	 * for every block replication rewrites while it exists. */
	if (warn[0]) {
		snprintf(res.warning, sizeof(res.warning), "lvcreate: %s", warn);
		log_warn("thin snapshot %s: %s", res.lv, res.warning);
	}
	r = lvm_run(show, out, sizeof(out), why, why_len);
	if (r == 0 && (lvs_fields(out, f, 3) != 3 || strcmp(f[1], lv) != 0 ||
		       strcmp(f[2], "thin") != 0)) {
		r = -EIO;
		snprintf(why, why_len, "lvcreate made %s, but lvs does not show it as a thin "
			 "snapshot of %s", res.lv, origin);
	}
	if (r == 0 && strlen(f[0]) >= sizeof(res.path)) {
		r = -ENAMETOOLONG;
		snprintf(why, why_len, "the path of %s is too long", res.lv);
	}
	if (r == 0) {
		snprintf(res.path, sizeof(res.path), "%s", f[0]);
		fd = open(res.path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0 || !S_ISBLK(st.st_mode)) {
			r = fd < 0 ? -errno : -ENODEV;
			snprintf(why, why_len, "the snapshot %s has no device node at %s: %s",
				 res.lv, res.path, strerror(-r));
		} else {
			r = source_size(fd, &st, &res.size);
			if (r < 0)
				snprintf(why, why_len, "cannot size the snapshot %s: %s", res.path,
					 strerror(-r));
		}
		if (fd >= 0)
			close(fd);
	}
	if (r < 0) {
		if (clone_thin_remove(res.lv, rwhy, sizeof(rwhy)) < 0)
			log_warn("cannot remove the snapshot %s again: %s", res.lv, rwhy);
		return r;
	}
	res.ns = now_ns() - t0;
	*ret = res;
	return 0;
}

int clone_thin_remove(const char *lv, char *why, size_t why_len)
{
	char vg[LVM_NAME_MAX + 1], name[LVM_NAME_MAX + 1], full[300], out[8192], *f[3];
	const char *show[] = { LVM_PROG, "lvs", "--noheadings", "--separator", ",", "-o",
			       "lv_name,segtype,origin", full, NULL };
	const char *rm[] = { LVM_PROG, "lvremove", "-y", full, NULL };
	int r;

	if (lvm_split(lv, vg, sizeof(vg), name, sizeof(name)) < 0 ||
	    strncmp(name, THIN_PREFIX, strlen(THIN_PREFIX)) != 0) {
		snprintf(why, why_len, "%.200s is not the name of a snapshot tern made", lv);
		return -EINVAL;
	}
	snprintf(full, sizeof(full), "%s/%s", vg, name);
	r = lvm_run(show, out, sizeof(out), why, why_len);
	if (r == -EIO) {
		char lwhy[8];

		/* Gone already (a discard again, or removed by hand) when its VG is
		 * there without it; anything else is the error lvs gave. */
		if (lv_listed(vg, name, lwhy, sizeof(lwhy)) == 0)
			return 0;
	}
	if (r < 0)
		return r;
	if (lvs_fields(out, f, 3) != 3 || strcmp(f[1], "thin") != 0 || !f[2][0]) {
		snprintf(why, why_len, "%s is not a thin snapshot; left as it is", full);
		return -EPERM;
	}
	return lvm_run(rm, out, sizeof(out), why, why_len);
}

int clone_remove(const struct clone_result *c, char *why, size_t why_len)
{
	if (c->how == CLONE_THIN)
		return clone_thin_remove(c->lv, why, why_len);
	if (unlink(c->path) < 0 && errno != ENOENT) {
		int r = -errno;

		snprintf(why, why_len, "cannot remove %s: %s", c->path, strerror(-r));
		return r;
	}
	return 0;
}

/* Removes dir and its parents up to (not including) stop, while they are empty. */
static void rmdir_up(char *dir, const char *stop)
{
	size_t n = strlen(stop);

	while (strlen(dir) > n && strncmp(dir, stop, n) == 0 && rmdir(dir) == 0) {
		char *slash = strrchr(dir, '/');

		if (!slash)
			break;
		*slash = '\0';
	}
}

int clone_target(const char *target, const char *launch_dir, const char *rel,
		 const char *fname, struct clone_result *ret, char *why, size_t why_len)
{
	char dir[4096], dst[4096], tdir[4096], alt_root[4096], alt[4096], note[400] = "";
	char vg[LVM_NAME_MAX + 1], lv[LVM_NAME_MAX + 1], snap[LVM_NAME_MAX + 1];
	struct stat st, ls;
	int sfd, r;

	if (snprintf(dir, sizeof(dir), "%s/%s", launch_dir, rel) >= (int)sizeof(dir) ||
	    snprintf(dst, sizeof(dst), "%s/%s", dir, fname) >= (int)sizeof(dst)) {
		snprintf(why, why_len, "clone path too long");
		return -ENAMETOOLONG;
	}
	sfd = open(target, O_RDONLY | O_CLOEXEC);
	if (sfd < 0 || fstat(sfd, &st) < 0) {
		r = -errno;
		snprintf(why, why_len, "cannot open the target %s: %s", target, strerror(errno));
		if (sfd >= 0)
			close(sfd);
		return r;
	}
	if (S_ISBLK(st.st_mode) &&
	    thin_volume(&st, vg, sizeof(vg), lv, sizeof(lv), note, sizeof(note)) == 1) {
		thin_name(rel, fname, snap, sizeof(snap));
		r = thin_snapshot(sfd, vg, lv, snap, ret, why, why_len);
		goto cleanup;
	}
	r = mkdir_p(dir, 0700);
	if (r < 0 || stat(launch_dir, &ls) < 0) {
		r = r < 0 ? r : -errno;
		snprintf(why, why_len, "cannot make %s: %s", dir, strerror(-r));
		goto cleanup;
	}
	if (S_ISREG(st.st_mode) && st.st_dev != ls.st_dev) {
		/* Beside the target, where a reflink can be made: on its file system. */
		snprintf(tdir, sizeof(tdir), "%s", target);
		if (snprintf(alt_root, sizeof(alt_root), "%s/.tern-launch", dirname(tdir)) >=
			    (int)sizeof(alt_root) ||
		    snprintf(alt, sizeof(alt), "%s/%s", alt_root, rel) >= (int)sizeof(alt)) {
			r = -ENAMETOOLONG;
			snprintf(why, why_len, "clone path too long");
			goto cleanup;
		}
		r = mkdir_p(alt, 0700);
		if (r == 0 && snprintf(tdir, sizeof(tdir), "%.2000s/%.2000s", alt, fname) <
				      (int)sizeof(tdir)) {
			r = clone_fd(sfd, &st, tdir, false, true, NULL, ret, why, why_len);
			if (r == 0 || !no_reflink(r))
				goto cleanup;
		}
		/* No reflink there: the copy goes to the state dir. */
		rmdir_up(alt, alt_root);
		rmdir(alt_root);
	}
	r = clone_fd(sfd, &st, dst, false, false, note[0] ? note : NULL, ret, why, why_len);
cleanup:
	close(sfd);
	return r;
}

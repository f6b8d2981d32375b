// SPDX-License-Identifier: GPL-2.0-only
/* Copy-on-write clones of replication targets; see clone.h. */
#include "receiver/clone.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

#define COPY_BUF (1u << 20)

const char *clone_how_name(enum clone_how how)
{
	return how == CLONE_REFLINK ? "reflink" : "copy";
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
 * instead of copying. */
static int clone_fd(int sfd, const struct stat *st, const char *dst, bool force_copy,
		    bool reflink_only, struct clone_result *ret, char *why, size_t why_len)
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
			 S_ISBLK(st->st_mode) ? "a block target (no thin snapshot): no reflink" :
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
	r = clone_fd(sfd, &st, dst, force_copy, false, ret, why, why_len);
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
		r = clone_fd(sfd, &st, dst, false, true, ret, why, why_len);
	close(sfd);
	if (no_reflink(r)) {
		snprintf(why, why_len, "no reflink of %s possible here", src);
		r = -EOPNOTSUPP;
	}
	return r;
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
	char dir[4096], dst[4096], tdir[4096], alt_root[4096], alt[4096];
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
			r = clone_fd(sfd, &st, tdir, false, true, ret, why, why_len);
			if (r == 0 || !no_reflink(r))
				goto cleanup;
		}
		/* No reflink there: the copy goes to the state dir. */
		rmdir_up(alt, alt_root);
		rmdir(alt_root);
	}
	r = clone_fd(sfd, &st, dst, false, false, ret, why, why_len);
cleanup:
	close(sfd);
	return r;
}

// SPDX-License-Identifier: GPL-2.0-only
/* Replication sources: block devices and image files, read-only; see source.h. */
#include "agent/source.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

/* claim() tries this often, 100 ms apart. */
#define SRC_CLAIM_TRIES 30

struct source *src_free(struct source *s)
{
	if (!s)
		return NULL;
	if (s->fd >= 0)
		close(s->fd);
	free(s->id);
	free(s->path);
	free(s);
	return NULL;
}

/* O_DIRECT is accepted at open() by some filesystems that then fail the first read
 * (EINVAL), so the probe is a real read of one aligned block. */
static bool direct_read_works(int fd, uint32_t lbs)
{
	size_t len = lbs > 4096 ? lbs : 4096;
	void *buf = alloc_aligned(len, len);
	ssize_t n;

	if (!buf)
		return false;
	n = pread(fd, buf, len, 0);
	free(buf);
	return n >= 0;
}

/* One agent per source: two would run two trackers, pin the same eBPF directory and send
 * the disk twice. flock holds on the device node or file whatever path named it (a by-id
 * link, a partition's parent is another node), and dies with the process. An agent that is
 * still exiting (a restart) gets a few seconds to let go. */
static int claim(int fd)
{
	for (int i = 0; i < SRC_CLAIM_TRIES; i++) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
		usleep(100 * 1000);
	}
	return -EWOULDBLOCK;
}

int src_size_now(const struct source *s, uint64_t *ret_size)
{
	struct stat st;
	uint64_t size;

	if (s->blockdev) {
		if (ioctl(s->fd, BLKGETSIZE64, &size) < 0)
			return -errno;
	} else {
		if (fstat(s->fd, &st) < 0)
			return -errno;
		size = (uint64_t)st.st_size;
	}
	*ret_size = size;
	return 0;
}

int src_open(const char *id, const char *path, struct source **ret_src, char *why, size_t why_len)
{
	struct source *s = calloc(1, sizeof(*s));
	struct stat st;
	int r;

	if (!s)
		return -ENOMEM;
	s->fd = -1;
	s->id = strdup(id);
	s->path = strdup(path);
	if (!s->id || !s->path) {
		r = -ENOMEM;
		goto fail;
	}
	s->fd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT | O_NOCTTY);
	if (s->fd >= 0) {
		s->direct = true;
	} else if (errno == EINVAL) {
		s->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	}
	if (s->fd < 0) {
		r = -errno;
		snprintf(why, why_len, "cannot open source %s: %s", path, strerror(-r));
		goto fail;
	}
	if (fstat(s->fd, &st) < 0) {
		r = -errno;
		snprintf(why, why_len, "cannot stat source %s: %s", path, strerror(-r));
		goto fail;
	}
	if (S_ISBLK(st.st_mode)) {
		int lbs = 0;

		s->blockdev = true;
		if (ioctl(s->fd, BLKGETSIZE64, &s->size) < 0 || ioctl(s->fd, BLKSSZGET, &lbs) < 0) {
			r = -errno;
			snprintf(why, why_len, "cannot size block device %s: %s", path, strerror(-r));
			goto fail;
		}
		s->logical_block = (uint32_t)lbs;
	} else if (S_ISREG(st.st_mode)) {
		s->size = (uint64_t)st.st_size;
		s->logical_block = 512;
	} else {
		r = -EINVAL;
		snprintf(why, why_len, "source %s is neither a block device nor a regular file", path);
		goto fail;
	}
	if (s->size == 0) {
		r = -EINVAL;
		snprintf(why, why_len, "source %s is empty", path);
		goto fail;
	}
	if (s->logical_block < 512 || s->logical_block > 65536 ||
	    (s->logical_block & (s->logical_block - 1))) {
		r = -EINVAL;
		snprintf(why, why_len, "source %s reports an odd logical block size %u", path,
			 s->logical_block);
		goto fail;
	}
	if (s->direct && !direct_read_works(s->fd, s->logical_block)) {
		int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

		if (fd < 0) {
			r = -errno;
			snprintf(why, why_len, "cannot reopen source %s: %s", path, strerror(-r));
			goto fail;
		}
		close(s->fd);
		s->fd = fd;
		s->direct = false;
	}
	r = claim(s->fd);
	if (r < 0) {
		if (r == -EWOULDBLOCK)
			snprintf(why, why_len, "source %s is being replicated by another tern-agent", path);
		else
			snprintf(why, why_len, "cannot lock source %s: %s", path, strerror(-r));
		goto fail;
	}
	if (!s->direct)
		log_info("%s: O_DIRECT refused by %s; using buffered reads", id, path);
	*ret_src = s;
	return 0;
fail:
	src_free(s);
	return r;
}

int src_whole_disk(dev_t dev, dev_t *ret_whole, uint64_t *ret_start)
{
	char path[128], text[32];
	uint64_t start, part;
	unsigned maj, min;
	int r;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/partition", major(dev), minor(dev));
	if (attr_read_u64(AT_FDCWD, path, &part) < 0) {
		*ret_whole = dev;
		*ret_start = 0;
		return 0;
	}
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/start", major(dev), minor(dev));
	r = attr_read_u64(AT_FDCWD, path, &start);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/../dev", major(dev), minor(dev));
	r = attr_read(AT_FDCWD, path, text, sizeof(text));
	if (r < 0)
		return r;
	if (sscanf(text, "%u:%u", &maj, &min) != 2)
		return -EINVAL;
	*ret_whole = makedev(maj, min);
	*ret_start = start;
	return 0;
}

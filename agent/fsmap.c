// SPDX-License-Identifier: GPL-2.0-only
/* fsm_: the free space of the file systems mounted from a source, per chunk. The file
 * system itself says where its free space is (FS_IOC_GETFSMAP, FMR_OWN_FREE records); a
 * range it reports is a range of its block device, which lies at the partition's start in
 * the source. Anything not reported free is copied: metadata, data, space outside any file
 * system, and every file system that cannot be asked. */
#include "agent/fsmap.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/fs.h>
#include <linux/fsmap.h>

#include "agent/source.h"
#include "common/log.h"
#include "common/util.h"

#define FSM_RECS 512

uint64_t fsm_mark_range(uint64_t *bits, uint64_t size, uint32_t cs, uint64_t off, uint64_t len)
{
	uint64_t nchunks = DIV_ROUND_UP(size, cs), end, first, last, marked = 0;

	if (cs == 0 || off >= size || len == 0)
		return 0;
	end = len > size - off ? size : off + len;
	first = DIV_ROUND_UP(off, cs);
	/* The source's last chunk may be short: it is whole when the range reaches the end. */
	last = end == size ? nchunks : end / cs;
	for (uint64_t i = first; i < last; i++) {
		if ((bits[i / 64] >> (i % 64)) & 1)
			continue;
		bits[i / 64] |= UINT64_C(1) << (i % 64);
		marked += MIN((uint64_t)cs, size - i * cs);
	}
	return marked;
}

/* The kernel's encoding of a dev_t in fsmap records (new_encode_dev). */
static uint32_t fsm_encode_dev(dev_t dev)
{
	uint32_t maj = major(dev), min = minor(dev);

	return (min & 0xff) | (maj << 8) | ((min & ~0xffu) << 12);
}

/* Marks the free space of the file system open at fd (on device dev, starting at start
 * bytes into the source and part_len long). Returns the bytes newly marked or -errno. */
static int64_t map_fs(struct fsm_map *m, const struct source *src, uint32_t cs, int fd, dev_t dev,
		      uint64_t start, uint64_t part_len)
{
	struct fsmap_head *h = calloc(1, fsmap_sizeof(FSM_RECS));
	uint32_t enc = fsm_encode_dev(dev);
	uint64_t run_off = 0, run_len = 0, marked = 0;
	bool last = false;
	int64_t r;

	if (!h)
		return -ENOMEM;
	h->fmh_count = FSM_RECS;
	h->fmh_keys[1].fmr_device = UINT32_MAX;
	h->fmh_keys[1].fmr_flags = UINT32_MAX;
	h->fmh_keys[1].fmr_physical = UINT64_MAX;
	h->fmh_keys[1].fmr_owner = UINT64_MAX;
	h->fmh_keys[1].fmr_offset = UINT64_MAX;
	while (!last) {
		if (ioctl(fd, FS_IOC_GETFSMAP, h) < 0) {
			r = -errno;
			goto out;
		}
		if (h->fmh_entries == 0)
			break;
		for (uint32_t i = 0; i < h->fmh_entries; i++) {
			const struct fsmap *rec = &h->fmh_recs[i];

			last = rec->fmr_flags & FMR_OF_LAST;
			/* Records of another device (an external log, a realtime volume) and
			 * everything that is not free space are copied. */
			if (rec->fmr_device != enc || rec->fmr_owner != FMR_OWN_FREE ||
			    (rec->fmr_flags & FMR_OF_SPECIAL_OWNER) == 0)
				continue;
			/* Neighbouring records (one per group) merge, so a chunk that straddles
			 * two of them counts as free. */
			if (run_len && rec->fmr_physical == run_off + run_len) {
				run_len += rec->fmr_length;
				continue;
			}
			if (run_len)
				marked += fsm_mark_range(m->free, src->size, cs, start + run_off,
							 MIN(run_len, part_len - MIN(run_off, part_len)));
			run_off = rec->fmr_physical;
			run_len = rec->fmr_length;
		}
		fsmap_advance(h);
	}
	if (run_len)
		marked += fsm_mark_range(m->free, src->size, cs, start + run_off,
					 MIN(run_len, part_len - MIN(run_off, part_len)));
	r = (int64_t)marked;
out:
	free(h);
	return r;
}

/* Whether dev is the source's device or a partition of it; where it begins and how long
 * it is, in bytes. */
static bool on_source(dev_t dev, dev_t sdev, uint64_t ssize, uint64_t *ret_start,
		      uint64_t *ret_len)
{
	char path[128];
	uint64_t start, sectors;
	dev_t whole;

	if (major(dev) == 0)
		return false; /* tmpfs, proc and the like */
	if (dev == sdev) {
		*ret_start = 0;
		*ret_len = ssize;
		return true;
	}
	if (src_whole_disk(dev, &whole, &start) < 0 || whole != sdev || dev == whole)
		return false;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/size", major(dev), minor(dev));
	if (attr_read_u64(AT_FDCWD, path, &sectors) < 0 || start * 512 >= ssize)
		return false;
	*ret_start = start * 512;
	*ret_len = MIN(sectors * 512, ssize - start * 512);
	return true;
}

/* One mount of a file system on the source: asks it, unless it was asked already. */
static int add_mount(struct fsm_map *m, const struct source *src, uint32_t cs, dev_t dev,
		     uint64_t start, uint64_t part_len, char *mnt, const char *type,
		     const char *devname)
{
	struct fsm_fs *f;
	struct stat st;
	int64_t got;
	int fd;

	for (unsigned i = 0; i < m->nfs; i++)
		if (m->fs[i].start == start)
			return 0; /* one file system mounted twice (a bind mount) */
	if (m->nfs == FSM_MAX_FS)
		return 0; /* the rest are copied whole */
	f = &m->fs[m->nfs++];
	mountinfo_unescape(mnt);
	snprintf(f->type, sizeof(f->type), "%s", type);
	snprintf(f->dev, sizeof(f->dev), "%s", devname);
	snprintf(f->mnt, sizeof(f->mnt), "%.255s", mnt); /* for the log alone */
	f->start = start;
	f->len = part_len;
	fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		f->err = -errno;
		return 0;
	}
	/* The path may lead to another file system than the one mountinfo names there
	 * (mounted over, or moved): its free space would not be this one's. */
	if (fstat(fd, &st) < 0 || st.st_dev != dev) {
		f->err = -EXDEV;
		close(fd);
		return 0;
	}
	got = map_fs(m, src, cs, fd, dev, start, part_len);
	close(fd);
	if (got == -ENOMEM)
		return -ENOMEM;
	if (got < 0) {
		f->err = (int)got;
		return 0;
	}
	f->free_bytes = (uint64_t)got;
	m->free_bytes += (uint64_t)got;
	return 0;
}

int fsm_read(const struct source *src, uint32_t cs, struct fsm_map **ret_map)
{
	struct fsm_map *m = calloc(1, sizeof(*m));
	char *line = NULL;
	size_t cap = 0;
	struct stat st;
	FILE *f;
	int r = 0;

	if (!m)
		return -ENOMEM;
	m->nchunks = DIV_ROUND_UP(src->size, cs);
	m->free = calloc(DIV_ROUND_UP(m->nchunks, 64) ? DIV_ROUND_UP(m->nchunks, 64) : 1, 8);
	if (!m->free) {
		free(m);
		return -ENOMEM;
	}
	if (!src->blockdev || fstat(src->fd, &st) < 0)
		goto done;
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		goto done; /* nothing known: everything is copied */
	while (r == 0 && getline(&line, &cap, f) > 0) {
		char mnt[4096], type[32], devname[64];
		uint64_t start, part_len;
		unsigned maj, min;
		const char *tail;

		/* "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS...] - TYPE SOURCE SUPEROPTS" */
		if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &maj, &min, mnt) != 3)
			continue;
		tail = strstr(line, " - ");
		if (!tail || sscanf(tail, " - %31s %63s", type, devname) != 2)
			continue;
		if (!on_source(makedev(maj, min), st.st_rdev, src->size, &start, &part_len))
			continue;
		r = add_mount(m, src, cs, makedev(maj, min), start, part_len, mnt, type, devname);
	}
	free(line);
	fclose(f);
	if (r < 0) {
		fsm_free(m);
		return r;
	}
done:
	*ret_map = m;
	return 0;
}

bool fsm_known(const struct fsm_map *m, uint64_t off, uint64_t len)
{
	for (unsigned i = 0; i < m->nfs; i++)
		if (!m->fs[i].err && off >= m->fs[i].start &&
		    off + len <= m->fs[i].start + m->fs[i].len)
			return true;
	return false;
}

void fsm_describe(const struct fsm_map *m, char *buf, size_t len)
{
	size_t n = 0;
	char b[32];

	buf[0] = '\0';
	if (m->nfs == 0) {
		snprintf(buf, len, "no file system mounted from it: copied whole");
		return;
	}
	for (unsigned i = 0; i < m->nfs && n < len; i++) {
		const struct fsm_fs *f = &m->fs[i];

		if (f->err)
			n += (size_t)snprintf(buf + n, len - n, "%s%s %s mounted at %s: copied whole "
					      "(its free space is unknown: %s)", i ? "; " : "",
					      f->type, f->dev, f->mnt, strerror(-f->err));
		else
			n += (size_t)snprintf(buf + n, len - n, "%sskipped %s free in %s %s mounted "
					      "at %s", i ? "; " : "",
					      fmt_bytes(f->free_bytes, b, sizeof(b)), f->type, f->dev,
					      f->mnt);
	}
}

struct fsm_map *fsm_free(struct fsm_map *m)
{
	if (!m)
		return NULL;
	free(m->free);
	free(m);
	return NULL;
}

// SPDX-License-Identifier: GPL-2.0-only
/* Device-mapper's ioctl interface; see dmctl.h. */
#include "agent/dmctl.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/dm-ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define DMCTL_CONTROL "/dev/mapper/control"
#define ALIGN8(x) (((x) + 7) & ~(size_t)7)

_Static_assert(sizeof(struct dm_ioctl) % 8 == 0, "dm_ioctl keeps its payload aligned");
_Static_assert(sizeof(struct dm_target_spec) % 8 == 0, "dm_target_spec keeps params aligned");

/* The kernel's huge_encode_dev: minor's low byte, major, then minor's high bits. */
static uint64_t enc_dev(dev_t dev)
{
	uint64_t maj = major(dev), min = minor(dev);

	return (min & 0xff) | (maj << 8) | ((min & ~(uint64_t)0xff) << 12);
}

static dev_t dec_dev(uint64_t v)
{
	return makedev((unsigned)((v & 0xfff00) >> 8),
		       (unsigned)((v & 0xff) | ((v >> 12) & 0xfff00)));
}

/* A request buffer: the header, then len bytes for the payload. The kernel refuses a
 * major version other than its own and a minor newer than its own, so ask for x.0.0. */
static struct dm_ioctl *io_new(size_t len, const char *name, dev_t dev)
{
	struct dm_ioctl *io = calloc(1, sizeof(*io) + len);

	if (!io)
		return NULL;
	io->version[0] = DM_VERSION_MAJOR;
	io->data_size = (uint32_t)(sizeof(*io) + len);
	io->data_start = sizeof(*io);
	if (name)
		snprintf(io->name, sizeof(io->name), "%s", name);
	else
		io->dev = enc_dev(dev);
	return io;
}

static int io_call(int ctl, unsigned long cmd, struct dm_ioctl *io)
{
	return ioctl(ctl, cmd, io) < 0 ? -errno : 0;
}

/* Runs a command whose answer may not fit: grows the buffer until it does. *io is
 * replaced (and still the caller's) on success and on failure. */
static int io_call_grow(int ctl, unsigned long cmd, struct dm_ioctl **io)
{
	for (size_t len = 16384;; len *= 2) {
		struct dm_ioctl *n;
		int r = io_call(ctl, cmd, *io);

		if (r < 0 || !((*io)->flags & DM_BUFFER_FULL_FLAG))
			return r;
		if (len > (64u << 20))
			return -E2BIG;
		n = realloc(*io, sizeof(**io) + len);
		if (!n)
			return -ENOMEM;
		*io = n;
		memset(n + 1, 0, len);
		n->data_size = (uint32_t)(sizeof(*n) + len);
		n->data_start = sizeof(*n);
		n->flags &= ~(uint32_t)DM_BUFFER_FULL_FLAG;
	}
}

int dmctl_open(int *ret_fd)
{
	int fd = open(DMCTL_CONTROL, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	*ret_fd = fd;
	return 0;
}

static void fill_info(const struct dm_ioctl *io, struct dmctl_info *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->dev = dec_dev(io->dev);
	memcpy(ret->name, io->name, sizeof(ret->name));
	ret->name[sizeof(ret->name) - 1] = '\0';
	memcpy(ret->uuid, io->uuid, sizeof(ret->uuid));
	ret->uuid[sizeof(ret->uuid) - 1] = '\0';
	ret->flags = io->flags;
	ret->open_count = io->open_count;
	ret->target_count = io->target_count;
}

int dmctl_info(int ctl, const char *name, dev_t dev, struct dmctl_info *ret_info)
{
	struct dm_ioctl *io = io_new(0, name, dev);
	int r;

	if (!io)
		return -ENOMEM;
	r = io_call(ctl, DM_DEV_STATUS, io);
	if (r == 0)
		fill_info(io, ret_info);
	free(io);
	return r;
}

int dmctl_create(int ctl, const char *name, const char *uuid, dev_t *ret_dev)
{
	struct dm_ioctl *io = io_new(0, name, 0);
	int r;

	if (!io)
		return -ENOMEM;
	if (uuid)
		snprintf(io->uuid, sizeof(io->uuid), "%s", uuid);
	r = io_call(ctl, DM_DEV_CREATE, io);
	if (r == 0)
		*ret_dev = dec_dev(io->dev);
	free(io);
	return r;
}

int dmctl_load(int ctl, dev_t dev, const struct dmctl_table *t)
{
	struct dm_ioctl *io;
	size_t len = 0, off = 0;
	int r;

	for (unsigned i = 0; i < t->n; i++)
		len += sizeof(struct dm_target_spec) + ALIGN8(strlen(t->t[i].params) + 1);
	io = io_new(len, NULL, dev);
	if (!io)
		return -ENOMEM;
	io->target_count = t->n;
	for (unsigned i = 0; i < t->n; i++) {
		struct dm_target_spec *sp = (struct dm_target_spec *)((char *)(io + 1) + off);
		size_t plen = ALIGN8(strlen(t->t[i].params) + 1);

		sp->sector_start = t->t[i].start;
		sp->length = t->t[i].len;
		memcpy(sp->target_type, t->t[i].type, sizeof(sp->target_type));
		memcpy(sp + 1, t->t[i].params, strlen(t->t[i].params) + 1);
		/* On the way in, next is relative to this spec (on the way out, to the data). */
		sp->next = (uint32_t)(sizeof(*sp) + plen);
		off += sizeof(*sp) + plen;
	}
	r = io_call(ctl, DM_TABLE_LOAD, io);
	free(io);
	return r;
}

static int simple(int ctl, unsigned long cmd, dev_t dev, uint32_t flags)
{
	struct dm_ioctl *io = io_new(0, NULL, dev);
	int r;

	if (!io)
		return -ENOMEM;
	io->flags = flags;
	r = io_call(ctl, cmd, io);
	free(io);
	return r;
}

int dmctl_clear(int ctl, dev_t dev)
{
	return simple(ctl, DM_TABLE_CLEAR, dev, 0);
}

int dmctl_suspend(int ctl, dev_t dev, bool lockfs)
{
	return simple(ctl, DM_DEV_SUSPEND, dev, DM_SUSPEND_FLAG | (lockfs ? 0 : DM_SKIP_LOCKFS_FLAG));
}

int dmctl_resume(int ctl, dev_t dev)
{
	return simple(ctl, DM_DEV_SUSPEND, dev, 0);
}

int dmctl_remove(int ctl, dev_t dev)
{
	int r = 0;

	/* udev's probe of a device that just changed can hold it open for a moment. */
	for (int i = 0; i < 50; i++) {
		r = simple(ctl, DM_DEV_REMOVE, dev, 0);
		if (r != -EBUSY)
			break;
		nanosleep(&(struct timespec){ .tv_nsec = 100000000 }, NULL);
	}
	return r;
}

int dmctl_table_add(struct dmctl_table *t, uint64_t start, uint64_t len, const char *type,
		    const char *params)
{
	struct dmctl_target *n;
	char *p;

	if (strlen(type) >= DMCTL_TYPE_LEN)
		return -EINVAL;
	p = strdup(params);
	if (!p)
		return -ENOMEM;
	n = realloc(t->t, (t->n + 1) * sizeof(*n));
	if (!n) {
		free(p);
		return -ENOMEM;
	}
	t->t = n;
	memset(&n[t->n], 0, sizeof(n[t->n]));
	n[t->n].start = start;
	n[t->n].len = len;
	memcpy(n[t->n].type, type, strlen(type));
	n[t->n].params = p;
	t->n++;
	return 0;
}

struct dmctl_table *dmctl_table_free(struct dmctl_table *t)
{
	if (!t)
		return NULL;
	for (unsigned i = 0; i < t->n; i++)
		free(t->t[i].params);
	free(t->t);
	free(t);
	return NULL;
}

uint64_t dmctl_table_sectors(const struct dmctl_table *t)
{
	uint64_t s = 0;

	for (unsigned i = 0; i < t->n; i++)
		s += t->t[i].len;
	return s;
}

int dmctl_table(int ctl, dev_t dev, enum dmctl_query what, struct dmctl_table **ret_t)
{
	struct dm_ioctl *io = io_new(16384, NULL, dev);
	struct dmctl_table *t = NULL;
	const char *data, *end;
	size_t off = 0;
	int r;

	if (!io)
		return -ENOMEM;
	io->flags = what == DMCTL_STATUS ? 0 :
		    what == DMCTL_LIVE_TABLE ? DM_STATUS_TABLE_FLAG :
		    DM_STATUS_TABLE_FLAG | DM_QUERY_INACTIVE_TABLE_FLAG;
	r = io_call_grow(ctl, DM_TABLE_STATUS, &io);
	if (r < 0)
		goto out;
	r = -ENOMEM;
	t = calloc(1, sizeof(*t));
	if (!t)
		goto out;
	/* The kernel wrote it, but check every offset anyway: a bad one is -EBADMSG. */
	r = -EBADMSG;
	if (io->data_start > io->data_size)
		goto out;
	data = (const char *)io + io->data_start;
	end = (const char *)io + io->data_size;
	for (unsigned i = 0; i < io->target_count; i++) {
		struct dm_target_spec sp;
		const char *params, *nul;
		char type[DMCTL_TYPE_LEN];

		if (off > (size_t)(end - data) || (size_t)(end - data) - off < sizeof(sp))
			goto out;
		memcpy(&sp, data + off, sizeof(sp));
		params = data + off + sizeof(sp);
		nul = memchr(params, '\0', (size_t)(end - params));
		if (!nul)
			goto out;
		memcpy(type, sp.target_type, sizeof(type));
		type[sizeof(type) - 1] = '\0';
		r = dmctl_table_add(t, sp.sector_start, sp.length, type, params);
		if (r < 0)
			goto out;
		r = -EBADMSG;
		if (sp.next <= off)
			goto out;
		off = sp.next;
	}
	*ret_t = t;
	t = NULL;
	r = 0;
out:
	dmctl_table_free(t);
	free(io);
	return r;
}

int dmctl_list(int ctl, struct dmctl_dev **ret, size_t *ret_n)
{
	struct dm_ioctl *io = io_new(16384, NULL, 0);
	struct dmctl_dev *v = NULL;
	const char *data, *end;
	size_t n = 0, off = 0;
	int r;

	if (!io)
		return -ENOMEM;
	r = io_call_grow(ctl, DM_LIST_DEVICES, &io);
	if (r < 0)
		goto out;
	r = -EBADMSG;
	if (io->data_start > io->data_size)
		goto out;
	data = (const char *)io + io->data_start;
	end = (const char *)io + io->data_size;
	for (;;) {
		struct dm_name_list nl;
		const char *name, *nul;
		struct dmctl_dev *nv;

		if (off > (size_t)(end - data) || (size_t)(end - data) - off < sizeof(nl))
			goto out;
		memcpy(&nl, data + off, sizeof(nl));
		if (nl.dev == 0)
			break; /* no devices at all */
		name = data + off + offsetof(struct dm_name_list, name);
		nul = memchr(name, '\0', (size_t)(end - name));
		if (!nul || (size_t)(nul - name) >= DMCTL_NAME_LEN)
			goto out;
		nv = realloc(v, (n + 1) * sizeof(*v));
		if (!nv) {
			r = -ENOMEM;
			goto out;
		}
		v = nv;
		v[n].dev = dec_dev(nl.dev);
		memcpy(v[n].name, name, (size_t)(nul - name) + 1);
		n++;
		if (nl.next == 0)
			break;
		off += nl.next;
	}
	*ret = v;
	*ret_n = n;
	v = NULL;
	r = 0;
out:
	free(v);
	free(io);
	return r;
}

bool dmctl_is_dm(dev_t dev)
{
	char path[96];

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/dm", major(dev), minor(dev));
	return access(path, F_OK) == 0;
}

int dmctl_open_dev(dev_t dev, int flags)
{
	struct stat st;
	char path[64];
	int fd;

	/* devtmpfs names every dm device dm-MINOR, with or without udev. */
	snprintf(path, sizeof(path), "/dev/dm-%u", minor(dev));
	fd = open(path, flags | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISBLK(st.st_mode) || st.st_rdev != dev) {
		close(fd);
		return -ENODEV;
	}
	return fd;
}

// SPDX-License-Identifier: GPL-2.0-only
/* Disk discovery: what sysfs, libblkid, /dev/disk/by-id and mountinfo say about each block
 * device; see disks.h. The rule `run` picks disks by is in disks-pick.c, the table and the
 * JSON of `tern-agent disks` in disks-show.c. */
#include "agent/disks.h"
#include "agent/disks-impl.h"

#include <blkid.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

#define SYS_BLOCK "/sys/block"
#define BY_ID_DIR "/dev/disk/by-id"
/* Test seam: scan ROOT/sys/block and ROOT/dev/disk/by-id instead, so a test can show the
 * selection only its own loop devices (symlinks to their sysfs directories). */
#define ROOT_ENV "TERN_DISKS_ROOT"

static void dev_clear(struct disks_dev *d)
{
	free(d->pttype);
	free(d->fstype);
	free(d->uuid);
	free(d->label);
	for (size_t i = 0; i < d->nmounts; i++)
		free(d->mounts[i]);
	free(d->mounts);
	for (size_t i = 0; i < d->nholders; i++)
		free(d->holders[i]);
	free(d->holders);
	free(d->dm_name);
	free(d->dm_uuid);
	free(d->id);
	free(d->id_path);
	for (size_t i = 0; i < d->nparts; i++)
		dev_clear(&d->parts[i]);
	free(d->parts);
}

struct disks_list *disks_list_free(struct disks_list *l)
{
	if (!l)
		return NULL;
	for (size_t i = 0; i < l->n; i++)
		dev_clear(&l->disks[i]);
	free(l->disks);
	free(l);
	return NULL;
}

static void ctx_clear(struct scan_ctx *c)
{
	for (size_t i = 0; i < c->nmounts; i++)
		free(c->mounts[i].dir);
	free(c->mounts);
	for (size_t i = 0; i < c->nids; i++) {
		free(c->ids[i].link);
		free(c->ids[i].target);
	}
	free(c->ids);
}

/* Reallocates an array of n elements of size sz to n + 1, the new one zeroed; returns the
 * new array (the caller stores it and bumps n) or NULL, the old array left intact. */
void *disks_grow(void *arr, size_t n, size_t sz)
{
	char *p = realloc(arr, (n + 1) * sz);

	if (p)
		memset(p + n * sz, 0, sz);
	return p;
}

static int push_str(char ***arr, size_t *n, const char *s)
{
	char *copy = strdup(s);
	char **a;

	if (!copy)
		return -ENOMEM;
	a = disks_grow(*arr, *n, sizeof(char *));
	if (!a) {
		free(copy);
		return -ENOMEM;
	}
	a[(*n)++] = copy;
	*arr = a;
	return 0;
}

/* A missing flag reads as false: partitions have no "removable" attribute, for one. */
static bool sysfs_flag(int dfd, const char *attr)
{
	uint64_t v = 0;

	return attr_read_u64(dfd, attr, &v) == 0 && v != 0;
}

static int load_mounts(struct scan_ctx *c)
{
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	int r = 0;

	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		struct mount_ent *m;
		unsigned maj, min;
		int off = -1;
		char *dir;

		/* id parent major:minor root mount-point ... */
		if (sscanf(line, "%*u %*u %u:%u %*s %n", &maj, &min, &off) != 2 || off < 0)
			continue;
		dir = strndup(line + off, strcspn(line + off, " \n"));
		if (!dir) {
			r = -ENOMEM;
			goto out;
		}
		mountinfo_unescape(dir);
		m = disks_grow(c->mounts, c->nmounts, sizeof(*m));
		if (!m) {
			free(dir);
			r = -ENOMEM;
			goto out;
		}
		c->mounts = m;
		m = &c->mounts[c->nmounts++];
		m->major = maj;
		m->minor = min;
		m->dir = dir;
	}
	if (ferror(f))
		r = -EIO;
out:
	free(line);
	fclose(f);
	return r;
}

static int by_id_cmp(const void *a, const void *b)
{
	return strcmp(((const struct by_id_ent *)a)->link, ((const struct by_id_ent *)b)->link);
}

/* /dev/disk/by-id is udev's; a host or container without udev has none, which is fine. */
static int load_by_id(struct scan_ctx *c)
{
	struct dirent *de;
	DIR *dir;
	int r = 0;

	dir = opendir(c->by_id);
	if (!dir)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(dir))) {
		char target[PATH_MAX];
		struct by_id_ent *e;
		const char *base;
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		n = readlinkat(dirfd(dir), de->d_name, target, sizeof(target) - 1);
		if (n < 0)
			continue;
		target[n] = '\0';
		base = strrchr(target, '/');
		base = base ? base + 1 : target;
		e = disks_grow(c->ids, c->nids, sizeof(*e));
		if (!e) {
			r = -ENOMEM;
			goto out;
		}
		c->ids = e;
		e = &c->ids[c->nids++];
		e->link = strdup(de->d_name);
		e->target = strdup(base);
		if (!e->link || !e->target) {
			r = -ENOMEM;
			goto out;
		}
	}
	/* Sorted, so that the id chosen among several links is the same on every run. */
	if (c->nids > 1)
		qsort(c->ids, c->nids, sizeof(*c->ids), by_id_cmp);
out:
	closedir(dir);
	return r;
}

static int collect_mounts(const struct scan_ctx *c, struct disks_dev *d)
{
	for (size_t i = 0; i < c->nmounts; i++) {
		if (c->mounts[i].major != d->major || c->mounts[i].minor != d->minor)
			continue;
		if (push_str(&d->mounts, &d->nmounts, c->mounts[i].dir) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int collect_holders(int devfd, struct disks_dev *d)
{
	struct dirent *de;
	DIR *dir;
	int fd, r = 0;

	fd = openat(devfd, "holders", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return 0;
	}
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		r = push_str(&d->holders, &d->nholders, de->d_name);
		if (r < 0)
			break;
	}
	closedir(dir);
	return r;
}

static int dup_value(blkid_probe pr, const char *tag, char **ret_s)
{
	const char *v;
	char *s;

	if (blkid_probe_lookup_value(pr, tag, &v, NULL) < 0 || !v[0])
		return 0;
	s = strdup(v);
	if (!s)
		return -ENOMEM;
	*ret_s = s;
	return 0;
}

/* Probes signatures read-only. Failures are recorded on the device, not returned: only
 * -ENOMEM stops the scan. */
static int probe_dev(struct disks_dev *d, bool dm_suspended)
{
	blkid_probe pr = NULL;
	int fd, r;

	if (dm_suspended) {
		/* Reading a suspended dm device blocks until it is resumed. */
		d->probe_err = -EAGAIN;
		d->probe_what = "device-mapper device is suspended";
		return 0;
	}
	/* O_NONBLOCK: an optical drive must not wait for its tray. */
	fd = open(d->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		d->probe_err = -errno;
		d->probe_what = "cannot open";
		return 0;
	}
	r = -ENOMEM;
	pr = blkid_new_probe();
	if (!pr)
		goto out;
	if (blkid_probe_set_device(pr, fd, 0, 0) < 0) {
		d->probe_err = errno > 0 ? -errno : -EIO;
		d->probe_what = "libblkid cannot use the device";
		r = 0;
		goto out;
	}
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_UUID |
					  BLKID_SUBLKS_LABEL);
	blkid_probe_enable_partitions(pr, d->whole);
	r = blkid_do_safeprobe(pr);
	if (r == -2) {
		d->probe_err = -EUCLEAN;
		d->probe_what = "several conflicting signatures";
		r = 0;
		goto out;
	}
	if (r < 0) {
		d->probe_err = -EIO;
		d->probe_what = "libblkid probe failed";
		r = 0;
		goto out;
	}
	r = 0;
	if (dup_value(pr, "TYPE", &d->fstype) < 0 || dup_value(pr, "UUID", &d->uuid) < 0 ||
	    dup_value(pr, "LABEL", &d->label) < 0 ||
	    (d->whole && dup_value(pr, "PTTYPE", &d->pttype) < 0))
		r = -ENOMEM;
out:
	if (pr)
		blkid_free_probe(pr);
	close(fd);
	return r;
}

/* A stable id made a valid DISK_ID (name_is_valid): other characters become '_', a leading
 * '.' or '-' is dropped, and an id too long keeps its first 47 characters and a 64-bit hash
 * of the whole, so two long ids that share a prefix stay apart. */
static void make_disk_id(const char *raw, char out[NAME_MAX_LEN + 1])
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a: stable across builds and hosts */
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)raw; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	while (*raw == '.' || *raw == '-')
		raw++;
	for (; *raw; raw++) {
		unsigned char ch = (unsigned char)*raw;
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == ':' || ch == '-';

		if (n == NAME_MAX_LEN) {
			snprintf(out + 47, NAME_MAX_LEN + 1 - 47, "-%016" PRIx64, h);
			return;
		}
		out[n++] = ok ? (char)ch : '_';
	}
	out[n] = '\0';
}

static int pick_stable_id(const struct scan_ctx *c, int devfd, struct disks_dev *d)
{
	/* "serial" on the disk itself is virtio-blk's; SCSI and ATA put it under device/. */
	static const struct { const char *attr, *source; } sysfs_ids[] = {
		{ "device/serial", "serial" },
		{ "serial", "serial" },
		{ "device/wwid", "wwid" },
		{ "wwid", "wwid" },
	};
	const struct by_id_ent *best = NULL;
	char buf[256];

	for (size_t i = 0; i < c->nids; i++) {
		if (strcmp(c->ids[i].target, d->name) != 0)
			continue;
		/* A WWN is the id the drive itself carries; others may name the bus path. */
		if (strncmp(c->ids[i].link, "wwn-", 4) == 0) {
			best = &c->ids[i];
			break;
		}
		if (!best)
			best = &c->ids[i];
	}
	if (best) {
		d->id = strdup(best->link);
		d->id_source = "by-id";
		if (!d->id || asprintf(&d->id_path, "%s/%s", c->by_id, best->link) < 0) {
			d->id_path = NULL;
			return -ENOMEM;
		}
		make_disk_id(d->id, d->disk_id);
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(sysfs_ids); i++) {
		if (attr_read(devfd, sysfs_ids[i].attr, buf, sizeof(buf)) < 0 || !buf[0])
			continue;
		d->id = strdup(buf);
		d->id_source = sysfs_ids[i].source;
		if (!d->id)
			return -ENOMEM;
		make_disk_id(d->id, d->disk_id);
		/* An id of only '.', '-' or nothing usable is no id. */
		if (!name_is_valid(d->disk_id, strlen(d->disk_id)))
			continue;
		return 0;
	}
	free(d->id);
	d->id = NULL;
	d->disk_id[0] = '\0';
	d->id_source = "none";
	return 0;
}

static int read_dev_numbers(int devfd, struct disks_dev *d)
{
	char buf[32];
	int r;

	r = attr_read(devfd, "dev", buf, sizeof(buf));
	if (r < 0)
		return r;
	if (sscanf(buf, "%u:%u", &d->major, &d->minor) != 2)
		return -EBADMSG;
	return 0;
}

/* Callers have checked that name fits d->name. */
static void set_name(struct disks_dev *d, const char *name)
{
	snprintf(d->name, sizeof(d->name), "%s", name);
	snprintf(d->path, sizeof(d->path), "/dev/%s", name);
}

static int part_cmp(const void *a, const void *b)
{
	const struct disks_dev *x = a, *y = b;

	return x->partno < y->partno ? -1 : x->partno > y->partno;
}

static int scan_partitions(const struct scan_ctx *c, int diskfd, struct disks_dev *disk)
{
	struct dirent *de;
	DIR *dir;
	int fd, pfd = -1, r = 0;

	fd = openat(diskfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dir = fdopendir(fd);
	if (!dir) {
		r = -errno;
		close(fd);
		return r;
	}
	while ((de = readdir(dir))) {
		struct disks_dev *p;
		uint64_t partno, start, sectors;

		if (de->d_name[0] == '.' || strlen(de->d_name) >= sizeof(p->name))
			continue;
		pfd = openat(diskfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (pfd < 0)
			continue;
		/* Only partition directories carry a "partition" attribute. */
		if (attr_read_u64(pfd, "partition", &partno) < 0 || partno > UINT32_MAX ||
		    attr_read_u64(pfd, "start", &start) < 0 || attr_read_u64(pfd, "size", &sectors) < 0 ||
		    sectors == 0 || sectors > UINT64_MAX / 512) {
			close(pfd);
			pfd = -1;
			continue;
		}
		r = -ENOMEM;
		p = disks_grow(disk->parts, disk->nparts, sizeof(*p));
		if (!p)
			goto out;
		disk->parts = p;
		p = &disk->parts[disk->nparts++];
		set_name(p, de->d_name);
		snprintf(p->parent, sizeof(p->parent), "%s", disk->name);
		p->partno = (unsigned)partno;
		/* sysfs counts in 512-byte units whatever the logical sector size. */
		p->start = start * 512;
		p->size = sectors * 512;
		p->log_sec = disk->log_sec;
		p->phy_sec = disk->phy_sec;
		p->rota = disk->rota;
		p->removable = disk->removable;
		p->ro = sysfs_flag(pfd, "ro");
		p->id_source = "none";
		r = read_dev_numbers(pfd, p);
		if (r < 0)
			goto out;
		r = collect_mounts(c, p);
		if (r < 0)
			goto out;
		r = collect_holders(pfd, p);
		if (r < 0)
			goto out;
		r = probe_dev(p, false);
		if (r < 0)
			goto out;
		close(pfd);
		pfd = -1;
	}
	r = 0;
	if (disk->nparts > 1)
		qsort(disk->parts, disk->nparts, sizeof(*disk->parts), part_cmp);
out:
	if (pfd >= 0)
		close(pfd);
	closedir(dir);
	return r;
}

/* Fills d from /sys/block/<name>; returns 1 when the device is to be listed, 0 when it is
 * skipped (size 0), or -errno. */
static int scan_disk(const struct scan_ctx *c, int blockfd, const char *name, struct disks_dev *d)
{
	uint64_t sectors = 0, v;
	bool suspended = false;
	char buf[256];
	int devfd, r;

	devfd = openat(blockfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (devfd < 0)
		return -errno;
	r = attr_read_u64(devfd, "size", &sectors);
	if (r < 0)
		goto out;
	r = 0;
	if (sectors == 0 || sectors > UINT64_MAX / 512)
		goto out;
	d->whole = true;
	set_name(d, name);
	d->size = sectors * 512;
	d->log_sec = attr_read_u64(devfd, "queue/logical_block_size", &v) == 0 ? (uint32_t)v : 512;
	d->phy_sec = attr_read_u64(devfd, "queue/physical_block_size", &v) == 0 ? (uint32_t)v : 512;
	d->rota = sysfs_flag(devfd, "queue/rotational");
	d->removable = sysfs_flag(devfd, "removable");
	d->ro = sysfs_flag(devfd, "ro");
	r = read_dev_numbers(devfd, d);
	if (r < 0)
		goto out;
	if (attr_read(devfd, "dm/name", buf, sizeof(buf)) == 0) {
		d->dm = true;
		suspended = sysfs_flag(devfd, "dm/suspended");
		r = -ENOMEM;
		d->dm_name = strdup(buf);
		if (!d->dm_name)
			goto out;
		if (attr_read(devfd, "dm/uuid", buf, sizeof(buf)) == 0 && buf[0]) {
			d->dm_uuid = strdup(buf);
			if (!d->dm_uuid)
				goto out;
			d->lvm = disks_has_prefix(buf, "LVM-");
		}
	}
	r = pick_stable_id(c, devfd, d);
	if (r < 0)
		goto out;
	disks_decide_pick(devfd, d);
	r = collect_mounts(c, d);
	if (r < 0)
		goto out;
	r = collect_holders(devfd, d);
	if (r < 0)
		goto out;
	r = probe_dev(d, suspended);
	if (r < 0)
		goto out;
	r = scan_partitions(c, devfd, d);
	if (r < 0)
		goto out;
	r = 1;
out:
	close(devfd);
	return r;
}

int disks_scan(struct disks_list **ret_list)
{
	struct scan_ctx c = { 0 };
	struct disks_list *l = NULL;
	struct dirent **names = NULL;
	const char *root;
	int blockfd = -1, n = 0, r;

	r = load_mounts(&c);
	if (r < 0) {
		log_errno(r, "cannot read /proc/self/mountinfo");
		goto out;
	}
	root = getenv(ROOT_ENV);
	if (!root || root[0] != '/')
		root = "";
	snprintf(c.sys_block, sizeof(c.sys_block), "%s%s", root, SYS_BLOCK);
	snprintf(c.by_id, sizeof(c.by_id), "%s%s", root, BY_ID_DIR);
	r = load_by_id(&c);
	if (r < 0) {
		log_errno(r, "cannot read %s", c.by_id);
		goto out;
	}
	blockfd = open(c.sys_block, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (blockfd < 0) {
		r = log_errno(-errno, "cannot open %s", c.sys_block);
		goto out;
	}
	/* versionsort lists sda, sdb, ..., sdaa and loop2 before loop10, as people count. */
	n = scandir(c.sys_block, &names, NULL, versionsort);
	if (n < 0) {
		n = 0;
		r = log_errno(-errno, "cannot list %s", c.sys_block);
		goto out;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		r = log_errno(-ENOMEM, "cannot list disks");
		goto out;
	}
	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		struct disks_dev *d;

		if (name[0] == '.' || strlen(name) >= sizeof(d->name))
			continue;
		d = disks_grow(l->disks, l->n, sizeof(*d));
		if (!d) {
			r = log_errno(-ENOMEM, "cannot list disks");
			goto out;
		}
		l->disks = d;
		d = &l->disks[l->n++];
		r = scan_disk(&c, blockfd, name, d);
		if (r == -ENOMEM) {
			log_errno(r, "%s: cannot list", name);
			goto out;
		}
		/* Removed while we looked (ENOENT) is no news; anything else is worth a line. */
		if (r < 0 && r != -ENOENT)
			log_warn_errno(r, "%s: cannot read its sysfs attributes; skipped", name);
		if (r <= 0) {
			dev_clear(d);
			l->n--;
		}
	}
	*ret_list = l;
	l = NULL;
	r = 0;
out:
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (blockfd >= 0)
		close(blockfd);
	ctx_clear(&c);
	disks_list_free(l);
	return r;
}

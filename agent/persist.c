// SPDX-License-Identifier: GPL-2.0-only
/* The state file of a tracker's pending set across a clean reboot (persist.h): its
 * little-endian format, the identity and write evidence of the disk it belongs to, and
 * the raw seal. */
#include "agent/persist.h"

#include <dirent.h>
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
#include <linux/fiemap.h>
#include <linux/fs.h>

#include "agent/source.h"
#include "common/fp.h"

#define PST_MAGIC "TERNPST1"
#define PST_VERSION 1u
#define PST_FLAG_SEALED 1u
/* Header layout (offsets in bytes). */
#define O_VERSION 8
#define O_FLAGS 12
#define O_ID 16                      /* 65 bytes, NUL-padded */
#define O_DISK_SIZE 88
#define O_START 96
#define O_SRC_SIZE 104
#define O_BLOCK 112
#define O_NFS 116
#define O_NBLOCKS 120
#define O_ACKED 128
#define O_KEY 136                    /* PST_KEY_LEN bytes */
#define O_GUID 200
#define O_BM_SUM 216                 /* XXH3-128 of the bitmap */
#define O_FS 256                     /* PST_MAX_FS entries of FS_LEN */
#define FS_LEN 64
#define O_HDR_SUM (PST_HDR_LEN - FP_LEN) /* XXH3-128 of everything before it */

_Static_assert(O_FS + PST_MAX_FS * FS_LEN <= O_HDR_SUM, "header fields overlap its checksum");

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t nwords(uint64_t nblocks)
{
	return DIV_ROUND_UP(nblocks, 64);
}

size_t pst_encoded_len(uint64_t nblocks)
{
	return PST_HDR_LEN + (size_t)DIV_ROUND_UP(nwords(nblocks) * 8, 4096) * 4096;
}

int pst_encode(const struct pst_state *s, void *buf, size_t len)
{
	uint8_t *b = buf;
	struct fp sum;

	if (!s->pending || s->nblocks == 0 || s->ident.nfs > PST_MAX_FS ||
	    len != pst_encoded_len(s->nblocks))
		return -EINVAL;
	memset(b, 0, len);
	memcpy(b, PST_MAGIC, 8);
	put32(b + O_VERSION, PST_VERSION);
	put32(b + O_FLAGS, s->sealed ? PST_FLAG_SEALED : 0);
	snprintf((char *)b + O_ID, NAME_MAX_LEN + 1, "%s", s->ident.id);
	put64(b + O_DISK_SIZE, s->ident.disk_size);
	put64(b + O_START, s->ident.start_sector);
	put64(b + O_SRC_SIZE, s->ident.src_size);
	put32(b + O_BLOCK, s->ident.block_size);
	put32(b + O_NFS, s->ident.nfs);
	put64(b + O_NBLOCKS, s->nblocks);
	put64(b + O_ACKED, s->acked_epoch);
	memcpy(b + O_KEY, s->ident.disk_key, PST_KEY_LEN);
	memcpy(b + O_GUID, s->ident.gpt_guid, 16);
	for (uint32_t i = 0; i < s->ident.nfs; i++) {
		const struct pst_fs *f = &s->ident.fs[i];
		uint8_t *e = b + O_FS + i * FS_LEN;

		put64(e, f->start_sector);
		put32(e + 8, f->kind);
		put32(e + 12, f->state);
		put32(e + 16, f->mnt_count);
		put64(e + 24, f->wtime);
		put64(e + 32, f->kbytes_written);
		memcpy(e + 40, f->uuid, 16);
	}
	for (uint64_t w = 0; w < nwords(s->nblocks); w++)
		put64(b + PST_HDR_LEN + w * 8, s->pending[w]);
	fp_compute(b + PST_HDR_LEN, len - PST_HDR_LEN, &sum);
	memcpy(b + O_BM_SUM, sum.b, FP_LEN);
	fp_compute(b, O_HDR_SUM, &sum);
	memcpy(b + O_HDR_SUM, sum.b, FP_LEN);
	return 0;
}

#define BAD(...) do { snprintf(why, why_len, __VA_ARGS__); return -EBADMSG; } while (0)

int pst_decode(const void *buf, size_t len, struct pst_state *ret, char *why, size_t why_len)
{
	const uint8_t *b = buf;
	struct pst_state s = { 0 };
	struct fp sum;
	uint64_t nb;

	if (len < PST_HDR_LEN)
		BAD("torn: %zu bytes, shorter than its header", len);
	if (memcmp(b, PST_MAGIC, 8) != 0)
		BAD("not a tern tracking state (bad magic)");
	if (get32(b + O_VERSION) != PST_VERSION)
		BAD("version %" PRIu32 ", not %u", get32(b + O_VERSION), PST_VERSION);
	fp_compute(b, O_HDR_SUM, &sum);
	if (memcmp(sum.b, b + O_HDR_SUM, FP_LEN) != 0)
		BAD("garbled: the header's checksum does not match");
	nb = get64(b + O_NBLOCKS);
	/* 2^40 blocks of 4 KiB is 4 PiB; a larger count is no real disk. */
	if (nb == 0 || nb > (UINT64_C(1) << 40))
		BAD("%" PRIu64 " tracking blocks is out of range", nb);
	if (len != pst_encoded_len(nb))
		BAD("torn: %zu bytes where %" PRIu64 " blocks need %zu", len, nb,
		    pst_encoded_len(nb));
	fp_compute(b + PST_HDR_LEN, len - PST_HDR_LEN, &sum);
	if (memcmp(sum.b, b + O_BM_SUM, FP_LEN) != 0)
		BAD("garbled: the pending set's checksum does not match");
	if (get32(b + O_FLAGS) & ~PST_FLAG_SEALED)
		BAD("unknown flags %#" PRIx32, get32(b + O_FLAGS));
	s.ident.nfs = get32(b + O_NFS);
	if (s.ident.nfs > PST_MAX_FS)
		BAD("%" PRIu32 " file systems, more than %d", s.ident.nfs, PST_MAX_FS);
	if (b[O_ID + NAME_MAX_LEN] != '\0' || b[O_KEY + PST_KEY_LEN - 1] != '\0')
		BAD("an unterminated name");
	memcpy(s.ident.id, b + O_ID, NAME_MAX_LEN + 1);
	if (!name_is_valid(s.ident.id, strlen(s.ident.id)))
		BAD("not a valid disk id");
	s.sealed = get32(b + O_FLAGS) & PST_FLAG_SEALED;
	s.ident.disk_size = get64(b + O_DISK_SIZE);
	s.ident.start_sector = get64(b + O_START);
	s.ident.src_size = get64(b + O_SRC_SIZE);
	s.ident.block_size = get32(b + O_BLOCK);
	if (s.ident.block_size == 0 ||
	    DIV_ROUND_UP(s.ident.src_size, s.ident.block_size) != nb)
		BAD("%" PRIu64 " blocks do not fit a source of %" PRIu64 " bytes", nb,
		    s.ident.src_size);
	s.nblocks = nb;
	s.acked_epoch = get64(b + O_ACKED);
	memcpy(s.ident.disk_key, b + O_KEY, PST_KEY_LEN);
	memcpy(s.ident.gpt_guid, b + O_GUID, 16);
	for (uint32_t i = 0; i < s.ident.nfs; i++) {
		const uint8_t *e = b + O_FS + i * FS_LEN;
		struct pst_fs *f = &s.ident.fs[i];

		f->start_sector = get64(e);
		f->kind = get32(e + 8);
		f->state = get32(e + 12);
		f->mnt_count = get32(e + 16);
		f->wtime = get64(e + 24);
		f->kbytes_written = get64(e + 32);
		memcpy(f->uuid, e + 40, 16);
	}
	s.pending = calloc(nwords(nb), 8);
	if (!s.pending)
		return -ENOMEM;
	for (uint64_t w = 0; w < nwords(nb); w++)
		s.pending[w] = get64(b + PST_HDR_LEN + w * 8);
	/* Bits past the last block would mark blocks the disk does not have. */
	if (nb % 64 && s.pending[nwords(nb) - 1] >> (nb % 64)) {
		free(s.pending);
		BAD("the pending set marks blocks past the end of the source");
	}
	*ret = s;
	return 0;
}

void pst_state_clear(struct pst_state *s)
{
	if (!s)
		return;
	free(s->pending);
	s->pending = NULL;
}

#define STALE(...) do { snprintf(why, why_len, __VA_ARGS__); return -ESTALE; } while (0)

static const char *fs_name(uint32_t kind)
{
	return kind == PST_FS_EXT4 ? "ext4" : kind == PST_FS_XFS ? "XFS" : "?";
}

int pst_trust(const struct pst_state *saved, const struct pst_ident *now, char *why,
	      size_t why_len)
{
	const struct pst_ident *o = &saved->ident;
	bool ext4 = false;

	if (!saved->sealed)
		STALE("not sealed: the shutdown did not finish (a crash, a power cut, or a "
		      "stop without the shutdown hook), so writes after the save may be missing");
	if (strcmp(o->id, now->id) != 0)
		STALE("saved for disk %s, not %s", o->id, now->id);
	if (o->disk_size != now->disk_size || strcmp(o->disk_key, now->disk_key) != 0 ||
	    memcmp(o->gpt_guid, now->gpt_guid, 16) != 0)
		STALE("another disk: its size, serial or GPT GUID differ from the saved ones");
	if (o->start_sector != now->start_sector || o->src_size != now->src_size ||
	    o->block_size != now->block_size)
		STALE("another range or tracking block (saved from sector %" PRIu64 ", %" PRIu64
		      " bytes in blocks of %" PRIu32 ")", o->start_sector, o->src_size,
		      o->block_size);
	if (o->nfs != now->nfs)
		STALE("the disk holds %" PRIu32 " file systems, %" PRIu32 " when sealed", now->nfs,
		      o->nfs);
	for (uint32_t i = 0; i < o->nfs; i++) {
		const struct pst_fs *a = &o->fs[i], *b = &now->fs[i];

		if (a->kind == PST_FS_XFS || b->kind == PST_FS_XFS)
			STALE("an XFS file system at sector %" PRIu64 ": tern does not read XFS's "
			      "write evidence", b->start_sector);
		if (a->start_sector != b->start_sector || a->kind != b->kind ||
		    memcmp(a->uuid, b->uuid, 16) != 0)
			STALE("the file system at sector %" PRIu64 " is not the one sealed",
			      b->start_sector);
		if (a->mnt_count != b->mnt_count || a->wtime != b->wtime ||
		    a->kbytes_written != b->kbytes_written || a->state != b->state)
			STALE("the %s file system at sector %" PRIu64 " was written since the seal "
			      "(mount count %" PRIu32 " -> %" PRIu32 ", %" PRIu64 " -> %" PRIu64
			      " KiB written)", fs_name(a->kind), a->start_sector, a->mnt_count,
			      b->mnt_count, a->kbytes_written, b->kbytes_written);
		ext4 = true;
	}
	if (!ext4)
		STALE("no ext4 file system on the disk whose superblock could show a write "
		      "since the seal");
	return 0;
}

int pst_read_fs(int fd, uint64_t start_sector, struct pst_fs *ret)
{
	uint8_t *b = alloc_aligned(4096, 4096);
	struct pst_fs f = { .start_sector = start_sector };
	int r;

	if (!b)
		return -ENOMEM;
	r = pread_full(fd, b, 4096, start_sector * 512);
	if (r < 0)
		goto out;
	r = 0;
	if (memcmp(b, "XFSB", 4) == 0) {
		f.kind = PST_FS_XFS;
		memcpy(f.uuid, b + 32, 16);
		r = 1;
	} else if (b[1024 + 0x38] == 0x53 && b[1024 + 0x39] == 0xef) {
		const uint8_t *sb = b + 1024;

		f.kind = PST_FS_EXT4;
		f.state = (uint32_t)(sb[0x3a] | sb[0x3b] << 8);
		f.mnt_count = (uint32_t)(sb[0x34] | sb[0x35] << 8);
		/* s_wtime and its high byte (s_wtime_hi). */
		f.wtime = get32(sb + 0x30) | (uint64_t)sb[0x274] << 32;
		f.kbytes_written = get64(sb + 0x178);
		memcpy(f.uuid, sb + 0x68, 16);
		r = 1;
	}
	if (r == 1)
		*ret = f;
out:
	free(b);
	return r;
}

/* The device node of block device dev, from its uevent's DEVNAME. */
static int dev_node(dev_t dev, char *buf, size_t len)
{
	char path[96], text[512], *p, *nl;
	int r;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/uevent", major(dev), minor(dev));
	r = attr_read(AT_FDCWD, path, text, sizeof(text));
	if (r < 0)
		return r;
	p = strstr(text, "DEVNAME=");
	if (!p)
		return -ENODEV;
	p += strlen("DEVNAME=");
	nl = strchr(p, '\n');
	if (nl)
		*nl = '\0';
	if (strchr(p, '/') && strncmp(p, "mapper/", 7) != 0)
		return -ENODEV;
	snprintf(buf, len, "/dev/%s", p);
	return 0;
}

/* A stable name of the disk's hardware: its WWID or serial, or a loop device's backing
 * file; "" when it has none. */
static void disk_key(dev_t whole, char *buf, size_t len)
{
	static const char *const attrs[] = { "device/wwid", "wwid", "device/serial", "serial",
					     "loop/backing_file" };
	char path[96];

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(attrs) / sizeof(*attrs); i++) {
		snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/%s", major(whole),
			 minor(whole), attrs[i]);
		if (attr_read(AT_FDCWD, path, buf, len) == 0 && buf[0])
			return;
		buf[0] = '\0';
	}
}

/* The whole disk's partitions' starts (sectors), from sysfs, in ascending order. */
static int part_starts(dev_t whole, uint64_t *starts, unsigned max, unsigned *ret_n)
{
	char path[96];
	struct dirent *de;
	unsigned n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u", major(whole), minor(whole));
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char attr[PATH_MAX];
		uint64_t start, part;

		snprintf(attr, sizeof(attr), "%s/%s/partition", path, de->d_name);
		if (de->d_name[0] == '.' || attr_read_u64(AT_FDCWD, attr, &part) < 0)
			continue;
		snprintf(attr, sizeof(attr), "%s/%s/start", path, de->d_name);
		if (attr_read_u64(AT_FDCWD, attr, &start) < 0)
			continue;
		if (n == max) {
			closedir(d);
			return -E2BIG;
		}
		starts[n++] = start;
	}
	closedir(d);
	for (unsigned i = 1; i < n; i++)
		for (unsigned j = i; j > 0 && starts[j - 1] > starts[j]; j--) {
			uint64_t t = starts[j];

			starts[j] = starts[j - 1];
			starts[j - 1] = t;
		}
	*ret_n = n;
	return 0;
}

/* The GPT disk GUID of the whole disk open as fd (zeros without GPT): the header is at
 * LBA 1, 512 or 4096 bytes in. */
static int gpt_guid(int fd, uint8_t guid[16])
{
	uint8_t *b = alloc_aligned(4096, 8192);
	int r;

	if (!b)
		return -ENOMEM;
	memset(guid, 0, 16);
	r = pread_full(fd, b, 8192, 0);
	if (r == 0) {
		if (memcmp(b + 512, "EFI PART", 8) == 0)
			memcpy(guid, b + 512 + 56, 16);
		else if (memcmp(b + 4096, "EFI PART", 8) == 0)
			memcpy(guid, b + 4096 + 56, 16);
	}
	free(b);
	return r;
}

#define FAIL(r_, ...) do { r = (r_); snprintf(why, why_len, __VA_ARGS__); goto out; } while (0)

int pst_probe(const char *id, dev_t src_dev, uint64_t src_size, uint32_t block_size,
	      struct pst_ident *ret, char *why, size_t why_len)
{
	struct pst_ident n = { .src_size = src_size, .block_size = block_size };
	uint64_t starts[PST_MAX_FS], sectors;
	char node[PATH_MAX], path[96];
	unsigned nparts = 0;
	dev_t whole;
	int fd = -1, r;

	snprintf(n.id, sizeof(n.id), "%s", id);
	r = src_whole_disk(src_dev, &whole, &n.start_sector);
	if (r < 0)
		FAIL(r, "cannot find the disk of %u:%u in sysfs", major(src_dev), minor(src_dev));
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/size", major(whole), minor(whole));
	r = attr_read_u64(AT_FDCWD, path, &sectors);
	if (r < 0)
		FAIL(r, "cannot read %s", path);
	n.disk_size = sectors * 512;
	disk_key(whole, n.disk_key, sizeof(n.disk_key));
	r = dev_node(whole, node, sizeof(node));
	if (r < 0)
		FAIL(r, "no device node for disk %u:%u", major(whole), minor(whole));
	fd = open(node, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0)
		FAIL(-errno, "cannot open %s: %s", node, strerror(errno));
	r = gpt_guid(fd, n.gpt_guid);
	if (r < 0)
		FAIL(r, "cannot read the partition table of %s: %s", node, strerror(-r));
	r = part_starts(whole, starts, PST_MAX_FS, &nparts);
	if (r < 0)
		FAIL(r, "cannot list the partitions of %s: %s", node, strerror(-r));
	if (nparts == 0)
		starts[nparts++] = 0;
	for (unsigned i = 0; i < nparts; i++) {
		r = pst_read_fs(fd, starts[i], &n.fs[n.nfs]);
		if (r < 0)
			FAIL(r, "cannot read %s at sector %" PRIu64 ": %s", node, starts[i],
			     strerror(-r));
		n.nfs += (uint32_t)r;
	}
	*ret = n;
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	return r;
}

int pst_extents(const char *path, struct pst_plan *ret, char *why, size_t why_len)
{
	const uint32_t bad = FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC |
			     FIEMAP_EXTENT_ENCODED | FIEMAP_EXTENT_DATA_ENCRYPTED |
			     FIEMAP_EXTENT_NOT_ALIGNED | FIEMAP_EXTENT_DATA_INLINE |
			     FIEMAP_EXTENT_DATA_TAIL | FIEMAP_EXTENT_UNWRITTEN |
			     FIEMAP_EXTENT_SHARED;
	struct fiemap *fm = NULL;
	struct pst_plan p = { 0 };
	uint64_t start, at = 0;
	struct stat st;
	dev_t whole;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		r = -errno;
		snprintf(why, why_len, "cannot open %s: %s", path, strerror(errno));
		return r;
	}
	if (fstat(fd, &st) < 0)
		FAIL(-errno, "cannot stat %s: %s", path, strerror(errno));
	r = src_whole_disk(st.st_dev, &whole, &start);
	if (r < 0 || major(st.st_dev) == 0)
		FAIL(-EOPNOTSUPP, "%s is not on a disk's file system", path);
	fm = calloc(1, sizeof(*fm) + PST_MAX_EXTENTS * sizeof(struct fiemap_extent));
	if (!fm)
		FAIL(-ENOMEM, "out of memory");
	fm->fm_length = FIEMAP_MAX_OFFSET;
	fm->fm_flags = FIEMAP_FLAG_SYNC;
	fm->fm_extent_count = PST_MAX_EXTENTS;
	if (ioctl(fd, FS_IOC_FIEMAP, fm) < 0)
		FAIL(-EOPNOTSUPP, "the file system of %s cannot say where its blocks are "
		     "(FIEMAP: %s)", path, strerror(errno));
	p.disk_major = major(whole);
	p.disk_minor = minor(whole);
	p.len = (uint64_t)st.st_size;
	for (uint32_t i = 0; i < fm->fm_mapped_extents && at < p.len; i++) {
		const struct fiemap_extent *e = &fm->fm_extents[i];
		uint64_t len = MIN(e->fe_length, p.len - e->fe_logical);

		if (e->fe_flags & bad)
			FAIL(-EOPNOTSUPP, "%s has an extent the seal cannot write raw (flags %#x)",
			     path, e->fe_flags);
		if (e->fe_logical != at || (e->fe_physical | len) % 4096)
			FAIL(-EOPNOTSUPP, "%s has a hole or an unaligned extent", path);
		p.ext[p.n++] = (struct pst_extent){ .file_off = at,
						    .disk_off = e->fe_physical + start * 512,
						    .len = len };
		at += len;
	}
	if (at != p.len)
		FAIL(-EOPNOTSUPP, "%s is in more than %d extents or has holes", path,
		     PST_MAX_EXTENTS);
	*ret = p;
	r = 0;
out:
	free(fm);
	close(fd);
	return r;
}

int pst_save(const char *path, const struct pst_state *s, struct pst_plan *ret_plan,
	     char *why, size_t why_len)
{
	size_t len = pst_encoded_len(s->nblocks);
	void *buf = alloc_aligned(4096, len);
	struct stat st;
	int fd = -1, r;

	if (!buf) {
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	r = pst_encode(s, buf, len);
	if (r < 0)
		FAIL(r, "cannot encode the state of %s", s->ident.id);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		FAIL(-errno, "cannot create %s: %s", path, strerror(errno));
	/* Overwritten in place at its length: the blocks stay where the last plan found them
	 * and are real data, never unwritten extents that would read back as zeros whatever
	 * the seal writes under them. */
	if (fstat(fd, &st) < 0)
		FAIL(-errno, "cannot stat %s: %s", path, strerror(errno));
	if ((uint64_t)st.st_size != len && ftruncate(fd, 0) < 0)
		FAIL(-errno, "cannot truncate %s: %s", path, strerror(errno));
	r = pwrite_full(fd, buf, len, 0);
	if (r < 0)
		FAIL(r, "cannot write %s: %s", path, strerror(-r));
	if (fsync(fd) < 0 || fsync_dir_of(path) < 0)
		FAIL(-errno, "cannot sync %s: %s", path, strerror(errno));
	r = pst_extents(path, ret_plan, why, why_len);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return r;
}

int pst_load(const char *path, struct pst_state *ret, char *why, size_t why_len)
{
	char *data = NULL;
	size_t len = 0;
	int r;

	/* The largest disk decode accepts: 2^40 blocks, 128 GiB of bitmap. Anything real is
	 * far below; read_file_all's bound is only against a runaway file. */
	r = read_file_all(path, (size_t)1 << 34, &data, &len);
	if (r < 0) {
		snprintf(why, why_len, "cannot read %s: %s", path, strerror(-r));
		return r;
	}
	r = pst_decode(data, len, ret, why, why_len);
	free(data);
	return r;
}

int pst_plan_write(const char *path, const struct pst_plan *p)
{
	size_t cap = 128 + (size_t)p->n * 80, off;
	char *text = malloc(cap);
	int r;

	if (!text)
		return -ENOMEM;
	off = (size_t)snprintf(text, cap, "tern-seal 1\ndisk %u:%u\nlength %" PRIu64 "\n",
			       p->disk_major, p->disk_minor, p->len);
	for (unsigned i = 0; i < p->n; i++)
		off += (size_t)snprintf(text + off, cap - off, "extent %" PRIu64 " %" PRIu64
					" %" PRIu64 "\n", p->ext[i].file_off,
					p->ext[i].disk_off, p->ext[i].len);
	r = write_file_atomic(path, text, off, 0600);
	free(text);
	return r;
}

int pst_plan_read(const char *path, struct pst_plan *ret, char *why, size_t why_len)
{
	struct pst_plan p = { 0 };
	char *data = NULL, *line, *save = NULL;
	uint64_t at = 0;
	size_t len;
	int r, lineno = 0;

	r = read_file_all(path, 65536, &data, &len);
	if (r < 0) {
		snprintf(why, why_len, "cannot read %s: %s", path, strerror(-r));
		return r;
	}
	r = -EBADMSG;
	for (line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct pst_extent e;
		int end = -1;

		lineno++;
		if (lineno == 1) {
			if (strcmp(line, "tern-seal 1") != 0)
				FAIL(-EBADMSG, "%s: not a seal plan", path);
		} else if (lineno == 2) {
			if (sscanf(line, "disk %u:%u%n", &p.disk_major, &p.disk_minor, &end) != 2 ||
			    line[end] != '\0')
				FAIL(-EBADMSG, "%s line 2: expected disk MAJ:MIN", path);
		} else if (lineno == 3) {
			if (sscanf(line, "length %" SCNu64 "%n", &p.len, &end) != 1 ||
			    line[end] != '\0' || p.len % 4096 || p.len < PST_HDR_LEN)
				FAIL(-EBADMSG, "%s line 3: expected a length of whole 4 KiB", path);
		} else {
			if (sscanf(line, "extent %" SCNu64 " %" SCNu64 " %" SCNu64 "%n", &e.file_off,
				   &e.disk_off, &e.len, &end) != 3 || line[end] != '\0')
				FAIL(-EBADMSG, "%s line %d: expected extent FILE DISK LENGTH", path,
				     lineno);
			if (p.n == PST_MAX_EXTENTS || e.file_off != at || e.len == 0 ||
			    (e.disk_off | e.len) % 4096 || e.len > p.len - at ||
			    e.disk_off > UINT64_MAX - e.len)
				FAIL(-EBADMSG, "%s line %d: the extents do not cover the file in "
				     "order, in whole 4 KiB", path, lineno);
			p.ext[p.n++] = e;
			at += e.len;
		}
	}
	if (lineno < 3 || at != p.len)
		FAIL(-EBADMSG, "%s: the extents do not cover the file", path);
	*ret = p;
	r = 0;
out:
	free(data);
	return r;
}

int pst_seal_write(const struct pst_plan *p, const void *buf, char *why, size_t why_len)
{
	struct pst_state old = { 0 }, new = { 0 };
	char node[PATH_MAX], reason[160];
	uint8_t *cur = NULL;
	int fd = -1, r;

	r = dev_node(makedev(p->disk_major, p->disk_minor), node, sizeof(node));
	if (r < 0)
		FAIL(r, "no device node for disk %u:%u", p->disk_major, p->disk_minor);
	fd = open(node, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (fd < 0)
		FAIL(-errno, "cannot open %s for writing: %s", node, strerror(errno));
	cur = alloc_aligned(4096, p->len);
	if (!cur)
		FAIL(-ENOMEM, "out of memory");
	/* Raw writes at offsets from a file: only over bytes that are this disk's state file
	 * already, so a stale or wrong plan can never overwrite anything else. */
	for (unsigned i = 0; i < p->n && r == 0; i++)
		r = pread_full(fd, cur + p->ext[i].file_off, p->ext[i].len, p->ext[i].disk_off);
	if (r < 0)
		FAIL(r, "cannot read the state file's blocks on %s: %s", node, strerror(-r));
	r = pst_decode(cur, p->len, &old, reason, sizeof(reason));
	if (r < 0)
		FAIL(-ESTALE, "the plan's blocks on %s are not a state file (%s)", node, reason);
	r = pst_decode(buf, p->len, &new, reason, sizeof(reason));
	if (r < 0)
		FAIL(-EINVAL, "the sealed state does not decode (%s)", reason);
	if (strcmp(old.ident.id, new.ident.id) != 0 || old.nblocks != new.nblocks)
		FAIL(-ESTALE, "the plan's blocks on %s hold the state of disk %s, not %s", node,
		     old.ident.id, new.ident.id);
	for (unsigned i = 0; i < p->n && r == 0; i++)
		r = pwrite_full(fd, (const uint8_t *)buf + p->ext[i].file_off, p->ext[i].len,
				p->ext[i].disk_off);
	if (r < 0)
		FAIL(r, "cannot write the seal to %s: %s", node, strerror(-r));
	/* A block device's fsync flushes the disk's write cache. */
	if (fdatasync(fd) < 0)
		FAIL(-errno, "cannot flush %s: %s", node, strerror(errno));
out:
	pst_state_clear(&old);
	pst_state_clear(&new);
	free(cur);
	if (fd >= 0)
		close(fd);
	return r;
}

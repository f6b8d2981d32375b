// SPDX-License-Identifier: GPL-2.0-only
/* The unit suites' shared helpers: temporary directories and real files; see helpers.h. */
#include "helpers.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

const char *t_tmpbase(void)
{
	const char *base = getenv("TMPDIR");

	return base && *base ? base : "/tmp";
}

static void tmp_name(char buf[PATH_MAX], const char *name)
{
	ck_assert_int_lt(snprintf(buf, PATH_MAX, "%s/tern-test-%s.XXXXXX", t_tmpbase(), name),
			 PATH_MAX);
}

void t_mkdtemp(char buf[PATH_MAX], const char *name)
{
	tmp_name(buf, name);
	ck_assert_msg(mkdtemp(buf) != NULL, "mkdtemp %s: %s", buf, strerror(errno));
}

int t_mkstemp(char buf[PATH_MAX], const char *name)
{
	int fd;

	tmp_name(buf, name);
	fd = mkostemp(buf, O_CLOEXEC);
	ck_assert_msg(fd >= 0, "mkostemp %s: %s", buf, strerror(errno));
	return fd;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	remove(path);
	return 0;
}

void t_rmtree(const char *path)
{
	if (path && path[0])
		nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *t_path(char *buf, const char *dir, const char *name)
{
	ck_assert_int_lt(snprintf(buf, PATH_MAX, "%s/%s", dir, name), PATH_MAX);
	return buf;
}

void t_fill(void *buf, size_t len, uint64_t seed, uint64_t off)
{
	uint8_t *p = buf;

	for (size_t i = 0; i < len; i++) {
		/* splitmix64 of (seed, 8-byte word), one byte of it per offset; the low bit set
		 * in the first byte of every 8 keeps any 512-byte block from being all zero. */
		uint64_t o = off + i, z = seed * 0x9e3779b97f4a7c15ull + (o >> 3) + 1;

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		z ^= z >> 31;
		p[i] = (uint8_t)(z >> (8 * (o & 7)));
		if ((o & 7) == 0)
			p[i] |= 1;
	}
}

static int open_new(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_msg(fd >= 0, "create %s: %s", path, strerror(errno));
	return fd;
}

void t_create_file(const char *path, uint64_t size, uint64_t seed)
{
	static uint8_t buf[1 << 16];
	int fd = open_new(path);

	for (uint64_t off = 0; off < size; off += sizeof(buf)) {
		size_t n = (size_t)MIN((uint64_t)sizeof(buf), size - off);

		t_fill(buf, n, seed, off);
		ck_assert_int_eq(pwrite_full(fd, buf, n, off), 0);
	}
	ck_assert_int_eq(close(fd), 0);
}

void t_write_text(const char *path, const char *text)
{
	int fd = open_new(path);

	ck_assert_int_eq(pwrite_full(fd, text, strlen(text), 0), 0);
	ck_assert_int_eq(close(fd), 0);
}

void t_symlink(const char *target, const char *path)
{
	ck_assert_msg(symlink(target, path) == 0, "symlink %s: %s", path, strerror(errno));
}

void t_pread(const char *path, uint64_t off, void *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(pread_full(fd, buf, len, off), 0);
	close(fd);
}

bool t_has_fill(const char *path, uint64_t off, uint64_t len, uint64_t seed)
{
	static uint8_t got[1 << 16], want[1 << 16];

	for (uint64_t o = off; o < off + len; o += sizeof(got)) {
		size_t n = (size_t)MIN((uint64_t)sizeof(got), off + len - o);

		t_pread(path, o, got, n);
		t_fill(want, n, seed, o);
		if (memcmp(got, want, n) != 0)
			return false;
	}
	return true;
}

bool t_is_zero(const char *path, uint64_t off, uint64_t len)
{
	static uint8_t got[1 << 16];

	for (uint64_t o = off; o < off + len; o += sizeof(got)) {
		size_t n = (size_t)MIN((uint64_t)sizeof(got), off + len - o);

		t_pread(path, o, got, n);
		if (!mem_is_zero(got, n))
			return false;
	}
	return true;
}

bool t_is_hole(const char *path, uint64_t off, uint64_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t data;

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	data = lseek(fd, (off_t)off, SEEK_DATA);
	ck_assert_msg(data >= 0 || errno == ENXIO, "SEEK_DATA %s: %s", path, strerror(errno));
	close(fd);
	return data < 0 || (uint64_t)data >= off + len;
}

uint64_t t_size(const char *path)
{
	struct stat st;

	ck_assert_msg(stat(path, &st) == 0, "stat %s: %s", path, strerror(errno));
	return (uint64_t)st.st_size;
}

/* Bytes of the mapping that holds p resident in memory, per /proc/self/smaps: pages only
 * read (the kernel's shared zero page) cost nothing and do not count. */
uint64_t t_resident(const void *p)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	char line[512];
	uint64_t kb = UINT64_MAX;
	bool in = false;

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
			in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
			continue;
		}
		if (in && sscanf(line, "Rss: %" SCNu64 " kB", &kb) == 1)
			break;
	}
	fclose(f);
	ck_assert_uint_ne(kb, UINT64_MAX);
	return kb * 1024;
}

// SPDX-License-Identifier: GPL-2.0-only
/* Small helpers shared by every binary; see util.h. */
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret_v)
{
	unsigned long long v;
	char *end;

	if (!s || *s < '0' || *s > '9') /* strtoull would skip any space and negate a '-' */
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (*end != '\0')
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*ret_v = v;
	return 0;
}

int parse_size(const char *s, uint64_t *ret_v)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (!s || *s < '0' || *s > '9') /* strtoull would skip any space and negate a '-' */
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (end == s)
		return -EINVAL;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: return -EINVAL;
	}
	if (shift && (*end == 'i' || *end == 'I'))
		end++;
	if (shift && (*end == 'b' || *end == 'B'))
		end++;
	if (*end != '\0')
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*ret_v = (uint64_t)v << shift;
	return 0;
}

bool name_is_valid(const char *s, size_t len)
{
	if (len == 0 || len > NAME_MAX_LEN || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == ':' || c == '-'))
			return false;
	}
	return true;
}

int parse_id_path(const char *arg, char **ret_id, char **ret_path)
{
	const char *eq = strchr(arg, '=');
	char *id, *path;

	if (!eq || eq == arg || eq[1] == '\0')
		return -EINVAL;
	if (!name_is_valid(arg, (size_t)(eq - arg)))
		return -EINVAL;
	id = strndup(arg, (size_t)(eq - arg));
	path = strdup(eq + 1);
	if (!id || !path) {
		free(id);
		free(path);
		return -ENOMEM;
	}
	*ret_id = id;
	*ret_path = path;
	return 0;
}

/* Length of a KEY= at s (KEY of [a-z0-9-], at least one character), 0 if there is none. */
static size_t opt_key_len(const char *s)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-");

	return n > 0 && s[n] == '=' ? n : 0;
}

int parse_id_path_opts(const char *arg, char **ret_id, char **ret_path,
		       int (*opt)(void *ud, const char *key, const char *value), void *ud)
{
	const char *eq = strchr(arg, '='), *end;
	char *id = NULL, *path = NULL, *opts = NULL, *save = NULL, *kv;
	int r = -EINVAL;

	if (!eq || eq == arg || eq[1] == '\0' || eq[1] == ',' ||
	    !name_is_valid(arg, (size_t)(eq - arg)))
		return -EINVAL;
	for (end = strchr(eq + 1, ','); end && !opt_key_len(end + 1); end = strchr(end + 1, ','))
		;
	r = -ENOMEM;
	id = strndup(arg, (size_t)(eq - arg));
	path = end ? strndup(eq + 1, (size_t)(end - eq - 1)) : strdup(eq + 1);
	opts = strdup(end ? end + 1 : "");
	if (!id || !path || !opts)
		goto fail;
	/* strtok_r would skip an empty field ("a,,b"): refuse those first. */
	r = -EINVAL;
	if (end && (opts[0] == '\0' || strstr(opts, ",,") || opts[strlen(opts) - 1] == ','))
		goto fail;
	for (kv = strtok_r(opts, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		size_t klen = opt_key_len(kv);

		r = -EINVAL;
		if (!klen || kv[klen + 1] == '\0')
			goto fail;
		kv[klen] = '\0';
		r = opt(ud, kv, kv + klen + 1);
		if (r < 0)
			goto fail;
	}
	free(opts);
	*ret_id = id;
	*ret_path = path;
	return 0;
fail:
	free(id);
	free(path);
	free(opts);
	return r;
}

int read_full(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One loop for both directions: a short transfer continues, EOF is an error. */
static int pio_full(int fd, void *buf, size_t len, uint64_t off, bool write)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = write ? pwrite(fd, p, len, (off_t)off) : pread(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	return pio_full(fd, (void *)(uintptr_t)buf, len, off, true);
}

int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	return pio_full(fd, buf, len, off, false);
}

int fsync_dir_of(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, r = 0;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else if ((size_t)(slash - path) >= sizeof(dir))
		return -ENAMETOOLONG;
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

int write_file_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
	char tmp[PATH_MAX];
	int fd = -1, r;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return -errno;
	/* The umask may have narrowed nothing, but an existing temp could carry old bits. */
	if (fchmod(fd, mode) < 0) {
		r = -errno;
		goto fail;
	}
	r = write_full(fd, data, len);
	if (r < 0)
		goto fail;
	if (fsync(fd) < 0) {
		r = -errno;
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		r = -errno;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		r = -errno;
		goto fail;
	}
	return fsync_dir_of(path);
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return r;
}

int read_file_all(const char *path, size_t max, char **ret_data, size_t *ret_len)
{
	struct stat st;
	char *buf = NULL;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		r = -EFBIG;
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	r = read_full(fd, buf, (size_t)st.st_size);
	if (r < 0)
		goto out;
	buf[st.st_size] = '\0';
	*ret_data = buf;
	if (ret_len)
		*ret_len = (size_t)st.st_size;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return r;
}

int attr_read(int dfd, const char *path, char *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;
	int fd, r = 0;

	if (len == 0)
		return -EINVAL;
	fd = openat(dfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (got + 1 < len) {
		n = read(fd, buf + got, len - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == ' '))
		got--;
	buf[got] = '\0';
out:
	close(fd);
	return r;
}

int attr_read_u64(int dfd, const char *path, uint64_t *ret_v)
{
	char buf[64];
	uint64_t v;
	int r;

	r = attr_read(dfd, path, buf, sizeof(buf));
	if (r < 0)
		return r;
	r = parse_u64(buf, 0, UINT64_MAX, &v);
	if (r < 0)
		return r;
	*ret_v = v;
	return 0;
}

void mountinfo_unescape(char *s)
{
	char *out = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 4;
		} else {
			*out++ = *s++;
		}
	}
	*out = '\0';
}

/* Some filesystems (sysfs) refuse mkdir with EPERM even where the directory exists. */
static int mkdir_one(const char *path, unsigned mode)
{
	struct stat st;

	if (mkdir(path, mode) == 0 || errno == EEXIST)
		return 0;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	return -1;
}

int mkdir_p(const char *path, unsigned mode)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir_one(buf, mode) < 0)
			return -errno;
		*p = '/';
	}
	return mkdir_one(buf, mode) < 0 ? -errno : 0;
}

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void *alloc_aligned(size_t align, size_t len)
{
	void *p = NULL;

	if (posix_memalign(&p, align, len ? len : align) != 0)
		return NULL;
	memset(p, 0, len);
	return p;
}

bool mem_is_zero(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	const uint64_t *w;
	size_t n;

	/* Check the head byte-wise to alignment, then 64 bytes per step; the compiler
	 * vectorises the OR-reduction and an early exit keeps data chunks cheap. */
	while (len > 0 && ((uintptr_t)p & 7)) {
		if (*p)
			return false;
		p++;
		len--;
	}
	w = (const uint64_t *)(const void *)p;
	n = len / 64;
	for (size_t i = 0; i < n; i++, w += 8) {
		if (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7])
			return false;
	}
	p = (const unsigned char *)w;
	len -= n * 64;
	while (len-- > 0) {
		if (*p++)
			return false;
	}
	return true;
}

const char *fmt_bytes(uint64_t v, char *buf, size_t len)
{
	static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double d = (double)v;
	size_t u = 0;

	while (d >= 1024.0 && u + 1 < ARRAY_SIZE(units)) {
		d /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " B", v);
	else
		snprintf(buf, len, "%.2f %s", d, units[u]);
	return buf;
}

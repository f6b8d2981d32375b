/* SPDX-License-Identifier: GPL-2.0-only */
/* Small helpers shared by every binary: number parsing, full reads and writes,
 * atomic file replacement, clocks, and validation of names that cross the wire. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define DIV_ROUND_UP(n, d) (((n) + (d) - 1) / (d))

/* Longest disk id or agent name accepted anywhere (command line, wire, state). */
#define NAME_MAX_LEN 64

/* Parses a decimal unsigned integer in [min, max]; returns 0 or -EINVAL/-ERANGE. */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret_v);
/* Parses a size with an optional K/M/G/T suffix (binary multiples); 0 or -EINVAL/-ERANGE. */
int parse_size(const char *s, uint64_t *ret_v);
/* True when s is 1..NAME_MAX_LEN characters of [A-Za-z0-9._:-] not starting with '.' or '-'. */
bool name_is_valid(const char *s, size_t len);
/* Splits "ID=PATH"; validates the id. Returns 0 or -EINVAL. Pointers into a copy owned by caller. */
int parse_id_path(const char *arg, char **ret_id, char **ret_path);
/* Splits "ID=PATH[,KEY=VALUE...]" (the receiver's --target): validates the id; PATH ends
 * at the first comma followed by KEY= (KEY of [a-z0-9-]), so a path with other commas
 * still parses as before. Each KEY=VALUE (both non-empty, no comma) is handed in order to
 * opt(ud, key, value), which returns 0 or -errno (and says why itself). Returns 0, -EINVAL
 * for a malformed argument, -ENOMEM, or opt's error; id and path are the caller's. */
int parse_id_path_opts(const char *arg, char **ret_id, char **ret_path,
		       int (*opt)(void *ud, const char *key, const char *value), void *ud);

/* Loops over short reads/writes and EINTR. Return 0 or -errno; read_full returns -EIO on EOF. */
int read_full(int fd, void *buf, size_t len);
int write_full(int fd, const void *buf, size_t len);
int pwrite_full(int fd, const void *buf, size_t len, uint64_t off);
int pread_full(int fd, void *buf, size_t len, uint64_t off);

/* fsyncs the directory holding path, making a new entry in it durable. 0 or -errno. */
int fsync_dir_of(const char *path);
/* Writes a file atomically: temp file with mode, fsync, rename, fsync of the directory. */
int write_file_atomic(const char *path, const void *data, size_t len, unsigned mode);
/* Reads a whole small file (at most max bytes) into a NUL-terminated heap buffer. */
int read_file_all(const char *path, size_t max, char **ret_data, size_t *ret_len);
/* Reads a small sysfs or procfs attribute (path relative to dfd, or AT_FDCWD) into buf,
 * NUL-terminated, without trailing newline or blanks. Such files report a size that is
 * not their content's (4096 or 0), so this reads until EOF; longer content is cut at
 * len - 1 bytes. Returns 0 or -errno. */
int attr_read(int dfd, const char *path, char *buf, size_t len);
/* The same, parsed as a decimal unsigned integer. */
int attr_read_u64(int dfd, const char *path, uint64_t *ret_v);
/* Decodes in place the \ooo escapes /proc/self/mountinfo uses for space, tab, newline and
 * backslash in paths. */
void mountinfo_unescape(char *s);
/* Creates a directory (and parents) with mode if missing. 0 or -errno. */
int mkdir_p(const char *path, unsigned mode);

uint64_t now_ns(void);
/* Aligned zeroed allocation for O_DIRECT buffers; NULL on failure. Free with free(). */
void *alloc_aligned(size_t align, size_t len);
/* True when all len bytes are zero; fast for chunk-sized buffers. */
bool mem_is_zero(const void *buf, size_t len);
/* Formats bytes as e.g. "1.50 GiB" into buf. */
const char *fmt_bytes(uint64_t v, char *buf, size_t len);

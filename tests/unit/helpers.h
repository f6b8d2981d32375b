/* SPDX-License-Identifier: GPL-2.0-only */
/* What every unit suite shares: the runner's contract (runner.c holds main) and helpers
 * for real files in temporary directories under $TMPDIR. A helper that cannot do its job
 * fails the test it runs in (ck_assert), so a test never goes on from a broken setup. */
#pragma once
#include <check.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- the runner ---- */

/* Each suite file defines t_suites: the functions that make its suites, ending with NULL.
 * runner.c's main runs them all in fork mode (a crash fails one test, not the run), with
 * SIGPIPE ignored and logging at warning level (debug with TERN_TEST_DEBUG set), and
 * exits 0 when all passed, 1 when any failed. */
extern Suite *(*const t_suites[])(void);

/* A suite file may define t_precheck: NULL when the suite can run here, or the reason it
 * cannot (io_uring refused by the kernel, say); the runner then prints the reason and
 * exits 77, which meson counts as skipped. */
const char *t_precheck(void) __attribute__((weak));
/* A t_precheck for suites that need io_uring: NULL when a ring can be set up here, else
 * the reason (helpers-uring.c). */
const char *t_need_io_uring(void);

/* ---- temporary files ---- */

/* $TMPDIR, or /tmp when it is unset or empty. */
const char *t_tmpbase(void);
/* Makes a new directory t_tmpbase()/tern-test-NAME.XXXXXX, its path into buf. */
void t_mkdtemp(char buf[PATH_MAX], const char *name);
/* Makes a new empty file t_tmpbase()/tern-test-NAME.XXXXXX, its path into buf; returns
 * its descriptor (read-write, O_CLOEXEC), the caller's to close. */
int t_mkstemp(char buf[PATH_MAX], const char *name);
/* Removes path and everything under it, following no symbolic link; NULL, "" and a path
 * that does not exist are no-ops. */
void t_rmtree(const char *path);
/* dir/name into buf (PATH_MAX bytes); returns buf. */
char *t_path(char *buf, const char *dir, const char *name);

/* ---- contents ---- */

/* Fills buf with bytes that depend only on seed and on each byte's offset off + i, so any
 * range of a file made by t_create_file can be checked alone; no 512-byte block of it is
 * all zero. */
void t_fill(void *buf, size_t len, uint64_t seed, uint64_t off);
/* Makes path (created or truncated, 0600) size bytes long, all of it written with
 * t_fill(seed): real data, no holes. */
void t_create_file(const char *path, uint64_t size, uint64_t seed);
/* Makes path (created or truncated, 0600) holding exactly text. */
void t_write_text(const char *path, const char *text);
/* Makes a symbolic link at path pointing to target. */
void t_symlink(const char *target, const char *path);
/* Reads exactly len bytes at off of path into buf. */
void t_pread(const char *path, uint64_t off, void *buf, size_t len);
/* Whether [off, off + len) of path holds t_fill(seed)'s bytes. */
bool t_has_fill(const char *path, uint64_t off, uint64_t len, uint64_t seed);
/* Whether [off, off + len) of path reads as zeros. */
bool t_is_zero(const char *path, uint64_t off, uint64_t len);
/* Whether [off, off + len) of path is a hole: no data before off + len from off on,
 * according to SEEK_DATA. */
bool t_is_hole(const char *path, uint64_t off, uint64_t len);
/* path's size in bytes. */
uint64_t t_size(const char *path);
/* Bytes of the mapping that holds p resident in memory, per /proc/self/smaps: pages only
 * read (the kernel's shared zero page) cost nothing and do not count. */
uint64_t t_resident(const void *p);

/* SPDX-License-Identifier: GPL-2.0-only */
/* A replication source: a block device or an image file, opened read-only (never
 * written), with O_DIRECT where the filesystem allows it. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct source {
	char *id;          /* disk id sent to the receiver */
	char *path;
	int fd;
	bool direct;       /* opened with O_DIRECT */
	bool blockdev;
	uint64_t size;
	uint32_t logical_block;
};

/* Opens path read-only; probes O_DIRECT with one aligned read and falls back to buffered
 * reads (saying so) where it is refused. Returns 0 or -errno; why gets a one-line reason. */
int src_open(const char *id, const char *path, struct source **ret_src, char *why, size_t why_len);
/* NULL-safe; returns NULL. */
struct source *src_free(struct source *s);
/* The source's size as the kernel sees it now (BLKGETSIZE64, or the file's size), which
 * may differ from s->size once a volume was grown or an image extended. 0 or -errno. */
int src_size_now(const struct source *s, uint64_t *ret_size);
/* The whole disk a block device belongs to and the 512-byte sector it starts at there:
 * the device itself and 0 unless it is a partition (per sysfs). Returns 0 or -errno. */
int src_whole_disk(dev_t dev, dev_t *ret_whole, uint64_t *ret_start);

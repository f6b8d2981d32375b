/* SPDX-License-Identifier: GPL-2.0-only */
/* Free space of the file systems mounted from a source (--copy used): asked of each file
 * system with FS_IOC_GETFSMAP, mapped onto the source's chunks, so an epoch sends the
 * chunks that lie wholly in free space as zeros without reading them. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct source;

#define FSM_MAX_FS 16

/* One file system mounted from the source, and what its free space saved. */
struct fsm_fs {
	char type[32];       /* "ext4", "xfs", ... */
	char dev[64];        /* the mount's source as mountinfo names it */
	char mnt[256];       /* a mount point */
	uint64_t start;      /* where it begins in the source, bytes */
	uint64_t len;        /* and its device's length there */
	uint64_t free_bytes; /* bytes of the source's chunks wholly in its free space */
	int err;             /* why its free space is unknown (-errno: copied whole), or 0 */
};

struct fsm_map {
	uint64_t *free;       /* a bit per chunk: wholly free, send as zeros, do not read */
	uint64_t nchunks;
	uint64_t free_bytes;  /* bytes of the chunks in free */
	struct fsm_fs fs[FSM_MAX_FS];
	unsigned nfs;
};

/* Marks in bits (one per chunk of cs bytes of a source of size bytes) every chunk that
 * lies wholly inside [off, off + len), clipped to the source; a chunk only partly inside
 * stays unmarked. Returns the bytes of the chunks it newly marked. Pure. */
uint64_t fsm_mark_range(uint64_t *bits, uint64_t size, uint32_t cs, uint64_t off, uint64_t len);

/* The free space of every file system mounted from src (a block device: the device
 * itself, or a partition of it), as whole chunks of cs bytes. A file system whose free
 * space cannot be asked (GETFSMAP unsupported or refused, a mount point that leads
 * elsewhere) is listed with its err and copied whole; so is space outside any. Not a
 * block device, or nothing mounted: an empty map. Returns 0 with *ret_map (free with
 * fsm_free) or -ENOMEM. */
int fsm_read(const struct source *src, uint32_t cs, struct fsm_map **ret_map);

/* Whether [off, off + len) of the source lies inside a file system whose free space m
 * knows. */
bool fsm_known(const struct fsm_map *m, uint64_t off, uint64_t len);

/* Says in buf what m skipped and why, per file system ("skipped 1.2 GiB free in ext4
 * /dev/sda1 mounted at /; xfs /dev/sda2 at /srv: copied whole (...)"). */
void fsm_describe(const struct fsm_map *m, char *buf, size_t len);

/* NULL-safe; returns NULL. */
struct fsm_map *fsm_free(struct fsm_map *m);

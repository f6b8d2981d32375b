/* SPDX-License-Identifier: GPL-2.0-only */
/* A tracker's pending set kept across a clean reboot: the state file (one per disk), its
 * checks, and the seal that rewrites it raw once nothing can write any more. The format
 * and what a reboot resume trusts are in docs/ARCHITECTURE.md ("Reboot"). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/util.h"

#define PST_HDR_LEN 4096u
#define PST_MAX_FS 16
#define PST_MAX_EXTENTS 64
#define PST_KEY_LEN 64

enum pst_fs_kind { PST_FS_EXT4 = 1, PST_FS_XFS = 2 };

/* One file system found on the source's disk and what its superblock says about writes:
 * ext4 counts its read-write mounts, the kilobytes ever written and the last write time,
 * all committed at unmount. XFS is recorded only so its presence can be refused. */
struct pst_fs {
	uint64_t start_sector;   /* where it starts on the whole disk */
	uint32_t kind;           /* enum pst_fs_kind */
	uint32_t state;          /* ext4 s_state (1: cleanly unmounted) */
	uint32_t mnt_count;
	uint64_t wtime;
	uint64_t kbytes_written;
	uint8_t uuid[16];
};

/* Which disk and range a pending set belongs to, and the write evidence of the file
 * systems on that disk. */
struct pst_ident {
	char id[NAME_MAX_LEN + 1];
	uint64_t disk_size;      /* the whole disk, bytes */
	uint64_t start_sector;   /* the source on it (a partition's start, else 0) */
	uint64_t src_size;
	uint32_t block_size;     /* the tracking block */
	char disk_key[PST_KEY_LEN]; /* WWID, serial, or a loop device's backing file */
	uint8_t gpt_guid[16];    /* the GPT disk GUID, zeros without GPT */
	uint32_t nfs;
	struct pst_fs fs[PST_MAX_FS];
};

struct pst_state {
	struct pst_ident ident;
	bool sealed;             /* rewritten by the shutdown hook after the last write */
	uint64_t acked_epoch;    /* the tracker's last acknowledged epoch, UINT64_MAX: none */
	uint64_t nblocks;
	uint64_t *pending;       /* ceil(nblocks / 64) words, owned */
};

/* The state file's blocks on its disk, recorded at save for the seal. */
struct pst_extent {
	uint64_t file_off, disk_off, len;
};

struct pst_plan {
	unsigned disk_major, disk_minor;   /* the whole disk the state file lies on */
	uint64_t len;                      /* the state file's length */
	unsigned n;
	struct pst_extent ext[PST_MAX_EXTENTS];
};

/* The length of a state file for nblocks tracking blocks: the header and the bitmap, each
 * a multiple of 4 KiB so the seal can write it with O_DIRECT. */
size_t pst_encoded_len(uint64_t nblocks);
/* Encodes s into buf of exactly pst_encoded_len(s->nblocks) bytes. 0 or -EINVAL. */
int pst_encode(const struct pst_state *s, void *buf, size_t len);
/* Decodes and checks (magic, version, lengths, both checksums) a state file's bytes into
 * *ret (its pending set allocated; pst_state_clear frees it). 0, or -EBADMSG with the
 * reason in why and *ret untouched. */
int pst_decode(const void *buf, size_t len, struct pst_state *ret, char *why, size_t why_len);
/* Frees s's pending set; NULL-safe. */
void pst_state_clear(struct pst_state *s);

/* Whether saved may be resumed on the disk as it is now: sealed, the same disk and range
 * and tracking block, and every file system's write evidence unchanged, with at least one
 * ext4 file system that can show it and no XFS (whose log tern does not read). 0, or
 * -ESTALE with the reason in why. */
int pst_trust(const struct pst_state *saved, const struct pst_ident *now, char *why,
	      size_t why_len);

/* The superblock of a file system starting at start_sector of the whole disk open as fd
 * (O_DIRECT, so nothing cached is read). 1 and *ret filled for ext4 or XFS, 0 for none,
 * or -errno. */
int pst_read_fs(int fd, uint64_t start_sector, struct pst_fs *ret);
/* The identity of source id (the block device src_dev, src_size bytes, tracked in
 * block_size blocks) as the disk shows it now, its file systems' evidence read with
 * O_DIRECT from the whole disk. 0, or -errno with why. */
int pst_probe(const char *id, dev_t src_dev, uint64_t src_size, uint32_t block_size,
	      struct pst_ident *ret, char *why, size_t why_len);

/* Writes s to path (0600, replaced in place: real blocks, never unwritten extents), fsyncs
 * it and records where its blocks lie on the whole disk into *ret_plan (FIEMAP). 0, or
 * -errno with why (a file system without FIEMAP, inline, delayed or unwritten extents:
 * -EOPNOTSUPP, it cannot be sealed). */
int pst_save(const char *path, const struct pst_state *s, struct pst_plan *ret_plan,
	     char *why, size_t why_len);
/* Reads and decodes path. 0, -ENOENT, or -errno / -EBADMSG with why. */
int pst_load(const char *path, struct pst_state *ret, char *why, size_t why_len);
/* Where path's blocks lie on the whole disk (FIEMAP through the partition's start): the
 * blocks the seal wrote, which boot adds to the pending set. 0 or -errno with why. */
int pst_extents(const char *path, struct pst_plan *ret, char *why, size_t why_len);

/* The plan as a small text file (atomically replaced) and back; pst_plan_read checks that
 * the extents cover the file exactly. 0, or -errno / -EBADMSG with why. */
int pst_plan_write(const char *path, const struct pst_plan *p);
int pst_plan_read(const char *path, struct pst_plan *ret, char *why, size_t why_len);
/* Writes buf (p->len bytes, 4 KiB aligned) raw into p's extents through the whole disk's
 * device node with O_DIRECT, then flushes the disk's cache. 0, or -errno with why. */
int pst_seal_write(const struct pst_plan *p, const void *buf, char *why, size_t why_len);

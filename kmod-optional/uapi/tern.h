/* SPDX-License-Identifier: GPL-2.0-only WITH Linux-syscall-note */
/* The ioctl interface of tern.ko, /dev/tern: the only header the module and the agent
 * share. Fixed-width fields only, no pointers, no long, so 32- and 64-bit callers agree;
 * a user buffer travels as a __u64 address. */
#ifndef TERN_UAPI_H
#define TERN_UAPI_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define TERN_UAPI_VERSION 2
#define TERN_DEV_NAME "tern"
#define TERN_ID_LEN 64

/* Register: the tracker already existed with the same identity and was kept. */
#define TERN_REG_RESUMED 0x1u
/* Register: replace a tracker of the same id whose identity differs. */
#define TERN_REG_REPLACE 0x2u

/**
 * struct tern_version - what the module speaks
 * @version: TERN_UAPI_VERSION of the module
 * @ntrackers: trackers registered now
 */
struct tern_version {
	__u32 version;
	__u32 ntrackers;
};

/**
 * struct tern_register - start (or resume) tracking a disk range
 * @version: the caller's TERN_UAPI_VERSION; a mismatch is refused with EPROTO
 * @flags: in: TERN_REG_REPLACE; out: TERN_REG_RESUMED
 * @major: major of the whole disk
 * @first_minor: first minor of the whole disk
 * @start_sector: first 512-byte sector of the tracked range on the whole disk
 * @nr_sectors: sectors in the range
 * @block_size: tracking block in bytes, a power of two from 512 to 1 MiB
 * @reserved: zero
 * @nblocks: out: blocks in the range, bits in a harvest
 * @acked_epoch: out: the last epoch acknowledged to a resumed tracker, or ~0
 * @gen: out: the tracker's generation (see struct tern_ack)
 * @id: NUL-terminated name the tracker is found by (the agent's disk id)
 */
struct tern_register {
	__u32 version;
	__u32 flags;
	__u32 major;
	__u32 first_minor;
	__u64 start_sector;
	__u64 nr_sectors;
	__u32 block_size;
	__u32 reserved;
	__u64 nblocks;
	__u64 acked_epoch;
	__u64 gen;
	char id[TERN_ID_LEN];
};

/**
 * struct tern_harvest - flip the bitmaps and collect the pending set
 * @buf: user address of a bitmap of ceil(nblocks / 64) __u64 words
 * @buf_len: its size in bytes
 * @ndirty: out: bits set in the pending set
 * @id: the tracker
 *
 * Blocks marked since the last harvest join the pending set, which is copied to @buf;
 * it stays pending (and is returned again) until TERN_IOC_ACK.
 */
struct tern_harvest {
	__u64 buf;
	__u64 buf_len;
	__u64 ndirty;
	char id[TERN_ID_LEN];
};

/**
 * struct tern_ack - the receiver acknowledged an epoch: forget the pending set
 * @epoch: the acknowledged epoch, kept for a resuming agent
 * @gen: out: the tracker's new generation
 * @id: the tracker
 *
 * A tracker's generation is a random nonzero value that stays the same exactly as long
 * as its pending set has only grown: it is new when the tracker is registered afresh and
 * changes with every ack, before the pending set is forgotten. An agent that read a
 * chunk under a generation still current knows the chunk has changed since only where
 * the pending set says so.
 */
struct tern_ack {
	__u64 epoch;
	__u64 gen;
	char id[TERN_ID_LEN];
};

/**
 * struct tern_stats - counters of one tracker
 * @nblocks: blocks tracked
 * @ndirty_pending: blocks in the pending set
 * @requests: data-changing requests seen in the range
 * @sectors: sectors they covered
 * @harvests: harvests so far
 * @acked_epoch: last acknowledged epoch, or ~0
 * @gen: the tracker's generation
 * @id: the tracker
 */
struct tern_stats {
	__u64 nblocks;
	__u64 ndirty_pending;
	__u64 requests;
	__u64 sectors;
	__u64 harvests;
	__u64 acked_epoch;
	__u64 gen;
	char id[TERN_ID_LEN];
};

/**
 * struct tern_unregister - stop tracking and free the tracker
 * @id: the tracker
 */
struct tern_unregister {
	char id[TERN_ID_LEN];
};

#define TERN_IOC_MAGIC 0xE7
#define TERN_IOC_VERSION _IOR(TERN_IOC_MAGIC, 0, struct tern_version)
#define TERN_IOC_REGISTER _IOWR(TERN_IOC_MAGIC, 1, struct tern_register)
#define TERN_IOC_HARVEST _IOWR(TERN_IOC_MAGIC, 2, struct tern_harvest)
#define TERN_IOC_ACK _IOWR(TERN_IOC_MAGIC, 3, struct tern_ack)
#define TERN_IOC_STATS _IOWR(TERN_IOC_MAGIC, 4, struct tern_stats)
#define TERN_IOC_UNREGISTER _IOW(TERN_IOC_MAGIC, 5, struct tern_unregister)

#endif

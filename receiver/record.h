/* SPDX-License-Identifier: GPL-2.0-only */
/* The receiver's record of one disk, the one module that knows its format and its files:
 * STATE_DIR/disks/ID.state (0600, `key=value` lines: which agent wrote the target, the
 * target's path, size and chunk size, the last epoch and its Merkle root, whether it is
 * verified and cut over, the last fault met) and STATE_DIR/disks/ID.fps (the fingerprint
 * of every chunk of the last verified epoch, 16 bytes each, in chunk order), and
 * STATE_DIR/disks/ID.ckpt (an unfinished first copy's checkpoint, below). The session
 * writes them; the session, the registry, the enrolment service and ternctl read them.
 *
 * Every file is replaced atomically (temp file, fsync, rename, fsync of the directory),
 * so a reader sees the old record or the new one. What a crash, a disk or a hand cut
 * short or garbled is refused with -errno as a whole, never read in part. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/fp.h"
#include "common/util.h"

/* A disk's last fault, its time stamp and how the next session dealt with it: room for
 * the longest a session composes (a patch refusal and its resume run to ~330 bytes). */
#define REC_EVENT_MAX 640
/* The longest record file read: an event and a target path are its only long lines. */
#define REC_FILE_MAX (64 * 1024)

struct disk_record {
	bool present;  /* a record exists (rec_load); every field below is 0 when not */
	bool verified; /* the target holds epoch `epoch`, whose Merkle root is `root` */
	bool cut_over; /* cut over: the target is no longer written */
	uint64_t size, chunk_size, epoch;
	struct fp root; /* all zeros when not verified */
	char disk[NAME_MAX_LEN + 1];  /* the disk's id */
	char agent[NAME_MAX_LEN + 1]; /* the agent that wrote the target */
	char target[4096]; /* the target's path as configured then */
	char event[REC_EVENT_MAX]; /* one line, "" when none */
};

/* Reads and checks one record file at path (any path: the fuzzer's memfd, a file of a
 * directory walk). Every key must be there once, as a `key=value` line with a valid
 * value, and no other line; the file whole (its last line, the event, ended) and no
 * larger than REC_FILE_MAX; a verified record names its root. 0 with ret filled (present=true); -ENOENT when there is none;
 * -EFBIG when oversized, -EBADMSG when torn or garbled, other -errno when unreadable.
 * ret is written only on success. */
int rec_parse_file(const char *path, struct disk_record *ret);

/* Disk id's record in state_dir: present=false (and 0) when there is none, or -errno as
 * rec_parse_file (-EINVAL for an id that is not a valid name). */
int rec_load(const char *state_dir, const char *id, struct disk_record *ret);

/* Writes rec (its disk names the file) atomically, creating STATE_DIR/disks (0700) when
 * needed. -EINVAL when a field would not read back as written (an invalid name, a line
 * break in the target or event, verified without a root); the old record then stands. */
int rec_save(const char *state_dir, const struct disk_record *rec);

/* Calls fn for every record in STATE_DIR/disks, in directory order, with the id its file
 * name gives and what rec_parse_file made of it (r < 0: rec unset): a damaged record is
 * the callback's to report or skip. A nonzero return from fn stops the walk and is
 * returned. 0 when the directory does not exist; -errno when it cannot be read. */
typedef int rec_visit_fn(void *ctx, const char *id, int r, const struct disk_record *rec);
int rec_foreach(const char *state_dir, rec_visit_fn *fn, void *ctx);

/* The agent that last wrote disk id's target into ret_agent ("" when no record names
 * one), or -errno when its record cannot be read (a target whose owner is unknown must
 * not be handed to anyone). */
int rec_owner(const char *state_dir, const char *id, char *ret_agent, size_t len);

/* The first disk whose record names agent name as its writer, into ret_disk ("" when
 * none). -errno when the directory or a record cannot be read. */
int rec_disk_of_agent(const char *state_dir, const char *name, char *ret_disk, size_t len);

/* Whether another disk's record vouches for what target path holds: verified or cut
 * over, naming the same file (by path, or by device and inode through another path or a
 * link). A new copy would overwrite it while that record still claims it. Records of
 * unfinished copies, and records that cannot be read, vouch for nothing. 1 (ret_other set
 * to that disk's id) when vouched for, 0 when not, -errno when the directory cannot be
 * read. */
int rec_vouched_elsewhere(const char *state_dir, const char *id, const char *path,
			  char *ret_other, size_t len);

/* Fingerprint arrays. In the session's array 16 zero bytes stand for the fingerprint of
 * a zero chunk (of that chunk's length): a fresh anonymous mapping then describes an
 * all-zero disk without committing memory. The .fps file holds real fingerprints. */

/* Writes disk id's .fps file atomically from fps[0..nchunks) of a disk of size bytes in
 * chunk_size chunks, a block at a time (no copy of the whole array), with zero chunks'
 * real fingerprints. 0 or -errno; the old file stands on failure. */
int rec_fps_save(const char *state_dir, const char *id, const struct fp *fps,
		 uint64_t nchunks, uint64_t size, uint32_t chunk_size);

/* Reads disk id's .fps file straight into fps[0..nchunks) (a copy would need as much
 * memory again). -ENOENT when there is none, -EBADMSG when its size is not nchunks
 * fingerprints (fps untouched then), other -errno. */
int rec_fps_load(const char *state_dir, const char *id, struct fp *fps, uint64_t nchunks);

/* Reads len bytes at off of a target into buf: 0 or -errno. */
typedef int rec_read_fn(void *ctx, void *buf, size_t len, uint64_t off);

/* The reconcile read: fingerprints every chunk of a target of size bytes by reading it
 * through read_fn, into fps (zero chunks as 16 zero bytes, and left untouched where they
 * already are: reading a fresh mapping's zeros commits nothing). The agent then sends
 * exactly the chunks that differ. 0 or -errno (fps then partly filled). */
int rec_reconcile(rec_read_fn *read_fn, void *ctx, uint64_t size, uint32_t chunk_size,
		  struct fp *fps);

/* The checkpoint of an unfinished first copy (STATE_DIR/disks/ID.ckpt): which chunks the
 * target holds durably (a bitmap, 1 bit a chunk) and their fingerprints, for a disk of
 * size bytes in chunk_size chunks, taken while the agent's tracker had generation
 * track_gen (0: none that can vouch for the source). The session writes one after making
 * every write before it durable (wr_flush), so a restarted receiver offers exactly these
 * chunks and re-reads nothing of its target. */
struct rec_ckpt {
	uint64_t size;
	uint32_t chunk_size;
	uint64_t track_gen;
	uint64_t held; /* chunks whose bit is set */
};

/* Writes disk id's checkpoint atomically: held (a bitmap of ceil(nchunks / 8) bytes, bit
 * i % 8 of byte i / 8 for chunk i) and, for the chunks it holds only, fps[i] as the session
 * keeps it (16 zero bytes for a zero chunk). ck->held must be the bitmap's count. 0 or -errno (-EINVAL for a shape rec_ckpt_load would refuse); the old checkpoint
 * stands on failure. */
int rec_ckpt_save(const char *state_dir, const char *id, const struct rec_ckpt *ck,
		  const struct fp *fps, const uint8_t *held);

/* Reads disk id's checkpoint into held (ceil(nchunks / 8) bytes) and fps[i] of every held
 * chunk i (the others untouched) for a disk of size bytes in chunk_size chunks, with its
 * generation and count in *ret_ck. The file is checked whole (its digest, size, count,
 * unused bits) before anything is copied: -ENOENT when there is none, -EBADMSG when torn or garbled,
 * -ESTALE when it describes another shape of disk, other -errno; fps, held and *ret_ck are
 * untouched on any failure but an I/O error after the check. */
int rec_ckpt_load(const char *state_dir, const char *id, uint64_t size, uint32_t chunk_size,
		  struct fp *fps, uint8_t *held, struct rec_ckpt *ret_ck);

/* Removes disk id's checkpoint (the first copy is verified, or its fingerprints can no
 * longer be trusted). 0 also when there was none; -errno otherwise. */
int rec_ckpt_remove(const char *state_dir, const char *id);

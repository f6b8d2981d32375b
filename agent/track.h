/* SPDX-License-Identifier: GPL-2.0-only */
/* Change trackers behind one interface: what each epoch of a disk reads and sends, as a
 * change set (changeset.h) for the reader. Backends (track-*.c, an ops table each, see
 * track-ops.h): kmod (tern.ko), ebpf (a BPF program), snap (a snapshot provider's copies,
 * snap.h) record the blocks written since the last harvest and keep them pending until the
 * receiver acknowledges an epoch; scan records nothing, and each epoch re-reads the disk
 * and sends what differs from the receiver's fingerprints. kmod and ebpf keep recording
 * between agents; a snapshot ends with its agent. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/changeset.h"
#include "agent/snap.h"

struct fp;
struct source;
struct track;

/* Every backend, in the order auto tries them (never scan, the fallback, nor snap, which
 * --snapshot picks): X(KIND, name) for a file track-name.c defining track_name_ops. The
 * enum, the name table and the dispatch table are made from this one list. */
#define TRACK_BACKENDS(X) X(KMOD, kmod) X(EBPF, ebpf) X(SCAN, scan) X(SNAP, snap)

#define TRACK_KIND_(kind, name) TRACK_##kind,
/* --tracker; snap is picked through --snapshot, never by name. */
enum track_kind { TRACK_AUTO, TRACK_BACKENDS(TRACK_KIND_) TRACK_NKINDS };
#undef TRACK_KIND_

/* "auto", or a backend's name ("kmod", "ebpf", "scan", "snap"). */
const char *track_kind_name(enum track_kind kind);
/* The kind --tracker name asks for (not snap). Returns 0, or -EINVAL. */
int track_kind_parse(const char *name, enum track_kind *ret_kind);

struct track_conf {
	enum track_kind kind;      /* --tracker */
	enum snap_kind snapshot;   /* --snapshot */
	const char *snap_store;    /* --snapshot-cow, or NULL */
	uint32_t chunk_size;
	uint32_t block_size;       /* the tracking block, a divisor of chunk_size */
	const char *pin_root;      /* where the eBPF tracker pins, one directory per disk */
	unsigned interval_s;       /* the scan tracker's period, for its explanation */
	/* The scan tracker's block sums (blocksum.h): bytes left of --block-sums-memory over
	 * all disks, taken from as each disk starts. NULL: none (a one-shot copy). */
	uint64_t *sums_left;
	uint32_t fault_sum_blind;  /* test seam (agent_opts): block + 1, 0: none */
};

/* Picks and starts one tracker per source, before the first read of any, so nothing
 * written during the full copy is missed: a snapshot provider when --snapshot asks for one
 * (or auto finds one), else the kind asked for, where auto prefers tern.ko when loaded,
 * then eBPF, then scan. Logs what it picked and why it passed over the others; tracking an
 * earlier agent left for a tracker not picked is removed. ret_tracks (n entries) is filled
 * on success only. Returns 0 or -errno (logged). */
int track_pick(const struct track_conf *conf, struct source **srcs, unsigned n,
	       struct track **ret_tracks);
/* Starts the scan tracker on src alone, silently (a one-shot copy). Returns 0 or -errno. */
int track_start_scan(struct source *src, uint32_t chunk_size, struct track **ret_t);

/* Starts tracker conf->kind (a backend, not auto) on src alone, quietly: a fresh one, or
 * the one an earlier agent left recording (track_resumed says which). Returns 0, or -errno
 * with a one-line reason in why. */
int track_start_one(const struct track_conf *conf, struct source *src, struct track **ret_t,
		    char *why, size_t why_len);
/* Whether t took over tracking an earlier agent left, and how many blocks it tracks. */
bool track_resumed(const struct track *t);
uint64_t track_nblocks(const struct track *t);
/* A reboot's save and restore (persist.h): the pending set as it stands, unharvested
 * writes included, into out (track_nblocks bits) with the last acknowledged epoch; and a
 * fresh tracker's pending set seeded with pending and its last acknowledged epoch set, as
 * if it had tracked since. 0, -EOPNOTSUPP for a backend that keeps nothing, or -errno. */
int track_peek(struct track *t, uint64_t *out, uint64_t *ret_acked);
int track_seed(struct track *t, const uint64_t *pending, uint64_t acked_epoch);

/* The change set of t's next epoch. prev: the receiver's fingerprints (NULL: it holds
 * nothing, send everything); full: read the whole disk (a reconciliation, --verify full),
 * then the tracker's marks only count what it missed; bad: chunks an earlier epoch could
 * not read (a bitmap, or NULL), read again. Harvests: the changes since the last call join
 * the pending set (a snapshot provider takes its snapshot). *ret_cs points into t and prev,
 * valid until the next call. Returns 0 or -errno. */
int track_changes(struct track *t, const struct fp *prev, bool full, const uint64_t *bad,
		  struct changeset *ret_cs);
/* The receiver acknowledged epoch: forget the pending set, remember the epoch. */
int track_acked(struct track *t, uint64_t epoch);
/* The source grew from old_size to its size now (src->size already says so): the tracker
 * follows without a gap (a recording backend's new instance starts before the old one's
 * last harvest, whose blocks stay pending until the next ack), and until then every chunk
 * from the old end on is read; a backend started at the new size already (the receiver
 * registered the disk smaller than its source) just goes on. Returns 0 or -errno (logged):
 * the old tracker goes on at the old size. */
int track_grow(struct track *t, uint64_t old_size);
/* Whether t's pending set covers every change since the epoch before next_epoch, which the
 * receiver holds, so a first epoch of a connection may read only those. */
bool track_continuous(const struct track *t, uint64_t next_epoch);
/* t's tracking generation: a random nonzero value that stays the same exactly as long as
 * its pending set has only grown (no fresh start, no acknowledgement clearing it), kept
 * with the tracking itself so an agent that resumes it reports the same; 0 for a tracker
 * that has none (scan, a snapshot). Chunks read under the generation it reports
 * now have changed since only where its pending set says so (or it overflowed, when the
 * set is everything). */
uint64_t track_gen(const struct track *t);
/* The backend's name ("kmod", "ebpf", "scan", or the snapshot provider's, "dm") and its
 * PROTO_TRACKER_* for STATUS reports. */
const char *track_name(const struct track *t);
uint8_t track_proto(const struct track *t);
/* Stops and frees; with forget the kernel side (pins, the module's tracker) goes too,
 * else it keeps recording for the next agent. Snapshots always go. NULL-safe, returns
 * NULL. */
struct track *track_stop(struct track *t, bool forget);

/* SPDX-License-Identifier: GPL-2.0-only */
/* Snapshot providers behind one interface: each epoch reads a point-in-time image of the
 * source, and what the provider copied out since the last one are the changed blocks.
 * dm (snap-dm.c: device-mapper snapshots of a device-mapper source) today. The tracker
 * layer (track-snap.c) is the only user of a running snapshot; the session only cleans up
 * and names the kind. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct source;
struct snap;

/* Every provider, in the order auto tries them: X(KIND, name) for a file snap-name.c
 * defining snap_name_ops. The enum, the name table and the dispatch table are made from
 * this one list. */
#define SNAP_PROVIDERS(X) X(DM, dm)

#define SNAP_KIND_(kind, name) SNAP_##kind,
/* --snapshot: auto is a provider when every source suits it and a store is given, else
 * none (the live source). */
enum snap_kind { SNAP_AUTO, SNAP_NONE, SNAP_PROVIDERS(SNAP_KIND_) SNAP_NKINDS };
#undef SNAP_KIND_

/* "auto", "none", "dm". */
const char *snap_kind_name(enum snap_kind kind);
/* The kind named name. Returns 0, or -EINVAL for no kind. */
int snap_kind_parse(const char *name, enum snap_kind *ret_kind);

/* Undoes what an agent that did not stop cleanly left for disk id read from path, for
 * every provider (dm: gives an origin left suspended or switched its own table back,
 * removes the tern-ID-* devices), logging each. Call it before opening path: an origin
 * left suspended would hang any read. Returns 0 (also when there was nothing) or -errno. */
int snap_cleanup(const char *id, const char *path);
/* Which provider want means for the n sources, with store (--snapshot-cow, or NULL): 0 with
 * *ret_kind a provider whose store has been checked (see snap-dm.c: not in use, not on a
 * source); 1 when none is wanted (auto: not every source suits one, or no store; said);
 * -errno, logged, when the provider asked for cannot serve. */
int snap_pick(enum snap_kind want, const char *store, struct source *const *srcs, unsigned n,
	      enum snap_kind *ret_kind);
/* Starts provider kind on src (borrowed, must outlive it), slot of nslots sharing store,
 * in blocks of block_size bytes. Returns 0 or -errno with a reason in why; on failure
 * everything made is undone. */
int snap_start(enum snap_kind kind, struct source *src, uint32_t block_size, const char *store,
	       unsigned slot, unsigned nslots, struct snap **ret_s, char *why, size_t why_len);
/* Takes a new snapshot and retires the previous one: *ret_fd reads the new one (owned by
 * the provider, valid until the next take or stop), the retired one's copies join the
 * pending set (*ret_pending, ceil(nblocks / 64) words, valid until the next call).
 * *ret_overflow: the changes are unknown until an epoch is acknowledged (a snapshot
 * overflowed its store, or the store could not be read): read the whole disk. */
int snap_take(struct snap *s, int *ret_fd, const uint64_t **ret_pending, bool *ret_overflow);
/* The receiver acknowledged epoch: forget the pending set and any overflow. */
int snap_acked(struct snap *s, uint64_t epoch);
/* The last acknowledged epoch (UINT64_MAX: none). */
uint64_t snap_acked_epoch(const struct snap *s);
uint64_t snap_nblocks(const struct snap *s);
/* The provider's name, and its PROTO_TRACKER_* for STATUS reports. */
const char *snap_name(const struct snap *s);
uint8_t snap_proto(const struct snap *s);
/* Removes the snapshot and everything made for it: a snapshot never outlives its agent.
 * NULL-safe, returns NULL. */
struct snap *snap_stop(struct snap *s);

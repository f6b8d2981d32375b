/* SPDX-License-Identifier: GPL-2.0-only */
/* Test launches while replication continues (`ternctl launch NAME --test`): the agent's
 * session clones its targets at an epoch boundary (receiver/clone.h) and goes on at once;
 * a thread of the launch then adapts the clone for a platform profile (adapt.h, with the
 * boot marker) and, when asked, boots it under QEMU (boot.h). The targets are only read.
 * Everything a launch makes lives under STATE_DIR/launch/AGENT/ID/ (clones on another
 * file system than the state dir go beside their target, in .tern-launch/AGENT/ID/, to be
 * reflinks; thin snapshots of thin LVM targets in the target's volume group), listed in
 * its `clones` file, until `ternctl launch NAME --discard`. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "common/fp.h"

struct rcv_server;
struct rcv_cutover;
struct prof;
struct launch;
struct launches;

enum launch_state {
	LAUNCH_WAITING,  /* for the agent's session to reach an epoch boundary */
	LAUNCH_CLONING,
	LAUNCH_ADAPTING,
	LAUNCH_BOOTING,
	LAUNCH_PASSED,
	LAUNCH_FAILED,
};

struct launch_req {
	char agent[65];
	const struct prof *prof;
	bool boot_check;
	bool kvm;              /* boot under KVM rather than TCG */
	unsigned wait_s;       /* for an epoch boundary */
	unsigned boot_timeout_s;
};

/* The launches of a receiver whose state dir is state_dir (kept, not copied). NULL out
 * of memory. */
struct launches *launches_new(const char *state_dir);
/* Cancels running boot checks, waits for every launch's thread (an adaptation under way
 * is not interruptible: it finishes first) and frees. NULL-safe; returns NULL. */
struct launches *launches_free(struct launches *ls);

/* From an API thread: asks agent rq->agent's live session for a test launch and waits,
 * up to rq->wait_s, until its targets are cloned at an epoch boundary; the adaptation
 * and boot go on in the launch's own thread. Returns 0 with *ret_info (the launch as in
 * launch_snapshot, the caller's), or -errno with a one-line why: -ENOENT (no live
 * session), -EBUSY (a launch of that agent is under way), -ETIMEDOUT (no epoch boundary
 * in time: withdrawn, nothing made), -EIO (the clone failed; nothing left). */
int launch_test(struct rcv_server *srv, const struct launch_req *rq, json_object **ret_info,
		char *why, size_t why_len);

/* Removes every test launch of agent (clones, reports, console logs), also those a
 * previous run of the receiver made. *ret_n gets how many. -ENOENT when there are none,
 * -EBUSY while one is under way, with why; a launch whose thin snapshot lvremove refused
 * (in use) keeps its directory and clones file for the next discard, with the error. */
int launch_discard(struct launches *ls, const char *agent, unsigned *ret_n, char *why,
		   size_t why_len);

/* Every launch since the receiver started, newest last, as a JSON array: agent, id,
 * profile, boot_check, state, result, address, started, the epoch, root and clone of each
 * disk, timings, and the paths of the launch's directory, adaptation report and console
 * log. The caller owns it; NULL out of memory. */
json_object *launch_snapshot(struct launches *ls);

/* From an API thread, after agent's cutover was proven (req: the proof and the targets):
 * adapts the system disk (the agent's first) for profile p. On a reflink of the target
 * beside it, which replaces the target (rename) only once the adaptation and, with
 * boot_check, the boot check passed; where no reflink can be made, in place, with the
 * undo copy kept, and undone when the boot check fails. Undo copies, report and console
 * log stay in STATE_DIR/launch/AGENT/cutover-ID. Returns 0 or -errno; either way
 * *ret_text (malloc'd) says the proven root, what the adaptation changed (or why it
 * failed, and that the proven target is left as it was) and the adapted root. */
int launch_cutover_adapt(struct rcv_server *srv, const char *agent,
			 const struct rcv_cutover *req, const struct prof *p, bool boot_check,
			 bool kvm, char **ret_text);

/* ---- the session's side ---- */

/* One target as the session holds it between epochs. */
struct launch_disk {
	const char *id;
	const char *path;
	uint64_t epoch; /* the verified epoch the target holds */
	struct fp root; /* its Merkle root */
};

/* In the session thread, between epochs: clones the n targets (each after the other;
 * a reflink takes milliseconds, a thin snapshot about a second, a copy its size's time,
 * said up front), records what each clone holds, and starts the launch's thread. Takes
 * over l (it stays in ls). When a clone fails, those made so far are removed. */
void launch_take(struct launches *ls, struct launch *l, const struct launch_disk *d, size_t n);
/* The session that was to serve l ends first: l fails with why. */
void launch_abort(struct launches *ls, struct launch *l, const char *why);

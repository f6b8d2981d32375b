/* SPDX-License-Identifier: GPL-2.0-only */
/* The receiver's record of one disk, STATE_DIR/disks/ID.state (0600): which agent wrote
 * its target, the size and chunk size, the last epoch, whether it is verified and cut
 * over, and the last fault met. `key=value` lines; written by the session, read back by
 * the session (resume, ownership) and at start-up for the operator API. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "common/util.h"

/* A disk's last fault, its time stamp and how the next session dealt with it: room for
 * the longest a session composes (a patch refusal and its resume run to ~330 bytes). */
#define REC_EVENT_MAX 640

struct disk_record {
	bool present, verified, cut_over;
	uint64_t size, chunk_size, epoch;
	char agent[NAME_MAX_LEN + 1]; /* "" when the record names none */
	char target[4096]; /* the target's path as configured then ("" when none) */
	char event[REC_EVENT_MAX];
};

/* Reads the record at path: present=false (and 0) when there is none; -errno when it
 * cannot be read. Lines it does not know, or whose value does not parse, are ignored. */
int rec_load(const char *path, struct disk_record *ret);

/* SPDX-License-Identifier: GPL-2.0-only */
/* Private to receiver/launch.c (test launches) and launch-cutover.c (the cutover's
 * adaptation): a launch, the receiver's list of them, and what both files call. */
#pragma once
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/fp.h"
#include "common/util.h"
#include "receiver/clone.h"
#include "receiver/launch.h"

#define LAUNCH_MAX_DISKS 8

struct ldisk {
	char id[NAME_MAX_LEN + 1];
	uint64_t epoch;
	struct fp root;
	struct clone_result c;
};

struct launch {
	struct launch_req rq;
	char id[40];
	char dir[4096];     /* STATE_DIR/launch/AGENT/ID */
	char report[4200];  /* the adaptation's report, once written */
	char console[4200]; /* the boot check's console log, once started */
	enum launch_state state;
	int err; /* why it failed before its thread started: -ENOENT, -ETIMEDOUT or -EIO */
	char result[1024];
	char address[64];
	time_t started;
	double clone_s, adapt_s, boot_s;
	struct ldisk disks[LAUNCH_MAX_DISKS];
	size_t ndisks;
	bool has_thread;
	pthread_t thread;
	struct launches *ls;
	struct launch *next;
};

struct launches {
	char state_dir[4096];
	pthread_mutex_t lock; /* guards the list and every launch's fields */
	pthread_cond_t cv;    /* a launch changed state */
	bool stopping;
	struct launch *head;
};

/* Picks a fresh ID (UTC time, a suffix when taken) and makes DIR. Under ls->lock. */
int launch_make_dir(struct launches *ls, struct launch *l);
/* boot_opts.cancelled of a launch's boot check: true once the receiver stops (ctx: the
 * struct launches). */
bool launch_boot_cancelled(void *ctx);

/* SPDX-License-Identifier: GPL-2.0-only */
/* What the dm-snapshot provider's files share (snap-dm.c: the devices' life across
 * epochs; snap-dm-store.c: which source and store may serve; snap-dm-cleanup.c: what a
 * killed agent left): the devices' name prefix and the entries of snap_dm_ops. Included
 * only by agent/snap-dm*.c. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct source;

/* Every device the provider makes is named PREFIX "ID-suffix". */
#define PREFIX "tern-"

/* Removes device-mapper device dev (what names it in the log); 0 or -errno, logged. */
int remove_dev(int ctl, dev_t dev, const char *what);

/* ---- snap-dm-store.c ---- */

/* Whether cow may serve as the n sources' snapshot store; 0 or -errno with why. */
int snap_dm_check_cow(const char *cow, struct source *const *srcs, unsigned n, char *why,
		      size_t why_len);
/* Whether src is a device-mapper block device. */
bool snap_dm_source_ok(const struct source *src);

/* ---- snap-dm-cleanup.c ---- */

/* Removes what an agent that did not stop cleanly left for disk id; 0 or -errno. */
int snap_dm_cleanup(const char *id, const char *path);

/* SPDX-License-Identifier: GPL-2.0-only */
/* Quiescing the source for the final epoch: the operator's pre-cutover hook, and FIFREEZE
 * of every filesystem mounted from a source block device, thawed by the same process in
 * every path — explicitly, or by a watchdog thread when the freeze outlives its limit —
 * and, for the paths no code of ours runs in (SIGKILL, a crash, a stopped or hung agent),
 * by a guardian process that holds each mount before it is frozen. */
#pragma once
#include <stdbool.h>

#include "agent/source.h"

struct quiesce;

/* Runs cmd with /bin/sh -c and waits for it. 0 when it exits 0, else -EIO (logged). */
int qz_run_hook(const char *cmd);
/* Freezes the filesystems mounted from any of the sources; the watchdog thaws them after
 * limit_s seconds if qz_thaw has not. Returns 0 (possibly with nothing to freeze, said in
 * the log) or -errno with everything already thawed. */
int qz_freeze(struct source **srcs, unsigned n, unsigned limit_s, struct quiesce **ret_qz);
/* True when the watchdog had to thaw: what was read while "frozen" may not be quiesced. */
bool qz_watchdog_fired(struct quiesce *qz);
/* Thaws what is still frozen and stops the watchdog and the guardian; NULL-safe, returns
 * NULL. */
struct quiesce *qz_thaw(struct quiesce *qz);

/* The guardian's hidden command: "tern-agent __thaw-guard LIMIT_S", its socket on fd 3.
 * Internal; started by qz_freeze. Returns the exit status. */
#define QZ_GUARD_CMD "__thaw-guard"
int qz_guard_main(int argc, char **argv);

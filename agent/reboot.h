/* SPDX-License-Identifier: GPL-2.0-only */
/* `tern-agent track`: the eBPF tracker across a clean reboot (persist.h holds the state
 * file). --start at early boot starts each disk's tracker and seeds it from the sealed
 * state when it can be trusted; --save at shutdown writes the state and the seal's plan;
 * --seal, from the systemd-shutdown hook once nothing can write, rewrites it raw and
 * sealed; --consume drops it once the system runs, so a crash never reuses it. */
#pragma once

struct agent_opts;

enum rb_mode { RB_NONE, RB_START, RB_SAVE, RB_SEAL, RB_CONSUME };

/* Runs mode for every disk of o (its tracker, chunk size, pin root). state_dir holds the
 * state files (on a file system mounted read-only at early boot: the root), run_dir the
 * seal plans (a tmpfs that outlives the file systems: /run). Logs each disk's outcome;
 * --start's refusals fall back (the agent reconciles) and are not errors. Returns 0, or
 * -errno when some disk could not be handled. */
int rb_run(const struct agent_opts *o, enum rb_mode mode, const char *state_dir,
	   const char *run_dir);

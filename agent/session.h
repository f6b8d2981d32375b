/* SPDX-License-Identifier: GPL-2.0-only */
/* The agent's side of a replication session: handshake, disk registration, streaming the
 * read pipeline's frames, and waiting for the receiver's durable, verified acknowledgement. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "agent/reader.h"

struct agent_disk {
	char *id;
	char *path;
};

struct agent_opts {
	const char *receiver;    /* HOST:PORT */
	const char *credentials; /* bundle path */
	const char *name;        /* agent name */
	struct agent_disk *disks;
	unsigned ndisks;
	struct rd_opts rd;
	int connect_timeout_ms;
	int ack_timeout_ms;      /* how long to wait for durability (fdatasync of a big target) */
	bool progress;           /* print progress lines to stderr */
};

/* Copies every disk once, end to end, and returns 0 only when the receiver has reported
 * each one durable and its Merkle root equal to ours. Prints a summary on stdout. On
 * failure logs one line saying why and returns -errno. */
int session_run_once(const struct agent_opts *o);

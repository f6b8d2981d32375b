/* SPDX-License-Identifier: GPL-2.0-only */
/* The receiver's side of a replication session: one thread per connected agent. */
#pragma once
#include <pthread.h>
#include <stdbool.h>
#include <openssl/ssl.h>

struct rcv_target {
	char *id;
	char *path;
	bool busy; /* held by a session; guarded by rcv_server.lock */
};

struct rcv_server {
	const char *state_dir;
	SSL_CTX *ctx;
	struct rcv_target *targets;
	unsigned ntargets;
	pthread_mutex_t lock;
	unsigned sessions; /* live session threads; guarded by lock */
	pthread_cond_t idle;
};

/* Serves one accepted connection (takes ownership of fd) until the agent says BYE, the
 * connection drops, or the agent breaks a rule (it then gets an ERROR frame first). */
void rcv_session_run(struct rcv_server *srv, int fd, const char *peer_addr);

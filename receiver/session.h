/* SPDX-License-Identifier: GPL-2.0-only */
/* The receiver's side of a replication session: one thread per connected agent. */
#pragma once
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <openssl/ssl.h>

#include "common/fp.h"
#include "receiver/enrol.h"

struct registry;
struct lsn_conn;

struct rcv_target {
	char *id;
	char *path;
	char *agent; /* the only agent that may write it (--target ID=PATH,agent=NAME), or NULL */
	uint64_t max_size; /* ,max-size=: a file target grows no larger (0: its free space) */
	/* ,reconcile=yes: with no record of its own, the target holds an earlier copy of the
	 * disk (a failback to the original disk): it is fingerprinted, not overwritten whole. */
	bool reconcile;
	bool busy; /* held by a session; guarded by rcv_server.lock */
	/* Written only by the session holding the target (busy): whether a session of this
	 * process held it before, and how the last one ended ("" for an orderly BYE). */
	bool seen;
	char last_end[200];
	bool fault_noted; /* the last session recorded its own fault in the disk's record */
};

/* A cutover asked for through the operator API; owned by the asking API thread (which
 * frees it once rcv_cutover returns) and filled in by the agent's session while it is
 * still the handle's request. Guarded by rcv_server.lock. */
struct rcv_cutover {
	uint8_t verify;  /* enum proto_verify */
	bool done;
	int result;      /* 0 or -errno */
	char proof[4096];
	/* Once done with 0: the cut-over targets, in the agent's disk order, with the
	 * proven root each holds (for cutover --adapt). */
	unsigned ndisks;
	struct rcv_cut_disk {
		char id[65];
		char path[4096];
		struct fp root;
		uint64_t size;
		uint32_t chunk_size;
	} disks[8];
};

/* What the API can see of a live session. Guarded by rcv_server.lock. */
struct rcv_handle {
	char agent[65];
	int efd;                   /* eventfd that wakes the session for a request */
	struct rcv_cutover *req;   /* the request being served, or NULL */
	/* Counts requests handed over: a session tells its own request from a later one
	 * that may have been allocated at the same address after a withdrawal. */
	uint64_t req_gen;
	/* The operator changed this agent's wishes (pause, rate): pass them on. */
	bool ctl_pending;
	/* The operator asked to close this session (ternctl disconnect). */
	bool kick;
	/* A test launch waiting for this session's next epoch boundary (receiver/launch.h),
	 * or NULL; launch_pending mirrors it for a lock-free look on every frame. */
	struct launch *launch;
	bool launch_pending;
	struct rcv_handle *next;
};

struct rcv_server {
	const char *state_dir;
	SSL_CTX *ctx;
	struct rcv_target *targets;
	unsigned ntargets;
	pthread_mutex_t lock;
	unsigned sessions; /* live session threads; guarded by lock */
	pthread_cond_t idle;
	struct rcv_handle *handles;
	pthread_cond_t cut_cv; /* signalled when a cutover request is done, or on shutdown */
	bool stopping;         /* shutting down: a waiting cutover request gives up */
	struct registry *reg;  /* what the operator API shows; has its own lock */
	struct launches *launches; /* test launches (receiver/launch.h); has its own lock */
	struct enrol_shared shared; /* how the shared agent bundle is recognised */
	bool no_shared;        /* serve --no-shared-bundle: the shared bundle is refused */
	/* Chunk fingerprints and bitmaps of all sessions together stay under fp_budget
	 * bytes (--fp-memory); fp_used is what they hold now. Guarded by lock. */
	uint64_t fp_budget;
	/* Compression streams granted to live sessions (a decoder window of
	 * 2^CODEC_STREAM_WLOG bytes each), at most RCV_STREAMS_TOTAL. Guarded by lock. */
	unsigned streams_used;
	uint64_t fp_used;
};

/* Asks the session of agent `agent` to cut over and waits up to timeout_s for its proof.
 * Returns 0 with the proof in req->proof, or -errno with the reason there. */
int rcv_cutover(struct rcv_server *srv, const char *agent, struct rcv_cutover *req,
		unsigned timeout_s);

/* Hands test launch l to agent's newest live session, which clones its targets at its
 * next epoch boundary (launch_take) or fails l when it ends first (launch_abort).
 * 0, or -ENOENT (no live session) / -EBUSY (one is already waiting) with why. */
int rcv_launch(struct rcv_server *srv, const char *agent, struct launch *l, char *why,
	       size_t why_len);
/* Takes l back from the session it waits in: true when it was still waiting (nothing
 * was cloned), false when the session has taken or failed it already. */
bool rcv_launch_withdraw(struct rcv_server *srv, struct launch *l);

/* Wakes the sessions of agent so they pass the operator's wishes in srv->reg on. */
void rcv_poke(struct rcv_server *srv, const char *agent);

/* Closes every live session of agent at once (it gets an ERROR saying so, and reconnects
 * unless it is revoked). Returns how many, or -ENOENT when none is live. */
int rcv_disconnect(struct rcv_server *srv, const char *agent);

/* Serves one accepted connection (takes ownership of fd) until the agent says BYE, the
 * connection drops, or the agent breaks a rule (it then gets an ERROR frame first). lc is
 * the connection's place in the listener: it leaves the handshake limits once HELLO is in. */
void rcv_session_run(struct rcv_server *srv, struct lsn_conn *lc, int fd, const char *peer_addr);

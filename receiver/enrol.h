/* SPDX-License-Identifier: GPL-2.0-only */
/* The receiver's side of enrolment: join tokens (`tern-receiver token create`), the
 * enrolment listener of `serve --enrol-listen`, which signs a joining agent's key, and
 * revocation (`tern-receiver agent revoke|list`), checked at every replication handshake. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/tls.h"

struct conn;
struct enrol_listener;
struct lsn_limits;

/* File and directory names inside the state directory. */
#define ENROL_TOKENS_DIR "tokens"   /* one record per token, named by its id in hex */
#define ENROL_ISSUED_FILE "issued"  /* one line per certificate issued by enrolment */
#define ENROL_REVOKED_FILE "revoked" /* one line per revoked agent name */
#define ENROL_LOCK_FILE "enrol.lock" /* serialises changes to the lists here */
/* The SHA-256 of every certificate of the shared agent bundle init made, one hex line
 * each: the one mark of the shared credential, which enrolment can never issue (its
 * certificates are new, signed on request, and never listed here). */
#define ENROL_SHARED_FILE "shared-bundle.sha256"

/* `tern-receiver token ...` and `tern-receiver agent ...`: argv[0] is the word after the
 * program name. Print their own errors; return the process exit code. */
int enrol_cmd_token(int argc, char **argv);
int enrol_cmd_agent(int argc, char **argv);

/* Starts the enrolment listener on hostport (receiver/listener.h: lim's deadline and
 * descriptor reserve, at most 16 handshakes and 2 per address), each connection in a thread
 * of its own with a hard deadline. repl_fd is the replication listener, whose port is
 * returned to joining agents. Logs "enrolment listening on HOST:PORT". 0 or -errno (logged). */
int enrol_listener_start(const char *state_dir, const char *hostport, int repl_fd,
			 const struct lsn_limits *lim, struct enrol_listener **ret_l);
/* Stops accepting, ends connections in flight and waits for them; NULL-safe, returns NULL. */
struct enrol_listener *enrol_listener_stop(struct enrol_listener *l);

/* Whether the peer certificate of c has been revoked (DIR/revoked, re-read when it
 * changed), under its common name and, when name is not NULL, under the agent name it
 * claims: a revocation applies to every credential claiming the name. Returns 0 when not,
 * -EACCES when revoked, or -EIO when the list cannot be read (refused too: the list is
 * not trusted blindly); why gets a one-line reason. */
int enrol_check_revoked(const char *state_dir, struct conn *c, const char *name, char *why,
			size_t why_len);

/* Whether agent name holds a certificate from enrolment that is not revoked (its name is
 * then bound to that certificate). 0 or -errno (logged). */
int enrol_name_has_cert(const char *state_dir, const char *name, bool *ret);

/* The shared bundle's marks, as loaded by enrol_shared_ensure. */
struct enrol_shared {
	uint8_t (*sha)[TLS_PIN_LEN];
	size_t n;
};

/* Adds the certificate of DIR/agent-bundle.pem to DIR/shared-bundle.sha256 when it is
 * not listed yet (a state directory made by an older init has no list; a bundle re-made
 * by init after it was removed joins the old one), then loads the list into ret (empty
 * when there is neither). 0 or -errno (logged). */
int enrol_shared_ensure(const char *state_dir, struct enrol_shared *ret);
/* Frees what ret holds; NULL-safe. */
void enrol_shared_clear(struct enrol_shared *sh);
/* Whether the peer certificate of c is one of the shared bundle's. */
bool enrol_shared_is(const struct enrol_shared *sh, struct conn *c);

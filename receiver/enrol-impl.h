/* SPDX-License-Identifier: GPL-2.0-only */
/* What the receiver's enrolment files share (enrol.c: the enrolment service; enrol-token.c:
 * join tokens; enrol-revoke.c: the lists of issued and revoked agents): limits, the token
 * record and the helpers for the state directory. Included only by receiver/enrol*.c. */
#pragma once
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/enrol.h"
#include "common/util.h"

#define TTL_DEFAULT_S 3600
#define TTL_MAX_S (30 * 86400)
#define RECORD_MAX 4096
#define LIST_MAX (16u << 20)    /* issued and revoked lists */

/* One token's record, DIR/tokens/ID: only a hash of the secret is kept. */
struct token_rec {
	uint8_t secret_sha[32];
	int64_t created;
	int64_t expires;
	int64_t used; /* 0: not used */
	char name[NAME_MAX_LEN + 1];    /* bound agent name, or "" */
	char used_by[NAME_MAX_LEN + 1]; /* the agent it enrolled */
};

/* ---- the state directory (enrol-revoke.c) ---- */

/* DIR/NAME into buf; -ENAMETOOLONG (logged) when it does not fit. */
int enrol_path_in(char buf[PATH_MAX], const char *dir, const char *name);
/* Takes DIR/enrol.lock exclusively. Returns the fd to give to enrol_lock_drop, or -errno
 * (logged). */
int enrol_lock_take(const char *dir);
/* Releases a lock from enrol_lock_take; a negative fd is ignored. */
void enrol_lock_drop(int fd);
/* t as "YYYY-MM-DD HH:MM:SS UTC" (or "@t") in buf; returns buf. */
const char *enrol_fmt_time(int64_t t, char *buf, size_t len);
/* The wall clock in whole seconds. */
int64_t enrol_now_s(void);
/* A time in seconds since the epoch, decimal; -EINVAL when it is not one. */
int enrol_parse_time(const char *s, int64_t *ret);
/* Appends a line to a list file by rewriting it atomically; the caller holds the lock.
 * 0 or -errno (-EFBIG past LIST_MAX). */
int enrol_list_append(const char *path, const char *line);
/* Waits until the clock has passed name's latest revocation (see enrol-revoke.c).
 * 0 or -errno (logged). */
int enrol_wait_past_revocation(const char *dir, const char *name);
/* Whether an unbound token may not enrol name: 1 with the reason in why, 0 when the name is
 * free, or -errno (logged). */
int enrol_name_taken(const char *dir, const char *name, char *why, size_t why_len);

/* ---- token records (enrol-token.c) ---- */

/* The record as text into buf; its length, or -ENOSPC. */
int enrol_token_rec_format(const struct token_rec *t, char *buf, size_t len);
/* Parses a record strictly (text is changed in place); 0 or -EBADMSG. */
int enrol_token_rec_parse(char *text, struct token_rec *ret);
/* DIR/tokens/ID-in-hex into buf; 0 or -ENAMETOOLONG. */
int enrol_token_path(char buf[PATH_MAX], const char *dir, const uint8_t id[ENROL_ID_LEN]);

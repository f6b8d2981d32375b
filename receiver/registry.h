/* SPDX-License-Identifier: GPL-2.0-only */
/* What the receiver knows of every agent and disk it has served since it started, for
 * the operator API: figures it measures itself (bytes received, epochs verified, how long
 * making them durable took), figures only the agent knows (its STATUS reports: progress,
 * churn, throughput, tracker), the operator's wishes for each agent (paused, bandwidth
 * limit), and a forecast of whether replication converges. One lock guards it all;
 * sessions update it per frame, the API reads consistent snapshots. Entries live until the
 * receiver exits, so a disconnected agent and its last error stay visible; only an agent
 * that never owned a disk here is dropped, REG_EXPIRE_DEFAULT_S after it left. */
#pragma once
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "common/proto.h"

struct reg_disk;
struct reg_agent;
struct registry;

/* How long an agent that registered no disk stays listed after its last session ended. */
#define REG_EXPIRE_DEFAULT_S 600

struct registry *reg_new(void);
/* Sets that time (tests shorten it). */
void reg_set_expiry(struct registry *reg, uint64_t seconds);
/* NULL-safe; returns NULL. Only once no session uses it. */
struct registry *reg_free(struct registry *reg);

/* A session of agent name connected from peer. Returns its entry (stable until reg_free),
 * or NULL out of memory (the session then goes on unobserved). */
struct reg_agent *reg_connect(struct registry *reg, const char *name, const char *peer);
/* What agent a's live session is: whether it presented the shared agent bundle (rather
 * than a certificate of its own; status shows which agents still depend on it), and how
 * many compression streams it asked for and was granted (fewer granted, the receiver's
 * 16 being in use by other sessions, means more on the wire). */
void reg_set_session(struct registry *reg, struct reg_agent *a, bool shared, unsigned asked,
		     unsigned granted);
/* The session ended; why is "" for an orderly BYE, else the reason; refused: it ended in
 * a refusal (the agent then reads as error), not a lost link (disconnected). */
void reg_disconnect(struct registry *reg, struct reg_agent *a, const char *why, bool refused);

/* Disk id of agent a was registered as disk_no: size, the epoch expected next, the last
 * verified epoch (-1: none) and whether it is already cut over. */
struct reg_disk *reg_disk_open(struct registry *reg, struct reg_agent *a, uint16_t disk_no,
			       const char *id, uint64_t size, uint64_t next_epoch,
			       int64_t verified_epoch, bool cut_over);
/* The disk grew to size bytes (DISK_GROW followed). */
void reg_disk_resize(struct registry *reg, struct reg_disk *d, uint64_t size);
/* A DATA, PATCH or ZERO frame accepted: plain bytes it covers, of which data (not zero)
 * bytes, the data's payload bytes (compressed or raw) and the whole frame's bytes. */
void reg_frame(struct registry *reg, struct reg_disk *d, uint64_t plain, uint64_t data_plain,
	       uint64_t data_payload, uint64_t frame_bytes);
/* An epoch ended: its frame's bytes, whether the roots matched, how long the flush took. */
void reg_epoch_end(struct registry *reg, struct reg_disk *d, uint64_t epoch, bool match,
		   uint64_t frame_bytes, uint64_t flush_ns);
void reg_status(struct registry *reg, struct reg_disk *d, const struct proto_status *m);
void reg_cutting_over(struct registry *reg, struct reg_agent *a, bool on);
void reg_cut_over(struct registry *reg, struct reg_disk *d);
/* The last refusal or fault of a disk, one line. */
void reg_disk_error(struct registry *reg, struct reg_disk *d, const char *text);
/* The last fault the disk's replication met and how it recovered ("" for none). */
void reg_disk_fault(struct registry *reg, struct reg_disk *d, const char *text);
/* Makes every disk that has a record in STATE_DIR/disks among the ids known, with the
 * agent that wrote it (disconnected), so the operator sees them before agents come back
 * after a restart. Records that cannot be read are skipped with a warning. */
void reg_load_records(struct registry *reg, const char *state_dir, const char *const *ids,
		      unsigned nids);

/* The operator's wishes. Each returns 0, or -ENOENT for an agent never heard of. */
int reg_set_paused(struct registry *reg, const char *name, bool paused, bool *ret_connected);
int reg_set_rate(struct registry *reg, const char *name, uint64_t rate_bps, bool *ret_connected);
/* The wishes in force for agent a, for its session to pass on. */
void reg_wishes(struct registry *reg, const struct reg_agent *a, bool *ret_paused,
		uint64_t *ret_rate);
/* Whether a cutover of agent name could still happen: 0 when it is known and not every
 * disk of it is cut over, -ENOENT when never seen, -EALREADY when all are cut over. */
int reg_cutover_target(struct registry *reg, const char *name);
/* Whether an agent of that name was ever seen. */
bool reg_known(struct registry *reg, const char *name);

/* The whole picture as the API's JSON (see docs/ARCHITECTURE.md, "Operator API"); the
 * caller owns it. NULL out of memory. */
json_object *reg_snapshot(struct registry *reg, uint64_t uptime_s);
/* The same figures in Prometheus text format, from a snapshot; malloc'd, NULL out of
 * memory. */
char *reg_metrics(json_object *snapshot);

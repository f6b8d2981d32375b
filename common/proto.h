/* SPDX-License-Identifier: GPL-2.0-only */
/* tern wire protocol v2 (v2: compression streams, see PROTO_ENC_ZSTD_STREAM): framing and explicit big-endian encode/decode of every message,
 * with strict validation of every field. Decoders never trust a length; they return
 * -EBADMSG for a malformed frame and -EPROTO for a well-formed one that breaks the rules. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/fp.h"

#define PROTO_MAGIC 0x5445524eu /* "TERN" */
#define PROTO_VERSION 2
#define PROTO_HDR_LEN 16

/* Chunks are powers of two in [4 KiB, 1 MiB]; an extent carries at most 1 MiB of plain
 * data, so one frame's payload is bounded by the compressor's bound of that. */
#define PROTO_CHUNK_MIN (4u << 10)
#define PROTO_CHUNK_MAX (1u << 20)
#define PROTO_EXTENT_MAX (1u << 20)
#define PROTO_MAX_PAYLOAD ((1u << 20) + (64u << 10))
#define PROTO_MSG_MAX 512u /* longest error text */

enum proto_type {
	PROTO_HELLO = 1,     /* agent -> receiver: who, which chunk size */
	PROTO_WELCOME = 2,   /* receiver -> agent: accepted */
	PROTO_DISK = 3,      /* agent -> receiver: open a disk for replication */
	PROTO_DISK_OK = 4,   /* receiver -> agent: target ready */
	PROTO_DATA = 5,      /* agent -> receiver: an extent of whole chunks */
	PROTO_ZERO = 6,      /* agent -> receiver: a range of all-zero chunks, no payload */
	PROTO_EPOCH_END = 7, /* agent -> receiver: all chunks of an epoch sent, with root */
	PROTO_EPOCH_ACK = 8, /* receiver -> agent: epoch durable, root compared */
	PROTO_ERROR = 9,     /* either way: a refusal; the sender closes after it */
	PROTO_BYE = 10,      /* agent -> receiver: orderly end */
	PROTO_FPS = 11,      /* receiver -> agent: the target's chunk fingerprints, after DISK_OK */
	PROTO_CUTOVER = 12,  /* both ways: the cutover's steps, see proto_cutover */
	PROTO_PATCH = 13,    /* agent -> receiver: the changed blocks of one whole chunk */
	PROTO_STATUS = 14,   /* agent -> receiver: where a disk's replication stands */
	PROTO_CONTROL = 15,  /* receiver -> agent: pause, resume, bandwidth limit */
	PROTO_DISK_FAULT = 16, /* agent -> receiver: a disk's source could not be read */
	PROTO_DISK_GROW = 17,  /* agent -> receiver: the source grew, before an epoch */
	PROTO_DISK_GROWN = 18, /* receiver -> agent: the target followed, or why not */
	PROTO_TYPE_MAX = PROTO_DISK_GROWN,
};

enum proto_encoding {
	PROTO_ENC_RAW = 0,
	PROTO_ENC_ZSTD = 1,  /* one zstd frame of exactly the plain bytes */
	/* DATA only: the next piece of compression stream `stream` (one of those WELCOME
	 * granted), ending on a flush so it decodes whole; `start` begins a new zstd frame,
	 * otherwise it continues the frame of that stream's previous extent in this session. */
	PROTO_ENC_ZSTD_STREAM = 2,
};

/* The most compression streams a session may use, and what a stream extent's payload may
 * take beyond its plain bytes (zstd stores incompressible data in blocks, a few bytes
 * each, and a new frame has a header). */
#define PROTO_STREAMS_MAX 4u
#define PROTO_STREAM_PAYLOAD_MAX(plain_len) ((plain_len) + ((plain_len) >> 7) + 512u)

struct proto_hdr {
	uint32_t magic;
	uint8_t version;
	uint8_t type;
	uint16_t flags; /* must be 0 in v1 */
	uint32_t len;   /* payload bytes after the header */
	uint32_t reserved; /* must be 0 in v1 */
};

/* streams: the compression streams the agent would use (<= PROTO_STREAMS_MAX). */
struct proto_hello {
	uint32_t chunk_size;
	char name[65];
	uint8_t streams;
};

/* streams: those the receiver grants (<= the HELLO's), each decoded with a window of at
 * most 2^window_log bytes (0 when streams is 0, else 10..30). */
struct proto_welcome {
	uint32_t max_payload;
	char name[65];
	uint8_t streams;
	uint8_t window_log;
};

/* track_gen: the generation of the agent's change tracker for the disk, a random nonzero
 * value that stays the same only while the tracker's pending set has grown without a
 * break (no fresh start, no acknowledgement clearing it); 0 when it has none (scan, a
 * one-shot copy). A receiver's first-copy checkpoint carries the generation its chunks
 * were read under (see proto_fps). */
struct proto_disk {
	uint16_t disk_no;
	uint32_t logical_block;
	uint64_t size;
	char id[65];
	uint64_t track_gen;
};

/* size: what the receiver registered the disk at, and what its FPS frames and epochs
 * cover: the source's size, or, for a disk that grew while no agent ran whose target cannot
 * hold the new size, the smaller size its record vouches for (the agent then asks for the
 * growth with DISK_GROW and holds the disk until it is accepted). Never 0, never above the
 * DISK frame's size. */
struct proto_disk_ok {
	uint16_t disk_no;
	uint64_t target_size;
	uint64_t size;
};

/* An extent of nchunks consecutive chunks starting at offset. fps points into the decoded
 * frame (unaligned-safe: struct fp is bytes), payload too; both borrowed, not owned. */
struct proto_data {
	uint16_t disk_no;
	uint8_t encoding;
	uint8_t stream; /* PROTO_ENC_ZSTD_STREAM: which stream, < PROTO_STREAMS_MAX */
	bool start;     /* PROTO_ENC_ZSTD_STREAM: the extent begins a new frame */
	uint32_t nchunks;
	uint32_t plain_len;
	uint64_t offset;
	const struct fp *fps;
	const uint8_t *payload;
	uint32_t payload_len;
};

/* The changed blocks of one whole chunk at offset: block i of the chunk (blocks of
 * 1 << block_shift bytes) is carried when bit i of mask is set, in order, compressed as
 * one run. fp is the whole chunk's fingerprint after the patch: the receiver lays the
 * blocks over what its target holds and writes nothing unless the result matches, so a
 * target that is not what the tracker believed is caught, never silently mixed.
 * payload borrowed from the frame. */
#define PROTO_PATCH_FIXED (2 + 1 + 1 + 8 + 8 + FP_LEN)
#define PROTO_PATCH_MAX_BLOCKS 64u
struct proto_patch {
	uint16_t disk_no;
	uint8_t encoding;
	uint8_t block_shift;
	uint64_t mask;
	uint64_t offset;
	struct fp fp;
	uint32_t plain_len; /* derived: popcount(mask) << block_shift */
	const uint8_t *payload;
	uint32_t payload_len;
};

struct proto_zero {
	uint16_t disk_no;
	uint64_t offset;
	uint64_t length;
};

struct proto_epoch_end {
	uint16_t disk_no;
	uint64_t epoch;
	uint64_t nchunks;
	struct fp root;
};

struct proto_epoch_ack {
	uint16_t disk_no;
	uint8_t match;
	uint64_t epoch;
	uint64_t bytes_written;
	struct fp root;
};

/* After DISK_OK the receiver sends FPS frames covering the disk's chunks in order, so the
 * agent sends only chunks that differ (resume, reconciliation); a single frame with
 * count 0 means it knows nothing and the agent copies everything. next_epoch is the epoch
 * the receiver expects next. Without flags every fingerprint is what the target holds.
 * With PROTO_FPS_SOME (an unfinished first copy resumed from its checkpoint) a bitmap of
 * ceil(count / 8) bytes follows the fingerprints: bit i % 8 of byte i / 8 set when the
 * receiver holds chunk first_chunk + i durably, with that fingerprint; the others are
 * unknown (16 zero bytes) and must be sent whatever the source holds. track_gen is the
 * agent's tracking generation the held chunks were read under (0: none known; only with
 * PROTO_FPS_SOME). fps and held point into the frame (borrowed). */
#define PROTO_FPS_MAX 65536u
#define PROTO_FPS_FIXED 31
#define PROTO_FPS_SOME 1u
#define PROTO_FPS_FRAME_MAX \
	(PROTO_HDR_LEN + PROTO_FPS_FIXED + (size_t)PROTO_FPS_MAX * FP_LEN + PROTO_FPS_MAX / 8)
struct proto_fps {
	uint16_t disk_no;
	uint8_t flags;
	uint64_t next_epoch;
	uint64_t first_chunk;
	uint32_t count;
	uint64_t track_gen;
	const struct fp *fps;
	const uint8_t *held; /* PROTO_FPS_SOME only, else NULL */
};

/* The cutover: the receiver asks (REQUEST, with the verify mode), the agent quiesces the
 * source, sends a final epoch of every disk, thaws and reports (FINAL, with how long the
 * source was frozen); the receiver verifies and answers DONE. Failures are ERROR frames. */
enum proto_cutover_phase {
	PROTO_CUT_REQUEST = 1,
	PROTO_CUT_FINAL = 2,
	PROTO_CUT_DONE = 3,
};
enum proto_verify {
	PROTO_VERIFY_TRACKED = 0, /* compare the roots kept from every chunk's fingerprint */
	PROTO_VERIFY_FULL = 1,    /* the receiver re-reads its targets as well */
};
struct proto_cutover {
	uint8_t phase;
	uint8_t verify;
	uint64_t frozen_ns;
};

/* The agent's view of one disk, sent about once a second and at each phase change, so the
 * receiver's operator API can show what only the source knows: how much of the epoch is
 * read, how fast the source changes, how much is waiting. Figures the agent cannot know
 * yet are 0. bytes_done <= bytes_total. */
enum proto_phase {
	PROTO_PHASE_COPYING = 1,     /* a full read: the first copy, or a tracker overflow */
	PROTO_PHASE_TRACKING = 2,    /* sending only what changed, or idle between epochs */
	PROTO_PHASE_RECONCILING = 3, /* reading everything, sending what differs from the target */
	PROTO_PHASE_CUTTING_OVER = 4,
	PROTO_PHASE_FAULTED = 5,     /* its source could not be read: retried with backoff */
};
enum proto_tracker {
	PROTO_TRACKER_NONE = 0, /* a one-shot copy */
	PROTO_TRACKER_SCAN = 1,
	PROTO_TRACKER_EBPF = 2,
	PROTO_TRACKER_KMOD = 3, /* tern.ko */
	PROTO_TRACKER_DM = 4,   /* dm-snapshot exceptions */
	PROTO_TRACKER_MAX = PROTO_TRACKER_DM,
};
#define PROTO_STATUS_LEN (2 + 4 + 8 * 7)
struct proto_status {
	uint16_t disk_no;
	uint8_t phase;   /* enum proto_phase */
	uint8_t tracker; /* enum proto_tracker */
	uint8_t paused;  /* 0 or 1 */
	uint8_t active;  /* 1 while an epoch is being read and sent */
	uint64_t epoch;
	uint64_t bytes_done;  /* of the current (or last) epoch's plan */
	uint64_t bytes_total;
	uint64_t backlog_bytes;  /* changed bytes known or estimated not yet on the receiver */
	uint64_t churn_bps;      /* bytes the source changes per second, measured */
	uint64_t throughput_bps; /* plain bytes per second the last epoch moved */
	uint64_t rate_limit_bps; /* the limit in force (0: none) */
};

/* A disk's source could not be read (EIO and the like): the agent says why, for the
 * operator, and goes on with its other disks. abandoned: the epoch under way ends here
 * unfinished; the receiver makes durable what it wrote and lets every chunk of that epoch
 * come again (the agent retries it later, under the same number). Not abandoned: the
 * epoch was completed with the unreadable ranges zero-filled (--skip-unreadable), so the
 * target is not a copy of the source there. */
struct proto_disk_fault {
	uint16_t disk_no;
	uint8_t abandoned; /* 0 or 1 */
	uint32_t code;     /* positive errno value, < 4096 */
	uint64_t epoch;
	char msg[PROTO_MSG_MAX + 1]; /* printable ASCII, not empty */
};

/* A disk's source grew (a cloud volume enlarged, an image extended): before epoch's first
 * frame the agent asks the receiver to follow, to size bytes (larger than the disk's size
 * now; shrinking is never asked, the agent refuses it itself). The receiver answers with
 * DISK_GROWN: code 0 and the new size when its target and fingerprints grew, else a
 * positive errno (ENOSPC: the target cannot hold it, ENOMEM: --fp-memory) with a one-line
 * reason and the size it still holds; the agent then holds that disk's epochs and asks
 * again later, the other disks going on. */
struct proto_disk_grow {
	uint16_t disk_no;
	uint64_t epoch;
	uint64_t size;
};
struct proto_disk_grown {
	uint16_t disk_no;
	uint32_t code;               /* 0: grown; else a positive errno value, < 4096 */
	uint64_t size;               /* the disk's size on the receiver now */
	char msg[PROTO_MSG_MAX + 1]; /* printable ASCII; empty exactly when code is 0 */
};

/* The operator's requests, relayed by the receiver. A limit of 0 lifts it. */
enum proto_control_op {
	PROTO_CTL_PAUSE = 1,
	PROTO_CTL_RESUME = 2,
	PROTO_CTL_RATE = 3,
};
struct proto_control {
	uint8_t op;
	uint64_t rate_bps; /* PROTO_CTL_RATE only; 0 otherwise */
};

struct proto_error {
	uint32_t code; /* positive errno value */
	char msg[PROTO_MSG_MAX + 1];
};

/* Fixed part of a DATA payload before the fingerprints. */
#define PROTO_DATA_FIXED 20

/* Header */
void proto_encode_hdr(uint8_t out[PROTO_HDR_LEN], enum proto_type type, uint32_t len);
/* Validates magic, version, type, flags, reserved and the payload bound for the type. */
int proto_decode_hdr(const uint8_t in[PROTO_HDR_LEN], struct proto_hdr *ret_hdr);
const char *proto_type_name(unsigned type);

/* Each encoder writes a whole frame (header + payload) into out (cap bytes) and returns its
 * length, or -ENOBUFS when it does not fit, or -EINVAL for a value it must not send. Each
 * decoder takes the payload of a frame of its type and validates every field. */
int proto_encode_hello(uint8_t *out, size_t cap, const struct proto_hello *m);
int proto_decode_hello(const uint8_t *p, size_t len, struct proto_hello *ret_m);
int proto_encode_welcome(uint8_t *out, size_t cap, const struct proto_welcome *m);
int proto_decode_welcome(const uint8_t *p, size_t len, struct proto_welcome *ret_m);
int proto_encode_disk(uint8_t *out, size_t cap, const struct proto_disk *m);
int proto_decode_disk(const uint8_t *p, size_t len, struct proto_disk *ret_m);
int proto_encode_disk_ok(uint8_t *out, size_t cap, const struct proto_disk_ok *m);
int proto_decode_disk_ok(const uint8_t *p, size_t len, struct proto_disk_ok *ret_m);
/* Writes the DATA header and fixed part for an extent whose fingerprints and payload the
 * caller places after it (at out + returned length, fps first). m->fps and m->payload are
 * ignored here; payload_len is used for the frame length. */
int proto_encode_data_head(uint8_t *out, size_t cap, const struct proto_data *m);
/* chunk_size is the session's; validates alignment, counts, lengths and encoding. */
int proto_decode_data(const uint8_t *p, size_t len, uint32_t chunk_size, struct proto_data *ret_m);
/* Whether chunks of chunk_size may be sent as patches of block_size blocks: chunks up to
 * PROTO_CHUNK_MAX / 2, split into 2..PROTO_PATCH_MAX_BLOCKS blocks of at least 512 bytes. */
bool proto_patch_fits(uint32_t chunk_size, uint32_t block_size);
/* Writes the PATCH header and fixed part; the caller places payload_len bytes after it. */
int proto_encode_patch_head(uint8_t *out, size_t cap, const struct proto_patch *m);
/* chunk_size is the session's; the shape must be one proto_patch_fits allows. */
int proto_decode_patch(const uint8_t *p, size_t len, uint32_t chunk_size, struct proto_patch *ret_m);
int proto_encode_zero(uint8_t *out, size_t cap, const struct proto_zero *m);
int proto_decode_zero(const uint8_t *p, size_t len, uint32_t chunk_size, struct proto_zero *ret_m);
int proto_encode_epoch_end(uint8_t *out, size_t cap, const struct proto_epoch_end *m);
int proto_decode_epoch_end(const uint8_t *p, size_t len, struct proto_epoch_end *ret_m);
int proto_encode_epoch_ack(uint8_t *out, size_t cap, const struct proto_epoch_ack *m);
int proto_decode_epoch_ack(const uint8_t *p, size_t len, struct proto_epoch_ack *ret_m);
int proto_encode_error(uint8_t *out, size_t cap, const struct proto_error *m);
int proto_decode_error(const uint8_t *p, size_t len, struct proto_error *ret_m);
int proto_encode_bye(uint8_t *out, size_t cap);
/* fps[0..count) are copied into the frame. */
int proto_encode_fps(uint8_t *out, size_t cap, const struct proto_fps *m);
int proto_decode_fps(const uint8_t *p, size_t len, struct proto_fps *ret_m);
int proto_encode_cutover(uint8_t *out, size_t cap, const struct proto_cutover *m);
int proto_decode_cutover(const uint8_t *p, size_t len, struct proto_cutover *ret_m);
int proto_encode_status(uint8_t *out, size_t cap, const struct proto_status *m);
int proto_encode_disk_fault(uint8_t *out, size_t cap, const struct proto_disk_fault *m);
int proto_decode_disk_fault(const uint8_t *p, size_t len, struct proto_disk_fault *ret_m);
int proto_encode_disk_grow(uint8_t *out, size_t cap, const struct proto_disk_grow *m);
int proto_decode_disk_grow(const uint8_t *p, size_t len, struct proto_disk_grow *ret_m);
int proto_encode_disk_grown(uint8_t *out, size_t cap, const struct proto_disk_grown *m);
int proto_decode_disk_grown(const uint8_t *p, size_t len, struct proto_disk_grown *ret_m);
int proto_decode_status(const uint8_t *p, size_t len, struct proto_status *ret_m);
int proto_encode_control(uint8_t *out, size_t cap, const struct proto_control *m);
int proto_decode_control(const uint8_t *p, size_t len, struct proto_control *ret_m);

/* True when chunk_size is a power of two within [PROTO_CHUNK_MIN, PROTO_CHUNK_MAX]. */
bool proto_chunk_size_valid(uint32_t chunk_size);
/* Bytes a DATA frame for nchunks and payload_len occupies in total. */
size_t proto_data_frame_len(uint32_t nchunks, uint32_t payload_len);

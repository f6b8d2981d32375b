// SPDX-License-Identifier: GPL-2.0-only
/* A misbehaving agent for tests: completes a real mutual TLS handshake with a valid
 * credential, then breaks one protocol rule, and checks that the receiver answers with an
 * ERROR frame whose text contains what is expected.
 * Usage: badpeer HOST:PORT BUNDLE DISK_ID DISK_SIZE SCENARIO EXPECTED_TEXT
 * Scenarios that are not refusals print what they saw and check it themselves:
 * zero-all-4k (4 KiB chunks, one ZERO frame over the whole disk, the right root: expects
 * an EPOCH_ACK that matches) and stale (a verified copy of 0x42 chunks, an empty epoch
 * with a wrong root, one chunk rewritten, then the link dropped without BYE). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fp.h"
#include "common/log.h"
#include "common/net.h"
#include "common/proto.h"
#include "common/tls.h"
#include "common/util.h"

static uint32_t CS = 64u << 10; /* 4 KiB for the *-4k scenarios */

static uint8_t frame[PROTO_HDR_LEN + PROTO_MAX_PAYLOAD];

static int send_hello(struct conn *c)
{
	struct proto_hello h = { .chunk_size = CS, .name = "badpeer" };
	const char *name = getenv("BADPEER_NAME");
	struct proto_hdr hdr;
	int n;

	if (name)
		snprintf(h.name, sizeof(h.name), "%s", name);
	/* Compression streams to ask for (the stream-* scenarios). */
	if (getenv("BADPEER_STREAMS"))
		h.streams = (uint8_t)atoi(getenv("BADPEER_STREAMS"));
	n = proto_encode_hello(frame, sizeof(frame), &h);

	if (n < 0 || conn_send(c, frame, (size_t)n) < 0)
		return -EIO;
	if (conn_recv(c, &hdr, frame, sizeof(frame)) < 0 || hdr.type != PROTO_WELCOME)
		return -EPROTO;
	return 0;
}

static int send_disk(struct conn *c, const char *id, uint64_t size)
{
	struct proto_disk d = { .disk_no = 0, .logical_block = 512, .size = size };
	struct proto_hdr hdr;
	int n;

	snprintf(d.id, sizeof(d.id), "%s", id);
	n = proto_encode_disk(frame, sizeof(frame), &d);
	if (n < 0 || conn_send(c, frame, (size_t)n) < 0)
		return -EIO;
	if (conn_recv(c, &hdr, frame, sizeof(frame)) < 0 || hdr.type != PROTO_DISK_OK)
		return -EPROTO;
	/* Then the target's fingerprints: one empty frame, or frames covering the disk. */
	for (uint64_t have = 0;;) {
		struct proto_fps f;

		if (conn_recv(c, &hdr, frame, sizeof(frame)) < 0 || hdr.type != PROTO_FPS ||
		    proto_decode_fps(frame, hdr.len, &f) < 0)
			return -EPROTO;
		have += f.count;
		if (f.count == 0 || have >= DIV_ROUND_UP(size, CS))
			return 0;
	}
}

static uint8_t fill = 0x42; /* what data_frame's chunks hold */
static bool data_start;    /* a PROTO_ENC_ZSTD_STREAM frame of data_frame's begins a frame */

/* A raw DATA frame of one 64 KiB chunk of `fill` at off, with a correct fingerprint. */
static int data_frame(uint16_t disk_no, uint64_t off, uint8_t enc, size_t payload_len)
{
	struct proto_data d = { .disk_no = disk_no, .encoding = enc, .nchunks = 1,
				.plain_len = CS, .offset = off, .payload_len = (uint32_t)payload_len,
				.start = enc == PROTO_ENC_ZSTD_STREAM && data_start };
	uint8_t *chunk = malloc(CS);
	struct fp fp;
	int n;

	if (!chunk)
		return -ENOMEM;
	memset(chunk, fill, CS);
	fp_compute(chunk, CS, &fp);
	n = proto_encode_data_head(frame, sizeof(frame), &d);
	if (n < 0) {
		free(chunk);
		return n;
	}
	memcpy(frame + n, fp.b, FP_LEN);
	/* RAW carries the chunk; ZSTD and a stream's piece carry garbage of the given length. */
	if (enc == PROTO_ENC_RAW)
		memcpy(frame + n + FP_LEN, chunk, CS);
	else
		memset(frame + n + FP_LEN, 0xee, payload_len);
	free(chunk);
	return n + FP_LEN + (int)payload_len;
}

/* Ends epoch `epoch` of disk 0 with root (flipped when wrong) and returns the ack's match
 * (0 or 1), or -errno when the receiver answered otherwise. */
static int end_epoch(struct conn *c, uint64_t size, uint64_t epoch, const struct fp *root,
		     bool wrong)
{
	struct proto_epoch_end ee = { .disk_no = 0, .epoch = epoch,
				      .nchunks = DIV_ROUND_UP(size, CS), .root = *root };
	struct proto_epoch_ack ack;
	struct proto_hdr hdr;
	int n;

	if (wrong)
		ee.root.b[0] ^= 0xff;
	n = proto_encode_epoch_end(frame, sizeof(frame), &ee);
	if (n < 0 || conn_send(c, frame, (size_t)n) < 0)
		return -EIO;
	if (conn_recv(c, &hdr, frame, sizeof(frame)) < 0)
		return -EIO;
	if (hdr.type == PROTO_ERROR) {
		struct proto_error e;

		if (proto_decode_error(frame, hdr.len, &e) == 0)
			fprintf(stderr, "receiver refused: %s\n", e.msg);
		return -EPROTO;
	}
	if (hdr.type != PROTO_EPOCH_ACK || proto_decode_epoch_ack(frame, hdr.len, &ack) < 0)
		return -EPROTO;
	return ack.match ? 1 : 0;
}

/* The root of a disk whose chunks all hold `byte` (0 for a zero disk), leaf by leaf. */
static void uniform_root(uint64_t size, uint8_t byte, struct fp *ret_root)
{
	uint8_t *chunk = malloc(CS);
	struct fp_merkle m;
	struct fp f;

	fp_merkle_init(&m);
	for (uint64_t off = 0; chunk && off < size; off += CS) {
		size_t len = (size_t)MIN((uint64_t)CS, size - off);

		memset(chunk, byte, len);
		if (byte)
			fp_compute(chunk, len, &f);
		else
			fp_zero(len, &f);
		fp_merkle_add(&m, &f);
	}
	free(chunk);
	fp_merkle_final(&m, ret_root);
}

/* One ZERO frame over the whole disk, then the epoch's end with the right root. */
static int zero_all(struct conn *c, uint64_t size)
{
	struct proto_zero z = { .disk_no = 0, .offset = 0, .length = size };
	struct fp root;
	int n = proto_encode_zero(frame, sizeof(frame), &z), r;

	if (n < 0 || conn_send(c, frame, (size_t)n) < 0)
		return 1;
	uniform_root(size, 0, &root);
	r = end_epoch(c, size, 0, &root, false);
	printf("zero-all-4k: %s\n", r == 1 ? "acknowledged, roots match" :
	       r == 0 ? "acknowledged, roots differ" : "no ack");
	return r == 1 ? 0 : 1;
}

/* The stale-record sequence: epoch 0 copies 0x42 everywhere (verified), epoch 1 ends
 * with a wrong root and nothing written, epoch 2 rewrites chunk 0 as 0x43, then the link
 * drops. The receiver must not vouch for epoch 0 afterwards: its target differs. */
static int stale(struct conn *c, uint64_t size)
{
	struct fp root;
	int n;

	if (size % CS) {
		fprintf(stderr, "stale: the size must be whole chunks\n");
		return 2;
	}
	for (uint64_t off = 0; off < size; off += CS) {
		n = data_frame(0, off, PROTO_ENC_RAW, CS);
		if (n < 0 || conn_send(c, frame, (size_t)n) < 0)
			return 1;
	}
	uniform_root(size, 0x42, &root);
	if (end_epoch(c, size, 0, &root, false) != 1 || end_epoch(c, size, 1, &root, true) != 0) {
		fprintf(stderr, "stale: epochs 0 and 1 did not end as planned\n");
		return 1;
	}
	fill = 0x43;
	n = data_frame(0, 0, PROTO_ENC_RAW, CS);
	if (n < 0 || conn_send(c, frame, (size_t)n) < 0)
		return 1;
	/* Dropped without BYE, as a lost link. */
	printf("stale: epoch 0 verified, epoch 1 mismatched, chunk 0 rewritten in epoch 2\n");
	return 0;
}

/* An agent that will not stop: an epoch rewriting its one chunk every 200 ms, each ended
 * with the right root, until the receiver ends the session (or 60 s pass). Acks that come
 * for an EPOCH_END sent after the file BADPEER_MARK appeared (the test revokes the name,
 * then creates it) are counted apart: a receiver that ends revoked sessions allows at most
 * the one already past its check. */
static int endless_epochs(struct conn *c, uint64_t size)
{
	const char *mark = getenv("BADPEER_MARK");
	unsigned acked = 0, after = 0;
	struct fp root;

	if (size != CS) {
		fprintf(stderr, "epochs: the disk must be one chunk\n");
		return 2;
	}
	for (uint64_t epoch = 0, t0 = now_ns(); now_ns() - t0 < 60000000000ull; epoch++) {
		bool marked = mark && access(mark, F_OK) == 0;
		int n, r;

		fill = (uint8_t)(0x42 + (epoch & 1));
		n = data_frame(0, 0, PROTO_ENC_RAW, CS);
		if (n < 0 || conn_send(c, frame, (size_t)n) < 0)
			break;
		uniform_root(size, fill, &root);
		r = end_epoch(c, size, epoch, &root, false);
		if (r != 1)
			break;
		acked++;
		after += marked;
		usleep(200 * 1000);
	}
	printf("epochs: %u acknowledged, %u after the mark\n", acked, after);
	return 0;
}

/* Long only by its scenarios: after the handshake, one short branch of frames each, side by
 * side so that a new one is written beside its neighbours. */
int main(int argc, char **argv)
{
	const char *scenario, *expect;
	struct proto_hdr hdr;
	struct proto_error e;
	struct conn *c = NULL;
	SSL_CTX *ctx;
	uint64_t size;
	char why[256];
	int fd, n = 0, r;

	if (argc != 7 || parse_u64(argv[4], 1, UINT64_MAX, &size) < 0) {
		fprintf(stderr, "usage: badpeer HOST:PORT BUNDLE DISK_ID SIZE SCENARIO EXPECTED\n");
		return 2;
	}
	log_setup("badpeer", LOG_LVL_WARN);
	scenario = argv[5];
	expect = argv[6];
	if (strcmp(scenario, "disk-4k") == 0 || strcmp(scenario, "zero-all-4k") == 0)
		CS = 4096;
	ctx = tls_client_ctx(argv[2], &r);
	if (!ctx)
		return 1;
	fd = net_connect(argv[1], 5000);
	if (fd < 0)
		return 1;
	c = conn_handshake(ctx, fd, false, 5000, &r, why, sizeof(why));
	if (!c) {
		fprintf(stderr, "handshake: %s\n", why);
		return 1;
	}
	if (strcmp(scenario, "no-hello") == 0) {
		n = data_frame(0, 0, PROTO_ENC_RAW, CS);
	} else if (strcmp(scenario, "bad-magic") == 0) {
		memset(frame, 0x41, 64);
		n = 64;
	} else if (strcmp(scenario, "bad-version") == 0) {
		/* An agent of protocol v1 (before compression streams). */
		proto_encode_hdr(frame, PROTO_HELLO, 0);
		frame[4] = 1;
		n = PROTO_HDR_LEN;
	} else if (strcmp(scenario, "hello") == 0) {
		/* Only the HELLO, under BADPEER_NAME: the refusal answers it. */
		struct proto_hello h = { .chunk_size = CS, .name = "badpeer" };

		if (getenv("BADPEER_NAME"))
			snprintf(h.name, sizeof(h.name), "%s", getenv("BADPEER_NAME"));
		n = proto_encode_hello(frame, sizeof(frame), &h);
	} else if (strcmp(scenario, "disk-4k") == 0) {
		/* The refusal comes in answer to the DISK frame itself. */
		struct proto_disk d = { .disk_no = 0, .logical_block = 512, .size = size };

		if (send_hello(c) < 0) {
			fprintf(stderr, "setup refused\n");
			return 1;
		}
		snprintf(d.id, sizeof(d.id), "%s", argv[3]);
		n = proto_encode_disk(frame, sizeof(frame), &d);
	} else {
		if (send_hello(c) < 0 || send_disk(c, argv[3], size) < 0) {
			fprintf(stderr, "setup refused\n");
			return 1;
		}
		if (strcmp(scenario, "zero-all-4k") == 0) {
			r = zero_all(c, size);
			conn_free(c);
			SSL_CTX_free(ctx);
			return r;
		} else if (strcmp(scenario, "epochs") == 0) {
			r = endless_epochs(c, size);
			conn_free(c);
			SSL_CTX_free(ctx);
			return r;
		} else if (strcmp(scenario, "stale") == 0) {
			r = stale(c, size);
			conn_free(c);
			SSL_CTX_free(ctx);
			return r;
		} else if (strcmp(scenario, "past-end") == 0) {
			n = data_frame(0, (size + CS - 1) / CS * CS, PROTO_ENC_RAW, CS);
		} else if (strcmp(scenario, "unregistered") == 0) {
			n = data_frame(3, 0, PROTO_ENC_RAW, CS);
		} else if (strcmp(scenario, "bad-zstd") == 0) {
			n = data_frame(0, 0, PROTO_ENC_ZSTD, 1000);
		} else if (strcmp(scenario, "stream-start") == 0) {
			/* A stream's first piece, on stream 0 (granted or not: BADPEER_STREAMS). */
			data_start = true;
			n = data_frame(0, 0, PROTO_ENC_ZSTD_STREAM, 1000);
		} else if (strcmp(scenario, "stream-cont") == 0) {
			/* A continuation of a frame the stream never began. */
			n = data_frame(0, 0, PROTO_ENC_ZSTD_STREAM, 1000);
		} else if (strcmp(scenario, "twice") == 0) {
			n = data_frame(0, 0, PROTO_ENC_RAW, CS);
			if (conn_send(c, frame, (size_t)n) < 0)
				return 1;
		} else if (strcmp(scenario, "incomplete") == 0) {
			struct proto_epoch_end ee = { .disk_no = 0, .epoch = 0,
						      .nchunks = DIV_ROUND_UP(size, CS) };
			n = proto_encode_epoch_end(frame, sizeof(frame), &ee);
		} else if (strncmp(scenario, "fault-", 6) == 0) {
			/* DISK_FAULT: for no registered disk, for an epoch not open, or with a
			 * flag that is not one. */
			struct proto_disk_fault f = { .disk_no = 0, .abandoned = 1, .code = EIO,
						      .msg = "reading /dev/x at byte 0 failed" };

			if (strcmp(scenario, "fault-unregistered") == 0)
				f.disk_no = 3;
			else if (strcmp(scenario, "fault-epoch") == 0)
				f.epoch = 5;
			else if (strcmp(scenario, "fault-unverified") == 0)
				f.abandoned = 0;
			n = proto_encode_disk_fault(frame, sizeof(frame), &f);
			if (strcmp(scenario, "fault-malformed") == 0)
				frame[PROTO_HDR_LEN + 2] = 2;
		} else if (strcmp(scenario, "oversize") == 0) {
			proto_encode_hdr(frame, PROTO_DATA, PROTO_MAX_PAYLOAD + 1);
			n = PROTO_HDR_LEN;
		} else {
			fprintf(stderr, "unknown scenario %s\n", scenario);
			return 2;
		}
	}
	if (n <= 0 || conn_send(c, frame, (size_t)n) < 0) {
		fprintf(stderr, "send failed\n");
		return 1;
	}
	r = conn_recv(c, &hdr, frame, sizeof(frame));
	if (r < 0 || hdr.type != PROTO_ERROR || proto_decode_error(frame, hdr.len, &e) < 0) {
		fprintf(stderr, "%s: no ERROR frame from the receiver (%d)\n", scenario, r);
		return 1;
	}
	printf("%s: receiver refused: %s\n", scenario, e.msg);
	conn_free(c);
	SSL_CTX_free(ctx);
	if (!strstr(e.msg, expect)) {
		fprintf(stderr, "%s: expected '%s' in the refusal\n", scenario, expect);
		return 1;
	}
	return 0;
}

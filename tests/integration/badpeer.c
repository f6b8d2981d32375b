// SPDX-License-Identifier: GPL-2.0-only
/* A misbehaving agent for tests: completes a real mutual TLS handshake with a valid
 * credential, then breaks one protocol rule, and checks that the receiver answers with an
 * ERROR frame whose text contains what is expected.
 * Usage: badpeer HOST:PORT BUNDLE DISK_ID DISK_SIZE SCENARIO EXPECTED_TEXT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fp.h"
#include "common/log.h"
#include "common/net.h"
#include "common/proto.h"
#include "common/tls.h"
#include "common/util.h"

#define CS (64u << 10)

static uint8_t frame[PROTO_HDR_LEN + PROTO_MAX_PAYLOAD];

static int send_hello(struct conn *c)
{
	struct proto_hello h = { .chunk_size = CS, .name = "badpeer" };
	struct proto_hdr hdr;
	int n = proto_encode_hello(frame, sizeof(frame), &h);

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

/* A raw DATA frame of one 64 KiB chunk of 0x42 at off, with a correct fingerprint. */
static int data_frame(uint16_t disk_no, uint64_t off, uint8_t enc, size_t payload_len)
{
	struct proto_data d = { .disk_no = disk_no, .encoding = enc, .nchunks = 1,
				.plain_len = CS, .offset = off, .payload_len = (uint32_t)payload_len };
	uint8_t *chunk = malloc(CS);
	struct fp fp;
	int n;

	if (!chunk)
		return -ENOMEM;
	memset(chunk, 0x42, CS);
	fp_compute(chunk, CS, &fp);
	n = proto_encode_data_head(frame, sizeof(frame), &d);
	if (n < 0) {
		free(chunk);
		return n;
	}
	memcpy(frame + n, fp.b, FP_LEN);
	/* RAW carries the chunk; ZSTD carries garbage of the given length. */
	if (enc == PROTO_ENC_RAW)
		memcpy(frame + n + FP_LEN, chunk, CS);
	else
		memset(frame + n + FP_LEN, 0xee, payload_len);
	free(chunk);
	return n + FP_LEN + (int)payload_len;
}

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
		proto_encode_hdr(frame, PROTO_HELLO, 0);
		frame[4] = 2;
		n = PROTO_HDR_LEN;
	} else {
		if (send_hello(c) < 0 || send_disk(c, argv[3], size) < 0) {
			fprintf(stderr, "setup refused\n");
			return 1;
		}
		if (strcmp(scenario, "past-end") == 0) {
			n = data_frame(0, (size + CS - 1) / CS * CS, PROTO_ENC_RAW, CS);
		} else if (strcmp(scenario, "unregistered") == 0) {
			n = data_frame(3, 0, PROTO_ENC_RAW, CS);
		} else if (strcmp(scenario, "bad-zstd") == 0) {
			n = data_frame(0, 0, PROTO_ENC_ZSTD, 1000);
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

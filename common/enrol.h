/* SPDX-License-Identifier: GPL-2.0-only */
/* Enrolment, the part both ends share: the join token (what `tern-receiver token create`
 * prints and `tern-agent join` reads) and the small framed protocol of the enrolment port.
 * Decoders validate every byte and length; nothing here trusts its input. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

struct conn;

#define ENROL_TOKEN_PREFIX "tern1."
#define ENROL_ID_LEN 16
#define ENROL_SECRET_LEN 32
#define ENROL_PIN_LEN 32
#define ENROL_ADDR_MAX 255 /* longest HOST:PORT in a token */
/* Longest token text: prefix, base64url of the largest payload, NUL. */
#define ENROL_TOKEN_MAX 1024

/* What a token carries. Everything needed to join: where to enrol, whom to trust (the
 * receiver CA's SHA-256), which token record to use and the secret that proves it. */
struct enrol_token {
	char address[ENROL_ADDR_MAX + 1];  /* enrolment HOST:PORT */
	/* Replication HOST:PORT, or "" for the enrolment host with the port the receiver
	 * reports when it issues the certificate. */
	char receiver[ENROL_ADDR_MAX + 1];
	uint8_t pin[ENROL_PIN_LEN];
	uint8_t id[ENROL_ID_LEN];
	uint8_t secret[ENROL_SECRET_LEN];
};

/* Writes the token text (NUL-terminated) to out. Returns its length, or -EINVAL for an
 * address that is not HOST:PORT, -ENOSPC when cap is too small. */
int enrol_token_encode(const struct enrol_token *t, char *out, size_t cap);
/* Parses token text strictly: the prefix, canonical unpadded base64url, the version, the
 * lengths, valid addresses, the checksum, and nothing left over. Surrounding blanks (a
 * pasted newline) are allowed. Returns 0, -EPROTONOSUPPORT for another token version, or
 * -EBADMSG for anything damaged. The checksum catches copy errors only; an attacker can
 * recompute it, which is why the receiver's pin and the secret carry the trust. */
int enrol_token_decode(const char *s, struct enrol_token *ret_t);

/* Whether name is reserved for the receiver's own credentials (the shared agent bundle's
 * and the receiver's common names, in any case): enrolment never issues it. */
bool enrol_name_reserved(const char *name);

/* Lower-case hex of len bytes into out (2 * len + 1 bytes). */
void enrol_hex(const uint8_t *in, size_t len, char *out);
/* Parses exactly 2 * len hex digits. 0 or -EINVAL. */
int enrol_unhex(const char *s, uint8_t *out, size_t len);

/* The enrolment port's frames: a 12-byte header (magic "TENR", version 1, type, two zero
 * bytes, payload length, all big-endian), then the payload. */
#define ENROL_MAGIC 0x54454e52u
#define ENROL_VERSION 1
#define ENROL_HDR_LEN 12
#define ENROL_PAYLOAD_MAX (16u << 10)
#define ENROL_CSR_MAX 4096u
#define ENROL_CERT_MAX 4096u
#define ENROL_MSG_MAX 400u
#define ENROL_FRAME_MAX (ENROL_HDR_LEN + ENROL_PAYLOAD_MAX)

enum enrol_type {
	ENROL_REQUEST = 1, /* agent -> receiver: token id, secret, name, CSR */
	ENROL_ISSUED = 2,  /* receiver -> agent: certificate, CA, replication port */
	ENROL_REFUSED = 3, /* receiver -> agent: errno and a one-line reason; then close */
};

/* Pointers borrow from the decoded buffer. */
struct enrol_request {
	uint8_t id[ENROL_ID_LEN];
	uint8_t secret[ENROL_SECRET_LEN];
	char name[NAME_MAX_LEN + 1];
	const uint8_t *csr;
	size_t csr_len;
};

struct enrol_issued {
	uint16_t port; /* the receiver's replication port, 0 when unknown */
	const uint8_t *cert;
	size_t cert_len;
	const uint8_t *ca;
	size_t ca_len;
};

struct enrol_refused {
	uint32_t code; /* errno */
	char msg[ENROL_MSG_MAX + 1];
};

/* Encoders write a whole frame (header included) and return its length, or -EINVAL for a
 * field out of bounds, -ENOSPC when cap is too small. */
int enrol_encode_request(uint8_t *out, size_t cap, const struct enrol_request *m);
int enrol_encode_issued(uint8_t *out, size_t cap, const struct enrol_issued *m);
int enrol_encode_refused(uint8_t *out, size_t cap, const struct enrol_refused *m);

/* Validates a header; 0 with the type and payload length, -EBADMSG, -EPROTONOSUPPORT, or
 * -EMSGSIZE for a payload over ENROL_PAYLOAD_MAX. */
int enrol_decode_hdr(const uint8_t in[ENROL_HDR_LEN], uint8_t *ret_type, uint32_t *ret_len);
/* Payload decoders: 0 or -EBADMSG (-EINVAL for a bad name in a request). */
int enrol_decode_request(const uint8_t *p, size_t len, struct enrol_request *ret_m);
int enrol_decode_issued(const uint8_t *p, size_t len, struct enrol_issued *ret_m);
int enrol_decode_refused(const uint8_t *p, size_t len, struct enrol_refused *ret_m);

/* Receives one frame over c into buf (at least ENROL_PAYLOAD_MAX bytes): 0 with its type
 * and payload length, or -errno from the header check or the connection. */
int enrol_recv(struct conn *c, uint8_t *buf, uint8_t *ret_type, uint32_t *ret_len);

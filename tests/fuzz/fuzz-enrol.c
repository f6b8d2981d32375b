// SPDX-License-Identifier: GPL-2.0-only
/* libFuzzer target for the enrolment decoders: the frames an unauthenticated peer sends to
 * the enrolment port, and the join token an operator pastes. The first byte picks what the
 * rest is. Whatever a decoder accepts must respect its bounds and re-encode to the same
 * bytes (the formats have one encoding per message), and decode again to the same fields. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/enrol.h"
#include "common/net.h"
#include "common/util.h"

#include "fuzz-driver.h"

enum mode {
	M_FRAME,   /* header, then the payload by its type when the lengths agree */
	M_REQUEST, /* payloads alone */
	M_ISSUED,
	M_REFUSED,
	M_TOKEN,     /* token text */
	M_TOKEN_BIN, /* a token's binary body: the checksum and base64url are added here, so
		      * mutations reach the checks behind the checksum */
	M_COUNT,
};

#define TOKEN_CHECK_LEN 4 /* enrol.c's checksum: the first bytes of the body's SHA-256 */
#define TOKEN_BODY_MAX (2 + 2 * ENROL_ADDR_MAX + ENROL_PIN_LEN + ENROL_ID_LEN + ENROL_SECRET_LEN)

static uint8_t out[ENROL_FRAME_MAX];
static volatile uint8_t sink;

static void require(bool ok)
{
	if (!ok)
		abort();
}

static bool inside(const uint8_t *q, size_t n, const uint8_t *p, size_t len)
{
	return q >= p && q <= p + len && n <= (size_t)(p + len - q);
}

static void touch(const uint8_t *q, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sink ^= q[i];
}

/* A frame re-encoded into n bytes at out must be the header and then exactly p. */
static void require_frame(int n, uint8_t type, const uint8_t *p, size_t len)
{
	uint8_t t = 0;
	uint32_t l = 0;

	require(n >= ENROL_HDR_LEN && (size_t)n - ENROL_HDR_LEN == len);
	require(enrol_decode_hdr(out, &t, &l) == 0 && t == type && l == len);
	require(memcmp(out + ENROL_HDR_LEN, p, len) == 0);
}

static bool text_is_printable(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			return false;
	return true;
}

static void check_request(const uint8_t *p, size_t len)
{
	struct enrol_request m, again;
	int r = enrol_decode_request(p, len, &m);

	require(r == 0 || r == -EBADMSG || r == -EINVAL);
	if (r < 0)
		return;
	require(m.csr_len >= 1 && m.csr_len <= ENROL_CSR_MAX);
	/* The CSR is the last field: it runs exactly to the end of the payload. */
	require(inside(m.csr, m.csr_len, p, len) && m.csr + m.csr_len == p + len);
	require(strnlen(m.name, sizeof(m.name)) < sizeof(m.name));
	require(name_is_valid(m.name, strlen(m.name)));
	touch(m.csr, m.csr_len);
	require_frame(enrol_encode_request(out, sizeof(out), &m), ENROL_REQUEST, p, len);
	require(enrol_decode_request(out + ENROL_HDR_LEN, len, &again) == 0);
	require(memcmp(again.id, m.id, ENROL_ID_LEN) == 0);
	require(memcmp(again.secret, m.secret, ENROL_SECRET_LEN) == 0);
	require(strcmp(again.name, m.name) == 0);
	require(again.csr_len == m.csr_len && memcmp(again.csr, m.csr, m.csr_len) == 0);
}

static void check_issued(const uint8_t *p, size_t len)
{
	struct enrol_issued m, again;
	int r = enrol_decode_issued(p, len, &m);

	require(r == 0 || r == -EBADMSG);
	if (r < 0)
		return;
	require(m.cert_len >= 1 && m.cert_len <= ENROL_CERT_MAX);
	require(m.ca_len >= 1 && m.ca_len <= ENROL_CERT_MAX);
	require(inside(m.cert, m.cert_len, p, len) && inside(m.ca, m.ca_len, p, len));
	require(m.cert + m.cert_len <= m.ca && m.ca + m.ca_len == p + len);
	touch(m.cert, m.cert_len);
	touch(m.ca, m.ca_len);
	require_frame(enrol_encode_issued(out, sizeof(out), &m), ENROL_ISSUED, p, len);
	require(enrol_decode_issued(out + ENROL_HDR_LEN, len, &again) == 0);
	require(again.port == m.port);
	require(again.cert_len == m.cert_len && memcmp(again.cert, m.cert, m.cert_len) == 0);
	require(again.ca_len == m.ca_len && memcmp(again.ca, m.ca, m.ca_len) == 0);
}

static void check_refused(const uint8_t *p, size_t len)
{
	struct enrol_refused m, again;
	int r = enrol_decode_refused(p, len, &m);
	size_t mlen;

	require(r == 0 || r == -EBADMSG);
	if (r < 0)
		return;
	mlen = strnlen(m.msg, sizeof(m.msg));
	require(mlen >= 1 && mlen <= ENROL_MSG_MAX);
	/* It is logged as is: printable ASCII only, so no terminal escapes or extra lines. */
	require(text_is_printable(m.msg));
	require(m.code >= 1 && m.code <= 4095);
	require_frame(enrol_encode_refused(out, sizeof(out), &m), ENROL_REFUSED, p, len);
	require(enrol_decode_refused(out + ENROL_HDR_LEN, len, &again) == 0);
	require(again.code == m.code && strcmp(again.msg, m.msg) == 0);
}

static void check_frame(const uint8_t *p, size_t len)
{
	uint8_t type = 0;
	uint32_t plen = 0;
	int r;

	if (len < ENROL_HDR_LEN)
		return;
	r = enrol_decode_hdr(p, &type, &plen);
	require(r == 0 || r == -EBADMSG || r == -EPROTONOSUPPORT || r == -EMSGSIZE);
	if (r < 0)
		return;
	/* Accepted: the magic, version 1, a known type, the zero bytes, a bounded length. */
	require(memcmp(p, "TENR", 4) == 0 && p[4] == ENROL_VERSION && p[5] == type);
	require(p[6] == 0 && p[7] == 0);
	require(type >= ENROL_REQUEST && type <= ENROL_REFUSED && plen <= ENROL_PAYLOAD_MAX);
	require(((uint32_t)p[8] << 24 | (uint32_t)p[9] << 16 | (uint32_t)p[10] << 8 | p[11]) == plen);
	if (plen != len - ENROL_HDR_LEN)
		return;
	if (type == ENROL_REQUEST)
		check_request(p + ENROL_HDR_LEN, plen);
	else if (type == ENROL_ISSUED)
		check_issued(p + ENROL_HDR_LEN, plen);
	else
		check_refused(p + ENROL_HDR_LEN, plen);
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* HOST:PORT as a token must carry it: plain characters, a port in 1..65535. */
static bool addr_ok(const char *s, size_t cap)
{
	char *host = NULL, *port = NULL;
	uint64_t v;
	bool ok;

	if (strnlen(s, cap) == cap || !*s || strspn(s, "abcdefghijklmnopqrstuvwxyz"
		"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:[]%") != strlen(s))
		return false;
	if (net_parse_hostport(s, &host, &port) < 0)
		return false;
	ok = parse_u64(port, 1, 65535, &v) == 0;
	free(host);
	free(port);
	return ok;
}

static void check_token_text(const char *s)
{
	struct enrol_token t, again;
	char text[ENROL_TOKEN_MAX];
	const char *b = s, *e;
	int r = enrol_token_decode(s, &t), n;

	require(r == 0 || r == -EBADMSG || r == -EPROTONOSUPPORT);
	if (r < 0)
		return;
	require(addr_ok(t.address, sizeof(t.address)));
	require(!t.receiver[0] || addr_ok(t.receiver, sizeof(t.receiver)));
	/* Strict base64url: the only text of these fields is the one the encoder writes, with
	 * blanks around it at most. */
	n = enrol_token_encode(&t, text, sizeof(text));
	require(n > 0);
	while (is_blank(*b))
		b++;
	e = b + strlen(b);
	while (e > b && is_blank(e[-1]))
		e--;
	require((size_t)(e - b) == (size_t)n && memcmp(b, text, (size_t)n) == 0);
	require(enrol_token_decode(text, &again) == 0);
	require(memcmp(&again, &t, sizeof(t)) == 0);
}

static void check_token(const uint8_t *p, size_t len)
{
	char *s = malloc(len + 1);

	require(s != NULL);
	memcpy(s, p, len);
	s[len] = '\0';
	check_token_text(s);
	free(s);
}

/* Unpadded base64url, for M_TOKEN_BIN; out holds 4 * DIV_ROUND_UP(len, 3) + 1 bytes. */
static void b64url(const uint8_t *in, size_t len, char *o)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint32_t acc = 0;
	unsigned bits = 0;

	for (size_t i = 0; i < len; i++) {
		acc = (acc << 8 | in[i]) & 0xffffff;
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			*o++ = a[(acc >> bits) & 63];
		}
	}
	if (bits)
		*o++ = a[(acc << (6 - bits)) & 63];
	*o = '\0';
}

static void check_token_bin(const uint8_t *p, size_t len)
{
	uint8_t body[TOKEN_BODY_MAX + 64 + TOKEN_CHECK_LEN], md[EVP_MAX_MD_SIZE];
	char text[sizeof(ENROL_TOKEN_PREFIX) + 4 * DIV_ROUND_UP(sizeof(body), 3) + 1];
	unsigned mdlen = 0;

	/* A little past the largest body, so that overlong ones are tried too. */
	len = MIN(len, sizeof(body) - TOKEN_CHECK_LEN);
	memcpy(body, p, len);
	require(EVP_Digest(body, len, md, &mdlen, EVP_sha256(), NULL) == 1);
	memcpy(body + len, md, TOKEN_CHECK_LEN);
	memcpy(text, ENROL_TOKEN_PREFIX, sizeof(ENROL_TOKEN_PREFIX) - 1);
	b64url(body, len + TOKEN_CHECK_LEN, text + sizeof(ENROL_TOKEN_PREFIX) - 1);
	check_token_text(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % M_COUNT) {
	case M_FRAME:
		check_frame(data + 1, size - 1);
		break;
	case M_REQUEST:
		check_request(data + 1, size - 1);
		break;
	case M_ISSUED:
		check_issued(data + 1, size - 1);
		break;
	case M_REFUSED:
		check_refused(data + 1, size - 1);
		break;
	case M_TOKEN:
		check_token(data + 1, size - 1);
		break;
	default:
		check_token_bin(data + 1, size - 1);
		break;
	}
	return 0;
}

/* Seeds: every message the encoders write, as a frame and as a bare payload, and tokens as
 * text and as binary bodies. */

static void (*seed_add)(const void *p, size_t n);

/* The fixed fields of a token's body, for seeds spelt out byte by byte. */
#define PIN_ID_SECRET "0123456789abcdef0123456789abcdef" "0123456789abcdef" \
	"0123456789abcdef0123456789abcdef"

static void add_with(uint8_t mode, const void *p, size_t n)
{
	uint8_t *b = malloc(n + 1);

	require(b != NULL);
	b[0] = mode;
	memcpy(b + 1, p, n);
	seed_add(b, n + 1);
	free(b);
}

static void add_frame(uint8_t payload_mode, int n)
{
	require(n >= ENROL_HDR_LEN);
	add_with(M_FRAME, out, (size_t)n);
	add_with(payload_mode, out + ENROL_HDR_LEN, (size_t)n - ENROL_HDR_LEN);
}

/* The frame at out (n bytes) with its last field one byte past its bound: a byte more,
 * and the two-byte length at payload offset off counting it. Must be refused. */
static void add_one_past(uint8_t payload_mode, int n, size_t off)
{
	uint8_t *b = malloc((size_t)n + 1);
	size_t plen = (size_t)n - ENROL_HDR_LEN + 1;
	unsigned v;

	require(b != NULL && n > ENROL_HDR_LEN && off + 2 < plen);
	memcpy(b, out, (size_t)n);
	b[n] = '~';
	b[8] = (uint8_t)(plen >> 24);
	b[9] = (uint8_t)(plen >> 16);
	b[10] = (uint8_t)(plen >> 8);
	b[11] = (uint8_t)plen;
	v = ((unsigned)b[ENROL_HDR_LEN + off] << 8 | b[ENROL_HDR_LEN + off + 1]) + 1;
	b[ENROL_HDR_LEN + off] = (uint8_t)(v >> 8);
	b[ENROL_HDR_LEN + off + 1] = (uint8_t)v;
	add_with(M_FRAME, b, (size_t)n + 1);
	add_with(payload_mode, b + ENROL_HDR_LEN, plen);
	free(b);
}

static void fill(uint8_t *p, size_t n, uint8_t k)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 13 + k);
}

static void add_token(const struct enrol_token *t)
{
	char text[ENROL_TOKEN_MAX + 1100];
	uint8_t body[TOKEN_BODY_MAX];
	size_t alen = strlen(t->address), rlen = strlen(t->receiver), n = 0;
	int len = enrol_token_encode(t, text, ENROL_TOKEN_MAX);

	require(len > 0);
	add_with(M_TOKEN, text, (size_t)len);
	/* As pasted: a newline after it; and padded with far more blanks than a token holds. */
	text[len] = '\n';
	add_with(M_TOKEN, text, (size_t)len + 1);
	memset(text + len, ' ', 1100);
	add_with(M_TOKEN, text, (size_t)len + 1100);
	/* Then something after the blanks: once accepted, unread past ENROL_TOKEN_MAX. */
	text[len + 1099] = 'x';
	add_with(M_TOKEN, text, (size_t)len + 1100);
	body[n++] = (uint8_t)alen;
	memcpy(body + n, t->address, alen);
	n += alen;
	body[n++] = (uint8_t)rlen;
	memcpy(body + n, t->receiver, rlen);
	n += rlen;
	memcpy(body + n, t->pin, ENROL_PIN_LEN);
	n += ENROL_PIN_LEN;
	memcpy(body + n, t->id, ENROL_ID_LEN);
	n += ENROL_ID_LEN;
	memcpy(body + n, t->secret, ENROL_SECRET_LEN);
	n += ENROL_SECRET_LEN;
	add_with(M_TOKEN_BIN, body, n);
}

void tern_fuzz_seeds(void (*add)(const void *p, size_t n))
{
	static uint8_t csr[ENROL_CSR_MAX], cert[ENROL_CERT_MAX], ca[ENROL_CERT_MAX];
	struct enrol_request req = { .csr = csr, .csr_len = 700 };
	struct enrol_issued iss = { .port = 7000, .cert = cert, .cert_len = 900, .ca = ca,
				    .ca_len = 800 };
	struct enrol_refused ref = { .code = EACCES, .msg = "token expired or already used" };
	struct enrol_token tok = { 0 };
	int n;

	seed_add = add;
	fill(csr, sizeof(csr), 0x30);
	fill(cert, sizeof(cert), 0x31);
	fill(ca, sizeof(ca), 0x32);
	fill(req.id, ENROL_ID_LEN, 1);
	fill(req.secret, ENROL_SECRET_LEN, 2);
	snprintf(req.name, sizeof(req.name), "web1.example");
	add_frame(M_REQUEST, enrol_encode_request(out, sizeof(out), &req));
	memset(req.name, 'n', NAME_MAX_LEN);
	req.csr_len = 1;
	add_frame(M_REQUEST, enrol_encode_request(out, sizeof(out), &req));
	snprintf(req.name, sizeof(req.name), "a");
	req.csr_len = ENROL_CSR_MAX;
	n = enrol_encode_request(out, sizeof(out), &req);
	add_frame(M_REQUEST, n);
	add_one_past(M_REQUEST, n, ENROL_ID_LEN + ENROL_SECRET_LEN + 1 + 1);

	add_frame(M_ISSUED, enrol_encode_issued(out, sizeof(out), &iss));
	iss.port = 0;
	iss.cert_len = 1;
	iss.ca_len = ENROL_CERT_MAX;
	n = enrol_encode_issued(out, sizeof(out), &iss);
	add_frame(M_ISSUED, n);
	add_one_past(M_ISSUED, n, 2 + 2 + 1);

	add_frame(M_REFUSED, enrol_encode_refused(out, sizeof(out), &ref));
	ref.code = 4095;
	memset(ref.msg, '~', ENROL_MSG_MAX);
	n = enrol_encode_refused(out, sizeof(out), &ref);
	add_frame(M_REFUSED, n);
	add_one_past(M_REFUSED, n, 4);

	fill(tok.pin, ENROL_PIN_LEN, 3);
	fill(tok.id, ENROL_ID_LEN, 4);
	fill(tok.secret, ENROL_SECRET_LEN, 5);
	snprintf(tok.address, sizeof(tok.address), "enrol.example.net:7010");
	add_token(&tok);
	snprintf(tok.address, sizeof(tok.address), "[2001:db8::1%%eth0]:1");
	snprintf(tok.receiver, sizeof(tok.receiver), "10.0.0.1:65535");
	add_token(&tok);
	memset(tok.address, 'h', ENROL_ADDR_MAX - 6);
	snprintf(tok.address + ENROL_ADDR_MAX - 6, 7, ":12345");
	memcpy(tok.receiver, tok.address, sizeof(tok.receiver));
	add_token(&tok);
	add_with(M_TOKEN, "tern2.AAAA", 10);
	/* Port 0 spelt "00": once accepted, as net_parse_hostport reads any digits. */
	add_with(M_TOKEN_BIN, "\x04h:00\x00" PIN_ID_SECRET, 6 + sizeof(PIN_ID_SECRET) - 1);
}

// SPDX-License-Identifier: GPL-2.0-only
/* Join tokens and the enrolment port's frames; see enrol.h. */
#include "common/enrol.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "common/cursor.h"
#include "common/net.h"
#include "common/tls.h"

#define TOKEN_CHECK_LEN 4
/* Both address lengths, the fixed fields and the checksum. */
#define TOKEN_FIXED (2 + ENROL_PIN_LEN + ENROL_ID_LEN + ENROL_SECRET_LEN + TOKEN_CHECK_LEN)
#define TOKEN_BIN_MAX (TOKEN_FIXED + 2 * ENROL_ADDR_MAX)

_Static_assert(sizeof(ENROL_TOKEN_PREFIX) - 1 + (TOKEN_BIN_MAX * 4 + 2) / 3 < ENROL_TOKEN_MAX,
	       "ENROL_TOKEN_MAX too small");

static const char b64url[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64_value(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '-')
		return 62;
	if (ch == '_')
		return 63;
	return -1;
}

/* Unpadded base64url; out must hold (len * 4 + 2) / 3 + 1 bytes. */
static size_t b64_encode(const uint8_t *in, size_t len, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		size_t n = MIN(len - i, (size_t)3);

		if (n > 1)
			v |= (uint32_t)in[i + 1] << 8;
		if (n > 2)
			v |= in[i + 2];
		out[o++] = b64url[(v >> 18) & 63];
		out[o++] = b64url[(v >> 12) & 63];
		if (n > 1)
			out[o++] = b64url[(v >> 6) & 63];
		if (n > 2)
			out[o++] = b64url[v & 63];
	}
	out[o] = '\0';
	return o;
}

/* Strict: only the alphabet, no padding, no length that cannot occur, and the unused low
 * bits of the last character zero, so each byte string has exactly one text. Returns the
 * decoded length or -EBADMSG. */
static int b64_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
	size_t o = 0, need = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
	uint32_t acc = 0;
	unsigned bits = 0;

	if (len % 4 == 1 || need > cap)
		return -EBADMSG;
	for (size_t i = 0; i < len; i++) {
		int v = b64_value(in[i]);

		if (v < 0)
			return -EBADMSG;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0)
		return -EBADMSG;
	return (int)o;
}

static bool sha256(const uint8_t *in, size_t len, uint8_t out[32])
{
	unsigned n = 0;

	return EVP_Digest(in, len, out, &n, EVP_sha256(), NULL) == 1 && n == 32;
}

/* HOST:PORT (or [V6]:PORT) of plain characters with a port in 1..65535. */
static bool addr_is_valid(const char *s, size_t len)
{
	char *host = NULL, *port = NULL;
	uint64_t v;
	bool ok;

	if (len == 0 || len > ENROL_ADDR_MAX || strlen(s) != len)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || strchr(".-_:[]%", ch)))
			return false;
	}
	if (net_parse_hostport(s, &host, &port) < 0)
		return false;
	/* By value: "00" is port 0 too. */
	ok = parse_u64(port, 1, 65535, &v) == 0;
	free(host);
	free(port);
	return ok;
}

bool enrol_name_reserved(const char *name)
{
	/* Any case: an operator reading a list should not have to tell them apart. */
	return strcasecmp(name, TLS_SHARED_AGENT_CN) == 0 || strcasecmp(name, TLS_RECEIVER_CN) == 0;
}

void enrol_hex(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

static int hex_value(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int enrol_unhex(const char *s, uint8_t *out, size_t len)
{
	if (strlen(s) != 2 * len)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int enrol_token_encode(const struct enrol_token *t, char *out, size_t cap)
{
	size_t alen = strnlen(t->address, sizeof(t->address));
	size_t rlen = strnlen(t->receiver, sizeof(t->receiver));
	char text[ENROL_TOKEN_MAX];
	uint8_t bin[TOKEN_BIN_MAX], md[32];
	size_t n = 0, tlen;

	if (!addr_is_valid(t->address, alen) || (rlen > 0 && !addr_is_valid(t->receiver, rlen)))
		return -EINVAL;
	bin[n++] = (uint8_t)alen;
	memcpy(bin + n, t->address, alen);
	n += alen;
	bin[n++] = (uint8_t)rlen;
	memcpy(bin + n, t->receiver, rlen);
	n += rlen;
	memcpy(bin + n, t->pin, ENROL_PIN_LEN);
	n += ENROL_PIN_LEN;
	memcpy(bin + n, t->id, ENROL_ID_LEN);
	n += ENROL_ID_LEN;
	memcpy(bin + n, t->secret, ENROL_SECRET_LEN);
	n += ENROL_SECRET_LEN;
	if (!sha256(bin, n, md))
		return -EIO;
	memcpy(bin + n, md, TOKEN_CHECK_LEN);
	n += TOKEN_CHECK_LEN;
	tlen = (size_t)snprintf(text, sizeof(text), "%s", ENROL_TOKEN_PREFIX);
	tlen += b64_encode(bin, n, text + tlen);
	OPENSSL_cleanse(bin, sizeof(bin));
	if (tlen + 1 > cap) {
		OPENSSL_cleanse(text, sizeof(text));
		return -ENOSPC;
	}
	memcpy(out, text, tlen + 1);
	OPENSSL_cleanse(text, sizeof(text));
	return (int)tlen;
}

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

int enrol_token_decode(const char *s, struct enrol_token *ret_t)
{
	const size_t plen = sizeof(ENROL_TOKEN_PREFIX) - 1;
	uint8_t bin[TOKEN_BIN_MAX], md[32];
	struct enrol_token t = { 0 };
	size_t len, n = 0, alen, rlen;
	int got, r = -EBADMSG;

	while (is_blank(*s))
		s++;
	/* The whole text: a bounded length would leave whatever follows a long run of
	 * blanks unread, accepting a token with garbage after it. */
	len = strlen(s);
	while (len > 0 && is_blank(s[len - 1]))
		len--;
	if (len > ENROL_TOKEN_MAX)
		return -EBADMSG;
	if (len < plen || memcmp(s, ENROL_TOKEN_PREFIX, plen) != 0) {
		/* "ternN." of another N is a token of another version, not a damaged one. */
		if (len > 5 && memcmp(s, "tern", 4) == 0 && s[4] >= '0' && s[4] <= '9' &&
		    memchr(s, '.', MIN(len, (size_t)8)))
			return -EPROTONOSUPPORT;
		return -EBADMSG;
	}
	got = b64_decode(s + plen, len - plen, bin, sizeof(bin));
	if (got < (int)TOKEN_FIXED)
		goto out;
	alen = bin[n++];
	if (n + alen + 1 > (size_t)got)
		goto out;
	memcpy(t.address, bin + n, alen);
	n += alen;
	rlen = bin[n++];
	if (n + rlen + ENROL_PIN_LEN + ENROL_ID_LEN + ENROL_SECRET_LEN + TOKEN_CHECK_LEN !=
	    (size_t)got)
		goto out;
	memcpy(t.receiver, bin + n, rlen);
	n += rlen;
	if (!addr_is_valid(t.address, alen) || (rlen > 0 && !addr_is_valid(t.receiver, rlen)))
		goto out;
	memcpy(t.pin, bin + n, ENROL_PIN_LEN);
	n += ENROL_PIN_LEN;
	memcpy(t.id, bin + n, ENROL_ID_LEN);
	n += ENROL_ID_LEN;
	memcpy(t.secret, bin + n, ENROL_SECRET_LEN);
	n += ENROL_SECRET_LEN;
	if (!sha256(bin, n, md) || memcmp(md, bin + n, TOKEN_CHECK_LEN) != 0)
		goto out;
	*ret_t = t;
	r = 0;
out:
	OPENSSL_cleanse(bin, sizeof(bin));
	OPENSSL_cleanse(&t, sizeof(t));
	return r;
}

/* Starts a frame of type at out, leaving its length to finish(). */
static struct cur begin(uint8_t *out, size_t cap, enum enrol_type type)
{
	struct cur c = { .w = out, .left = cap };

	put_be(&c, ENROL_MAGIC, 4);
	put_be(&c, ENROL_VERSION, 1);
	put_be(&c, type, 1);
	put_be(&c, 0, 2);
	put_be(&c, 0, 4);
	return c;
}

static int finish(struct cur *c, uint8_t *out)
{
	size_t len;

	if (c->bad)
		return -ENOSPC;
	len = (size_t)(c->w - out) - ENROL_HDR_LEN;
	if (len > ENROL_PAYLOAD_MAX)
		return -EINVAL;
	for (unsigned i = 0; i < 4; i++)
		out[8 + i] = (uint8_t)(len >> (8 * (3 - i)));
	return (int)(len + ENROL_HDR_LEN);
}

int enrol_encode_request(uint8_t *out, size_t cap, const struct enrol_request *m)
{
	size_t nlen = strnlen(m->name, sizeof(m->name));
	struct cur c;

	if (!name_is_valid(m->name, nlen) || !m->csr || m->csr_len == 0 ||
	    m->csr_len > ENROL_CSR_MAX)
		return -EINVAL;
	c = begin(out, cap, ENROL_REQUEST);
	put_bytes(&c, m->id, ENROL_ID_LEN);
	put_bytes(&c, m->secret, ENROL_SECRET_LEN);
	put_be(&c, nlen, 1);
	put_bytes(&c, m->name, nlen);
	put_be(&c, m->csr_len, 2);
	put_bytes(&c, m->csr, m->csr_len);
	return finish(&c, out);
}

int enrol_encode_issued(uint8_t *out, size_t cap, const struct enrol_issued *m)
{
	struct cur c;

	if (!m->cert || m->cert_len == 0 || m->cert_len > ENROL_CERT_MAX || !m->ca ||
	    m->ca_len == 0 || m->ca_len > ENROL_CERT_MAX)
		return -EINVAL;
	c = begin(out, cap, ENROL_ISSUED);
	put_be(&c, m->port, 2);
	put_be(&c, m->cert_len, 2);
	put_bytes(&c, m->cert, m->cert_len);
	put_be(&c, m->ca_len, 2);
	put_bytes(&c, m->ca, m->ca_len);
	return finish(&c, out);
}

/* A message crosses the wire only as printable ASCII, so a peer cannot smuggle terminal
 * escapes or extra log lines through a refusal. */
static bool msg_is_valid(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	}
	return true;
}

int enrol_encode_refused(uint8_t *out, size_t cap, const struct enrol_refused *m)
{
	size_t len = strnlen(m->msg, sizeof(m->msg));
	struct cur c;

	if (len == 0 || len > ENROL_MSG_MAX || !msg_is_valid(m->msg, len) || m->code == 0 ||
	    m->code > 4095)
		return -EINVAL;
	c = begin(out, cap, ENROL_REFUSED);
	put_be(&c, m->code, 4);
	put_be(&c, len, 2);
	put_bytes(&c, m->msg, len);
	return finish(&c, out);
}

int enrol_decode_hdr(const uint8_t in[ENROL_HDR_LEN], uint8_t *ret_type, uint32_t *ret_len)
{
	struct cur c = { .r = in, .left = ENROL_HDR_LEN };
	uint32_t magic = (uint32_t)get_be(&c, 4), len;
	uint8_t version = (uint8_t)get_be(&c, 1), type = (uint8_t)get_be(&c, 1);
	uint16_t zero = (uint16_t)get_be(&c, 2);

	len = (uint32_t)get_be(&c, 4);
	if (magic != ENROL_MAGIC)
		return -EBADMSG;
	if (version != ENROL_VERSION)
		return -EPROTONOSUPPORT;
	if (type < ENROL_REQUEST || type > ENROL_REFUSED || zero != 0)
		return -EBADMSG;
	if (len > ENROL_PAYLOAD_MAX)
		return -EMSGSIZE;
	*ret_type = type;
	*ret_len = len;
	return 0;
}

int enrol_decode_request(const uint8_t *p, size_t len, struct enrol_request *ret_m)
{
	struct cur c = { .r = p, .left = len };
	struct enrol_request m = { 0 };
	const uint8_t *id, *secret, *name;
	size_t nlen;

	id = get_bytes(&c, ENROL_ID_LEN);
	secret = get_bytes(&c, ENROL_SECRET_LEN);
	nlen = (size_t)get_be(&c, 1);
	name = get_bytes(&c, nlen);
	m.csr_len = (size_t)get_be(&c, 2);
	m.csr = get_bytes(&c, m.csr_len);
	if (c.bad || c.left != 0 || m.csr_len == 0 || m.csr_len > ENROL_CSR_MAX)
		return -EBADMSG;
	if (nlen > NAME_MAX_LEN || !name_is_valid((const char *)name, nlen))
		return -EINVAL;
	memcpy(m.id, id, ENROL_ID_LEN);
	memcpy(m.secret, secret, ENROL_SECRET_LEN);
	memcpy(m.name, name, nlen);
	*ret_m = m;
	OPENSSL_cleanse(&m, sizeof(m));
	return 0;
}

int enrol_decode_issued(const uint8_t *p, size_t len, struct enrol_issued *ret_m)
{
	struct cur c = { .r = p, .left = len };
	struct enrol_issued m = { 0 };

	m.port = (uint16_t)get_be(&c, 2);
	m.cert_len = (size_t)get_be(&c, 2);
	m.cert = get_bytes(&c, m.cert_len);
	m.ca_len = (size_t)get_be(&c, 2);
	m.ca = get_bytes(&c, m.ca_len);
	if (c.bad || c.left != 0 || m.cert_len == 0 || m.cert_len > ENROL_CERT_MAX ||
	    m.ca_len == 0 || m.ca_len > ENROL_CERT_MAX)
		return -EBADMSG;
	*ret_m = m;
	return 0;
}

int enrol_decode_refused(const uint8_t *p, size_t len, struct enrol_refused *ret_m)
{
	struct cur c = { .r = p, .left = len };
	struct enrol_refused m = { 0 };
	const uint8_t *msg;
	size_t mlen;

	m.code = (uint32_t)get_be(&c, 4);
	mlen = (size_t)get_be(&c, 2);
	msg = get_bytes(&c, mlen);
	if (c.bad || c.left != 0 || m.code == 0 || m.code > 4095 || mlen == 0 ||
	    mlen > ENROL_MSG_MAX || !msg_is_valid((const char *)msg, mlen))
		return -EBADMSG;
	memcpy(m.msg, msg, mlen);
	*ret_m = m;
	return 0;
}

int enrol_recv(struct conn *c, uint8_t *buf, uint8_t *ret_type, uint32_t *ret_len)
{
	uint8_t hdr[ENROL_HDR_LEN];
	uint32_t len;
	uint8_t type;
	int r;

	r = conn_recv_exact(c, hdr, sizeof(hdr));
	if (r < 0)
		return r;
	r = enrol_decode_hdr(hdr, &type, &len);
	if (r < 0)
		return r;
	r = conn_recv_exact(c, buf, len);
	if (r < 0)
		return r;
	*ret_type = type;
	*ret_len = len;
	return 0;
}

// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests for common/enrol.c (join tokens, enrolment frames) and the enrolment parts of
 * common/tls.c (certificate requests, signing, the bundle a join writes). */
#include "common/enrol.h"

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/log.h"
#include "common/tls.h"
#include "common/util.h"
#include "helpers.h"

static struct enrol_token sample(void)
{
	struct enrol_token t = { 0 };

	snprintf(t.address, sizeof(t.address), "enrol.example.net:7010");
	snprintf(t.receiver, sizeof(t.receiver), "[2001:db8::1]:7000");
	for (unsigned i = 0; i < ENROL_PIN_LEN; i++)
		t.pin[i] = (uint8_t)(i * 7 + 1);
	for (unsigned i = 0; i < ENROL_ID_LEN; i++)
		t.id[i] = (uint8_t)(0xa0 + i);
	for (unsigned i = 0; i < ENROL_SECRET_LEN; i++)
		t.secret[i] = (uint8_t)(255 - i);
	return t;
}

static void assert_same(const struct enrol_token *a, const struct enrol_token *b)
{
	ck_assert_str_eq(a->address, b->address);
	ck_assert_str_eq(a->receiver, b->receiver);
	ck_assert_mem_eq(a->pin, b->pin, ENROL_PIN_LEN);
	ck_assert_mem_eq(a->id, b->id, ENROL_ID_LEN);
	ck_assert_mem_eq(a->secret, b->secret, ENROL_SECRET_LEN);
}

START_TEST(test_enrol_token_round_trip)
{
	struct enrol_token t = sample(), got;
	char text[ENROL_TOKEN_MAX], padded[ENROL_TOKEN_MAX + 8];
	int n;

	n = enrol_token_encode(&t, text, sizeof(text));
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq((int)strlen(text), n);
	ck_assert_int_eq(strncmp(text, ENROL_TOKEN_PREFIX, strlen(ENROL_TOKEN_PREFIX)), 0);
	/* Only the URL-safe alphabet: a token survives shells, URLs and copy and paste. */
	ck_assert_uint_eq(strspn(text + strlen(ENROL_TOKEN_PREFIX),
				 "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
			  strlen(text) - strlen(ENROL_TOKEN_PREFIX));
	ck_assert_int_eq(enrol_token_decode(text, &got), 0);
	assert_same(&t, &got);
	/* A pasted token may bring blanks and a newline along. */
	snprintf(padded, sizeof(padded), "  %s\r\n", text);
	ck_assert_int_eq(enrol_token_decode(padded, &got), 0);
	assert_same(&t, &got);
	/* Without a replication address. */
	t.receiver[0] = '\0';
	ck_assert_int_gt(enrol_token_encode(&t, text, sizeof(text)), 0);
	ck_assert_int_eq(enrol_token_decode(text, &got), 0);
	assert_same(&t, &got);
}
END_TEST

START_TEST(test_enrol_token_rejects_every_flipped_character)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	struct enrol_token t = sample(), got;
	char text[ENROL_TOKEN_MAX], bad[ENROL_TOKEN_MAX];
	size_t len;

	ck_assert_int_gt(enrol_token_encode(&t, text, sizeof(text)), 0);
	len = strlen(text);
	/* Every other character of the alphabet at every position, the prefix included. */
	for (size_t i = 0; i < len; i++) {
		for (size_t a = 0; a < sizeof(alphabet) - 1; a++) {
			if (alphabet[a] == text[i])
				continue;
			memcpy(bad, text, len + 1);
			bad[i] = alphabet[a];
			ck_assert_msg(enrol_token_decode(bad, &got) < 0, "flip at %zu to %c accepted",
				      i, alphabet[a]);
		}
	}
}
END_TEST

START_TEST(test_enrol_token_rejects_truncated_and_extended)
{
	struct enrol_token t = sample(), got;
	char text[ENROL_TOKEN_MAX], bad[ENROL_TOKEN_MAX + 8];
	size_t len;

	ck_assert_int_gt(enrol_token_encode(&t, text, sizeof(text)), 0);
	len = strlen(text);
	for (size_t cut = 0; cut < len; cut++) {
		memcpy(bad, text, cut);
		bad[cut] = '\0';
		ck_assert_msg(enrol_token_decode(bad, &got) < 0, "prefix of %zu accepted", cut);
	}
	snprintf(bad, sizeof(bad), "%sAA", text);
	ck_assert_int_eq(enrol_token_decode(bad, &got), -EBADMSG);
	snprintf(bad, sizeof(bad), "%s=", text);
	ck_assert_int_eq(enrol_token_decode(bad, &got), -EBADMSG);
	snprintf(bad, sizeof(bad), "%s x", text);
	ck_assert_int_eq(enrol_token_decode(bad, &got), -EBADMSG);
}
END_TEST

/* Blanks around a token are allowed however many; text after them is not, however far. */
START_TEST(test_enrol_token_rejects_text_after_many_blanks)
{
	struct enrol_token t = sample(), got;
	char text[ENROL_TOKEN_MAX], padded[ENROL_TOKEN_MAX + 2100];
	size_t len;

	ck_assert_int_gt(enrol_token_encode(&t, text, sizeof(text)), 0);
	len = strlen(text);
	memcpy(padded, text, len);
	memset(padded + len, ' ', 2000);
	padded[len + 2000] = '\0';
	ck_assert_int_eq(enrol_token_decode(padded, &got), 0);
	assert_same(&t, &got);
	padded[len + 1999] = 'x';
	ck_assert_int_eq(enrol_token_decode(padded, &got), -EBADMSG);
}
END_TEST

START_TEST(test_enrol_token_rejects_other_versions_and_garbage)
{
	struct enrol_token got;

	ck_assert_int_eq(enrol_token_decode("tern2.AAAA", &got), -EPROTONOSUPPORT);
	ck_assert_int_eq(enrol_token_decode("", &got), -EBADMSG);
	ck_assert_int_eq(enrol_token_decode("tern1.", &got), -EBADMSG);
	ck_assert_int_eq(enrol_token_decode("hello world", &got), -EBADMSG);
	ck_assert_int_eq(enrol_token_decode("tern1.+/+/", &got), -EBADMSG);
}
END_TEST

START_TEST(test_enrol_token_encode_refuses_bad_addresses)
{
	static const char *const bad[] = {
		"", "nohostport", "host:", ":7000", "host:0", "host:70000", "a b:1", "host:1\n",
		"h:1:2", "host:00", "[::1]:0000",
	};
	struct enrol_token t = sample();
	char text[ENROL_TOKEN_MAX];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(t.address, sizeof(t.address), "%s", bad[i]);
		ck_assert_msg(enrol_token_encode(&t, text, sizeof(text)) == -EINVAL, "'%s' accepted",
			      bad[i]);
	}
	t = sample();
	ck_assert_int_eq(enrol_token_encode(&t, text, 20), -ENOSPC);
}
END_TEST

START_TEST(test_enrol_hex)
{
	uint8_t in[3] = { 0x00, 0xab, 0xff }, out[3];
	char hex[7];

	enrol_hex(in, 3, hex);
	ck_assert_str_eq(hex, "00abff");
	ck_assert_int_eq(enrol_unhex("00ABff", out, 3), 0);
	ck_assert_mem_eq(in, out, 3);
	ck_assert_int_eq(enrol_unhex("00abf", out, 3), -EINVAL);
	ck_assert_int_eq(enrol_unhex("00abfg", out, 3), -EINVAL);
}
END_TEST

/* The receiver's own names are never issued, in any case; names merely like them are. */
START_TEST(test_enrol_name_reserved)
{
	ck_assert(enrol_name_reserved("tern-agent"));
	ck_assert(enrol_name_reserved("TERN-Agent"));
	ck_assert(enrol_name_reserved("tern-receiver"));
	ck_assert(enrol_name_reserved(TLS_SHARED_AGENT_CN));
	ck_assert(enrol_name_reserved(TLS_RECEIVER_CN));
	ck_assert(!enrol_name_reserved("tern-agent1"));
	ck_assert(!enrol_name_reserved("tern-agent."));
	ck_assert(!enrol_name_reserved("tern"));
	ck_assert(!enrol_name_reserved("web1"));
	ck_assert(!enrol_name_reserved(""));
}
END_TEST

static uint8_t frame[ENROL_FRAME_MAX];

/* Decodes the header of a frame of n bytes and checks that it spans exactly n. */
static const uint8_t *payload_of(int n, uint8_t want_type, uint32_t *ret_len)
{
	uint8_t type = 0;

	ck_assert_int_ge(n, ENROL_HDR_LEN);
	ck_assert_int_eq(enrol_decode_hdr(frame, &type, ret_len), 0);
	ck_assert_uint_eq(type, want_type);
	ck_assert_uint_eq(*ret_len + ENROL_HDR_LEN, (unsigned)n);
	return frame + ENROL_HDR_LEN;
}

START_TEST(test_enrol_request_round_trip_and_truncation)
{
	static const uint8_t csr[] = { 0x30, 0x03, 0x02, 0x01, 0x05 };
	struct enrol_request m = { .csr = csr, .csr_len = sizeof(csr) }, got;
	const uint8_t *p;
	uint32_t len;
	int n;

	memset(m.id, 0x11, sizeof(m.id));
	memset(m.secret, 0x22, sizeof(m.secret));
	snprintf(m.name, sizeof(m.name), "web-1.example");
	n = enrol_encode_request(frame, sizeof(frame), &m);
	p = payload_of(n, ENROL_REQUEST, &len);
	ck_assert_int_eq(enrol_decode_request(p, len, &got), 0);
	ck_assert_mem_eq(got.id, m.id, sizeof(m.id));
	ck_assert_mem_eq(got.secret, m.secret, sizeof(m.secret));
	ck_assert_str_eq(got.name, m.name);
	ck_assert_uint_eq(got.csr_len, sizeof(csr));
	ck_assert_mem_eq(got.csr, csr, sizeof(csr));
	for (uint32_t cut = 0; cut < len; cut++)
		ck_assert_int_lt(enrol_decode_request(p, cut, &got), 0);
	/* A trailing byte is refused too. */
	frame[ENROL_HDR_LEN + len] = 0;
	ck_assert_int_eq(enrol_decode_request(p, len + 1, &got), -EBADMSG);
	/* An invalid name is its own error, so the receiver can say what is wrong. */
	frame[ENROL_HDR_LEN + ENROL_ID_LEN + ENROL_SECRET_LEN + 1] = '/';
	ck_assert_int_eq(enrol_decode_request(p, len, &got), -EINVAL);
	snprintf(m.name, sizeof(m.name), "bad name");
	ck_assert_int_eq(enrol_encode_request(frame, sizeof(frame), &m), -EINVAL);
	snprintf(m.name, sizeof(m.name), "ok");
	m.csr_len = ENROL_CSR_MAX + 1;
	ck_assert_int_eq(enrol_encode_request(frame, sizeof(frame), &m), -EINVAL);
}
END_TEST

START_TEST(test_enrol_issued_and_refused_round_trip)
{
	static const uint8_t cert[] = { 1, 2, 3 }, ca[] = { 4, 5 };
	struct enrol_issued m = { .port = 7000, .cert = cert, .cert_len = 3, .ca = ca, .ca_len = 2 };
	struct enrol_refused no = { .code = EACCES }, gotno;
	struct enrol_issued got;
	const uint8_t *p;
	uint32_t len;
	int n;

	n = enrol_encode_issued(frame, sizeof(frame), &m);
	p = payload_of(n, ENROL_ISSUED, &len);
	ck_assert_int_eq(enrol_decode_issued(p, len, &got), 0);
	ck_assert_uint_eq(got.port, 7000);
	ck_assert_uint_eq(got.cert_len, 3);
	ck_assert_mem_eq(got.cert, cert, 3);
	ck_assert_uint_eq(got.ca_len, 2);
	ck_assert_mem_eq(got.ca, ca, 2);
	for (uint32_t cut = 0; cut < len; cut++)
		ck_assert_int_eq(enrol_decode_issued(p, cut, &got), -EBADMSG);

	snprintf(no.msg, sizeof(no.msg), "the token expired");
	n = enrol_encode_refused(frame, sizeof(frame), &no);
	p = payload_of(n, ENROL_REFUSED, &len);
	ck_assert_int_eq(enrol_decode_refused(p, len, &gotno), 0);
	ck_assert_uint_eq(gotno.code, EACCES);
	ck_assert_str_eq(gotno.msg, "the token expired");
	for (uint32_t cut = 0; cut < len; cut++)
		ck_assert_int_eq(enrol_decode_refused(p, cut, &gotno), -EBADMSG);
	/* A control character would let a peer forge log lines or terminal escapes. */
	frame[n - 1] = '\033';
	ck_assert_int_eq(enrol_decode_refused(p, len, &gotno), -EBADMSG);
	snprintf(no.msg, sizeof(no.msg), "two\nlines");
	ck_assert_int_eq(enrol_encode_refused(frame, sizeof(frame), &no), -EINVAL);
}
END_TEST

START_TEST(test_enrol_hdr_rejects_bad_headers)
{
	static const uint8_t csr[] = { 0x30 };
	struct enrol_request m = { .csr = csr, .csr_len = 1, .name = "a" };
	uint8_t type;
	uint32_t len;
	int n = enrol_encode_request(frame, sizeof(frame), &m);

	ck_assert_int_gt(n, 0);
	frame[0] ^= 1;
	ck_assert_int_eq(enrol_decode_hdr(frame, &type, &len), -EBADMSG);
	frame[0] ^= 1;
	frame[4] = 2;
	ck_assert_int_eq(enrol_decode_hdr(frame, &type, &len), -EPROTONOSUPPORT);
	frame[4] = ENROL_VERSION;
	frame[5] = 9;
	ck_assert_int_eq(enrol_decode_hdr(frame, &type, &len), -EBADMSG);
	frame[5] = ENROL_REQUEST;
	frame[7] = 1;
	ck_assert_int_eq(enrol_decode_hdr(frame, &type, &len), -EBADMSG);
	frame[7] = 0;
	frame[8] = 0xff;
	ck_assert_int_eq(enrol_decode_hdr(frame, &type, &len), -EMSGSIZE);
}
END_TEST

/* ---- certificate requests and bundles, on a real receiver state ---- */

static char tmpdir[PATH_MAX];
static char state[PATH_MAX + 16];
static char other[PATH_MAX + 16];

static void setup(void)
{
	bool created;

	t_mkdtemp(tmpdir, "enrol");
	snprintf(state, sizeof(state), "%s/state", tmpdir);
	snprintf(other, sizeof(other), "%s/other", tmpdir);
	ck_assert_int_eq(tls_init_state(state, &created), 0);
	ck_assert_int_eq(tls_init_state(other, &created), 0);
}

static void teardown(void)
{
	t_rmtree(tmpdir);
}

/* The shared bundle's mark: the SHA-256 of its certificate, the same as its DER's, and
 * different from a certificate signed for the same name on request. */
START_TEST(test_tls_file_cert_sha256_marks_one_certificate)
{
	char path[PATH_MAX + 64], cn[128], serial[TLS_SERIAL_HEX_MAX + 1], why[256] = "";
	uint8_t sha[TLS_PIN_LEN], again[TLS_PIN_LEN], der_sha[TLS_PIN_LEN], signed_sha[TLS_PIN_LEN];
	uint8_t *csr = NULL, *cert = NULL, *ca = NULL;
	size_t csr_len = 0, cert_len = 0, ca_len = 0;
	const unsigned char *p;
	EVP_PKEY *key = NULL;
	X509 *x;

	snprintf(path, sizeof(path), "%s/%s", state, TLS_AGENT_BUNDLE);
	ck_assert_int_eq(tls_file_cert_sha256(path, sha, cn, sizeof(cn)), 0);
	ck_assert_str_eq(cn, TLS_SHARED_AGENT_CN);
	ck_assert_int_eq(tls_file_cert_sha256(path, again, cn, sizeof(cn)), 0);
	ck_assert_mem_eq(sha, again, TLS_PIN_LEN);
	snprintf(path, sizeof(path), "%s/nothing.pem", state);
	ck_assert_int_eq(tls_file_cert_sha256(path, again, cn, sizeof(cn)), -ENOENT);
	/* A certificate signed with the very same name is another certificate. */
	ck_assert_int_eq(tls_csr_new(TLS_SHARED_AGENT_CN, &key, &csr, &csr_len), 0);
	ck_assert_int_eq(tls_csr_sign(state, csr, csr_len, TLS_SHARED_AGENT_CN, &cert, &cert_len,
				      &ca, &ca_len, serial, why, sizeof(why)), 0);
	p = cert;
	x = d2i_X509(NULL, &p, (long)cert_len);
	ck_assert_ptr_nonnull(x);
	ck_assert_int_eq(tls_cert_sha256(x, signed_sha), 0);
	ck_assert_int_ne(memcmp(signed_sha, sha, TLS_PIN_LEN), 0);
	ck_assert(EVP_Digest(cert, cert_len, der_sha, NULL, EVP_sha256(), NULL) == 1);
	ck_assert_mem_eq(signed_sha, der_sha, TLS_PIN_LEN);
	ck_assert_int_eq(tls_cert_sha256(NULL, again), -EINVAL);
	X509_free(x);
	EVP_PKEY_free(key);
	free(csr);
	free(cert);
	free(ca);
}
END_TEST

START_TEST(test_tls_csr_sign_and_bundle)
{
	char serial[TLS_SERIAL_HEX_MAX + 1], why[256] = "", path[PATH_MAX + 16];
	uint8_t pin[TLS_PIN_LEN], other_pin[TLS_PIN_LEN];
	uint8_t *csr = NULL, *cert = NULL, *ca = NULL;
	size_t csr_len = 0, cert_len = 0, ca_len = 0;
	EVP_PKEY *key = NULL, *stranger = NULL;
	uint8_t *csr2 = NULL;
	size_t csr2_len = 0;
	struct stat st;
	SSL_CTX *ctx;
	int r;

	ck_assert_int_eq(tls_ca_pin(state, pin), 0);
	ck_assert_int_eq(tls_ca_pin(other, other_pin), 0);
	ck_assert_int_ne(memcmp(pin, other_pin, TLS_PIN_LEN), 0);
	ck_assert_int_eq(tls_csr_new("web1", &key, &csr, &csr_len), 0);
	ck_assert_int_eq(tls_csr_sign(state, csr, csr_len, "web1", &cert, &cert_len, &ca, &ca_len,
				      serial, why, sizeof(why)), 0);
	ck_assert_uint_gt(strlen(serial), 16);

	snprintf(path, sizeof(path), "%s/agent.pem", tmpdir);
	/* The bundle is written only when everything matches: pin, name, key. */
	ck_assert_int_eq(tls_bundle_write(path, key, cert, cert_len, ca, ca_len, other_pin, "web1"),
			 -EBADMSG);
	ck_assert_int_eq(tls_bundle_write(path, key, cert, cert_len, ca, ca_len, pin, "web2"),
			 -EBADMSG);
	ck_assert_int_eq(tls_csr_new("web1", &stranger, &csr2, &csr2_len), 0);
	ck_assert_int_eq(tls_bundle_write(path, stranger, cert, cert_len, ca, ca_len, pin, "web1"),
			 -EBADMSG);
	ck_assert_int_eq(tls_bundle_write(path, key, cert, cert_len - 1, ca, ca_len, pin, "web1"),
			 -EBADMSG);
	ck_assert_int_eq(access(path, F_OK), -1);
	ck_assert_int_eq(tls_bundle_write(path, key, cert, cert_len, ca, ca_len, pin, "web1"), 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	/* What join wrote is a credential run can load. */
	ctx = tls_client_ctx(path, &r);
	ck_assert_ptr_nonnull(ctx);
	SSL_CTX_free(ctx);

	free(cert);
	free(ca);
	cert = ca = NULL;
	/* A request from another CA's state signs with that CA, which our pin refuses. */
	ck_assert_int_eq(tls_csr_sign(other, csr2, csr2_len, "web1", &cert, &cert_len, &ca, &ca_len,
				      serial, why, sizeof(why)), 0);
	ck_assert_int_eq(tls_bundle_write(path, stranger, cert, cert_len, ca, ca_len, pin, "web1"),
			 -EBADMSG);
	free(cert);
	free(ca);
	EVP_PKEY_free(stranger);
	EVP_PKEY_free(key);
	free(csr2);
	free(csr);
}
END_TEST

START_TEST(test_tls_csr_sign_refuses_bad_requests)
{
	char serial[TLS_SERIAL_HEX_MAX + 1], why[256];
	uint8_t *csr = NULL, *cert = NULL, *ca = NULL, *longer;
	size_t csr_len = 0, cert_len = 0, ca_len = 0;
	EVP_PKEY *key = NULL;

	ck_assert_int_eq(tls_csr_new("web1", &key, &csr, &csr_len), 0);
	/* Trailing bytes. */
	longer = malloc(csr_len + 1);
	ck_assert_ptr_nonnull(longer);
	memcpy(longer, csr, csr_len);
	longer[csr_len] = 0;
	why[0] = '\0';
	ck_assert_int_eq(tls_csr_sign(state, longer, csr_len + 1, "web1", &cert, &cert_len, &ca,
				      &ca_len, serial, why, sizeof(why)), -EBADMSG);
	ck_assert_str_ne(why, "");
	/* Truncated. */
	ck_assert_int_eq(tls_csr_sign(state, csr, csr_len - 1, "web1", &cert, &cert_len, &ca,
				      &ca_len, serial, why, sizeof(why)), -EBADMSG);
	/* A flipped bit in the signature (the last bytes): the holder of the key did not sign it. */
	memcpy(longer, csr, csr_len);
	longer[csr_len - 3] ^= 0x01;
	ck_assert_int_eq(tls_csr_sign(state, longer, csr_len, "web1", &cert, &cert_len, &ca,
				      &ca_len, serial, why, sizeof(why)), -EBADMSG);
	ck_assert_ptr_null(cert);
	ck_assert_int_eq(tls_csr_sign(state, NULL, 0, "web1", &cert, &cert_len, &ca, &ca_len,
				      serial, why, sizeof(why)), -EBADMSG);
	free(longer);
	free(csr);
	EVP_PKEY_free(key);
}
END_TEST

static Suite *enrol_suite(void)
{
	Suite *s = suite_create("enrol");
	TCase *tc = tcase_create("token and frames");
	TCase *tt = tcase_create("certificates");

	tcase_add_test(tc, test_enrol_token_round_trip);
	tcase_add_test(tc, test_enrol_token_rejects_every_flipped_character);
	tcase_add_test(tc, test_enrol_token_rejects_truncated_and_extended);
	tcase_add_test(tc, test_enrol_token_rejects_text_after_many_blanks);
	tcase_add_test(tc, test_enrol_token_rejects_other_versions_and_garbage);
	tcase_add_test(tc, test_enrol_token_encode_refuses_bad_addresses);
	tcase_add_test(tc, test_enrol_hex);
	tcase_add_test(tc, test_enrol_name_reserved);
	tcase_add_test(tc, test_enrol_request_round_trip_and_truncation);
	tcase_add_test(tc, test_enrol_issued_and_refused_round_trip);
	tcase_add_test(tc, test_enrol_hdr_rejects_bad_headers);
	suite_add_tcase(s, tc);
	tcase_add_checked_fixture(tt, setup, teardown);
	tcase_set_timeout(tt, 60);
	tcase_add_test(tt, test_tls_csr_sign_and_bundle);
	tcase_add_test(tt, test_tls_file_cert_sha256_marks_one_certificate);
	tcase_add_test(tt, test_tls_csr_sign_refuses_bad_requests);
	suite_add_tcase(s, tt);
	return s;
}

Suite *(*const t_suites[])(void) = { enrol_suite, NULL };

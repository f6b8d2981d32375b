// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests for common/tls.c: creation and idempotence of a receiver's state, and real
 * TLS 1.3 handshakes over a socketpair, including each refusal mutual TLS is there for. */
#include "common/tls.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "common/util.h"
#include "helpers.h"

static const char *const state_files[] = {
	TLS_CA_CERT, TLS_CA_KEY, TLS_RECEIVER_CERT, TLS_RECEIVER_KEY, TLS_AGENT_BUNDLE,
};

static char tmpdir[PATH_MAX];
static char state_a[PATH_MAX];
static char state_b[PATH_MAX];

static void setup(void)
{
	t_mkdtemp(tmpdir, "tls");
	/* Nested, so tls_init_state has parents to create. */
	ck_assert_int_lt(snprintf(state_a, sizeof(state_a), "%s/a/state", tmpdir), PATH_MAX);
	ck_assert_int_lt(snprintf(state_b, sizeof(state_b), "%s/b/state", tmpdir), PATH_MAX);
}

static void teardown(void)
{
	t_rmtree(tmpdir);
}

static const char *join(char *buf, const char *dir, const char *name)
{
	ck_assert_int_lt(snprintf(buf, PATH_MAX, "%s/%s", dir, name), PATH_MAX);
	return buf;
}

static char *slurp(const char *dir, const char *name, size_t *ret_len)
{
	char path[PATH_MAX];
	char *data = NULL;
	int r;

	r = read_file_all(join(path, dir, name), 1 << 20, &data, ret_len);
	ck_assert_int_eq(r, 0);
	ck_assert_ptr_nonnull(data);
	return data;
}

static void init_state(const char *dir)
{
	bool created = false;

	ck_assert_int_eq(tls_init_state(dir, &created), 0);
	ck_assert(created);
}

static X509 *read_cert(const char *dir, const char *name)
{
	char path[PATH_MAX];
	BIO *bio = BIO_new_file(join(path, dir, name), "r");
	X509 *cert;

	ck_assert_ptr_nonnull(bio);
	cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	ck_assert_ptr_nonnull(cert);
	BIO_free(bio);
	return cert;
}

static void cert_cn(X509 *cert, char *buf, size_t len)
{
	buf[0] = '\0';
	X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, (int)len);
}

static bool ext_critical(X509 *cert, int nid)
{
	int i = X509_get_ext_by_NID(cert, nid, -1);

	ck_assert_int_ge(i, 0);
	return X509_EXTENSION_get_critical(X509_get_ext(cert, i)) == 1;
}

static SSL_CTX *server_ctx(const char *dir)
{
	int err = 1;
	SSL_CTX *ctx = tls_server_ctx(dir, &err);

	ck_assert_ptr_nonnull(ctx);
	ck_assert_int_eq(err, 0);
	return ctx;
}

static SSL_CTX *client_ctx(const char *dir)
{
	char path[PATH_MAX];
	int err = 1;
	SSL_CTX *ctx = tls_client_ctx(join(path, dir, TLS_AGENT_BUNDLE), &err);

	ck_assert_ptr_nonnull(ctx);
	ck_assert_int_eq(err, 0);
	return ctx;
}

/* One end of a connection; run in its own thread so both ends can block. */
struct side {
	SSL_CTX *ctx;
	int fd;
	bool server;
	bool ok;		/* handshake and the echo of one message completed */
	long verify;		/* SSL_get_verify_result() */
	unsigned long err;	/* first queued OpenSSL error, 0 if none */
	char version[16];
	char peer_cn[64];
};

static bool ssl_read_all(SSL *ssl, char *buf, size_t len)
{
	size_t n;

	while (len > 0) {
		if (SSL_read_ex(ssl, buf, len, &n) != 1)
			return false;
		buf += n;
		len -= n;
	}
	return true;
}

static void *side_run(void *arg)
{
	static const char msg[] = "ping!";
	struct side *s = arg;
	char buf[sizeof(msg)];
	X509 *peer;
	size_t n;
	SSL *ssl;

	ssl = SSL_new(s->ctx);
	if (!ssl || !SSL_set_fd(ssl, s->fd))
		goto out;
	if (s->server) {
		if (SSL_accept(ssl) != 1 || !ssl_read_all(ssl, buf, sizeof(buf)) ||
		    SSL_write_ex(ssl, buf, sizeof(buf), &n) != 1)
			goto out;
	} else {
		/* In TLS 1.3 the client finishes before the server has judged its
		 * certificate, so a refusal shows up only when reading the echo. */
		if (SSL_connect(ssl) != 1 || SSL_write_ex(ssl, msg, sizeof(msg), &n) != 1 ||
		    !ssl_read_all(ssl, buf, sizeof(buf)) || memcmp(buf, msg, sizeof(msg)) != 0)
			goto out;
	}
	s->ok = true;
	snprintf(s->version, sizeof(s->version), "%s", SSL_get_version(ssl));
	peer = SSL_get0_peer_certificate(ssl);
	if (peer)
		cert_cn(peer, s->peer_cn, sizeof(s->peer_cn));
out:
	s->err = ERR_peek_error();
	if (ssl)
		s->verify = SSL_get_verify_result(ssl);
	ERR_clear_error();
	SSL_free(ssl);
	/* Closing wakes the other end with EOF if it still waits for us. */
	close(s->fd);
	return NULL;
}

static void connect_pair(SSL_CTX *sctx, SSL_CTX *cctx, struct side *srv, struct side *cli)
{
	pthread_t thread;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	*srv = (struct side){ .ctx = sctx, .fd = sv[0], .server = true };
	*cli = (struct side){ .ctx = cctx, .fd = sv[1] };
	ck_assert_int_eq(pthread_create(&thread, NULL, side_run, srv), 0);
	side_run(cli);
	ck_assert_int_eq(pthread_join(thread, NULL), 0);
}

START_TEST(test_tls_init_state_creates_files)
{
	char *before[ARRAY_SIZE(state_files)];
	size_t before_len[ARRAY_SIZE(state_files)];
	char path[PATH_MAX];
	bool created = false;
	struct dirent *de;
	struct stat st;
	size_t n = 0;
	DIR *d;

	ck_assert_int_eq(tls_init_state(state_a, &created), 0);
	ck_assert(created);
	ck_assert_int_eq(stat(state_a, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0700);
	for (size_t i = 0; i < ARRAY_SIZE(state_files); i++) {
		ck_assert_int_eq(lstat(join(path, state_a, state_files[i]), &st), 0);
		ck_assert(S_ISREG(st.st_mode));
		ck_assert_int_eq(st.st_mode & 07777, 0600);
		before[i] = slurp(state_a, state_files[i], &before_len[i]);
	}
	/* Nothing else, such as a temporary file, is left behind. */
	d = opendir(state_a);
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	ck_assert_uint_eq(n, ARRAY_SIZE(state_files));

	created = true;
	ck_assert_int_eq(tls_init_state(state_a, &created), 0);
	ck_assert(!created);
	for (size_t i = 0; i < ARRAY_SIZE(state_files); i++) {
		size_t len;
		char *after = slurp(state_a, state_files[i], &len);

		ck_assert_uint_eq(len, before_len[i]);
		ck_assert_mem_eq(after, before[i], len);
		free(after);
		free(before[i]);
	}
}
END_TEST

START_TEST(test_tls_certs_carry_roles)
{
	X509 *ca, *rcv, *agent;
	char cn[64];
	size_t len;
	char *bundle, *c1, *k, *c2;
	EVP_PKEY *pub;
	BIGNUM *serial;
	int days, secs;
	char group[32];

	init_state(state_a);
	ca = read_cert(state_a, TLS_CA_CERT);
	rcv = read_cert(state_a, TLS_RECEIVER_CERT);
	agent = read_cert(state_a, TLS_AGENT_BUNDLE);

	cert_cn(ca, cn, sizeof(cn));
	ck_assert_uint_eq(strlen(cn), strlen("tern CA ") + 8);
	ck_assert_int_eq(strncmp(cn, "tern CA ", 8), 0);
	ck_assert_uint_eq(strspn(cn + 8, "0123456789abcdef"), 8);
	ck_assert_int_eq(X509_check_ca(ca), 1);
	ck_assert(ext_critical(ca, NID_basic_constraints));
	ck_assert(ext_critical(ca, NID_key_usage));
	ck_assert_uint_eq(X509_get_key_usage(ca), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
	ck_assert_ptr_nonnull(X509_get0_subject_key_id(ca));

	cert_cn(rcv, cn, sizeof(cn));
	ck_assert_str_eq(cn, "tern-receiver");
	ck_assert_int_eq(X509_check_ca(rcv), 0);
	ck_assert(ext_critical(rcv, NID_key_usage));
	ck_assert_uint_eq(X509_get_key_usage(rcv), KU_DIGITAL_SIGNATURE);
	ck_assert_uint_eq(X509_get_extended_key_usage(rcv), XKU_SSL_SERVER);
	ck_assert_ptr_nonnull(X509_get0_authority_key_id(rcv));
	ck_assert_int_eq(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(rcv),
					       X509_get0_subject_key_id(ca)), 0);
	ck_assert_int_eq(X509_check_issued(ca, rcv), X509_V_OK);

	cert_cn(agent, cn, sizeof(cn));
	ck_assert_str_eq(cn, "tern-agent");
	ck_assert_int_eq(X509_check_ca(agent), 0);
	ck_assert_uint_eq(X509_get_extended_key_usage(agent), XKU_SSL_CLIENT);
	ck_assert_int_eq(X509_check_issued(ca, agent), X509_V_OK);

	X509 *all[] = { ca, rcv, agent };
	for (size_t i = 0; i < ARRAY_SIZE(all); i++) {
		ck_assert_int_eq(X509_get_version(all[i]), X509_VERSION_3);
		ck_assert_int_eq(X509_get_signature_nid(all[i]), NID_ecdsa_with_SHA256);
		pub = X509_get0_pubkey(all[i]);
		ck_assert_int_eq(EVP_PKEY_get_group_name(pub, group, sizeof(group), NULL), 1);
		ck_assert_str_eq(group, "prime256v1");
		serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(all[i]), NULL);
		ck_assert_int_eq(BN_num_bits(serial), 128);
		BN_free(serial);
		/* Valid from an hour ago for ten years. */
		ck_assert_int_eq(ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notBefore(all[i])), 1);
		ck_assert_int_eq(days, 0);
		ck_assert(secs <= -3590 && secs >= -3700);
		ck_assert_int_eq(ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(all[i])), 1);
		ck_assert(days >= 3651 && days <= 3653);
	}
	/* Serials are drawn at random, not counted. */
	ck_assert_int_ne(ASN1_INTEGER_cmp(X509_get0_serialNumber(rcv), X509_get0_serialNumber(agent)), 0);

	/* Bundle: agent certificate, PKCS#8 key, CA certificate, in that order. */
	bundle = slurp(state_a, TLS_AGENT_BUNDLE, &len);
	c1 = strstr(bundle, "-----BEGIN CERTIFICATE-----");
	k = strstr(bundle, "-----BEGIN PRIVATE KEY-----");
	ck_assert_ptr_nonnull(c1);
	ck_assert_ptr_nonnull(k);
	c2 = strstr(k, "-----BEGIN CERTIFICATE-----");
	ck_assert_ptr_nonnull(c2);
	ck_assert(c1 < k);
	ck_assert_ptr_null(strstr(c2 + 1, "-----BEGIN"));
	free(bundle);
	bundle = slurp(state_a, TLS_CA_KEY, &len);
	ck_assert_ptr_eq(strstr(bundle, "-----BEGIN PRIVATE KEY-----"), bundle);
	free(bundle);

	X509_free(agent);
	X509_free(rcv);
	X509_free(ca);
}
END_TEST

START_TEST(test_tls_handshake_roundtrip)
{
	struct side srv, cli;
	SSL_CTX *sctx, *cctx;

	init_state(state_a);
	sctx = server_ctx(state_a);
	cctx = client_ctx(state_a);
	connect_pair(sctx, cctx, &srv, &cli);
	ck_assert(srv.ok);
	ck_assert(cli.ok);
	ck_assert_str_eq(srv.version, "TLSv1.3");
	ck_assert_str_eq(cli.version, "TLSv1.3");
	ck_assert_int_eq(srv.verify, X509_V_OK);
	ck_assert_int_eq(cli.verify, X509_V_OK);
	ck_assert_str_eq(srv.peer_cn, "tern-agent");
	ck_assert_str_eq(cli.peer_cn, "tern-receiver");
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}
END_TEST

START_TEST(test_tls_refuses_foreign_ca)
{
	char path[PATH_MAX];
	struct side srv, cli;
	SSL_CTX *sctx, *cctx;
	X509 *ca_a;

	init_state(state_a);
	init_state(state_b);
	sctx = server_ctx(state_a);

	/* B's agent taught to trust A's receiver, so only the server's check can refuse. */
	cctx = client_ctx(state_b);
	ca_a = read_cert(state_a, TLS_CA_CERT);
	ck_assert_int_eq(X509_STORE_add_cert(SSL_CTX_get_cert_store(cctx), ca_a), 1);
	X509_free(ca_a);
	connect_pair(sctx, cctx, &srv, &cli);
	ck_assert(!srv.ok);
	ck_assert(!cli.ok);
	/* B's agent sends its chain up to B's root, which A does not trust. */
	ck_assert_int_eq(srv.verify, X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN);
	ck_assert_int_eq(ERR_GET_REASON(srv.err), SSL_R_CERTIFICATE_VERIFY_FAILED);
	SSL_CTX_free(cctx);

	/* B's plain bundle does not trust A's receiver either. */
	cctx = tls_client_ctx(join(path, state_b, TLS_AGENT_BUNDLE), NULL);
	ck_assert_ptr_nonnull(cctx);
	connect_pair(sctx, cctx, &srv, &cli);
	ck_assert(!srv.ok);
	ck_assert(!cli.ok);
	ck_assert_int_eq(cli.verify, X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}
END_TEST

START_TEST(test_tls_refuses_client_without_cert)
{
	char path[PATH_MAX];
	struct side srv, cli;
	SSL_CTX *sctx, *cctx;

	init_state(state_a);
	sctx = server_ctx(state_a);
	cctx = SSL_CTX_new(TLS_client_method());
	ck_assert_ptr_nonnull(cctx);
	ck_assert_int_eq(SSL_CTX_set_min_proto_version(cctx, TLS1_3_VERSION), 1);
	ck_assert_int_eq(SSL_CTX_load_verify_locations(cctx, join(path, state_a, TLS_CA_CERT), NULL), 1);
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
	connect_pair(sctx, cctx, &srv, &cli);
	ck_assert(!srv.ok);
	ck_assert(!cli.ok);
	ck_assert_int_eq(cli.verify, X509_V_OK);
	ck_assert_int_eq(ERR_GET_REASON(srv.err), SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}
END_TEST

START_TEST(test_tls_agent_cannot_pose_as_server)
{
	char path[PATH_MAX];
	struct side srv, cli;
	SSL_CTX *sctx, *cctx;
	EVP_PKEY *key;
	X509 *cert;
	BIO *bio;

	init_state(state_a);
	bio = BIO_new_file(join(path, state_a, TLS_AGENT_BUNDLE), "r");
	ck_assert_ptr_nonnull(bio);
	cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	ck_assert_ptr_nonnull(cert);
	ck_assert_ptr_nonnull(key);
	BIO_free(bio);

	sctx = SSL_CTX_new(TLS_server_method());
	ck_assert_ptr_nonnull(sctx);
	ck_assert_int_eq(SSL_CTX_set_min_proto_version(sctx, TLS1_3_VERSION), 1);
	ck_assert_int_eq(SSL_CTX_use_certificate(sctx, cert), 1);
	ck_assert_int_eq(SSL_CTX_use_PrivateKey(sctx, key), 1);
	X509_free(cert);
	EVP_PKEY_free(key);

	cctx = client_ctx(state_a);
	connect_pair(sctx, cctx, &srv, &cli);
	ck_assert(!cli.ok);
	ck_assert(!srv.ok);
	/* The chain is fine; the missing serverAuth purpose is what refuses it. */
	ck_assert_int_eq(cli.verify, X509_V_ERR_INVALID_PURPOSE);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}
END_TEST

START_TEST(test_tls_rejects_corrupt_ca)
{
	char *orig, *now;
	size_t len, now_len;
	char path[PATH_MAX];
	bool created = false;

	init_state(state_a);
	/* A truncated ca.pem: its BEGIN line with no END line. */
	orig = slurp(state_a, TLS_CA_CERT, &len);
	len /= 2;
	ck_assert_int_eq(write_file_atomic(join(path, state_a, TLS_CA_CERT), orig, len, 0600), 0);
	ck_assert_int_eq(tls_init_state(state_a, &created), -EINVAL);
	ck_assert(!created);
	now = slurp(state_a, TLS_CA_CERT, &now_len);
	ck_assert_uint_eq(now_len, len);
	ck_assert_mem_eq(now, orig, len);
	free(now);

	/* And one that is not PEM at all. */
	ck_assert_int_eq(write_file_atomic(path, "garbage\n", 8, 0600), 0);
	ck_assert_int_eq(tls_init_state(state_a, NULL), -EINVAL);
	now = slurp(state_a, TLS_CA_CERT, &now_len);
	ck_assert_uint_eq(now_len, 8);
	ck_assert_mem_eq(now, "garbage\n", 8);
	free(now);
	free(orig);
}
END_TEST

START_TEST(test_tls_refuses_receiver_without_ca)
{
	char path[PATH_MAX];
	struct stat st;

	init_state(state_a);
	ck_assert_int_eq(unlink(join(path, state_a, TLS_CA_CERT)), 0);
	ck_assert_int_eq(tls_init_state(state_a, NULL), -EINVAL);
	ck_assert_int_eq(stat(path, &st), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(test_tls_refuses_foreign_bundle_in_state)
{
	char path[PATH_MAX];
	char *foreign, *now;
	size_t len, now_len;

	init_state(state_a);
	init_state(state_b);
	foreign = slurp(state_b, TLS_AGENT_BUNDLE, &len);
	ck_assert_int_eq(write_file_atomic(join(path, state_a, TLS_AGENT_BUNDLE), foreign, len, 0600), 0);
	ck_assert_int_eq(tls_init_state(state_a, NULL), -EINVAL);
	now = slurp(state_a, TLS_AGENT_BUNDLE, &now_len);
	ck_assert_uint_eq(now_len, len);
	ck_assert_mem_eq(now, foreign, len);
	free(now);
	free(foreign);
}
END_TEST

START_TEST(test_tls_init_restores_missing_files)
{
	char *ca_before, *ca_after, *rcv_key;
	size_t len, after_len, key_len;
	char path[PATH_MAX];
	bool created = false;
	SSL_CTX *sctx, *cctx;
	struct side srv, cli;

	init_state(state_a);
	ca_before = slurp(state_a, TLS_CA_CERT, &len);
	rcv_key = slurp(state_a, TLS_RECEIVER_KEY, &key_len);
	ck_assert_int_eq(unlink(join(path, state_a, TLS_AGENT_BUNDLE)), 0);
	/* As after a crash between writing a key and its certificate. */
	ck_assert_int_eq(unlink(join(path, state_a, TLS_RECEIVER_CERT)), 0);
	ck_assert_int_eq(tls_init_state(state_a, &created), 0);
	ck_assert(created);

	ca_after = slurp(state_a, TLS_CA_CERT, &after_len);
	ck_assert_uint_eq(after_len, len);
	ck_assert_mem_eq(ca_after, ca_before, len);
	free(ca_after);
	ca_after = slurp(state_a, TLS_RECEIVER_KEY, &after_len);
	ck_assert_uint_eq(after_len, key_len);
	ck_assert_mem_eq(ca_after, rcv_key, key_len);
	free(ca_after);
	free(rcv_key);
	free(ca_before);

	sctx = server_ctx(state_a);
	cctx = client_ctx(state_a);
	connect_pair(sctx, cctx, &srv, &cli);
	ck_assert(srv.ok && cli.ok);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}
END_TEST

START_TEST(test_tls_init_accepts_offline_ca_key)
{
	char path[PATH_MAX], out[PATH_MAX];
	bool created = true;
	struct stat st;

	init_state(state_a);
	/* An operator may move ca.key away once everything is issued. */
	ck_assert_int_eq(unlink(join(path, state_a, TLS_CA_KEY)), 0);
	ck_assert_int_eq(tls_init_state(state_a, &created), 0);
	ck_assert(!created);
	ck_assert_int_eq(stat(path, &st), -1);
	ck_assert_int_eq(tls_issue_agent_bundle(state_a, "host-9", join(out, tmpdir, "h.pem")), -ENOENT);
	/* Issuing then needs it back. */
	ck_assert_int_eq(unlink(join(path, state_a, TLS_AGENT_BUNDLE)), 0);
	ck_assert_int_eq(tls_init_state(state_a, &created), -ENOENT);
	ck_assert_int_eq(stat(path, &st), -1);
}
END_TEST

START_TEST(test_tls_issue_agent_bundle)
{
	char path[PATH_MAX], cn[64];
	struct side srv, cli;
	SSL_CTX *sctx, *cctx;
	struct stat st;
	X509 *cert;
	int err;

	init_state(state_a);
	join(path, tmpdir, "host-7.pem");
	ck_assert_int_eq(tls_issue_agent_bundle(state_a, "host-7", path), 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	cert = read_cert(tmpdir, "host-7.pem");
	cert_cn(cert, cn, sizeof(cn));
	ck_assert_str_eq(cn, "host-7");
	X509_free(cert);

	sctx = server_ctx(state_a);
	cctx = tls_client_ctx(path, &err);
	ck_assert_ptr_nonnull(cctx);
	connect_pair(sctx, cctx, &srv, &cli);
	ck_assert(srv.ok && cli.ok);
	ck_assert_str_eq(srv.peer_cn, "host-7");
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);

	join(path, tmpdir, "bad.pem");
	ck_assert_int_eq(tls_issue_agent_bundle(state_a, "bad name", path), -EINVAL);
	ck_assert_int_eq(tls_issue_agent_bundle(state_a, "", path), -EINVAL);
	ck_assert_int_eq(stat(path, &st), -1);
	ck_assert_int_eq(tls_issue_agent_bundle(state_b, "host-8", path), -ENOENT);
}
END_TEST

START_TEST(test_tls_client_ctx_rejects_bad_bundles)
{
	static const char end_key[] = "-----END PRIVATE KEY-----\n";
	const char *key_a, *key_b, *ca_b;
	char path[PATH_MAX], out[PATH_MAX];
	size_t len_a, len_b, certkey_a;
	char *a, *b, *mix;
	int err = 0;

	init_state(state_a);
	init_state(state_b);
	a = slurp(state_a, TLS_AGENT_BUNDLE, &len_a);
	b = slurp(state_b, TLS_AGENT_BUNDLE, &len_b);
	key_a = strstr(a, "-----BEGIN PRIVATE KEY-----");
	key_b = strstr(b, "-----BEGIN PRIVATE KEY-----");
	ck_assert_ptr_nonnull(key_a);
	ck_assert_ptr_nonnull(key_b);
	certkey_a = (size_t)(strstr(key_a, end_key) - a) + strlen(end_key);
	ca_b = strstr(strstr(key_b, end_key), "-----BEGIN CERTIFICATE-----");
	ck_assert_ptr_nonnull(ca_b);
	join(out, tmpdir, "mix.pem");

	/* A's certificate with B's key and CA. */
	ck_assert_int_ge(asprintf(&mix, "%.*s%s", (int)(key_a - a), a, key_b), 0);
	ck_assert_int_eq(write_file_atomic(out, mix, strlen(mix), 0600), 0);
	ck_assert_ptr_null(tls_client_ctx(out, &err));
	ck_assert_int_eq(err, -EINVAL);
	free(mix);

	/* A's certificate and key with B's CA: does not chain. */
	ck_assert_int_ge(asprintf(&mix, "%.*s%s", (int)certkey_a, a, ca_b), 0);
	ck_assert_int_eq(write_file_atomic(out, mix, strlen(mix), 0600), 0);
	ck_assert_ptr_null(tls_client_ctx(out, &err));
	ck_assert_int_eq(err, -EINVAL);
	free(mix);

	/* No CA certificate after the key. */
	ck_assert_int_eq(write_file_atomic(out, a, certkey_a, 0600), 0);
	ck_assert_ptr_null(tls_client_ctx(out, &err));
	ck_assert_int_eq(err, -EINVAL);

	/* A damaged CA certificate after the key. */
	ck_assert_int_eq(write_file_atomic(out, a, len_a - 40, 0600), 0);
	ck_assert_ptr_null(tls_client_ctx(out, &err));
	ck_assert_int_eq(err, -EINVAL);

	ck_assert_ptr_null(tls_client_ctx(join(path, tmpdir, "missing.pem"), &err));
	ck_assert_int_eq(err, -ENOENT);
	free(b);
	free(a);
}
END_TEST

static Suite *tls_suite(void)
{
	Suite *s = suite_create("tls");
	TCase *tc = tcase_create("tls");

	tcase_add_checked_fixture(tc, setup, teardown);
	/* Key generation and handshakes are slow under sanitizers. */
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_tls_init_state_creates_files);
	tcase_add_test(tc, test_tls_certs_carry_roles);
	tcase_add_test(tc, test_tls_handshake_roundtrip);
	tcase_add_test(tc, test_tls_refuses_foreign_ca);
	tcase_add_test(tc, test_tls_refuses_client_without_cert);
	tcase_add_test(tc, test_tls_agent_cannot_pose_as_server);
	tcase_add_test(tc, test_tls_rejects_corrupt_ca);
	tcase_add_test(tc, test_tls_refuses_receiver_without_ca);
	tcase_add_test(tc, test_tls_refuses_foreign_bundle_in_state);
	tcase_add_test(tc, test_tls_init_restores_missing_files);
	tcase_add_test(tc, test_tls_init_accepts_offline_ca_key);
	tcase_add_test(tc, test_tls_issue_agent_bundle);
	tcase_add_test(tc, test_tls_client_ctx_rejects_bad_bundles);
	suite_add_tcase(s, tc);
	return s;
}

Suite *(*const t_suites[])(void) = { tls_suite, NULL };

// SPDX-License-Identifier: GPL-2.0-only
/* TLS for tern: issues the receiver's CA and the receiver's and agents' credentials,
 * and builds the mutual TLS 1.3 contexts both ends use; see tls.h. */
#include "common/tls.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "common/util.h"

/* Our PEM files hold a few certificates and one key; anything this large is not ours. */
#define PEM_MAX (256u * 1024u)
/* Ten years of 365.25 days. */
#define CERT_DAYS 3652
#define RECEIVER_CN TLS_RECEIVER_CN
#define DEFAULT_AGENT_CN TLS_SHARED_AGENT_CN
#define CIPHERSUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

enum cert_role { ROLE_CA, ROLE_SERVER, ROLE_CLIENT };

struct state_paths {
	char ca_cert[PATH_MAX];
	char ca_key[PATH_MAX];
	char rcv_cert[PATH_MAX];
	char rcv_key[PATH_MAX];
	char bundle[PATH_MAX];
};

const char *tls_drain_errors(const char *what)
{
	static _Thread_local char first[256];
	const char *file, *func, *data;
	bool have_first = false;
	unsigned long e;
	int line, flags, n;

	if (!what)
		what = "openssl";
	while ((e = ERR_get_error_all(&file, &line, &func, &data, &flags)) != 0) {
		const char *reason = ERR_reason_error_string(e);
		bool has_data = (flags & ERR_TXT_STRING) && data && *data;
		char text[256];

		ERR_error_string_n(e, text, sizeof(text));
		log_debug("%s: %s%s%s (%s:%d %s)", what, text, has_data ? ": " : "",
			  has_data ? data : "", file ? file : "?", line, func ? func : "?");
		if (have_first)
			continue;
		/* The bare reason (plus detail such as "Verify error:...") reads better in a
		 * one-line message than the packed "error:0A000086:..." form. */
		n = snprintf(first, sizeof(first), "%s", reason ? reason : text);
		if (has_data && n >= 0 && (size_t)n < sizeof(first))
			snprintf(first + n, sizeof(first) - (size_t)n, ": %s", data);
		have_first = true;
	}
	if (!have_first)
		snprintf(first, sizeof(first), "no OpenSSL error reported");
	return first;
}

/* Logs a failed OpenSSL step (the queue at debug, one line at error) and returns its
 * -errno: the queued system error or -ENOMEM when OpenSSL recorded one, else fallback. */
static int ossl_fail(int fallback, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int ossl_fail(int fallback, const char *fmt, ...)
{
	unsigned long e = ERR_peek_error();
	char what[512];
	int r = fallback;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (e != 0 && ERR_SYSTEM_ERROR(e) && ERR_GET_REASON(e) > 0)
		r = -ERR_GET_REASON(e);
	else if (e != 0 && ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE)
		r = -ENOMEM;
	log_error("%s: %s", what, tls_drain_errors(what));
	return r;
}

/* tern's keys are stored unencrypted; an encrypted key must fail to load rather than
 * make OpenSSL's default callback prompt on a terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

static int path_join(char *buf, const char *dir, const char *name)
{
	if (snprintf(buf, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX)
		return log_errno(-ENAMETOOLONG, "%s/%s", dir, name);
	return 0;
}

static int state_paths(const char *dir, struct state_paths *p)
{
	int r;

	r = path_join(p->ca_cert, dir, TLS_CA_CERT);
	if (r == 0)
		r = path_join(p->ca_key, dir, TLS_CA_KEY);
	if (r == 0)
		r = path_join(p->rcv_cert, dir, TLS_RECEIVER_CERT);
	if (r == 0)
		r = path_join(p->rcv_key, dir, TLS_RECEIVER_KEY);
	if (r == 0)
		r = path_join(p->bundle, dir, TLS_AGENT_BUNDLE);
	return r;
}

/* 1 when something exists at path (even a dangling symlink, which is still the
 * operator's), 0 when nothing does, or -errno. */
static int path_exists(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == 0)
		return 1;
	return errno == ENOENT ? 0 : -errno;
}

/* Reads a PEM file into a memory BIO. The plain heap copy is wiped since it may hold a
 * private key. Logs failures, except a missing file when !must_exist (-ENOENT). */
static int pem_open(const char *path, bool must_exist, BIO **ret_bio)
{
	char *data = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	int r;

	r = read_file_all(path, PEM_MAX, &data, &len);
	if (r < 0) {
		if (r != -ENOENT || must_exist)
			log_errno(r, "read %s", path);
		goto out;
	}
	bio = BIO_new(BIO_s_secmem());
	if (!bio || (len > 0 && BIO_write(bio, data, (int)len) != (int)len)) {
		r = ossl_fail(-ENOMEM, "%s: buffer", path);
		goto out;
	}
	*ret_bio = bio;
	bio = NULL;
out:
	if (data)
		OPENSSL_cleanse(data, len);
	free(data);
	BIO_free(bio);
	return r;
}

/* Loads the first certificate of a PEM file. -ENOENT (logged only when must_exist) when
 * missing, -EINVAL when it does not parse. */
static int load_cert(const char *path, bool must_exist, X509 **ret_cert)
{
	BIO *bio = NULL;
	X509 *cert;
	int r;

	r = pem_open(path, must_exist, &bio);
	if (r < 0)
		goto out;
	cert = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
	if (!cert) {
		r = ossl_fail(-EINVAL, "%s: not a PEM certificate", path);
		goto out;
	}
	*ret_cert = cert;
out:
	BIO_free(bio);
	return r;
}

/* Loads the first private key of a PEM file; errors as load_cert(). */
static int load_key(const char *path, bool must_exist, EVP_PKEY **ret_key)
{
	EVP_PKEY *key;
	BIO *bio = NULL;
	int r;

	r = pem_open(path, must_exist, &bio);
	if (r < 0)
		goto out;
	key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	if (!key) {
		r = ossl_fail(-EINVAL, "%s: not an unencrypted PEM private key", path);
		goto out;
	}
	*ret_key = key;
out:
	BIO_free(bio);
	return r;
}

/* DIR/name, which must exist, into path (PATH_MAX bytes, for the caller's messages). */
static int load_cert_in(char *path, const char *dir, const char *name, X509 **ret_cert)
{
	int r = path_join(path, dir, name);

	return r < 0 ? r : load_cert(path, true, ret_cert);
}

static int load_key_in(char *path, const char *dir, const char *name, EVP_PKEY **ret_key)
{
	int r = path_join(path, dir, name);

	return r < 0 ? r : load_key(path, true, ret_key);
}

/* Loads an agent bundle: the agent's certificate, its key, then one or more CA
 * certificates, in that order. Checks that the key matches the certificate. Errors as
 * load_cert(). On success the caller owns all three outputs. */
static int bundle_load(const char *path, bool must_exist, X509 **ret_cert, EVP_PKEY **ret_key,
		       STACK_OF(X509) **ret_cas)
{
	STACK_OF(X509) *cas = NULL;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL, *ca;
	BIO *bio = NULL;
	unsigned long e;
	int r;

	r = pem_open(path, must_exist, &bio);
	if (r < 0)
		goto out;
	cert = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
	if (!cert) {
		r = ossl_fail(-EINVAL, "%s: no certificate at the start of the bundle", path);
		goto out;
	}
	key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	if (!key) {
		r = ossl_fail(-EINVAL, "%s: no unencrypted private key after the certificate", path);
		goto out;
	}
	cas = sk_X509_new_null();
	if (!cas) {
		r = ossl_fail(-ENOMEM, "%s: certificate list", path);
		goto out;
	}
	while ((ca = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL)) != NULL) {
		if (!sk_X509_push(cas, ca)) {
			X509_free(ca);
			r = ossl_fail(-ENOMEM, "%s: certificate list", path);
			goto out;
		}
	}
	/* Running out of PEM blocks ends the loop; any other error is a damaged block. */
	e = ERR_peek_error();
	if (ERR_GET_LIB(e) != ERR_LIB_PEM || ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
		r = ossl_fail(-EINVAL, "%s: damaged CA certificate in the bundle", path);
		goto out;
	}
	ERR_clear_error();
	if (sk_X509_num(cas) == 0) {
		log_error("%s: no CA certificate after the private key", path);
		r = -EINVAL;
		goto out;
	}
	if (X509_check_private_key(cert, key) != 1) {
		r = ossl_fail(-EINVAL, "%s: the private key does not match the certificate", path);
		goto out;
	}
	*ret_cert = cert;
	*ret_key = key;
	*ret_cas = cas;
	cert = NULL;
	key = NULL;
	cas = NULL;
out:
	sk_X509_pop_free(cas, X509_free);
	EVP_PKEY_free(key);
	X509_free(cert);
	BIO_free(bio);
	return r;
}

/* Writes, as PEM and in this order, whichever of a certificate, a private key (PKCS#8,
 * unencrypted) and a CA certificate are given, atomically and 0600. */
static int write_pem(const char *path, X509 *cert, EVP_PKEY *key, X509 *ca)
{
	char *data = NULL;
	BIO *bio;
	long len;
	int r;

	/* A secure-memory BIO is wiped when freed, so no stray copy of a key lingers. */
	bio = BIO_new(BIO_s_secmem());
	if (!bio) {
		r = ossl_fail(-ENOMEM, "%s: buffer", path);
		goto out;
	}
	if ((cert && !PEM_write_bio_X509(bio, cert)) ||
	    (key && !PEM_write_bio_PKCS8PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)) ||
	    (ca && !PEM_write_bio_X509(bio, ca))) {
		r = ossl_fail(-EIO, "%s: encode PEM", path);
		goto out;
	}
	len = BIO_get_mem_data(bio, &data);
	if (len <= 0 || !data) {
		r = ossl_fail(-EIO, "%s: encode PEM", path);
		goto out;
	}
	r = write_file_atomic(path, data, (size_t)len, 0600);
	if (r < 0) {
		log_errno(r, "write %s", path);
		goto out;
	}
	log_debug("wrote %s", path);
out:
	BIO_free(bio);
	return r;
}

static int key_new(EVP_PKEY **ret_key)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");

	if (!key)
		return ossl_fail(-EIO, "generate a P-256 key");
	*ret_key = key;
	return 0;
}

static int add_ext(X509 *cert, X509V3_CTX *v3, int nid, const char *value)
{
	X509_EXTENSION *ext;
	int r = 0;

	ext = X509V3_EXT_conf_nid(NULL, v3, nid, value);
	if (!ext)
		return ossl_fail(-EIO, "certificate extension %s=%s", OBJ_nid2sn(nid), value);
	if (!X509_add_ext(cert, ext, -1))
		r = ossl_fail(-ENOMEM, "certificate extension %s", OBJ_nid2sn(nid));
	X509_EXTENSION_free(ext);
	return r;
}

static int add_role_exts(X509 *cert, X509 *issuer, enum cert_role role)
{
	X509V3_CTX v3;
	int r;

	X509V3_set_ctx(&v3, issuer ? issuer : cert, cert, NULL, NULL, 0);
	X509V3_set_ctx_nodb(&v3);
	if (role == ROLE_CA) {
		r = add_ext(cert, &v3, NID_basic_constraints, "critical,CA:TRUE");
		if (r == 0)
			r = add_ext(cert, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
		if (r == 0)
			r = add_ext(cert, &v3, NID_subject_key_identifier, "hash");
		return r;
	}
	/* The purpose (EKU) is what keeps an agent's credential from serving as a receiver's;
	 * both contexts check it during verification. */
	r = add_ext(cert, &v3, NID_basic_constraints, "critical,CA:FALSE");
	if (r == 0)
		r = add_ext(cert, &v3, NID_key_usage, "critical,digitalSignature");
	if (r == 0)
		r = add_ext(cert, &v3, NID_ext_key_usage,
			    role == ROLE_SERVER ? "serverAuth" : "clientAuth");
	if (r == 0)
		r = add_ext(cert, &v3, NID_subject_key_identifier, "hash");
	if (r == 0)
		r = add_ext(cert, &v3, NID_authority_key_identifier, "keyid:always");
	return r;
}

/* Issues an X509v3 certificate for key with common name cn and the extensions of role,
 * signed with SHA-256 by issuer_key (issuer's), or self-signed when issuer is NULL. */
static int cert_issue(EVP_PKEY *key, const char *cn, enum cert_role role, X509 *issuer,
		      EVP_PKEY *issuer_key, X509 **ret_cert)
{
	X509 *cert = NULL;
	BIGNUM *serial = NULL;
	X509_NAME *name;
	int r;

	cert = X509_new();
	serial = BN_new();
	if (!cert || !serial) {
		r = ossl_fail(-ENOMEM, "new certificate");
		goto out;
	}
	/* A random 128-bit serial with its top bit set: positive, never zero, and unique
	 * without a counter to keep in the state directory. */
	if (!X509_set_version(cert, X509_VERSION_3) ||
	    !BN_rand(serial, 128, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) ||
	    !BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert)) ||
	    /* An hour of slack for clocks on agent hosts that run behind the receiver's. */
	    !X509_gmtime_adj(X509_getm_notBefore(cert), -TLS_BACKDATE_S) ||
	    !X509_time_adj_ex(X509_getm_notAfter(cert), CERT_DAYS, 0, NULL) ||
	    !X509_set_pubkey(cert, key)) {
		r = ossl_fail(-EIO, "certificate for %s", cn);
		goto out;
	}
	name = X509_get_subject_name(cert);
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
					-1, 0) ||
	    !X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name)) {
		r = ossl_fail(-EIO, "certificate name %s", cn);
		goto out;
	}
	r = add_role_exts(cert, issuer, role);
	if (r < 0)
		goto out;
	if (X509_sign(cert, issuer ? issuer_key : key, EVP_sha256()) <= 0) {
		r = ossl_fail(-EIO, "sign certificate for %s", cn);
		goto out;
	}
	*ret_cert = cert;
	cert = NULL;
	r = 0;
out:
	BN_free(serial);
	X509_free(cert);
	return r;
}

static int store_new(X509 *ca, X509_STORE **ret_store)
{
	X509_STORE *store = X509_STORE_new();

	if (!store || !X509_STORE_add_cert(store, ca)) {
		X509_STORE_free(store);
		return ossl_fail(-ENOMEM, "certificate store");
	}
	*ret_store = store;
	return 0;
}

/* Checks, as of now, that cert chains to a CA in store and suits purpose
 * (X509_PURPOSE_SSL_SERVER or _CLIENT). Returns 0, -EINVAL, or -ENOMEM/-EIO. */
static int cert_verify(X509 *cert, X509_STORE *store, int purpose, const char *what)
{
	X509_STORE_CTX *ctx;
	int r, v;

	ctx = X509_STORE_CTX_new();
	if (!ctx || !X509_STORE_CTX_init(ctx, store, cert, NULL) ||
	    !X509_STORE_CTX_set_purpose(ctx, purpose)) {
		r = ossl_fail(-ENOMEM, "%s: verification context", what);
		goto out;
	}
	v = X509_verify_cert(ctx);
	if (v < 0) {
		r = ossl_fail(-EIO, "%s: verify certificate", what);
		goto out;
	}
	if (v == 0) {
		/* Verification failures are reported in the context, not the error queue. */
		tls_drain_errors(what);
		log_error("%s: certificate does not verify against the CA: %s", what,
			  X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
		r = -EINVAL;
		goto out;
	}
	r = 0;
out:
	X509_STORE_CTX_free(ctx);
	return r;
}

static int issue_bundle(X509 *ca, EVP_PKEY *ca_key, const char *cn, const char *path)
{
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	int r;

	r = key_new(&key);
	if (r < 0)
		goto out;
	r = cert_issue(key, cn, ROLE_CLIENT, ca, ca_key, &cert);
	if (r < 0)
		goto out;
	r = write_pem(path, cert, key, ca);
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	return r;
}

/* Loads DIR's CA, or creates it when ca.pem is missing and nothing signed by an earlier
 * CA is left. ca.key may be absent while ca.pem exists (an operator may keep it offline);
 * *ret_key is then NULL and nothing can be issued. Keys are written before the
 * certificates made from them, and a key found without its certificate is reused, so a
 * crash between the two writes leaves a state the next run completes. */
static int ensure_ca(const struct state_paths *p, X509 **ret_ca, EVP_PKEY **ret_key,
		     bool *created)
{
	unsigned char rnd[4];
	EVP_PKEY *key = NULL;
	X509 *ca = NULL;
	char cn[32];
	int r;

	r = load_key(p->ca_key, false, &key);
	if (r < 0 && r != -ENOENT)
		goto out;
	r = load_cert(p->ca_cert, false, &ca);
	if (r < 0 && r != -ENOENT)
		goto out;
	if (ca) {
		if (!X509_check_ca(ca)) {
			log_error("%s: not a CA certificate", p->ca_cert);
			r = -EINVAL;
			goto out;
		}
		if (key && X509_check_private_key(ca, key) != 1) {
			r = ossl_fail(-EINVAL, "%s does not match %s", p->ca_key, p->ca_cert);
			goto out;
		}
		r = 0;
	} else {
		/* What is left was signed by a CA that is gone; a new CA would silently
		 * orphan it, so the operator decides. */
		r = path_exists(p->rcv_cert);
		if (r == 0)
			r = path_exists(p->bundle);
		if (r > 0) {
			log_error("%s is missing but credentials it signed remain; refusing to create a new CA",
				  p->ca_cert);
			r = -EINVAL;
		}
		if (r < 0)
			goto out;
		if (!key) {
			r = key_new(&key);
			if (r < 0)
				goto out;
			r = write_pem(p->ca_key, NULL, key, NULL);
			if (r < 0)
				goto out;
			*created = true;
		}
		if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
			r = ossl_fail(-EIO, "random CA name");
			goto out;
		}
		/* A random suffix keeps CAs of different receivers apart in an operator's view;
		 * trust never rests on the name. */
		snprintf(cn, sizeof(cn), "tern CA %02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
		r = cert_issue(key, cn, ROLE_CA, NULL, NULL, &ca);
		if (r < 0)
			goto out;
		r = write_pem(p->ca_cert, ca, NULL, NULL);
		if (r < 0)
			goto out;
		*created = true;
	}
	*ret_ca = ca;
	*ret_key = key;
	ca = NULL;
	key = NULL;
out:
	X509_free(ca);
	EVP_PKEY_free(key);
	return r;
}

/* Keeps a receiver certificate and key that chain to the CA, or issues what is missing. */
static int ensure_receiver(const struct state_paths *p, X509 *ca, EVP_PKEY *ca_key,
			   X509_STORE *store, bool *created)
{
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	int r;

	r = load_key(p->rcv_key, false, &key);
	if (r < 0 && r != -ENOENT)
		goto out;
	r = load_cert(p->rcv_cert, false, &cert);
	if (r < 0 && r != -ENOENT)
		goto out;
	if (cert) {
		if (!key) {
			log_error("%s exists without %s", p->rcv_cert, p->rcv_key);
			r = -EINVAL;
			goto out;
		}
		r = cert_verify(cert, store, X509_PURPOSE_SSL_SERVER, p->rcv_cert);
		if (r < 0)
			goto out;
		if (X509_check_private_key(cert, key) != 1) {
			r = ossl_fail(-EINVAL, "%s does not match %s", p->rcv_key, p->rcv_cert);
			goto out;
		}
		r = 0;
		goto out;
	}
	if (!ca_key) {
		log_error("%s is needed to issue %s", p->ca_key, p->rcv_cert);
		r = -ENOENT;
		goto out;
	}
	if (!key) {
		r = key_new(&key);
		if (r < 0)
			goto out;
		r = write_pem(p->rcv_key, NULL, key, NULL);
		if (r < 0)
			goto out;
		*created = true;
	}
	r = cert_issue(key, RECEIVER_CN, ROLE_SERVER, ca, ca_key, &cert);
	if (r < 0)
		goto out;
	r = write_pem(p->rcv_cert, cert, NULL, NULL);
	if (r < 0)
		goto out;
	*created = true;
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	return r;
}

/* Keeps an agent bundle whose certificate chains to the CA and that carries the CA, or
 * issues one when it is missing. */
static int ensure_bundle(const struct state_paths *p, X509 *ca, EVP_PKEY *ca_key,
			 X509_STORE *store, bool *created)
{
	STACK_OF(X509) *cas = NULL;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	bool has_ca = false;
	int r;

	r = bundle_load(p->bundle, false, &cert, &key, &cas);
	if (r == -ENOENT) {
		if (!ca_key) {
			log_error("%s is needed to issue %s", p->ca_key, p->bundle);
			r = -ENOENT;
			goto out;
		}
		r = issue_bundle(ca, ca_key, DEFAULT_AGENT_CN, p->bundle);
		if (r == 0)
			*created = true;
		goto out;
	}
	if (r < 0)
		goto out;
	r = cert_verify(cert, store, X509_PURPOSE_SSL_CLIENT, p->bundle);
	if (r < 0)
		goto out;
	for (int i = 0; i < sk_X509_num(cas); i++)
		has_ca = has_ca || X509_cmp(sk_X509_value(cas, i), ca) == 0;
	if (!has_ca) {
		log_error("%s does not carry %s, so its agent could not verify the receiver",
			  p->bundle, p->ca_cert);
		r = -EINVAL;
	}
out:
	sk_X509_pop_free(cas, X509_free);
	EVP_PKEY_free(key);
	X509_free(cert);
	return r;
}

int tls_init_state(const char *dir, bool *ret_created)
{
	struct state_paths p;
	X509_STORE *store = NULL;
	EVP_PKEY *ca_key = NULL;
	bool created = false;
	X509 *ca = NULL;
	int r;

	/* Start from an empty queue so a failure reports its own errors, not older ones. */
	ERR_clear_error();
	r = mkdir_p(dir, 0700);
	if (r < 0) {
		log_errno(r, "create %s", dir);
		goto out;
	}
	r = state_paths(dir, &p);
	if (r < 0)
		goto out;
	r = ensure_ca(&p, &ca, &ca_key, &created);
	if (r < 0)
		goto out;
	r = store_new(ca, &store);
	if (r < 0)
		goto out;
	r = ensure_receiver(&p, ca, ca_key, store, &created);
	if (r < 0)
		goto out;
	r = ensure_bundle(&p, ca, ca_key, store, &created);
	if (r < 0)
		goto out;
	if (ret_created)
		*ret_created = created;
out:
	X509_STORE_free(store);
	EVP_PKEY_free(ca_key);
	X509_free(ca);
	return r;
}

int tls_issue_agent_bundle(const char *dir, const char *cn, const char *out_path)
{
	char path[PATH_MAX];
	EVP_PKEY *ca_key = NULL;
	X509 *ca = NULL;
	int r;

	ERR_clear_error();
	if (!cn || !name_is_valid(cn, strlen(cn))) {
		log_error("invalid agent name '%s'", cn ? cn : "");
		r = -EINVAL;
		goto out;
	}
	r = load_cert_in(path, dir, TLS_CA_CERT, &ca);
	if (r < 0)
		goto out;
	r = load_key_in(path, dir, TLS_CA_KEY, &ca_key);
	if (r < 0)
		goto out;
	if (X509_check_private_key(ca, ca_key) != 1) {
		r = ossl_fail(-EINVAL, "%s does not match its CA certificate", path);
		goto out;
	}
	r = issue_bundle(ca, ca_key, cn, out_path);
out:
	EVP_PKEY_free(ca_key);
	X509_free(ca);
	return r;
}

/* What both ends share: TLS 1.3 only with AEAD suites, our certificate and key, and no
 * session resumption, so every connection is authenticated by certificate. */
static int ctx_new(const SSL_METHOD *method, X509 *cert, EVP_PKEY *key, const char *what,
		   SSL_CTX **ret_ctx)
{
	SSL_CTX *ctx;
	int r;

	ctx = SSL_CTX_new(method);
	if (!ctx) {
		r = ossl_fail(-ENOMEM, "%s: TLS context", what);
		goto out;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(ctx, CIPHERSUITES)) {
		r = ossl_fail(-EIO, "%s: TLS 1.3 settings", what);
		goto out;
	}
	if (!SSL_CTX_use_certificate(ctx, cert) || !SSL_CTX_use_PrivateKey(ctx, key) ||
	    !SSL_CTX_check_private_key(ctx)) {
		r = ossl_fail(-EINVAL, "%s: certificate or key unusable", what);
		goto out;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
	*ret_ctx = ctx;
	ctx = NULL;
	r = 0;
out:
	SSL_CTX_free(ctx);
	return r;
}

/* The receiver's context; enrol makes the enrolment port's (see tls.h) instead of the
 * replication port's, which requires a client certificate from the CA. */
static SSL_CTX *server_ctx(const char *dir, bool enrol, int *ret_err)
{
	char path[PATH_MAX];
	X509 *cert = NULL, *ca = NULL;
	EVP_PKEY *key = NULL;
	SSL_CTX *ctx = NULL;
	X509_STORE *store;
	int r;

	ERR_clear_error();
	r = load_key_in(path, dir, TLS_RECEIVER_KEY, &key);
	if (r < 0)
		goto out;
	r = load_cert_in(path, dir, TLS_CA_CERT, &ca);
	if (r < 0)
		goto out;
	r = load_cert_in(path, dir, TLS_RECEIVER_CERT, &cert);
	if (r < 0)
		goto out;
	r = ctx_new(TLS_server_method(), cert, key, path, &ctx);
	if (r < 0)
		goto out;
	store = SSL_CTX_get_cert_store(ctx);
	if (!X509_STORE_add_cert(store, ca)) {
		r = ossl_fail(-ENOMEM, "%s: trust store", dir);
		goto out;
	}
	/* Every agent would be refused by a receiver certificate that does not chain or
	 * lacks serverAuth; say so now rather than once per connection. */
	r = cert_verify(cert, store, X509_PURPOSE_SSL_SERVER, path);
	if (r < 0)
		goto out;
	if (enrol) {
		/* The joining agent knows only the CA's hash, so the CA travels in the chain. */
		if (!SSL_CTX_add1_chain_cert(ctx, ca)) {
			r = ossl_fail(-ENOMEM, "%s: certificate chain", dir);
			goto out;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
		if (!X509_VERIFY_PARAM_set_purpose(SSL_CTX_get0_param(ctx),
						   X509_PURPOSE_SSL_CLIENT)) {
			r = ossl_fail(-EIO, "%s: clientAuth purpose", dir);
			goto out;
		}
	}
	/* Under SSL_OP_NO_TICKET a TLS 1.3 server still sends stateful tickets backed by its
	 * session cache; turn off both so no connection skips client authentication. */
	if (!SSL_CTX_set_num_tickets(ctx, 0)) {
		r = ossl_fail(-EIO, "%s: session tickets", dir);
		goto out;
	}
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
out:
	if (r < 0) {
		SSL_CTX_free(ctx);
		ctx = NULL;
	}
	X509_free(cert);
	X509_free(ca);
	EVP_PKEY_free(key);
	if (ret_err)
		*ret_err = r;
	return ctx;
}

SSL_CTX *tls_server_ctx(const char *dir, int *ret_err)
{
	return server_ctx(dir, false, ret_err);
}

SSL_CTX *tls_enrol_server_ctx(const char *dir, int *ret_err)
{
	return server_ctx(dir, true, ret_err);
}

SSL_CTX *tls_client_ctx(const char *bundle_path, int *ret_err)
{
	STACK_OF(X509) *cas = NULL;
	EVP_PKEY *key = NULL;
	SSL_CTX *ctx = NULL;
	X509 *cert = NULL;
	X509_STORE *store;
	int r;

	ERR_clear_error();
	r = bundle_load(bundle_path, true, &cert, &key, &cas);
	if (r < 0)
		goto out;
	r = ctx_new(TLS_client_method(), cert, key, bundle_path, &ctx);
	if (r < 0)
		goto out;
	store = SSL_CTX_get_cert_store(ctx);
	for (int i = 0; i < sk_X509_num(cas); i++) {
		if (!X509_STORE_add_cert(store, sk_X509_value(cas, i))) {
			r = ossl_fail(-ENOMEM, "%s: trust store", bundle_path);
			goto out;
		}
	}
	/* A bundle whose certificate its own CA did not sign would be refused by every
	 * receiver; say so now rather than once per connection. */
	r = cert_verify(cert, store, X509_PURPOSE_SSL_CLIENT, bundle_path);
	if (r < 0)
		goto out;
	/* No host name check: the receiver is pinned by the bundle's private CA, which
	 * signs nothing else, and by the serverAuth purpose that agent certificates lack.
	 * Receivers are reached by whatever address the operator configured. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (!X509_VERIFY_PARAM_set_purpose(SSL_CTX_get0_param(ctx), X509_PURPOSE_SSL_SERVER)) {
		r = ossl_fail(-EIO, "%s: serverAuth purpose", bundle_path);
		goto out;
	}
out:
	if (r < 0) {
		SSL_CTX_free(ctx);
		ctx = NULL;
	}
	sk_X509_pop_free(cas, X509_free);
	EVP_PKEY_free(key);
	X509_free(cert);
	if (ret_err)
		*ret_err = r;
	return ctx;
}

/* Enrolment. */

/* Loads DIR's CA certificate and key and checks that they belong together. */
static int load_ca(const char *dir, X509 **ret_ca, EVP_PKEY **ret_key)
{
	char path[PATH_MAX];
	EVP_PKEY *key = NULL;
	X509 *ca = NULL;
	int r;

	r = load_cert_in(path, dir, TLS_CA_CERT, &ca);
	if (r < 0)
		goto out;
	r = load_key_in(path, dir, TLS_CA_KEY, &key);
	if (r < 0)
		goto out;
	if (X509_check_private_key(ca, key) != 1) {
		r = ossl_fail(-EINVAL, "%s does not match its CA certificate", path);
		goto out;
	}
	*ret_ca = ca;
	*ret_key = key;
	ca = NULL;
	key = NULL;
out:
	EVP_PKEY_free(key);
	X509_free(ca);
	return r;
}

/* The DER encoding of cert in plain heap memory (callers free() it). */
static int cert_der(X509 *cert, uint8_t **ret_der, size_t *ret_len)
{
	unsigned char *der = NULL;
	uint8_t *copy;
	int n;

	n = i2d_X509(cert, &der);
	if (n <= 0)
		return ossl_fail(-EIO, "encode certificate");
	copy = malloc((size_t)n);
	if (copy)
		memcpy(copy, der, (size_t)n);
	OPENSSL_free(der);
	if (!copy)
		return log_errno(-ENOMEM, "encode certificate");
	*ret_der = copy;
	*ret_len = (size_t)n;
	return 0;
}

/* Parses exactly len bytes of DER as one certificate; NULL when anything is off. */
static X509 *cert_from_der(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	X509 *cert;

	if (!der || len == 0 || len > INT_MAX)
		return NULL;
	cert = d2i_X509(NULL, &p, (long)len);
	if (cert && p != der + len) {
		X509_free(cert);
		return NULL;
	}
	return cert;
}

static bool pin_matches(X509 *cert, const uint8_t pin[TLS_PIN_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;

	return X509_digest(cert, EVP_sha256(), md, &n) == 1 && n == TLS_PIN_LEN &&
	       CRYPTO_memcmp(md, pin, TLS_PIN_LEN) == 0;
}

static int serial_hex(X509 *cert, char out[TLS_SERIAL_HEX_MAX + 1])
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;
	int r = -EINVAL;

	if (hex && strlen(hex) <= TLS_SERIAL_HEX_MAX) {
		snprintf(out, TLS_SERIAL_HEX_MAX + 1, "%s", hex);
		r = 0;
	}
	OPENSSL_free(hex);
	BN_free(bn);
	return r;
}

int tls_ca_pin(const char *dir, uint8_t ret_pin[TLS_PIN_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	char path[PATH_MAX];
	unsigned n = 0;
	X509 *ca = NULL;
	int r;

	ERR_clear_error();
	r = load_cert_in(path, dir, TLS_CA_CERT, &ca);
	if (r < 0)
		goto out;
	if (X509_digest(ca, EVP_sha256(), md, &n) != 1 || n != TLS_PIN_LEN) {
		r = ossl_fail(-EIO, "%s: SHA-256", path);
		goto out;
	}
	memcpy(ret_pin, md, TLS_PIN_LEN);
out:
	X509_free(ca);
	return r;
}

/* Replaces chain verification on the enrolment client: the trust anchor is the CA in the
 * receiver's chain whose hash is the pin, and the receiver's certificate must chain to it
 * with the serverAuth purpose. The TLS handshake itself proves the receiver holds the key. */
static int pin_verify(X509_STORE_CTX *sctx, void *arg)
{
	struct tls_pin *pin = arg;
	STACK_OF(X509) *chain = X509_STORE_CTX_get0_untrusted(sctx);
	X509 *leaf = X509_STORE_CTX_get0_cert(sctx), *anchor = NULL;
	X509_STORE_CTX *vctx = NULL;
	X509_STORE *store = NULL;
	int ok = 0, err = X509_V_ERR_UNSPECIFIED;

	for (int i = 0; chain && i < sk_X509_num(chain) && !anchor; i++) {
		X509 *c = sk_X509_value(chain, i);

		if (c != leaf && X509_check_ca(c) && pin_matches(c, pin->sha256))
			anchor = c;
	}
	if (!leaf || !anchor) {
		pin->mismatch = true;
		err = X509_V_ERR_CERT_UNTRUSTED;
		goto out;
	}
	store = X509_STORE_new();
	vctx = X509_STORE_CTX_new();
	if (!store || !vctx || !X509_STORE_add_cert(store, anchor) ||
	    !X509_STORE_CTX_init(vctx, store, leaf, chain) ||
	    !X509_STORE_CTX_set_purpose(vctx, X509_PURPOSE_SSL_SERVER))
		goto out;
	ok = X509_verify_cert(vctx) == 1;
	err = ok ? X509_V_OK : X509_STORE_CTX_get_error(vctx);
out:
	X509_STORE_CTX_set_error(sctx, err);
	X509_STORE_CTX_free(vctx);
	X509_STORE_free(store);
	return ok;
}

SSL_CTX *tls_enrol_client_ctx(struct tls_pin *pin, int *ret_err)
{
	SSL_CTX *ctx = NULL;
	int r;

	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		r = ossl_fail(-ENOMEM, "enrolment TLS context");
		goto out;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(ctx, CIPHERSUITES)) {
		r = ossl_fail(-EIO, "enrolment TLS 1.3 settings");
		goto out;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, pin_verify, pin);
	r = 0;
out:
	if (r < 0) {
		SSL_CTX_free(ctx);
		ctx = NULL;
	}
	if (ret_err)
		*ret_err = r;
	return ctx;
}

int tls_csr_new(const char *cn, EVP_PKEY **ret_key, uint8_t **ret_der, size_t *ret_len)
{
	unsigned char *der = NULL;
	EVP_PKEY *key = NULL;
	X509_REQ *req = NULL;
	uint8_t *copy = NULL;
	int n, r;

	ERR_clear_error();
	r = key_new(&key);
	if (r < 0)
		goto out;
	req = X509_REQ_new();
	if (!req) {
		r = ossl_fail(-ENOMEM, "certificate request");
		goto out;
	}
	/* The receiver takes only the key from the request (and names the certificate
	 * itself); the signature proves that whoever asks holds the private key. */
	if (!X509_REQ_set_version(req, X509_REQ_VERSION_1) ||
	    !X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_UTF8,
					(const unsigned char *)cn, -1, -1, 0) ||
	    !X509_REQ_set_pubkey(req, key) || X509_REQ_sign(req, key, EVP_sha256()) <= 0) {
		r = ossl_fail(-EIO, "certificate request for %s", cn);
		goto out;
	}
	n = i2d_X509_REQ(req, &der);
	if (n <= 0) {
		r = ossl_fail(-EIO, "encode certificate request");
		goto out;
	}
	copy = malloc((size_t)n);
	if (!copy) {
		r = log_errno(-ENOMEM, "certificate request");
		goto out;
	}
	memcpy(copy, der, (size_t)n);
	*ret_key = key;
	*ret_der = copy;
	*ret_len = (size_t)n;
	key = NULL;
	r = 0;
out:
	OPENSSL_free(der);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return r;
}

int tls_csr_sign(const char *dir, const uint8_t *csr, size_t csr_len, const char *cn,
		 uint8_t **ret_cert, size_t *ret_cert_len, uint8_t **ret_ca, size_t *ret_ca_len,
		 char ret_serial[TLS_SERIAL_HEX_MAX + 1], char *why, size_t why_len)
{
	char serial[TLS_SERIAL_HEX_MAX + 1];
	const unsigned char *p = csr;
	uint8_t *cert_buf = NULL, *ca_buf = NULL;
	size_t cert_len = 0, ca_len = 0;
	EVP_PKEY *ca_key = NULL, *pub;
	X509 *ca = NULL, *cert = NULL;
	X509_REQ *req = NULL;
	char group[32] = "";
	int r;

	ERR_clear_error();
	r = -EBADMSG;
	if (!csr || csr_len == 0 || csr_len > INT_MAX) {
		snprintf(why, why_len, "empty certificate request");
		goto out;
	}
	req = d2i_X509_REQ(NULL, &p, (long)csr_len);
	if (!req || p != csr + csr_len) {
		tls_drain_errors("certificate request");
		snprintf(why, why_len, "the certificate request is not one DER PKCS#10 request");
		goto out;
	}
	pub = X509_REQ_get0_pubkey(req);
	/* One key type keeps the receiver's parsing small; agents generate P-256 keys. */
	if (!pub || !EVP_PKEY_is_a(pub, "EC") ||
	    !EVP_PKEY_get_group_name(pub, group, sizeof(group), NULL) ||
	    strcmp(group, "prime256v1") != 0) {
		tls_drain_errors("certificate request");
		snprintf(why, why_len, "the certificate request's key is not an ECDSA P-256 key");
		goto out;
	}
	if (X509_REQ_verify(req, pub) != 1) {
		tls_drain_errors("certificate request");
		snprintf(why, why_len, "the certificate request's signature does not verify");
		goto out;
	}
	r = load_ca(dir, &ca, &ca_key);
	if (r < 0)
		goto out;
	r = cert_issue(pub, cn, ROLE_CLIENT, ca, ca_key, &cert);
	if (r < 0)
		goto out;
	r = serial_hex(cert, serial);
	if (r < 0) {
		log_error("certificate for %s: unreadable serial", cn);
		goto out;
	}
	r = cert_der(cert, &cert_buf, &cert_len);
	if (r < 0)
		goto out;
	r = cert_der(ca, &ca_buf, &ca_len);
	if (r < 0)
		goto out;
	*ret_cert = cert_buf;
	*ret_cert_len = cert_len;
	*ret_ca = ca_buf;
	*ret_ca_len = ca_len;
	memcpy(ret_serial, serial, sizeof(serial));
	cert_buf = NULL;
	ca_buf = NULL;
out:
	free(cert_buf);
	free(ca_buf);
	X509_free(cert);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	X509_REQ_free(req);
	return r;
}

int tls_bundle_write(const char *path, EVP_PKEY *key, const uint8_t *cert_der, size_t cert_len,
		     const uint8_t *ca_der, size_t ca_len, const uint8_t pin[TLS_PIN_LEN],
		     const char *cn)
{
	X509 *cert = NULL, *ca = NULL;
	X509_STORE *store = NULL;
	char got[128] = "";
	int r;

	ERR_clear_error();
	r = -EBADMSG;
	cert = cert_from_der(cert_der, cert_len);
	ca = cert_from_der(ca_der, ca_len);
	if (!cert || !ca) {
		tls_drain_errors("issued certificate");
		log_error("the receiver sent a certificate that does not parse");
		goto out;
	}
	if (!X509_check_ca(ca) || !pin_matches(ca, pin)) {
		log_error("the receiver sent a CA certificate other than the token's pin");
		goto out;
	}
	X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, got, sizeof(got));
	if (strcmp(got, cn) != 0) {
		log_error("the receiver issued a certificate for '%s', not '%s'", got, cn);
		goto out;
	}
	if (X509_check_private_key(cert, key) != 1) {
		tls_drain_errors("issued certificate");
		log_error("the receiver issued a certificate for another key");
		goto out;
	}
	r = store_new(ca, &store);
	if (r < 0)
		goto out;
	r = cert_verify(cert, store, X509_PURPOSE_SSL_CLIENT, "issued certificate");
	if (r < 0) {
		r = -EBADMSG;
		goto out;
	}
	r = write_pem(path, cert, key, ca);
out:
	X509_STORE_free(store);
	X509_free(cert);
	X509_free(ca);
	return r;
}

int tls_cert_identity(X509 *cert, char *cn, size_t cn_len,
		      char serial[TLS_SERIAL_HEX_MAX + 1], int64_t *ret_issued)
{
	struct tm tm;

	if (!cert || cn_len == 0)
		return -EINVAL;
	cn[0] = '\0';
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn,
				      (int)MIN(cn_len, (size_t)INT_MAX)) < 0)
		cn[0] = '\0';
	if (serial_hex(cert, serial) < 0 || !ASN1_TIME_to_tm(X509_get0_notBefore(cert), &tm)) {
		ERR_clear_error();
		return -EINVAL;
	}
	*ret_issued = (int64_t)timegm(&tm) + TLS_BACKDATE_S;
	return 0;
}

int tls_cert_sha256(X509 *cert, uint8_t ret_sha[TLS_PIN_LEN])
{
	unsigned int len = 0;

	if (!cert || X509_digest(cert, EVP_sha256(), ret_sha, &len) != 1 || len != TLS_PIN_LEN) {
		ERR_clear_error();
		return -EINVAL;
	}
	return 0;
}

int tls_file_cert_sha256(const char *path, uint8_t ret_sha[TLS_PIN_LEN], char *cn, size_t cn_len)
{
	X509 *cert = NULL;
	int r;

	r = load_cert(path, false, &cert);
	if (r < 0)
		return r;
	r = tls_cert_sha256(cert, ret_sha);
	if (r == 0 && cn_len > 0) {
		cn[0] = '\0';
		if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn,
					      (int)MIN(cn_len, (size_t)INT_MAX)) < 0)
			cn[0] = '\0';
	}
	if (r < 0)
		log_error("%s: cannot take the certificate's SHA-256", path);
	X509_free(cert);
	return r;
}

// SPDX-License-Identifier: GPL-2.0-only
/* TLS for tern: the credential files (loading PEM certificates, keys and bundles, writing
 * them), checking a certificate against the CA, and a certificate's identity and hashes;
 * see tls.h. Issuing is in tls-issue.c, the TLS contexts are in tls-ctx.c. */
#include "common/tls.h"
#include "common/tls-impl.h"

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
int tls_ossl_fail(int fallback, const char *fmt, ...)
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

int tls_state_paths(const char *dir, struct state_paths *p)
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
int tls_path_exists(const char *path)
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
		r = tls_ossl_fail(-ENOMEM, "%s: buffer", path);
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
int tls_load_cert(const char *path, bool must_exist, X509 **ret_cert)
{
	BIO *bio = NULL;
	X509 *cert;
	int r;

	r = pem_open(path, must_exist, &bio);
	if (r < 0)
		goto out;
	cert = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
	if (!cert) {
		r = tls_ossl_fail(-EINVAL, "%s: not a PEM certificate", path);
		goto out;
	}
	*ret_cert = cert;
out:
	BIO_free(bio);
	return r;
}

/* Loads the first private key of a PEM file; errors as tls_load_cert(). */
int tls_load_key(const char *path, bool must_exist, EVP_PKEY **ret_key)
{
	EVP_PKEY *key;
	BIO *bio = NULL;
	int r;

	r = pem_open(path, must_exist, &bio);
	if (r < 0)
		goto out;
	key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	if (!key) {
		r = tls_ossl_fail(-EINVAL, "%s: not an unencrypted PEM private key", path);
		goto out;
	}
	*ret_key = key;
out:
	BIO_free(bio);
	return r;
}

/* DIR/name, which must exist, into path (PATH_MAX bytes, for the caller's messages). */
int tls_load_cert_in(char *path, const char *dir, const char *name, X509 **ret_cert)
{
	int r = path_join(path, dir, name);

	return r < 0 ? r : tls_load_cert(path, true, ret_cert);
}

int tls_load_key_in(char *path, const char *dir, const char *name, EVP_PKEY **ret_key)
{
	int r = path_join(path, dir, name);

	return r < 0 ? r : tls_load_key(path, true, ret_key);
}

/* Loads an agent bundle: the agent's certificate, its key, then one or more CA
 * certificates, in that order. Checks that the key matches the certificate. Errors as
 * tls_load_cert(). On success the caller owns all three outputs. */
int tls_bundle_load(const char *path, bool must_exist, X509 **ret_cert, EVP_PKEY **ret_key,
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
		r = tls_ossl_fail(-EINVAL, "%s: no certificate at the start of the bundle", path);
		goto out;
	}
	key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	if (!key) {
		r = tls_ossl_fail(-EINVAL, "%s: no unencrypted private key after the certificate", path);
		goto out;
	}
	cas = sk_X509_new_null();
	if (!cas) {
		r = tls_ossl_fail(-ENOMEM, "%s: certificate list", path);
		goto out;
	}
	while ((ca = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL)) != NULL) {
		if (!sk_X509_push(cas, ca)) {
			X509_free(ca);
			r = tls_ossl_fail(-ENOMEM, "%s: certificate list", path);
			goto out;
		}
	}
	/* Running out of PEM blocks ends the loop; any other error is a damaged block. */
	e = ERR_peek_error();
	if (ERR_GET_LIB(e) != ERR_LIB_PEM || ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
		r = tls_ossl_fail(-EINVAL, "%s: damaged CA certificate in the bundle", path);
		goto out;
	}
	ERR_clear_error();
	if (sk_X509_num(cas) == 0) {
		log_error("%s: no CA certificate after the private key", path);
		r = -EINVAL;
		goto out;
	}
	if (X509_check_private_key(cert, key) != 1) {
		r = tls_ossl_fail(-EINVAL, "%s: the private key does not match the certificate", path);
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
int tls_write_pem(const char *path, X509 *cert, EVP_PKEY *key, X509 *ca)
{
	char *data = NULL;
	BIO *bio;
	long len;
	int r;

	/* A secure-memory BIO is wiped when freed, so no stray copy of a key lingers. */
	bio = BIO_new(BIO_s_secmem());
	if (!bio) {
		r = tls_ossl_fail(-ENOMEM, "%s: buffer", path);
		goto out;
	}
	if ((cert && !PEM_write_bio_X509(bio, cert)) ||
	    (key && !PEM_write_bio_PKCS8PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)) ||
	    (ca && !PEM_write_bio_X509(bio, ca))) {
		r = tls_ossl_fail(-EIO, "%s: encode PEM", path);
		goto out;
	}
	len = BIO_get_mem_data(bio, &data);
	if (len <= 0 || !data) {
		r = tls_ossl_fail(-EIO, "%s: encode PEM", path);
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

int tls_store_new(X509 *ca, X509_STORE **ret_store)
{
	X509_STORE *store = X509_STORE_new();

	if (!store || !X509_STORE_add_cert(store, ca)) {
		X509_STORE_free(store);
		return tls_ossl_fail(-ENOMEM, "certificate store");
	}
	*ret_store = store;
	return 0;
}

/* Checks, as of now, that cert chains to a CA in store and suits purpose
 * (X509_PURPOSE_SSL_SERVER or _CLIENT). Returns 0, -EINVAL, or -ENOMEM/-EIO. */
int tls_cert_verify(X509 *cert, X509_STORE *store, int purpose, const char *what)
{
	X509_STORE_CTX *ctx;
	int r, v;

	ctx = X509_STORE_CTX_new();
	if (!ctx || !X509_STORE_CTX_init(ctx, store, cert, NULL) ||
	    !X509_STORE_CTX_set_purpose(ctx, purpose)) {
		r = tls_ossl_fail(-ENOMEM, "%s: verification context", what);
		goto out;
	}
	v = X509_verify_cert(ctx);
	if (v < 0) {
		r = tls_ossl_fail(-EIO, "%s: verify certificate", what);
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

bool tls_pin_matches(X509 *cert, const uint8_t pin[TLS_PIN_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;

	return X509_digest(cert, EVP_sha256(), md, &n) == 1 && n == TLS_PIN_LEN &&
	       CRYPTO_memcmp(md, pin, TLS_PIN_LEN) == 0;
}

int tls_serial_hex(X509 *cert, char out[TLS_SERIAL_HEX_MAX + 1])
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
	r = tls_load_cert_in(path, dir, TLS_CA_CERT, &ca);
	if (r < 0)
		goto out;
	if (X509_digest(ca, EVP_sha256(), md, &n) != 1 || n != TLS_PIN_LEN) {
		r = tls_ossl_fail(-EIO, "%s: SHA-256", path);
		goto out;
	}
	memcpy(ret_pin, md, TLS_PIN_LEN);
out:
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
	if (tls_serial_hex(cert, serial) < 0 || !ASN1_TIME_to_tm(X509_get0_notBefore(cert), &tm)) {
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

	r = tls_load_cert(path, false, &cert);
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

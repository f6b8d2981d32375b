// SPDX-License-Identifier: GPL-2.0-only
/* Issuing: the receiver's CA, its certificate and the shared agent bundle of
 * `tern-receiver init`, agent bundles, and the CSRs and signing of enrolment; see tls.h. */
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

static int key_new(EVP_PKEY **ret_key)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");

	if (!key)
		return tls_ossl_fail(-EIO, "generate a P-256 key");
	*ret_key = key;
	return 0;
}

static int add_ext(X509 *cert, X509V3_CTX *v3, int nid, const char *value)
{
	X509_EXTENSION *ext;
	int r = 0;

	ext = X509V3_EXT_conf_nid(NULL, v3, nid, value);
	if (!ext)
		return tls_ossl_fail(-EIO, "certificate extension %s=%s", OBJ_nid2sn(nid), value);
	if (!X509_add_ext(cert, ext, -1))
		r = tls_ossl_fail(-ENOMEM, "certificate extension %s", OBJ_nid2sn(nid));
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
		r = tls_ossl_fail(-ENOMEM, "new certificate");
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
		r = tls_ossl_fail(-EIO, "certificate for %s", cn);
		goto out;
	}
	name = X509_get_subject_name(cert);
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
					-1, 0) ||
	    !X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name)) {
		r = tls_ossl_fail(-EIO, "certificate name %s", cn);
		goto out;
	}
	r = add_role_exts(cert, issuer, role);
	if (r < 0)
		goto out;
	if (X509_sign(cert, issuer ? issuer_key : key, EVP_sha256()) <= 0) {
		r = tls_ossl_fail(-EIO, "sign certificate for %s", cn);
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
	r = tls_write_pem(path, cert, key, ca);
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

	r = tls_load_key(p->ca_key, false, &key);
	if (r < 0 && r != -ENOENT)
		goto out;
	r = tls_load_cert(p->ca_cert, false, &ca);
	if (r < 0 && r != -ENOENT)
		goto out;
	if (ca) {
		if (!X509_check_ca(ca)) {
			log_error("%s: not a CA certificate", p->ca_cert);
			r = -EINVAL;
			goto out;
		}
		if (key && X509_check_private_key(ca, key) != 1) {
			r = tls_ossl_fail(-EINVAL, "%s does not match %s", p->ca_key, p->ca_cert);
			goto out;
		}
		r = 0;
	} else {
		/* What is left was signed by a CA that is gone; a new CA would silently
		 * orphan it, so the operator decides. */
		r = tls_path_exists(p->rcv_cert);
		if (r == 0)
			r = tls_path_exists(p->bundle);
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
			r = tls_write_pem(p->ca_key, NULL, key, NULL);
			if (r < 0)
				goto out;
			*created = true;
		}
		if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
			r = tls_ossl_fail(-EIO, "random CA name");
			goto out;
		}
		/* A random suffix keeps CAs of different receivers apart in an operator's view;
		 * trust never rests on the name. */
		snprintf(cn, sizeof(cn), "tern CA %02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
		r = cert_issue(key, cn, ROLE_CA, NULL, NULL, &ca);
		if (r < 0)
			goto out;
		r = tls_write_pem(p->ca_cert, ca, NULL, NULL);
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

	r = tls_load_key(p->rcv_key, false, &key);
	if (r < 0 && r != -ENOENT)
		goto out;
	r = tls_load_cert(p->rcv_cert, false, &cert);
	if (r < 0 && r != -ENOENT)
		goto out;
	if (cert) {
		if (!key) {
			log_error("%s exists without %s", p->rcv_cert, p->rcv_key);
			r = -EINVAL;
			goto out;
		}
		r = tls_cert_verify(cert, store, X509_PURPOSE_SSL_SERVER, p->rcv_cert);
		if (r < 0)
			goto out;
		if (X509_check_private_key(cert, key) != 1) {
			r = tls_ossl_fail(-EINVAL, "%s does not match %s", p->rcv_key, p->rcv_cert);
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
		r = tls_write_pem(p->rcv_key, NULL, key, NULL);
		if (r < 0)
			goto out;
		*created = true;
	}
	r = cert_issue(key, RECEIVER_CN, ROLE_SERVER, ca, ca_key, &cert);
	if (r < 0)
		goto out;
	r = tls_write_pem(p->rcv_cert, cert, NULL, NULL);
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

	r = tls_bundle_load(p->bundle, false, &cert, &key, &cas);
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
	r = tls_cert_verify(cert, store, X509_PURPOSE_SSL_CLIENT, p->bundle);
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
	r = tls_state_paths(dir, &p);
	if (r < 0)
		goto out;
	r = ensure_ca(&p, &ca, &ca_key, &created);
	if (r < 0)
		goto out;
	r = tls_store_new(ca, &store);
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
	r = tls_load_cert_in(path, dir, TLS_CA_CERT, &ca);
	if (r < 0)
		goto out;
	r = tls_load_key_in(path, dir, TLS_CA_KEY, &ca_key);
	if (r < 0)
		goto out;
	if (X509_check_private_key(ca, ca_key) != 1) {
		r = tls_ossl_fail(-EINVAL, "%s does not match its CA certificate", path);
		goto out;
	}
	r = issue_bundle(ca, ca_key, cn, out_path);
out:
	EVP_PKEY_free(ca_key);
	X509_free(ca);
	return r;
}

/* Loads DIR's CA certificate and key and checks that they belong together. */
static int load_ca(const char *dir, X509 **ret_ca, EVP_PKEY **ret_key)
{
	char path[PATH_MAX];
	EVP_PKEY *key = NULL;
	X509 *ca = NULL;
	int r;

	r = tls_load_cert_in(path, dir, TLS_CA_CERT, &ca);
	if (r < 0)
		goto out;
	r = tls_load_key_in(path, dir, TLS_CA_KEY, &key);
	if (r < 0)
		goto out;
	if (X509_check_private_key(ca, key) != 1) {
		r = tls_ossl_fail(-EINVAL, "%s does not match its CA certificate", path);
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
		return tls_ossl_fail(-EIO, "encode certificate");
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
		r = tls_ossl_fail(-ENOMEM, "certificate request");
		goto out;
	}
	/* The receiver takes only the key from the request (and names the certificate
	 * itself); the signature proves that whoever asks holds the private key. */
	if (!X509_REQ_set_version(req, X509_REQ_VERSION_1) ||
	    !X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_UTF8,
					(const unsigned char *)cn, -1, -1, 0) ||
	    !X509_REQ_set_pubkey(req, key) || X509_REQ_sign(req, key, EVP_sha256()) <= 0) {
		r = tls_ossl_fail(-EIO, "certificate request for %s", cn);
		goto out;
	}
	n = i2d_X509_REQ(req, &der);
	if (n <= 0) {
		r = tls_ossl_fail(-EIO, "encode certificate request");
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
	r = tls_serial_hex(cert, serial);
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
	if (!X509_check_ca(ca) || !tls_pin_matches(ca, pin)) {
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
	r = tls_store_new(ca, &store);
	if (r < 0)
		goto out;
	r = tls_cert_verify(cert, store, X509_PURPOSE_SSL_CLIENT, "issued certificate");
	if (r < 0) {
		r = -EBADMSG;
		goto out;
	}
	r = tls_write_pem(path, cert, key, ca);
out:
	X509_STORE_free(store);
	X509_free(cert);
	X509_free(ca);
	return r;
}

/* SPDX-License-Identifier: GPL-2.0-only */
/* What the TLS files share (tls.c: the credential files, loading, checking and identity;
 * tls-issue.c: issuing keys and certificates; tls-ctx.c: the TLS contexts): limits, the
 * state directory's paths and the OpenSSL helpers. Included only by common/tls*.c. */
#pragma once
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common/tls.h"

/* Our PEM files hold a few certificates and one key; anything this large is not ours. */
#define PEM_MAX (256u * 1024u)
/* Ten years of 365.25 days. */
#define CERT_DAYS 3652
#define RECEIVER_CN TLS_RECEIVER_CN
#define DEFAULT_AGENT_CN TLS_SHARED_AGENT_CN
#define CIPHERSUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

enum cert_role { ROLE_CA, ROLE_SERVER, ROLE_CLIENT };

/* The credential files of a receiver state directory. */
struct state_paths {
	char ca_cert[PATH_MAX];
	char ca_key[PATH_MAX];
	char rcv_cert[PATH_MAX];
	char rcv_key[PATH_MAX];
	char bundle[PATH_MAX];
};

/* Logs a failed OpenSSL step (the queue at debug, one line at error) and returns its
 * -errno: the queued system error or -ENOMEM when OpenSSL recorded one, else fallback. */
int tls_ossl_fail(int fallback, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Fills p with DIR's credential paths; 0 or -ENAMETOOLONG (logged). */
int tls_state_paths(const char *dir, struct state_paths *p);
/* 1 when path exists, 0 when it does not, or -errno (logged). */
int tls_path_exists(const char *path);
/* The first certificate (or the key) of a PEM file: -ENOENT (logged only when must_exist)
 * when missing, -EINVAL when it does not parse. */
int tls_load_cert(const char *path, bool must_exist, X509 **ret_cert);
int tls_load_key(const char *path, bool must_exist, EVP_PKEY **ret_key);
/* The same for DIR/NAME, which is left in path (PATH_MAX bytes) for the caller's messages. */
int tls_load_cert_in(char *path, const char *dir, const char *name, X509 **ret_cert);
int tls_load_key_in(char *path, const char *dir, const char *name, EVP_PKEY **ret_key);
/* An agent bundle: its certificate, key and CA certificates, the key checked against the
 * certificate. Errors as tls_load_cert(); on success the caller owns all three outputs. */
int tls_bundle_load(const char *path, bool must_exist, X509 **ret_cert, EVP_PKEY **ret_key,
		    STACK_OF(X509) **ret_cas);
/* Writes, as PEM and in this order, whichever of cert, key (PKCS#8, unencrypted) and ca
 * are given, atomically and 0600. 0 or -errno (logged). */
int tls_write_pem(const char *path, X509 *cert, EVP_PKEY *key, X509 *ca);
/* A certificate store trusting ca alone. 0 or -ENOMEM (logged). */
int tls_store_new(X509 *ca, X509_STORE **ret_store);
/* Checks, as of now, that cert chains to a CA in store and suits purpose
 * (X509_PURPOSE_SSL_SERVER or _CLIENT). Returns 0, -EINVAL, or -ENOMEM/-EIO (logged). */
int tls_cert_verify(X509 *cert, X509_STORE *store, int purpose, const char *what);
/* Whether cert's DER SHA-256 is pin. */
bool tls_pin_matches(X509 *cert, const uint8_t pin[TLS_PIN_LEN]);
/* cert's serial as upper-case hex. 0 or -errno. */
int tls_serial_hex(X509 *cert, char out[TLS_SERIAL_HEX_MAX + 1]);

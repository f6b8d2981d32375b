/* SPDX-License-Identifier: GPL-2.0-only */
/* TLS for tern: key and certificate issuance for `tern-receiver init`, and mutual
 * TLS 1.3 contexts. The receiver's CA signs both sides; the receiver's certificate
 * carries the serverAuth purpose and agents' carry clientAuth, so a stolen agent
 * credential cannot pose as a receiver. No plaintext mode exists. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>

/* File names inside a receiver state directory. */
#define TLS_CA_CERT "ca.pem"
#define TLS_CA_KEY "ca.key"
#define TLS_RECEIVER_CERT "receiver.pem"
#define TLS_RECEIVER_KEY "receiver.key"
#define TLS_AGENT_BUNDLE "agent-bundle.pem"
/* The common name of the bundle init makes: a credential shared by every agent that
 * uses it. It is recognised by its certificate's SHA-256, never by this name (see
 * receiver/enrol.h, ENROL_SHARED_FILE); enrolment refuses to issue the name. */
#define TLS_SHARED_AGENT_CN "tern-agent"
/* The receiver's certificate names it so, whatever address reaches it. */
#define TLS_RECEIVER_CN "tern-receiver"

/* A certificate's notBefore lies this far before the moment it was issued (slack for agent
 * clocks that run behind); revocation by time relies on it. */
#define TLS_BACKDATE_S 3600
/* A CA pin: SHA-256 of the CA certificate's DER encoding. */
#define TLS_PIN_LEN 32
/* Longest certificate serial as hex (128 bits, with room to spare). */
#define TLS_SERIAL_HEX_MAX 64

/* Creates DIR (0700) and, where missing, a CA, the receiver's key and certificate and one
 * agent credential bundle (agent certificate + key + CA certificate in one PEM file). All
 * files 0600, each written atomically. Idempotent: existing valid files are kept, and
 * *ret_created says whether anything was written. Returns 0 or -errno (-EINVAL when an
 * existing file does not parse or does not chain to the CA). */
int tls_init_state(const char *dir, bool *ret_created);

/* Issues a new agent credential bundle signed by the CA in DIR, with common name cn,
 * written atomically to out_path (0600). Returns 0 or -errno. */
int tls_issue_agent_bundle(const char *dir, const char *cn, const char *out_path);

/* A server context for the receiver: TLS 1.3 only, its certificate and key from DIR,
 * client certificates required and verified against DIR's CA with the clientAuth purpose.
 * Returns NULL with *ret_err set (-errno) on failure; OpenSSL's queue is logged at debug. */
SSL_CTX *tls_server_ctx(const char *dir, int *ret_err);

/* A client context for the agent from a credential bundle: TLS 1.3 only, presents the
 * bundle's certificate, verifies the receiver against the bundle's CA with serverAuth. */
SSL_CTX *tls_client_ctx(const char *bundle_path, int *ret_err);

/* Logs and clears OpenSSL's error queue at debug level, prefixed with what. Returns the
 * text of the first (most useful) error for one-line messages, in a static buffer. */
const char *tls_drain_errors(const char *what);

/* Enrolment (see receiver/enrol.c and agent/join.c). */

/* SHA-256 of the DER encoding of DIR's CA certificate. Returns 0 or -errno (logged). */
int tls_ca_pin(const char *dir, uint8_t ret_pin[TLS_PIN_LEN]);

/* The receiver's context for its enrolment port: TLS 1.3 only, its certificate, key and the
 * CA certificate as chain (the agent has nothing but the CA's pin to check it against), and
 * no client certificate asked for: the join token's secret authenticates the agent. */
SSL_CTX *tls_enrol_server_ctx(const char *dir, int *ret_err);

/* What the enrolment client checks the receiver against. The caller keeps it alive as long as
 * the context; mismatch is set when no CA the receiver sent has the pinned hash. */
struct tls_pin {
	uint8_t sha256[TLS_PIN_LEN];
	bool mismatch;
};

/* The agent's context for joining: TLS 1.3 only, no client certificate, and the receiver's
 * certificate verified (serverAuth) against the one CA of its chain whose SHA-256 is the pin,
 * never against the system's trust store. */
SSL_CTX *tls_enrol_client_ctx(struct tls_pin *pin, int *ret_err);

/* Generates the agent's P-256 key and a PKCS#10 request (DER) for common name cn signed by
 * it. The key stays with the caller (EVP_PKEY_free); *ret_der is heap memory. 0 or -errno. */
int tls_csr_new(const char *cn, EVP_PKEY **ret_key, uint8_t **ret_der, size_t *ret_len);

/* Signs the request csr (DER, which must be exactly csr_len bytes, with a valid self-signature
 * by a P-256 key) as a clientAuth certificate for common name cn with DIR's CA; the request's
 * own subject and extensions are ignored. Returns 0 with heap DER copies of the certificate
 * and the CA certificate and the serial as hex, or -EBADMSG for a bad request (the reason in
 * why, for the peer), or another -errno (logged). */
int tls_csr_sign(const char *dir, const uint8_t *csr, size_t csr_len, const char *cn,
		 uint8_t **ret_cert, size_t *ret_cert_len, uint8_t **ret_ca, size_t *ret_ca_len,
		 char ret_serial[TLS_SERIAL_HEX_MAX + 1], char *why, size_t why_len);

/* Writes an agent credential bundle (certificate, key, CA) to path, 0600 and atomically,
 * after checking that the CA's SHA-256 is pin, that the certificate carries cn, matches key
 * and verifies against the CA with clientAuth. 0, -EBADMSG (logged) or -errno. */
int tls_bundle_write(const char *path, EVP_PKEY *key, const uint8_t *cert, size_t cert_len,
		     const uint8_t *ca, size_t ca_len, const uint8_t pin[TLS_PIN_LEN],
		     const char *cn);

/* SHA-256 of a certificate's DER encoding. 0 or -EINVAL. */
int tls_cert_sha256(X509 *cert, uint8_t ret_sha[TLS_PIN_LEN]);

/* SHA-256 and common name of the first certificate of the PEM file at path (an agent
 * bundle holds the agent's first). 0, -ENOENT when there is no file (not logged), or
 * -errno (logged). */
int tls_file_cert_sha256(const char *path, uint8_t ret_sha[TLS_PIN_LEN], char *cn, size_t cn_len);

/* A certificate's identity for revocation: common name, serial as hex, and the time it was
 * issued (its notBefore plus TLS_BACKDATE_S), in seconds since the epoch. 0 or -EINVAL. */
int tls_cert_identity(X509 *cert, char *cn, size_t cn_len,
		      char serial[TLS_SERIAL_HEX_MAX + 1], int64_t *ret_issued);

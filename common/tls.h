/* SPDX-License-Identifier: GPL-2.0-only */
/* TLS for tern: key and certificate issuance for `tern-receiver init`, and mutual
 * TLS 1.3 contexts. The receiver's CA signs both sides; the receiver's certificate
 * carries the serverAuth purpose and agents' carry clientAuth, so a stolen agent
 * credential cannot pose as a receiver. No plaintext mode exists. */
#pragma once
#include <stdbool.h>
#include <openssl/ssl.h>

/* File names inside a receiver state directory. */
#define TLS_CA_CERT "ca.pem"
#define TLS_CA_KEY "ca.key"
#define TLS_RECEIVER_CERT "receiver.pem"
#define TLS_RECEIVER_KEY "receiver.key"
#define TLS_AGENT_BUNDLE "agent-bundle.pem"

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

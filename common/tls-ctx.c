// SPDX-License-Identifier: GPL-2.0-only
/* The mutual TLS 1.3 contexts both ends use: the receiver's replication and enrolment
 * ports, the agent's client and the pinned client of `tern-agent join`; see tls.h. */
#include "common/tls.h"
#include "common/tls-impl.h"

#include <errno.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/log.h"

/* What both ends share: TLS 1.3 only with AEAD suites, our certificate and key, and no
 * session resumption, so every connection is authenticated by certificate. */
static int ctx_new(const SSL_METHOD *method, X509 *cert, EVP_PKEY *key, const char *what,
		   SSL_CTX **ret_ctx)
{
	SSL_CTX *ctx;
	int r;

	ctx = SSL_CTX_new(method);
	if (!ctx) {
		r = tls_ossl_fail(-ENOMEM, "%s: TLS context", what);
		goto out;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(ctx, CIPHERSUITES)) {
		r = tls_ossl_fail(-EIO, "%s: TLS 1.3 settings", what);
		goto out;
	}
	if (!SSL_CTX_use_certificate(ctx, cert) || !SSL_CTX_use_PrivateKey(ctx, key) ||
	    !SSL_CTX_check_private_key(ctx)) {
		r = tls_ossl_fail(-EINVAL, "%s: certificate or key unusable", what);
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
	r = tls_load_key_in(path, dir, TLS_RECEIVER_KEY, &key);
	if (r < 0)
		goto out;
	r = tls_load_cert_in(path, dir, TLS_CA_CERT, &ca);
	if (r < 0)
		goto out;
	r = tls_load_cert_in(path, dir, TLS_RECEIVER_CERT, &cert);
	if (r < 0)
		goto out;
	r = ctx_new(TLS_server_method(), cert, key, path, &ctx);
	if (r < 0)
		goto out;
	store = SSL_CTX_get_cert_store(ctx);
	if (!X509_STORE_add_cert(store, ca)) {
		r = tls_ossl_fail(-ENOMEM, "%s: trust store", dir);
		goto out;
	}
	/* Every agent would be refused by a receiver certificate that does not chain or
	 * lacks serverAuth; say so now rather than once per connection. */
	r = tls_cert_verify(cert, store, X509_PURPOSE_SSL_SERVER, path);
	if (r < 0)
		goto out;
	if (enrol) {
		/* The joining agent knows only the CA's hash, so the CA travels in the chain. */
		if (!SSL_CTX_add1_chain_cert(ctx, ca)) {
			r = tls_ossl_fail(-ENOMEM, "%s: certificate chain", dir);
			goto out;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
		if (!X509_VERIFY_PARAM_set_purpose(SSL_CTX_get0_param(ctx),
						   X509_PURPOSE_SSL_CLIENT)) {
			r = tls_ossl_fail(-EIO, "%s: clientAuth purpose", dir);
			goto out;
		}
	}
	/* Under SSL_OP_NO_TICKET a TLS 1.3 server still sends stateful tickets backed by its
	 * session cache; turn off both so no connection skips client authentication. */
	if (!SSL_CTX_set_num_tickets(ctx, 0)) {
		r = tls_ossl_fail(-EIO, "%s: session tickets", dir);
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
	r = tls_bundle_load(bundle_path, true, &cert, &key, &cas);
	if (r < 0)
		goto out;
	r = ctx_new(TLS_client_method(), cert, key, bundle_path, &ctx);
	if (r < 0)
		goto out;
	store = SSL_CTX_get_cert_store(ctx);
	for (int i = 0; i < sk_X509_num(cas); i++) {
		if (!X509_STORE_add_cert(store, sk_X509_value(cas, i))) {
			r = tls_ossl_fail(-ENOMEM, "%s: trust store", bundle_path);
			goto out;
		}
	}
	/* A bundle whose certificate its own CA did not sign would be refused by every
	 * receiver; say so now rather than once per connection. */
	r = tls_cert_verify(cert, store, X509_PURPOSE_SSL_CLIENT, bundle_path);
	if (r < 0)
		goto out;
	/* No host name check: the receiver is pinned by the bundle's private CA, which
	 * signs nothing else, and by the serverAuth purpose that agent certificates lack.
	 * Receivers are reached by whatever address the operator configured. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (!X509_VERIFY_PARAM_set_purpose(SSL_CTX_get0_param(ctx), X509_PURPOSE_SSL_SERVER)) {
		r = tls_ossl_fail(-EIO, "%s: serverAuth purpose", bundle_path);
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

		if (c != leaf && X509_check_ca(c) && tls_pin_matches(c, pin->sha256))
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
		r = tls_ossl_fail(-ENOMEM, "enrolment TLS context");
		goto out;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(ctx, CIPHERSUITES)) {
		r = tls_ossl_fail(-EIO, "enrolment TLS 1.3 settings");
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

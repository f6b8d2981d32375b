// SPDX-License-Identifier: GPL-2.0-only
/* Join tokens: `tern-receiver token create` and the token records in DIR/tokens that the
 * enrolment service redeems; see enrol.h. A record keeps only a hash of the secret. */
#include "receiver/enrol.h"
#include "receiver/enrol-impl.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/enrol.h"
#include "common/log.h"
#include "common/net.h"
#include "common/tls.h"
#include "common/util.h"

/* ---- small helpers ---- */

/* "90", "90s", "30m", "24h", "7d". */
static int parse_duration(const char *s, uint64_t *ret_s)
{
	char num[32];
	uint64_t v, mult = 1;
	size_t len = strlen(s);

	if (len == 0 || len >= sizeof(num))
		return -EINVAL;
	memcpy(num, s, len + 1);
	switch (num[len - 1]) {
	case 's': mult = 1; num[--len] = '\0'; break;
	case 'm': mult = 60; num[--len] = '\0'; break;
	case 'h': mult = 3600; num[--len] = '\0'; break;
	case 'd': mult = 86400; num[--len] = '\0'; break;
	default: break;
	}
	if (parse_u64(num, 1, TTL_MAX_S, &v) < 0 || v * mult > TTL_MAX_S)
		return -ERANGE;
	*ret_s = v * mult;
	return 0;
}

/* An address an agent can connect to: HOST:PORT with a port and a host that is not the
 * wildcard a listener binds to. */
static bool addr_connectable(const char *s)
{
	char *host = NULL, *port = NULL;
	bool ok;

	if (net_parse_hostport(s, &host, &port) < 0)
		return false;
	ok = strcmp(port, "0") != 0 && strcmp(host, "0.0.0.0") != 0 && strcmp(host, "::") != 0 &&
	     strcmp(host, "*") != 0;
	free(host);
	free(port);
	return ok;
}

/* Splits a "key = value" line in place; false when it is not one. */
static bool split_kv(char *line, char **ret_key, char **ret_value)
{
	char *eq = strchr(line, '='), *k_end, *v;

	if (!eq || eq == line)
		return false;
	k_end = eq;
	while (k_end > line && (k_end[-1] == ' ' || k_end[-1] == '\t'))
		k_end--;
	*k_end = '\0';
	v = eq + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	*ret_key = line;
	*ret_value = v;
	return *line != '\0';
}

/* ---- token records ---- */

int enrol_token_rec_format(const struct token_rec *t, char *buf, size_t len)
{
	char hex[65];
	int n;

	enrol_hex(t->secret_sha, sizeof(t->secret_sha), hex);
	n = snprintf(buf, len, "secret-sha256 = %s\ncreated = %" PRId64 "\nexpires = %" PRId64 "\n",
		     hex, t->created, t->expires);
	if (n >= 0 && (size_t)n < len && t->name[0])
		n += snprintf(buf + n, len - (size_t)n, "name = %s\n", t->name);
	if (n >= 0 && (size_t)n < len && t->used)
		n += snprintf(buf + n, len - (size_t)n, "used = %" PRId64 "\nused-by = %s\n",
			      t->used, t->used_by);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return n;
}

/* Parses a record strictly: known keys once each, the required ones present. */
int enrol_token_rec_parse(char *text, struct token_rec *ret)
{
	struct token_rec t = { 0 };
	unsigned seen = 0;
	char *save = NULL;

	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *k, *v;
		unsigned bit;
		int r = 0;

		if (!split_kv(line, &k, &v))
			return -EBADMSG;
		if (strcmp(k, "secret-sha256") == 0) {
			bit = 1;
			r = enrol_unhex(v, t.secret_sha, sizeof(t.secret_sha));
		} else if (strcmp(k, "created") == 0) {
			bit = 2;
			r = enrol_parse_time(v, &t.created);
		} else if (strcmp(k, "expires") == 0) {
			bit = 4;
			r = enrol_parse_time(v, &t.expires);
		} else if (strcmp(k, "name") == 0) {
			bit = 8;
			r = name_is_valid(v, strlen(v)) ? 0 : -EINVAL;
			snprintf(t.name, sizeof(t.name), "%s", v);
		} else if (strcmp(k, "used") == 0) {
			bit = 16;
			r = enrol_parse_time(v, &t.used);
		} else if (strcmp(k, "used-by") == 0) {
			bit = 32;
			snprintf(t.used_by, sizeof(t.used_by), "%s", v);
		} else {
			return -EBADMSG;
		}
		if (r < 0 || (seen & bit))
			return -EBADMSG;
		seen |= bit;
	}
	if ((seen & 7) != 7)
		return -EBADMSG;
	*ret = t;
	return 0;
}

int enrol_token_path(char buf[PATH_MAX], const char *dir, const uint8_t id[ENROL_ID_LEN])
{
	char hex[2 * ENROL_ID_LEN + 1];

	enrol_hex(id, ENROL_ID_LEN, hex);
	if (snprintf(buf, PATH_MAX, "%s/%s/%s", dir, ENROL_TOKENS_DIR, hex) >= PATH_MAX)
		return -ENAMETOOLONG;
	return 0;
}

static void usage_token(FILE *f)
{
	fprintf(f,
		"Usage: tern-receiver token create --address HOST:PORT [--receiver HOST:PORT]\n"
		"                                  [--ttl DURATION] [--name AGENT] [--state-dir DIR]\n"
		"\n"
		"Prints a one-time join token for `tern-agent join`. It carries the enrolment\n"
		"address (serve --enrol-listen, as agents reach it), the SHA-256 of this receiver's\n"
		"CA and a secret; only a hash of the secret is kept, in DIR/tokens/.\n"
		"\n"
		"  --address HOST:PORT   where agents reach the enrolment listener\n"
		"  --receiver HOST:PORT  where agents reach the replication listener (default: the\n"
		"                        --address host with the port serve listens on)\n"
		"  --ttl DURATION        validity: N[s|m|h|d] (default 1h, at most 30d)\n"
		"  --name AGENT          only an agent of this name may use the token; only such a\n"
		"                        token may enrol a name that is taken (enrolled, revoked,\n"
		"                        or owner of a disk here)\n"
		"  --state-dir DIR       the receiver's state directory (default /var/lib/tern)\n");
}

/* Makes the token and its record (durable first), then prints the token; the arguments
 * are checked. Returns the process exit code. */
static int token_write(const char *dir, const char *address, const char *receiver,
		       const char *name, uint64_t ttl)
{
	char path[PATH_MAX], text[ENROL_TOKEN_MAX], rec_text[RECORD_MAX], when[64];
	struct enrol_token tok = { 0 };
	struct token_rec rec = { 0 };
	int n, r, lock = -1, ret = 1;

	/* Without the CA key no token could ever be redeemed; say so now. */
	r = enrol_path_in(path, dir, TLS_CA_KEY);
	if (r < 0)
		goto out;
	if (access(path, R_OK) < 0) {
		log_errno(-errno, "%s is needed to sign enrolled agents' certificates (run tern-receiver init --state-dir %s)",
			  path, dir);
		goto out;
	}
	r = tls_ca_pin(dir, tok.pin);
	if (r < 0)
		goto out;
	snprintf(tok.address, sizeof(tok.address), "%s", address);
	if (receiver)
		snprintf(tok.receiver, sizeof(tok.receiver), "%s", receiver);
	if (RAND_bytes(tok.id, sizeof(tok.id)) != 1 ||
	    RAND_bytes(tok.secret, sizeof(tok.secret)) != 1) {
		log_error("no random bytes for the token: %s", tls_drain_errors("RAND_bytes"));
		goto out;
	}
	if (EVP_Digest(tok.secret, sizeof(tok.secret), rec.secret_sha, NULL, EVP_sha256(), NULL) != 1) {
		log_error("SHA-256: %s", tls_drain_errors("EVP_Digest"));
		goto out;
	}
	rec.created = enrol_now_s();
	rec.expires = rec.created + (int64_t)ttl;
	if (name)
		snprintf(rec.name, sizeof(rec.name), "%s", name);
	n = enrol_token_encode(&tok, text, sizeof(text));
	if (n < 0) {
		log_errno(n, "encode the token");
		goto out;
	}
	r = enrol_path_in(path, dir, ENROL_TOKENS_DIR);
	if (r < 0)
		goto out;
	r = mkdir_p(path, 0700);
	if (r < 0) {
		log_errno(r, "create %s", path);
		goto out;
	}
	r = enrol_token_path(path, dir, tok.id);
	if (r < 0)
		goto out;
	n = enrol_token_rec_format(&rec, rec_text, sizeof(rec_text));
	if (n < 0)
		goto out;
	lock = enrol_lock_take(dir);
	if (lock < 0)
		goto out;
	/* The record is durable before the token is shown, so a token that was printed
	 * can always be redeemed. */
	r = write_file_atomic(path, rec_text, (size_t)n, 0600);
	if (r < 0) {
		log_errno(r, "write %s", path);
		goto out;
	}
	log_info("token %.8s... valid until %s%s%s", strrchr(path, '/') + 1,
		 enrol_fmt_time(rec.expires, when, sizeof(when)), name ? " for agent " : "", name ? name : "");
	printf("%s\n", text);
	if (fflush(stdout) != 0) {
		log_errno(-errno, "write the token");
		goto out;
	}
	ret = 0;
out:
	enrol_lock_drop(lock);
	OPENSSL_cleanse(&tok, sizeof(tok));
	OPENSSL_cleanse(text, sizeof(text));
	return ret;
}

static int token_create(int argc, char **argv)
{
	enum { O_STATE = 0x100, O_ADDRESS, O_RECEIVER, O_TTL, O_NAME, O_LOG };
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, O_STATE },
		{ "address", required_argument, NULL, O_ADDRESS },
		{ "receiver", required_argument, NULL, O_RECEIVER },
		{ "ttl", required_argument, NULL, O_TTL },
		{ "name", required_argument, NULL, O_NAME },
		{ "log-level", required_argument, NULL, O_LOG },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = "/var/lib/tern", *address = NULL, *receiver = NULL, *name = NULL;
	uint64_t ttl = TTL_DEFAULT_S;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_STATE: dir = optarg; break;
		case O_ADDRESS: address = optarg; break;
		case O_RECEIVER: receiver = optarg; break;
		case O_NAME: name = optarg; break;
		case O_TTL:
			if (parse_duration(optarg, &ttl) < 0) {
				log_error("--ttl %s: expected N, Ns, Nm, Nh or Nd, from 1s to 30d", optarg);
				return 2;
			}
			break;
		case O_LOG:
			if (log_level_option(optarg) < 0)
				return 2;
			break;
		case 'h':
			usage_token(stdout);
			return 0;
		default:
			usage_token(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		log_error("unexpected argument '%s'", argv[optind]);
		return 2;
	}
	if (!address) {
		log_error("token create needs --address HOST:PORT: where agents reach serve --enrol-listen");
		return 2;
	}
	if (!addr_connectable(address) || strlen(address) > ENROL_ADDR_MAX) {
		log_error("--address %s: expected HOST:PORT that agents can connect to", address);
		return 2;
	}
	if (receiver && (!addr_connectable(receiver) || strlen(receiver) > ENROL_ADDR_MAX)) {
		log_error("--receiver %s: expected HOST:PORT that agents can connect to", receiver);
		return 2;
	}
	if (name && !name_is_valid(name, strlen(name))) {
		log_error("--name %s: 1-64 characters from [A-Za-z0-9._:-]", name);
		return 2;
	}
	if (name && enrol_name_reserved(name)) {
		log_error("--name %s: reserved for the receiver's own credentials", name);
		return 2;
	}
	return token_write(dir, address, receiver, name, ttl);
}

int enrol_cmd_token(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "create") == 0)
		return token_create(argc - 1, argv + 1);
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage_token(stdout);
		return 0;
	}
	usage_token(stderr);
	return 2;
}

// SPDX-License-Identifier: GPL-2.0-only
/* tern-agent join: redeems a join token for a certificate and writes the agent's
 * credentials and config; see join.h. */
#include "agent/join.h"

#include <errno.h>
#include <signal.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/enrol.h"
#include "common/log.h"
#include "common/net.h"
#include "common/tls.h"
#include "common/util.h"

#define CONNECT_TIMEOUT_MS 15000
/* Signing is quick, but the receiver fsyncs the token's record first. */
#define REPLY_TIMEOUT_MS 30000
#define CONF_MAX (64u << 10)
#define BUNDLE_NAME "agent.pem"
#define CONF_NAME "agent.conf"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: tern-agent join TOKEN [--name NAME] [--config-dir DIR] [--receiver HOST:PORT]\n"
		"                       [--force]\n"
		"\n"
		"Enrols this host with the receiver that made TOKEN (tern-receiver token create;\n"
		"TOKEN - reads it from standard input, keeping it out of the process list). The\n"
		"receiver is verified against the CA hash the token carries; a new key is made\n"
		"here and only its certificate request is sent. Writes DIR/agent.pem (certificate,\n"
		"key and CA, 0600) and sets receiver, credentials and name in DIR/agent.conf,\n"
		"keeping its other lines, so `tern-agent run` needs no more than its disks.\n"
		"\n"
		"  --name NAME           agent name, the certificate's (default: host name)\n"
		"  --config-dir DIR      where to write (default /etc/tern)\n"
		"  --receiver HOST:PORT  replication address to write into agent.conf (default:\n"
		"                        the token's, or the enrolment host and the receiver's port)\n"
		"  --force               replace an existing DIR/agent.pem\n"
		"  --log-level LEVEL     error, warn, info (default) or debug\n");
}

/* Reads a token from standard input: the first line, blanks allowed around it. */
static int token_from_stdin(char *buf, size_t len)
{
	if (!fgets(buf, (int)len, stdin))
		return -EIO;
	if (!strchr(buf, '\n') && !feof(stdin))
		return -EMSGSIZE;
	return 0;
}

/* Where `run` replicates to: --receiver, else the token's, else the host the agent
 * reached the enrolment port on with the replication port the receiver reported. */
static int pick_receiver(const char *arg, const struct enrol_token *t, uint16_t port,
			 char *out, size_t len)
{
	char *host = NULL, *p = NULL;
	int r;

	if (arg) {
		snprintf(out, len, "%s", arg);
		return 0;
	}
	if (t->receiver[0]) {
		snprintf(out, len, "%s", t->receiver);
		return 0;
	}
	if (port == 0)
		return -ENOENT;
	r = net_parse_hostport(t->address, &host, &p);
	if (r < 0)
		return r;
	if (strchr(host, ':'))
		snprintf(out, len, "[%s]:%u", host, (unsigned)port);
	else
		snprintf(out, len, "%s:%u", host, (unsigned)port);
	free(host);
	free(p);
	return 0;
}

static bool hostport_ok(const char *s)
{
	char *host = NULL, *port = NULL;
	int r = net_parse_hostport(s, &host, &port);

	free(host);
	free(port);
	return r == 0;
}

/* Appends to out (cap bytes) at *n; once something does not fit, *n stays past cap. */
static void put(char *out, size_t cap, size_t *n, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void put(char *out, size_t cap, size_t *n, const char *fmt, ...)
{
	va_list ap;
	int k;

	if (*n >= cap)
		return;
	va_start(ap, fmt);
	k = vsnprintf(out + *n, cap - *n, fmt, ap);
	va_end(ap);
	*n = k < 0 ? cap : *n + (size_t)k;
}

static bool is_conf_key(const char *line, const char *key)
{
	size_t n = strlen(key);

	line += strspn(line, " \t");
	return strncmp(line, key, n) == 0 && (line[n] == '=' || line[n] == ' ' || line[n] == '\t');
}

/* Writes path with the keys receiver, credentials and name set to the given values: each
 * replaces the key's first line (later ones are dropped), other lines stay as they are,
 * missing keys are appended. Atomic; 0644 (it holds no secret). */
static int conf_update(const char *path, const char *const keys[3], const char *const vals[3])
{
	char *old = NULL, *save = NULL, *out = NULL;
	bool done[3] = { false, false, false };
	size_t len = 0, cap, n = 0;
	int r;

	r = read_file_all(path, CONF_MAX, &old, &len);
	if (r == -ENOENT) {
		old = NULL;
		len = 0;
		r = 0;
	}
	if (r < 0)
		return r;
	cap = len + 3 * (PATH_MAX + 32) + 1;
	out = malloc(cap);
	if (!out) {
		r = -ENOMEM;
		goto out;
	}
	for (char *line = old ? strtok_r(old, "\n", &save) : NULL; line;
	     line = strtok_r(NULL, "\n", &save)) {
		bool skip = false;

		for (unsigned k = 0; k < 3 && !skip; k++) {
			if (!is_conf_key(line, keys[k]))
				continue;
			skip = true;
			if (!done[k])
				put(out, cap, &n, "%s = %s\n", keys[k], vals[k]);
			done[k] = true;
		}
		if (!skip)
			put(out, cap, &n, "%s\n", line);
	}
	for (unsigned k = 0; k < 3; k++) {
		if (!done[k])
			put(out, cap, &n, "%s = %s\n", keys[k], vals[k]);
	}
	if (n >= cap) {
		r = -ENOSPC;
		goto out;
	}
	r = write_file_atomic(path, out, n, 0644);
out:
	free(out);
	free(old);
	return r;
}

/* One enrolment exchange over c. Returns 0 with the issued frame decoded into *ret_m
 * (borrowing buf), or -errno (logged), -EACCES & co. for a refusal. */
static int exchange(struct conn *c, const struct enrol_request *req, uint8_t *buf,
		    struct enrol_issued *ret_m)
{
	struct enrol_refused no;
	uint32_t len = 0;
	uint8_t type = 0;
	int n, r;

	n = enrol_encode_request(buf, ENROL_FRAME_MAX, req);
	if (n < 0)
		return log_errno(n, "encode the enrolment request");
	r = conn_send(c, buf, (size_t)n);
	if (r == -EPIPE || r == -ECONNRESET)
		return log_errno(r, "the receiver closed the connection before it took the "
				 "enrolment request (busy, or its deadline passed); try again shortly");
	if (r < 0)
		return log_errno(r, "send the enrolment request");
	conn_set_recv_timeout(c, REPLY_TIMEOUT_MS);
	r = enrol_recv(c, buf, &type, &len);
	if (r == -ETIMEDOUT)
		return log_errno(r, "the receiver did not answer the enrolment request in time");
	if (r == -ECONNRESET || r == -EPIPE)
		return log_errno(r, "the receiver closed the connection without answering the "
				 "enrolment request (busy, or its deadline passed); try again shortly");
	if (r < 0)
		return log_errno(r, "no valid answer from the receiver");
	if (type == ENROL_REFUSED) {
		if (enrol_decode_refused(buf, len, &no) < 0)
			return log_errno(-EBADMSG, "the receiver sent a malformed refusal");
		log_error("the receiver refused the enrolment: %s", no.msg);
		return no.code < 4096 ? -(int)no.code : -EACCES;
	}
	if (type != ENROL_ISSUED || enrol_decode_issued(buf, len, ret_m) < 0)
		return log_errno(-EBADMSG, "the receiver sent a malformed answer");
	return 0;
}

/* The token: text, or "-" for standard input (read into input, which the caller
 * cleanses). 0, or -1 (logged). */
static int read_token(const char *text, char *input, size_t input_len,
		      struct enrol_token *ret_tok)
{
	int r;

	if (strcmp(text, "-") == 0) {
		if (token_from_stdin(input, input_len) < 0) {
			log_error("no token on standard input");
			return -1;
		}
		text = input;
	}
	r = enrol_token_decode(text, ret_tok);
	if (r == -EPROTONOSUPPORT) {
		log_error("the token is of a version this agent does not understand (it reads %s tokens)",
			  ENROL_TOKEN_PREFIX);
		return -1;
	}
	if (r < 0) {
		log_error("the token is damaged or incomplete: copy it again, whole, from tern-receiver token create");
		return -1;
	}
	return 0;
}

/* Makes the config dir and the paths of the bundle and agent.conf in it, absolute (run
 * may start from anywhere); an existing bundle only with force. 0, or -1 (logged).
 * Checked before the token is spent. */
static int join_paths(const char *dir, bool force, char bundle[PATH_MAX + 16],
		      char conf[PATH_MAX + 16])
{
	char absdir[PATH_MAX];
	int r;

	r = mkdir_p(dir, 0755);
	if (r == 0 && (access(dir, W_OK) < 0 || !realpath(dir, absdir)))
		r = -errno;
	if (r < 0) {
		log_errno(r, "cannot write to %s", dir);
		return -1;
	}
	/* agent.conf names the bundle by absolute path: run may start from anywhere. */
	if (snprintf(bundle, PATH_MAX + 16, "%s/%s", absdir, BUNDLE_NAME) >= (int)PATH_MAX + 16 ||
	    snprintf(conf, PATH_MAX + 16, "%s/%s", absdir, CONF_NAME) >= (int)PATH_MAX + 16) {
		log_error("--config-dir %s: path too long", dir);
		return -1;
	}
	if (!force && access(bundle, F_OK) == 0) {
		log_error("%s exists: this host is already enrolled (pass --force to replace it)", bundle);
		return -1;
	}
	return 0;
}

/* Connects to the enrolment port the token names, with TLS pinned to the token's CA.
 * The context and connection go to ret_ctx and ret_c (the caller frees both, also on
 * failure). 0, or -1 (logged). */
static int join_connect(const struct enrol_token *tok, struct tls_pin *pin,
			SSL_CTX **ret_ctx, struct conn **ret_c)
{
	char why[256];
	int fd, r;

	memcpy(pin->sha256, tok->pin, sizeof(pin->sha256));
	*ret_ctx = tls_enrol_client_ctx(pin, &r);
	if (!*ret_ctx)
		return -1;
	fd = net_connect(tok->address, CONNECT_TIMEOUT_MS);
	if (fd < 0) {
		log_errno(fd, "cannot connect to the receiver's enrolment port %s", tok->address);
		return -1;
	}
	*ret_c = conn_handshake(*ret_ctx, fd, false, CONNECT_TIMEOUT_MS, &r, why, sizeof(why));
	if (!*ret_c) {
		if (pin->mismatch)
			log_error("%s is not the receiver this token was made for: its CA does not match the token's pin; nothing was sent",
				  tok->address);
		else if (r == -ECONNRESET || r == -ETIMEDOUT)
			log_error("the receiver at %s closed the connection before the TLS handshake "
				  "completed (it may be busy with other enrolments, or its deadline "
				  "passed); nothing was sent: try again shortly", tok->address);
		else
			log_error("TLS handshake with %s failed: %s", tok->address, why);
		return -1;
	}
	return 0;
}

/* Writes the credentials bundle and agent.conf (receiver, credentials, name). 0, or -1
 * (logged). */
static int join_save(const char *bundle, const char *conf, EVP_PKEY *key,
		     const struct enrol_issued *got, const uint8_t pin[ENROL_PIN_LEN],
		     const char *name, const char *repl)
{
	int r;

	r = tls_bundle_write(bundle, key, got->cert, got->cert_len, got->ca, got->ca_len, pin, name);
	if (r < 0) {
		log_errno(r, "cannot save the credentials to %s; the token is used up, create another",
			  bundle);
		return -1;
	}
	{
		const char *const keys[3] = { "receiver", "credentials", "name" };
		const char *const vals[3] = { repl, bundle, name };

		r = conf_update(conf, keys, vals);
	}
	if (r < 0) {
		log_errno(r, "cannot write %s (the credentials are in %s)", conf, bundle);
		return -1;
	}
	return 0;
}

/* Kept whole past 100 lines for one argument: the token's secret (tok, req, input) is
 * cleansed on every path by the one cleanup below, and nothing can fail after it is spent
 * but the saving of what it bought. */
int join_main(int argc, char **argv)
{
	enum { O_NAME = 0x100, O_DIR, O_RECEIVER, O_FORCE, O_LOG };
	static const struct option opts[] = {
		{ "name", required_argument, NULL, O_NAME },
		{ "config-dir", required_argument, NULL, O_DIR },
		{ "receiver", required_argument, NULL, O_RECEIVER },
		{ "force", no_argument, NULL, O_FORCE },
		{ "log-level", required_argument, NULL, O_LOG },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = "/etc/tern", *name = NULL, *receiver = NULL;
	char host[HOST_NAME_MAX + 1] = "", input[ENROL_TOKEN_MAX + 2];
	char bundle[PATH_MAX + 16], conf[PATH_MAX + 16], repl[ENROL_ADDR_MAX + 16];
	struct enrol_request req = { 0 };
	struct enrol_issued got;
	struct enrol_token tok = { 0 };
	struct tls_pin pin = { 0 };
	struct conn *c = NULL;
	SSL_CTX *ctx = NULL;
	EVP_PKEY *key = NULL;
	uint8_t *csr = NULL, *buf = NULL;
	size_t csr_len = 0;
	bool force = false;
	int ch, r, ret = 2;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case O_NAME: name = optarg; break;
		case O_DIR: dir = optarg; break;
		case O_RECEIVER: receiver = optarg; break;
		case O_FORCE: force = true; break;
		case O_LOG:
			if (log_level_option(optarg) < 0)
				goto out;
			break;
		case 'h':
			usage(stdout);
			ret = 0;
			goto out;
		default:
			usage(stderr);
			goto out;
		}
	}
	if (argc - optind != 1) {
		log_error("join needs exactly one TOKEN (from tern-receiver token create)");
		goto out;
	}
	if (read_token(argv[optind], input, sizeof(input), &tok) < 0)
		goto out;
	if (!name) {
		if (gethostname(host, sizeof(host)) < 0 || !name_is_valid(host, strlen(host))) {
			log_error("the host name is not a valid agent name; pass --name NAME");
			goto out;
		}
		name = host;
	}
	if (!name_is_valid(name, strlen(name))) {
		log_error("--name %s: 1-64 characters from [A-Za-z0-9._:-]", name);
		goto out;
	}
	if (receiver && !hostport_ok(receiver)) {
		log_error("--receiver %s: expected HOST:PORT", receiver);
		goto out;
	}
	ret = 1;
	/* A receiver that drops the connection (its enrolment slots full, its deadline
	 * passed) must surface as an error we can explain, not kill us with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	/* Everything that can fail here is checked before the token is spent. */
	if (join_paths(dir, force, bundle, conf) < 0)
		goto out;
	r = tls_csr_new(name, &key, &csr, &csr_len);
	if (r < 0)
		goto out;
	buf = malloc(ENROL_FRAME_MAX);
	if (!buf) {
		log_errno(-ENOMEM, "join");
		goto out;
	}
	if (join_connect(&tok, &pin, &ctx, &c) < 0)
		goto out;
	memcpy(req.id, tok.id, sizeof(req.id));
	memcpy(req.secret, tok.secret, sizeof(req.secret));
	snprintf(req.name, sizeof(req.name), "%s", name);
	req.csr = csr;
	req.csr_len = csr_len;
	r = exchange(c, &req, buf, &got);
	if (r < 0)
		goto out;
	r = pick_receiver(receiver, &tok, got.port, repl, sizeof(repl));
	if (r < 0) {
		log_error("the receiver did not say where it replicates; pass --receiver HOST:PORT");
		goto out;
	}
	if (join_save(bundle, conf, key, &got, tok.pin, name, repl) < 0)
		goto out;
	printf("enrolled as %s: wrote %s and %s (receiver %s)\n", name, bundle, conf, repl);
	ret = 0;
out:
	OPENSSL_cleanse(&tok, sizeof(tok));
	OPENSSL_cleanse(&req, sizeof(req));
	OPENSSL_cleanse(input, sizeof(input));
	conn_free(c);
	SSL_CTX_free(ctx);
	EVP_PKEY_free(key);
	free(csr);
	free(buf);
	return ret;
}

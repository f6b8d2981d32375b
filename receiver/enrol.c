// SPDX-License-Identifier: GPL-2.0-only
/* Join tokens, the enrolment listener and revocation; see enrol.h. A token record keeps
 * only a hash of the secret. A certificate leaves the receiver only after its token is
 * marked used on disk, so a token enrols at most one agent even across a crash. */
#include "receiver/enrol.h"
#include "receiver/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/enrol.h"
#include "common/log.h"
#include "common/net.h"
#include "common/tls.h"
#include "common/util.h"
#include "receiver/record.h"

#define TTL_DEFAULT_S 3600
#define TTL_MAX_S (30 * 86400)
#define RECORD_MAX 4096
#define LIST_MAX (16u << 20)    /* issued and revoked lists */
#define MAX_CONNS 16            /* enrolments not yet past their request, from all addresses */
#define MAX_PER_ADDR 2          /* of those, from one address */
#define MAX_SERVING 8           /* requests being redeemed at once */
#define IO_TIMEOUT_MS 10000     /* per handshake, read or write */
#define SERVE_DEADLINE_MS 20000 /* from the request to the answer, however slow the peer */
#define REFUSE_LINGER_MS 1000

static void lines_free(char **lines, size_t n);

/* ---- small helpers ---- */

static int path_in(char buf[PATH_MAX], const char *dir, const char *name)
{
	if (snprintf(buf, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX)
		return log_errno(-ENAMETOOLONG, "%s/%s", dir, name);
	return 0;
}

/* Takes DIR/enrol.lock exclusively (a separate file, so nothing else that may lock the
 * state directory can deadlock with us). Returns the fd to close, or -errno (logged). */
static int lock_take(const char *dir)
{
	char path[PATH_MAX];
	int fd, r;

	r = path_in(path, dir, ENROL_LOCK_FILE);
	if (r < 0)
		return r;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return log_errno(-errno, "open %s", path);
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			r = log_errno(-errno, "lock %s", path);
			close(fd);
			return r;
		}
	}
	return fd;
}

static void lock_drop(int fd)
{
	if (fd >= 0)
		close(fd);
}

static const char *fmt_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, len, "@%" PRId64, t);
	return buf;
}

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

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

static int parse_time(const char *s, int64_t *ret)
{
	uint64_t v;

	if (parse_u64(s, 0, INT64_MAX, &v) < 0)
		return -EINVAL;
	*ret = (int64_t)v;
	return 0;
}

/* ---- token records ---- */

struct token_rec {
	uint8_t secret_sha[32];
	int64_t created;
	int64_t expires;
	int64_t used; /* 0: not used */
	char name[NAME_MAX_LEN + 1];    /* bound agent name, or "" */
	char used_by[NAME_MAX_LEN + 1]; /* the agent it enrolled */
};

static int rec_format(const struct token_rec *t, char *buf, size_t len)
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
static int rec_parse(char *text, struct token_rec *ret)
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
			r = parse_time(v, &t.created);
		} else if (strcmp(k, "expires") == 0) {
			bit = 4;
			r = parse_time(v, &t.expires);
		} else if (strcmp(k, "name") == 0) {
			bit = 8;
			r = name_is_valid(v, strlen(v)) ? 0 : -EINVAL;
			snprintf(t.name, sizeof(t.name), "%s", v);
		} else if (strcmp(k, "used") == 0) {
			bit = 16;
			r = parse_time(v, &t.used);
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

static int token_path(char buf[PATH_MAX], const char *dir, const uint8_t id[ENROL_ID_LEN])
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
	char path[PATH_MAX], text[ENROL_TOKEN_MAX], rec_text[RECORD_MAX], when[64];
	struct enrol_token tok = { 0 };
	struct token_rec rec = { 0 };
	uint64_t ttl = TTL_DEFAULT_S;
	int c, n, r, lock = -1, ret = 1;

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
	/* Without the CA key no token could ever be redeemed; say so now. */
	r = path_in(path, dir, TLS_CA_KEY);
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
	rec.created = now_s();
	rec.expires = rec.created + (int64_t)ttl;
	if (name)
		snprintf(rec.name, sizeof(rec.name), "%s", name);
	n = enrol_token_encode(&tok, text, sizeof(text));
	if (n < 0) {
		log_errno(n, "encode the token");
		goto out;
	}
	r = path_in(path, dir, ENROL_TOKENS_DIR);
	if (r < 0)
		goto out;
	r = mkdir_p(path, 0700);
	if (r < 0) {
		log_errno(r, "create %s", path);
		goto out;
	}
	r = token_path(path, dir, tok.id);
	if (r < 0)
		goto out;
	n = rec_format(&rec, rec_text, sizeof(rec_text));
	if (n < 0)
		goto out;
	lock = lock_take(dir);
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
		 fmt_time(rec.expires, when, sizeof(when)), name ? " for agent " : "", name ? name : "");
	printf("%s\n", text);
	if (fflush(stdout) != 0) {
		log_errno(-errno, "write the token");
		goto out;
	}
	ret = 0;
out:
	lock_drop(lock);
	OPENSSL_cleanse(&tok, sizeof(tok));
	OPENSSL_cleanse(text, sizeof(text));
	return ret;
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

/* ---- issued and revoked lists ---- */

/* Reads a list file into its lines (comments and blank lines dropped). A missing file is
 * an empty list. */
static int lines_read(const char *path, char ***ret_lines, size_t *ret_n)
{
	char *data = NULL, *save = NULL, **lines = NULL;
	size_t len = 0, n = 0;
	int r;

	r = read_file_all(path, LIST_MAX, &data, &len);
	if (r == -ENOENT) {
		*ret_lines = NULL;
		*ret_n = 0;
		return 0;
	}
	if (r < 0)
		return r;
	for (char *l = strtok_r(data, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char **grown;

		if (l[0] == '#' || l[strspn(l, " \t")] == '\0')
			continue;
		grown = realloc(lines, (n + 1) * sizeof(*lines));
		if (!grown || !(grown[n] = strdup(l))) {
			lines = grown ? grown : lines;
			lines_free(lines, n);
			free(data);
			return -ENOMEM;
		}
		lines = grown;
		n++;
	}
	free(data);
	*ret_lines = lines;
	*ret_n = n;
	return 0;
}

static void lines_free(char **lines, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
}

struct issued {
	char name[NAME_MAX_LEN + 1];
	char serial[TLS_SERIAL_HEX_MAX + 1];
	int64_t at;
};

/* "NAME SERIAL ISSUED TOKEN-ID" */
static int issued_parse(const char *line, struct issued *ret)
{
	char name[NAME_MAX_LEN + 2], serial[TLS_SERIAL_HEX_MAX + 2], at[24], id[40];
	struct issued e = { 0 };

	if (sscanf(line, "%65s %65s %23s %39s", name, serial, at, id) != 4 ||
	    !name_is_valid(name, strlen(name)) || strlen(serial) > TLS_SERIAL_HEX_MAX ||
	    parse_time(at, &e.at) < 0)
		return -EBADMSG;
	/* Both lengths are checked above; the compiler cannot see that through sscanf. */
	memcpy(e.name, name, strlen(name) + 1);
	memcpy(e.serial, serial, strlen(serial) + 1);
	*ret = e;
	return 0;
}

struct revoked {
	char name[NAME_MAX_LEN + 1];
	int64_t at; /* every certificate for name issued at or before this is revoked */
};

/* "NAME REVOKED-AT" */
static int revoked_parse(const char *line, struct revoked *ret)
{
	char name[NAME_MAX_LEN + 2], at[24], extra[2];
	struct revoked e = { 0 };

	if (sscanf(line, "%65s %23s %1s", name, at, extra) != 2 ||
	    !name_is_valid(name, strlen(name)) || parse_time(at, &e.at) < 0)
		return -EBADMSG;
	memcpy(e.name, name, strlen(name) + 1); /* its length is checked above */
	*ret = e;
	return 0;
}

/* Loads DIR/revoked. -EBADMSG (logged with the line) for a damaged list. */
static int revoked_load(const char *path, struct revoked **ret, size_t *ret_n)
{
	struct revoked *v = NULL;
	char **lines = NULL;
	size_t n = 0;
	int r;

	r = lines_read(path, &lines, &n);
	if (r < 0)
		return log_errno(r, "read %s", path);
	if (n) {
		v = calloc(n, sizeof(*v));
		if (!v) {
			r = log_errno(-ENOMEM, "read %s", path);
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (revoked_parse(lines[i], &v[i]) < 0) {
			log_error("%s: damaged entry '%s'", path, lines[i]);
			r = -EBADMSG;
			goto out;
		}
	}
	*ret = v;
	*ret_n = n;
	v = NULL;
out:
	free(v);
	lines_free(lines, n);
	return r;
}

/* The newest revocation time of name in v, or -1 when it was never revoked. */
static int64_t revoked_at(const struct revoked *v, size_t n, const char *name)
{
	int64_t at = -1;

	for (size_t i = 0; i < n; i++) {
		if (strcmp(v[i].name, name) == 0 && v[i].at > at)
			at = v[i].at;
	}
	return at;
}

/* The latest revocation time of name from DIR's list, -1 when never revoked. */
static int revocation_of(const char *dir, const char *name, int64_t *ret_cut)
{
	char path[PATH_MAX];
	struct revoked *rv = NULL;
	size_t nrv = 0;
	int r;

	r = path_in(path, dir, ENROL_REVOKED_FILE);
	if (r == 0)
		r = revoked_load(path, &rv, &nrv);
	if (r < 0)
		return r;
	*ret_cut = revoked_at(rv, nrv, name);
	free(rv);
	return 0;
}

/* A certificate counts as revoked when it was issued no later than its name's latest
 * revocation, in whole seconds, so one issued in the very second of a revocation would be
 * refused at once. Waits until the clock has passed the revocation (a second at most,
 * unless the clock went back; then it gives up after a few seconds). */
static int wait_past_revocation(const char *dir, const char *name)
{
	int64_t cut;
	int r = revocation_of(dir, name, &cut);

	if (r < 0)
		return r;
	for (int i = 0; i < 50 && cut >= 0 && (int64_t)time(NULL) <= cut; i++)
		usleep(100 * 1000);
	return 0;
}

/* Whether name holds a certificate from enrolment that is not revoked. */
static int name_enrolled(const char *dir, const char *name, bool *ret)
{
	char path[PATH_MAX], **lines = NULL;
	size_t n = 0;
	bool live = false;
	int64_t cut;
	int r;

	r = revocation_of(dir, name, &cut);
	if (r < 0)
		return r;
	r = path_in(path, dir, ENROL_ISSUED_FILE);
	if (r == 0)
		r = lines_read(path, &lines, &n);
	if (r < 0) {
		log_errno(r, "read %s", path);
		goto out;
	}
	for (size_t i = 0; i < n && !live; i++) {
		struct issued e;

		if (issued_parse(lines[i], &e) < 0) {
			log_error("%s: damaged entry '%s'", path, lines[i]);
			r = -EBADMSG;
			goto out;
		}
		live = strcmp(e.name, name) == 0 && e.at > cut;
	}
	*ret = live;
out:
	lines_free(lines, n);
	return r;
}

/* Appends a line to a list file by rewriting it atomically (under the enrolment lock). */
static int list_append(const char *path, const char *line)
{
	char *data = NULL, *out;
	size_t len = 0, add = strlen(line);
	int r;

	r = read_file_all(path, LIST_MAX, &data, &len);
	if (r == -ENOENT) {
		len = 0;
		r = 0;
	}
	if (r < 0)
		return r;
	if (len + add + 2 > LIST_MAX) {
		free(data);
		return -EFBIG;
	}
	out = malloc(len + add + 2);
	if (!out) {
		free(data);
		return -ENOMEM;
	}
	if (len)
		memcpy(out, data, len);
	if (len && out[len - 1] != '\n')
		out[len++] = '\n';
	memcpy(out + len, line, add);
	out[len + add] = '\n';
	r = write_file_atomic(path, out, len + add + 1, 0600);
	free(out);
	free(data);
	return r;
}

int enrol_name_has_cert(const char *state_dir, const char *name, bool *ret)
{
	return name_enrolled(state_dir, name, ret);
}

/* The first disk whose record names agent name as the one that wrote its target, into
 * ret_disk ("" when none). 0 or -errno (logged). */
static int name_owns_disk(const char *dir, const char *name, char *ret_disk, size_t len)
{
	int r = rec_disk_of_agent(dir, name, ret_disk, len);

	return r < 0 ? log_errno(r, "cannot read the disk records in %s", dir) : 0;
}

/* Whether an unbound token may not enrol name: it holds a live certificate, was revoked
 * (its targets and history are still its own), or wrote a target on this receiver (maybe
 * through the shared bundle). Returns 1 with the reason in why, 0 when it is free, or
 * -errno (logged). */
static int name_taken(const char *dir, const char *name, char *why, size_t why_len)
{
	char disk[NAME_MAX_LEN + 1];
	bool live = false;
	int64_t cut;
	int r;

	r = name_enrolled(dir, name, &live);
	if (r < 0)
		return r;
	if (live) {
		snprintf(why, why_len, "agent name %s is already enrolled; revoke it first, or join "
			 "with a token made with --name %s", name, name);
		return 1;
	}
	r = revocation_of(dir, name, &cut);
	if (r < 0)
		return r;
	if (cut >= 0) {
		snprintf(why, why_len, "agent name %s was revoked; only a token made with --name %s "
			 "may enrol it again", name, name);
		return 1;
	}
	r = name_owns_disk(dir, name, disk, sizeof(disk));
	if (r < 0)
		return r;
	if (disk[0]) {
		snprintf(why, why_len, "agent name %s owns disk %s on this receiver; only a token "
			 "made with --name %s may enrol it", name, disk, name);
		return 1;
	}
	return 0;
}

/* ---- the shared bundle's marks ---- */

int enrol_shared_ensure(const char *dir, struct enrol_shared *ret)
{
	char path[PATH_MAX], bundle[PATH_MAX], cn[128], hex[2 * TLS_PIN_LEN + 1], **lines = NULL;
	uint8_t sha[TLS_PIN_LEN];
	struct enrol_shared sh = { 0 };
	bool have_bundle, listed = false;
	size_t n = 0;
	int lock = -1, r;

	r = path_in(path, dir, ENROL_SHARED_FILE);
	if (r == 0)
		r = path_in(bundle, dir, TLS_AGENT_BUNDLE);
	if (r < 0)
		return r;
	r = tls_file_cert_sha256(bundle, sha, cn, sizeof(cn));
	if (r < 0 && r != -ENOENT)
		return r;
	have_bundle = r == 0;
	if (have_bundle && strcmp(cn, TLS_SHARED_AGENT_CN) != 0) {
		log_warn("%s: a certificate of agent %s, not the shared bundle init makes; not "
			 "marked as shared", bundle, cn);
		have_bundle = false;
	}
	lock = lock_take(dir);
	if (lock < 0)
		return lock;
	r = lines_read(path, &lines, &n);
	if (r < 0) {
		log_errno(r, "read %s", path);
		goto out;
	}
	sh.sha = calloc(n + 1, sizeof(*sh.sha));
	if (!sh.sha) {
		r = log_errno(-ENOMEM, "read %s", path);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (enrol_unhex(lines[i], sh.sha[sh.n], TLS_PIN_LEN) < 0) {
			log_error("%s: damaged entry '%s'", path, lines[i]);
			r = -EBADMSG;
			goto out;
		}
		listed = listed || (have_bundle && memcmp(sh.sha[sh.n], sha, TLS_PIN_LEN) == 0);
		sh.n++;
	}
	if (have_bundle && !listed) {
		enrol_hex(sha, TLS_PIN_LEN, hex);
		r = list_append(path, hex);
		if (r < 0) {
			log_errno(r, "write %s", path);
			goto out;
		}
		memcpy(sh.sha[sh.n++], sha, TLS_PIN_LEN);
		log_info("%s: the shared agent bundle's certificate (SHA-256 %.16s...) is marked as "
			 "shared in %s", bundle, hex, path);
	}
	*ret = sh;
	sh.sha = NULL;
	r = 0;
out:
	free(sh.sha);
	lines_free(lines, n);
	lock_drop(lock);
	return r;
}

void enrol_shared_clear(struct enrol_shared *sh)
{
	if (!sh)
		return;
	free(sh->sha);
	sh->sha = NULL;
	sh->n = 0;
}

bool enrol_shared_is(const struct enrol_shared *sh, struct conn *c)
{
	uint8_t sha[TLS_PIN_LEN];
	bool is = false;

	if (!sh || tls_cert_sha256(conn_peer_cert(c), sha) < 0)
		return false;
	for (size_t i = 0; i < sh->n; i++)
		is = is || CRYPTO_memcmp(sh->sha[i], sha, TLS_PIN_LEN) == 0;
	return is;
}

static void usage_agent(FILE *f)
{
	fprintf(f,
		"Usage: tern-receiver agent revoke NAME [--state-dir DIR]\n"
		"       tern-receiver agent list [--state-dir DIR]\n"
		"\n"
		"revoke refuses every certificate issued to agent NAME until now, and the shared\n"
		"bundle init made when it claims NAME; a running receiver needs no restart and\n"
		"closes NAME's live session within seconds. Only a token made with --name NAME\n"
		"can enrol the name again; it then gets a new, valid certificate.\n"
		"list shows the certificates enrolment issued and the revoked names.\n");
}

static int agent_revoke(const char *dir, const char *name)
{
	char path[PATH_MAX], line[NAME_MAX_LEN + 32], when[64];
	int lock, r;

	if (!name_is_valid(name, strlen(name))) {
		log_error("agent name '%s': 1-64 characters from [A-Za-z0-9._:-]", name);
		return 2;
	}
	r = path_in(path, dir, TLS_CA_CERT);
	if (r < 0)
		return 1;
	if (access(path, F_OK) < 0) {
		log_errno(-errno, "%s: not a receiver state directory", dir);
		return 1;
	}
	r = path_in(path, dir, ENROL_REVOKED_FILE);
	if (r < 0)
		return 1;
	lock = lock_take(dir);
	if (lock < 0)
		return 1;
	/* Certificates are stamped to the second; one issued in this very second counts as
	 * issued before the revocation, which errs on the side of refusing it. */
	snprintf(line, sizeof(line), "%s %" PRId64, name, now_s());
	r = list_append(path, line);
	lock_drop(lock);
	if (r < 0) {
		log_errno(r, "write %s", path);
		return 1;
	}
	printf("revoked agent %s: every credential claiming it, issued until %s, is refused; a live session is closed within seconds\n",
	       name, fmt_time(now_s(), when, sizeof(when)));
	return 0;
}

static int agent_list(const char *dir)
{
	char path[PATH_MAX], **lines = NULL, when[64], rwhen[80];
	struct revoked *rv = NULL;
	size_t n = 0, nrv = 0;
	int r, ret = 1;

	r = path_in(path, dir, ENROL_REVOKED_FILE);
	if (r < 0 || revoked_load(path, &rv, &nrv) < 0)
		goto out;
	r = path_in(path, dir, ENROL_ISSUED_FILE);
	if (r < 0)
		goto out;
	r = lines_read(path, &lines, &n);
	if (r < 0) {
		log_errno(r, "read %s", path);
		goto out;
	}
	printf("%-24s %-34s %-24s %s\n", "AGENT", "SERIAL", "ISSUED", "STATUS");
	for (size_t i = 0; i < n; i++) {
		struct issued e;
		int64_t cut;

		if (issued_parse(lines[i], &e) < 0) {
			log_error("%s: damaged entry '%s'", path, lines[i]);
			goto out;
		}
		cut = revoked_at(rv, nrv, e.name);
		if (e.at <= cut)
			snprintf(rwhen, sizeof(rwhen), "revoked %s", fmt_time(cut, when, sizeof(when)));
		else
			snprintf(rwhen, sizeof(rwhen), "valid");
		printf("%-24s %-34s %-24s %s\n", e.name, e.serial, fmt_time(e.at, when, sizeof(when)),
		       rwhen);
	}
	for (size_t i = 0; i < nrv; i++) {
		bool listed = false;

		for (size_t j = 0; j < n && !listed; j++) {
			struct issued e;

			listed = issued_parse(lines[j], &e) == 0 && strcmp(e.name, rv[i].name) == 0;
		}
		if (!listed)
			printf("%-24s %-34s %-24s revoked %s\n", rv[i].name, "-", "-",
			       fmt_time(rv[i].at, when, sizeof(when)));
	}
	ret = 0;
out:
	lines_free(lines, n);
	free(rv);
	return ret;
}

int enrol_cmd_agent(int argc, char **argv)
{
	enum { O_STATE = 0x100, O_LOG };
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, O_STATE },
		{ "log-level", required_argument, NULL, O_LOG },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = "/var/lib/tern", *verb;
	int c;

	if (argc < 2 || argv[1][0] == '-') {
		bool help = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);

		usage_agent(help ? stdout : stderr);
		return help ? 0 : 2;
	}
	verb = argv[1];
	argc--;
	argv++;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_STATE: dir = optarg; break;
		case O_LOG:
			if (log_level_option(optarg) < 0)
				return 2;
			break;
		case 'h':
			usage_agent(stdout);
			return 0;
		default:
			usage_agent(stderr);
			return 2;
		}
	}
	if (strcmp(verb, "revoke") == 0) {
		if (argc - optind != 1) {
			log_error("agent revoke needs exactly one agent NAME");
			return 2;
		}
		return agent_revoke(dir, argv[optind]);
	}
	if (strcmp(verb, "list") == 0) {
		if (optind < argc) {
			log_error("unexpected argument '%s'", argv[optind]);
			return 2;
		}
		return agent_list(dir);
	}
	log_error("unknown agent command '%s'; see tern-receiver agent --help", verb);
	return 2;
}

/* ---- revocation check at the replication handshake ---- */

/* DIR/revoked as last read, shared by all sessions and re-read when the file changes
 * (a rewrite is a rename, so the inode changes even within one second). */
static struct {
	pthread_mutex_t lock;
	char path[PATH_MAX];
	bool valid;
	dev_t dev;
	ino_t ino;
	struct timespec mtime;
	off_t size;
	struct revoked *v;
	size_t n;
} g_rv = { .lock = PTHREAD_MUTEX_INITIALIZER };

int enrol_check_revoked(const char *state_dir, struct conn *c, const char *name, char *why,
			size_t why_len)
{
	char path[PATH_MAX], cn[128], serial[TLS_SERIAL_HEX_MAX + 1], when[64];
	const char *who;
	struct stat st;
	bool missing;
	int64_t issued, cut, cut_name;
	int r;

	if (snprintf(path, sizeof(path), "%s/%s", state_dir, ENROL_REVOKED_FILE) >= (int)sizeof(path)) {
		snprintf(why, why_len, "revocation list path too long");
		return -EIO;
	}
	if (tls_cert_identity(conn_peer_cert(c), cn, sizeof(cn), serial, &issued) < 0) {
		snprintf(why, why_len, "the client certificate's identity is unreadable");
		return -EACCES;
	}
	pthread_mutex_lock(&g_rv.lock);
	missing = stat(path, &st) < 0;
	if (missing && errno != ENOENT) {
		r = -errno;
		log_errno(r, "stat %s", path);
		snprintf(why, why_len, "the receiver cannot read its revocation list");
		r = -EIO;
		goto out;
	}
	if (missing) {
		free(g_rv.v);
		g_rv.v = NULL;
		g_rv.n = 0;
		g_rv.valid = false;
	} else if (!g_rv.valid || strcmp(g_rv.path, path) != 0 || st.st_dev != g_rv.dev ||
		   st.st_ino != g_rv.ino || st.st_size != g_rv.size ||
		   st.st_mtim.tv_sec != g_rv.mtime.tv_sec || st.st_mtim.tv_nsec != g_rv.mtime.tv_nsec) {
		struct revoked *v = NULL;
		size_t n = 0;

		r = revoked_load(path, &v, &n);
		if (r < 0) {
			snprintf(why, why_len, "the receiver cannot read its revocation list");
			r = -EIO;
			goto out;
		}
		free(g_rv.v);
		g_rv.v = v;
		g_rv.n = n;
		snprintf(g_rv.path, sizeof(g_rv.path), "%s", path);
		g_rv.dev = st.st_dev;
		g_rv.ino = st.st_ino;
		g_rv.size = st.st_size;
		g_rv.mtime = st.st_mtim;
		g_rv.valid = true;
		log_debug("loaded %zu revocation(s) from %s", n, path);
	}
	cut = revoked_at(g_rv.v, g_rv.n, cn);
	who = cn;
	/* A credential that may claim other names (the shared bundle) is held to the
	 * revocation of the name it claims too. */
	if (name && strcmp(name, cn) != 0) {
		cut_name = revoked_at(g_rv.v, g_rv.n, name);
		if (cut_name > cut) {
			cut = cut_name;
			who = name;
		}
	}
	r = 0;
	if (issued <= cut) {
		snprintf(why, why_len, "agent %s is revoked (certificate serial %s, revoked %s)", who,
			 serial, fmt_time(cut, when, sizeof(when)));
		r = -EACCES;
	}
out:
	pthread_mutex_unlock(&g_rv.lock);
	return r;
}

/* ---- the enrolment listener ---- */

struct enrol_listener {
	char *state_dir;
	SSL_CTX *ctx;
	uint16_t repl_port;
	int lfd;
	struct lsn *lsn;
};

/* Serialises redeeming tokens within this process; the file lock covers other processes. */
static pthread_mutex_t g_redeem = PTHREAD_MUTEX_INITIALIZER;

struct outcome {
	int err;          /* 0, or -errno of the refusal */
	char why[ENROL_MSG_MAX + 1];
	char serial[TLS_SERIAL_HEX_MAX + 1];
	uint8_t *cert, *ca;
	size_t cert_len, ca_len;
};

static int refuse(struct outcome *o, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(struct outcome *o, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(o->why, sizeof(o->why), fmt, ap);
	va_end(ap);
	o->err = err;
	return err;
}

/* Checks a request against its token and, when it passes, issues the certificate: signed in
 * memory, then the token marked used durably, then the issue recorded, and only then is it
 * released to the caller. A malformed request is refused before the token is spent. */
static int redeem(struct enrol_listener *l, const struct enrol_request *req, struct outcome *o)
{
	char path[PATH_MAX], text[RECORD_MAX], *data = NULL, when[64], idhex[2 * ENROL_ID_LEN + 1];
	char line[NAME_MAX_LEN + TLS_SERIAL_HEX_MAX + 80];
	uint8_t sha[32];
	struct token_rec rec;
	size_t len = 0;
	int64_t now;
	int lock = -1, n, r;

	enrol_hex(req->id, ENROL_ID_LEN, idhex);
	pthread_mutex_lock(&g_redeem);
	lock = lock_take(l->state_dir);
	if (lock < 0) {
		r = refuse(o, -EIO, "the receiver cannot lock its enrolment state");
		goto out;
	}
	r = token_path(path, l->state_dir, req->id);
	if (r == 0)
		r = read_file_all(path, RECORD_MAX, &data, &len);
	if (r == -ENOENT) {
		r = refuse(o, -EACCES, "unknown token (id %.8s...): it was never issued by this receiver",
			   idhex);
		goto out;
	}
	if (r < 0) {
		log_errno(r, "read %s", path);
		r = refuse(o, -EIO, "the receiver cannot read the token's record");
		goto out;
	}
	if (rec_parse(data, &rec) < 0) {
		log_error("%s: damaged token record", path);
		r = refuse(o, -EIO, "the token's record on the receiver is damaged");
		goto out;
	}
	/* The secret first: nothing about the token is told to someone who does not hold it. */
	if (EVP_Digest(req->secret, ENROL_SECRET_LEN, sha, NULL, EVP_sha256(), NULL) != 1 ||
	    CRYPTO_memcmp(sha, rec.secret_sha, sizeof(sha)) != 0) {
		r = refuse(o, -EACCES, "the token's secret does not match (a damaged or forged token)");
		goto out;
	}
	now = now_s();
	if (rec.used) {
		r = refuse(o, -EACCES, "the token was already used, by agent %s at %s", rec.used_by,
			   fmt_time(rec.used, when, sizeof(when)));
		goto out;
	}
	if (now >= rec.expires) {
		r = refuse(o, -EACCES, "the token expired at %s",
			   fmt_time(rec.expires, when, sizeof(when)));
		goto out;
	}
	if (rec.name[0] && strcmp(rec.name, req->name) != 0) {
		r = refuse(o, -EACCES, "the token is for agent %s, not %s", rec.name, req->name);
		goto out;
	}
	/* The shared bundle's name and the receiver's are never issued, whatever the token:
	 * a certificate under them would pass for the receiver's own credentials. */
	if (enrol_name_reserved(req->name)) {
		r = refuse(o, -EPERM, "agent name %s is reserved for the receiver's own credentials; "
			   "choose another --name", req->name);
		goto out;
	}
	/* An unbound token must not take over another agent's identity (and its targets);
	 * a token made for that name says the operator means it. */
	if (!rec.name[0]) {
		r = name_taken(l->state_dir, req->name, o->why, sizeof(o->why));
		if (r < 0) {
			r = refuse(o, -EIO, "the receiver cannot read its lists of agents and disks");
			goto out;
		}
		if (r > 0) {
			o->err = r = -EEXIST;
			goto out;
		}
	}
	r = wait_past_revocation(l->state_dir, req->name);
	if (r < 0) {
		r = refuse(o, -EIO, "the receiver cannot read its revocation list");
		goto out;
	}
	now = now_s(); /* the issue time recorded below must be past the revocation too */
	r = tls_csr_sign(l->state_dir, req->csr, req->csr_len, req->name, &o->cert, &o->cert_len,
			 &o->ca, &o->ca_len, o->serial, o->why, sizeof(o->why));
	if (r == -EBADMSG) {
		o->err = -EBADMSG;
		goto out;
	}
	if (r < 0) {
		r = refuse(o, -EIO, "the receiver could not sign the certificate");
		goto out;
	}
	rec.used = now;
	snprintf(rec.used_by, sizeof(rec.used_by), "%s", req->name);
	n = rec_format(&rec, text, sizeof(text));
	r = n < 0 ? n : write_file_atomic(path, text, (size_t)n, 0600);
	if (r < 0) {
		log_errno(r, "write %s", path);
		r = refuse(o, -EIO, "the receiver could not mark the token used");
		goto out;
	}
	r = path_in(path, l->state_dir, ENROL_ISSUED_FILE);
	if (r == 0) {
		snprintf(line, sizeof(line), "%s %s %" PRId64 " %s", req->name, o->serial, now, idhex);
		r = list_append(path, line);
		if (r < 0)
			log_errno(r, "write %s", path);
	}
	if (r < 0) {
		r = refuse(o, -EIO, "the receiver could not record the certificate");
		goto out;
	}
	r = 0;
out:
	if (r < 0) {
		free(o->cert);
		free(o->ca);
		o->cert = o->ca = NULL;
	}
	lock_drop(lock);
	pthread_mutex_unlock(&g_redeem);
	free(data);
	OPENSSL_cleanse(sha, sizeof(sha));
	return r;
}

static void send_refusal(struct conn *c, uint8_t *buf, const struct outcome *o)
{
	struct enrol_refused m = { .code = (uint32_t)(o->err < 0 ? -o->err : EPROTO) };
	int n;

	snprintf(m.msg, sizeof(m.msg), "%s", o->why);
	n = enrol_encode_refused(buf, ENROL_FRAME_MAX, &m);
	if (n > 0 && conn_send(c, buf, (size_t)n) == 0)
		conn_linger(c, REFUSE_LINGER_MS);
}

/* The listener's serving function: one enrolment, bounded by the listener's deadlines
 * (the handshake's until the request is in, then SERVE_DEADLINE_MS). */
static void serve_one(void *ctx, struct lsn_conn *lc, int fd, const char *peer)
{
	struct enrol_listener *l = ctx;
	struct outcome o = { 0 };
	struct enrol_request req = { 0 };
	struct conn *c = NULL;
	uint8_t *buf = NULL, type = 0;
	uint32_t len = 0;
	char why[256];
	int n, r;

	c = conn_handshake(l->ctx, fd, true, IO_TIMEOUT_MS, &r, why, sizeof(why));
	if (!c) {
		if (!lsn_was_cut(lc))
			lsn_warn(lc, "enrolment from %s: TLS handshake failed: %s", peer, why);
		return;
	}
	buf = malloc(ENROL_FRAME_MAX);
	if (!buf) {
		refuse(&o, -ENOMEM, "the receiver is out of memory");
		goto out;
	}
	r = enrol_recv(c, buf, &type, &len);
	if (r < 0) {
		if (!lsn_was_cut(lc))
			lsn_warn(lc, "enrolment from %s: no valid request: %s", peer, strerror(-r));
		if (r != -ECONNRESET && r != -ETIMEDOUT && !lsn_was_cut(lc))
			refuse(&o, r, "malformed enrolment request");
		goto out;
	}
	/* The request is in: it leaves the handshake limits, and the rest of the exchange
	 * gets a deadline of its own. */
	r = lsn_established(lc, SERVE_DEADLINE_MS);
	if (r == -EBUSY) {
		refuse(&o, -EBUSY, "the receiver is busy with other enrolments; try again shortly");
		goto out;
	}
	if (r < 0)
		goto out;
	if (type != ENROL_REQUEST) {
		refuse(&o, -EPROTO, "expected an enrolment request");
		goto out;
	}
	r = enrol_decode_request(buf, len, &req);
	if (r == -EINVAL) {
		refuse(&o, -EINVAL, "invalid agent name: 1-64 characters from [A-Za-z0-9._:-]");
		goto out;
	}
	if (r < 0) {
		refuse(&o, -EBADMSG, "malformed enrolment request");
		goto out;
	}
	if (redeem(l, &req, &o) < 0)
		goto out;
	{
		struct enrol_issued m = { .port = l->repl_port, .cert = o.cert, .cert_len = o.cert_len,
					  .ca = o.ca, .ca_len = o.ca_len };

		n = enrol_encode_issued(buf, ENROL_FRAME_MAX, &m);
		r = n < 0 ? n : conn_send(c, buf, (size_t)n);
	}
	if (r < 0)
		log_warn_errno(r, "enrolment from %s: agent %s was issued certificate %s but did not receive it",
			       peer, req.name, o.serial);
	else
		log_info("enrolled agent %s from %s (certificate serial %s)", req.name, peer, o.serial);
out:
	if (o.err) {
		log_warn("enrolment from %s refused: %s", peer, o.why);
		send_refusal(c, buf, &o);
	}
	OPENSSL_cleanse(&req, sizeof(req));
	free(o.cert);
	free(o.ca);
	free(buf);
	conn_free(c);
}

static uint16_t port_of(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

int enrol_listener_start(const char *state_dir, const char *hostport, int repl_fd,
			 const struct lsn_limits *lim, struct enrol_listener **ret_l)
{
	struct enrol_listener *l = calloc(1, sizeof(*l));
	/* The replication port's deadline and descriptor reserve; fewer slots, since a join
	 * is rare and short. */
	struct lsn_limits el = { .handshake_ms = lim->handshake_ms,
				 .max_handshakes = lim->max_handshakes < MAX_CONNS ? lim->max_handshakes : MAX_CONNS,
				 .max_per_addr = lim->max_per_addr < MAX_PER_ADDR ? lim->max_per_addr : MAX_PER_ADDR,
				 .max_sessions = MAX_SERVING, .fd_reserve = lim->fd_reserve };
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char name[64];
	int r;

	if (!l)
		return log_errno(-ENOMEM, "enrolment listener");
	l->lfd = -1;
	l->repl_port = port_of(repl_fd);
	l->state_dir = strdup(state_dir);
	if (!l->state_dir) {
		r = log_errno(-ENOMEM, "enrolment listener");
		goto fail;
	}
	l->ctx = tls_enrol_server_ctx(state_dir, &r);
	if (!l->ctx)
		goto fail;
	l->lfd = net_listen(hostport);
	if (l->lfd < 0) {
		r = log_errno(l->lfd, "cannot listen for enrolment on %s", hostport);
		goto fail;
	}
	if (getsockname(l->lfd, (struct sockaddr *)&ss, &sl) == 0) {
		net_addr_name(&ss, name, sizeof(name));
		log_info("enrolment listening on %s", name);
	}
	r = lsn_start("enrolment", l->lfd, &el, serve_one, l, &l->lsn);
	if (r < 0)
		goto fail;
	*ret_l = l;
	return 0;
fail:
	if (l->lfd >= 0)
		close(l->lfd);
	SSL_CTX_free(l->ctx);
	free(l->state_dir);
	free(l);
	return r;
}

struct enrol_listener *enrol_listener_stop(struct enrol_listener *l)
{
	if (!l)
		return NULL;
	/* Every enrolment runs under a deadline, so lsn_stop cuts and waits for all of
	 * them: none is left to use l. */
	lsn_stop(l->lsn);
	close(l->lfd);
	SSL_CTX_free(l->ctx);
	free(l->state_dir);
	free(l);
	return NULL;
}

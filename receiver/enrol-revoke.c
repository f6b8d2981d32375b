// SPDX-License-Identifier: GPL-2.0-only
/* Revocation and the lists behind it (DIR/issued, DIR/revoked, the shared bundle's marks):
 * `tern-receiver agent revoke|list`, the check at every replication handshake, and which
 * agent names an unbound token may not take; see enrol.h. Also the small state-directory
 * helpers the enrolment files share (enrol-impl.h). */
#include "receiver/enrol.h"
#include "receiver/enrol-impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/enrol.h"
#include "common/log.h"
#include "common/net.h"
#include "common/tls.h"
#include "common/util.h"
#include "receiver/record.h"

static void lines_free(char **lines, size_t n);

/* ---- small helpers ---- */

int enrol_path_in(char buf[PATH_MAX], const char *dir, const char *name)
{
	if (snprintf(buf, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX)
		return log_errno(-ENAMETOOLONG, "%s/%s", dir, name);
	return 0;
}

/* Takes DIR/enrol.lock exclusively (a separate file, so nothing else that may lock the
 * state directory can deadlock with us). Returns the fd to close, or -errno (logged). */
int enrol_lock_take(const char *dir)
{
	char path[PATH_MAX];
	int fd, r;

	r = enrol_path_in(path, dir, ENROL_LOCK_FILE);
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

void enrol_lock_drop(int fd)
{
	if (fd >= 0)
		close(fd);
}

const char *enrol_fmt_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, len, "@%" PRId64, t);
	return buf;
}

int64_t enrol_now_s(void)
{
	return (int64_t)time(NULL);
}

int enrol_parse_time(const char *s, int64_t *ret)
{
	uint64_t v;

	if (parse_u64(s, 0, INT64_MAX, &v) < 0)
		return -EINVAL;
	*ret = (int64_t)v;
	return 0;
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
	    enrol_parse_time(at, &e.at) < 0)
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
	    !name_is_valid(name, strlen(name)) || enrol_parse_time(at, &e.at) < 0)
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

	r = enrol_path_in(path, dir, ENROL_REVOKED_FILE);
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
int enrol_wait_past_revocation(const char *dir, const char *name)
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
	r = enrol_path_in(path, dir, ENROL_ISSUED_FILE);
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
int enrol_list_append(const char *path, const char *line)
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
int enrol_name_taken(const char *dir, const char *name, char *why, size_t why_len)
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

	r = enrol_path_in(path, dir, ENROL_SHARED_FILE);
	if (r == 0)
		r = enrol_path_in(bundle, dir, TLS_AGENT_BUNDLE);
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
	lock = enrol_lock_take(dir);
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
		r = enrol_list_append(path, hex);
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
	enrol_lock_drop(lock);
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
	r = enrol_path_in(path, dir, TLS_CA_CERT);
	if (r < 0)
		return 1;
	if (access(path, F_OK) < 0) {
		log_errno(-errno, "%s: not a receiver state directory", dir);
		return 1;
	}
	r = enrol_path_in(path, dir, ENROL_REVOKED_FILE);
	if (r < 0)
		return 1;
	lock = enrol_lock_take(dir);
	if (lock < 0)
		return 1;
	/* Certificates are stamped to the second; one issued in this very second counts as
	 * issued before the revocation, which errs on the side of refusing it. */
	snprintf(line, sizeof(line), "%s %" PRId64, name, enrol_now_s());
	r = enrol_list_append(path, line);
	enrol_lock_drop(lock);
	if (r < 0) {
		log_errno(r, "write %s", path);
		return 1;
	}
	printf("revoked agent %s: every credential claiming it, issued until %s, is refused; a live session is closed within seconds\n",
	       name, enrol_fmt_time(enrol_now_s(), when, sizeof(when)));
	return 0;
}

static int agent_list(const char *dir)
{
	char path[PATH_MAX], **lines = NULL, when[64], rwhen[80];
	struct revoked *rv = NULL;
	size_t n = 0, nrv = 0;
	int r, ret = 1;

	r = enrol_path_in(path, dir, ENROL_REVOKED_FILE);
	if (r < 0 || revoked_load(path, &rv, &nrv) < 0)
		goto out;
	r = enrol_path_in(path, dir, ENROL_ISSUED_FILE);
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
			snprintf(rwhen, sizeof(rwhen), "revoked %s", enrol_fmt_time(cut, when, sizeof(when)));
		else
			snprintf(rwhen, sizeof(rwhen), "valid");
		printf("%-24s %-34s %-24s %s\n", e.name, e.serial, enrol_fmt_time(e.at, when, sizeof(when)),
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
			       enrol_fmt_time(rv[i].at, when, sizeof(when)));
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
			 serial, enrol_fmt_time(cut, when, sizeof(when)));
		r = -EACCES;
	}
out:
	pthread_mutex_unlock(&g_rv.lock);
	return r;
}

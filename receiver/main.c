// SPDX-License-Identifier: GPL-2.0-only
/* tern-receiver: sets up credentials and serves agents' replication sessions. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "common/conf.h"
#include "common/log.h"
#include "common/net.h"
#include "common/proto.h"
#include "common/tls.h"
#include "common/util.h"
#include "receiver/adapt.h"
#include "receiver/api.h"
#include "receiver/enrol.h"
#include "receiver/launch.h"
#include "receiver/listener.h"
#include "receiver/registry.h"
#include "receiver/session.h"

#define RECEIVER_CONF "/etc/tern/receiver.conf"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: tern-receiver init  --state-dir DIR\n"
		"       tern-receiver serve --state-dir DIR --listen HOST:PORT\n"
		"                           --target DISK_ID=PATH[,max-size=SIZE] [--target ...]\n"
		"       tern-receiver token create --address HOST:PORT [--ttl DURATION] [...]\n"
		"       tern-receiver agent revoke NAME | agent list\n"
		"       tern-receiver adapt --profile kvm|aws|azure|gcp [...] IMAGE  (see adapt --help)\n"
		"       tern-receiver adapt --undo DIR IMAGE\n"
		"       tern-receiver --help | --version\n"
		"\n"
		"init creates a CA, the receiver's key and certificate and an agent credential\n"
		"bundle DIR/agent-bundle.pem (all 0600), recognised by its certificate's SHA-256\n"
		"in DIR/shared-bundle.sha256; it keeps what already exists.\n"
		"serve accepts agents over mutual TLS 1.3 and writes each disk to its target:\n"
		"a regular file (created or grown to the source's size) or a block device\n"
		"(refused when mounted, in use, or smaller than the source).\n"
		"\n"
		"Options:\n"
		"  --state-dir DIR       credentials and per-disk state (default /var/lib/tern)\n"
		"  --listen HOST:PORT    address to serve agents on (port 0: any free port)\n"
		"  --api HOST:PORT|none  operator API (default " API_DEFAULT_ADDR "; plain HTTP\n"
		"                        only on loopback, TLS elsewhere; bearer token in\n"
		"                        DIR/" API_TOKEN_FILE ", address in DIR/" API_ADDR_FILE ")\n"
		"  --target ID=PATH[,agent=NAME][,max-size=SIZE][,reconcile=yes]  where disk ID\n"
		"                        is written; with agent=, only agent NAME may write it\n"
		"                        (others are refused); a file target is grown to the\n"
		"                        source's size only up to SIZE (default: what its\n"
		"                        filesystem has free) and cut to it when larger; with\n"
		"                        reconcile=yes a target with no record here already holds\n"
		"                        an earlier copy of the disk (failback to the original\n"
		"                        disk): it is read and fingerprinted, and the agent sends\n"
		"                        only the chunks that differ (its size must be the disk's)\n"
		"  --no-shared-bundle    refuse the shared agent bundle init made (DIR/agent-\n"
		"                        bundle.pem): only enrolled agents' own certificates\n"
		"  --fp-memory SIZE      memory all sessions together may hold for chunk\n"
		"                        fingerprints (16 bytes a chunk; default a quarter of RAM);\n"
		"                        a disk that would exceed it is refused\n"
		"  --enrol-listen HOST:PORT  also serve `tern-agent join` here (TLS, no client\n"
		"                        certificate; a token from token create is the key)\n"
		"  --handshake-timeout S  seconds a connection to either port may take, from\n"
		"                        accept, to authenticate (and say HELLO); cut after\n"
		"                        that however it trickles (default 10)\n"
		"  --max-handshakes N    connections not yet authenticated, in all (default 64;\n"
		"                        the enrolment port allows at most 16)\n"
		"  --max-handshakes-per-address N  of those, from one address (default 8; the\n"
		"                        enrolment port allows at most 2)\n"
		"  --max-sessions N      agents' sessions at once (default 64)\n"
		"  --fd-reserve N        descriptors kept free below the open-file limit for\n"
		"                        sessions, targets and the API: new connections are\n"
		"                        refused before it (default 64)\n"
		"  --log-level LEVEL     error, warn, info (default) or debug\n"
		"  --config FILE         serve: read options from FILE, `key = value` lines, keys\n"
		"                        are these options' names (default " RECEIVER_CONF "\n"
		"                        if it exists); options given here win, and any --target\n"
		"                        here replaces every `target` line of the file\n");
}

enum { OPT_STATE_DIR = 0x100, OPT_LISTEN, OPT_TARGET, OPT_LOG_LEVEL, OPT_CONFIG, OPT_API, OPT_ENROL_LISTEN,
       OPT_NO_SHARED, OPT_FP_MEMORY, OPT_HANDSHAKE_TIMEOUT, OPT_MAX_HANDSHAKES, OPT_MAX_PER_ADDR,
       OPT_MAX_SESSIONS, OPT_FD_RESERVE };

static const struct option all_opts[] = {
	{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "target", required_argument, NULL, OPT_TARGET },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "api", required_argument, NULL, OPT_API },
	{ "enrol-listen", required_argument, NULL, OPT_ENROL_LISTEN },
	{ "no-shared-bundle", no_argument, NULL, OPT_NO_SHARED },
	{ "fp-memory", required_argument, NULL, OPT_FP_MEMORY },
	{ "handshake-timeout", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT },
	{ "max-handshakes", required_argument, NULL, OPT_MAX_HANDSHAKES },
	{ "max-handshakes-per-address", required_argument, NULL, OPT_MAX_PER_ADDR },
	{ "max-sessions", required_argument, NULL, OPT_MAX_SESSIONS },
	{ "fd-reserve", required_argument, NULL, OPT_FD_RESERVE },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct args {
	const char *state_dir;
	const char *listen;
	const char *enrol_listen;
	const char *api; /* HOST:PORT of the operator API, or "none" */
	bool no_shared;
	struct rcv_target *targets;
	unsigned ntargets;
	uint64_t fp_memory; /* 0: the default, a quarter of RAM */
	struct lsn_limits lim; /* of the replication port; the enrolment port's derive from it */
};

/* The long name of option value c, for messages. */
static const char *opt_name(int c)
{
	for (const struct option *o = all_opts; o->name; o++)
		if (o->val == c)
			return o->name;
	return "?";
}

/* One ,KEY=VALUE of a --target. */
static int target_opt(void *ud, const char *key, const char *value)
{
	struct rcv_target *t = ud;

	if (strcmp(key, "max-size") == 0) {
		if (parse_size(value, &t->max_size) < 0 || t->max_size == 0) {
			log_error("--target: max-size=%s is not a size (like 500G)", value);
			return -ERANGE;
		}
		return 0;
	}
	if (strcmp(key, "agent") == 0) {
		if (t->agent || !name_is_valid(value, strlen(value))) {
			log_error("--target: agent=%s is not one agent name of 1-64 characters from "
				  "[A-Za-z0-9._:-]", value);
			return -ERANGE;
		}
		t->agent = strdup(value);
		return t->agent ? 0 : -ENOMEM;
	}
	if (strcmp(key, "reconcile") == 0) {
		if (strcmp(value, "yes") != 0 && strcmp(value, "no") != 0) {
			log_error("--target: reconcile=%s: yes or no", value);
			return -ERANGE;
		}
		t->reconcile = strcmp(value, "yes") == 0;
		return 0;
	}
	log_error("--target: unknown option %s= (known: agent=, max-size=, reconcile=)", key);
	return -ENOENT;
}

static void args_free(struct args *a)
{
	for (unsigned i = 0; i < a->ntargets; i++) {
		free(a->targets[i].id);
		free(a->targets[i].path);
		free(a->targets[i].agent);
	}
	free(a->targets);
}

/* --target ID=PATH[,agent=NAME]: the suffix binds the target to agent NAME. A path
 * that itself ends in ",agent=..." cannot be given; nothing else changes meaning. Adds it
 * to a->targets. 0, or -EINVAL or -ENOMEM (logged). */
static int add_target(const struct conf_args *ca, struct args *a, bool *targets_from_cmdline,
		      const char *arg)
{
	struct rcv_target *t, nt = { 0 };
	char *id, *path;
	int r;

	/* The command line's targets replace the file's, not add to them. */
	if (!conf_args_from_file(ca, optind - 1) && !*targets_from_cmdline) {
		args_free(a);
		a->targets = NULL;
		a->ntargets = 0;
		*targets_from_cmdline = true;
	}
	/* target_opt reports its own refusals (any error but -EINVAL). */
	r = parse_id_path_opts(arg, &id, &path, target_opt, &nt);
	if (r == -EINVAL)
		log_error("--target %s: expected DISK_ID=PATH[,agent=NAME][,max-size=SIZE][,reconcile=yes] "
			  "with an id and a name of 1-64 characters from [A-Za-z0-9._:-]", arg);
	if (r < 0) {
		free(nt.agent);
		return -EINVAL;
	}
	for (unsigned i = 0; i < a->ntargets; i++) {
		if (strcmp(a->targets[i].id, id) == 0 ||
		    strcmp(a->targets[i].path, path) == 0) {
			log_error("--target %s: id or path given twice", arg);
			free(id);
			free(path);
			free(nt.agent);
			return -EINVAL;
		}
	}
	t = realloc(a->targets, (a->ntargets + 1) * sizeof(*t));
	if (!t) {
		free(id);
		free(path);
		free(nt.agent);
		log_error("out of memory");
		return -ENOMEM;
	}
	a->targets = t;
	nt.id = id;
	nt.path = path;
	t[a->ntargets++] = nt;
	return 0;
}

/* One of serve's limits of strangers (--handshake-timeout, --max-handshakes,
 * --max-per-addr, --max-sessions, --fd-reserve) into a->lim. 0, or -EINVAL (logged). */
static int set_limit(struct args *a, int c, const char *arg)
{
	uint64_t v;

	if (parse_u64(arg, 1, c == OPT_HANDSHAKE_TIMEOUT ? 3600 : 1000000, &v) < 0) {
		log_error("--%s %s: expected %s", opt_name(c), arg,
			  c == OPT_HANDSHAKE_TIMEOUT ? "seconds from 1 to 3600" :
			  "a number from 1 to 1000000");
		return -EINVAL;
	}
	if (c == OPT_HANDSHAKE_TIMEOUT)
		a->lim.handshake_ms = (unsigned)v * 1000;
	else if (c == OPT_MAX_HANDSHAKES)
		a->lim.max_handshakes = (unsigned)v;
	else if (c == OPT_MAX_PER_ADDR)
		a->lim.max_per_addr = (unsigned)v;
	else if (c == OPT_MAX_SESSIONS)
		a->lim.max_sessions = (unsigned)v;
	else
		a->lim.fd_reserve = (unsigned)v;
	return 0;
}

/* Parses ca's argv (the config file's options, then the command line's). Returns 0, 1 for
 * --help (printed), or -EINVAL (reported). */
static int parse_args(const struct conf_args *ca, bool serve, struct args *a)
{
	char where[4096 + 16];
	bool targets_from_cmdline = false;
	int c, r;

	a->state_dir = "/var/lib/tern";
	a->lim = (struct lsn_limits){ .handshake_ms = 10000, .max_handshakes = 64, .max_per_addr = 8,
				      .max_sessions = 64, .fd_reserve = 64 };
	while ((c = getopt_long(ca->argc, ca->argv, "h", all_opts, NULL)) != -1) {
		/* An error below names the config line the option came from. */
		log_set_context(conf_args_origin(ca, optind - 1, where, sizeof(where)));
		switch (c) {
		case OPT_STATE_DIR:
			a->state_dir = optarg;
			break;
		case OPT_LISTEN:
			if (!serve)
				goto not_here;
			a->listen = optarg;
			break;
		case OPT_API:
			if (!serve)
				goto not_here;
			a->api = optarg;
			break;
		case OPT_TARGET:
			if (!serve)
				goto not_here;
			r = add_target(ca, a, &targets_from_cmdline, optarg);
			if (r == -ENOMEM) {
				log_set_context(NULL);
				return r;
			}
			if (r < 0)
				goto fail;
			break;
		case OPT_LOG_LEVEL:
			if (log_level_option(optarg) < 0)
				goto fail;
			break;
		case OPT_CONFIG:
			/* Read by conf_args_build, for serve only. */
			if (!serve)
				goto not_here;
			break;
		case OPT_ENROL_LISTEN:
			if (!serve)
				goto not_here;
			a->enrol_listen = optarg;
			break;
		case OPT_NO_SHARED:
			if (!serve)
				goto not_here;
			a->no_shared = true;
			break;
		case OPT_FP_MEMORY:
			if (!serve)
				goto not_here;
			if (parse_size(optarg, &a->fp_memory) < 0 || a->fp_memory == 0) {
				log_error("--fp-memory %s: expected a size like 1G", optarg);
				goto fail;
			}
			break;
		case OPT_HANDSHAKE_TIMEOUT:
		case OPT_MAX_HANDSHAKES:
		case OPT_MAX_PER_ADDR:
		case OPT_MAX_SESSIONS:
		case OPT_FD_RESERVE:
			if (!serve)
				goto not_here;
			if (set_limit(a, c, optarg) < 0)
				goto fail;
			break;
		case 'h':
			usage(stdout);
			log_set_context(NULL);
			return 1;
		default:
			usage(stderr);
			goto fail;
		}
	}
	log_set_context(NULL);
	if (optind < ca->argc) {
		log_error("unexpected argument '%s'", ca->argv[optind]);
		return -EINVAL;
	}
	return 0;
not_here:
	log_error("option --%s is for serve", all_opts[c - OPT_STATE_DIR].name);
fail:
	log_set_context(NULL);
	return -EINVAL;
}

/* The state dir holds the CA key, the API token and the enrolment tokens: only its owner
 * may list or enter it. A dir made earlier with a looser mode (by hand, by an older
 * version, by a umask) is tightened, and the operator told. Returns 0 or -errno, logged. */
static int state_dir_private(const char *dir)
{
	struct stat st;
	int fd, r = 0;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return log_errno(-errno, "cannot open the state dir %s", dir);
	if (fstat(fd, &st) < 0) {
		r = log_errno(-errno, "cannot stat the state dir %s", dir);
		goto cleanup;
	}
	if ((st.st_mode & 07777) == 0700)
		goto cleanup;
	if (fchmod(fd, 0700) < 0) {
		r = log_errno(-errno, "the state dir %s has mode %04o and cannot be made 0700", dir,
			      (unsigned)(st.st_mode & 07777));
		goto cleanup;
	}
	log_warn("the state dir %s had mode %04o; made it 0700 (it holds the CA key and the "
		 "API token)", dir, (unsigned)(st.st_mode & 07777));
cleanup:
	close(fd);
	return r;
}

static int cmd_init(int argc, char **argv)
{
	struct conf_args *ca = NULL;
	struct enrol_shared shared = { 0 };
	struct args a = { 0 };
	bool created = false;
	int r, ret = 2;

	/* init takes no config file: config_val -1 matches no option. */
	if (conf_args_build(argc, argv, all_opts, -1, NULL, NULL, &ca) < 0)
		goto out;
	r = parse_args(ca, false, &a);
	if (r != 0) {
		ret = r > 0 ? 0 : 2;
		goto out;
	}
	ret = 1;
	r = tls_init_state(a.state_dir, &created);
	if (r < 0) {
		log_errno(r, "cannot initialise %s", a.state_dir);
		goto out;
	}
	if (state_dir_private(a.state_dir) < 0)
		goto out;
	{
		char token[API_TOKEN_HEX + 1], path[4096];

		snprintf(path, sizeof(path), "%s/%s", a.state_dir, API_TOKEN_FILE);
		created = created || access(path, F_OK) < 0;
		if (api_token_ensure(a.state_dir, token) < 0)
			goto out;
	}
	if (enrol_shared_ensure(a.state_dir, &shared) < 0)
		goto out;
	enrol_shared_clear(&shared);
	if (created)
		printf("initialised %s: CA, receiver certificate, agent bundle %s/%s\n",
		       a.state_dir, a.state_dir, TLS_AGENT_BUNDLE);
	else
		printf("%s already initialised; nothing changed\n", a.state_dir);
	ret = 0;
out:
	conf_args_free(ca);
	return ret;
}

/* The listener's serving function for the replication port. */
static void serve_conn(void *ctx, struct lsn_conn *lc, int fd, const char *peer)
{
	struct rcv_server *srv = ctx;

	pthread_mutex_lock(&srv->lock);
	srv->sessions++;
	pthread_mutex_unlock(&srv->lock);
	rcv_session_run(srv, lc, fd, peer);
	pthread_mutex_lock(&srv->lock);
	srv->sessions--;
	pthread_cond_broadcast(&srv->idle);
	pthread_mutex_unlock(&srv->lock);
}

/* The server's state from the options: its targets, the fingerprint budget (a quarter
 * of RAM unless --fp-memory), its lock. */
static void serve_init(struct rcv_server *srv, const struct args *a)
{
	srv->state_dir = a->state_dir;
	srv->targets = a->targets;
	srv->ntargets = a->ntargets;
	srv->fp_budget = a->fp_memory;
	if (!srv->fp_budget) {
		long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);

		/* A quarter of RAM: the receiver's own share, leaving the page cache and the
		 * rest of the staging machine room. */
		srv->fp_budget = pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize / 4 :
							 UINT64_C(1) << 30;
	}
	pthread_mutex_init(&srv->lock, NULL);
	pthread_cond_init(&srv->idle, NULL);
}

/* What the server trusts and shows: its credentials (made by init), the state dir
 * private, the TLS context, the shared bundle's marks. 0, or -1 (logged). */
static int serve_trust(struct rcv_server *srv, const struct args *a)
{
	int r;

	{
		char probe[4096];

		snprintf(probe, sizeof(probe), "%s/%s", a->state_dir, TLS_RECEIVER_CERT);
		if (access(probe, F_OK) < 0) {
			log_error("no credentials in %s: run tern-receiver init --state-dir %s first",
				  a->state_dir, a->state_dir);
			return -1;
		}
	}
	if (state_dir_private(a->state_dir) < 0)
		return -1;
	/* tls_server_ctx says what is wrong with the files itself. */
	srv->ctx = tls_server_ctx(a->state_dir, &r);
	if (!srv->ctx)
		return -1;
	/* A state directory from an older init gets its shared bundle marked here. */
	srv->no_shared = a->no_shared;
	if (enrol_shared_ensure(a->state_dir, &srv->shared) < 0)
		return -1;
	if (srv->no_shared)
		log_info("the shared agent bundle is refused (--no-shared-bundle): only enrolled "
			 "agents' own certificates are served");
	else if (srv->shared.n == 0)
		log_warn("no shared agent bundle is known in %s (no %s): only enrolled agents' own "
			 "certificates are served", a->state_dir, TLS_AGENT_BUNDLE);
	return 0;
}

/* The operator's registry, loaded from the disks' records, and the test launches.
 * 0, or -1 (logged). */
static int serve_registry(struct rcv_server *srv, const struct args *a)
{
	srv->reg = reg_new();
	if (!srv->reg) {
		log_error("out of memory");
		return -1;
	}
	{
		/* Test seam: how long an agent that owns no disk stays in status once gone. */
		const char *e = getenv("TERN_REGISTRY_EXPIRE_S");
		uint64_t v;

		if (e) {
			if (parse_u64(e, 1, 86400, &v) < 0) {
				log_error("TERN_REGISTRY_EXPIRE_S=%s: seconds from 1 to 86400", e);
				return -1;
			}
			reg_set_expiry(srv->reg, v);
		}
	}
	{
		const char **ids = calloc(srv->ntargets, sizeof(*ids));

		if (!ids) {
			log_error("out of memory");
			return -1;
		}
		for (unsigned i = 0; i < srv->ntargets; i++)
			ids[i] = srv->targets[i].id;
		reg_load_records(srv->reg, a->state_dir, ids, srv->ntargets);
		free(ids);
	}
	srv->launches = launches_new(a->state_dir);
	if (!srv->launches) {
		log_error("out of memory");
		return -1;
	}
	return 0;
}

/* serve: set up in order, serve until SIGINT or SIGTERM, then stop in one place. Long for
 * its shutdown path, kept whole because its order is the argument: listeners, then the
 * cutovers still waited for, the API, and the sessions last. */
static int cmd_serve(int argc, char **argv)
{
	struct rcv_server srv = { 0 };
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct args a = { 0 };
	sigset_t mask;
	int lfd = -1, sfd = -1, r, ret = 1;
	struct api *api = NULL;
	struct enrol_listener *enr = NULL;
	struct lsn *lsn = NULL;
	struct conf_args *ca = NULL;
	char name[64];
	static const char *const repeatable[] = { "target", NULL };

	/* Options from the config file come first, so the command line's win. */
	if (conf_args_build(argc, argv, all_opts, OPT_CONFIG, RECEIVER_CONF, repeatable, &ca) < 0)
		return 2;
	r = parse_args(ca, true, &a);
	if (r != 0) {
		args_free(&a);
		conf_args_free(ca);
		return r > 0 ? 0 : 2;
	}
	if (!a.listen || a.ntargets == 0) {
		log_error("serve needs --listen HOST:PORT and at least one --target DISK_ID=PATH");
		args_free(&a);
		conf_args_free(ca);
		return 2;
	}
	serve_init(&srv, &a);
	if (serve_trust(&srv, &a) < 0)
		goto out;
	/* Signals become readable events so shutdown happens in one place. Blocked before
	 * any thread starts, so every thread inherits the mask and none takes the signal's
	 * default action. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	{
		pthread_condattr_t cattr;

		/* rcv_cutover's deadline is on the monotonic clock. */
		pthread_condattr_init(&cattr);
		pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
		pthread_cond_init(&srv.cut_cv, &cattr);
		pthread_condattr_destroy(&cattr);
	}
	lfd = net_listen(a.listen);
	if (lfd < 0) {
		log_errno(lfd, "cannot listen on %s", a.listen);
		goto out;
	}
	if (getsockname(lfd, (struct sockaddr *)&ss, &sl) == 0) {
		net_addr_name(&ss, name, sizeof(name));
		log_info("listening on %s", name);
	}
	if (serve_registry(&srv, &a) < 0)
		goto out;
	/* After the agents' port, so a bad --listen is the one error; api_start says
	 * why it could not. */
	if (strcmp(a.api ? a.api : API_DEFAULT_ADDR, "none") != 0 &&
	    api_start(&srv, srv.reg, a.api ? a.api : API_DEFAULT_ADDR, a.lim.handshake_ms, &api) < 0)
		goto out;
	if (a.enrol_listen && enrol_listener_start(a.state_dir, a.enrol_listen, lfd, &a.lim, &enr) < 0)
		goto out;
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) {
		log_errno(-errno, "signalfd");
		goto out;
	}
	if (lsn_start("replication", lfd, &a.lim, serve_conn, &srv, &lsn) < 0)
		goto out;
	for (;;) {
		struct signalfd_siginfo si;

		if (read(sfd, &si, sizeof(si)) < 0 && errno == EINTR)
			continue;
		log_info("shutting down");
		break;
	}
	ret = 0;
out:
	/* Sessions in flight hold no acknowledged data: leaving them is safe, and waiting
	 * for a stuck peer would stall shutdown. Handshakes in flight are cut. */
	lsn_stop(lsn);
	if (lfd >= 0)
		close(lfd);
	if (sfd >= 0)
		close(sfd);
	enrol_listener_stop(enr);
	/* A cutover still waited for is answered as failed (the API's threads wait in it,
	 * and stopping the API waits for them). */
	pthread_mutex_lock(&srv.lock);
	srv.stopping = true;
	pthread_cond_broadcast(&srv.cut_cv);
	pthread_mutex_unlock(&srv.lock);
	api = api_stop(api);
	pthread_mutex_lock(&srv.lock);
	r = (int)srv.sessions;
	pthread_mutex_unlock(&srv.lock);
	if (r == 0) {
		/* Boot checks are cancelled (QEMU killed), adaptations finish first. With
		 * sessions left, _exit below ends them all, QEMU too (PR_SET_PDEATHSIG). */
		srv.launches = launches_free(srv.launches);
		SSL_CTX_free(srv.ctx);
		enrol_shared_clear(&srv.shared);
		reg_free(srv.reg);
		args_free(&a);
		conf_args_free(ca);
		return ret;
	}
	/* Live sessions still use srv and OpenSSL; running exit handlers under them would
	 * free what they use. Nothing of theirs was acknowledged, so ending here is safe. */
	log_info("abandoning %d unfinished session(s); nothing of theirs was acknowledged", r);
	fflush(stdout);
	_exit(ret);
}

int main(int argc, char **argv)
{
	log_setup("tern-receiver", LOG_LVL_INFO);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("tern-receiver %s (wire protocol v%d)\n", TERN_VERSION, PROTO_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "init") == 0)
		return cmd_init(argc - 1, argv + 1);
	if (strcmp(argv[1], "serve") == 0)
		return cmd_serve(argc - 1, argv + 1);
	if (strcmp(argv[1], "token") == 0)
		return enrol_cmd_token(argc - 1, argv + 1);
	if (strcmp(argv[1], "agent") == 0)
		return enrol_cmd_agent(argc - 1, argv + 1);
	if (strcmp(argv[1], "adapt") == 0)
		return adapt_cmd(argc - 1, argv + 1);
	log_error("unknown command '%s'; see tern-receiver --help", argv[1]);
	return 2;
}

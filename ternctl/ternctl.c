// SPDX-License-Identifier: GPL-2.0-only
/* ternctl: the operator's client of a tern receiver's HTTP control API — status (a table,
 * a live view, JSON), cutover, pause, resume, rate. Without a reachable receiver, status
 * falls back to the per-disk records in the state dir. This file: the options, the
 * subcommand table (each subcommand in its own file) and the helpers they share. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "common/log.h"
#include "common/util.h"
#include "ternctl/apiclient.h"
#include "ternctl/ternctl-impl.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: ternctl [--state-dir DIR] [--api URL] [--token-file FILE] COMMAND\n"
		"  status [--json] [--watch [--interval SECONDS] [--until-synced [--agent NAME]]]\n"
		"  cutover NAME [--verify tracked|full] [--timeout SECONDS] [--json]\n"
		"          [--adapt kvm|aws|azure|gcp [--boot-check] [--accel tcg|kvm]]\n"
		"  pause NAME [--json]\n"
		"  resume NAME [--json]\n"
		"  disconnect NAME [--json]\n"
		"  rate NAME BYTES|unlimited [--json]   (per second; K, M, G suffixes: 20M)\n"
		"  launch NAME --test [--profile kvm|aws|azure|gcp] [--boot-check] [--accel tcg|kvm]\n"
		"         [--timeout SECONDS] [--json]\n"
		"  launch NAME --discard [--json]\n"
		"  --help | --version\n"
		"\n"
		"ternctl talks to the receiver's HTTP API: its address is read from DIR/api.addr\n"
		"unless --api (or $TERN_API) is given, its bearer token from DIR/api.token unless\n"
		"--token-file is. DIR defaults to $TERN_STATE_DIR or /var/lib/tern. Plain http://\n"
		"is refused to anything but loopback (127.0.0.0/8, ::1, localhost): the token\n"
		"would travel in clear text.\n"
		"\n"
		"status shows a row per disk (state, copied, rate, ETA, backlog, lag, tracker),\n"
		"then its convergence forecast and its last fault; a WARNING when replication will\n"
		"not converge. --watch redraws it with a progress bar per disk every --interval\n"
		"seconds (default 1) on a terminal, and prints plain lines otherwise; it ends on\n"
		"Ctrl-C, or with --until-synced (which implies --watch) once there is a disk and\n"
		"every disk is in sync, verified or cut over (--agent NAME: every disk of agent\n"
		"NAME, which must have one); it waits for a receiver that is not serving yet.\n"
		"When no receiver answers, status shows the records in DIR/disks instead.\n"
		"cutover asks agent NAME, through the receiver, to quiesce its source, send a final\n"
		"epoch of every disk and thaw; it prints the proof and exits 0 only when every disk\n"
		"matches (--verify full: the receiver also re-reads its targets). An agent that is\n"
		"not connected (a link flap, a restart) is waited for, within --timeout.\n"
		"With --adapt P the proven target is then adapted for platform P (on a reflink\n"
		"that replaces it only once adaptation and the --boot-check passed; in place,\n"
		"with an undo copy, where no reflink can be made); it prints the proven root,\n"
		"what changed and the adapted root, and exits 1 if the adaptation failed (the\n"
		"proven target is then left as it was).\n"
		"pause and resume stop and restart an agent's replication; rate limits it.\n"
		"disconnect closes agent NAME's live session; the agent reconnects unless it is\n"
		"revoked (tern-receiver agent revoke NAME).\n"
		"launch --test clones agent NAME's targets at its next epoch boundary while\n"
		"replication goes on, adapts the clone for --profile (default kvm) and with\n"
		"--boot-check boots it under QEMU on the profile's bus (TCG unless --accel kvm);\n"
		"it waits, showing each step, and exits 0 only when the launch passed: the guest\n"
		"printed its DHCP address on the console. The targets are never written.\n"
		"launch --discard removes the agent's test launches (clones, logs, reports).\n"
		"--json prints the receiver's JSON answer. Exit status: 0 done, 1 refused or\n"
		"failed, 2 usage error.\n");
}

/* Prints a body as received, with the newline a terminal or `jq` line reader expects. */
void print_body(FILE *f, const struct apic_reply *rep)
{
	fputs(rep->body, f);
	if (rep->body_len == 0 || rep->body[rep->body_len - 1] != '\n')
		fputc('\n', f);
}

/* Opens the API; -ENOENT (no api.addr) and the other "nothing there" errors are for the
 * caller to treat as an unreachable receiver. */
int open_api(const struct args *a, struct apic **ret_api, char *err, size_t err_len)
{
	return apic_new(a->dir, a->api, a->token_file, ret_api, err, err_len);
}

/* Sends one agent request. Returns 0 with the 200 reply, -EPROTO for a refusal (its
 * reason in ret_err; with --json its body is printed), or apic's -errno. */
int agent_request(const struct args *a, const char *method, const char *path,
			 const char *body, long timeout_s, struct apic **ret_api,
			 struct apic_reply *ret_rep, char *ret_err, size_t err_len)
{
	struct apic_reply rep = { 0 };
	struct apic *api = NULL;
	int r;

	r = open_api(a, &api, ret_err, err_len);
	if (r == 0)
		r = apic_request(api, method, path, body, timeout_s, &rep, ret_err, err_len);
	if (r < 0) {
		apic_free(api);
		return r;
	}
	if (rep.status != 200) {
		apic_reply_error(&rep, ret_err, err_len);
		if (a->json && rep.obj)
			print_body(stdout, &rep);
		apic_reply_done(&rep);
		apic_free(api);
		return -EPROTO;
	}
	*ret_api = api;
	*ret_rep = rep;
	return 0;
}

static int parse_interval(const char *s, double *ret_v)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < 0.1 || v > 3600)
		return -EINVAL;
	*ret_v = v;
	return 0;
}

struct command {
	const char *name;
	int nargs;        /* positional arguments after the command */
	unsigned allowed; /* OPT_* it takes */
	int (*run)(const struct args *a, char **argv);
};

static const struct command commands[] = {
	{ "status", 0, OPT_JSON | OPT_WATCH | OPT_INTERVAL | OPT_UNTIL | OPT_AGENT, status_main },
	{ "cutover", 1, OPT_JSON | OPT_VERIFY | OPT_TIMEOUT | OPT_ADAPT | OPT_BOOT | OPT_ACCEL,
	  cutover_main },
	{ "pause", 1, OPT_JSON, pause_main },
	{ "resume", 1, OPT_JSON, resume_main },
	{ "disconnect", 1, OPT_JSON, disconnect_main },
	{ "rate", 2, OPT_JSON, rate_main },
	{ "launch", 1, OPT_JSON | OPT_TEST | OPT_PROFILE | OPT_BOOT | OPT_DISCARD | OPT_ACCEL |
			 OPT_TIMEOUT | OPT_ADAPT, launch_main },
};

int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int usage_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("%s; see ternctl --help", msg);
	return EXIT_USAGE;
}

/* Reads the options into a: they may come before or after the command and its arguments.
 * Returns -1 to go on, or the exit code (--help, --version, a usage error). */
static int parse_options(int argc, char **argv, struct args *a)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, 's' },
		{ "api", required_argument, NULL, 'a' },
		{ "token-file", required_argument, NULL, 'k' },
		{ "json", no_argument, NULL, 'j' },
		{ "watch", no_argument, NULL, 'w' },
		{ "interval", required_argument, NULL, 'i' },
		{ "until-synced", no_argument, NULL, 'u' },
		{ "verify", required_argument, NULL, 'v' },
		{ "timeout", required_argument, NULL, 't' },
		{ "agent", required_argument, NULL, 'A' },
		{ "test", no_argument, NULL, 'T' },
		{ "profile", required_argument, NULL, 'P' },
		{ "boot-check", no_argument, NULL, 'B' },
		{ "discard", no_argument, NULL, 'D' },
		{ "accel", required_argument, NULL, 'C' },
		{ "adapt", required_argument, NULL, 'E' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's': a->dir = optarg; break;
		case 'a': a->api = optarg; break;
		case 'k': a->token_file = optarg; break;
		case 'j': a->json = true; a->given |= OPT_JSON; break;
		case 'w': a->watch = true; a->given |= OPT_WATCH; break;
		case 'u': a->until_synced = a->watch = true; a->given |= OPT_UNTIL; break;
		case 'i':
			if (parse_interval(optarg, &a->interval) < 0)
				return usage_error("--interval %s: seconds from 0.1 to 3600", optarg);
			a->given |= OPT_INTERVAL;
			break;
		case 'v':
			if (strcmp(optarg, "tracked") != 0 && strcmp(optarg, "full") != 0)
				return usage_error("--verify %s: tracked or full", optarg);
			a->verify = optarg;
			a->given |= OPT_VERIFY;
			break;
		case 't':
			if (parse_u64(optarg, 1, 86400, &a->timeout) < 0)
				return usage_error("--timeout %s: seconds from 1 to 86400", optarg);
			a->given |= OPT_TIMEOUT;
			break;
		case 'A':
			if (!name_is_valid(optarg, strlen(optarg)))
				return usage_error("--agent %s: not a valid agent name", optarg);
			a->agent = optarg;
			a->given |= OPT_AGENT;
			break;
		case 'T': a->given |= OPT_TEST; break;
		case 'B': a->boot_check = true; a->given |= OPT_BOOT; break;
		case 'D': a->given |= OPT_DISCARD; break;
		case 'P':
			if (strcmp(optarg, "kvm") && strcmp(optarg, "aws") && strcmp(optarg, "azure") &&
			    strcmp(optarg, "gcp"))
				return usage_error("--profile %s: kvm, aws, azure or gcp", optarg);
			a->profile = optarg;
			a->given |= OPT_PROFILE;
			break;
		case 'E':
			if (strcmp(optarg, "kvm") && strcmp(optarg, "aws") && strcmp(optarg, "azure") &&
			    strcmp(optarg, "gcp"))
				return usage_error("--adapt %s: kvm, aws, azure or gcp", optarg);
			a->adapt = optarg;
			a->given |= OPT_ADAPT;
			break;
		case 'C':
			if (strcmp(optarg, "tcg") != 0 && strcmp(optarg, "kvm") != 0)
				return usage_error("--accel %s: tcg or kvm", optarg);
			a->accel = optarg;
			a->given |= OPT_ACCEL;
			break;
		case 'h': usage(stdout); return EXIT_OK;
		case 'V': printf("ternctl %s\n", TERN_VERSION); return EXIT_OK;
		default:
			return usage_error("unknown option or missing value: %s", argv[optind - 1]);
		}
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct args a = { .dir = getenv("TERN_STATE_DIR"), .verify = "tracked", .timeout = 600,
			  .interval = 1.0, .profile = "kvm", .accel = "tcg" };
	const struct command *cmd = NULL;
	int r;

	log_setup("ternctl", LOG_LVL_INFO);
	if (!a.dir || !*a.dir)
		a.dir = "/var/lib/tern";
	a.api = getenv("TERN_API");
	if (a.api && !*a.api)
		a.api = NULL;
	/* Options may come before or after the command and its arguments. */
	r = parse_options(argc, argv, &a);
	if (r >= 0)
		return r;
	if (optind >= argc)
		return usage_error("no command");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
			cmd = &commands[i];
	if (!cmd)
		return usage_error("unknown command %s", argv[optind]);
	if (argc - optind - 1 != cmd->nargs)
		return usage_error("%s takes %d argument%s", cmd->name, cmd->nargs,
				   cmd->nargs == 1 ? "" : "s");
	if (a.given & ~cmd->allowed) {
		static const char *const names[] = { "--json", "--watch", "--interval",
						     "--until-synced", "--verify", "--timeout",
						     "--agent", "--test", "--profile", "--boot-check",
						     "--discard", "--accel", "--adapt" };
		unsigned bad = a.given & ~cmd->allowed;

		return usage_error("%s does not apply to %s", names[__builtin_ctz(bad)], cmd->name);
	}
	if ((a.given & OPT_INTERVAL) && !a.watch)
		return usage_error("--interval needs --watch");
	if ((a.given & OPT_AGENT) && !a.until_synced)
		return usage_error("--agent needs --until-synced");
	if (cmd->nargs > 0 && !name_is_valid(argv[optind + 1], strlen(argv[optind + 1])))
		return usage_error("%s: not a valid agent name", argv[optind + 1]);
	return cmd->run(&a, &argv[optind + 1]);
}

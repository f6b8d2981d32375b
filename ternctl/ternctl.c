// SPDX-License-Identifier: GPL-2.0-only
/* ternctl: the operator's client of a tern receiver's HTTP control API — status (a table,
 * a live view, JSON), cutover, pause, resume, rate. Without a reachable receiver, status
 * falls back to the per-disk records in the state dir. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <json-c/json.h>

#include "config.h"
#include "common/log.h"
#include "common/util.h"
#include "ternctl/apiclient.h"
#include "receiver/record.h"
#include "ternctl/statusview.h"

/* Exit codes: usage errors are told apart from refusals, for scripts. */
enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

/* How long a quick request (status, pause, resume, rate) may take. */
#define QUICK_TIMEOUT_S 10
/* What a cutover request waits beyond its own timeout: the receiver answers after it. */
#define CUTOVER_MARGIN_S 30
/* What an adaptation after the cutover may add: the appliance under TCG, then a boot. */
#define ADAPT_MARGIN_S 3600

enum {
	OPT_JSON = 1 << 0,
	OPT_WATCH = 1 << 1,
	OPT_INTERVAL = 1 << 2,
	OPT_UNTIL = 1 << 3,
	OPT_VERIFY = 1 << 4,
	OPT_TIMEOUT = 1 << 5,
	OPT_AGENT = 1 << 6,
	OPT_TEST = 1 << 7,
	OPT_PROFILE = 1 << 8,
	OPT_BOOT = 1 << 9,
	OPT_DISCARD = 1 << 10,
	OPT_ACCEL = 1 << 11,
	OPT_ADAPT = 1 << 12,
};

struct args {
	const char *dir, *api, *token_file;
	unsigned given; /* OPT_* seen on the command line */
	bool json, watch, until_synced;
	double interval;
	const char *verify;
	uint64_t timeout;
	const char *agent; /* --until-synced waits for this agent's disks only */
	const char *profile, *accel; /* launch --test; cutover --adapt */
	const char *adapt;
	bool boot_check;
};

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

/* One line per record (receiver/record.h reads them), and its last fault. */
static int print_record(void *ctx, const char *id, int r, const struct disk_record *rec)
{
	char name[256], event[REC_EVENT_MAX], hex[2 * FP_LEN + 1];
	unsigned *n = ctx;

	if ((*n)++ == 0)
		printf("%-16s %-16s %8s %-8s %-8s %s\n", "DISK", "AGENT", "EPOCH", "VERIFIED",
		       "CUTOVER", "ROOT");
	if (r < 0) {
		/* A damaged or hostile file name must not reach the terminal as escape
		 * sequences. In place: apic_sanitize writes no more than it reads. */
		snprintf(name, sizeof(name), "%s", id);
		apic_sanitize(name, false, name, sizeof(name));
		printf("%-16s (its record cannot be read: %s)\n", name, strerror(-r));
		return 0;
	}
	/* Names are checked by the record's reader; the event is the receiver's text. */
	printf("%-16s %-16s %8" PRIu64 " %-8s %-8s %s\n", rec->disk, rec->agent, rec->epoch,
	       rec->verified ? "yes" : "no", rec->cut_over ? "yes" : "no",
	       rec->verified ? fp_hex(&rec->root, hex) : "-");
	/* The last fault and how replication recovered from it. */
	if (rec->event[0]) {
		apic_sanitize(rec->event, false, event, sizeof(event));
		printf("  last fault: %s\n", event);
	}
	return 0;
}

/* Status from the records the receiver keeps per disk, for when it does not answer. */
static int print_records(const char *dir)
{
	unsigned n = 0;
	int r;

	r = rec_foreach(dir, print_record, &n);
	if (r < 0) {
		log_errno(r, "cannot read the disk records in %s", dir);
		return EXIT_FAILED;
	}
	if (n == 0)
		printf("no disks yet in %s\n", dir);
	return EXIT_OK;
}

/* Prints a body as received, with the newline a terminal or `jq` line reader expects. */
static void print_body(FILE *f, const struct apic_reply *rep)
{
	fputs(rep->body, f);
	if (rep->body_len == 0 || rep->body[rep->body_len - 1] != '\n')
		fputc('\n', f);
}

static void print_launch(FILE *f, struct json_object *l, bool disks);

static bool want_color(void)
{
	const char *nc = getenv("NO_COLOR");

	return isatty(STDOUT_FILENO) && (!nc || !*nc);
}

/* GET /v1/status, checked. Returns 0, or -errno with the reason in err (an HTTP refusal:
 * -EACCES for 401/403, -EPROTO otherwise). */
static int fetch_status(struct apic *api, struct apic_reply *ret_rep, struct sv_status **ret_st,
			char *err, size_t err_len)
{
	struct apic_reply rep = { 0 };
	char why[400]; /* the receiver's one-line reason, within err */
	int r;

	r = apic_request(api, "GET", "/v1/status", NULL, QUICK_TIMEOUT_S, &rep, err, err_len);
	if (r < 0)
		return r;
	if (rep.status != 200) {
		apic_reply_error(&rep, why, sizeof(why));
		snprintf(err, err_len, "the receiver refused the status request: %s", why);
		r = rep.status == 401 || rep.status == 403 ? -EACCES : -EPROTO;
		goto cleanup;
	}
	r = sv_parse(rep.obj, ret_st, err, err_len);
	if (r < 0)
		goto cleanup;
	*ret_rep = rep;
	return 0;
cleanup:
	apic_reply_done(&rep);
	return r;
}

/* Opens the API; -ENOENT (no api.addr) and the other "nothing there" errors are for the
 * caller to treat as an unreachable receiver. */
static int open_api(const struct args *a, struct apic **ret_api, char *err, size_t err_len)
{
	return apic_new(a->dir, a->api, a->token_file, ret_api, err, err_len);
}

static int status_once(const struct args *a)
{
	struct apic_reply rep = { 0 };
	struct sv_status *st = NULL;
	struct apic *api = NULL;
	char err[512];
	int r, rc = EXIT_FAILED;

	r = open_api(a, &api, err, sizeof(err));
	if (r == 0)
		r = fetch_status(api, &rep, &st, err, sizeof(err));
	if (r < 0 && apic_unreachable(r) && !a->json) {
		log_warn("%s; showing the receiver's records in %s/disks instead", err, a->dir);
		rc = print_records(a->dir);
		goto cleanup;
	}
	if (r < 0) {
		log_error("%s", err);
		goto cleanup;
	}
	/* Checked above, printed as received: the JSON is the API's by construction. */
	if (a->json) {
		print_body(stdout, &rep);
	} else {
		struct json_object *ls;

		sv_print_table(stdout, st, apic_url(api), want_color());
		if (apic_member(rep.obj, "launches", json_type_array, &ls) == 0)
			for (size_t i = 0; i < json_object_array_length(ls); i++)
				if (json_object_array_get_idx(ls, i))
					print_launch(stdout, json_object_array_get_idx(ls, i), true);
	}
	rc = EXIT_OK;
cleanup:
	sv_free(st);
	apic_reply_done(&rep);
	apic_free(api);
	return rc;
}

/* The live view's frame on a terminal: lines cut to the width (a wrapped line would throw
 * the cursor-up count off), at most the height. */
struct frame {
	char *buf;
	size_t len, cap;
	unsigned lines, width, max_lines;
	bool color;
};

static void frame_add(struct frame *fr, const char *s, size_t n)
{
	if (fr->len + n + 1 > fr->cap) {
		size_t cap = MAX(fr->cap * 2, fr->len + n + 1024);
		char *b = realloc(fr->buf, cap);

		if (!b)
			return; /* a line lost to memory pressure; the next frame redraws */
		fr->buf = b;
		fr->cap = cap;
	}
	memcpy(fr->buf + fr->len, s, n);
	fr->len += n;
	fr->buf[fr->len] = '\0';
}

static void frame_emit(void *ctx, const char *text, bool warning)
{
	struct frame *fr = ctx;
	size_t n = strlen(text);

	if (fr->lines >= fr->max_lines)
		return;
	if (n > fr->width - 1)
		n = fr->width - 1;
	/* Clear the line being overwritten: the old one may have been longer. */
	frame_add(fr, "\033[2K", 4);
	if (warning && fr->color)
		frame_add(fr, "\033[1;31m", 7);
	frame_add(fr, text, n);
	if (warning && fr->color)
		frame_add(fr, "\033[0m", 4);
	frame_add(fr, "\n", 1);
	fr->lines++;
}

static void plain_emit(void *ctx, const char *text, bool warning)
{
	(void)ctx;
	(void)warning;
	printf("%s\n", text);
}

/* Draws a frame over the previous one: cursor up over its lines, then the new lines,
 * then clear what is left of a longer previous frame. */
static void redraw(struct frame *fr, unsigned *prev_lines)
{
	char up[32];

	if (*prev_lines)
		snprintf(up, sizeof(up), "\r\033[%uA", *prev_lines);
	else
		snprintf(up, sizeof(up), "\r");
	fputs(up, stdout);
	if (fr->buf)
		fputs(fr->buf, stdout);
	fputs("\033[J", stdout);
	fflush(stdout);
	*prev_lines = fr->lines;
}

static void term_size(unsigned *ret_cols, unsigned *ret_rows)
{
	struct winsize ws = { 0 };

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0 || ws.ws_col < 20 || ws.ws_row < 3) {
		ws.ws_col = 80;
		ws.ws_row = 24;
	}
	*ret_cols = ws.ws_col;
	*ret_rows = ws.ws_row;
}

/* One error line in the live view: in place on a terminal, on stderr otherwise. */
static void watch_error(bool tty, const char *err, unsigned *prev_lines, unsigned cols)
{
	struct frame fr = { .width = cols, .max_lines = 1, .color = want_color() };

	if (!tty) {
		log_warn("%s", err);
		return;
	}
	frame_emit(&fr, err, true);
	redraw(&fr, prev_lines);
	free(fr.buf);
}

static int status_watch(const struct args *a)
{
	bool tty = isatty(STDOUT_FILENO) && !a->json;
	struct apic *api = NULL;
	unsigned prev_lines = 0;
	sigset_t mask;
	char err[512];
	int sfd = -1, r, rc = EXIT_FAILED;

	/* SIGINT and SIGTERM end the loop through a signalfd, so the cursor is restored and a
	 * request in flight is abandoned rather than waited for. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ||
	    (sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		log_errno(-errno, "cannot set up signal handling");
		goto cleanup;
	}
	if (tty)
		fputs("\033[?25l", stdout); /* hide the cursor while redrawing */
	for (;;) {
		struct apic_reply rep = { 0 };
		struct sv_status *st = NULL;
		struct pollfd p = { .fd = sfd, .events = POLLIN };
		unsigned cols, rows;
		bool synced = false;

		term_size(&cols, &rows);
		/* A receiver not serving yet (no api.addr) is waited for like a restarting one:
		 * the API is opened once it is there. */
		r = api ? 0 : open_api(a, &api, err, sizeof(err));
		if (r == 0) {
			apic_set_abort_fd(api, sfd);
			r = fetch_status(api, &rep, &st, err, sizeof(err));
		} else if (!apic_unreachable(r)) {
			log_error("%s", err);
			goto cleanup;
		}
		if (r == -EINTR)
			break;
		if (r == -EACCES || r == -EPROTO || r == -EBADMSG) {
			/* A refused token or a foreign answer will not mend by waiting. */
			if (tty)
				redraw(&(struct frame){ 0 }, &prev_lines);
			log_error("%s", err);
			goto cleanup;
		}
		if (r < 0) {
			/* A receiver restarting is worth waiting for. */
			watch_error(tty, err, &prev_lines, cols);
		} else if (a->json) {
			/* JSON lines: one compact status per interval. */
			printf("%s\n", json_object_to_json_string_ext(rep.obj, JSON_C_TO_STRING_PLAIN));
			fflush(stdout);
		} else if (tty) {
			struct frame fr = { .width = cols, .max_lines = rows - 1, .color = want_color() };

			/* The bar takes what the figures leave of the width. */
			sv_watch_lines(st, apic_url(api), (unsigned)MAX(10, MIN(40, (int)cols - 90)),
				       frame_emit, &fr);
			redraw(&fr, &prev_lines);
			free(fr.buf);
		} else {
			sv_watch_lines(st, apic_url(api), 0, plain_emit, NULL);
			fflush(stdout);
		}
		synced = st && sv_all_synced(st, a->agent);
		sv_free(st);
		apic_reply_done(&rep);
		if (a->until_synced && synced)
			break;
		r = poll(&p, 1, (int)(a->interval * 1000));
		if (r > 0)
			break;
		if (r < 0 && errno != EINTR) {
			log_errno(-errno, "poll");
			goto cleanup;
		}
	}
	rc = EXIT_OK;
cleanup:
	if (tty) {
		fputs("\033[?25h", stdout);
		fflush(stdout);
	}
	if (sfd >= 0)
		close(sfd);
	apic_free(api);
	return rc;
}

/* Sends one agent request. Returns 0 with the 200 reply, -EPROTO for a refusal (its
 * reason in ret_err; with --json its body is printed), or apic's -errno. */
static int agent_request(const struct args *a, const char *method, const char *path,
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

/* The common answer of pause, resume and rate: result "ok" for the agent asked about. */
static int check_agent_reply(const struct apic_reply *rep, const char *name, bool *ret_connected)
{
	struct json_object *v;

	if (apic_member(rep->obj, "result", json_type_string, &v) < 0 ||
	    strcmp(json_object_get_string(v), "ok") != 0 ||
	    apic_member(rep->obj, "agent", json_type_string, &v) < 0 ||
	    strcmp(json_object_get_string(v), name) != 0 ||
	    apic_member(rep->obj, "connected", json_type_boolean, &v) < 0)
		return -EBADMSG;
	*ret_connected = json_object_get_boolean(v);
	return 0;
}

static int cmd_pause(const struct args *a, const char *name, bool pause)
{
	const char *verb = pause ? "pause" : "resume";
	struct apic_reply rep = { 0 };
	struct json_object *v;
	struct apic *api = NULL;
	char path[128], what[128], err[700];
	bool connected;
	int r;

	snprintf(path, sizeof(path), "/v1/agents/%s/%s", name, verb);
	snprintf(what, sizeof(what), "%s %s", verb, name);
	r = agent_request(a, "POST", path, NULL, QUICK_TIMEOUT_S, &api, &rep, err, sizeof(err));
	if (r < 0) {
		log_error("%s: %s", what, err);
		return EXIT_FAILED;
	}
	r = check_agent_reply(&rep, name, &connected);
	if (r == 0)
		r = apic_member(rep.obj, "paused", json_type_boolean, &v);
	if (r == 0 && json_object_get_boolean(v) != pause)
		r = -EBADMSG;
	if (r < 0)
		log_error("%s: the receiver's answer is malformed", what);
	else if (a->json)
		print_body(stdout, &rep);
	else
		printf("agent %s: %s%s\n", name, pause ? "paused" : "resumed",
		       connected ? "" : " (not connected now)");
	apic_reply_done(&rep);
	apic_free(api);
	return r < 0 ? EXIT_FAILED : EXIT_OK;
}

static int cmd_disconnect(const struct args *a, const char *name)
{
	struct apic_reply rep = { 0 };
	struct json_object *v = NULL;
	struct apic *api = NULL;
	char path[128], err[700];
	int64_t n = 0;
	int r;

	snprintf(path, sizeof(path), "/v1/agents/%s/disconnect", name);
	r = agent_request(a, "POST", path, NULL, QUICK_TIMEOUT_S, &api, &rep, err, sizeof(err));
	if (r < 0) {
		log_error("disconnect %s: %s", name, err);
		return EXIT_FAILED;
	}
	if (apic_member(rep.obj, "result", json_type_string, &v) < 0 ||
	    strcmp(json_object_get_string(v), "ok") != 0 ||
	    apic_member(rep.obj, "agent", json_type_string, &v) < 0 ||
	    strcmp(json_object_get_string(v), name) != 0 ||
	    apic_member(rep.obj, "sessions", json_type_int, &v) < 0 ||
	    (n = json_object_get_int64(v)) < 1 || n > 1000000)
		r = -EBADMSG;
	if (r < 0)
		log_error("disconnect %s: the receiver's answer is malformed", name);
	else if (a->json)
		print_body(stdout, &rep);
	else
		printf("agent %s: disconnected (%" PRId64 " session%s); it will reconnect unless it is "
		       "revoked (tern-receiver agent revoke %s)\n", name, n, n == 1 ? "" : "s", name);
	apic_reply_done(&rep);
	apic_free(api);
	return r < 0 ? EXIT_FAILED : EXIT_OK;
}

static int cmd_rate(const struct args *a, const char *name, uint64_t bps)
{
	struct apic_reply rep = { 0 };
	struct json_object *v;
	struct apic *api = NULL;
	char path[128], what[128], body[64], err[700], rate[32];
	bool connected;
	int r;

	snprintf(path, sizeof(path), "/v1/agents/%s/rate", name);
	snprintf(what, sizeof(what), "rate %s", name);
	snprintf(body, sizeof(body), "{\"bytes_per_second\":%" PRIu64 "}", bps);
	r = agent_request(a, "PUT", path, body, QUICK_TIMEOUT_S, &api, &rep, err, sizeof(err));
	if (r < 0) {
		log_error("%s: %s", what, err);
		return EXIT_FAILED;
	}
	r = check_agent_reply(&rep, name, &connected);
	if (r == 0)
		r = apic_member(rep.obj, "rate_limit_bps", json_type_int, &v);
	if (r == 0 && (uint64_t)json_object_get_int64(v) != bps)
		r = -EBADMSG;
	if (r < 0)
		log_error("%s: the receiver's answer is malformed", what);
	else if (a->json)
		print_body(stdout, &rep);
	else if (bps)
		printf("agent %s: rate limit %s%s\n", name, sv_fmt_rate((double)bps, rate, sizeof(rate)),
		       connected ? "" : " (not connected now)");
	else
		printf("agent %s: no rate limit%s\n", name, connected ? "" : " (not connected now)");
	apic_reply_done(&rep);
	apic_free(api);
	return r < 0 ? EXIT_FAILED : EXIT_OK;
}

/* Whether the receiver knows agent name, it has no session now and something is left to
 * cut over (the receiver waits for such an agent). False when that cannot be told (the
 * request itself then reports what is wrong). */
static bool agent_away(const struct args *a, const char *name)
{
	struct apic_reply rep = { 0 };
	struct sv_status *st = NULL;
	struct apic *api = NULL;
	char err[512];
	bool away = false;

	if (open_api(a, &api, err, sizeof(err)) == 0 &&
	    fetch_status(api, &rep, &st, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < st->nagents; i++)
			if (strcmp(st->agents[i].name, name) == 0)
				away = !st->agents[i].connected &&
				       strcmp(st->agents[i].state, "cut-over") != 0;
	}
	sv_free(st);
	apic_reply_done(&rep);
	apic_free(api);
	return away;
}

static int cmd_cutover(const struct args *a, const char *name)
{
	struct apic_reply rep = { 0 };
	struct json_object *v, *req = NULL;
	struct apic *api = NULL;
	char path[128], err[700], *proof = NULL;
	const char *body;
	size_t n;
	int r, rc = EXIT_FAILED;

	snprintf(path, sizeof(path), "/v1/agents/%s/cutover", name);
	/* The receiver waits within the timeout for an agent that is away (a link flap, a
	 * restart): say so, or the operator sees nothing for up to --timeout seconds. */
	if (agent_away(a, name))
		fprintf(a->json ? stderr : stdout, "agent %s is not connected; waiting up to %" PRIu64
			" s for it to come back\n", name, a->timeout);
	fflush(stdout);
	req = json_object_new_object();
	if (!req || json_object_object_add(req, "verify", json_object_new_string(a->verify)) < 0 ||
	    json_object_object_add(req, "timeout_seconds", json_object_new_int64((int64_t)a->timeout)) < 0 ||
	    (a->adapt && (json_object_object_add(req, "adapt", json_object_new_string(a->adapt)) < 0 ||
			  json_object_object_add(req, "boot_check", json_object_new_boolean(a->boot_check)) < 0 ||
			  json_object_object_add(req, "accel", json_object_new_string(a->accel)) < 0)) ||
	    !(body = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN))) {
		log_error("out of memory");
		goto cleanup;
	}
	r = agent_request(a, "POST", path, body, (long)a->timeout + CUTOVER_MARGIN_S +
			  (a->adapt ? ADAPT_MARGIN_S : 0), &api, &rep, err, sizeof(err));
	if (r == -EPROTO) {
		/* The receiver's reason; with --json its answer went to stdout. */
		fprintf(a->json ? stderr : stdout, "FAILED: %s\n", err);
		goto cleanup;
	}
	if (r < 0) {
		/* Once the request is sent, only the receiver knows how it ended. */
		if (apic_unreachable(r))
			printf("FAILED: %s\n", err);
		else
			printf("FAILED: %s; the cutover's outcome is unknown: see ternctl status\n", err);
		goto cleanup;
	}
	if (apic_member(rep.obj, "result", json_type_string, &v) < 0 ||
	    strcmp(json_object_get_string(v), "ok") != 0 ||
	    apic_member(rep.obj, "proof", json_type_string, &v) < 0) {
		printf("FAILED: the receiver's answer is malformed; see ternctl status\n");
		goto cleanup;
	}
	if (a->json) {
		print_body(stdout, &rep);
	} else {
		n = (size_t)json_object_get_string_len(v);
		proof = malloc(n + 1);
		if (!proof) {
			log_error("out of memory");
			goto cleanup;
		}
		apic_sanitize(json_object_get_string(v), true, proof, n + 1);
		fputs(proof, stdout);
		if (n && proof[n - 1] != '\n')
			fputc('\n', stdout);
	}
	rc = EXIT_OK;
	if (a->adapt) {
		struct json_object *ad, *t, *res;

		if (apic_member(rep.obj, "adaptation", json_type_object, &ad) < 0 ||
		    apic_member(ad, "text", json_type_string, &t) < 0 ||
		    apic_member(ad, "result", json_type_string, &res) < 0) {
			printf("CUTOVER DONE; the adaptation's outcome is missing from the answer\n");
			rc = EXIT_FAILED;
			goto cleanup;
		}
		if (strcmp(json_object_get_string(res), "ok") != 0)
			rc = EXIT_FAILED;
		if (!a->json) {
			char *text;

			n = (size_t)json_object_get_string_len(t);
			text = malloc(n + 1);
			if (text) {
				apic_sanitize(json_object_get_string(t), true, text, n + 1);
				fputs(text, stdout);
				free(text);
			}
		}
	}
	if (!a->json)
		printf("%s\n", rc == EXIT_OK ? "OK" : "CUTOVER DONE, ADAPTATION FAILED");
cleanup:
	free(proof);
	json_object_put(req);
	apic_reply_done(&rep);
	apic_free(api);
	return rc;
}

/* A launch's description from a status or launch answer: strings sanitised. */
static const char *jstr(struct json_object *o, const char *key, char *buf, size_t len)
{
	struct json_object *v;

	if (apic_member(o, key, json_type_string, &v) < 0)
		return "-";
	return apic_sanitize(json_object_get_string(v), false, buf, len);
}

static void print_launch(FILE *f, struct json_object *l, bool disks)
{
	char a[80], id[48], prof[16], st[16], res[1100], path[1100];
	struct json_object *v, *d;

	fprintf(f, "test launch %s/%s (%s%s): %s: %s\n", jstr(l, "agent", a, sizeof(a)),
		jstr(l, "id", id, sizeof(id)), jstr(l, "profile", prof, sizeof(prof)),
		apic_member(l, "boot_check", json_type_boolean, &v) == 0 &&
			json_object_get_boolean(v) ? ", boot check" : "",
		jstr(l, "state", st, sizeof(st)), jstr(l, "result", res, sizeof(res)));
	if (disks && apic_member(l, "disks", json_type_array, &d) == 0) {
		for (size_t i = 0; i < json_object_array_length(d); i++) {
			struct json_object *k = json_object_array_get_idx(d, i), *e, *t;
			char did[80], root[40], how[16], warn[300];

			if (!k || apic_member(k, "epoch", json_type_int, &e) < 0 ||
			    apic_member(k, "clone_seconds", json_type_double, &t) < 0)
				continue;
			fprintf(f, "  disk %s: epoch %" PRId64 ", root %s, %s in %.3f s: %s\n",
				jstr(k, "id", did, sizeof(did)), json_object_get_int64(e),
				jstr(k, "root", root, sizeof(root)), jstr(k, "how", how, sizeof(how)),
				json_object_get_double(t), jstr(k, "clone", path, sizeof(path)));
			jstr(k, "warning", warn, sizeof(warn));
			if (warn[0] && strcmp(warn, "-") != 0)
				fprintf(f, "  WARNING: %s\n", warn);
		}
	}
	if (apic_member(l, "report", json_type_string, &v) == 0)
		fprintf(f, "  adaptation report: %s\n", jstr(l, "report", path, sizeof(path)));
	if (apic_member(l, "console", json_type_string, &v) == 0)
		fprintf(f, "  console log: %s\n", jstr(l, "console", path, sizeof(path)));
}

/* The launch id of agent name in a status answer, or NULL. */
static struct json_object *find_launch(struct json_object *status, const char *name,
				       const char *id)
{
	struct json_object *arr, *v;

	if (apic_member(status, "launches", json_type_array, &arr) < 0)
		return NULL;
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *l = json_object_array_get_idx(arr, i);

		if (l && apic_member(l, "agent", json_type_string, &v) == 0 &&
		    strcmp(json_object_get_string(v), name) == 0 &&
		    apic_member(l, "id", json_type_string, &v) == 0 &&
		    strcmp(json_object_get_string(v), id) == 0)
			return l;
	}
	return NULL;
}

static int cmd_launch_discard(const struct args *a, const char *name)
{
	struct apic_reply rep = { 0 };
	struct apic *api = NULL;
	struct json_object *v;
	char path[128], err[1200];
	int r;

	snprintf(path, sizeof(path), "/v1/agents/%s/launch/discard", name);
	r = agent_request(a, "POST", path, NULL, QUICK_TIMEOUT_S + 60, &api, &rep, err, sizeof(err));
	if (r < 0) {
		printf("FAILED: %s\n", err);
		return EXIT_FAILED;
	}
	r = apic_member(rep.obj, "discarded", json_type_int, &v);
	if (r < 0)
		printf("FAILED: the receiver's answer is malformed\n");
	else if (a->json)
		print_body(stdout, &rep);
	else
		printf("agent %s: %d test launch%s discarded\n", name, json_object_get_int(v),
		       json_object_get_int(v) == 1 ? "" : "es");
	apic_reply_done(&rep);
	apic_free(api);
	return r < 0 ? EXIT_FAILED : EXIT_OK;
}

/* Asks for a test launch, then follows it in the status until it passed or failed. */
static int cmd_launch_test(const struct args *a, const char *name)
{
	struct apic_reply rep = { 0 }, srep = { 0 };
	struct json_object *req = NULL, *l, *v;
	struct apic *api = NULL;
	char path[128], err[1200], id[48], state[16] = "", st[16], res[1100];
	const char *body;
	int r, rc = EXIT_FAILED;

	snprintf(path, sizeof(path), "/v1/agents/%s/launch", name);
	req = json_object_new_object();
	if (!req || json_object_object_add(req, "test", json_object_new_boolean(true)) < 0 ||
	    json_object_object_add(req, "profile", json_object_new_string(a->profile)) < 0 ||
	    json_object_object_add(req, "boot_check", json_object_new_boolean(a->boot_check)) < 0 ||
	    json_object_object_add(req, "accel", json_object_new_string(a->accel)) < 0 ||
	    json_object_object_add(req, "timeout_seconds", json_object_new_int64((int64_t)a->timeout)) < 0 ||
	    !(body = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN))) {
		log_error("out of memory");
		goto cleanup;
	}
	if (!a->json)
		printf("test launch of agent %s (%s%s): waiting for an epoch boundary\n", name,
		       a->profile, a->boot_check ? ", boot check" : "");
	fflush(stdout);
	r = agent_request(a, "POST", path, body, (long)a->timeout + CUTOVER_MARGIN_S, &api, &rep,
			  err, sizeof(err));
	if (r < 0) {
		printf("FAILED: %s\n", err);
		goto cleanup;
	}
	if (apic_member(rep.obj, "launch", json_type_object, &l) < 0 ||
	    apic_member(l, "id", json_type_string, &v) < 0) {
		printf("FAILED: the receiver's answer is malformed; see ternctl status\n");
		goto cleanup;
	}
	apic_sanitize(json_object_get_string(v), false, id, sizeof(id));
	jstr(l, "state", state, sizeof(state));
	if (!a->json)
		print_launch(stdout, l, true);
	/* The adaptation and the boot run on the receiver: follow them in the status. */
	for (;;) {
		apic_reply_done(&srep);
		r = apic_request(api, "GET", "/v1/status", NULL, QUICK_TIMEOUT_S, &srep, err, sizeof(err));
		if (r < 0 || srep.status != 200 || !srep.obj) {
			if (r == 0)
				apic_reply_error(&srep, err, sizeof(err));
			printf("FAILED: cannot follow test launch %s: %s\n", id, err);
			goto cleanup;
		}
		l = find_launch(srep.obj, name, id);
		if (!l) {
			printf("FAILED: test launch %s is gone from the receiver's status\n", id);
			goto cleanup;
		}
		jstr(l, "state", st, sizeof(st));
		if (strcmp(st, state) != 0 && !a->json)
			printf("%s: %s\n", st, jstr(l, "result", res, sizeof(res)));
		fflush(stdout);
		snprintf(state, sizeof(state), "%s", st);
		if (strcmp(st, "passed") == 0 || strcmp(st, "failed") == 0)
			break;
		sleep(2);
	}
	if (a->json) {
		fputs(json_object_to_json_string_ext(l, JSON_C_TO_STRING_PLAIN), stdout);
		fputc('\n', stdout);
	} else {
		print_launch(stdout, l, false);
		printf("%s\n", strcmp(st, "passed") == 0 ? "PASSED" : "FAILED");
	}
	rc = strcmp(st, "passed") == 0 ? EXIT_OK : EXIT_FAILED;
cleanup:
	json_object_put(req);
	apic_reply_done(&rep);
	apic_reply_done(&srep);
	apic_free(api);
	return rc;
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

/* BYTES per second with an optional K/M/G/T suffix, or "unlimited" (also 0). */
static int parse_rate(const char *s, uint64_t *ret_v)
{
	uint64_t v;
	int r;

	if (strcmp(s, "unlimited") == 0) {
		*ret_v = 0;
		return 0;
	}
	r = parse_size(s, &v);
	if (r < 0)
		return r;
	/* JSON integers beyond 2^53 lose precision in many readers of the API. */
	if (v > (UINT64_C(1) << 53))
		return -ERANGE;
	*ret_v = v;
	return 0;
}

struct command {
	const char *name;
	int nargs;        /* positional arguments after the command */
	unsigned allowed; /* OPT_* it takes */
};

static const struct command commands[] = {
	{ "status", 0, OPT_JSON | OPT_WATCH | OPT_INTERVAL | OPT_UNTIL | OPT_AGENT },
	{ "cutover", 1, OPT_JSON | OPT_VERIFY | OPT_TIMEOUT | OPT_ADAPT | OPT_BOOT | OPT_ACCEL },
	{ "pause", 1, OPT_JSON },
	{ "resume", 1, OPT_JSON },
	{ "disconnect", 1, OPT_JSON },
	{ "rate", 2, OPT_JSON },
	{ "launch", 1, OPT_JSON | OPT_TEST | OPT_PROFILE | OPT_BOOT | OPT_DISCARD | OPT_ACCEL |
			 OPT_TIMEOUT | OPT_ADAPT },
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("%s; see ternctl --help", msg);
	return EXIT_USAGE;
}

int main(int argc, char **argv)
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
	struct args a = { .dir = getenv("TERN_STATE_DIR"), .verify = "tracked", .timeout = 600,
			  .interval = 1.0, .profile = "kvm", .accel = "tcg" };
	const struct command *cmd = NULL;
	const char *name;
	uint64_t bps = 0;
	int c;

	log_setup("ternctl", LOG_LVL_INFO);
	if (!a.dir || !*a.dir)
		a.dir = "/var/lib/tern";
	a.api = getenv("TERN_API");
	if (a.api && !*a.api)
		a.api = NULL;
	/* Options may come before or after the command and its arguments. */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's': a.dir = optarg; break;
		case 'a': a.api = optarg; break;
		case 'k': a.token_file = optarg; break;
		case 'j': a.json = true; a.given |= OPT_JSON; break;
		case 'w': a.watch = true; a.given |= OPT_WATCH; break;
		case 'u': a.until_synced = a.watch = true; a.given |= OPT_UNTIL; break;
		case 'i':
			if (parse_interval(optarg, &a.interval) < 0)
				return usage_error("--interval %s: seconds from 0.1 to 3600", optarg);
			a.given |= OPT_INTERVAL;
			break;
		case 'v':
			if (strcmp(optarg, "tracked") != 0 && strcmp(optarg, "full") != 0)
				return usage_error("--verify %s: tracked or full", optarg);
			a.verify = optarg;
			a.given |= OPT_VERIFY;
			break;
		case 't':
			if (parse_u64(optarg, 1, 86400, &a.timeout) < 0)
				return usage_error("--timeout %s: seconds from 1 to 86400", optarg);
			a.given |= OPT_TIMEOUT;
			break;
		case 'A':
			if (!name_is_valid(optarg, strlen(optarg)))
				return usage_error("--agent %s: not a valid agent name", optarg);
			a.agent = optarg;
			a.given |= OPT_AGENT;
			break;
		case 'T': a.given |= OPT_TEST; break;
		case 'B': a.boot_check = true; a.given |= OPT_BOOT; break;
		case 'D': a.given |= OPT_DISCARD; break;
		case 'P':
			if (strcmp(optarg, "kvm") && strcmp(optarg, "aws") && strcmp(optarg, "azure") &&
			    strcmp(optarg, "gcp"))
				return usage_error("--profile %s: kvm, aws, azure or gcp", optarg);
			a.profile = optarg;
			a.given |= OPT_PROFILE;
			break;
		case 'E':
			if (strcmp(optarg, "kvm") && strcmp(optarg, "aws") && strcmp(optarg, "azure") &&
			    strcmp(optarg, "gcp"))
				return usage_error("--adapt %s: kvm, aws, azure or gcp", optarg);
			a.adapt = optarg;
			a.given |= OPT_ADAPT;
			break;
		case 'C':
			if (strcmp(optarg, "tcg") != 0 && strcmp(optarg, "kvm") != 0)
				return usage_error("--accel %s: tcg or kvm", optarg);
			a.accel = optarg;
			a.given |= OPT_ACCEL;
			break;
		case 'h': usage(stdout); return EXIT_OK;
		case 'V': printf("ternctl %s\n", TERN_VERSION); return EXIT_OK;
		default:
			return usage_error("unknown option or missing value: %s", argv[optind - 1]);
		}
	}
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
	if (cmd->nargs == 0)
		return a.watch ? status_watch(&a) : status_once(&a);
	name = argv[optind + 1];
	if (!name_is_valid(name, strlen(name)))
		return usage_error("%s: not a valid agent name", name);
	if (strcmp(cmd->name, "cutover") == 0) {
		if ((a.given & (OPT_BOOT | OPT_ACCEL)) && !a.adapt)
			return usage_error("--boot-check and --accel go with --adapt");
		return cmd_cutover(&a, name);
	}
	if (strcmp(cmd->name, "launch") == 0) {
		bool test = a.given & OPT_TEST, discard = a.given & OPT_DISCARD;

		if (test == discard)
			return usage_error("launch takes --test or --discard");
		if (a.given & OPT_ADAPT)
			return usage_error("--adapt goes with cutover; launch takes --profile");
		if (discard && (a.given & (OPT_PROFILE | OPT_BOOT | OPT_ACCEL | OPT_TIMEOUT)))
			return usage_error("launch --discard takes no other option but --json");
		return discard ? cmd_launch_discard(&a, name) : cmd_launch_test(&a, name);
	}
	if (strcmp(cmd->name, "rate") == 0) {
		if (parse_rate(argv[optind + 2], &bps) < 0)
			return usage_error("rate %s: bytes per second (K, M, G suffixes) or unlimited",
					   argv[optind + 2]);
		return cmd_rate(&a, name, bps);
	}
	if (strcmp(cmd->name, "disconnect") == 0)
		return cmd_disconnect(&a, name);
	return cmd_pause(&a, name, strcmp(cmd->name, "pause") == 0);
}

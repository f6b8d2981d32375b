// SPDX-License-Identifier: GPL-2.0-only
/* ternctl status: the receiver's status as a table, a live view or JSON, and the disks'
 * records in the state dir when no receiver answers. */
#include <errno.h>
#include <inttypes.h>
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

#include "common/log.h"
#include "common/util.h"
#include "receiver/record.h"
#include "ternctl/apiclient.h"
#include "ternctl/statusview.h"
#include "ternctl/ternctl-impl.h"

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

static bool want_color(void)
{
	const char *nc = getenv("NO_COLOR");

	return isatty(STDOUT_FILENO) && (!nc || !*nc);
}

/* GET /v1/status, checked. Returns 0, or -errno with the reason in err (an HTTP refusal:
 * -EACCES for 401/403, -EPROTO otherwise). */
int fetch_status(struct apic *api, struct apic_reply *ret_rep, struct sv_status **ret_st,
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

int status_main(const struct args *a, char **argv)
{
	return a->watch ? status_watch(a) : status_once(a);
}

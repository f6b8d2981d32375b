/* SPDX-License-Identifier: GPL-2.0-only */
/* What ternctl's subcommand files share (ternctl.c: options, the subcommand table and the
 * requests' helpers; status.c; control.c: pause, resume, rate, disconnect; cutover.c;
 * launch.c): the parsed options, the exit codes and each subcommand's entry. Included only
 * by the .c files of ternctl/. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct apic;
struct apic_reply;
struct json_object;
struct sv_status;

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

/* A subcommand: the options and its positional arguments (argv[0] the agent's name, checked
 * already; NULL-terminated). Returns the exit code. */
int status_main(const struct args *a, char **argv);
int cutover_main(const struct args *a, char **argv);
int pause_main(const struct args *a, char **argv);
int resume_main(const struct args *a, char **argv);
int disconnect_main(const struct args *a, char **argv);
int rate_main(const struct args *a, char **argv);
int launch_main(const struct args *a, char **argv);

/* ---- ternctl.c ---- */

/* Logs "MSG; see ternctl --help" and returns EXIT_USAGE. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints a body as received, with the newline a terminal or `jq` line reader expects. */
void print_body(FILE *f, const struct apic_reply *rep);
/* Opens the API (apic_new with the options); -errno with the reason in err. */
int open_api(const struct args *a, struct apic **ret_api, char *err, size_t err_len);
/* Sends one agent request. Returns 0 with the 200 reply, -EPROTO for a refusal (its
 * reason in ret_err; with --json its body is printed), or apic's -errno. */
int agent_request(const struct args *a, const char *method, const char *path,
		  const char *body, long timeout_s, struct apic **ret_api,
		  struct apic_reply *ret_rep, char *ret_err, size_t err_len);

/* ---- status.c ---- */

/* GET /v1/status, checked. Returns 0, or -errno with the reason in err (an HTTP refusal:
 * -EACCES for 401/403, -EPROTO otherwise). */
int fetch_status(struct apic *api, struct apic_reply *ret_rep, struct sv_status **ret_st,
		 char *err, size_t err_len);

/* ---- launch.c ---- */

/* Prints a launch from a status or launch answer (its disks too when disks). */
void print_launch(FILE *f, struct json_object *l, bool disks);

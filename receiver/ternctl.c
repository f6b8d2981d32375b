// SPDX-License-Identifier: GPL-2.0-only
/* ternctl: the operator's client for a local tern receiver. A first, minimal version:
 * status from the receiver's per-disk records, cutover through its control socket. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "common/log.h"
#include "common/util.h"
#include "receiver/control.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: ternctl [--state-dir DIR] status\n"
		"       ternctl [--state-dir DIR] cutover NAME [--verify tracked|full] [--timeout SECONDS]\n"
		"       ternctl --help | --version\n"
		"\n"
		"status lists every disk the receiver holds: agent, epoch, root, verified, cut over.\n"
		"cutover asks agent NAME, through the receiver, to quiesce its source (pre-cutover\n"
		"hook, FIFREEZE), send a final epoch of every disk and thaw; it prints the proof and\n"
		"exits 0 only when every disk's Merkle root matches (--verify full: the receiver\n"
		"also re-reads its targets). The state dir defaults to $TERN_STATE_DIR or\n"
		"/var/lib/tern.\n");
}

static int cmd_status(const char *dir)
{
	char path[4096];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/disks", dir);
	d = opendir(path);
	if (!d) {
		if (errno == ENOENT) {
			printf("no disks yet in %s\n", dir);
			return 0;
		}
		log_errno(-errno, "cannot read %s", path);
		return 1;
	}
	printf("%-16s %-16s %8s %-8s %-8s %s\n", "DISK", "AGENT", "EPOCH", "VERIFIED", "CUTOVER",
	       "ROOT");
	while ((de = readdir(d))) {
		char file[4400], *text = NULL, disk[80] = "?", agent[80] = "?", epoch[32] = "?",
		     root[40] = "?", verified[8] = "0", cut[8] = "0", event[400] = "";
		size_t len = strlen(de->d_name);

		if (len < 7 || strcmp(de->d_name + len - 6, ".state") != 0)
			continue;
		snprintf(file, sizeof(file), "%s/%s", path, de->d_name);
		if (read_file_all(file, 64 * 1024, &text, NULL) < 0)
			continue;
		for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
			sscanf(l, "disk=%79s", disk);
			sscanf(l, "agent=%79s", agent);
			sscanf(l, "epoch=%31s", epoch);
			sscanf(l, "root=%39s", root);
			sscanf(l, "verified=%7s", verified);
			sscanf(l, "cutover=%7s", cut);
			if (strncmp(l, "event=", 6) == 0)
				snprintf(event, sizeof(event), "%s", l + 6);
		}
		free(text);
		printf("%-16s %-16s %8s %-8s %-8s %s\n", disk, agent, epoch,
		       strcmp(verified, "1") == 0 ? "yes" : "no", strcmp(cut, "1") == 0 ? "yes" : "no",
		       root);
		/* The last fault and how replication recovered from it. */
		if (event[0])
			printf("  last fault %s\n", event);
		n++;
	}
	closedir(d);
	if (n == 0)
		printf("no disks yet in %s\n", dir);
	return 0;
}

static int cmd_cutover(const char *dir, const char *name, const char *verify, unsigned timeout)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char req[160], buf[8192];
	size_t have = 0;
	ssize_t n;
	int fd, ok;

	if (snprintf(a.sun_path, sizeof(a.sun_path), "%s/%s", dir, CONTROL_SOCKET) >=
	    (int)sizeof(a.sun_path)) {
		log_error("state dir path too long: %s", dir);
		return 1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		log_errno(-errno, "cannot reach the receiver's control socket %s (is it serving?)",
			  a.sun_path);
		if (fd >= 0)
			close(fd);
		return 1;
	}
	snprintf(req, sizeof(req), "cutover %s %s %u\n", name, verify, timeout);
	if (write_full(fd, req, strlen(req)) < 0) {
		log_errno(-errno, "cannot send the request");
		close(fd);
		return 1;
	}
	while (have < sizeof(buf) - 1 && (n = read(fd, buf + have, sizeof(buf) - 1 - have)) > 0)
		have += (size_t)n;
	close(fd);
	buf[have] = '\0';
	fputs(buf, stdout);
	ok = have >= 3 && strcmp(buf + have - 3, "OK\n") == 0 &&
	     (have == 3 || buf[have - 4] == '\n');
	if (!ok && have == 0)
		log_error("the receiver closed the control connection without an answer");
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, 's' },
		{ "verify", required_argument, NULL, 'v' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = getenv("TERN_STATE_DIR"), *verify = "tracked";
	uint64_t timeout = 600;
	int c;

	log_setup("ternctl", LOG_LVL_INFO);
	if (!dir || !*dir)
		dir = "/var/lib/tern";
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 's': dir = optarg; break;
		case 'v':
			if (strcmp(optarg, "tracked") != 0 && strcmp(optarg, "full") != 0) {
				log_error("--verify %s: tracked or full", optarg);
				return 2;
			}
			verify = optarg;
			break;
		case 't':
			if (parse_u64(optarg, 1, 86400, &timeout) < 0) {
				log_error("--timeout %s: seconds from 1 to 86400", optarg);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("ternctl %s\n", TERN_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[optind], "status") == 0 && optind + 1 == argc)
		return cmd_status(dir);
	if (strcmp(argv[optind], "cutover") == 0 && optind + 2 <= argc) {
		const char *name = argv[optind + 1];

		/* Options may also follow the agent's name. */
		optind += 2;
		while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
			if (c == 'v' && (strcmp(optarg, "tracked") == 0 || strcmp(optarg, "full") == 0))
				verify = optarg;
			else if (c == 't' && parse_u64(optarg, 1, 86400, &timeout) == 0)
				;
			else {
				log_error("bad option for cutover; see ternctl --help");
				return 2;
			}
		}
		if (optind != argc || !name_is_valid(name, strlen(name))) {
			log_error("cutover takes one agent NAME; see ternctl --help");
			return 2;
		}
		return cmd_cutover(dir, name, verify, (unsigned)timeout);
	}
	log_error("unknown command; see ternctl --help");
	return 2;
}

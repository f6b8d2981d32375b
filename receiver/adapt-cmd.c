// SPDX-License-Identifier: GPL-2.0-only
/* `tern-receiver adapt`: the command line of OS adaptation (adapt.h). */
#include "receiver/adapt.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "receiver/profile.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tern-receiver adapt --profile P [--report FILE] [--undo-dir DIR]\n"
		"                           [--marker] [--accel auto|kvm|tcg] IMAGE\n"
		"       tern-receiver adapt --undo DIR [--accel auto|kvm|tcg] IMAGE\n"
		"\n"
		"Adapts the disk image IMAGE, offline, to boot on platform P (%s):\n"
		"root, swap and resume by UUID, the platform's drivers in every initramfs,\n"
		"DHCP on any Ethernet interface, a serial console, the old platform's tools\n"
		"masked, the UEFI fallback loader. Every file it touches is saved in the undo\n"
		"directory (default IMAGE.adapt-undo), with report.json saying what changed\n"
		"and why; --undo DIR puts them back.\n"
		"  --marker   add the test-launch unit that prints TERN-BOOT-OK ADDRESS on the\n"
		"             console once DHCP gave the guest an address\n"
		"  --accel    how the libguestfs appliance runs (auto: KVM, else TCG)\n",
		prof_names());
}

/* adapt --undo DIR IMAGE */
static int cmd_undo(const char *image, const char *undo, enum adapt_accel accel)
{
	char why[1024];
	int r;

	r = adapt_undo(image, undo, accel, why, sizeof(why));
	if (r < 0) {
		log_error("cannot undo the adaptation of %s: %s", image, why);
		return 1;
	}
	printf("restored %s from %s\n", image, undo);
	return 0;
}

/* adapt --profile P [--report FILE] [--undo-dir DIR] IMAGE */
static int cmd_adapt(const char *image, const char *profile, const char *report,
		     const char *undo_dir, struct adapt_opts *o)
{
	const struct prof *p = NULL;
	char why[1024], *dflt = NULL, *rep = NULL;
	int r, ret = 2;

	if (!profile) {
		log_error("adapt needs --profile (%s)", prof_names());
		return 2;
	}
	p = prof_find(profile);
	if (!p) {
		log_error("unknown profile '%s'; profiles: %s", profile, prof_names());
		return 2;
	}
	if (!undo_dir) {
		if (asprintf(&dflt, "%s.adapt-undo", image) < 0) {
			log_error("out of memory");
			return 1;
		}
		undo_dir = dflt;
	}
	o->undo_dir = undo_dir;
	ret = 1;
	r = adapt_run(image, p, o, &rep, why, sizeof(why));
	if (r < 0) {
		log_error("cannot adapt %s for %s: %s", image, p->name, why);
		goto out;
	}
	if (report) {
		r = write_file_atomic(report, rep, strlen(rep), 0644);
		if (r < 0) {
			log_errno(r, "adapted, but cannot write the report %s", report);
			goto out;
		}
	}
	printf("adapted %s for %s; report %s, undo with: tern-receiver adapt --undo %s %s\n",
	       image, p->name, report ? report : undo_dir, undo_dir, image);
	ret = 0;
out:
	free(rep);
	free(dflt);
	return ret;
}

int adapt_cmd(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "profile", required_argument, NULL, 'p' },
		{ "report", required_argument, NULL, 'r' },
		{ "undo-dir", required_argument, NULL, 'd' },
		{ "undo", required_argument, NULL, 'u' },
		{ "marker", no_argument, NULL, 'm' },
		{ "accel", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *profile = NULL, *report = NULL, *undo_dir = NULL, *undo = NULL;
	struct adapt_opts o = { 0 };
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			profile = optarg;
			break;
		case 'r':
			report = optarg;
			break;
		case 'd':
			undo_dir = optarg;
			break;
		case 'u':
			undo = optarg;
			break;
		case 'm':
			o.marker = true;
			break;
		case 'a':
			if (strcmp(optarg, "auto") == 0) {
				o.accel = ADAPT_ACCEL_AUTO;
			} else if (strcmp(optarg, "kvm") == 0) {
				o.accel = ADAPT_ACCEL_KVM;
			} else if (strcmp(optarg, "tcg") == 0) {
				o.accel = ADAPT_ACCEL_TCG;
			} else {
				log_error("--accel must be auto, kvm or tcg, not '%s'", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind + 1 != argc) {
		log_error(optind == argc ? "adapt needs an IMAGE; see tern-receiver adapt --help"
					 : "adapt takes one IMAGE; see tern-receiver adapt --help");
		return 2;
	}
	if (undo) {
		if (profile || report || undo_dir || o.marker) {
			log_error("--undo takes only --accel besides the IMAGE");
			return 2;
		}
		return cmd_undo(argv[optind], undo, o.accel);
	}
	return cmd_adapt(argv[optind], profile, report, undo_dir, &o);
}

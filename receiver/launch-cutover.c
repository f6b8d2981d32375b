// SPDX-License-Identifier: GPL-2.0-only
/* A cutover with adaptation (launch_cutover_adapt, launch.h): the proven target's system
 * disk adapted on a reflink beside it (or in place, with its undo copy), boot-checked, put
 * in place, and its new root read back. */
#include "receiver/launch.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "receiver/adapt.h"
#include "receiver/apiparse.h"
#include "receiver/boot.h"
#include "receiver/clone.h"
#include "receiver/launch-impl.h"
#include "receiver/profile.h"
#include "receiver/session.h"

/* The Merkle root of what path holds, chunk by chunk, as the receiver computes it. */
static int file_root(const char *path, uint64_t size, uint32_t cs, struct fp *ret_root)
{
	struct fp_merkle m;
	struct fp f;
	uint8_t *buf;
	int fd, r = 0;

	if (cs == 0)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(cs);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	fp_merkle_init(&m);
	for (uint64_t off = 0; off < size && r == 0; off += cs) {
		size_t n = (size_t)MIN((uint64_t)cs, size - off);

		r = pread_full(fd, buf, n, off);
		if (r < 0)
			break;
		if (mem_is_zero(buf, n))
			fp_zero(n, &f);
		else
			fp_compute(buf, n, &f);
		fp_merkle_add(&m, &f);
	}
	if (r == 0)
		fp_merkle_final(&m, ret_root);
	free(buf);
	close(fd);
	return r;
}

/* Appends to a malloc'd text; out of memory loses the line, not the text. */
static void text_add(char **text, size_t *len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void text_add(char **text, size_t *len, const char *fmt, ...)
{
	va_list ap;
	char *line = NULL, *t;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&line, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	t = realloc(*text, *len + (size_t)n + 1);
	if (t) {
		memcpy(t + *len, line, (size_t)n + 1);
		*text = t;
		*len += (size_t)n;
	}
	free(line);
}

/* The report's steps as lines: "  path: change (why)". */
static void text_steps(char **text, size_t *len, const char *report)
{
	json_object *o = json_tokener_parse(report), *steps;

	if (o && json_object_object_get_ex(o, "steps", &steps) &&
	    json_object_is_type(steps, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(steps); i++) {
			json_object *st = json_object_array_get_idx(steps, i), *p, *c, *w;

			if (json_object_object_get_ex(st, "path", &p) &&
			    json_object_object_get_ex(st, "change", &c) &&
			    json_object_object_get_ex(st, "why", &w))
				text_add(text, len, "  changed %s: %s (%s)\n", json_object_get_string(p),
					 json_object_get_string(c), json_object_get_string(w));
		}
	}
	json_object_put(o);
}

int launch_cutover_adapt(struct rcv_server *srv, const char *agent,
			 const struct rcv_cutover *req, const struct prof *p, bool boot_check,
			 bool kvm, char **ret_text)
{
	struct launch l = { .ls = srv->launches };
	const struct rcv_cut_disk *d = &req->disks[0];
	struct adapt_opts ao = { .marker = boot_check,
				 .accel = kvm ? ADAPT_ACCEL_AUTO : ADAPT_ACCEL_TCG };
	struct clone_result cr;
	char undo[4200], work[4200], tdir[4096], why[1024], addr[64], hex[33], *report = NULL;
	char *text = NULL, *slash;
	bool in_place = false, adapted = false;
	struct fp root;
	size_t len = 0;
	struct stat st;
	int r;

	work[0] = '\0';
	if (req->ndisks == 0) {
		text_add(&text, &len, "adaptation: no cut-over disk to adapt\n");
		*ret_text = text;
		return -ENOENT;
	}
	snprintf(l.rq.agent, sizeof(l.rq.agent), "%s", agent);
	text_add(&text, &len, "adaptation of disk %s for %s (%s)\n  proven root %s\n", d->id,
		 p->name, p->platform, fp_hex(&d->root, hex));
	pthread_mutex_lock(&srv->launches->lock);
	r = launch_make_dir(srv->launches, &l);
	pthread_mutex_unlock(&srv->launches->lock);
	if (r < 0) {
		snprintf(why, sizeof(why), "cannot make a directory under %.900s/launch: %s",
			 srv->launches->state_dir, strerror(-r));
		goto cleanup;
	}
	snprintf(undo, sizeof(undo), "%.4000s/undo", l.dir);
	ao.undo_dir = undo;
	/* A reflink beside the target is adapted and renamed over it once it passed: the
	 * proven target stays untouched until then. */
	snprintf(tdir, sizeof(tdir), "%s", d->path);
	slash = strrchr(tdir, '/');
	if (slash)
		*slash = '\0';
	snprintf(work, sizeof(work), "%.3000s/.tern-adapt-%s-%s.img", slash ? tdir : ".", d->id, l.id);
	r = stat(d->path, &st) < 0 ? -errno : 0;
	if (r == 0 && S_ISREG(st.st_mode))
		r = clone_reflink(d->path, work, &cr, why, sizeof(why));
	else if (r == 0)
		r = -EOPNOTSUPP;
	if (r == -EOPNOTSUPP) {
		/* No clone to be had: in place, with every touched file saved in undo. */
		in_place = true;
		snprintf(work, sizeof(work), "%s", d->path);
		text_add(&text, &len, "  no reflink of the target possible: adapting it in place "
			 "(undo copy in %s)\n", undo);
	} else if (r < 0) {
		goto cleanup;
	}
	r = adapt_run(work, p, &ao, &report, why, sizeof(why));
	if (r < 0)
		goto cleanup;
	adapted = true;
	text_steps(&text, &len, report);
	if (boot_check && p->boot_bus) {
		const char *images[] = { work };
		struct boot_opts bo = { .timeout_s = API_LAUNCH_BOOT_TIMEOUT_DEFAULT, .kvm = kvm,
					.work_dir = l.dir, .cancelled = launch_boot_cancelled,
					.ctx = srv->launches };
		char console[4300];

		snprintf(console, sizeof(console), "%s/console.log", l.dir);
		bo.console_log = console;
		r = boot_run(images, 1, p, &bo, addr, sizeof(addr), why, sizeof(why));
		if (r < 0) {
			char first[1024];

			snprintf(first, sizeof(first), "boot check on %s failed: %.600s (console %.300s)",
				 p->boot_bus, why, console);
			if (in_place && adapt_undo(work, undo, ao.accel, why, sizeof(why)) < 0)
				snprintf(first + strlen(first), sizeof(first) - strlen(first),
					 "; UNDO FAILED too: %.500s", why);
			snprintf(why, sizeof(why), "%s", first);
			goto cleanup;
		}
		text_add(&text, &len, "  boot check: booted on %s%s to multi-user, DHCP address %s "
			 "(console %s)\n", p->boot_bus,
			 boot_is_uefi(images[0]) == 1 ? " (UEFI, empty NVRAM)" : "", addr, console);
		/* The marker unit is the test launch's; a disk put in service goes without. */
		if (adapt_unmark(work, undo, ao.accel, why, sizeof(why)) < 0)
			text_add(&text, &len, "  WARNING: the boot check's marker unit stays on the "
				 "disk (it prints TERN-BOOT-OK at each boot): %s\n", why);
		else
			text_add(&text, &len, "  boot check's marker unit removed from the disk\n");
	} else if (boot_check) {
		text_add(&text, &len, "  boot check: %s storage cannot be emulated; the "
			 "initramfs check of the adaptation stands for it\n", p->name);
	}
	if (!in_place) {
		if (rename(work, d->path) < 0) {
			r = -errno;
			snprintf(why, sizeof(why), "cannot put the adapted disk in place of %.900s: %s",
				 d->path, strerror(errno));
			goto cleanup;
		}
		fsync_dir_of(d->path);
	}
	r = file_root(d->path, d->size, d->chunk_size, &root);
	if (r < 0)
		text_add(&text, &len, "  adapted root: cannot read the target back: %s\n", strerror(-r));
	else
		text_add(&text, &len, "  adapted root %s: the target now holds the adapted disk\n",
			 fp_hex(&root, hex));
	text_add(&text, &len, "  report %s/report.json; undo copy %s (tern-receiver adapt --undo "
		 "%s %s restores the proven disk)\n", undo, undo, undo, d->path);
	r = 0;
cleanup:
	if (r < 0) {
		if (!in_place && work[0])
			unlink(work);
		text_add(&text, &len, "  ADAPTATION FAILED: %s\n  the proven, unadapted target is left "
			 "as it was (root %s)%s\n", why, fp_hex(&d->root, hex),
			 in_place && adapted ? ", its changes undone" : "");
		log_error("agent %s: adaptation after the cutover failed: %s", agent, why);
	} else {
		log_info("agent %s: disk %s adapted for %s after the cutover", agent, d->id, p->name);
	}
	free(report);
	*ret_text = text;
	return r;
}

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

/* One cutover's adaptation, as its phases pass it on. */
struct cut_job {
	struct launch l; /* its directory: STATE_DIR/launch/AGENT/ID */
	const struct rcv_cut_disk *d;
	const struct prof *p;
	struct adapt_opts ao;
	bool kvm;
	bool in_place; /* no reflink: the target itself is adapted */
	bool adapted;
	char undo[4200], work[4200], why[1024];
	char *text; /* what the operator is told */
	size_t len;
};

/* The launch directory, and where to adapt: a reflink beside the target, renamed over it
 * once it passed, so that the proven target stays untouched until then; else the target
 * itself, in place, with every touched file saved in undo. */
static int cut_prepare(struct cut_job *j, struct launches *ls)
{
	const struct rcv_cut_disk *d = j->d;
	struct clone_result cr;
	char tdir[4096], *slash;
	struct stat st;
	int r;

	pthread_mutex_lock(&ls->lock);
	r = launch_make_dir(ls, &j->l);
	pthread_mutex_unlock(&ls->lock);
	if (r < 0) {
		snprintf(j->why, sizeof(j->why), "cannot make a directory under %.900s/launch: %s",
			 ls->state_dir, strerror(-r));
		return r;
	}
	snprintf(j->undo, sizeof(j->undo), "%.4000s/undo", j->l.dir);
	j->ao.undo_dir = j->undo;
	snprintf(tdir, sizeof(tdir), "%s", d->path);
	slash = strrchr(tdir, '/');
	if (slash)
		*slash = '\0';
	snprintf(j->work, sizeof(j->work), "%.3000s/.tern-adapt-%s-%s.img", slash ? tdir : ".",
		 d->id, j->l.id);
	r = stat(d->path, &st) < 0 ? -errno : 0;
	if (r == 0 && S_ISREG(st.st_mode))
		r = clone_reflink(d->path, j->work, &cr, j->why, sizeof(j->why));
	else if (r == 0)
		r = -EOPNOTSUPP;
	if (r == -EOPNOTSUPP) {
		/* No clone to be had: in place, with every touched file saved in undo. */
		j->in_place = true;
		snprintf(j->work, sizeof(j->work), "%s", d->path);
		text_add(&j->text, &j->len, "  no reflink of the target possible: adapting it in "
			 "place (undo copy in %s)\n", j->undo);
		return 0;
	}
	return r;
}

/* The boot check of the adapted disk, and the marker unit off it once it passed; a failed
 * check of a disk adapted in place is undone. */
static int cut_boot_check(struct cut_job *j)
{
	const struct prof *p = j->p;
	const char *images[] = { j->work };
	struct boot_opts bo = { .timeout_s = API_LAUNCH_BOOT_TIMEOUT_DEFAULT, .kvm = j->kvm,
				.work_dir = j->l.dir, .cancelled = launch_boot_cancelled,
				.ctx = j->l.ls };
	char console[4300], addr[64];
	int r;

	snprintf(console, sizeof(console), "%s/console.log", j->l.dir);
	bo.console_log = console;
	r = boot_run(images, 1, p, &bo, addr, sizeof(addr), j->why, sizeof(j->why));
	if (r < 0) {
		char first[1024];

		snprintf(first, sizeof(first), "boot check on %s failed: %.600s (console %.300s)",
			 p->boot_bus, j->why, console);
		if (j->in_place && adapt_undo(j->work, j->undo, j->ao.accel, j->why,
					      sizeof(j->why)) < 0)
			snprintf(first + strlen(first), sizeof(first) - strlen(first),
				 "; UNDO FAILED too: %.500s", j->why);
		snprintf(j->why, sizeof(j->why), "%s", first);
		return r;
	}
	text_add(&j->text, &j->len, "  boot check: booted on %s%s to multi-user, DHCP address "
		 "%s (console %s)\n", p->boot_bus,
		 boot_is_uefi(images[0]) == 1 ? " (UEFI, empty NVRAM)" : "", addr, console);
	/* The marker unit is the test launch's; a disk put in service goes without. */
	if (adapt_unmark(j->work, j->undo, j->ao.accel, j->why, sizeof(j->why)) < 0)
		text_add(&j->text, &j->len, "  WARNING: the boot check's marker unit stays on the "
			 "disk (it prints TERN-BOOT-OK at each boot): %s\n", j->why);
	else
		text_add(&j->text, &j->len, "  boot check's marker unit removed from the disk\n");
	return 0;
}

/* The adapted reflink renamed over the target, and the target's new root read back. */
static int cut_put_in_place(struct cut_job *j)
{
	const struct rcv_cut_disk *d = j->d;
	struct fp root;
	char hex[33];
	int r;

	if (!j->in_place) {
		if (rename(j->work, d->path) < 0) {
			r = -errno;
			snprintf(j->why, sizeof(j->why), "cannot put the adapted disk in place of "
				 "%.900s: %s", d->path, strerror(errno));
			return r;
		}
		fsync_dir_of(d->path);
	}
	r = file_root(d->path, d->size, d->chunk_size, &root);
	if (r < 0)
		text_add(&j->text, &j->len, "  adapted root: cannot read the target back: %s\n",
			 strerror(-r));
	else
		text_add(&j->text, &j->len, "  adapted root %s: the target now holds the adapted "
			 "disk\n", fp_hex(&root, hex));
	text_add(&j->text, &j->len, "  report %s/report.json; undo copy %s (tern-receiver adapt "
		 "--undo %s %s restores the proven disk)\n", j->undo, j->undo, j->undo, d->path);
	return 0;
}

int launch_cutover_adapt(struct rcv_server *srv, const char *agent,
			 const struct rcv_cutover *req, const struct prof *p, bool boot_check,
			 bool kvm, char **ret_text)
{
	const struct rcv_cut_disk *d = &req->disks[0];
	struct cut_job j = { .l = { .ls = srv->launches }, .d = d, .p = p, .kvm = kvm,
			     .ao = { .marker = boot_check,
				     .accel = kvm ? ADAPT_ACCEL_AUTO : ADAPT_ACCEL_TCG } };
	char hex[33], *report = NULL;
	int r;

	if (req->ndisks == 0) {
		text_add(&j.text, &j.len, "adaptation: no cut-over disk to adapt\n");
		*ret_text = j.text;
		return -ENOENT;
	}
	snprintf(j.l.rq.agent, sizeof(j.l.rq.agent), "%s", agent);
	text_add(&j.text, &j.len, "adaptation of disk %s for %s (%s)\n  proven root %s\n", d->id,
		 p->name, p->platform, fp_hex(&d->root, hex));
	r = cut_prepare(&j, srv->launches);
	if (r < 0)
		goto cleanup;
	r = adapt_run(j.work, p, &j.ao, &report, j.why, sizeof(j.why));
	if (r < 0)
		goto cleanup;
	j.adapted = true;
	text_steps(&j.text, &j.len, report);
	if (boot_check && p->boot_bus) {
		r = cut_boot_check(&j);
		if (r < 0)
			goto cleanup;
	} else if (boot_check) {
		text_add(&j.text, &j.len, "  boot check: %s storage cannot be emulated; the "
			 "initramfs check of the adaptation stands for it\n", p->name);
	}
	r = cut_put_in_place(&j);
cleanup:
	if (r < 0) {
		if (!j.in_place && j.work[0])
			unlink(j.work);
		text_add(&j.text, &j.len, "  ADAPTATION FAILED: %s\n  the proven, unadapted target "
			 "is left as it was (root %s)%s\n", j.why, fp_hex(&d->root, hex),
			 j.in_place && j.adapted ? ", its changes undone" : "");
		log_error("agent %s: adaptation after the cutover failed: %s", agent, j.why);
	} else {
		log_info("agent %s: disk %s adapted for %s after the cutover", agent, d->id, p->name);
	}
	free(report);
	*ret_text = j.text;
	return r;
}

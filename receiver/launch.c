// SPDX-License-Identifier: GPL-2.0-only
/* Test launches while replication continues; see launch.h. */
#include "receiver/launch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
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

#define CLONES_FILE "clones"
/* A clones file's line for a thin snapshot: this, then its "VG/LV". */
#define CLONE_THIN_LINE "thin "

static const char *const state_names[] = { "waiting", "cloning", "adapting", "booting",
					   "passed", "failed" };

static bool running(const struct launch *l)
{
	return l->state < LAUNCH_PASSED;
}

struct launches *launches_new(const char *state_dir)
{
	struct launches *ls = calloc(1, sizeof(*ls));
	pthread_condattr_t ca;

	if (!ls)
		return NULL;
	snprintf(ls->state_dir, sizeof(ls->state_dir), "%s", state_dir);
	pthread_mutex_init(&ls->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ls->cv, &ca);
	pthread_condattr_destroy(&ca);
	return ls;
}

struct launches *launches_free(struct launches *ls)
{
	if (!ls)
		return NULL;
	pthread_mutex_lock(&ls->lock);
	ls->stopping = true;
	pthread_cond_broadcast(&ls->cv);
	pthread_mutex_unlock(&ls->lock);
	for (struct launch *l = ls->head, *next; l; l = next) {
		next = l->next;
		if (l->has_thread)
			pthread_join(l->thread, NULL);
		free(l);
	}
	pthread_mutex_destroy(&ls->lock);
	pthread_cond_destroy(&ls->cv);
	free(ls);
	return NULL;
}

/* Under ls->lock. */
static void set_state(struct launch *l, enum launch_state st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_state(struct launch *l, enum launch_state st, const char *fmt, ...)
{
	va_list ap;

	l->state = st;
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(l->result, sizeof(l->result), fmt, ap);
		va_end(ap);
	}
	pthread_cond_broadcast(&l->ls->cv);
}

static void state_locked(struct launch *l, enum launch_state st, const char *what)
{
	pthread_mutex_lock(&l->ls->lock);
	set_state(l, st, "%s", what);
	pthread_mutex_unlock(&l->ls->lock);
}

static json_object *launch_json(const struct launch *l)
{
	json_object *o = json_object_new_object(), *disks = json_object_new_array(), *t;
	char hex[33];

	if (!o || !disks) {
		json_object_put(o);
		json_object_put(disks);
		return NULL;
	}
	json_object_object_add(o, "agent", json_object_new_string(l->rq.agent));
	json_object_object_add(o, "id", json_object_new_string(l->id));
	json_object_object_add(o, "profile", json_object_new_string(l->rq.prof->name));
	json_object_object_add(o, "boot_check", json_object_new_boolean(l->rq.boot_check));
	json_object_object_add(o, "state", json_object_new_string(state_names[l->state]));
	json_object_object_add(o, "result", json_object_new_string(l->result));
	json_object_object_add(o, "address", l->address[0] ? json_object_new_string(l->address) : NULL);
	json_object_object_add(o, "started", json_object_new_int64((int64_t)l->started));
	json_object_object_add(o, "dir", json_object_new_string(l->dir));
	json_object_object_add(o, "report", l->report[0] ? json_object_new_string(l->report) : NULL);
	json_object_object_add(o, "console", l->console[0] ? json_object_new_string(l->console) : NULL);
	for (size_t i = 0; i < l->ndisks; i++) {
		const struct ldisk *d = &l->disks[i];
		json_object *dj = json_object_new_object();

		if (!dj)
			continue;
		json_object_object_add(dj, "id", json_object_new_string(d->id));
		json_object_object_add(dj, "epoch", json_object_new_int64((int64_t)d->epoch));
		json_object_object_add(dj, "root", json_object_new_string(fp_hex(&d->root, hex)));
		json_object_object_add(dj, "clone", json_object_new_string(d->c.path));
		json_object_object_add(dj, "lv", d->c.lv[0] ? json_object_new_string(d->c.lv) : NULL);
		json_object_object_add(dj, "how", json_object_new_string(clone_how_name(d->c.how)));
		json_object_object_add(dj, "size", json_object_new_int64((int64_t)d->c.size));
		json_object_object_add(dj, "copied_bytes", json_object_new_int64((int64_t)d->c.copied));
		json_object_object_add(dj, "clone_seconds", json_object_new_double((double)d->c.ns / 1e9));
		json_object_object_add(dj, "warning", json_object_new_string(d->c.warning));
		json_object_array_add(disks, dj);
	}
	json_object_object_add(o, "disks", disks);
	t = json_object_new_object();
	if (t) {
		json_object_object_add(t, "clone", json_object_new_double(l->clone_s));
		json_object_object_add(t, "adapt", json_object_new_double(l->adapt_s));
		json_object_object_add(t, "boot", json_object_new_double(l->boot_s));
		json_object_object_add(o, "seconds", t);
	}
	return o;
}

json_object *launch_snapshot(struct launches *ls)
{
	json_object *a = json_object_new_array();

	if (!a)
		return NULL;
	pthread_mutex_lock(&ls->lock);
	for (struct launch *l = ls->head; l; l = l->next) {
		json_object *o = launch_json(l);

		if (o)
			json_object_array_add(a, o);
	}
	pthread_mutex_unlock(&ls->lock);
	return a;
}

bool launch_boot_cancelled(void *ctx)
{
	struct launches *ls = ctx;

	return __atomic_load_n(&ls->stopping, __ATOMIC_ACQUIRE);
}

/* The launch's own thread: adaptation, then the boot check. */
static void *launch_thread(void *arg)
{
	struct launch *l = arg;
	struct adapt_opts ao = { .marker = true };
	struct boot_opts bo = { .timeout_s = l->rq.boot_timeout_s, .kvm = l->rq.kvm,
				.cancelled = launch_boot_cancelled, .ctx = l->ls };
	const char *images[LAUNCH_MAX_DISKS];
	char undo[4096], report_path[4096], why[1024], addr[64];
	char *report = NULL;
	uint64_t t0 = now_ns();
	int r;

	snprintf(undo, sizeof(undo), "%.4000s/undo", l->dir);
	ao.undo_dir = undo;
	/* KVM hangs on some hosts rather than failing: the appliance uses it only when
	 * the launch's boot does. */
	ao.accel = l->rq.kvm ? ADAPT_ACCEL_AUTO : ADAPT_ACCEL_TCG;
	/* The agent's first disk is the system disk; the others go along unadapted. */
	r = adapt_run(l->disks[0].c.path, l->rq.prof, &ao, &report, why, sizeof(why));
	free(report);
	pthread_mutex_lock(&l->ls->lock);
	l->adapt_s = (double)(now_ns() - t0) / 1e9;
	snprintf(report_path, sizeof(report_path), "%.4000s/report.json", undo);
	if (access(report_path, F_OK) == 0)
		snprintf(l->report, sizeof(l->report), "%s", report_path);
	if (r < 0) {
		set_state(l, LAUNCH_FAILED, "adaptation for %s failed: %s", l->rq.prof->name, why);
		pthread_mutex_unlock(&l->ls->lock);
		log_error("test launch %s: adaptation failed: %s", l->id, why);
		return NULL;
	}
	if (!l->rq.boot_check || !l->rq.prof->boot_bus) {
		set_state(l, LAUNCH_PASSED, "adapted for %s%s", l->rq.prof->name,
			  !l->rq.boot_check ? " (no boot check asked)" :
			  "; its storage cannot be emulated, so the boot check is the initramfs "
			  "check of the adaptation only");
		pthread_mutex_unlock(&l->ls->lock);
		log_info("test launch %s: %s", l->id, l->result);
		return NULL;
	}
	snprintf(l->console, sizeof(l->console), "%s/console.log", l->dir);
	set_state(l, LAUNCH_BOOTING, "booting on %s", l->rq.prof->boot_bus);
	pthread_mutex_unlock(&l->ls->lock);
	for (size_t i = 0; i < l->ndisks; i++)
		images[i] = l->disks[i].c.path;
	bo.console_log = l->console;
	bo.work_dir = l->dir;
	t0 = now_ns();
	r = boot_run(images, l->ndisks, l->rq.prof, &bo, addr, sizeof(addr), why, sizeof(why));
	pthread_mutex_lock(&l->ls->lock);
	l->boot_s = (double)(now_ns() - t0) / 1e9;
	if (r < 0) {
		set_state(l, LAUNCH_FAILED, "boot check on %s failed: %s", l->rq.prof->boot_bus, why);
	} else {
		snprintf(l->address, sizeof(l->address), "%s", addr);
		/* Said, since it is what a UEFI guest's first boot on the new platform
		 * depends on: its firmware found the fallback loader, no boot entry. */
		set_state(l, LAUNCH_PASSED, "booted on %s%s to multi-user with DHCP address %s "
			  "(%.0f s)", l->rq.prof->boot_bus,
			  boot_is_uefi(images[0]) == 1 ? " (UEFI, empty NVRAM)" : "", addr,
			  l->boot_s);
	}
	pthread_mutex_unlock(&l->ls->lock);
	if (r < 0)
		log_error("test launch %s: %s", l->id, l->result);
	else
		log_info("test launch %s: %s", l->id, l->result);
	return NULL;
}

/* Picks a fresh ID (UTC time, a suffix when taken) and makes DIR. Under ls->lock. */
int launch_make_dir(struct launches *ls, struct launch *l)
{
	char base[4096], stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	int r;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
	snprintf(base, sizeof(base), "%.4000s/launch/%s", ls->state_dir, l->rq.agent);
	r = mkdir_p(base, 0700);
	if (r < 0)
		return r;
	for (unsigned k = 1; k < 100; k++) {
		if (k == 1)
			snprintf(l->id, sizeof(l->id), "%s", stamp);
		else
			snprintf(l->id, sizeof(l->id), "%s-%u", stamp, k);
		if (snprintf(l->dir, sizeof(l->dir), "%s/%s", base, l->id) >= (int)sizeof(l->dir))
			return -ENAMETOOLONG;
		if (mkdir(l->dir, 0700) == 0)
			return 0;
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

int launch_test(struct rcv_server *srv, const struct launch_req *rq, json_object **ret_info,
		char *why, size_t why_len)
{
	struct launches *ls = srv->launches;
	struct launch *l;
	struct timespec deadline;
	int r;

	pthread_mutex_lock(&ls->lock);
	for (l = ls->head; l; l = l->next) {
		if (strcmp(l->rq.agent, rq->agent) == 0 && running(l)) {
			snprintf(why, why_len, "test launch %s of agent %s is still %s", l->id,
				 rq->agent, state_names[l->state]);
			pthread_mutex_unlock(&ls->lock);
			return -EBUSY;
		}
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		pthread_mutex_unlock(&ls->lock);
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	l->rq = *rq;
	l->ls = ls;
	l->started = time(NULL);
	l->state = LAUNCH_WAITING;
	r = launch_make_dir(ls, l);
	if (r < 0) {
		pthread_mutex_unlock(&ls->lock);
		snprintf(why, why_len, "cannot make a directory under %s/launch: %s",
			 ls->state_dir, strerror(-r));
		free(l);
		return r;
	}
	snprintf(l->result, sizeof(l->result), "waiting for an epoch boundary");
	pthread_mutex_unlock(&ls->lock);

	r = rcv_launch(srv, rq->agent, l, why, why_len);
	if (r < 0) {
		rmdir(l->dir);
		free(l);
		return r;
	}
	/* Listed from here on: the session may take it at once. */
	pthread_mutex_lock(&ls->lock);
	{
		struct launch **p = &ls->head;

		while (*p)
			p = &(*p)->next;
		*p = l;
	}
	log_info("api: test launch %s of agent %s (%s%s) waits for an epoch boundary", l->id,
		 rq->agent, rq->prof->name, rq->boot_check ? ", boot check" : "");
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += rq->wait_s;
	while (l->state == LAUNCH_WAITING && !ls->stopping) {
		if (pthread_cond_timedwait(&ls->cv, &ls->lock, &deadline) == ETIMEDOUT)
			break;
	}
	if (l->state == LAUNCH_WAITING) {
		pthread_mutex_unlock(&ls->lock);
		/* Withdrawn unless the session took it meanwhile. */
		if (rcv_launch_withdraw(srv, l)) {
			pthread_mutex_lock(&ls->lock);
			l->err = -ETIMEDOUT;
			set_state(l, LAUNCH_FAILED, "no epoch boundary within %u s; withdrawn",
				  rq->wait_s);
			rmdir(l->dir);
		} else {
			pthread_mutex_lock(&ls->lock);
		}
	}
	/* A copy takes its time; the clone is the session's to finish. */
	while (l->state == LAUNCH_WAITING || l->state == LAUNCH_CLONING)
		pthread_cond_wait(&ls->cv, &ls->lock);
	if (l->state == LAUNCH_FAILED) {
		snprintf(why, why_len, "%s", l->result);
		r = l->err ? l->err : -EIO;
	} else {
		*ret_info = launch_json(l);
		r = *ret_info ? 0 : -ENOMEM;
		if (r < 0)
			snprintf(why, why_len, "out of memory");
	}
	pthread_mutex_unlock(&ls->lock);
	return r;
}

void launch_abort(struct launches *ls, struct launch *l, const char *why)
{
	pthread_mutex_lock(&ls->lock);
	l->err = -ENOENT;
	set_state(l, LAUNCH_FAILED, "%s", why);
	rmdir(l->dir);
	pthread_mutex_unlock(&ls->lock);
}

/* Removes what the clones file in dir names: clone files, and the .tern-launch
 * directories beside targets once empty; thin snapshots ("thin VG/LV" lines) with
 * clone_thin_remove, which removes only a thin snapshot named tern-. Only paths under dir
 * or under a .tern-launch directory are touched: the file is ours, but a state dir can be
 * restored from elsewhere. 0, or the first error with why (the others are logged): the
 * caller then keeps dir, whose clones file still names what is left. */
static int remove_clones(const char *dir, char *why, size_t why_len)
{
	char path[4200], *text = NULL;
	int r = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, CLONES_FILE);
	if (read_file_all(path, 1 << 20, &text, NULL) < 0)
		return 0;
	for (char *save = NULL, *c = strtok_r(text, "\n", &save); c; c = strtok_r(NULL, "\n", &save)) {
		char *mark = strstr(c, "/.tern-launch/");

		if (strncmp(c, CLONE_THIN_LINE, strlen(CLONE_THIN_LINE)) == 0) {
			char w[600];
			int k = clone_thin_remove(c + strlen(CLONE_THIN_LINE), w, sizeof(w));

			if (k < 0) {
				log_warn("cannot remove the thin snapshot %s: %s",
					 c + strlen(CLONE_THIN_LINE), w);
				if (r == 0)
					snprintf(why, why_len, "cannot remove the thin snapshot %s: %s",
						 c + strlen(CLONE_THIN_LINE), w);
				r = r ? r : k;
			} else {
				log_info("removed the thin snapshot %s", c + strlen(CLONE_THIN_LINE));
			}
			continue;
		}
		if (strstr(c, "/../") || (strncmp(c, dir, strlen(dir)) != 0 && !mark))
			continue;
		if (unlink(c) < 0 && errno != ENOENT)
			log_warn_errno(-errno, "cannot remove the clone %s", c);
		if (mark) {
			/* .tern-launch/AGENT/ID, then AGENT, then .tern-launch itself. */
			for (int i = 0; i < 3; i++) {
				char *slash = strrchr(c, '/');

				if (!slash || slash < mark)
					break;
				*slash = '\0';
				if (rmdir(c) < 0)
					break;
			}
			mark[13] = '\0'; /* ".tern-launch" */
			rmdir(c);
		}
	}
	free(text);
	return r;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int launch_discard(struct launches *ls, const char *agent, unsigned *ret_n, char *why,
		   size_t why_len)
{
	char base[4200], sub[4500], w[600];
	struct dirent *e;
	unsigned n = 0;
	DIR *d;
	int r = 0;

	pthread_mutex_lock(&ls->lock);
	for (struct launch *l = ls->head; l; l = l->next) {
		if (strcmp(l->rq.agent, agent) == 0 && running(l)) {
			snprintf(why, why_len, "test launch %s of agent %s is still %s; discard it "
				 "once it has passed or failed", l->id, agent, state_names[l->state]);
			pthread_mutex_unlock(&ls->lock);
			return -EBUSY;
		}
	}
	snprintf(base, sizeof(base), "%s/launch/%s", ls->state_dir, agent);
	d = opendir(base);
	if (d) {
		while ((e = readdir(d))) {
			int k;

			if (e->d_name[0] == '.')
				continue;
			snprintf(sub, sizeof(sub), "%s/%s", base, e->d_name);
			n++;
			/* A snapshot that stays keeps its launch's dir: a later discard
			 * finds it there. */
			k = remove_clones(sub, r ? w : why, r ? sizeof(w) : why_len);
			if (k == 0 && nftw(sub, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0) {
				k = errno ? -errno : -EIO;
				snprintf(r ? w : why, r ? sizeof(w) : why_len,
					 "cannot remove everything under %s: %s", sub, strerror(-k));
			}
			r = r ? r : k;
		}
		closedir(d);
		if (r == 0 && rmdir(base) < 0 && errno != ENOENT) {
			r = -errno;
			snprintf(why, why_len, "cannot remove %s: %s", base, strerror(-r));
		}
	}
	/* The finished launches go from the list; their threads have ended. */
	for (struct launch **p = &ls->head; *p;) {
		struct launch *l = *p;

		if (strcmp(l->rq.agent, agent) != 0) {
			p = &l->next;
			continue;
		}
		*p = l->next;
		if (l->has_thread)
			pthread_join(l->thread, NULL);
		free(l);
	}
	pthread_mutex_unlock(&ls->lock);
	if (r == 0 && n == 0) {
		snprintf(why, why_len, "agent %s has no test launch to discard", agent);
		r = -ENOENT;
	}
	if (r == 0)
		log_info("discarded %u test launch%s of agent %s", n, n == 1 ? "" : "es", agent);
	*ret_n = n;
	return r;
}

void launch_take(struct launches *ls, struct launch *l, const struct launch_disk *d, size_t n)
{
	char rel[200], fname[NAME_MAX_LEN + 8], why[1024], path[4200];
	struct ldisk disks[LAUNCH_MAX_DISKS];
	uint64_t t0 = now_ns();
	size_t done = 0;
	FILE *f = NULL;
	int r = 0, fd;

	state_locked(l, LAUNCH_CLONING, "cloning at the epoch boundary");
	if (n > LAUNCH_MAX_DISKS) {
		snprintf(why, sizeof(why), "a test launch takes at most %d disks; agent %s has %zu",
			 LAUNCH_MAX_DISKS, l->rq.agent, n);
		r = -E2BIG;
		goto cleanup;
	}
	snprintf(path, sizeof(path), "%s/%s", l->dir, CLONES_FILE);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		r = -errno;
		snprintf(why, sizeof(why), "cannot create %.900s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		goto cleanup;
	}
	snprintf(rel, sizeof(rel), "%s/%s", l->rq.agent, l->id);
	for (done = 0; done < n; done++) {
		struct ldisk *k = &disks[done];
		char lpath[4200];

		snprintf(k->id, sizeof(k->id), "%s", d[done].id);
		k->epoch = d[done].epoch;
		k->root = d[done].root;
		snprintf(fname, sizeof(fname), "%s.img", d[done].id);
		snprintf(lpath, sizeof(lpath), "%s/launch", ls->state_dir);
		r = clone_target(d[done].path, lpath, rel, fname, &k->c, why, sizeof(why));
		if (r < 0)
			break;
		/* Listed before the next clone, so a discard finds everything made: a
		 * thin snapshot by the name lvcreate was given, never one derived later. */
		if (k->c.how == CLONE_THIN)
			fprintf(f, CLONE_THIN_LINE "%s\n", k->c.lv);
		else
			fprintf(f, "%s\n", k->c.path);
		if (fflush(f) != 0) {
			char rw[600];

			r = -errno;
			snprintf(why, sizeof(why), "cannot write %.900s: %s", path, strerror(errno));
			/* Not listed for certain: removed here. */
			if (clone_remove(&k->c, rw, sizeof(rw)) < 0)
				log_error("test launch %s: %s", l->id, rw);
			break;
		}
		log_info("test launch %s: disk %s epoch %" PRIu64 " cloned (%s) in %.3f s into %s",
			 l->id, k->id, k->epoch, clone_how_name(k->c.how), (double)k->c.ns / 1e9,
			 k->c.path);
	}
cleanup:
	if (f && fclose(f) != 0 && r == 0)
		r = -EIO;
	pthread_mutex_lock(&ls->lock);
	l->clone_s = (double)(now_ns() - t0) / 1e9;
	memcpy(l->disks, disks, done * sizeof(disks[0]));
	l->ndisks = done;
	if (r < 0) {
		char rw[600];
		int k;

		pthread_mutex_unlock(&ls->lock);
		/* Nothing half made stays: the clones made so far and the directory go; a
		 * snapshot lvremove refused stays listed there for a discard. */
		k = remove_clones(l->dir, rw, sizeof(rw));
		if (k == 0)
			nftw(l->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
		pthread_mutex_lock(&ls->lock);
		l->ndisks = 0;
		set_state(l, LAUNCH_FAILED, "the clone failed: %.500s%s%.400s", why,
			  k < 0 ? "; and " : "", k < 0 ? rw : "");
		pthread_mutex_unlock(&ls->lock);
		log_error("test launch %s: %s", l->id, l->result);
		return;
	}
	set_state(l, LAUNCH_ADAPTING, "adapting for %s", l->rq.prof->name);
	r = pthread_create(&l->thread, NULL, launch_thread, l);
	if (r != 0)
		set_state(l, LAUNCH_FAILED, "cannot start the launch's thread: %s", strerror(r));
	else
		l->has_thread = true;
	pthread_mutex_unlock(&ls->lock);
}

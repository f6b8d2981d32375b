// SPDX-License-Identifier: GPL-2.0-only
/* OS adaptation of a guest disk with libguestfs (adapt.h): checks, then changes recorded
 * in a report and in an undo directory on the host, then the guest's own tools. This file
 * runs it (adapt_run) and holds what its parts share: errors, the report, guest files. */
#include "receiver/adapt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "receiver/adapt-impl.h"
#include "receiver/profile.h"

#if TERN_HAVE_GUESTFS

/* libguestfs's last error on one line (commands' stderr spans several). */
const char *gerr(struct ad *a, char *buf, size_t len)
{
	const char *e = guestfs_last_error(a->g);
	size_t j = 0;

	if (!e)
		e = "unknown libguestfs error";
	for (size_t i = 0; e[i] && j + 1 < len; i++) {
		char c = e[i];

		if (c == '\n' || c == '\r') {
			if (e[i + 1] == '\0')
				break;
			if (j + 3 < len) {
				buf[j++] = ';';
				buf[j++] = ' ';
			}
			continue;
		}
		buf[j++] = c;
	}
	buf[j] = '\0';
	return buf;
}

/* Records the first reason a run fails; returns r. */
int fail(struct ad *a, int r, const char *fmt, ...)
{
	va_list ap;

	if (a->why && a->why_len && !a->why[0]) {
		va_start(ap, fmt);
		vsnprintf(a->why, a->why_len, fmt, ap);
		va_end(ap);
	}
	return r;
}

/* fail() with libguestfs's last error appended. */
int gfail(struct ad *a, const char *fmt, ...)
{
	char msg[1024], b[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return fail(a, -EIO, "%s: %s", msg, gerr(a, b, sizeof(b)));
}

void report_step(struct ad *a, const char *step, const char *path, const char *change,
			const char *why)
{
	json_object *s = json_object_new_object();

	json_object_object_add(s, "step", json_object_new_string(step));
	json_object_object_add(s, "path", json_object_new_string(path));
	json_object_object_add(s, "change", json_object_new_string(change));
	json_object_object_add(s, "why", json_object_new_string(why));
	json_object_array_add(a->steps, s);
	log_info("%s: %s", path, change);
}

void ad_warn(struct ad *a, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	json_object_array_add(a->warnings, json_object_new_string(buf));
	log_warn("%s", buf);
}

/* Reads a guest text file: 0 and *ret (NUL-terminated), -ENOENT, or -errno. */
int get_file(struct ad *a, const char *path, char **ret)
{
	size_t size;
	char *d, *s;

	if (guestfs_is_file(a->g, path) <= 0)
		return -ENOENT;
	d = guestfs_read_file(a->g, path, &size);
	if (!d)
		return gfail(a, "cannot read %s", path);
	if (memchr(d, '\0', size)) {
		free(d);
		return fail(a, -EBADMSG, "%s is not a text file", path);
	}
	s = malloc(size + 1);
	if (!s) {
		free(d);
		return -ENOMEM;
	}
	memcpy(s, d, size);
	s[size] = '\0';
	free(d);
	*ret = s;
	return 0;
}

/* Writes a guest file after saving what was there; a new file gets mode. */
int put_file(struct ad *a, const char *path, const char *content, unsigned mode)
{
	bool existed = guestfs_exists(a->g, path) > 0;
	int r = save_path(a, path);

	if (r < 0)
		return r;
	if (guestfs_write(a->g, path, content, strlen(content)) < 0)
		return gfail(a, "cannot write %s", path);
	if (!existed && guestfs_chmod(a->g, (int)mode, path) < 0)
		return gfail(a, "cannot set the mode of %s", path);
	return 0;
}

int remove_path(struct ad *a, const char *path)
{
	int r = save_path(a, path);

	if (r < 0)
		return r;
	if (guestfs_rm_f(a->g, path) < 0)
		return gfail(a, "cannot remove %s", path);
	return 0;
}

/* Makes dir (and its parents) after recording which of them did not exist. */
int make_dir(struct ad *a, const char *dir)
{
	char tmp[4096];
	int r;

	if (guestfs_is_dir(a->g, dir) > 0)
		return 0;
	snprintf(tmp, sizeof(tmp), "%s", dir);
	for (char *s = strchr(tmp + 1, '/');; s = strchr(s + 1, '/')) {
		if (s)
			*s = '\0';
		if (guestfs_is_dir(a->g, tmp) <= 0) {
			r = save_path(a, tmp);
			if (r < 0)
				return r;
			if (guestfs_mkdir(a->g, tmp) < 0)
				return gfail(a, "cannot make %s", tmp);
		}
		if (!s)
			break;
		*s = '/';
	}
	return 0;
}

/* A symlink made after saving what was at linkname. */
int put_link(struct ad *a, const char *target, const char *linkname)
{
	char dir[4096], *slash;
	int r;

	snprintf(dir, sizeof(dir), "%s", linkname);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		r = make_dir(a, dir);
		if (r < 0)
			return r;
	}
	r = save_path(a, linkname);
	if (r < 0)
		return r;
	if (guestfs_rm_rf(a->g, linkname) < 0 || guestfs_ln_s(a->g, target, linkname) < 0)
		return gfail(a, "cannot link %s to %s", linkname, target);
	return 0;
}

bool is_file(struct ad *a, const char *path)
{
	return guestfs_is_file(a->g, path) > 0;
}

/* Runs a shell command in the guest's root (libguestfs chroots into it with /dev, /proc
 * and /sys bound), with the guest's own PATH. *ret_out gets stdout when asked. */
int guest_sh(struct ad *a, const char *cmd, char **ret_out)
{
	char full[2048], *out;

	snprintf(full, sizeof(full),
		 "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; "
		 "export PATH; LC_ALL=C; export LC_ALL; %s", cmd);
	out = guestfs_sh(a->g, full);
	if (!out)
		return gfail(a, "%s failed in the guest", cmd);
	if (ret_out)
		*ret_out = out;
	else
		free(out);
	return 0;
}

/* ---- the appliance ---- */

int appliance_start(const char *image, enum adapt_accel accel, guestfs_h **ret_g,
			   char *why, size_t why_len)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		bool tcg = accel == ADAPT_ACCEL_TCG || attempt == 1;
		guestfs_h *g = guestfs_create();
		const char *e;

		if (!g) {
			snprintf(why, why_len, "cannot create a libguestfs handle");
			return -ENOMEM;
		}
		guestfs_set_error_handler(g, NULL, NULL);
		if (!getenv("LIBGUESTFS_BACKEND"))
			guestfs_set_backend(g, "direct");
		if (tcg)
			guestfs_set_backend_setting(g, "force_tcg", "1");
		if (guestfs_add_drive_opts(g, image, GUESTFS_ADD_DRIVE_OPTS_FORMAT, "raw",
					   GUESTFS_ADD_DRIVE_OPTS_READONLY, 0, -1) < 0) {
			snprintf(why, why_len, "cannot open %s: %s", image,
				 (e = guestfs_last_error(g)) ? e : "?");
			guestfs_close(g);
			return -EIO;
		}
		if (guestfs_launch(g) == 0) {
			*ret_g = g;
			return 0;
		}
		e = guestfs_last_error(g);
		if (tcg || accel == ADAPT_ACCEL_KVM) {
			snprintf(why, why_len, "the libguestfs appliance did not start: %s",
				 e ? e : "?");
			guestfs_close(g);
			return -EIO;
		}
		log_info("the libguestfs appliance did not start with KVM (%s); trying TCG",
			 e ? e : "?");
		guestfs_close(g);
	}
	return -EIO;
}

void ad_free(struct ad *a)
{
	for (size_t i = 0; i < a->nm; i++) {
		free(a->m[i].dev);
		free(a->m[i].mp);
	}
	free(a->m);
	strv_free(a->kernels);
	entries_free(a);
	if (a->manifest)
		fclose(a->manifest);
	json_object_put(a->report);
	if (a->g)
		guestfs_close(a->g);
}

/* The report's skeleton, filled in as the run goes; returns its "os" object. */
static json_object *report_start(struct ad *a, const char *image)
{
	json_object *os;

	a->report = json_object_new_object();
	a->steps = json_object_new_array();
	a->warnings = json_object_new_array();
	a->checks = json_object_new_array();
	os = json_object_new_object();
	json_object_object_add(a->report, "image", json_object_new_string(image));
	json_object_object_add(a->report, "profile", json_object_new_string(a->p->name));
	json_object_object_add(a->report, "platform", json_object_new_string(a->p->platform));
	json_object_object_add(a->report, "os", os);
	json_object_object_add(a->report, "steps", a->steps);
	json_object_object_add(a->report, "checks", a->checks);
	json_object_object_add(a->report, "warnings", a->warnings);
	json_object_object_add(a->report, "undo_dir", json_object_new_string(a->o->undo_dir));
	json_object_object_add(a->report, "marker", json_object_new_boolean(a->o->marker));
	return os;
}

int adapt_run(const char *image, const struct prof *p, const struct adapt_opts *o,
	      char **ret_report, char *why, size_t why_len)
{
	struct ad a = { .p = p, .o = o, .undo_dir = o->undo_dir, .why = why,
			.why_len = why_len };
	json_object *os = NULL;
	bool changing = false, made_dir;
	char path[4096];
	const char *js;
	int r;

	why[0] = '\0';
	if (!o->undo_dir) {
		snprintf(why, why_len, "an undo directory is required");
		return -EINVAL;
	}
	if (access(image, R_OK | W_OK) < 0) {
		r = -errno;
		snprintf(why, why_len, "cannot open %s for writing: %s", image, strerror(errno));
		return r;
	}
	made_dir = access(o->undo_dir, F_OK) < 0;
	r = undo_dir_make(o->undo_dir, why, why_len);
	if (r < 0)
		return r;
	os = report_start(&a, image);

	log_info("starting the libguestfs appliance for %s", image);
	r = appliance_start(image, o->accel, &a.g, why, why_len);
	if (r < 0)
		goto cleanup;
	r = preflight(&a, os);
	if (r < 0)
		goto cleanup;
	/* Checked with nothing written; from here on every change is recorded first. */
	r = manifest_create(&a);
	if (r < 0)
		goto cleanup;
	if (guestfs_umount_all(a.g) < 0) {
		r = gfail(&a, "cannot unmount the guest's file systems");
		goto cleanup;
	}
	r = mount_all(&a, false);
	if (r < 0)
		goto cleanup;
	changing = true;
	r = adapt_steps(&a);
	if (r < 0)
		goto cleanup;
	if (guestfs_umount_all(a.g) < 0 || guestfs_shutdown(a.g) < 0) {
		r = gfail(&a, "cannot close the adapted image cleanly");
		changing = false; /* the appliance is gone: nothing more can be undone here */
		goto cleanup;
	}
	changing = false;
	js = json_object_to_json_string_ext(a.report, JSON_C_TO_STRING_PRETTY |
					    JSON_C_TO_STRING_NOSLASHESCAPE);
	snprintf(path, sizeof(path), "%s/%s", o->undo_dir, UNDO_REPORT);
	r = write_file_atomic(path, js, strlen(js), 0600);
	if (r < 0) {
		fail(&a, r, "cannot write %s: %s", path, strerror(-r));
		goto cleanup;
	}
	*ret_report = strdup(js);
	r = *ret_report ? 0 : -ENOMEM;
cleanup:
	if (r < 0 && changing) {
		char first[512];

		snprintf(first, sizeof(first), "%s", why);
		log_warn("adaptation failed (%s); undoing what it changed", first);
		if (undo_entries(&a, o->undo_dir) < 0 || guestfs_umount_all(a.g) < 0 ||
		    guestfs_shutdown(a.g) < 0)
			log_error("the undo after the failure did not complete: %s; "
				  "tern-receiver adapt --undo %s %s retries it", why, o->undo_dir,
				  image);
		snprintf(why, why_len, "%s", first);
	}
	if (r < 0 && !why[0])
		snprintf(why, why_len, "%s", strerror(-r));
	if (r < 0 && !a.manifest && made_dir) {
		/* refused before any change: no trace of it on the host either */
		snprintf(path, sizeof(path), "%s/files", o->undo_dir);
		rmdir(path);
		rmdir(o->undo_dir);
	}
	ad_free(&a);
	return r;
}

#else /* !TERN_HAVE_GUESTFS */

int adapt_run(const char *image, const struct prof *p, const struct adapt_opts *o,
	      char **ret_report, char *why, size_t why_len)
{
	snprintf(why, why_len, "this tern-receiver was built without libguestfs; adapt is "
		 "not available (rebuild with libguestfs-dev installed)");
	return -EOPNOTSUPP;
}

int adapt_undo(const char *image, const char *undo_dir, enum adapt_accel accel, char *why,
	       size_t why_len)
{
	return adapt_run(image, NULL, NULL, NULL, why, why_len);
}

int adapt_unmark(const char *image, const char *undo_dir, enum adapt_accel accel, char *why,
		 size_t why_len)
{
	return adapt_run(image, NULL, NULL, NULL, why, why_len);
}

#endif

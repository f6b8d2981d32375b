// SPDX-License-Identifier: GPL-2.0-only
/* The checks before an adaptation changes anything (adapt-impl.h): inspection of the guest,
 * its file systems mounted read-only, its init, initramfs tool, GRUB and kernels. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "receiver/adapt-impl.h"
#include "receiver/guestconf.h"
#include "receiver/profile.h"

#if TERN_HAVE_GUESTFS

int mount_all(struct ad *a, bool ro)
{
	char b[768];

	for (size_t i = 0; i < a->nm; i++) {
		/* noatime: reading a file to save it, or a tool reading it, must not change
		 * what undo compares and restores. */
		int r = ro ? guestfs_mount_ro(a->g, a->m[i].dev, a->m[i].mp)
			   : guestfs_mount_options(a->g, "noatime", a->m[i].dev, a->m[i].mp);

		if (r < 0)
			return fail(a, -EIO, "cannot mount %s%s (%s): %s",
				    strcmp(a->m[i].mp, "/") == 0 ? "the root file system " : "",
				    a->m[i].dev, a->m[i].mp, gerr(a, b, sizeof(b)));
	}
	return 0;
}

static int mnt_cmp(const void *x, const void *y)
{
	const struct mnt *p = x, *q = y;
	size_t a = strlen(p->mp), b = strlen(q->mp);

	return a < b ? -1 : a > b;
}

static int load_mounts(struct ad *a, const char *root)
{
	char **mp = guestfs_inspect_get_mountpoints(a->g, root);
	size_t n = strv_len(mp) / 2;

	if (!mp)
		return gfail(a, "cannot read the guest's mount points");
	a->m = calloc(n ? n : 1, sizeof(*a->m));
	if (!a->m) {
		strv_free(mp);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		a->m[i].mp = mp[2 * i];
		a->m[i].dev = mp[2 * i + 1];
		if (!path_ok(a->m[i].mp) || strpbrk(a->m[i].dev, "\t\n")) {
			for (size_t j = 2 * i + 2; mp[j]; j++)
				free(mp[j]);
			free(mp);
			a->nm = i + 1;
			return fail(a, -EINVAL, "a mount point of the guest has a tab or newline");
		}
	}
	free(mp);
	a->nm = n;
	qsort(a->m, n, sizeof(*a->m), mnt_cmp);
	return 0;
}

static const char *first_file(struct ad *a, const char *const *paths)
{
	for (size_t i = 0; paths[i]; i++)
		if (is_file(a, paths[i]))
			return paths[i];
	return NULL;
}

static int check_kernels(struct ad *a)
{
	char **boot = guestfs_ls(a->g, "/boot");
	int r = 0;

	if (!boot)
		return gfail(a, "cannot list /boot");
	a->kernels = calloc(strv_len(boot) + 1, sizeof(char *));
	if (!a->kernels) {
		strv_free(boot);
		return -ENOMEM;
	}
	for (size_t i = 0; boot[i]; i++) {
		char moddir[512];

		if (strncmp(boot[i], "vmlinuz-", 8) != 0 || strpbrk(boot[i], " \t\n'\"\\$`;"))
			continue;
		snprintf(moddir, sizeof(moddir), "/lib/modules/%s", boot[i] + 8);
		if (guestfs_is_dir(a->g, moddir) <= 0) {
			ad_warn(a, "kernel /boot/%s has no %s; its initramfs is left as is", boot[i],
			     moddir);
			continue;
		}
		a->kernels[a->nkernels] = strdup(boot[i] + 8);
		if (!a->kernels[a->nkernels++]) {
			r = -ENOMEM;
			break;
		}
	}
	strv_free(boot);
	if (r < 0)
		return r;
	if (a->nkernels == 0)
		return fail(a, -ENOENT, "no kernel with its modules in /boot and /lib/modules");
	for (size_t k = 0; k < a->nkernels; k++) {
		char dep[512], builtin[512], *deps = NULL, *bi = NULL;

		snprintf(dep, sizeof(dep), "/lib/modules/%s/modules.dep", a->kernels[k]);
		snprintf(builtin, sizeof(builtin), "/lib/modules/%s/modules.builtin", a->kernels[k]);
		r = get_file(a, dep, &deps);
		if (r < 0)
			return fail(a, r, "cannot read %s", dep);
		if (get_file(a, builtin, &bi) < 0)
			bi = NULL;
		for (size_t d = 0; a->p->drivers[d] && r >= 0; d++)
			if (!gconf_modlist_has(deps, a->p->drivers[d]) &&
			    !(bi && gconf_modlist_has(bi, a->p->drivers[d])))
				r = fail(a, -ENOENT, "kernel %s has no %s driver, which profile %s "
					 "needs", a->kernels[k], a->p->drivers[d], a->p->name);
		free(deps);
		free(bi);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Inspection: exactly one Linux root, named by its file system's UUID. */
static int find_root(struct ad *a, json_object *os)
{
	char **roots, *type, *s;
	int r;

	roots = guestfs_inspect_os(a->g);
	if (!roots)
		return gfail(a, "cannot inspect the disk");
	if (strv_len(roots) != 1) {
		r = strv_len(roots) == 0
			    ? fail(a, -ENOENT, "no operating system found on the disk")
			    : fail(a, -EINVAL, "%zu operating systems found on the disk; tern "
				   "adapts a disk with one", strv_len(roots));
		strv_free(roots);
		return r;
	}
	snprintf(a->root_dev, sizeof(a->root_dev), "%s", roots[0]);
	strv_free(roots);
	type = guestfs_inspect_get_type(a->g, a->root_dev);
	if (!type || strcmp(type, "linux") != 0) {
		r = fail(a, -EINVAL, "the disk holds a %s system; tern adapts Linux guests",
			 type ? type : "unknown");
		free(type);
		return r;
	}
	free(type);
	if ((s = guestfs_inspect_get_product_name(a->g, a->root_dev))) {
		json_object_object_add(os, "product", json_object_new_string(s));
		free(s);
	}
	if ((s = guestfs_inspect_get_distro(a->g, a->root_dev))) {
		json_object_object_add(os, "distro", json_object_new_string(s));
		free(s);
	}
	json_object_object_add(os, "root", json_object_new_string(a->root_dev));
	s = guestfs_vfs_uuid(a->g, a->root_dev);
	if (!s || !s[0]) {
		free(s);
		return fail(a, -EINVAL, "the root file system %s has no UUID to name it by",
			    a->root_dev);
	}
	snprintf(a->root_uuid, sizeof(a->root_uuid), "%s", s);
	free(s);
	json_object_object_add(os, "root_uuid", json_object_new_string(a->root_uuid));
	return 0;
}

/* An LVM root keeps its /dev/mapper name on any platform, and grub-mkconfig names it so:
 * that is as good as a UUID. Sets a->root_alt to that name, or leaves it empty. */
static void lvm_root_name(struct ad *a)
{
	if (guestfs_is_lv(a->g, a->root_dev) > 0) {
		char *c = guestfs_lvm_canonical_lv_name(a->g, a->root_dev);
		char *vg = c && strncmp(c, "/dev/", 5) == 0 ? c + 5 : NULL;
		char *lv = vg ? strchr(vg, '/') : NULL;

		if (lv) {
			size_t j = snprintf(a->root_alt, sizeof(a->root_alt), "/dev/mapper/");

			*lv++ = '\0';
			/* device-mapper doubles the dashes inside VG and LV names */
			for (const char *q = vg; *q && j + 4 < sizeof(a->root_alt); q++) {
				a->root_alt[j++] = *q;
				if (*q == '-')
					a->root_alt[j++] = '-';
			}
			a->root_alt[j++] = '-';
			for (const char *q = lv; *q && j + 3 < sizeof(a->root_alt); q++) {
				a->root_alt[j++] = *q;
				if (*q == '-')
					a->root_alt[j++] = '-';
			}
			a->root_alt[j] = '\0';
		}
		free(c);
	}
}

/* On the mounted guest: systemd as init, an initramfs tool, GRUB's grub-mkconfig. */
static int check_tools(struct ad *a, json_object *os)
{
	static const char *const itools[] = { "/usr/sbin/update-initramfs",
		"/sbin/update-initramfs", NULL };
	static const char *const dracut[] = { "/usr/bin/dracut", "/usr/sbin/dracut", NULL };
	static const char *const mkconfig[] = { "/usr/sbin/grub-mkconfig", "/sbin/grub-mkconfig",
		"/usr/sbin/grub2-mkconfig", NULL };
	static const char *const units[] = { "/lib/systemd/system", "/usr/lib/systemd/system",
		NULL };
	char *init;
	int r;

	init = guestfs_realpath(a->g, "/sbin/init");
	if (!init || !strstr(init, "systemd")) {
		r = fail(a, -ENOTSUP, "unknown init system: /sbin/init is %s, not systemd",
			 init ? init : "missing");
		free(init);
		return r;
	}
	free(init);
	json_object_object_add(os, "init", json_object_new_string("systemd"));
	a->unitdir = NULL;
	for (size_t i = 0; units[i] && !a->unitdir; i++)
		if (guestfs_is_dir(a->g, units[i]) > 0)
			a->unitdir = units[i];
	if (!a->unitdir)
		return fail(a, -ENOTSUP, "systemd's unit directory is missing");
	a->itools = first_file(a, itools) != NULL;
	a->dracut = !a->itools && first_file(a, dracut) != NULL;
	if (!a->itools && !a->dracut)
		return fail(a, -ENOTSUP, "no initramfs tool: neither initramfs-tools "
			    "(update-initramfs) nor dracut is installed in the guest");
	json_object_object_add(os, "initramfs",
			       json_object_new_string(a->itools ? "initramfs-tools" : "dracut"));
	if (!first_file(a, mkconfig) || !is_file(a, "/boot/grub/grub.cfg"))
		return fail(a, -ENOTSUP, "no GRUB: tern regenerates the boot configuration with "
			    "the guest's grub-mkconfig and /boot/grub/grub.cfg");
	return 0;
}

int preflight(struct ad *a, json_object *os)
{
	int r;

	r = find_root(a, os);
	if (r < 0)
		return r;
	lvm_root_name(a);
	r = load_mounts(a, a->root_dev);
	if (r < 0)
		return r;
	r = mount_all(a, true);
	if (r < 0)
		return r;
	r = check_tools(a, os);
	if (r < 0)
		return r;
	r = check_kernels(a);
	if (r < 0)
		return r;
	{
		json_object *k = json_object_new_array();

		for (size_t i = 0; i < a->nkernels; i++)
			json_object_array_add(k, json_object_new_string(a->kernels[i]));
		json_object_object_add(os, "kernels", k);
	}
	return 0;
}

#endif /* TERN_HAVE_GUESTFS */

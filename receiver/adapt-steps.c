// SPDX-License-Identifier: GPL-2.0-only
/* The changes of an adaptation (adapt-impl.h), in the order adapt_run makes them: device
 * names, drivers, network, guest tools, caches, the marker, the UEFI fallback loader, and
 * the guest's own tools regenerating the initramfs and grub.cfg, each checked. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "receiver/adapt-impl.h"
#include "receiver/guestconf.h"
#include "receiver/profile.h"

#if TERN_HAVE_GUESTFS

/* ---- resolving device names ---- */

static int resolve(void *ctx, const char *dev, char **ret_spec)
{
	struct ad *a = ctx;
	char adev[64], *uuid, *spec;
	unsigned part;
	int disk;

	if (gconf_dev_parse(dev, &disk, &part) < 0)
		return -ENOENT;
	/* The image is one disk: the appliance's /dev/sda. */
	if (disk > 0) {
		ad_warn(a, "%s names a disk other than the one being adapted; left as is", dev);
		return -ENOENT;
	}
	snprintf(adev, sizeof(adev), part ? "/dev/sda%u" : "/dev/sda", part);
	uuid = guestfs_vfs_uuid(a->g, adev);
	if (!uuid || !uuid[0]) {
		free(uuid);
		ad_warn(a, "%s has no file system UUID to name it by; left as is", dev);
		return -ENOENT;
	}
	if (asprintf(&spec, "UUID=%s", uuid) < 0) {
		free(uuid);
		return -ENOMEM;
	}
	free(uuid);
	if (strlen(a->renamed) + strlen(dev) + strlen(spec) + 8 < sizeof(a->renamed))
		snprintf(a->renamed + strlen(a->renamed), sizeof(a->renamed) - strlen(a->renamed),
			 "%s%s -> %s", a->renamed[0] ? ", " : "", dev, spec);
	*ret_spec = spec;
	return 0;
}

/* ---- the steps ---- */

/* Rewrites one guest file with fn when it exists and changes. */
static int rewrite_file(struct ad *a, const char *path, const char *step, const char *why,
			int (*fn)(struct ad *a, const char *in, char **ret_out, unsigned *ret_n))
{
	char *in = NULL, *out = NULL, change[1400];
	unsigned n = 0;
	int r;

	r = get_file(a, path, &in);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	a->renamed[0] = '\0';
	r = fn(a, in, &out, &n);
	if (r < 0)
		goto cleanup;
	if (n == 0 || strcmp(in, out) == 0)
		goto cleanup;
	r = put_file(a, path, out, 0644);
	if (r < 0)
		goto cleanup;
	if (a->renamed[0])
		snprintf(change, sizeof(change), "%u change(s): %s", n, a->renamed);
	else
		snprintf(change, sizeof(change), "%u change(s)", n);
	report_step(a, step, path, change, why);
cleanup:
	free(in);
	free(out);
	return r;
}

static int fstab_fn(struct ad *a, const char *in, char **out, unsigned *n)
{
	return gconf_fstab_rewrite(in, resolve, a, out, n);
}

static int resume_fn(struct ad *a, const char *in, char **out, unsigned *n)
{
	return gconf_resume_rewrite(in, resolve, a, out, n);
}

static int grub_main_fn(struct ad *a, const char *in, char **out, unsigned *n)
{
	return gconf_grub_default_rewrite(in, resolve, a, true, true, out, n);
}

static int grub_d_fn(struct ad *a, const char *in, char **out, unsigned *n)
{
	return gconf_grub_default_rewrite(in, resolve, a, true, false, out, n);
}

static int ifaces_fn(struct ad *a, const char *in, char **out, unsigned *n)
{
	return gconf_interfaces_disable(in, out, n);
}

static int itools_conf_fn(struct ad *a, const char *in, char **out, unsigned *n)
{
	bool changed = false;
	int r = gconf_initramfs_conf(in, out, &changed);

	*n = changed;
	return r;
}

/* Calls fn for every regular file in dir whose name ends in suffix (NULL: any). */
static int each_file(struct ad *a, const char *dir, const char *suffix,
		     int (*fn)(struct ad *a, const char *path))
{
	char **names;
	int r = 0;

	if (guestfs_is_dir(a->g, dir) <= 0)
		return 0;
	names = guestfs_ls(a->g, dir);
	if (!names)
		return gfail(a, "cannot list %s", dir);
	for (size_t i = 0; names[i] && r >= 0; i++) {
		size_t n = strlen(names[i]), sn = suffix ? strlen(suffix) : 0;
		char path[4096];

		if (n < sn || (suffix && strcmp(names[i] + n - sn, suffix) != 0))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (guestfs_is_file(a->g, path) > 0 && guestfs_is_symlink(a->g, path) <= 0)
			r = fn(a, path);
	}
	strv_free(names);
	return r;
}

static int grub_d_one(struct ad *a, const char *path)
{
	return rewrite_file(a, path, "kernel command line", "root and resume by UUID, serial "
			    "console for the new platform", grub_d_fn);
}

static int ifaces_one(struct ad *a, const char *path)
{
	return rewrite_file(a, path, "network", "ifupdown stanzas name the old machine's "
			    "interfaces; DHCP on any Ethernet interface replaces them", ifaces_fn);
}

static int step_names(struct ad *a)
{
	int r;

	r = rewrite_file(a, "/etc/fstab", "fstab", "device names follow the bus, which the "
			 "new platform changes; UUIDs do not", fstab_fn);
	if (r >= 0)
		r = rewrite_file(a, "/etc/initramfs-tools/conf.d/resume", "resume", "the "
				 "resume device by UUID", resume_fn);
	if (r >= 0)
		r = rewrite_file(a, "/etc/default/grub", "kernel command line", "root and "
				 "resume by UUID (grub-mkconfig must not name the root by bus), "
				 "serial console for the new platform", grub_main_fn);
	if (r >= 0)
		r = each_file(a, "/etc/default/grub.d", ".cfg", grub_d_one);
	return r;
}

static int itools_conf_one(struct ad *a, const char *path)
{
	return rewrite_file(a, path, "initramfs drivers", "MODULES=dep would pick the drivers "
			    "of the machine doing the rebuild", itools_conf_fn);
}

static int step_drivers(struct ad *a)
{
	char comment[128], *in = NULL, *out = NULL;
	unsigned added = 0;
	int r;

	snprintf(comment, sizeof(comment), "added by tern: the %s platform's drivers",
		 a->p->name);
	if (a->dracut) {
		r = gconf_dracut_conf(a->p->drivers, comment, &out);
		if (r < 0)
			return r;
		r = make_dir(a, "/etc/dracut.conf.d");
		if (r >= 0)
			r = put_file(a, "/etc/dracut.conf.d/90-tern-adapt.conf", out, 0644);
		if (r >= 0)
			report_step(a, "initramfs drivers", "/etc/dracut.conf.d/90-tern-adapt.conf",
				    "add_drivers for the profile", "the new platform's storage and "
				    "network drivers must be in every initramfs");
		free(out);
		return r;
	}
	r = get_file(a, "/etc/initramfs-tools/modules", &in);
	if (r == -ENOENT) {
		in = strdup("");
		r = in ? 0 : -ENOMEM;
	}
	if (r < 0)
		return r;
	r = gconf_modules_add(in, a->p->drivers, comment, &out, &added);
	if (r >= 0 && added > 0) {
		r = put_file(a, "/etc/initramfs-tools/modules", out, 0644);
		if (r >= 0) {
			char change[64];

			snprintf(change, sizeof(change), "%u driver(s) listed", added);
			report_step(a, "initramfs drivers", "/etc/initramfs-tools/modules", change,
				    "the new platform's storage and network drivers must be in "
				    "every initramfs");
		}
	}
	free(in);
	free(out);
	if (r >= 0)
		r = rewrite_file(a, "/etc/initramfs-tools/initramfs.conf", "initramfs drivers",
				 "MODULES=dep would pick the drivers of the machine doing the "
				 "rebuild", itools_conf_fn);
	if (r >= 0)
		r = each_file(a, "/etc/initramfs-tools/conf.d", NULL, itools_conf_one);
	return r;
}

static int networkd_one(struct ad *a, const char *path)
{
	char *in = NULL;
	int r = get_file(a, path, &in);

	if (r < 0)
		return r == -ENOENT ? 0 : r;
	if (gconf_networkd_bound(in)) {
		r = remove_path(a, path);
		if (r >= 0)
			report_step(a, "network", path, "removed", "bound to the old machine's "
				    "interface name, MAC or a static address");
	}
	free(in);
	return r;
}

static int nm_one(struct ad *a, const char *path)
{
	char *in = NULL;
	int r = get_file(a, path, &in);

	if (r < 0)
		return r == -ENOENT ? 0 : r;
	if (gconf_nm_bound(in)) {
		r = remove_path(a, path);
		if (r >= 0)
			report_step(a, "network", path, "removed", "NetworkManager profile bound "
				    "to the old machine's interface, MAC or a static address");
	}
	free(in);
	return r;
}

static int netplan_one(struct ad *a, const char *path)
{
	char *in = NULL;
	int r = get_file(a, path, &in);

	if (r < 0)
		return r == -ENOENT ? 0 : r;
	if (gconf_netplan_bound(in)) {
		r = remove_path(a, path);
		if (r >= 0)
			report_step(a, "network", path, "removed", "netplan configuration of the "
				    "old machine's interfaces");
	}
	free(in);
	return r;
}

static const char networkd_dhcp[] =
	"# Added by tern (adaptation): DHCP on any Ethernet interface, whatever the new\n"
	"# platform names it. Undone by tern-receiver adapt --undo.\n"
	"[Match]\nType=ether\n\n[Network]\nDHCP=yes\n";

static const char nm_dhcp[] =
	"# Added by tern (adaptation): DHCP on any Ethernet interface.\n"
	"[connection]\nid=tern-dhcp\nuuid=4f3c2e1d-7a6b-4c5d-9e8f-0a1b2c3d4e5f\n"
	"type=ethernet\nautoconnect=true\nautoconnect-priority=-10\n\n"
	"[ethernet]\n\n[ipv4]\nmethod=auto\n\n[ipv6]\nmethod=auto\n";

static const char netplan_dhcp[] =
	"# Added by tern (adaptation): DHCP on any Ethernet interface.\n"
	"network:\n  version: 2\n  ethernets:\n    tern-any:\n      match:\n"
	"        name: \"e*\"\n      dhcp4: true\n";

static int enable_unit(struct ad *a, const char *unit, const char *wants)
{
	char src[256], dst[512];

	snprintf(src, sizeof(src), "%s/%s", a->unitdir, unit);
	if (!is_file(a, src))
		return 0;
	snprintf(dst, sizeof(dst), "/etc/systemd/system/%s/%s", wants, unit);
	if (guestfs_exists(a->g, dst) > 0)
		return 0;
	return put_link(a, src, dst);
}

static int step_network(struct ad *a)
{
	const char *rules = "/etc/udev/rules.d/70-persistent-net.rules";
	bool nm = guestfs_exists(a->g, "/etc/systemd/system/multi-user.target.wants/"
				 "NetworkManager.service") > 0;
	bool netplan = !nm && is_file(a, "/usr/sbin/netplan");
	int r = 0;

	if (is_file(a, rules)) {
		r = remove_path(a, rules);
		if (r < 0)
			return r;
		report_step(a, "network", rules, "removed", "names interfaces after the old "
			    "machine's MAC addresses");
	}
	r = rewrite_file(a, "/etc/network/interfaces", "network", "ifupdown stanzas name the "
			 "old machine's interfaces; DHCP on any Ethernet interface replaces them",
			 ifaces_fn);
	if (r >= 0)
		r = each_file(a, "/etc/network/interfaces.d", NULL, ifaces_one);
	if (r >= 0)
		r = each_file(a, "/etc/systemd/network", ".network", networkd_one);
	if (r >= 0)
		r = each_file(a, "/etc/NetworkManager/system-connections", NULL, nm_one);
	if (r >= 0)
		r = each_file(a, "/etc/netplan", ".yaml", netplan_one);
	if (r < 0)
		return r;
	if (nm) {
		const char *p = "/etc/NetworkManager/system-connections/tern-dhcp.nmconnection";

		r = make_dir(a, "/etc/NetworkManager/system-connections");
		if (r >= 0)
			r = put_file(a, p, nm_dhcp, 0600);
		if (r >= 0)
			report_step(a, "network", p, "added", "NetworkManager runs the network: "
				    "DHCP on any Ethernet interface");
		return r;
	}
	if (netplan) {
		const char *p = "/etc/netplan/90-tern-dhcp.yaml";

		r = make_dir(a, "/etc/netplan");
		if (r >= 0)
			r = put_file(a, p, netplan_dhcp, 0600);
		if (r >= 0)
			report_step(a, "network", p, "added", "netplan runs the network: DHCP on "
				    "any Ethernet interface");
		return r;
	}
	r = make_dir(a, "/etc/systemd/network");
	if (r >= 0)
		r = put_file(a, "/etc/systemd/network/80-tern-dhcp.network", networkd_dhcp, 0644);
	if (r >= 0)
		r = enable_unit(a, "systemd-networkd.service", "multi-user.target.wants");
	if (r >= 0)
		r = enable_unit(a, "systemd-networkd.socket", "sockets.target.wants");
	if (r >= 0)
		r = enable_unit(a, "systemd-networkd-wait-online.service",
				"network-online.target.wants");
	if (r >= 0)
		report_step(a, "network", "/etc/systemd/network/80-tern-dhcp.network",
			    "added, systemd-networkd enabled", "systemd-networkd is part of "
			    "systemd on every such guest and matches any Ethernet interface by "
			    "type, whatever the new platform names it");
	return r;
}

static int step_tools(struct ad *a)
{
	for (size_t i = 0; a->p->foreign_units[i]; i++) {
		const char *u = a->p->foreign_units[i];
		char unit[512], mask[512], *t;
		bool masked;
		int r;

		snprintf(unit, sizeof(unit), "%s/%s", a->unitdir, u);
		if (!is_file(a, unit))
			continue;
		snprintf(mask, sizeof(mask), "/etc/systemd/system/%s", u);
		t = guestfs_is_symlink(a->g, mask) > 0 ? guestfs_readlink(a->g, mask) : NULL;
		masked = t && strcmp(t, "/dev/null") == 0;
		free(t);
		if (masked)
			continue;
		r = put_link(a, "/dev/null", mask);
		if (r < 0)
			return r;
		report_step(a, "guest tools", mask, "masked", "a guest tool of another "
			    "platform, which waits for or fails without its hypervisor");
	}
	return 0;
}

static int step_caches(struct ad *a)
{
	static const char *const paths[] = { "/etc/lvm/devices/system.devices",
		"/etc/blkid.tab", "/etc/blkid/blkid.tab", NULL };

	for (size_t i = 0; paths[i]; i++) {
		int r;

		if (!is_file(a, paths[i]))
			continue;
		r = remove_path(a, paths[i]);
		if (r < 0)
			return r;
		report_step(a, "device caches", paths[i], "removed", i == 0
			    ? "the LVM devices file lists the old disks' IDs; LVM would ignore "
			      "the new ones"
			    : "a blkid cache of the old machine's devices");
	}
	return 0;
}

static const char marker_script[] =
	"#!/bin/sh\n"
	"# Added by tern's test launch (tern-receiver adapt --marker): prints the guest's\n"
	"# first IPv4 address on the console once DHCP gave it one. Undone with the rest.\n"
	"i=0\n"
	"while [ $i -lt 300 ]; do\n"
	"\tfor a in $(hostname -I 2>/dev/null); do\n"
	"\t\tcase $a in *:*) continue ;; esac\n"
	"\t\tfor t in /dev/ttyS0 /dev/console; do\n"
	"\t\t\techo \"TERN-BOOT-OK $a\" >$t 2>/dev/null\n"
	"\t\tdone\n"
	"\t\texit 0\n"
	"\tdone\n"
	"\tsleep 1\n"
	"\ti=$((i + 1))\n"
	"done\n"
	"echo TERN-BOOT-NOADDR >/dev/ttyS0 2>/dev/null\n"
	"exit 1\n";

static const char marker_unit[] =
	"# Added by tern's test launch: reports the DHCP address on the console.\n"
	"[Unit]\n"
	"Description=tern test-launch marker\n"
	"After=multi-user.target network.target\n"
	"\n[Service]\n"
	"Type=oneshot\n"
	"ExecStart=/usr/local/sbin/tern-boot-marker\n"
	"\n[Install]\n"
	"WantedBy=multi-user.target\n";

/* What step_marker adds (adapt_unmark removes them): the script, the unit, its link. */
const char *const marker_paths[3] = {
	"/usr/local/sbin/tern-boot-marker",
	"/etc/systemd/system/tern-boot-marker.service",
	"/etc/systemd/system/multi-user.target.wants/tern-boot-marker.service",
};

static int step_marker(struct ad *a)
{
	const char *unit = marker_paths[1];
	int r;

	r = make_dir(a, "/usr/local/sbin");
	if (r >= 0)
		r = put_file(a, marker_paths[0], marker_script, 0755);
	if (r >= 0)
		r = put_file(a, unit, marker_unit, 0644);
	if (r >= 0)
		r = put_link(a, unit, marker_paths[2]);
	if (r >= 0)
		report_step(a, "test-launch marker", unit, "added and enabled", "prints "
			    "TERN-BOOT-OK and the DHCP address on the console, the boot proof");
	return r;
}

/* The EFI system partition's mount point: a vfat file system mounted at /boot/efi or
 * /efi, or NULL. */
static const char *esp_mount(struct ad *a)
{
	for (size_t i = 0; i < a->nm; i++) {
		char *t;
		bool vfat;

		if (strcmp(a->m[i].mp, "/boot/efi") != 0 && strcmp(a->m[i].mp, "/efi") != 0)
			continue;
		t = guestfs_vfs_type(a->g, a->m[i].dev);
		vfat = t && strcmp(t, "vfat") == 0;
		free(t);
		if (vfat)
			return a->m[i].mp;
	}
	return NULL;
}

/* Copies src to dst inside the guest after recording dst. */
static int copy_in_guest(struct ad *a, const char *src, const char *dst)
{
	int r = save_path(a, dst);

	if (r < 0)
		return r;
	if (guestfs_cp(a->g, src, dst) < 0)
		return gfail(a, "cannot copy %s to %s", src, dst);
	return 0;
}

static int step_efi(struct ad *a)
{
	static const char *const vendors[] = { "debian", "ubuntu", "fedora", "centos", "redhat",
		"rocky", "almalinux", "opensuse", "sles", NULL };
	const char *mp = esp_mount(a);
	char efi[512], boot[1024], fallback[1024], *cs;
	int r;

	if (!mp)
		return 0;
	snprintf(efi, sizeof(efi), "%s/EFI", mp);
	cs = guestfs_case_sensitive_path(a->g, efi);
	if (!cs || guestfs_is_dir(a->g, cs) <= 0) {
		free(cs);
		ad_warn(a, "the EFI system partition at %s has no EFI directory", mp);
		return 0;
	}
	snprintf(efi, sizeof(efi), "%s", cs);
	free(cs);
	snprintf(fallback, sizeof(fallback), "%s/BOOT/BOOTX64.EFI", efi);
	cs = guestfs_case_sensitive_path(a->g, fallback);
	if (cs && is_file(a, cs)) {
		free(cs);
		return 0;
	}
	free(cs);
	for (size_t v = 0; vendors[v]; v++) {
		char dir[1024], shim[1100], grub[1100], mm[1100];
		bool has_shim, has_grub;

		snprintf(dir, sizeof(dir), "%s/%s", efi, vendors[v]);
		cs = guestfs_case_sensitive_path(a->g, dir);
		if (!cs || guestfs_is_dir(a->g, cs) <= 0) {
			free(cs);
			continue;
		}
		snprintf(dir, sizeof(dir), "%s", cs);
		free(cs);
		snprintf(shim, sizeof(shim), "%s/shimx64.efi", dir);
		snprintf(grub, sizeof(grub), "%s/grubx64.efi", dir);
		snprintf(mm, sizeof(mm), "%s/mmx64.efi", dir);
		has_shim = is_file(a, shim);
		has_grub = is_file(a, grub);
		if (!has_shim && !has_grub)
			continue;
		/* vfat: an existing \EFI\Boot is the same directory as \EFI\BOOT. */
		snprintf(boot, sizeof(boot), "%s/BOOT", efi);
		cs = guestfs_case_sensitive_path(a->g, boot);
		if (!cs)
			return gfail(a, "cannot resolve %s", boot);
		snprintf(boot, sizeof(boot), "%.512s", cs);
		free(cs);
		r = make_dir(a, boot);
		if (r < 0)
			return r;
		snprintf(fallback, sizeof(fallback), "%.512s/BOOTX64.EFI", boot);
		/* shim loads grubx64.efi (and mmx64.efi) from its own directory. */
		r = copy_in_guest(a, has_shim ? shim : grub, fallback);
		if (r >= 0 && has_shim) {
			char dst[1100];

			snprintf(dst, sizeof(dst), "%s/grubx64.efi", boot);
			r = copy_in_guest(a, grub, dst);
			if (r >= 0 && is_file(a, mm)) {
				snprintf(dst, sizeof(dst), "%s/mmx64.efi", boot);
				r = copy_in_guest(a, mm, dst);
			}
		}
		if (r < 0)
			return r;
		report_step(a, "uefi fallback", fallback, has_shim ? "copied from shimx64.efi "
			    "(with grubx64.efi)" : "copied from grubx64.efi", "a new machine's "
			    "NVRAM has no boot entry: firmware boots the removable-media path");
		return 0;
	}
	ad_warn(a, "no distribution boot loader under %s to copy to \\EFI\\BOOT\\BOOTX64.EFI", efi);
	return 0;
}

/* The initramfs file of kernel ver, or NULL. */
static const char *initrd_of(struct ad *a, const char *ver, char *buf, size_t len)
{
	static const char *const pre[] = { "/boot/initrd.img-", "/boot/initramfs-",
		"/boot/initrd-", NULL };
	static const char *const suf[] = { "", ".img", "" };

	for (size_t i = 0; pre[i]; i++) {
		snprintf(buf, len, "%s%s%s", pre[i], ver, suf[i]);
		if (is_file(a, buf))
			return buf;
	}
	return NULL;
}

static int check_initramfs(struct ad *a)
{
	int r = 0;

	for (size_t k = 0; k < a->nkernels && r >= 0; k++) {
		char img[512], cmd[700], builtin[512], *list = NULL, *bi = NULL;
		json_object *c, *drv;

		if (!initrd_of(a, a->kernels[k], img, sizeof(img)))
			return fail(a, -ENOENT, "kernel %s has no initramfs after the rebuild",
				    a->kernels[k]);
		snprintf(cmd, sizeof(cmd), "%s '%s'", a->itools ? "lsinitramfs" : "lsinitrd", img);
		r = guest_sh(a, cmd, &list);
		if (r < 0)
			return r;
		snprintf(builtin, sizeof(builtin), "/lib/modules/%s/modules.builtin", a->kernels[k]);
		if (get_file(a, builtin, &bi) < 0)
			bi = NULL;
		c = json_object_new_object();
		drv = json_object_new_array();
		json_object_object_add(c, "check", json_object_new_string("initramfs"));
		json_object_object_add(c, "path", json_object_new_string(img));
		for (size_t d = 0; a->p->drivers[d] && r >= 0; d++) {
			const char *m = a->p->drivers[d];

			if (gconf_listing_has_module(list, m) || (bi && gconf_modlist_has(bi, m)))
				json_object_array_add(drv, json_object_new_string(m));
			else
				r = fail(a, -ENOENT, "%s lacks the %s driver after the rebuild",
					 img, m);
		}
		json_object_object_add(c, "drivers", drv);
		json_object_array_add(a->checks, c);
		free(list);
		free(bi);
	}
	return r;
}

static int step_regenerate(struct ad *a)
{
	char *cfg = NULL, *why = NULL;
	json_object *c;
	int r;

	/* Everything the tools may rewrite or create, saved first; their temporary
	 * directories come and go in /var/tmp and /tmp, whose times undo puts back. */
	r = save_path(a, "/var/tmp");
	if (r >= 0)
		r = save_path(a, "/tmp");
	if (r >= 0)
		r = save_tree(a, "/boot");
	if (r >= 0)
		r = save_tree(a, "/var/lib/initramfs-tools");
	if (r < 0)
		return r;
	log_info("rebuilding the initramfs of %zu kernel(s) with %s", a->nkernels,
		 a->itools ? "update-initramfs" : "dracut");
	if (a->itools) {
		r = guest_sh(a, "update-initramfs -u -k all", NULL);
	} else {
		for (size_t k = 0; k < a->nkernels && r >= 0; k++) {
			char cmd[600], img[512];

			if (!initrd_of(a, a->kernels[k], img, sizeof(img)))
				snprintf(img, sizeof(img), "/boot/initramfs-%s.img", a->kernels[k]);
			snprintf(cmd, sizeof(cmd), "dracut -f '%s' '%s'", img, a->kernels[k]);
			r = guest_sh(a, cmd, NULL);
		}
	}
	if (r < 0)
		return r;
	report_step(a, "initramfs", "/boot", a->itools ? "update-initramfs -u -k all"
		    : "dracut -f for every kernel", "the initramfs must hold the new platform's "
		    "drivers to find the root disk");
	r = check_initramfs(a);
	if (r < 0)
		return r;
	log_info("regenerating the GRUB configuration");
	r = guest_sh(a, is_file(a, "/usr/sbin/update-grub") ? "update-grub"
		     : "grub-mkconfig -o /boot/grub/grub.cfg", NULL);
	if (r < 0)
		return r;
	report_step(a, "bootloader", "/boot/grub/grub.cfg", "regenerated with the guest's "
		    "grub-mkconfig", "to take the kernel command line above");
	r = get_file(a, "/boot/grub/grub.cfg", &cfg);
	if (r < 0)
		return fail(a, r, "cannot read the regenerated /boot/grub/grub.cfg");
	{
		char spec[200];

		snprintf(spec, sizeof(spec), "UUID=%s", a->root_uuid);
		r = gconf_grubcfg_check(cfg, spec, true, &why);
	}
	if (r == -EBADMSG && a->root_alt[0]) {
		free(why);
		why = NULL;
		r = gconf_grubcfg_check(cfg, a->root_alt, true, &why);
	}
	free(cfg);
	if (r < 0) {
		r = fail(a, r, "the regenerated grub.cfg is wrong: %s", why ? why : "?");
		free(why);
		return r;
	}
	c = json_object_new_object();
	json_object_object_add(c, "check", json_object_new_string("grub.cfg"));
	json_object_object_add(c, "entries", json_object_new_int(r));
	json_object_object_add(c, "root", json_object_new_string(a->root_uuid));
	json_object_array_add(a->checks, c);
	return 0;
}

int adapt_steps(struct ad *a)
{
	int r;

	r = step_names(a);
	if (r >= 0)
		r = step_drivers(a);
	if (r >= 0)
		r = step_network(a);
	if (r >= 0)
		r = step_tools(a);
	if (r >= 0)
		r = step_caches(a);
	if (r >= 0 && a->o->marker)
		r = step_marker(a);
	if (r >= 0)
		r = step_efi(a);
	if (r >= 0)
		r = step_regenerate(a);
	return r;
}

#endif /* TERN_HAVE_GUESTFS */

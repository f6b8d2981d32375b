// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests for the adaptation profiles (receiver/profile.c) and the text rewrites and
 * checks of OS adaptation (receiver/guestconf.c), on the files an old VMware guest has. */
#include "receiver/guestconf.h"
#include "receiver/profile.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "helpers.h"

/* A resolver as adapt-steps.c's, over a fixed table: sda1 is the root, sda2 the swap. */
static int resolve(void *ctx, const char *dev, char **ret_spec)
{
	unsigned *calls = ctx, part;
	int disk;

	if (calls)
		(*calls)++;
	if (gconf_dev_parse(dev, &disk, &part) < 0 || disk > 0)
		return -ENOENT;
	if (part == 1)
		*ret_spec = strdup("UUID=1111-root");
	else if (part == 2)
		*ret_spec = strdup("UUID=2222-swap");
	else
		return -ENOENT;
	return *ret_spec ? 0 : -ENOMEM;
}

START_TEST(test_prof_table_lookup)
{
	const struct prof *p;
	size_t n;

	ck_assert_ptr_null(prof_find("vmware"));
	ck_assert_ptr_null(prof_find(""));
	ck_assert_ptr_null(prof_find(NULL));
	ck_assert_ptr_null(prof_find("KVM"));
	p = prof_find("aws");
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(p->boot_bus, "nvme");
	ck_assert_str_eq(p->drivers[0], "nvme");
	ck_assert_str_eq(prof_find("kvm")->boot_bus, "virtio-blk-pci");
	ck_assert_str_eq(prof_find("gcp")->boot_bus, "scsi-hd");
	/* Hyper-V storage cannot be emulated: azure gets the initramfs check only. */
	ck_assert_ptr_null(prof_find("azure")->boot_bus);
	p = prof_all(&n);
	ck_assert_uint_eq(n, 4);
	for (size_t i = 0; i < n; i++) {
		size_t d = 0;

		ck_assert_ptr_eq(prof_find(p[i].name), &p[i]);
		ck_assert_ptr_nonnull(strstr(prof_names(), p[i].name));
		ck_assert_ptr_nonnull(p[i].disk_names);
		while (p[i].drivers[d]) {
			/* module names, never file names */
			ck_assert_ptr_null(strchr(p[i].drivers[d], '-'));
			d++;
		}
		ck_assert_uint_ge(d, 3);
		/* every profile masks VMware's tools */
		ck_assert_str_eq(p[i].foreign_units[0], "open-vm-tools.service");
	}
}
END_TEST

static bool has(const char *const *v, const char *s)
{
	for (size_t i = 0; v[i]; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	return false;
}

START_TEST(test_prof_drivers_match_platforms)
{
	ck_assert(has(prof_find("kvm")->drivers, "virtio_blk"));
	ck_assert(has(prof_find("kvm")->drivers, "virtio_pci"));
	ck_assert(has(prof_find("aws")->drivers, "ena"));
	ck_assert(has(prof_find("aws")->drivers, "nvme_core"));
	ck_assert(has(prof_find("azure")->drivers, "hv_storvsc"));
	ck_assert(has(prof_find("azure")->drivers, "hv_vmbus"));
	ck_assert(has(prof_find("gcp")->drivers, "gve"));
	ck_assert(has(prof_find("gcp")->drivers, "virtio_scsi"));
	/* Azure keeps Hyper-V's daemons; the others mask them. */
	ck_assert(!has(prof_find("azure")->foreign_units, "hv-kvp-daemon.service"));
	ck_assert(has(prof_find("aws")->foreign_units, "hv-kvp-daemon.service"));
}
END_TEST

START_TEST(test_gconf_dev_parse_bus_names)
{
	int disk;
	unsigned part;

	ck_assert_int_eq(gconf_dev_parse("/dev/sda1", &disk, &part), 0);
	ck_assert_int_eq(disk, 0);
	ck_assert_uint_eq(part, 1);
	ck_assert_int_eq(gconf_dev_parse("/dev/vdb", &disk, &part), 0);
	ck_assert_int_eq(disk, 1);
	ck_assert_uint_eq(part, 0);
	ck_assert_int_eq(gconf_dev_parse("/dev/sdaa12", &disk, &part), 0);
	ck_assert_int_eq(disk, 26);
	ck_assert_uint_eq(part, 12);
	ck_assert_int_eq(gconf_dev_parse("/dev/xvda2", &disk, &part), 0);
	ck_assert_int_eq(disk, 0);
	ck_assert_int_eq(gconf_dev_parse("/dev/hdc5", &disk, &part), 0);
	ck_assert_int_eq(disk, 2);
	ck_assert_int_eq(gconf_dev_parse("/dev/nvme0n1p3", &disk, &part), 0);
	ck_assert_int_eq(disk, 0);
	ck_assert_uint_eq(part, 3);
	ck_assert_int_eq(gconf_dev_parse("/dev/nvme1n1", &disk, &part), 0);
	ck_assert_int_eq(disk, 1);
	ck_assert_uint_eq(part, 0);
	ck_assert_int_eq(gconf_dev_parse("/dev/disk/by-id/ata-VMware_Virtual_SATA-part2",
					 &disk, &part), 0);
	ck_assert_int_eq(disk, -1);
	ck_assert_uint_eq(part, 2);
	/* names that survive a move, or are not disks */
	ck_assert_int_eq(gconf_dev_parse("UUID=1234", &disk, &part), -ENOENT);
	ck_assert_int_eq(gconf_dev_parse("LABEL=root", &disk, &part), -ENOENT);
	ck_assert_int_eq(gconf_dev_parse("/dev/mapper/vg-root", &disk, &part), -ENOENT);
	ck_assert_int_eq(gconf_dev_parse("/dev/md0", &disk, &part), -ENOENT);
	ck_assert_int_eq(gconf_dev_parse("/dev/sd", &disk, &part), -ENOENT);
	ck_assert_int_eq(gconf_dev_parse("/dev/sda0", &disk, &part), -ENOENT);
	ck_assert_int_eq(gconf_dev_parse("/dev/sda1x", &disk, &part), -ENOENT);
	ck_assert_int_eq(gconf_dev_parse("/dev/nvme0", &disk, &part), -ENOENT);
	ck_assert_int_eq(gconf_dev_parse("/dev/nvme0n1p", &disk, &part), -ENOENT);
	ck_assert_int_eq(gconf_dev_parse("/dev/disk/by-uuid/1234", &disk, &part), -ENOENT);
	ck_assert_int_eq(gconf_dev_parse("tmpfs", &disk, &part), -ENOENT);
}
END_TEST

START_TEST(test_gconf_fstab_rewrite_to_uuid)
{
	const char *in = "# /etc/fstab of a VMware guest\n"
			 "/dev/sda1\t/\text4\terrors=remount-ro 0 1\n"
			 "  /dev/sda2   none  swap sw 0 0\n"
			 "UUID=abcd /data xfs defaults 0 2\n"
			 "/dev/sdb1 /backup ext4 nofail 0 2\n"
			 "#/dev/sda1 /old ext4 defaults 0 0\n"
			 "proc /proc proc defaults 0 0\n"
			 "/dev/mapper/vg-home /home ext4 defaults 0 2\n"
			 "\n"
			 "/dev/sr0 /media/cdrom0 udf,iso9660 user,noauto 0 0";
	char *out = NULL;
	unsigned changed = 0;

	ck_assert_int_eq(gconf_fstab_rewrite(in, resolve, NULL, &out, &changed), 0);
	ck_assert_uint_eq(changed, 2);
	ck_assert_str_eq(out, "# /etc/fstab of a VMware guest\n"
			      "UUID=1111-root\t/\text4\terrors=remount-ro 0 1\n"
			      "  UUID=2222-swap   none  swap sw 0 0\n"
			      "UUID=abcd /data xfs defaults 0 2\n"
			      "/dev/sdb1 /backup ext4 nofail 0 2\n"
			      "#/dev/sda1 /old ext4 defaults 0 0\n"
			      "proc /proc proc defaults 0 0\n"
			      "/dev/mapper/vg-home /home ext4 defaults 0 2\n"
			      "\n"
			      "/dev/sr0 /media/cdrom0 udf,iso9660 user,noauto 0 0");
	free(out);
}
END_TEST

START_TEST(test_gconf_fstab_already_uuid_unchanged)
{
	const char *in = "UUID=1111-root / ext4 defaults 0 1\n";
	char *out = NULL;
	unsigned changed = 9;

	ck_assert_int_eq(gconf_fstab_rewrite(in, resolve, NULL, &out, &changed), 0);
	ck_assert_uint_eq(changed, 0);
	ck_assert_str_eq(out, in);
	free(out);
}
END_TEST

START_TEST(test_gconf_cmdline_uuid_and_console)
{
	char *out = NULL;
	unsigned changed = 0;

	ck_assert_int_eq(gconf_cmdline_rewrite("root=/dev/sda1 ro quiet resume=/dev/sda2 "
					       "console=tty1", resolve, NULL, true, &out,
					       &changed), 0);
	ck_assert_str_eq(out, "root=UUID=1111-root ro quiet resume=UUID=2222-swap "
			      GCONF_CONSOLE);
	ck_assert_uint_gt(changed, 0);
	free(out);
	/* A name-to-name rewrite is not what it does: vda is resolved too, by UUID. */
	ck_assert_int_eq(gconf_cmdline_rewrite("root=/dev/vda1", resolve, NULL, false, &out,
					       &changed), 0);
	ck_assert_str_eq(out, "root=UUID=1111-root");
	free(out);
	/* without the console, console words stay; unknown names stay */
	ck_assert_int_eq(gconf_cmdline_rewrite("root=LABEL=r console=ttyS1 resume=/dev/sdb3",
					       resolve, NULL, false, &out, &changed), 0);
	ck_assert_str_eq(out, "root=LABEL=r console=ttyS1 resume=/dev/sdb3");
	ck_assert_uint_eq(changed, 0);
	free(out);
	/* adding the console to a line that already ends with it is no change */
	ck_assert_int_eq(gconf_cmdline_rewrite("quiet " GCONF_CONSOLE, resolve, NULL, true,
					       &out, &changed), 0);
	ck_assert_str_eq(out, "quiet " GCONF_CONSOLE);
	ck_assert_uint_eq(changed, 0);
	free(out);
	ck_assert_int_eq(gconf_cmdline_rewrite("", resolve, NULL, true, &out, &changed), 0);
	ck_assert_str_eq(out, GCONF_CONSOLE);
	ck_assert_uint_eq(changed, 1);
	free(out);
}
END_TEST

START_TEST(test_gconf_grub_default_rewrite)
{
	const char *in = "GRUB_DEFAULT=0\n"
			 "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n"
			 "GRUB_CMDLINE_LINUX=\"resume=/dev/sda2 console=tty0\"\n"
			 "GRUB_DISABLE_LINUX_UUID=true\n"
			 "#GRUB_DISABLE_LINUX_UUID=true\n"
			 "GRUB_DISABLE_OS_PROBER=true\n";
	char *out = NULL;
	unsigned changed = 0;

	ck_assert_int_eq(gconf_grub_default_rewrite(in, resolve, NULL, true, true, &out,
						    &changed), 0);
	ck_assert_str_eq(out, "GRUB_DEFAULT=0\n"
			      "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n"
			      "GRUB_CMDLINE_LINUX=\"resume=UUID=2222-swap " GCONF_CONSOLE "\"\n"
			      "#GRUB_DISABLE_LINUX_UUID=true  # disabled by tern: the kernel "
			      "must find its root by UUID\n"
			      "#GRUB_DISABLE_LINUX_UUID=true\n"
			      "GRUB_DISABLE_OS_PROBER=true\n");
	ck_assert_uint_ge(changed, 2);
	free(out);
}
END_TEST

START_TEST(test_gconf_grub_default_quotes_and_missing)
{
	char *out = NULL;
	unsigned changed = 0;

	ck_assert_int_eq(gconf_grub_default_rewrite("export GRUB_CMDLINE_LINUX='root=/dev/sda1'"
						    " # old\nGRUB_DISABLE_LINUX_UUID=\"false\"\n",
						    resolve, NULL, false, true, &out, &changed), 0);
	ck_assert_str_eq(out, "export GRUB_CMDLINE_LINUX='root=UUID=1111-root' # old\n"
			      "GRUB_DISABLE_LINUX_UUID=\"false\"\n");
	free(out);
	ck_assert_int_eq(gconf_grub_default_rewrite("GRUB_TIMEOUT=5", resolve, NULL, true, true,
						    &out, &changed), 0);
	ck_assert_str_eq(out, "GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX=\"" GCONF_CONSOLE "\"\n");
	free(out);
	/* a grub.d fragment without the variable is left alone */
	ck_assert_int_eq(gconf_grub_default_rewrite("GRUB_TIMEOUT=5\n", resolve, NULL, true,
						    false, &out, &changed), 0);
	ck_assert_str_eq(out, "GRUB_TIMEOUT=5\n");
	ck_assert_uint_eq(changed, 0);
	free(out);
	/* unquoted value */
	ck_assert_int_eq(gconf_grub_default_rewrite("GRUB_CMDLINE_LINUX=root=/dev/sda1\n",
						    resolve, NULL, true, true, &out, &changed), 0);
	ck_assert_str_eq(out, "GRUB_CMDLINE_LINUX=\"root=UUID=1111-root " GCONF_CONSOLE "\"\n");
	free(out);
}
END_TEST

START_TEST(test_gconf_resume_rewrite)
{
	char *out = NULL;
	unsigned changed = 0;

	ck_assert_int_eq(gconf_resume_rewrite("# swap\nRESUME=/dev/sda2\n", resolve, NULL, &out,
					      &changed), 0);
	ck_assert_str_eq(out, "# swap\nRESUME=UUID=2222-swap\n");
	ck_assert_uint_eq(changed, 1);
	free(out);
	ck_assert_int_eq(gconf_resume_rewrite("RESUME=none\n", resolve, NULL, &out, &changed), 0);
	ck_assert_str_eq(out, "RESUME=none\n");
	ck_assert_uint_eq(changed, 0);
	free(out);
}
END_TEST

START_TEST(test_gconf_grubcfg_check)
{
	const char *good = "menuentry 'Debian' {\n"
			   "\tlinux\t/boot/vmlinuz-6.1.0-27-amd64 root=UUID=1111-root ro "
			   GCONF_CONSOLE "\n"
			   "\tinitrd\t/boot/initrd.img-6.1.0-27-amd64\n}\n"
			   "submenu 'Advanced' {\n menuentry 'rec' {\n"
			   "\t\tlinux /boot/vmlinuz-6.1.0-27-amd64 root=UUID=1111-root ro single "
			   GCONF_CONSOLE "\n }\n}\n";
	const char *byname = "\tlinux /boot/vmlinuz root=/dev/vda1 ro " GCONF_CONSOLE "\n";
	const char *late = "\tlinux /boot/vmlinuz root=UUID=1111-root ro root=/dev/sda1 "
			   GCONF_CONSOLE "\n";
	char *why = NULL;

	ck_assert_int_eq(gconf_grubcfg_check(good, "UUID=1111-root", true, &why), 2);
	/* a name-to-name rewrite (sda -> vda) is refused */
	ck_assert_int_eq(gconf_grubcfg_check(byname, "UUID=1111-root", false, &why), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(why, "root=/dev/vda1"));
	free(why);
	/* the kernel takes the last root= */
	ck_assert_int_eq(gconf_grubcfg_check(late, "UUID=1111-root", false, &why), -EBADMSG);
	free(why);
	ck_assert_int_eq(gconf_grubcfg_check("\tlinux /vmlinuz root=UUID=1111-root ro\n",
					     "UUID=1111-root", true, &why), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(why, "console"));
	free(why);
	ck_assert_int_eq(gconf_grubcfg_check("set default=0\n", "UUID=1111-root", true, &why),
			 -ENOENT);
	free(why);
	/* "linuxfoo" and "initrd" are not entries; linux16 is */
	ck_assert_int_eq(gconf_grubcfg_check("linuxfoo x\nlinux16 /v root=/dev/mapper/vg-r\n",
					     "/dev/mapper/vg-r", false, &why), 1);
}
END_TEST

START_TEST(test_gconf_modules_add)
{
	const char *const drivers[] = { "nvme", "nvme_core", "ena", NULL };
	char *out = NULL;
	unsigned added = 0;

	ck_assert_int_eq(gconf_modules_add("# modules\nahci\nsd_mod\nnvme-core  # old\n", drivers,
					   "added by tern", &out, &added), 0);
	ck_assert_uint_eq(added, 2);
	ck_assert_str_eq(out, "# modules\nahci\nsd_mod\nnvme-core  # old\n"
			      "# added by tern\nnvme\nena\n");
	free(out);
	/* already complete: nothing added; a commented-out driver does not count */
	ck_assert_int_eq(gconf_modules_add("nvme\nnvme_core\nena", drivers, "x", &out, &added),
			 0);
	ck_assert_uint_eq(added, 0);
	ck_assert_str_eq(out, "nvme\nnvme_core\nena\n");
	free(out);
	ck_assert_int_eq(gconf_modules_add("#nvme\n", drivers, "x", &out, &added), 0);
	ck_assert_uint_eq(added, 3);
	free(out);
}
END_TEST

START_TEST(test_gconf_initramfs_conf_dep_to_most)
{
	char *out = NULL;
	bool changed = false;

	ck_assert_int_eq(gconf_initramfs_conf("# x\nMODULES=dep\nBUSYBOX=auto\n", &out, &changed),
			 0);
	ck_assert(changed);
	ck_assert_ptr_nonnull(strstr(out, "\nMODULES=most "));
	ck_assert_ptr_nonnull(strstr(out, "BUSYBOX=auto\n"));
	free(out);
	ck_assert_int_eq(gconf_initramfs_conf("MODULES=list\n# MODULES=dep\nMODULES=depx\n", &out,
					      &changed), 0);
	ck_assert(!changed);
	ck_assert_str_eq(out, "MODULES=list\n# MODULES=dep\nMODULES=depx\n");
	free(out);
}
END_TEST

START_TEST(test_gconf_dracut_conf)
{
	const char *const drivers[] = { "virtio_blk", "virtio_pci", NULL };
	char *out = NULL;

	ck_assert_int_eq(gconf_dracut_conf(drivers, "by tern", &out), 0);
	ck_assert_str_eq(out, "# by tern\nadd_drivers+=\" virtio_blk virtio_pci \"\n");
	free(out);
}
END_TEST

START_TEST(test_gconf_interfaces_disable)
{
	const char *in = "source /etc/network/interfaces.d/*\n"
			 "auto lo ens33\n"
			 "iface lo inet loopback\n"
			 "\n"
			 "allow-hotplug ens33\n"
			 "iface ens33 inet static\n"
			 "\taddress 192.168.10.5/24\n"
			 "    gateway 192.168.10.1\n"
			 "# a comment\n"
			 "iface ens33 inet6 auto\n"
			 "mapping eth0\n"
			 "\tscript /usr/local/sbin/map\n"
			 "auto lo\n";
	char *out = NULL;
	unsigned n = 0;

	ck_assert_int_eq(gconf_interfaces_disable(in, &out, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(out, "source /etc/network/interfaces.d/*\n"
			      "#tern: auto lo ens33\n"
			      "auto lo\n"
			      "iface lo inet loopback\n"
			      "\n"
			      "#tern: allow-hotplug ens33\n"
			      "#tern: iface ens33 inet static\n"
			      "#tern: \taddress 192.168.10.5/24\n"
			      "#tern:     gateway 192.168.10.1\n"
			      "# a comment\n"
			      "#tern: iface ens33 inet6 auto\n"
			      "#tern: mapping eth0\n"
			      "#tern: \tscript /usr/local/sbin/map\n"
			      "auto lo\n");
	free(out);
	/* loopback only: nothing to do */
	ck_assert_int_eq(gconf_interfaces_disable("auto lo\niface lo inet loopback\n", &out, &n),
			 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_str_eq(out, "auto lo\niface lo inet loopback\n");
	free(out);
}
END_TEST

START_TEST(test_gconf_network_bound)
{
	ck_assert(gconf_networkd_bound("[Match]\nName=ens33\n[Network]\nDHCP=yes\n"));
	ck_assert(gconf_networkd_bound("[Match]\nMACAddress=00:0c:29:aa:bb:cc\n"));
	ck_assert(gconf_networkd_bound("[Match]\nType=ether\n[Network]\nAddress=10.0.0.5/24\n"));
	ck_assert(gconf_networkd_bound("[Match]\nType=ether\n[Address]\nAddress=10.0.0.5/24\n"));
	ck_assert(!gconf_networkd_bound("[Match]\nType=ether\n[Network]\nDHCP=yes\n"));
	ck_assert(!gconf_networkd_bound("# Name=ens33\n[Network]\nDHCP=ipv4\n"));
	ck_assert(gconf_nm_bound("[connection]\nid=w\ntype=ethernet\ninterface-name=ens33\n"));
	ck_assert(gconf_nm_bound("[connection]\ntype=802-3-ethernet\n[ethernet]\n"
				 "mac-address=00:0C:29:AA:BB:CC\n"));
	ck_assert(gconf_nm_bound("[connection]\ntype=ethernet\n[ipv4]\nmethod=manual\n"
				 "address1=10.0.0.5/24\n"));
	ck_assert(!gconf_nm_bound("[connection]\ntype=ethernet\n[ipv4]\nmethod=auto\n"));
	ck_assert(!gconf_nm_bound("[connection]\ntype=wifi\ninterface-name=wlan0\n"));
	ck_assert(gconf_netplan_bound("network:\n  version: 2\n  ethernets:\n    ens33:\n"
				      "      addresses: [10.0.0.5/24]\n"));
	ck_assert(!gconf_netplan_bound("network:\n  version: 2\n  renderer: NetworkManager\n"));
}
END_TEST

START_TEST(test_gconf_listing_and_modlists)
{
	const char *lsinitramfs = "usr/lib/modules/6.1.0-27-amd64/kernel/drivers/nvme/host\n"
				  "usr/lib/modules/6.1.0-27-amd64/kernel/drivers/nvme/host/"
				  "nvme-core.ko\n"
				  "usr/lib/modules/6.1.0-27-amd64/kernel/drivers/block/"
				  "virtio_blk.ko.xz\n";
	const char *lsinitrd = "-rw-r--r--   1 root root 123 Jan  1 00:00 usr/lib/modules/6.1/"
			       "kernel/drivers/net/ethernet/amazon/ena/ena.ko.zst\n";
	const char *dep = "kernel/drivers/nvme/host/nvme.ko: kernel/drivers/nvme/host/"
			  "nvme-core.ko\nkernel/drivers/nvme/host/nvme-core.ko:\n";

	ck_assert(gconf_listing_has_module(lsinitramfs, "nvme_core"));
	ck_assert(gconf_listing_has_module(lsinitramfs, "virtio_blk"));
	ck_assert(!gconf_listing_has_module(lsinitramfs, "nvme"));
	ck_assert(!gconf_listing_has_module(lsinitramfs, "host"));
	ck_assert(gconf_listing_has_module(lsinitrd, "ena"));
	ck_assert(gconf_modlist_has(dep, "nvme"));
	ck_assert(gconf_modlist_has(dep, "nvme_core"));
	/* a dependency named after the colon is not an entry of its own */
	ck_assert(!gconf_modlist_has("kernel/a/x.ko: kernel/b/gve.ko\n", "gve"));
	ck_assert(gconf_modlist_has("kernel/drivers/virtio/virtio_pci.ko\n", "virtio_pci"));
	ck_assert(!gconf_modlist_has("kernel/drivers/virtio/virtio_pci_legacy.ko\n",
				     "virtio_pci"));
}
END_TEST

static Suite *adapt_suite(void)
{
	Suite *s = suite_create("adapt");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_prof_table_lookup);
	tcase_add_test(tc, test_prof_drivers_match_platforms);
	tcase_add_test(tc, test_gconf_dev_parse_bus_names);
	tcase_add_test(tc, test_gconf_fstab_rewrite_to_uuid);
	tcase_add_test(tc, test_gconf_fstab_already_uuid_unchanged);
	tcase_add_test(tc, test_gconf_cmdline_uuid_and_console);
	tcase_add_test(tc, test_gconf_grub_default_rewrite);
	tcase_add_test(tc, test_gconf_grub_default_quotes_and_missing);
	tcase_add_test(tc, test_gconf_resume_rewrite);
	tcase_add_test(tc, test_gconf_grubcfg_check);
	tcase_add_test(tc, test_gconf_modules_add);
	tcase_add_test(tc, test_gconf_initramfs_conf_dep_to_most);
	tcase_add_test(tc, test_gconf_dracut_conf);
	tcase_add_test(tc, test_gconf_interfaces_disable);
	tcase_add_test(tc, test_gconf_network_bound);
	tcase_add_test(tc, test_gconf_listing_and_modlists);
	suite_add_tcase(s, tc);
	return s;
}

Suite *(*const t_suites[])(void) = { adapt_suite, NULL };

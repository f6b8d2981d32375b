// SPDX-License-Identifier: GPL-2.0-only
/* libFuzzer target for receiver/guestconf.c, the rewrites of a guest's files during OS
 * adaptation: those files are written by whoever ran the migrated machine. The input is
 * one such file; every rewrite must keep its lines (one more at most per auto/allow line,
 * one for the added variable) and be idempotent: rewriting its own output changes nothing. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "receiver/guestconf.h"

#include "fuzz-driver.h"

static void require(bool ok)
{
	if (!ok)
		abort();
}

/* Every bus name resolves to one UUID, as the appliance's blkid would answer. */
static int resolve(void *ctx, const char *dev, char **ret_spec)
{
	unsigned part;
	int disk;

	if (gconf_dev_parse(dev, &disk, &part) < 0 || disk > 0)
		return -ENOENT;
	*ret_spec = strdup(part == 2 ? "UUID=swap-2" : "UUID=root-1");
	return *ret_spec ? 0 : -ENOMEM;
}

static size_t lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

typedef int (*rewrite_fn)(const char *in, char **out, unsigned *n);

static int fstab(const char *in, char **out, unsigned *n)
{
	return gconf_fstab_rewrite(in, resolve, NULL, out, n);
}

static int grub(const char *in, char **out, unsigned *n)
{
	return gconf_grub_default_rewrite(in, resolve, NULL, true, true, out, n);
}

static int cmdline(const char *in, char **out, unsigned *n)
{
	return gconf_cmdline_rewrite(in, resolve, NULL, true, out, n);
}

static int resume(const char *in, char **out, unsigned *n)
{
	return gconf_resume_rewrite(in, resolve, NULL, out, n);
}

static int ifaces(const char *in, char **out, unsigned *n)
{
	return gconf_interfaces_disable(in, out, n);
}

static int modules(const char *in, char **out, unsigned *n)
{
	static const char *const drivers[] = { "nvme", "nvme_core", "ena", NULL };

	return gconf_modules_add(in, drivers, "fuzz", out, n);
}

static void idempotent(const char *in, rewrite_fn fn, size_t max_extra_lines)
{
	char *out = NULL, *again = NULL;
	unsigned n = 0, n2 = 0;

	if (fn(in, &out, &n) < 0)
		return;
	require(lines(out) >= lines(in) && lines(out) <= lines(in) + max_extra_lines);
	/* a rewrite that counts nothing changed nothing (ifupdown counts interfaces, not
	 * lines; the module list may gain a final newline) */
	require(n > 0 || strcmp(out, in) == 0 || fn == modules || fn == ifaces);
	if (fn(out, &again, &n2) == 0) {
		require(strcmp(again, out) == 0);
		require(n2 == 0);
	}
	free(out);
	free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size + 1), *why = NULL;

	if (!in)
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';
	idempotent(in, fstab, 0);
	idempotent(in, resume, 0);
	idempotent(in, modules, 5);
	/* One added line per auto/allow line that also names lo, at most. */
	idempotent(in, ifaces, lines(in) + 1);
	idempotent(in, grub, 2);
	if (!strchr(in, '\n'))
		idempotent(in, cmdline, 0);
	if (gconf_grubcfg_check(in, "UUID=root-1", true, &why) < 0)
		require(why && !strchr(why, '\n'));
	free(why);
	(void)gconf_networkd_bound(in);
	(void)gconf_nm_bound(in);
	(void)gconf_netplan_bound(in);
	(void)gconf_listing_has_module(in, "nvme_core");
	(void)gconf_modlist_has(in, "virtio_blk");
	free(in);
	return 0;
}

void tern_fuzz_seeds(void (*add)(const void *p, size_t n))
{
	static const char *const seeds[] = {
		"/dev/sda1 / ext4 errors=remount-ro 0 1\n/dev/sda2 none swap sw 0 0\n",
		"GRUB_CMDLINE_LINUX=\"resume=/dev/sda2 console=tty0\"\nGRUB_DISABLE_LINUX_UUID=true\n",
		"root=/dev/vda1 ro quiet resume=/dev/sda2",
		"RESUME=/dev/sda2\n",
		"auto lo ens33\niface lo inet loopback\niface ens33 inet static\n\taddress 1.2.3.4/24\n",
		"ahci\nsd_mod\n# x\n",
		"[Match]\nName=ens33\n[Network]\nAddress=10.0.0.5/24\n",
		"\tlinux /boot/vmlinuz root=UUID=root-1 ro console=tty0 console=ttyS0,115200\n",
	};

	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++)
		add(seeds[i], strlen(seeds[i]));
}

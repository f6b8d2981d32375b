/* SPDX-License-Identifier: GPL-2.0-only */
/* The text rewrites of OS adaptation (receiver/adapt-steps.c), kept apart from libguestfs so
 * they can be tested on strings: fstab and kernel command lines to UUID=, GRUB's defaults,
 * initramfs-tools' module list, ifupdown stanzas, and the checks of what the guest's own
 * tools generated. Every function here is pure: text in, new text out (malloc'd). */
#pragma once
#include <stdbool.h>

/* Resolves a device name the guest uses (/dev/sda1) to a name that survives the move
 * ("UUID=..."): 0 with *ret_spec (malloc'd), -ENOENT when dev is not a name tern rewrites
 * (already UUID=, LABEL=, an LVM or md name...) or it cannot be resolved (the callback
 * records why), -ENOMEM. */
typedef int (*gconf_resolve_fn)(void *ctx, const char *dev, char **ret_spec);

/* Whether dev is a name given by the bus the disk sits on, which the new platform will
 * change: /dev/sdXN, /dev/hdXN, /dev/vdXN, /dev/xvdXN, /dev/nvmeCnNpP, /dev/disk/by-id and
 * by-path links. 0 with the disk's index (-1 for by-id/by-path links, which name no index)
 * and the partition number (0: the whole disk), or -ENOENT. */
int gconf_dev_parse(const char *dev, int *ret_disk, unsigned *ret_part);

/* fstab with every device field that fn resolves replaced, spacing and options kept.
 * *ret_changed counts the replaced fields. 0 or -ENOMEM. */
int gconf_fstab_rewrite(const char *in, gconf_resolve_fn fn, void *ctx, char **ret_out,
			unsigned *ret_changed);

/* initramfs-tools' conf.d/resume: RESUME=dev resolved through fn. 0 or -ENOMEM. */
int gconf_resume_rewrite(const char *in, gconf_resolve_fn fn, void *ctx, char **ret_out,
			 unsigned *ret_changed);

/* The serial and screen consoles a migrated guest gets, the last one being /dev/console. */
#define GCONF_CONSOLE "console=tty0 console=ttyS0,115200"

/* A kernel command line with root= and resume= resolved through fn; with console, any
 * console= dropped and GCONF_CONSOLE appended. *ret_changed counts the changed words
 * (0 when the result equals in). 0 or -ENOMEM. */
int gconf_cmdline_rewrite(const char *in, gconf_resolve_fn fn, void *ctx, bool console,
			  char **ret_out, unsigned *ret_changed);

/* /etc/default/grub (or a file of grub.d): GRUB_CMDLINE_LINUX and _DEFAULT rewritten as
 * above (the console only into GRUB_CMDLINE_LINUX, which recovery entries use too), and
 * GRUB_DISABLE_LINUX_UUID=true commented out, since it makes grub-mkconfig write the
 * bus's name of the root. With add_missing and console, a file without
 * GRUB_CMDLINE_LINUX gets one. 0 or -ENOMEM. */
int gconf_grub_default_rewrite(const char *in, gconf_resolve_fn fn, void *ctx, bool console,
			       bool add_missing, char **ret_out, unsigned *ret_changed);

/* Checks a generated grub.cfg: every linux entry must name its root as root=ROOT
 * ("UUID=..." or a /dev/mapper name; its last root= word) and, with console, carry console=ttyS0,115200. Returns the number
 * of entries checked (> 0), or -EBADMSG (an entry breaks the rule) or -ENOENT (no linux
 * entry) with *ret_why (malloc'd, one line). */
int gconf_grubcfg_check(const char *cfg, const char *root, bool console, char **ret_why);

/* /etc/initramfs-tools/modules with every driver not listed yet appended after a comment
 * line ("# " comment). *ret_added counts them. 0 or -ENOMEM. */
int gconf_modules_add(const char *in, const char *const *drivers, const char *comment,
		      char **ret_out, unsigned *ret_added);

/* initramfs.conf with MODULES=dep turned into MODULES=most: dep takes the drivers of the
 * machine running the rebuild (the libguestfs appliance), not of the new platform.
 * *ret_changed says whether it did. 0 or -ENOMEM. */
int gconf_initramfs_conf(const char *in, char **ret_out, bool *ret_changed);

/* A dracut.conf.d file adding drivers. 0 or -ENOMEM. */
int gconf_dracut_conf(const char *const *drivers, const char *comment, char **ret_out);

/* /etc/network/interfaces (or a file of interfaces.d) with every stanza of an interface
 * other than lo commented out ("#tern: " in front): auto/allow-* lines keep only lo,
 * iface and mapping stanzas with their option lines. *ret_disabled counts the interfaces
 * disabled. 0 or -ENOMEM. */
int gconf_interfaces_disable(const char *in, char **ret_out, unsigned *ret_disabled);

/* Whether a systemd-networkd .network file is bound to the old machine: it matches by
 * interface name, MAC, path or driver, or sets a static address or gateway. */
bool gconf_networkd_bound(const char *in);
/* Whether a NetworkManager keyfile is an Ethernet profile bound to an interface name or
 * MAC, or with a static IPv4 address. */
bool gconf_nm_bound(const char *in);
/* Whether a netplan file configures Ethernet interfaces (by name, match or address). */
bool gconf_netplan_bound(const char *in);

/* Whether an initramfs listing (one path per line, as lsinitramfs or lsinitrd print)
 * holds module mod (underscores and dashes are the same; .ko, .ko.xz, .ko.zst, .ko.gz). */
bool gconf_listing_has_module(const char *listing, const char *mod);
/* Whether modules.builtin or modules.dep text names module mod (path .../mod.ko[.*]). */
bool gconf_modlist_has(const char *list, const char *mod);

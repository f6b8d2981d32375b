/* SPDX-License-Identifier: GPL-2.0-only */
/* OS adaptation of a guest disk image for a platform profile (receiver/profile.h), done
 * offline with libguestfs and the guest's own tools, recorded in a report and undoable
 * from copies saved on the host: `tern-receiver adapt`. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

struct prof;

enum adapt_accel {
	ADAPT_ACCEL_AUTO, /* KVM when the appliance starts with it, else TCG */
	ADAPT_ACCEL_KVM,
	ADAPT_ACCEL_TCG,
};

struct adapt_opts {
	/* Where the undo copies go: a directory on the host that must not exist or be empty
	 * (it is created 0700). Required. */
	const char *undo_dir;
	/* Add the test-launch marker: a one-shot unit that prints "TERN-BOOT-OK ADDRESS" on
	 * the console once the guest has a DHCP address. */
	bool marker;
	enum adapt_accel accel;
};

/* Adapts the raw disk image at image (a file or a block device holding one disk) for
 * profile p. Checks first, with nothing written, that it can: one Linux root that mounts,
 * systemd, initramfs-tools or dracut, GRUB, and every profile driver in every installed
 * kernel; a refusal leaves the image as it was. Then, saving every file before it touches
 * it into o->undo_dir: names root, /boot, swap and resume by UUID in fstab and on the
 * kernel command line, adds a serial console, puts the drivers in every initramfs and
 * regenerates it and the GRUB config with the guest's tools (and checks both), replaces
 * network configuration bound to the old machine by DHCP on any Ethernet interface, masks
 * the old platform's guest tools, removes the LVM devices file and blkid cache, and puts
 * the UEFI removable-media loader on an EFI system partition. A failure midway undoes what
 * was done. Returns 0 with *ret_report (malloc'd JSON: the guest, every change with its
 * path and reason, warnings; also saved as UNDO_DIR/report.json), or -errno with a
 * one-line reason in why (logged too). */
int adapt_run(const char *image, const struct prof *p, const struct adapt_opts *o,
	      char **ret_report, char *why, size_t why_len);

/* Restores every file an adaptation of image changed, from undo_dir: contents, modes,
 * owners and modification times; files it created are removed. Refuses an image whose
 * root file system is not the one the undo copy was made from. 0, or -errno with why. */
int adapt_undo(const char *image, const char *undo_dir, enum adapt_accel accel, char *why,
	       size_t why_len);

/* Removes the test-launch marker (adapt_opts.marker) from an image adapted with it, once
 * its boot check is done, so that a disk put in service does not carry it; the undo
 * record stays valid. Refuses another disk as adapt_undo does. 0, or -errno with why. */
int adapt_unmark(const char *image, const char *undo_dir, enum adapt_accel accel, char *why,
		 size_t why_len);

/* `tern-receiver adapt ...`: argv[0] is "adapt". Prints its own errors; returns the exit
 * code (0 done, 1 refused or failed, 2 usage). */
int adapt_cmd(int argc, char **argv);

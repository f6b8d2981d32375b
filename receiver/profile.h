/* SPDX-License-Identifier: GPL-2.0-only */
/* Adaptation profiles: what a guest needs to boot on each platform tern migrates to —
 * the drivers its initramfs must hold, how its disks will be named, the bus a boot check
 * emulates, and the old platforms' guest tools it must not start there. */
#pragma once
#include <stddef.h>

struct prof {
	const char *name;         /* "kvm", "aws", "azure", "gcp" */
	const char *platform;     /* one line for the operator */
	/* Kernel module names (underscores) every installed kernel's initramfs must hold,
	 * storage first; NULL-terminated. */
	const char *const *drivers;
	const char *disk_names;   /* how the platform names disks, e.g. "/dev/vdX" */
	/* The QEMU device a boot check attaches the disk with ("virtio-blk-pci", "nvme",
	 * "scsi-hd" behind virtio-scsi-pci), or NULL when the platform's storage cannot be
	 * emulated and only the initramfs is checked (Hyper-V). */
	const char *boot_bus;
	/* systemd units of other platforms' guest tools, masked in the guest because they
	 * wait for, or fail without, their hypervisor; NULL-terminated. */
	const char *const *foreign_units;
};

/* The profile named name, or NULL. The table is static: nothing to free. */
const struct prof *prof_find(const char *name);
/* The profiles in table order; *ret_n gets their count. */
const struct prof *prof_all(size_t *ret_n);
/* "kvm, aws, azure, gcp", for messages. */
const char *prof_names(void);

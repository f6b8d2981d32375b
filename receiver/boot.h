/* SPDX-License-Identifier: GPL-2.0-only */
/* The boot check of a test launch (receiver/launch.h): boots an adapted clone under QEMU
 * on its platform profile's storage bus, through throwaway qcow2 overlays, with user
 * networking and the serial console in a log file, and passes only when the console
 * shows the adaptation's marker line, "TERN-BOOT-OK ADDRESS" (adapt.h). */
#pragma once
#include <stdbool.h>
#include <stddef.h>

struct prof;

struct boot_opts {
	const char *console_log; /* the serial console goes there (created or truncated) */
	const char *work_dir;    /* an existing directory for the overlays (removed after) */
	unsigned timeout_s;      /* from QEMU's start to the marker */
	bool kvm;                /* -accel kvm (default TCG: KVM hangs on some hosts) */
	unsigned memory_mib;     /* 0: 1024 */
	/* Polled about twice a second; when it returns true the boot is abandoned
	 * (-ECANCELED). NULL: never. */
	bool (*cancelled)(void *ctx);
	void *ctx;
};

/* Boots images[0] (raw) with images[1..n) attached after it, all on p->boot_bus, each
 * through its own qcow2 overlay in o->work_dir, so no image is written; UEFI firmware
 * (OVMF, a fresh empty variable store) when images[0] has a GPT with an EFI system
 * partition, BIOS otherwise. Returns 0 with the marker's address in ret_addr (at most
 * addr_len - 1 bytes), or -errno with a one-line why: -ETIMEDOUT (no marker in time),
 * -EIO (the console showed a failure, or QEMU exited), -ENOENT (QEMU, qemu-img or OVMF
 * missing), -EOPNOTSUPP (the profile has no emulated bus), -ECANCELED. QEMU is killed by
 * its PID in every path and the overlays are removed. */
int boot_run(const char *const *images, size_t n, const struct prof *p,
	     const struct boot_opts *o, char *ret_addr, size_t addr_len, char *why,
	     size_t why_len);

/* Whether the raw disk image at path has a GPT holding an EFI system partition: 1 yes,
 * 0 no, -errno when it cannot be read. */
int boot_is_uefi(const char *path);

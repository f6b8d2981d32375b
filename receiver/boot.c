// SPDX-License-Identifier: GPL-2.0-only
/* The boot check under QEMU; see boot.h. */
#include "receiver/boot.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "receiver/profile.h"

#define OVMF_CODE "/usr/share/OVMF/OVMF_CODE_4M.fd"
#define OVMF_VARS "/usr/share/OVMF/OVMF_VARS_4M.fd"
#define MARKER "TERN-BOOT-OK "
#define MAX_DISKS 8
#define LINE_MAX_LEN 1024

/* What a guest that will not come up prints; the first one seen fails the check at once
 * rather than at the timeout. */
static const char *const failures[] = {
	"Kernel panic", "Gave up waiting for root", "ALERT!", "(initramfs)",
	"Entering emergency mode", "You are in emergency mode",
	"dracut Warning: Could not boot", "grub rescue>", "error: no such partition",
	"error: unknown filesystem", "No bootable device", "Boot failed: could not read",
	"No bootable option or device was found", "TERN-BOOT-NOADDR",
};

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

int boot_is_uefi(const char *path)
{
	/* C12A7328-F81F-11D2-BA4B-00A0C93EC93B as GPT stores it (mixed endian). */
	static const uint8_t esp[16] = { 0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11,
					 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b };
	static const unsigned sectors[] = { 512, 4096 };
	uint8_t hdr[512], *ents = NULL;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (size_t s = 0; s < sizeof(sectors) / sizeof(sectors[0]) && r == 0; s++) {
		uint64_t lba;
		uint32_t count, size;
		size_t len;

		if (pread_full(fd, hdr, sizeof(hdr), sectors[s]) < 0 || memcmp(hdr, "EFI PART", 8))
			continue;
		lba = le64(hdr + 72);
		count = le32(hdr + 80);
		size = le32(hdr + 84);
		/* Bounds a damaged or hostile header cannot push past. */
		if (size < 128 || size > 4096 || count == 0 || count > 1024 || lba > (1ull << 40))
			continue;
		len = (size_t)count * size;
		ents = malloc(len);
		if (!ents) {
			r = -ENOMEM;
			break;
		}
		if (pread_full(fd, ents, len, lba * sectors[s]) == 0)
			for (uint32_t i = 0; i < count && r == 0; i++)
				r = memcmp(ents + (size_t)i * size, esp, 16) == 0;
		free(ents);
		ents = NULL;
	}
	close(fd);
	return r;
}

/* Runs argv to its end with output to log; 0 when it exited 0. */
static int run_wait(const char *const *argv, const char *log)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);

		if (fd < 0 || nul < 0 || dup2(nul, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 :
	       WIFEXITED(status) && WEXITSTATUS(status) == 127 ? -ENOENT : -EIO;
}

static bool in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[4096];

	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (const char *p = path; *p;) {
		size_t n = strcspn(p, ":");

		if (n && snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, p, prog) < (int)sizeof(buf) &&
		    access(buf, X_OK) == 0)
			return true;
		p += n + (p[n] == ':');
	}
	return false;
}

/* Kills QEMU and reaps it: SIGTERM, then SIGKILL if it has not gone within 5 s (an
 * emulator stuck in a loop ignores nothing but may take its time). */
static void qemu_kill(pid_t pid)
{
	int status;

	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	for (int i = 0; i < 50; i++) {
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid || (w < 0 && errno == ECHILD))
			return;
		usleep(100 * 1000);
	}
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
}

/* One console line, ANSI escapes and CRs dropped: the marker's address, or a failure. */
static int judge_line(const char *l, char *ret_addr, size_t addr_len, char *why, size_t why_len)
{
	const char *m = strstr(l, MARKER);

	if (m) {
		size_t n;

		m += strlen(MARKER);
		n = strspn(m, "0123456789abcdefABCDEF.:");
		if (n == 0 || n >= addr_len) {
			snprintf(why, why_len, "the marker line carries no address: %.200s", l);
			return -EIO;
		}
		memcpy(ret_addr, m, n);
		ret_addr[n] = '\0';
		return 1;
	}
	for (size_t i = 0; i < sizeof(failures) / sizeof(failures[0]); i++) {
		if (strstr(l, failures[i])) {
			snprintf(why, why_len, "the console shows a failed boot: %.200s", l);
			return -EIO;
		}
	}
	return 0;
}

struct console {
	int fd;
	char line[LINE_MAX_LEN];
	size_t len;
	bool esc;
};

/* Reads what the console log gained and judges each line (and a prompt with no newline
 * yet): 1 marker seen, 0 nothing decisive, -errno failure. */
static int console_poll(struct console *c, char *ret_addr, size_t addr_len, char *why,
			size_t why_len)
{
	char buf[4096];
	ssize_t n;
	int r;

	while ((n = read(c->fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			char ch = buf[i];

			if (c->esc) { /* inside an escape sequence: it ends at a letter */
				c->esc = !((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z'));
				continue;
			}
			if (ch == 0x1b) {
				c->esc = true;
				continue;
			}
			if (ch == '\r' || ch == '\0')
				continue;
			if (ch == '\n') {
				c->line[c->len] = '\0';
				c->len = 0;
				r = judge_line(c->line, ret_addr, addr_len, why, why_len);
				if (r)
					return r;
				continue;
			}
			if (c->len < sizeof(c->line) - 1)
				c->line[c->len++] = ch;
		}
	}
	if (n < 0 && errno != EAGAIN && errno != EINTR)
		return -errno;
	/* Prompts wait without a newline. */
	c->line[c->len] = '\0';
	if (strstr(c->line, "(initramfs)") || strstr(c->line, "grub rescue>"))
		return judge_line(c->line, ret_addr, addr_len, why, why_len);
	return 0;
}

/* What a boot check needs before it starts anything: a profile with a bus, 1 to
 * MAX_DISKS disks, paths QEMU can take, QEMU itself, and OVMF for a UEFI guest
 * (*ret_uefi: the first disk's GPT holds an EFI system partition). */
static int boot_can(const char *const *images, size_t n, const struct prof *p,
		    const struct boot_opts *o, bool *ret_uefi, char *why, size_t why_len)
{
	bool uefi;
	int r;

	if (!p->boot_bus) {
		snprintf(why, why_len, "profile %s has no emulated storage bus (%s): no boot check",
			 p->name, p->platform);
		return -EOPNOTSUPP;
	}
	if (n == 0 || n > MAX_DISKS) {
		snprintf(why, why_len, "a boot check takes 1 to %d disks", MAX_DISKS);
		return -EINVAL;
	}
	if (strchr(o->console_log, ',') || strchr(o->work_dir, ',')) {
		snprintf(why, why_len, "QEMU cannot take a path with a comma (%s)", o->work_dir);
		return -EINVAL;
	}
	if (!in_path("qemu-system-x86_64") || !in_path("qemu-img")) {
		snprintf(why, why_len, "qemu-system-x86_64 and qemu-img are needed for a boot check "
			 "(packages qemu-system-x86, qemu-utils)");
		return -ENOENT;
	}
	r = boot_is_uefi(images[0]);
	if (r < 0) {
		snprintf(why, why_len, "cannot read %s: %s", images[0], strerror(-r));
		return r;
	}
	uefi = r == 1;
	if (uefi && (access(OVMF_CODE, R_OK) < 0 || access(OVMF_VARS, R_OK) < 0)) {
		snprintf(why, why_len, "the guest boots with UEFI and OVMF is missing (%s; "
			 "package ovmf)", OVMF_CODE);
		return -ENOENT;
	}
	*ret_uefi = uefi;
	return 0;
}

/* A qcow2 overlay over each image in the work dir: every write of the guest goes there,
 * and the clone stays as adapted. *ret_nov counts those made, for the cleanup. */
static int make_overlays(const char *const *images, size_t n, const char *work_dir,
			 const char *qlog, char (*ov)[4096], size_t *ret_nov, char *why,
			 size_t why_len)
{
	size_t nov;
	int r;

	for (nov = 0; nov < n; nov++) {
		const char *ia[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-b", images[nov],
			       "-F", "raw", ov[nov], NULL };

		*ret_nov = nov;
		snprintf(ov[nov], sizeof(ov[nov]), "%s/overlay%zu.qcow2", work_dir, nov);
		if (images[nov][0] != '/' || strchr(images[nov], ',')) {
			snprintf(why, why_len, "a boot check needs an absolute path without commas: %s",
				 images[nov]);
			return -EINVAL;
		}
		r = run_wait(ia, qlog);
		if (r < 0) {
			snprintf(why, why_len, "qemu-img cannot put an overlay on %s (see %s)",
				 images[nov], qlog);
			unlink(ov[nov]);
			return r;
		}
	}
	*ret_nov = nov;
	return 0;
}

/* The console log, created empty for QEMU to write, and opened for reading as it grows. */
static int console_open(struct console *con, const char *console_log, char *why,
			size_t why_len)
{
	int r, fd;

	fd = open(console_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		snprintf(why, why_len, "cannot create %s: %s", console_log, strerror(errno));
		return r;
	}
	close(fd);
	con->fd = open(console_log, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (con->fd < 0) {
		r = -errno;
		snprintf(why, why_len, "cannot read %s: %s", console_log, strerror(errno));
		return r;
	}
	return 0;
}

/* QEMU's command line and the strings it points into. */
struct qemu_cmd {
	const char *argv[64];
	char serial[4200], mem[16], pflash[2][4200];
	char drive[MAX_DISKS][4300], dev[MAX_DISKS][128];
};

/* The command line: q35, the accelerator, the serial console into the log, OVMF with the
 * copied variable store vars (UEFI), each overlay on the profile's bus, user networking. */
static void qemu_args(struct qemu_cmd *q, char (*ov)[4096], size_t n, const struct prof *p,
		      const struct boot_opts *o, bool uefi, const char *vars)
{
	const char **argv = q->argv;
	size_t k = 0;
	bool scsi;

	snprintf(q->serial, sizeof(q->serial), "file:%s", o->console_log);
	snprintf(q->mem, sizeof(q->mem), "%u", o->memory_mib ? o->memory_mib : 1024);
	argv[k++] = "qemu-system-x86_64";
	argv[k++] = "-machine";
	argv[k++] = "q35";
	argv[k++] = "-accel";
	argv[k++] = o->kvm ? "kvm" : "tcg";
	argv[k++] = "-m";
	argv[k++] = q->mem;
	argv[k++] = "-smp";
	argv[k++] = "2";
	argv[k++] = "-display";
	argv[k++] = "none";
	argv[k++] = "-monitor";
	argv[k++] = "none";
	argv[k++] = "-no-reboot";
	argv[k++] = "-serial";
	argv[k++] = q->serial;
	if (uefi) {
		snprintf(q->pflash[0], sizeof(q->pflash[0]),
			 "if=pflash,format=raw,unit=0,readonly=on,file=%s", OVMF_CODE);
		snprintf(q->pflash[1], sizeof(q->pflash[1]), "if=pflash,format=raw,unit=1,file=%s",
			 vars);
		argv[k++] = "-drive";
		argv[k++] = q->pflash[0];
		argv[k++] = "-drive";
		argv[k++] = q->pflash[1];
	}
	scsi = strcmp(p->boot_bus, "scsi-hd") == 0;
	if (scsi) {
		argv[k++] = "-device";
		argv[k++] = "virtio-scsi-pci,id=scsi0";
	}
	for (size_t i = 0; i < n; i++) {
		snprintf(q->drive[i], sizeof(q->drive[i]),
			 "file=%s,format=qcow2,if=none,id=d%zu,cache=unsafe", ov[i], i);
		if (scsi)
			snprintf(q->dev[i], sizeof(q->dev[i]),
				 "scsi-hd,drive=d%zu,bus=scsi0.0,bootindex=%zu", i, i);
		else if (strcmp(p->boot_bus, "nvme") == 0)
			snprintf(q->dev[i], sizeof(q->dev[i]),
				 "nvme,drive=d%zu,serial=tern%04zu,bootindex=%zu", i, i, i);
		else
			snprintf(q->dev[i], sizeof(q->dev[i]), "%s,drive=d%zu,bootindex=%zu",
				 p->boot_bus, i, i);
		argv[k++] = "-drive";
		argv[k++] = q->drive[i];
		argv[k++] = "-device";
		argv[k++] = q->dev[i];
	}
	/* No NIC option ROM: a disk that cannot boot must not fall through to minutes of
	 * PXE. The platform's own NIC (ENA, gVNIC) cannot be emulated: virtio-net stands in. */
	argv[k++] = "-netdev";
	argv[k++] = "user,id=n0";
	argv[k++] = "-device";
	argv[k++] = "virtio-net-pci,netdev=n0,romfile=";
	argv[k] = NULL;
}

/* Watches the console and QEMU until the marker (1 in ret_addr: 0), a failure the
 * console shows, QEMU's exit, the deadline or a cancel (-errno with why). */
static int qemu_watch(pid_t *pid, struct console *con, const struct boot_opts *o, uint64_t t0,
		      const char *qlog, char *ret_addr, size_t addr_len, char *why,
		      size_t why_len)
{
	uint64_t deadline = t0 + (uint64_t)o->timeout_s * 1000000000ull;
	char addr[64];
	int r;

	for (;;) {
		int status;
		pid_t w;

		r = console_poll(con, addr, sizeof(addr), why, why_len);
		if (r == 1) {
			snprintf(ret_addr, addr_len, "%s", addr);
			log_info("boot check: marker after %.0f s: address %s",
				 (double)(now_ns() - t0) / 1e9, addr);
			r = 0;
			break;
		}
		if (r < 0)
			break;
		w = waitpid(*pid, &status, WNOHANG);
		if (w == *pid) {
			*pid = -1;
			/* What it printed last may hold the marker or the reason. */
			r = console_poll(con, addr, sizeof(addr), why, why_len);
			if (r == 1) {
				snprintf(ret_addr, addr_len, "%s", addr);
				r = 0;
			} else if (r == 0) {
				r = -EIO;
				snprintf(why, why_len, "QEMU exited (%s %d) after %.0f s without the "
					 "marker; see %s and %s",
					 WIFEXITED(status) ? "status" : "signal",
					 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
					 (double)(now_ns() - t0) / 1e9, qlog, o->console_log);
			}
			break;
		}
		if (now_ns() >= deadline) {
			r = -ETIMEDOUT;
			snprintf(why, why_len, "no marker within %u s; the console's last line: %.200s",
				 o->timeout_s, con->line[0] ? con->line : "(none)");
			break;
		}
		if (o->cancelled && o->cancelled(o->ctx)) {
			r = -ECANCELED;
			snprintf(why, why_len, "the boot check was cancelled");
			break;
		}
		usleep(500 * 1000);
	}
	return r;
}

int boot_run(const char *const *images, size_t n, const struct prof *p,
	     const struct boot_opts *o, char *ret_addr, size_t addr_len, char *why,
	     size_t why_len)
{
	char ov[MAX_DISKS][4096], vars[4096], qlog[4096];
	struct qemu_cmd q;
	struct console con = { .fd = -1 };
	size_t nov = 0;
	bool uefi = false;
	uint64_t t0;
	pid_t pid = -1;
	int r;

	vars[0] = '\0';
	why[0] = '\0';
	r = boot_can(images, n, p, o, &uefi, why, why_len);
	if (r < 0)
		return r;
	snprintf(qlog, sizeof(qlog), "%s/qemu.log", o->work_dir);
	r = make_overlays(images, n, o->work_dir, qlog, ov, &nov, why, why_len);
	if (r < 0)
		goto cleanup;
	r = console_open(&con, o->console_log, why, why_len);
	if (r < 0)
		goto cleanup;
	if (uefi) {
		/* A new machine's NVRAM: OVMF's empty variable store, copied for this boot. */
		const char *cp[] = { "cp", OVMF_VARS, vars, NULL };

		snprintf(vars, sizeof(vars), "%s/vars.fd", o->work_dir);
		r = run_wait(cp, qlog);
		if (r < 0)
			unlink(vars);
		if (r < 0) {
			snprintf(why, why_len, "cannot copy %s", OVMF_VARS);
			goto cleanup;
		}
	}
	qemu_args(&q, ov, n, p, o, uefi, vars);

	log_info("boot check: %s on %s%s, %s, console %s", images[0], p->boot_bus,
		 uefi ? " (UEFI)" : "", o->kvm ? "KVM" : "TCG", o->console_log);
	t0 = now_ns();
	pid = fork();
	if (pid < 0) {
		r = -errno;
		snprintf(why, why_len, "cannot start QEMU: %s", strerror(errno));
		goto cleanup;
	}
	if (pid == 0) {
		int lfd = open(qlog, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);

		/* QEMU must not outlive the thread that watches it, whatever kills us. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (lfd < 0 || nul < 0 || dup2(nul, 0) < 0 || dup2(lfd, 1) < 0 || dup2(lfd, 2) < 0)
			_exit(127);
		execvp(q.argv[0], (char *const *)q.argv);
		_exit(127);
	}
	r = qemu_watch(&pid, &con, o, t0, qlog, ret_addr, addr_len, why, why_len);
cleanup:
	qemu_kill(pid);
	if (con.fd >= 0)
		close(con.fd);
	for (size_t i = 0; i < nov; i++)
		unlink(ov[i]);
	if (vars[0])
		unlink(vars);
	return r;
}

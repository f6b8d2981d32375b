#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The boot proof: boots a disk image under QEMU over a throwaway qcow2 overlay (the
# image is never written, unless --writable) with the disk on the given bus and user
# networking, and says whether the guest reached multi-user, judging from its serial
# console.
#
# Usage: boot.sh IMAGE --bus ahci|nvme|virtio-blk|virtio-scsi [--uefi] [--timeout S]
#                [--console LOG] [--expect-marker TEXT] [--nic MODEL] [--accel tcg|kvm]
#                [--memory MiB] [--format raw|qcow2] [--writable]
#   --writable       no overlay: the guest writes the image itself, as a migrated machine
#                    running on its new platform does (QEMU is stopped as a power cut
#                    would, once the guest is up: what it wrote by then is in the image)
#   --uefi           OVMF with a fresh copy of its empty variable store (NVRAM) each boot
#   --timeout S      give up after S seconds (default 600)
#   --console LOG    keep the serial console there (default: a temporary file)
#   --expect-marker  success is a console line containing TEXT (e.g. the adaptation's
#                    one-shot unit's marker with the DHCP address), not the login prompt
#   --nic MODEL      the QEMU NIC model (default virtio-net-pci; e.g. e1000)
#   --accel          tcg (default; KVM hangs on some hosts) or kvm
#   --format         the image's format (default: raw; qcow2 for a qcow2 image)
# Prints one line and exits 0 when the guest reached the getty's "login:" on ttyS0 (or
# the marker): "boot: ok: ...". Exits 1 with "boot: FAIL: REASON" when it did not: the
# console showed a failure (initramfs shell, "Gave up waiting for root", "ALERT!",
# kernel panic, emergency mode, GRUB or firmware finding nothing to boot), QEMU exited,
# or the timeout passed. Exit 2: bad arguments or QEMU/OVMF missing (nothing started).
# QEMU is killed, by its PID, in every path.
set -euo pipefail

usage() {
	echo "usage: boot.sh IMAGE --bus ahci|nvme|virtio-blk|virtio-scsi [--uefi] [--timeout S]" \
		"[--console LOG] [--expect-marker TEXT] [--nic MODEL] [--accel tcg|kvm]" \
		"[--memory MiB] [--format raw|qcow2] [--writable]" >&2
	exit 2
}
bad() { echo "boot: $*" >&2; exit 2; }

IMAGE= BUS= UEFI=0 WRITABLE=0 TIMEOUT=600 CONSOLE= MARKER= NIC=virtio-net-pci ACCEL=tcg MEM=1024 FORMAT=raw
while [ $# -gt 0 ]; do
	case $1 in
	--bus) [ $# -ge 2 ] || usage; BUS=$2; shift 2 ;;
	--uefi) UEFI=1; shift ;;
	--writable) WRITABLE=1; shift ;;
	--timeout) [ $# -ge 2 ] || usage; TIMEOUT=$2; shift 2 ;;
	--console) [ $# -ge 2 ] || usage; CONSOLE=$2; shift 2 ;;
	--expect-marker) [ $# -ge 2 ] || usage; MARKER=$2; shift 2 ;;
	--nic) [ $# -ge 2 ] || usage; NIC=$2; shift 2 ;;
	--accel) [ $# -ge 2 ] || usage; ACCEL=$2; shift 2 ;;
	--memory) [ $# -ge 2 ] || usage; MEM=$2; shift 2 ;;
	--format) [ $# -ge 2 ] || usage; FORMAT=$2; shift 2 ;;
	-h | --help) usage ;;
	-*) bad "unknown option $1" ;;
	*) [ -z "$IMAGE" ] || bad "one image only (got '$IMAGE' and '$1')"; IMAGE=$1; shift ;;
	esac
done
[ -n "$IMAGE" ] && [ -n "$BUS" ] || usage
[ -f "$IMAGE" ] || [ -b "$IMAGE" ] || bad "no image at $IMAGE"
[ -r "$IMAGE" ] || bad "cannot read $IMAGE"
[ $WRITABLE = 0 ] || [ -w "$IMAGE" ] || bad "--writable: cannot write $IMAGE"
case $BUS in ahci | nvme | virtio-blk | virtio-scsi) ;; *) bad "unknown bus '$BUS' (ahci, nvme, virtio-blk, virtio-scsi)" ;; esac
[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || bad "--timeout wants whole seconds, got '$TIMEOUT'"
[[ $MEM =~ ^[1-9][0-9]*$ ]] || bad "--memory wants MiB, got '$MEM'"
case $ACCEL in tcg | kvm) ;; *) bad "unknown accelerator '$ACCEL' (tcg, kvm)" ;; esac
case $FORMAT in raw | qcow2) ;; *) bad "unknown format '$FORMAT' (raw, qcow2)" ;; esac
[ -z "$MARKER" ] || [[ $MARKER != *$'\n'* ]] || bad "the marker must be one line"
command -v qemu-system-x86_64 >/dev/null || bad "qemu-system-x86_64 missing (package qemu-system-x86)"
command -v qemu-img >/dev/null || bad "qemu-img missing (package qemu-utils)"
OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.fd OVMF_VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
if [ $UEFI = 1 ]; then
	[ -f $OVMF_CODE ] && [ -f $OVMF_VARS ] || bad "OVMF missing ($OVMF_CODE; package ovmf)"
fi
if [ -n "$CONSOLE" ]; then
	[ -d "$(dirname "$CONSOLE")" ] || bad "no directory for the console log $CONSOLE"
	[ ! -e "$CONSOLE" ] || [ -f "$CONSOLE" ] || bad "$CONSOLE is not a regular file"
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/tern-boot.XXXXXX")
QEMU_PID=
cleanup() {
	local rc=$?
	set +e
	if [ -n "$QEMU_PID" ]; then
		kill "$QEMU_PID" 2>/dev/null
		# A QEMU that ignores SIGTERM (stuck in the emulator) is killed outright.
		for _ in $(seq 50); do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$QEMU_PID" 2>/dev/null
		wait "$QEMU_PID" 2>/dev/null
	fi
	rm -rf "$T"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
result() { echo "boot: $*"; }
fail() { result "FAIL: $*"; exit 1; }

# The overlay takes every write; the image stays as it was. An absolute backing path, so
# the overlay does not depend on the working directory.
ABS=$(readlink -f "$IMAGE")
if [ $WRITABLE = 1 ]; then
	DISK=(-drive "file=$ABS,format=$FORMAT,if=none,id=d0,cache=writeback")
else
	qemu-img create -q -f qcow2 -b "$ABS" -F "$FORMAT" "$T/overlay.qcow2" >/dev/null ||
		bad "qemu-img cannot put an overlay on $IMAGE"
	DISK=(-drive "file=$T/overlay.qcow2,format=qcow2,if=none,id=d0,cache=unsafe")
fi
LOG=${CONSOLE:-$T/console.log}
: >"$LOG"

case $BUS in
ahci) DISK+=(-device "ide-hd,drive=d0,bus=ide.0,bootindex=0") ;; # q35's ICH9 AHCI
nvme) DISK+=(-device "nvme,drive=d0,serial=tern0001,bootindex=0") ;;
virtio-blk) DISK+=(-device "virtio-blk-pci,drive=d0,bootindex=0") ;;
virtio-scsi) DISK+=(-device virtio-scsi-pci,id=scsi0 -device "scsi-hd,drive=d0,bus=scsi0.0,bootindex=0") ;;
esac
FW=()
if [ $UEFI = 1 ]; then
	# A new machine's NVRAM: a fresh copy of OVMF's empty variable store every boot.
	cp $OVMF_VARS "$T/vars.fd"
	FW=(-drive "if=pflash,format=raw,unit=0,readonly=on,file=$OVMF_CODE"
		-drive "if=pflash,format=raw,unit=1,file=$T/vars.fd")
fi

WHERE=$BUS
[ $UEFI = 0 ] || WHERE="$BUS, UEFI"
start=$SECONDS
# No NIC option ROM: a disk that cannot boot must not fall through to minutes of PXE.
qemu-system-x86_64 -machine q35 -accel "$ACCEL" -m "$MEM" -smp 2 \
	-display none -monitor none -no-reboot -serial "file:$LOG" \
	"${FW[@]}" "${DISK[@]}" \
	-netdev user,id=n0 -device "$NIC,netdev=n0,romfile=" \
	</dev/null >"$T/qemu.log" 2>&1 &
QEMU_PID=$!

# What a guest that will not come up prints, the most telling first. Only signs that
# the boot has stopped: GRUB's own "error:" lines are not (a missing locale file is
# harmless), its giving up on the kernel is.
FAILS=(
	'ALERT!'
	'Kernel panic'
	'Gave up waiting for root'
	'Dropping to a shell'
	'(initramfs)'
	'dracut Warning: Could not boot'
	'Entering emergency mode'
	'You are in emergency mode'
	'Cannot open access to console, the root account is locked'
	'Emergency Shell'
	'grub rescue>'
	'Minimal BASH-like line editing'
	'you need to load the kernel first'
	'No bootable device'
	'Boot failed: could not read the boot disk'
	'No bootable option or device was found'
	'Shell> '
	'UEFI Interactive Shell'
)
clean() { tr -d '\r' <"$LOG" | sed 's/\x1b\[[0-9;?=]*[A-Za-z]//g'; }
while :; do
	text=$(clean)
	if [ -n "$MARKER" ]; then
		line=$(grep -F -m1 -- "$MARKER" <<<"$text" || true)
		[ -z "$line" ] || { result "ok: marker after $((SECONDS - start)) s on $WHERE: $line"; exit 0; }
	elif line=$(grep -E -m1 '^[^ ]+ login: *$|^[^ ]+ login: ' <<<"$text"); then
		result "ok: login prompt after $((SECONDS - start)) s on $WHERE"
		exit 0
	fi
	if grep -qF -f <(printf '%s\n' "${FAILS[@]}") <<<"$text"; then
		# The lines after the first sign often say more ("Gave up waiting for root"
		# is followed by "ALERT! /dev/sda1 does not exist"): give them a moment, then
		# name the most telling one.
		sleep 2
		text=$(clean)
		for f in "${FAILS[@]}"; do
			line=$(grep -F -m1 -- "$f" <<<"$text" || true)
			[ -n "$line" ] || continue
			line=$(sed 's/^[[:space:]]*//' <<<"$line" | cut -c1-200)
			# The firmware's shell is where it ends; why is the boot option it
			# could not load (no loader at the path it looks for).
			why=$(grep -m1 'BdsDxe: failed to load' <<<"$text" | sed 's/ from .*:/:/' || true)
			[ -z "$why" ] || line="$why; then $line"
			fail "after $((SECONDS - start)) s on $WHERE: $line"
		done
	fi
	if ! kill -0 "$QEMU_PID" 2>/dev/null; then
		rc=0
		wait "$QEMU_PID" || rc=$?
		QEMU_PID=
		fail "QEMU exited ($rc) after $((SECONDS - start)) s on $WHERE: $(tail -n 1 "$T/qemu.log")$(clean | grep -v '^$' | tail -n 1)"
	fi
	[ $((SECONDS - start)) -lt "$TIMEOUT" ] ||
		fail "no ${MARKER:+marker}${MARKER:-login prompt} within $TIMEOUT s on $WHERE; last console line: $(clean | grep -v '^[[:space:]]*$' | tail -n 1 | cut -c1-200)"
	sleep 1
done

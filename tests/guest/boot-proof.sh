#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The test guests before adaptation (issue 11): a guest built as an old VMware guest boots
# where it was installed (AHCI) and fails where tern migrates it to, for the reasons
# migrated Linux servers fail, so that an adapted guest booting there proves something.
#   bios-itools  boots on AHCI; fails on NVMe and on virtio-blk, in its initramfs, with
#                /dev/sda1 missing; boot.sh never writes the image
#   uefi-itools  an empty NVRAM finds no loader (no \EFI\BOOT\BOOTX64.EFI) on AHCI; the
#                same image with that one file added boots (so nothing else is wrong)
#   bios-dracut  boots on AHCI to the ttyS0 getty, with no kernel console on ttyS0
# Usage: boot-proof.sh VARIANT. Exit 0 pass, 1 fail, 77 skip (not root, no packages).
# Images are cached by build-image.sh; TERN_GUEST_KEEP=1 keeps the consoles.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
VARIANT=${1:?usage: boot-proof.sh bios-itools|uefi-itools|bios-dracut}

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
log() { echo "guest: $*"; }

[ "$(id -u)" -eq 0 ] || skip "needs root to build the guest image (loop devices, mounts, chroot)"
command -v apt-get >/dev/null || skip "needs apt-get (Debian) to build the guest"
. "$SRC/scripts/deps.sh"
PKGS=(qemu-system-x86 qemu-utils)
[ "${VARIANT%%-*}" = uefi ] && PKGS+=(ovmf mtools)
tern_install "${PKGS[@]}" || skip "cannot install ${PKGS[*]}"

T=$(mktemp -d "${TMPDIR:-/tmp}/tern-guest-test.XXXXXX")
cleanup() {
	local rc=$?
	set +e
	if [ -n "${TERN_GUEST_KEEP:-}" ]; then
		rm -f "$T"/*.img
		echo "kept $T"
	else
		rm -rf "$T"
	fi
	exit $rc
}
trap cleanup EXIT

t0=$SECONDS
rc=0
IMG=$("$HERE/build-image.sh" "$VARIANT") || rc=$?
[ $rc -ne 77 ] || skip "cannot build the $VARIANT image (see above)"
[ $rc -eq 0 ] && [ -f "$IMG" ] || fail "build-image.sh $VARIANT failed ($rc)"
log "$VARIANT image $IMG ready in $((SECONDS - t0)) s"

# boot NAME EXPECT ARGS...: boots, and checks the harness's exit status (0 up, 1 down).
# The result line goes to $T/NAME.out and the console to $T/NAME.console.
boot() {
	local name=$1 want=$2 got=0
	shift 2
	"$HERE/boot.sh" "$@" --console "$T/$name.console" >"$T/$name.out" 2>&1 || got=$?
	log "$name: $(cat "$T/$name.out")"
	if [ "$got" -ne "$want" ]; then
		echo "--- console of $name (tail)"
		tr -d '\r' <"$T/$name.console" | grep -v '^[[:space:]]*$' | tail -n 40
		fail "$name: boot.sh exited $got, expected $want"
	fi
}
console_has() { tr -d '\r' <"$T/$1.console" | grep -qF -- "$2"; }

case $VARIANT in
bios-itools)
	# The harness refuses bad input before starting anything.
	for bad in "--bus ahci $T/none.img" "$IMG --bus sata" "$IMG --bus ahci --timeout 0"; do
		# shellcheck disable=SC2086 # the words are the arguments
		out=$("$HERE/boot.sh" $bad 2>&1) && fail "boot.sh $bad was accepted"
		[ "$(wc -l <<<"$out")" -eq 1 ] || fail "boot.sh $bad: not a one-line error: $out"
	done
	# Any write through the file moves its mtime, and nothing can set its ctime back.
	stamp=$(stat -c '%y %z %s' "$IMG")
	boot ahci 0 "$IMG" --bus ahci
	console_has ahci "root=/dev/sda1" || fail "the guest's command line does not name /dev/sda1"
	# No storage driver for the disk in the initramfs: the initramfs gives up on
	# /dev/sda1. Both are the failure the adaptation exists for, not any failure.
	for bus in nvme virtio-blk; do
		boot "$bus" 1 "$IMG" --bus "$bus"
		grep -q "ALERT!  */dev/sda1 does not exist" "$T/$bus.out" ||
			fail "$bus: the guest failed, but not for want of /dev/sda1: $(cat "$T/$bus.out")"
		console_has "$bus" "Linux version" || fail "$bus: the kernel did not even start"
	done
	[ "$(stat -c '%y %z %s' "$IMG")" = "$stamp" ] || fail "booting changed the cached image"
	log "the image is unchanged by three boots"
	;;
uefi-itools)
	# A new machine's NVRAM is empty: OVMF looks only for the removable-media path,
	# which Debian's grub-install (without --removable) does not write.
	boot uefi-empty-nvram 1 "$IMG" --bus ahci --uefi
	console_has uefi-empty-nvram "Linux version" && fail "a kernel started without a fallback loader"
	# The control: the same disk with \EFI\BOOT\BOOTX64.EFI (a copy of GRUB's own
	# loader) boots, so the missing file was the only reason.
	cp --sparse=always --reflink=auto "$IMG" "$T/fallback.img"
	# The ESP is partition 2, at 1 MiB; mtools writes FAT without a mount (the host's
	# kernel may have no vfat).
	export MTOOLS_SKIP_CHECK=1
	ESP="$T/fallback.img@@$((1024 * 1024))"
	mdir -i "$ESP" ::/EFI/debian/grubx64.efi >/dev/null || fail "no \\EFI\\debian\\grubx64.efi on the ESP"
	mdir -i "$ESP" ::/EFI/BOOT >/dev/null 2>&1 && fail "the image already has a fallback loader"
	mmd -i "$ESP" ::/EFI/BOOT
	mcopy -i "$ESP" ::/EFI/debian/grubx64.efi "$T/grubx64.efi"
	mcopy -i "$ESP" "$T/grubx64.efi" ::/EFI/BOOT/BOOTX64.EFI
	boot uefi-fallback 0 "$T/fallback.img" --bus ahci --uefi
	;;
bios-dracut)
	boot dracut-ahci 0 "$IMG" --bus ahci
	# The old guest has no console= on its command line: the kernel speaks only on the
	# VGA console, the getty alone on ttyS0 (the adaptation adds the serial console).
	console_has dracut-ahci "Linux version" && fail "the kernel's console is on ttyS0 already"
	;;
*) fail "unknown variant $VARIANT" ;;
esac
echo "PASS: $VARIANT in $((SECONDS - t0)) s"

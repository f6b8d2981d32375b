#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The test guests before adaptation (issue 11): a guest built as an old VMware guest boots
# where it was installed (AHCI) and fails where tern migrates it to, for the reasons
# migrated Linux servers fail, so that an adapted guest booting there proves something.
#   bios-itools  boots on AHCI; fails on NVMe and on virtio-blk, in its initramfs, with
#                /dev/sda1 missing; boot.sh never writes the image
#   uefi-itools  an empty NVRAM finds no loader (no \EFI\BOOT\BOOTX64.EFI) on AHCI,
#                NVMe and virtio-blk; the same image with that one file added boots on AHCI (so
#                nothing else is wrong there) and fails on NVMe and on virtio-blk, in its
#                initramfs, with /dev/sda1 missing
#   bios-dracut  boots on AHCI to the ttyS0 getty (its banner as a marker), with no
#                kernel console on ttyS0; a copy whose command line only adds that
#                console (and a shorter root wait) fails on NVMe and on virtio-blk in
#                dracut, /dev/sda1 missing, the disk never seen by the kernel
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
	! mountpoint -q "$T/mnt" || umount "$T/mnt"
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
# Not grep -q behind the pipe: it stops reading at the first match, tr dies of SIGPIPE
# on a long console, and pipefail turns the match into "not found".
console_has() { tr -d '\r' <"$T/$1.console" | grep -aF -- "$2" >/dev/null; }
# no_disk NAME BUS: the kernel never saw the disk on BUS (no partition scan of nvme0n1 or
# vda on the console): the initramfs lacks the bus's driver, the reason adaptation adds it.
no_disk() {
	case $2 in nvme) ! console_has "$1" "nvme0n1: p" ;; virtio-blk) ! console_has "$1" "vda: vda" ;; esac ||
		fail "$1: the kernel found the disk on $2: it failed for another reason"
}

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
	# On NVMe and virtio-blk the empty NVRAM finds no loader either (OVMF fails in
	# ~10 s, no kernel).
	for bus in nvme virtio-blk; do
		boot "uefi-empty-nvram-$bus" 1 "$IMG" --bus "$bus" --uefi
		console_has "uefi-empty-nvram-$bus" "Linux version" &&
			fail "$bus: a kernel started without a fallback loader"
		grep -q "BdsDxe: failed to load Boot" "$T/uefi-empty-nvram-$bus.out" ||
			fail "$bus: OVMF did not fail on the missing loader: $(cat "$T/uefi-empty-nvram-$bus.out")"
	done
	# With the loader, the next reason: GRUB starts the kernel, whose initramfs has no
	# driver for the disk and waits for /dev/sda1 in vain.
	for bus in nvme virtio-blk; do
		boot "uefi-fallback-$bus" 1 "$T/fallback.img" --bus "$bus" --uefi
		grep -q "ALERT!  */dev/sda1 does not exist" "$T/uefi-fallback-$bus.out" ||
			fail "$bus: the guest failed, but not for want of /dev/sda1: $(cat "$T/uefi-fallback-$bus.out")"
		console_has "uefi-fallback-$bus" "Linux version" || fail "$bus: the kernel did not even start"
		no_disk "uefi-fallback-$bus" "$bus"
	done
	;;
bios-dracut)
	# The marker form of the proof (what a test launch waits for): agetty's banner,
	# /etc/issue with the host and line filled in, printed only once the getty runs.
	boot dracut-ahci 0 "$IMG" --bus ahci --expect-marker "Debian GNU/Linux 12 vmw-guest ttyS0"
	grep -q "ok: marker .*: Debian GNU/Linux 12 vmw-guest ttyS0" "$T/dracut-ahci.out" ||
		fail "boot.sh did not report the marker line"
	# The old guest has no console= on its command line: the kernel speaks only on the
	# VGA console, the getty alone on ttyS0 (the adaptation adds the serial console).
	console_has dracut-ahci "Linux version" && fail "the kernel's console is on ttyS0 already"
	# Why it fails elsewhere, seen on ttyS0: a copy whose kernel command line adds only
	# console=ttyS0 and rd.retry=20 (dracut gives up on the root after 20 s, not 180 s);
	# its drivers and root=/dev/sda1 are the image's.
	cp --sparse=always --reflink=auto "$IMG" "$T/console.img"
	start=$(partx -g -o START -n 1 "$T/console.img")
	mkdir "$T/mnt"
	mount -o "loop,offset=$((start * 512))" "$T/console.img" "$T/mnt"
	sed -i 's|^\([[:space:]]*linux .* root=/dev/sda1 ro\)$|\1 console=ttyS0,115200 rd.retry=20|' \
		"$T/mnt/boot/grub/grub.cfg"
	n=$(grep -c 'root=/dev/sda1 ro console=ttyS0,115200 rd.retry=20$' "$T/mnt/boot/grub/grub.cfg" || true)
	umount "$T/mnt"
	[ "$n" -eq 1 ] || fail "could not add the console to the copy's grub.cfg ($n entries)"
	for bus in nvme virtio-blk; do
		boot "dracut-$bus" 1 "$T/console.img" --bus "$bus"
		grep -q "Could not boot\|emergency mode\|root account is locked" "$T/dracut-$bus.out" ||
			fail "$bus: not dracut giving up: $(cat "$T/dracut-$bus.out")"
		console_has "dracut-$bus" "Could not boot" && console_has "dracut-$bus" "Warning: /dev/sda1 does not exist" ||
			fail "$bus: dracut did not give up for want of /dev/sda1"
		console_has "dracut-$bus" "root=/dev/sda1" || fail "$bus: the kernel did not start"
		no_disk "dracut-$bus" "$bus"
	done
	;;
*) fail "unknown variant $VARIANT" ;;
esac
echo "PASS: $VARIANT in $((SECONDS - t0)) s"

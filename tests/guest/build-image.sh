#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Builds a bootable Debian 12 raw disk image set up as an old VMware guest would be, for
# the migration tests (issue 11): the disk it describes must boot on AHCI and, until
# tern adapts it, fail on NVMe, virtio and a new machine's empty UEFI NVRAM.
#
# Usage: build-image.sh VARIANT [OUT.img]
#   Prints the path of the cached image on stdout (building it first when it is not
#   cached). The cached image is shared: never write to it; boot it through
#   tests/guest/boot.sh (which uses a throwaway overlay) or give OUT.img, a sparse copy
#   (a reflink where the file system can) that is the caller's to change.
#   Exit 0 built or cached, 1 the build failed, 2 usage, 77 cannot build here (not root,
#   packages missing), with the reason on stderr.
#
# Variants (every one: 3 GiB sparse raw, Debian 12, linux-image-amd64, systemd,
# ifupdown, open-vm-tools, no recommends, root account locked):
#   bios-itools  MBR: p1 ext4 root, p2 swap; grub-pc in the MBR; initramfs-tools with
#                MODULES=list and only SATA/AHCI and SCSI drivers; console=ttyS0,115200.
#   bios-dracut  the same with dracut (hostonly=no, drivers= only those drivers) and no
#                console= on the kernel command line (only a getty on ttyS0).
#   uefi-itools  GPT: p1 ext4 root, p2 EFI system partition (FAT32), p3 swap; GRUB at
#                \EFI\debian\grubx64.efi only: no removable-media fallback
#                \EFI\BOOT\BOOTX64.EFI, so an empty NVRAM finds nothing to boot.
# The VMware habits the adaptation must undo: fstab, root= and RESUME name /dev/sdaN;
# /etc/default/grub has GRUB_DISABLE_LINUX_UUID=true (grub.cfg is written as its
# grub-mkconfig would, with root=/dev/sda1); /etc/network/interfaces gives ens33 a
# static address; a persistent-net rule binds ens33 to a VMware MAC; open-vm-tools is
# enabled. Initramfs drivers: /etc/initramfs-tools/conf.d/vmware-storage (MODULES=list)
# and hooks/vmware-storage, or /etc/dracut.conf.d/10-vmware-storage.conf.
# A getty runs on ttyS0 in every variant; its "login:" prompt is the boot proof.
#
# Cache: ${TERN_GUEST_DIR:-${TMPDIR:-/var/tmp}/tern-guest}/VARIANT-HASH.img, HASH from
# this script's own bytes, so changing the builder rebuilds; images of other versions are
# removed once unused for a day (VARIANT-HASH.img.used stamps each use). Built under a
# lock, in a temporary file renamed into place.
# Packages come from this machine's own apt sources (Debian 12 hosts) via mmdebstrap.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
SELF="$HERE/$(basename "$0")"

usage() { echo "usage: build-image.sh bios-itools|bios-dracut|uefi-itools [OUT.img]" >&2; exit 2; }
die() { echo "build-image: $*" >&2; exit 1; }
skip() { echo "build-image: cannot build here: $*" >&2; exit 77; }
log() { echo "build-image: $*" >&2; }

[ $# -ge 1 ] && [ $# -le 2 ] || usage
VARIANT=$1
OUT=${2:-}
case $VARIANT in
bios-itools | bios-dracut | uefi-itools) ;;
*) echo "build-image: unknown variant '$VARIANT' (bios-itools, bios-dracut, uefi-itools)" >&2; exit 2 ;;
esac
if [ -n "$OUT" ] && [ -e "$OUT" ] && [ ! -f "$OUT" ]; then
	echo "build-image: $OUT exists and is not a regular file" >&2
	exit 2
fi

DIR=${TERN_GUEST_DIR:-${TMPDIR:-/var/tmp}/tern-guest}
HASH=$(sha256sum "$SELF" | cut -c1-12)
IMG=$DIR/$VARIANT-$HASH.img

give() { # the cached image's path on stdout, and the caller's copy when asked
	# Its use is stamped beside it, never on it (tests check that the image is unwritten).
	touch "$IMG.used" 2>/dev/null || true
	if [ -n "$OUT" ]; then
		cp --sparse=always --reflink=auto "$IMG" "$OUT.tmp.$$" && mv -f "$OUT.tmp.$$" "$OUT" ||
			{ rm -f "$OUT.tmp.$$"; die "cannot copy the image to $OUT"; }
	fi
	echo "$IMG"
	exit 0
}
[ -f "$IMG" ] && give

[ "$(id -u)" -eq 0 ] || skip "building a disk image needs root (loop devices, mounts, chroot)"
. "$SRC/scripts/deps.sh"
NEED=(mmdebstrap fdisk util-linux e2fsprogs)
case $VARIANT in
bios-*) NEED+=(grub-pc-bin) ;;
uefi-*) NEED+=(dosfstools mtools) ;;
esac
tern_install "${NEED[@]}" || skip "cannot install ${NEED[*]}"

mkdir -p "$DIR"
exec 9>"$DIR/$VARIANT.lock"
flock 9
[ -f "$IMG" ] && give # another run built it while we waited
# Under the lock every build directory of this variant is a killed build's: unmount what it
# left, then remove it, never crossing into a file system still mounted there.
for old in "$DIR/.build-$VARIANT".*; do
	[ -d "$old" ] || continue
	awk -v t="$old/" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
		while read -r m; do umount "$m" || umount -l "$m"; done
	rm -rf --one-file-system "$old"
done

T=$(mktemp -d "$DIR/.build-$VARIANT.XXXXXX")
ROOT=$T/root MNT=$T/mnt TMPIMG=$T/disk.img
LOOP= MOUNTS=()
cleanup() {
	local rc=$? m i
	set +e
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
		m=${MOUNTS[i]}
		mountpoint -q "$m" && umount "$m"
	done
	# Whatever an interrupted mmdebstrap left mounted in the root tree (proc, sys, dev),
	# deepest first; rm never crosses into a file system that is still there.
	awk -v t="$T/" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
		while read -r m; do umount "$m" || umount -l "$m"; done
	if [ -n "$LOOP" ]; then
		partx -d "$LOOP" 2>/dev/null
		losetup -d "$LOOP"
	fi
	rm -rf --one-file-system "$T"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
start=$SECONDS

# --- 1. The root tree -----------------------------------------------------------------
PKGS=(linux-image-amd64 systemd systemd-sysv udev kmod e2fsprogs ifupdown isc-dhcp-client
	iproute2 netbase open-vm-tools)
case $VARIANT in
bios-itools) PKGS+=(grub-pc initramfs-tools) ;;
bios-dracut) PKGS+=(grub-pc dracut) ;;
uefi-itools) PKGS+=(grub-efi-amd64 initramfs-tools) ;;
esac
# The drivers an old VMware guest's initramfs holds: SATA/AHCI and SCSI (LSI, PVSCSI), no
# virtio, no NVMe, no Hyper-V. crc32c: ext4's checksums, a soft dependency that module
# lists do not follow.
DRIVERS="ahci ata_piix libata sd_mod scsi_mod vmw_pvscsi mptspi ext4 crc32c_generic"
SWAP=/dev/sda2
[ "$VARIANT" = uefi-itools ] && SWAP=/dev/sda3

# Configuration the packages read when they are installed, so the kernel's postinst builds
# the one initramfs we want (no second build), put in place by mmdebstrap's essential hook
# (after the essential packages, before the kernel).
PRE=$T/pre
mkdir -p "$PRE/etc/initramfs-tools/conf.d" "$PRE/etc/initramfs-tools/hooks" "$PRE/etc/dracut.conf.d"
case $VARIANT in
*-itools)
	cat >"$PRE/etc/initramfs-tools/conf.d/vmware-storage" <<-'EOF'
		# Only the drivers named by hooks/vmware-storage and /etc/initramfs-tools/modules.
		MODULES=list
	EOF
	echo "RESUME=$SWAP" >"$PRE/etc/initramfs-tools/conf.d/resume"
	cat >"$PRE/etc/initramfs-tools/hooks/vmware-storage" <<-EOF
		#!/bin/sh
		# The storage drivers of the VMware virtual hardware this guest was installed on.
		PREREQ=""
		prereqs() { echo "\$PREREQ"; }
		case "\$1" in prereqs) prereqs; exit 0 ;; esac
		. /usr/share/initramfs-tools/hook-functions
		for m in $DRIVERS; do
			manual_add_modules "\$m"
		done
	EOF
	chmod 755 "$PRE/etc/initramfs-tools/hooks/vmware-storage"
	;;
*-dracut)
	cat >"$PRE/etc/dracut.conf.d/10-vmware-storage.conf" <<-EOF
		# A generic initramfs whose only block drivers are those of the VMware hardware
		# (drivers= is exclusive: nothing else is added), as a host-only one built on
		# VMware holds; the qemu modules would add virtio.
		hostonly="no"
		drivers+=" $DRIVERS "
		omit_dracutmodules+=" qemu qemu-net "
	EOF
	;;
esac
# Install no device into the MBR from the package's postinst: the image is not a device
# yet; the builder installs GRUB itself below.
cat >"$T/debconf" <<-'EOF'
	grub-pc grub-pc/install_devices multiselect
	grub-pc grub-pc/install_devices_empty boolean true
	grub-efi-amd64 grub2/update_nvram boolean false
	grub-efi-amd64 grub2/force_efi_extra_removable boolean false
EOF

# This machine's own apt sources when it runs the same release; mmdebstrap's default
# otherwise.
MIRRORS=()
if grep -qx 'VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null; then
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/debian.sources; do
		[ -s "$f" ] && grep -qv '^[[:space:]]*\(#\|$\)' "$f" && MIRRORS+=("$f")
	done
fi

log "$VARIANT: mmdebstrap (${PKGS[*]})"
mmdebstrap --quiet --variant=minbase --include="$(IFS=,; echo "${PKGS[*]}")" \
	--aptopt='APT::Install-Recommends "false"' \
	--essential-hook="sync-in $PRE /" \
	--essential-hook="chroot \"\$1\" debconf-set-selections < '$T/debconf'" \
	bookworm "$ROOT" "${MIRRORS[@]}" >"$T/mmdebstrap.log" 2>&1 || {
	tail -n 30 "$T/mmdebstrap.log" >&2
	# No packages to be had is this machine's limit, not a fault of the builder.
	grep -qE 'Failed to fetch|Temporary failure resolving|Could not resolve|Unable to fetch' \
		"$T/mmdebstrap.log" && skip "mmdebstrap cannot get the packages from the apt sources"
	die "mmdebstrap failed"
}
log "$VARIANT: root tree in $((SECONDS - start)) s"

KVER=$(cd "$ROOT/boot" && ls vmlinuz-* | sed 's/^vmlinuz-//' | sort -V | tail -n 1)
[ -n "$KVER" ] && [ -f "$ROOT/boot/initrd.img-$KVER" ] || die "no kernel and initramfs in the root tree"
# The initramfs must hold the VMware drivers and none of the new platforms' (the tests'
# failing boots depend on it).
case $VARIANT in
*-itools) chroot "$ROOT" lsinitramfs "/boot/initrd.img-$KVER" >"$T/initrd.list" ;;
*-dracut) chroot "$ROOT" lsinitrd "/boot/initrd.img-$KVER" >"$T/initrd.list" ;;
esac
grep -q '/ahci\.ko' "$T/initrd.list" || die "the initramfs lacks ahci"
if grep -E '/(virtio_blk|virtio_scsi|nvme|hv_storvsc)\.ko' "$T/initrd.list" >&2; then
	die "the initramfs holds a driver of the new platforms"
fi

# --- 2. The VMware guest's configuration ------------------------------------------------
CMDLINE="ro"
[ "$VARIANT" != bios-dracut ] && CMDLINE+=" console=tty0 console=ttyS0,115200"
echo vmw-guest >"$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tvmw-guest\n' >"$ROOT/etc/hosts"
{
	echo "# <file system> <mount point> <type> <options> <dump> <pass>"
	echo "/dev/sda1 / ext4 errors=remount-ro 0 1"
	[ "$VARIANT" = uefi-itools ] && echo "/dev/sda2 /boot/efi vfat umask=0077 0 1"
	echo "$SWAP none swap sw 0 0"
} >"$ROOT/etc/fstab"
cat >"$ROOT/etc/network/interfaces" <<-'EOF'
	# The loopback network interface
	auto lo
	iface lo inet loopback

	# The primary network interface (VMware vmxnet3)
	auto ens33
	iface ens33 inet static
		address 192.168.142.20/24
		gateway 192.168.142.2
		dns-nameservers 192.168.142.2
EOF
mkdir -p "$ROOT/etc/udev/rules.d"
cat >"$ROOT/etc/udev/rules.d/70-persistent-net.rules" <<-'EOF'
	# PCI device 0x15ad:0x07b0 (vmxnet3)
	SUBSYSTEM=="net", ACTION=="add", DRIVERS=="?*", ATTR{address}=="00:0c:29:5e:3a:11", ATTR{dev_id}=="0x0", ATTR{type}=="1", NAME="ens33"
EOF
mkdir -p "$ROOT/etc/systemd/system/getty.target.wants"
ln -sf /lib/systemd/system/serial-getty@.service \
	"$ROOT/etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service"
# What update-grub in the guest reads: device names, as the old installer left them.
[ -f "$ROOT/etc/default/grub" ] || die "grub did not install /etc/default/grub"
sed -i -e 's/^GRUB_TIMEOUT=.*/GRUB_TIMEOUT=1/' \
	-e "s/^GRUB_CMDLINE_LINUX_DEFAULT=.*/GRUB_CMDLINE_LINUX_DEFAULT=\"\"/" \
	-e "s/^GRUB_CMDLINE_LINUX=.*/GRUB_CMDLINE_LINUX=\"${CMDLINE#ro}\"/" "$ROOT/etc/default/grub"
sed -i 's/="  */="/' "$ROOT/etc/default/grub"
cat >>"$ROOT/etc/default/grub" <<-'EOF'
	GRUB_DISABLE_LINUX_UUID=true
	GRUB_DISABLE_RECOVERY=true
	GRUB_TERMINAL="console serial"
	GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
EOF
# grub.cfg as that grub-mkconfig would write it on the VMware machine (it cannot run
# here: it probes the running system's devices).
if [ "$VARIANT" = uefi-itools ]; then PART=gpt1 PMOD=part_gpt; else PART=msdos1 PMOD=part_msdos; fi
cat >"$ROOT/boot/grub/grub.cfg" <<-EOF
	# Written by tern's test image builder as grub-mkconfig with
	# GRUB_DISABLE_LINUX_UUID=true would have: the root is named by device.
	set default=0
	set timeout=1
	serial --unit=0 --speed=115200
	terminal_input console serial
	terminal_output console serial
	insmod $PMOD
	insmod ext2
	set root='hd0,$PART'
	menuentry 'Debian GNU/Linux, with Linux $KVER' {
		linux /boot/vmlinuz-$KVER root=/dev/sda1 $CMDLINE
		initrd /boot/initrd.img-$KVER
	}
EOF
mkdir -p "$ROOT/boot/efi"
# UEFI: what Debian's grub-install --target=x86_64-efi (without --removable) does, with
# the guest's own GRUB: modules under /boot/grub, a core image that finds the root file
# system by UUID, copied to \EFI\debian\grubx64.efi below. grub-install itself cannot
# run here: it wants the ESP mounted, and the build host's kernel may have no vfat.
ROOT_UUID=$(cat /proc/sys/kernel/random/uuid)
if [ "$VARIANT" = uefi-itools ]; then
	G=$ROOT/boot/grub/x86_64-efi
	mkdir -p "$G"
	cp "$ROOT"/usr/lib/grub/x86_64-efi/*.mod "$ROOT"/usr/lib/grub/x86_64-efi/*.lst "$G/"
	printf "search.fs_uuid %s root\nset prefix=(\$root)'/boot/grub'\n" "$ROOT_UUID" >"$G/load.cfg"
	chroot "$ROOT" grub-mkimage -O x86_64-efi -d /usr/lib/grub/x86_64-efi \
		-c /boot/grub/x86_64-efi/load.cfg -p /boot/grub -o /boot/grub/x86_64-efi/core.efi \
		part_gpt ext2 search_fs_uuid >"$T/grub.log" 2>&1 ||
		{ cat "$T/grub.log" >&2; die "grub-mkimage (x86_64-efi) failed"; }
fi

# --- 3. The disk: partitions, file systems, GRUB ----------------------------------------
MiB=2048 # sectors
truncate -s 3G "$TMPIMG"
case $VARIANT in
bios-*)
	# p1 root 1..3007 MiB, p2 swap 3007..3071 MiB.
	sfdisk --quiet "$TMPIMG" >/dev/null <<-EOF
		label: dos
		start=$((1 * MiB)), size=$((3006 * MiB)), type=83, bootable
		start=$((3007 * MiB)), size=$((64 * MiB)), type=82
	EOF
	;;
uefi-*)
	# p1 root 129..3007 MiB, p2 ESP 1..129 MiB, p3 swap 3007..3071 MiB.
	sfdisk --quiet "$TMPIMG" >/dev/null <<-EOF
		label: gpt
		start=$((129 * MiB)), size=$((2878 * MiB)), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
		start=$((1 * MiB)), size=$((128 * MiB)), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
		start=$((3007 * MiB)), size=$((64 * MiB)), type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F
	EOF
	;;
esac
LOOP=$(losetup --find --show "$TMPIMG")
# This kernel may have no partition-table parser for loop devices: add them by hand.
partx -a "$LOOP" 2>/dev/null || true
NPARTS=2
[ "$VARIANT" = uefi-itools ] && NPARTS=3
for p in $(seq "$NPARTS"); do
	for _ in $(seq 50); do [ -b "${LOOP}p$p" ] && break; sleep 0.1; done
	[ -b "${LOOP}p$p" ] || die "no ${LOOP}p$p after partx -a"
done
mkfs.ext4 -q -F -U "$ROOT_UUID" -d "$ROOT" "${LOOP}p1" || die "mkfs.ext4 -d failed"
case $VARIANT in
bios-*)
	mkswap -q "${LOOP}p2" >/dev/null
	mkdir -p "$MNT"
	mount "${LOOP}p1" "$MNT"
	MOUNTS+=("$MNT")
	grub-install --target=i386-pc --boot-directory="$MNT/boot" "$LOOP" >"$T/grub.log" 2>&1 ||
		{ cat "$T/grub.log" >&2; die "grub-install (i386-pc) failed"; }
	# grub-install writes its own grub.cfg only on request; ours must still be there.
	grep -q 'root=/dev/sda1' "$MNT/boot/grub/grub.cfg" || die "grub.cfg lost"
	umount "$MNT"
	MOUNTS=()
	;;
uefi-*)
	mkswap -q "${LOOP}p3" >/dev/null
	mkfs.vfat -F 32 -n EFI "${LOOP}p2" >/dev/null || die "mkfs.vfat failed"
	export MTOOLS_SKIP_CHECK=1
	# Debian's default: the boot entry's own path, no --removable: the old machine's
	# NVRAM named it; a new machine's empty NVRAM does not.
	ESP="$TMPIMG@@$((1 * MiB * 512))" # the image file at p2's offset: no geometry ioctls
	mmd -i "$ESP" ::/EFI ::/EFI/debian
	mcopy -i "$ESP" "$ROOT/boot/grub/x86_64-efi/core.efi" ::/EFI/debian/grubx64.efi ||
		die "cannot write \\EFI\\debian\\grubx64.efi"
	mdir -i "$ESP" ::/EFI/BOOT >/dev/null 2>&1 && die "the ESP has a removable-media loader"
	;;
esac
partx -d "$LOOP" 2>/dev/null || true
losetup -d "$LOOP"
LOOP=

mv -f "$TMPIMG" "$IMG"
# Images of other builder versions go once unused for a day: checkouts of different
# versions (worktrees, branches) share the cache and must not rebuild over each other.
for old in "$DIR/$VARIANT"-*.img; do
	[ "$old" != "$IMG" ] || continue
	used=$old.used
	[ -e "$used" ] || used=$old
	[ -n "$(find "$used" -maxdepth 0 -mmin +1440)" ] && rm -f "$old" "$old.used"
done
log "$VARIANT: built $IMG in $((SECONDS - start)) s"
give

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# OS adaptation on a real guest (issue 11): `tern-receiver adapt` takes the bios-itools
# test guest (an old VMware guest: /dev/sda1 everywhere, an initramfs with only SATA and
# SCSI drivers, a static address on ens33) and adapts it for kvm: every change is in the
# report and on the disk (fstab and grub.cfg by UUID, the drivers in the initramfs, DHCP,
# the old tools masked); undo gives every file back; guests that cannot be adapted are
# refused with their reason and left byte-identical. The adapted guests' boots are
# launch.sh's (every variant, kvm on virtio-blk and aws on NVMe).
# Usage: TERN_RECEIVER=PATH adapt.sh. Exit 0 pass, 1 fail, 77 skip (with the reason).
# Images come from tests/guest/build-image.sh (cached); TERN_GUEST_KEEP=1 keeps the
# consoles, reports and undo records.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
RCV=${TERN_RECEIVER:?TERN_RECEIVER must name the tern-receiver to test}

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
log() { echo "adapt: $*"; }

[ "$(id -u)" -eq 0 ] || skip "needs root (the guest image is built with loop devices; files are compared on read-only loop mounts)"
[ -x "$HERE/build-image.sh" ] && [ -x "$HERE/boot.sh" ] ||
	skip "tests/guest/build-image.sh and boot.sh (the test guests) are not in this tree"
[ -x "$RCV" ] || fail "no $RCV"
if "$RCV" adapt --profile kvm /nonexistent 2>&1 | grep -q "built without libguestfs"; then
	skip "tern-receiver was built without libguestfs (install libguestfs-dev and rebuild)"
fi
command -v apt-get >/dev/null || skip "needs apt-get (Debian) for the guest and QEMU"
. "$SRC/scripts/deps.sh"
PKGS=(qemu-system-x86 qemu-utils jq fdisk e2fsprogs initramfs-tools-core)
# The libguestfs appliance boots the host's kernel: supermin needs one it can read.
compgen -G '/boot/vmlinuz-*' >/dev/null || PKGS+=(linux-image-amd64)
tern_install "${PKGS[@]}" || skip "cannot install ${PKGS[*]}"
compgen -G '/boot/vmlinuz-*' >/dev/null || skip "no kernel in /boot for the libguestfs appliance"
# TCG: KVM is not trusted on every host this runs on.
ADAPT=("$RCV" adapt --accel tcg)

T=$(mktemp -d "${TMPDIR:-/tmp}/tern-adapt-test.XXXXXX")
LOOPS=() MNTS=()
cleanup() {
	local rc=$? i
	set +e
	for ((i = ${#MNTS[@]} - 1; i >= 0; i--)); do umount "${MNTS[i]}"; done
	for l in "${LOOPS[@]}"; do losetup -d "$l"; done
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
# A copy of our own: the cache keeps one image per variant, and a run of another version
# of the builder replaces it.
IMG=$T/orig.img
cached=$("$HERE/build-image.sh" bios-itools "$IMG") || rc=$?
[ $rc -ne 77 ] || skip "cannot build the bios-itools image (see above)"
[ $rc -eq 0 ] && [ -f "$IMG" ] || fail "build-image.sh bios-itools failed ($rc)"
log "image $cached ready in $((SECONDS - t0)) s"
copy() { cp --sparse=always --reflink=auto "$IMG" "$1"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# mount_p1 IMAGE DIR: the first partition, read-only, without replaying the journal.
mount_p1() {
	local off loop
	off=$(sfdisk -J "$1" | jq '.partitiontable.partitions[0].start * (.partitiontable.sectorsize // 512)')
	loop=$(losetup -r -f --show -o "$off" "$1")
	LOOPS+=("$loop")
	mkdir -p "$2"
	mount -o ro,noload "$loop" "$2"
	MNTS+=("$2")
}
umount_last() {
	umount "${MNTS[-1]}"
	unset 'MNTS[-1]'
	losetup -d "${LOOPS[-1]}"
	unset 'LOOPS[-1]'
}
# files IMAGE OUT: every file of the root file system: type, mode, owner, size, mtime,
# link target, and the content's SHA-256.
files() {
	mount_p1 "$1" "$T/mnt"
	(cd "$T/mnt" && find . -xdev -printf '%p\t%y\t%m\t%U\t%G\t%s\t%T@\t%l\n' | sort &&
		find . -xdev -type f -print0 | sort -z | xargs -0 sha256sum) >"$2"
	umount_last
}
# refused WHAT IMAGE REASON ARGS...: adapt must exit 1 with REASON on one line and leave
# IMAGE byte-identical.
refused() {
	local what=$1 img=$2 reason=$3 before out rc=0
	shift 3
	before=$(sha "$img")
	out=$("${ADAPT[@]}" "$@" "$img" 2>&1 >/dev/null) || rc=$?
	[ $rc -eq 1 ] || fail "$what: exit $rc, expected 1: $out"
	grep -qF -- "$reason" <<<"$(grep 'error:' <<<"$out")" || fail "$what: no '$reason' in: $out"
	[ "$(grep -c 'error:' <<<"$out")" -eq 1 ] || fail "$what: not one error line: $out"
	[ "$(sha "$img")" = "$before" ] || fail "$what: the image changed"
	log "$what: refused ($(grep 'error:' <<<"$out" | sed 's/.*: //'))"
}

# --- 1. Bad input: one line, exit 2 (or 1), nothing started -----------------------------
# A small image with a file system and no OS: the refusals before any appliance starts
# are proved on it (hashing a 3 GiB guest costs more than these checks).
truncate -s 256M "$T/blank.img"
mkfs.ext4 -q -F "$T/blank.img"
for bad in "--profile vmware $T/g.img" "$T/g.img" "--profile kvm" \
	"--profile kvm --accel fast $T/g.img" "--undo $T/none --profile kvm $T/g.img"; do
	rc=0
	# shellcheck disable=SC2086 # the words are the arguments
	out=$("$RCV" adapt $bad 2>&1) || rc=$?
	[ $rc -eq 2 ] || fail "adapt $bad: exit $rc, expected 2: $out"
	[ "$(wc -l <<<"$out")" -eq 1 ] || fail "adapt $bad: not one line: $out"
done
out=$("$RCV" adapt --profile kvm "$T/none.img" 2>&1) && fail "a missing image was accepted"
grep -q "cannot open $T/none.img" <<<"$out" || fail "missing image: $out"
mkdir -p "$T/used.undo" && echo "tern-adapt-undo 1" >"$T/used.undo/manifest"
refused "an undo directory already in use" "$T/blank.img" "already holds" --profile kvm \
	--undo-dir "$T/used.undo"
refused "a missing undo record" "$T/blank.img" "cannot read $T/none.undo/manifest" --undo "$T/none.undo"
mkdir -p "$T/bad.undo" && echo "something else" >"$T/bad.undo/manifest"
refused "a foreign undo record" "$T/blank.img" "not a tern undo record" --undo "$T/bad.undo"

# --- 2. Guests that cannot be adapted: refused, byte-identical ---------------------------
t=$SECONDS
refused "a disk with no OS" "$T/blank.img" "no operating system found" --profile kvm \
	--undo-dir "$T/blank.undo"
[ ! -e "$T/blank.undo/manifest" ] || fail "a refused guest has an undo record"
# A root with no initramfs tool: initramfs-tools' update-initramfs taken away (the
# receiver sees the guest as it is; nothing boots it).
noitools() {
	local off loop
	off=$(sfdisk -J "$1" | jq '.partitiontable.partitions[0].start * (.partitiontable.sectorsize // 512)')
	loop=$(losetup -f --show -o "$off" "$1")
	LOOPS+=("$loop")
	mkdir -p "$T/rw"
	mount "$loop" "$T/rw"
	MNTS+=("$T/rw")
	rm -f "$T/rw/usr/sbin/update-initramfs"
	umount_last
}
copy "$T/g.img"
noitools "$T/g.img"
refused "a guest without an initramfs tool" "$T/g.img" "no initramfs tool" --profile aws \
	--undo-dir "$T/g.undo"
log "refusals in $((SECONDS - t)) s"

# --- 3. kvm: adapt, boot on virtio-blk to the marker, undo -------------------------------
files "$IMG" "$T/orig.files"
copy "$T/kvm.img"
t=$SECONDS
"${ADAPT[@]}" --profile kvm --marker --undo-dir "$T/kvm.undo" --report "$T/kvm.json" \
	"$T/kvm.img" >"$T/kvm.out" 2>&1 || { cat "$T/kvm.out"; fail "adapt --profile kvm failed"; }
log "kvm: adapted in $((SECONDS - t)) s: $(tail -n 1 "$T/kvm.out")"
R=$T/kvm.json
jq -e '.profile == "kvm" and .os.init == "systemd" and .os.initramfs == "initramfs-tools"' "$R" >/dev/null ||
	fail "kvm report: wrong guest facts: $(jq -c .os "$R")"
uuid=$(jq -r .os.root_uuid "$R")
for want in '/etc/fstab' '/etc/udev/rules.d/70-persistent-net.rules' '/etc/network/interfaces' \
	'/etc/systemd/network/80-tern-dhcp.network' '/etc/systemd/system/open-vm-tools.service' \
	'/etc/systemd/system/tern-boot-marker.service' '/etc/initramfs-tools/modules'; do
	jq -e --arg p "$want" '[.steps[] | select(.path == $p and .why != "")] | length > 0' "$R" >/dev/null ||
		fail "kvm report: no step for $want"
done
jq -e '[.checks[] | select(.check == "initramfs") | .drivers | index("virtio_blk")] | all' "$R" >/dev/null ||
	fail "kvm report: the initramfs check does not list virtio_blk"
jq -e --arg u "$uuid" '[.checks[] | select(.check == "grub.cfg" and .root == $u and .entries > 0)] | length == 1' "$R" >/dev/null ||
	fail "kvm report: no grub.cfg check naming the root $uuid"
# What the guest holds now, read on a read-only mount of the adapted image.
mount_p1 "$T/kvm.img" "$T/mnt"
M=$T/mnt
grep -q "^UUID=$uuid / " "$M/etc/fstab" || fail "fstab does not name the root by UUID"
! grep -q '^/dev/sd' "$M/etc/fstab" || fail "fstab still names /dev/sd*"
grep -q 'RESUME=UUID=' "$M/etc/initramfs-tools/conf.d/resume" || fail "RESUME is not by UUID"
grep -E "^[[:space:]]*linux[[:space:]].* root=UUID=$uuid .*console=ttyS0,115200" "$M/boot/grub/grub.cfg" >/dev/null ||
	fail "the regenerated grub.cfg does not boot root=UUID=$uuid with the serial console"
! grep -qE '^[[:space:]]*linux.* root=/dev/' "$M/boot/grub/grub.cfg" || fail "grub.cfg names a root by device"
[ ! -e "$M/etc/udev/rules.d/70-persistent-net.rules" ] || fail "the persistent-net rule is still there"
! grep -qE '^[[:space:]]*(auto|iface)[[:space:]]+ens33' "$M/etc/network/interfaces" || fail "ens33 is still configured"
[ "$(readlink "$M/etc/systemd/system/open-vm-tools.service")" = /dev/null ] || fail "open-vm-tools is not masked"
lsinitramfs "$M/boot/initrd.img-"* >"$T/kvm.initrd" || fail "lsinitramfs cannot list the adapted initramfs"
grep -q '/virtio_blk\.ko' "$T/kvm.initrd" || fail "no virtio_blk in the initramfs"
umount_last
# Booting it is guest-launch-*'s: each variant's test launch boots a kvm-adapted clone
# on virtio-blk to the marker, and its cutover an aws-adapted disk on NVMe.

t=$SECONDS
"${ADAPT[@]}" --undo "$T/kvm.undo" "$T/kvm.img" >"$T/undo.out" 2>&1 || { cat "$T/undo.out"; fail "undo failed"; }
files "$T/kvm.img" "$T/undone.files"
if ! diff -u "$T/orig.files" "$T/undone.files" >"$T/undo.diff"; then
	head -n 40 "$T/undo.diff"
	fail "undo did not give every file back"
fi
# Byte identity is not expected: ext4 itself records the mounts (journal, superblock,
# inode change times, block allocation of rewritten files), which no file API can undo.
if [ "$(sha "$T/kvm.img")" = "$(sha "$IMG")" ]; then
	log "kvm: undo in $((SECONDS - t)) s: the image is byte-identical to the original"
else
	log "kvm: undo in $((SECONDS - t)) s: every file identical (content, type, mode, owner, mtime, link); the image differs in ext4 metadata only"
fi

log "pass in $((SECONDS - t0)) s"

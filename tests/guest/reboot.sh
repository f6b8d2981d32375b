#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# No rescan after a clean reboot (issue 13, item 3), in a real systemd guest: the
# bios-itools Debian 12 image (a copy), with tern-agent, its libraries, tern-track.service,
# tern-agent.service and the shutdown hook installed, and a 64 MiB data disk (an ext4
# partition, then raw space) that the agent replicates with the eBPF tracker to a receiver
# on the host (10.0.2.2 through QEMU's user networking). The guest waits for epoch 0,
# writes 3 chunks, reboots itself (systemctl reboot: tern-track saves, the shutdown hook
# seals), writes 2 more chunks before the agent starts, and the agent's first epoch must
# send exactly those 5 chunks, reading 5 MiB of the disk, not all of it; the target must
# equal the disk.
# Usage: reboot.sh [BUILD_DIR] (default: the worktree's build). Root; TCG; skips (77)
# with the reason where the image or QEMU cannot be had.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
BUILD=${1:-${TERN_BUILD:-$SRC/build}}
skip() { echo "SKIP: $*" >&2; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || skip "needs root (loop devices, mounts, the guest image)"
for c in qemu-system-x86_64 sfdisk partx mkfs.ext4 losetup; do
	command -v $c >/dev/null || skip "$c not installed"
done
[ -x "$BUILD/agent/tern-agent" ] && [ -x "$BUILD/receiver/tern-receiver" ] || skip "no build at $BUILD"
"$BUILD/agent/tern-agent" run --help | grep ebpf >/dev/null || skip "agent without the eBPF tracker"

T=$(mktemp -d /var/tmp/tern-reboot.XXXXXX)
QEMU_PID= RECEIVER_PID= LOOP= MNT=
cleanup() {
	local rc=$?
	set +e
	[ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null && wait "$QEMU_PID" 2>/dev/null
	[ -n "$RECEIVER_PID" ] && kill "$RECEIVER_PID" 2>/dev/null && wait "$RECEIVER_PID" 2>/dev/null
	[ -n "$MNT" ] && umount "$MNT"
	[ -n "$LOOP" ] && { partx -d "$LOOP" 2>/dev/null; losetup -d "$LOOP"; }
	if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
		echo "--- console (last 60 lines)"; tail -n 60 "$T/console.log" 2>/dev/null
		echo "--- receiver"; tail -n 20 "$T/receiver.log" 2>/dev/null
	fi
	rm -rf "$T"
	exit $rc
}
trap cleanup EXIT

rc=0; "$HERE/build-image.sh" bios-itools "$T/vm.img" >/dev/null 2>"$T/build.log" || rc=$?
[ $rc -eq 77 ] && skip "$(tail -n 1 "$T/build.log")"
[ $rc -eq 0 ] || { cat "$T/build.log"; fail "build-image.sh exited $rc"; }

# attach FILE: a loop device with its partitions, into LOOP.
attach() {
	LOOP=$(losetup --find --show "$1")
	partx -a "$LOOP" 2>/dev/null || true
	for _ in $(seq 50); do [ -b "${LOOP}p1" ] && return 0; sleep 0.1; done
	fail "partx could not add the partitions of $1"
}
detach() { partx -d "$LOOP" 2>/dev/null || true; losetup -d "$LOOP"; LOOP=; }

# The data disk: an ext4 partition (its superblock is the write evidence) and raw space.
truncate -s 64M "$T/data.img"
printf 'label: gpt\nstart=2048, size=32768, type=linux\n' | sfdisk -q "$T/data.img"
attach "$T/data.img"
mkfs.ext4 -q -F -b 4096 "${LOOP}p1"
detach

# The receiver, before the guest's files: they hold its agent bundle.
"$BUILD/receiver/tern-receiver" init --state-dir "$T/state" >/dev/null
: >"$T/receiver.log"
"$BUILD/receiver/tern-receiver" serve --state-dir "$T/state" --listen 127.0.0.1:0 \
	--api 127.0.0.1:0 --target data="$T/data-dst.img" >"$T/receiver.log" 2>&1 &
RECEIVER_PID=$!
for _ in $(seq 100); do
	PORT=$(sed -n 's/^tern-receiver: info: listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/receiver.log" | head -n 1)
	[ -n "$PORT" ] && break
	sleep 0.1
done
[ -n "$PORT" ] || fail "the receiver did not start"

# The guest's root: tern installed as scripts/install does, its libraries, the units
# enabled, a network on QEMU's, and the test's own two units.
attach "$T/vm.img"
MNT="$T/root"; mkdir -p "$MNT"
mount "${LOOP}p1" "$MNT"
R=$MNT
# Two disks of one controller may come up in either order: the root by UUID, the data
# disk by its serial, so neither depends on which is sda.
ROOT_UUID=$(blkid -s UUID -o value "${LOOP}p1")
sed -i "s|root=/dev/sda1|root=UUID=$ROOT_UUID|g" "$R/boot/grub/grub.cfg"
grep -q "root=UUID=$ROOT_UUID" "$R/boot/grub/grub.cfg" || fail "grub.cfg names no root=/dev/sda1 to replace"
sed -i "s|^/dev/sda1 |UUID=$ROOT_UUID |; /^\/dev\/sda2 /d" "$R/etc/fstab"
DATA=/dev/disk/by-id/ata-QEMU_HARDDISK_terndata
"$SRC/scripts/install" --builddir "$BUILD" --destdir "$R" >/dev/null
for lib in $(ldd "$BUILD/agent/tern-agent" | awk '$3 ~ /^\// { print $3 }'); do
	[ -e "$R$lib" ] || cp -L "$lib" "$R$lib"
done
mkdir -p "$R/etc/systemd/system/sysinit.target.wants" "$R/etc/systemd/system/tern-track.service.d"
ln -sf /usr/local/lib/systemd/system/tern-track.service "$R/etc/systemd/system/sysinit.target.wants/tern-track.service"
# Its save at shutdown leaves no journal behind (the journal is not persistent): on the
# console too.
printf '[Service]\nStandardError=journal+console\n' >"$R/etc/systemd/system/tern-track.service.d/console.conf"
mkdir -p "$R/etc/systemd/system/multi-user.target.wants"
ln -sf /usr/local/lib/systemd/system/tern-agent.service "$R/etc/systemd/system/multi-user.target.wants/tern-agent.service"
install -m 0600 "$T/state/agent-bundle.pem" "$R/etc/tern/agent.pem"
cat >"$R/etc/tern/agent.conf" <<EOF
receiver = 10.0.2.2:$PORT
credentials = /etc/tern/agent.pem
name = guest1
disk = data=$DATA
tracker = ebpf
interval = 3600
no-progress = true
EOF
chmod 0600 "$R/etc/tern/agent.conf"
# The image's ens33 is bound to a VMware MAC, which the QEMU NIC below takes.
cat >"$R/etc/network/interfaces" <<'EOF'
auto lo
iface lo inet loopback
auto ens33
iface ens33 inet static
	address 10.0.2.15/24
	gateway 10.0.2.2
EOF
printf '#!/bin/sh\nDATA=%s\n' "$DATA" >"$R/usr/local/sbin/tern-reboot-test"
cat >>"$R/usr/local/sbin/tern-reboot-test" <<'EOF'
# pre: before tern-agent; post: after it. State in /var/lib/tern-test.
M=/var/lib/tern-test
say() { echo "TERN-TEST: $*" >/dev/ttyS0; }
chunk() { dd if=/dev/urandom of=$DATA bs=4096 seek=$(($1 * 16 + 3)) count=1 oflag=direct status=none; }
mkdir -p $M
case $1 in
pre)
	if [ -e $M/rebooted ] && [ ! -e $M/wrote2 ]; then
		chunk 700; chunk 900; touch $M/wrote2; sync
		say "second boot: wrote 2 chunks before the agent"
	fi ;;
post)
	if [ ! -e $M/rebooted ]; then
		until journalctl -b -u tern-agent -o cat | grep -q "epoch 0 durable and verified"; do sleep 2; done
		chunk 100; chunk 300; chunk 500
		touch $M/rebooted; sync
		say "first boot: wrote 3 chunks; rebooting"
		systemctl reboot
	else
		until journalctl -b -u tern-agent -o cat | grep -Eq "epoch [0-9]+ durable and verified"; do sleep 2; done
		journalctl -b -u tern-track -u tern-agent -o cat --no-pager | sed 's/^/TERN-TEST: log: /' >/dev/ttyS0
		say "second boot: done"
	fi ;;
esac
EOF
chmod 0755 "$R/usr/local/sbin/tern-reboot-test"
cat >"$R/etc/systemd/system/tern-test-pre.service" <<'EOF'
[Unit]
Description=tern reboot test: writes before the agent
Before=tern-agent.service
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/tern-reboot-test pre
[Install]
WantedBy=multi-user.target
EOF
cat >"$R/etc/systemd/system/tern-test-post.service" <<'EOF'
[Unit]
Description=tern reboot test: writes while the agent runs, then reboots
After=tern-agent.service
[Service]
Type=simple
ExecStart=/usr/local/sbin/tern-reboot-test post
[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/tern-test-pre.service "$R/etc/systemd/system/multi-user.target.wants/"
ln -sf /etc/systemd/system/tern-test-post.service "$R/etc/systemd/system/multi-user.target.wants/"
umount "$MNT"; MNT=
detach

# Two AHCI disks (the root, the data disk), QEMU rebooting in place when the guest does.
qemu-system-x86_64 -machine q35 -accel tcg -m 1024 -smp 2 -display none -monitor none \
	-serial "file:$T/console.log" \
	-drive "file=$T/vm.img,format=raw,if=none,id=d0,cache=writeback" \
	-device "ide-hd,drive=d0,bus=ide.0,bootindex=0" \
	-drive "file=$T/data.img,format=raw,if=none,id=d1,cache=writeback" \
	-device "ide-hd,drive=d1,bus=ide.1,serial=terndata" \
	-netdev user,id=n0 -device "virtio-net-pci,netdev=n0,mac=00:0c:29:5e:3a:11,romfile=" \
	</dev/null >"$T/qemu.log" 2>&1 &
QEMU_PID=$!
wait_console() { # TEXT SECONDS
	local end=$((SECONDS + $2))
	while [ $SECONDS -lt $end ]; do
		grep -aq -- "$1" "$T/console.log" 2>/dev/null && return 0
		kill -0 "$QEMU_PID" 2>/dev/null || fail "QEMU exited: $(tail -n 2 "$T/qemu.log")"
		sleep 2
	done
	fail "no '$1' on the console within $2 s"
}
wait_console "TERN-TEST: first boot: wrote 3 chunks" 1500
wait_console "TERN-TEST: second boot: done" 1500
tr -d '\r' <"$T/console.log" >"$T/guest.log"
grep -q "data: saved 3 pending blocks" "$T/guest.log" || { cat "$T/guest.log"; fail "tern-track did not save the 3 writes at shutdown"; }
grep -q "data: sealed 3 pending blocks" "$T/guest.log" || { cat "$T/guest.log"; fail "the shutdown hook did not seal"; }
grep -q "data: resumed tracking from the state sealed at shutdown: 3 pending blocks" "$T/guest.log" ||
	{ cat "$T/guest.log"; fail "tern-track did not resume the sealed state at boot"; }
grep -q "tracking has been continuous since epoch 0" "$T/guest.log" || { cat "$T/guest.log"; fail "no continuity across the reboot"; }
grep -q "data: epoch 1: 5 of 1024 chunks sent" "$T/guest.log" ||
	{ cat "$T/guest.log"; fail "the first epoch after the reboot did not send exactly the 5 written chunks"; }
grep -q "data: epoch 1: read 320.00 KiB of 64.00 MiB" "$T/guest.log" ||
	{ cat "$T/guest.log"; fail "the first epoch after the reboot read more than the 5 written chunks"; }
grep -q "agent guest1: disk data epoch 1 durable and verified" "$T/receiver.log" || fail "the receiver did not verify epoch 1"
kill "$QEMU_PID"; wait "$QEMU_PID" 2>/dev/null || true; QEMU_PID=
cmp -s "$T/data.img" "$T/data-dst.img" || fail "the target differs from the guest's data disk"
echo "PASS: reboot of a systemd guest: saved at stop, sealed after the last write, resumed at boot; the next epoch sent exactly the 5 chunks written before and after"

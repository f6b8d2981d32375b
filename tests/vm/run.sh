#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The kernel-paths VM test: boots Debian's kernel (the one linux-headers-amd64 names) under
# QEMU/TCG with a busybox initramfs holding tern.ko, tern-agent and the guest tests, on
# virtio disks backed by sparse files; the guest reaches a receiver on this host's
# loopback as 10.0.2.2. Pass only when QEMU exits through isa-debug-exit with the pass
# code AND the guest's own result line is on the serial console. Exit 0/1/77.
#
# Usage: run.sh (meson sets TERN_AGENT, TERN_RECEIVER, TERNCTL, TERN_KMOD_MARKS)
# TERN_VM_DIR (default /var/tmp/tern-vm) caches the guest kernel; TERN_VM_KEEP=1 keeps
# the run's files; TERN_VM_ONLY=NN runs only tests/vm/guest-NN*.sh (while working on one).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
WORK=${TERN_VM_DIR:-/var/tmp/tern-vm}
: "${TERN_AGENT:?set by meson}" "${TERN_RECEIVER:?set by meson}" "${TERNCTL:?set by meson}"
: "${TERN_KMOD_MARKS:?set by meson}"

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
log() { echo "vm: $*"; }

[ "$(id -u)" -eq 0 ] || skip "needs root to install QEMU and the guest kernel's packages"
command -v apt-get >/dev/null || skip "needs apt-get (Debian) to fetch the guest kernel"
. "$SRC/scripts/deps.sh"
tern_install qemu-system-x86 busybox-static cpio kmod dmsetup make gcc linux-headers-amd64 ||
	skip "cannot install qemu-system-x86, busybox-static, cpio, kmod, dmsetup, linux-headers-amd64"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing after install"
# LVM and jq for the thin-snapshot launch test (guest-50-thin.sh), which skips without.
tern_install lvm2 jq || log "cannot install lvm2 and jq: the thin-snapshot test will skip"

# The guest kernel is the one Debian's headers metapackage points at, so the module is
# built against the headers of exactly the kernel it loads into.
KVER=$(dpkg-query -W -f='${Depends}' linux-headers-amd64 |
	sed -n 's/.*linux-headers-\([0-9][^ ,]*-amd64\).*/\1/p')
[ -n "$KVER" ] && [ -d "/lib/modules/$KVER/build" ] || skip "no headers for the guest kernel"

# The image's files, unpacked rather than installed: installing runs update-initramfs
# for minutes, unpacking takes seconds. Cached per version.
KROOT=$WORK/kernel-$KVER
if [ ! -f "$KROOT/done" ]; then
	log "fetching linux-image-$KVER"
	rm -rf "$KROOT" && mkdir -p "$KROOT"
	chmod 755 "$WORK" "$KROOT"  # apt's _apt user downloads into it
	if ! (cd "$KROOT" && apt-get download -qq "linux-image-$KVER" 2>/dev/null); then
		apt-get update -qq >/dev/null || true
		(cd "$KROOT" && apt-get download -qq "linux-image-$KVER" 2>/dev/null) ||
			skip "cannot download linux-image-$KVER"
	fi
	dpkg-deb -x "$KROOT"/linux-image-*.deb "$KROOT/root"
	depmod -b "$KROOT/root" "$KVER"
	rm -f "$KROOT"/linux-image-*.deb
	touch "$KROOT/done"
fi
VMLINUZ=$KROOT/root/boot/vmlinuz-$KVER

T=$(mktemp -d /tmp/tern-vm.XXXXXX)
RECEIVER_PID= QEMU_PID=
cleanup() {
	local rc=$?
	set +e
	[ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null && wait "$QEMU_PID" 2>/dev/null
	[ -n "$RECEIVER_PID" ] && kill "$RECEIVER_PID" 2>/dev/null && wait "$RECEIVER_PID" 2>/dev/null
	if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
		[ -f "$T/console.log" ] && { echo "--- guest console (tail)"; tail -n 60 "$T/console.log"; }
		[ -f "$T/receiver.log" ] && { echo "--- receiver log (tail)"; tail -n 20 "$T/receiver.log"; }
	fi
	if [ -n "${TERN_VM_KEEP:-}" ]; then echo "kept $T"; else rm -rf "$T"; fi
	exit $rc
}
trap cleanup EXIT

# 1. tern.ko against the guest's headers, outside the source tree.
log "building tern.ko for $KVER"
cp -r "$SRC/kmod-optional" "$T/kmod"
make -s -C "$T/kmod" KVER="$KVER" >"$T/kmod.log" 2>&1 || { cat "$T/kmod.log"; fail "tern.ko did not build"; }

# 2. A receiver on loopback; its credential bundle goes into the guest.
"$TERN_RECEIVER" init --state-dir "$T/state" >/dev/null
: >"$T/receiver.log"
"$TERN_RECEIVER" serve --state-dir "$T/state" --listen 127.0.0.1:0 --api 127.0.0.1:0 \
	--target kmod="$T/kmod-dst.img" --target dm="$T/dm-dst.img" \
	--target eio="$T/eio-dst.img" --target good="$T/good-dst.img" >"$T/receiver.log" 2>&1 &
RECEIVER_PID=$!
PORT=
for _ in $(seq 1 100); do
	PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/receiver.log")
	[ -n "$PORT" ] && break
	sleep 0.1
done
[ -n "$PORT" ] || fail "receiver did not start"

# 3. The initramfs: busybox, modules in load order, binaries with their libraries, tests.
R=$T/root
mkdir -p "$R"/{bin,dev,proc,sys,tmp,etc/tern,lib/modules,tests,run}
cp /bin/busybox "$R/bin/busybox"
for m in virtio_pci virtio_blk virtio_net dm_snapshot dm_thin_pool; do
	modprobe -d "$KROOT/root" -S "$KVER" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
done | awk '!seen[$0]++' | grep -v '/crc32c-intel\.ko' >"$T/mods" # TCG has no SSE4.2
while read -r m; do
	cp "$m" "$R/lib/modules/"
	basename "$m" >>"$R/etc/modules.order"
done <"$T/mods"
cp "$T/kmod/tern.ko" "$R/lib/modules/tern.ko"
copy_bin() { # copy_bin PATH NAME: the binary as /bin/NAME, its libraries at their paths
	cp "$1" "$R/bin/$2"
	ldd "$1" | awk '/=> \// { print $3 } /^\t\/.*ld-linux/ { print $1 }' | while read -r lib; do
		mkdir -p "$R$(dirname "$lib")"
		cp -L "$lib" "$R$lib"
	done
}
copy_bin "$TERN_AGENT" tern-agent
copy_bin "$TERN_KMOD_MARKS" kmod-marks
copy_bin "$(command -v dmsetup)" dmsetup
# The receiver, ternctl and LVM in the guest too (guest-50-thin.sh): a thin snapshot
# needs dm-thin-pool, which this host's kernel may lack. lvm.conf for a guest without
# udev, lvmetad or thin_check: lvm makes its own device nodes and links.
copy_bin "$TERN_RECEIVER" tern-receiver
copy_bin "$TERNCTL" ternctl
if command -v lvm >/dev/null && command -v jq >/dev/null; then
	copy_bin "$(command -v lvm)" lvm
	copy_bin "$(command -v jq)" jq
	mkdir -p "$R/etc/lvm"
	cat >"$R/etc/lvm/lvm.conf" <<'EOF'
devices {
	obtain_device_list_from_udev = 0
	external_device_info_source = "none"
	use_devicesfile = 0
}
activation {
	udev_sync = 0
	udev_rules = 0
	monitoring = 0
}
global {
	use_lvmpolld = 0
	event_activation = 0
	thin_check_executable = ""
}
EOF
fi
cp "$HERE/init" "$R/init"
cp "$HERE"/guest-"${TERN_VM_ONLY:-}"*.sh "$HERE/lib.sh" "$R/tests/"
chmod +x "$R/init" "$R/tests/"*.sh
cp "$T/state/agent-bundle.pem" "$R/etc/tern/agent-bundle.pem"
(cd "$R" && find . | cpio -o -H newc --quiet) >"$T/initramfs.cpio"

# 4. Disks: a scratch disk for the module's marks and a source with mixed content.
truncate -s 64M "$T/scratch.img" "$T/src.img"
for i in 1 5 9 13 40 41; do
	head -c 1048576 /dev/urandom | dd of="$T/src.img" bs=1M seek=$i conv=notrunc status=none
done
head -c 2097152 < <(yes "tern replicates disks block by block") |
	dd of="$T/src.img" bs=1M seek=20 conv=notrunc status=none
# The dm-snapshot test's origin (a linear dm device over vdc in the guest) and COW disk.
truncate -s 32M "$T/dm-src.img"
truncate -s 24M "$T/dm-cow.img"
# The thin-snapshot test's physical volume.
truncate -s 96M "$T/thin-pv.img"
for i in 2 11 27; do
	head -c 1048576 /dev/urandom | dd of="$T/dm-src.img" bs=1M seek=$i conv=notrunc status=none
done
head -c 1048576 < <(yes "every epoch reads a point in time") |
	dd of="$T/dm-src.img" bs=1M seek=6 conv=notrunc status=none

# 5. Boot. The guest prints "TERN-VM: cutover-ready NAME" when its agent has replicated
# and wants the cutover, which this side asks for through ternctl as an operator would.
log "booting $KVER under TCG (receiver on 10.0.2.2:$PORT)"
: >"$T/console.log"
qemu-system-x86_64 -accel tcg -m 768 -smp 2 -nographic -no-reboot \
	-kernel "$VMLINUZ" -initrd "$T/initramfs.cpio" \
	-append "console=ttyS0 panic=-1 quiet tern.port=$PORT" \
	-drive file="$T/scratch.img",format=raw,if=none,id=d0,discard=unmap \
	-device virtio-blk-pci,drive=d0 \
	-drive file="$T/src.img",format=raw,if=none,id=d1,discard=unmap \
	-device virtio-blk-pci,drive=d1 \
	-drive file="$T/dm-src.img",format=raw,if=none,id=d2,discard=unmap \
	-device virtio-blk-pci,drive=d2 \
	-drive file="$T/dm-cow.img",format=raw,if=none,id=d3,discard=unmap \
	-device virtio-blk-pci,drive=d3 \
	-drive file="$T/thin-pv.img",format=raw,if=none,id=d4,discard=unmap \
	-device virtio-blk-pci,drive=d4 \
	-netdev user,id=n0 -device virtio-net-pci,netdev=n0,romfile= \
	-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
	</dev/null >"$T/console.log" 2>&1 &
QEMU_PID=$!
DONE_CUT=()
deadline=$((SECONDS + ${TERN_VM_TIMEOUT:-600}))
while kill -0 "$QEMU_PID" 2>/dev/null; do
	[ $SECONDS -lt $deadline ] || fail "the guest did not finish in ${TERN_VM_TIMEOUT:-600} s"
	for name in $(sed -n 's/.*TERN-VM: cutover-ready \([a-z0-9]*\).*/\1/p' "$T/console.log"); do
		[[ " ${DONE_CUT[*]} " == *" $name "* ]] && continue
		DONE_CUT+=("$name")
		log "cutover of $name"
		if "$TERNCTL" --state-dir "$T/state" cutover "$name" --verify full --timeout 120 \
			>"$T/cutover-$name.log" 2>&1; then
			log "cutover of $name: $(tail -n 1 "$T/cutover-$name.log")"
		else
			cat "$T/cutover-$name.log"
			log "cutover of $name failed"
		fi
	done
	sleep 0.5
done
rc=0
wait "$QEMU_PID" || rc=$?
QEMU_PID=
tr -d '\r' <"$T/console.log" | grep -E '^(TERN-VM|kmod-marks|PASS|FAIL|SKIP|guest)' || true

# isa-debug-exit makes QEMU exit (code << 1) | 1: the guest writes 1 pass, 2 fail, 3 skip.
# QEMU exits 1 on its own errors too, so the guest's result line must agree.
result=$(tr -d '\r' <"$T/console.log" | sed -n 's/^TERN-VM-RESULT: \([a-z]*\).*/\1/p' | tail -n 1)
case "$rc:$result" in
3:pass) ;;
7:skip) skip "$(tr -d '\r' <"$T/console.log" | sed -n 's/^TERN-VM-RESULT: skip //p')" ;;
*) fail "guest result '${result:-none}', QEMU exit $rc" ;;
esac

# 6. The cutover proofs: each target equals its source as the guest left it.
for name in "${DONE_CUT[@]}"; do
	want=$(tr -d '\r' <"$T/console.log" | sed -n "s/^TERN-VM: source-sha256 $name \([0-9a-f]*\).*/\1/p")
	got=$(sha256sum "$T/$name-dst.img" | cut -d' ' -f1)
	[ -n "$want" ] && [ "$want" = "$got" ] || fail "$name: target SHA-256 $got, source ${want:-unknown}"
	grep -q "verify full: match" "$T/cutover-$name.log" || fail "$name: ternctl reported no verified cutover"
	log "$name: target SHA-256 equals the source's ($got)"
done
if [[ " ${DONE_CUT[*]} " == *" kmod "* ]]; then
	[ "$(sha256sum <"$T/src.img" | cut -d' ' -f1)" = \
	  "$(tr -d '\r' <"$T/console.log" | sed -n 's/^TERN-VM: source-sha256 kmod \([0-9a-f]*\).*/\1/p')" ] ||
		fail "the guest's source hash is not the disk file's"
fi
if [[ " ${DONE_CUT[*]} " == *" dm "* ]]; then
	[ "$(sha256sum <"$T/dm-src.img" | cut -d' ' -f1)" = \
	  "$(tr -d '\r' <"$T/console.log" | sed -n 's/^TERN-VM: source-sha256 dm \([0-9a-f]*\).*/\1/p')" ] ||
		fail "the guest's dm origin hash is not its disk file's"
fi
# 7. Copies the guest made without a cutover (guest-40-eio.sh): each target as the guest
# computed it; the EIO disk shown as error, with why.
for name in $(tr -d '\r' <"$T/console.log" | sed -n 's/^TERN-VM: copy-sha256 \([a-z0-9]*\) .*/\1/p'); do
	want=$(tr -d '\r' <"$T/console.log" | sed -n "s/^TERN-VM: copy-sha256 $name \([0-9a-f]*\).*/\1/p")
	got=$(sha256sum "$T/$name-dst.img" | cut -d' ' -f1)
	[ "$want" = "$got" ] || fail "$name: target SHA-256 $got, expected ${want:-unknown}"
	log "$name: target SHA-256 as expected ($got)"
done
if tr -d '\r' <"$T/console.log" | grep -q "^TERN-VM: copy-sha256 eio "; then
	"$TERNCTL" --state-dir "$T/state" status >"$T/status.txt" 2>&1 || true
	grep -q "^eio  *eio  *error" "$T/status.txt" && grep -q "not a verified copy" "$T/status.txt" ||
		{ cat "$T/status.txt"; fail "ternctl does not show the EIO disk as error, with why"; }
fi
echo "PASS: kernel paths in the VM"

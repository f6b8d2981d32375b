#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Test launch while replication continues (issue 11, item 3): a test guest (an old VMware
# guest, built by build-image.sh as VARIANT: bios-itools, bios-dracut or uefi-itools) is
# the source, attached to a loop device with its root file system
# mounted and a writer changing files on it; tern-agent replicates it continuously to a
# file target on an XFS file system (btrfs when xfsprogs cannot be had). Then:
#   - bad launch requests are refused with one line, and nothing is made;
#   - `ternctl launch NAME --test --profile kvm --boot-check` (virtio-blk) passes: the clone, a reflink beside the target (its extents shared with it),
#     is adapted and boots to the marker with a DHCP address on the console, while
#     epochs keep being acknowledged;
#   - the launch recorded the epoch and Merkle root the receiver verified for the target;
#   - the target is never written by a launch: after the writer stops, one more epoch
#     (scan tracker: it compares the source with its own fingerprints, so a stray write
#     to the target would never be repaired) leaves target = source, byte for byte;
#   - a second agent whose disk holds no operating system gets its launch refused with
#     the reason, and its target is byte-identical afterwards (bios-itools only: the
#     refusals are the same for every guest, and each costs an appliance start);
#   - `ternctl launch NAME --discard` removes every clone and file of the launches.
# Usage: launch.sh [VARIANT] (default bios-itools).
# Root only; skips with a reason where the image, QEMU or libguestfs cannot be had.
#   - `ternctl cutover NAME --adapt P`: a disk with no OS is proven, its adaptation refused
#     and the target left as it was (bios-itools only); the guest is proven, adapted for aws on a reflink,
#     boot-checked on NVMe and only then put in place: both roots printed, the proven one
#     the record's.
#   - failback: the cut-over disk runs on NVMe (and writes); a receiver with the original
#     disk as a reconcile=yes target and `tern-agent --once --reconcile` reading the
#     migrated disk send exactly the chunks that differ (counted apart from tern); the
#     adaptation's undo then makes the original disk boot on AHCI again.
#   - uefi-itools: every boot check is OVMF with an empty NVRAM, and what boots is the
#     fallback loader the adaptation adds (the source has none; the firmware starts a
#     boot option it made for the disk, naming no loader file).
# TERN_LAUNCH_PROFILES="kvm aws" sets the test launches (default "kvm" for bios-itools:
# aws is booted by the cutover; none for the other variants, whose cutover and failback
# are what differs from bios-itools: each adaptation costs minutes under TCG, and the
# guest suite must fit the CI budget).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
: "${TERN_AGENT:?set by meson}" "${TERN_RECEIVER:?set by meson}" "${TERNCTL:?set by meson}"
VARIANT=${1:-bios-itools}
case $VARIANT in bios-itools | bios-dracut | uefi-itools) ;; *)
	echo "usage: launch.sh [bios-itools|bios-dracut|uefi-itools]" >&2; exit 2 ;; esac
if [ "$VARIANT" = bios-itools ]; then
	PROFILES=${TERN_LAUNCH_PROFILES-kvm}
else
	PROFILES=${TERN_LAUNCH_PROFILES-}
fi

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
log() { echo "launch $VARIANT: $*"; }

[ "$(id -u)" -eq 0 ] || skip "needs root (loop devices, mounts, the guest image)"
command -v apt-get >/dev/null || skip "needs apt-get (Debian) to build the guest"
. "$SRC/scripts/deps.sh"
tern_install qemu-system-x86 qemu-utils util-linux e2fsprogs jq || skip "cannot install QEMU and jq"
UEFI=0
if [ "${VARIANT%%-*}" = uefi ]; then
	UEFI=1
	tern_install ovmf mtools || skip "cannot install OVMF and mtools"
fi
FSTYPE=xfs
if ! tern_install xfsprogs || ! command -v mkfs.xfs >/dev/null; then
	FSTYPE=btrfs
	command -v mkfs.btrfs >/dev/null || skip "neither xfsprogs nor btrfs-progs: no reflink file system"
fi
grep -qw "$FSTYPE" /proc/filesystems || modprobe "$FSTYPE" 2>/dev/null ||
	skip "this kernel has no $FSTYPE"

T=$(mktemp -d "${TMPDIR:-/tmp}/tern-launch.XXXXXX")
PIDS=() LOOP= LOOP2= MOUNTS=() FROZEN=
cleanup() {
	local rc=$? i
	set +e
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	[ -z "$FROZEN" ] || fsfreeze -u "$FROZEN"
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "${MOUNTS[i]}"; done
	if [ -n "$LOOP" ]; then partx -d "$LOOP" 2>/dev/null; losetup -d "$LOOP"; fi
	if [ -n "$LOOP2" ]; then partx -d "$LOOP2" 2>/dev/null; losetup -d "$LOOP2"; fi
	if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
		for f in receiver.log agent.log; do
			[ -f "$T/$f" ] && { echo "--- $f (tail)"; tail -n 25 "$T/$f"; }
		done
	fi
	rm -rf "$T"
	exit $rc
}
trap cleanup EXIT
t0=$SECONDS

# --- the source: the guest's disk on a loop device, its root mounted and written -------
rc=0
"$HERE/build-image.sh" "$VARIANT" "$T/src.img" >/dev/null || rc=$?
[ $rc -ne 77 ] || skip "cannot build the $VARIANT image (see above)"
[ $rc -eq 0 ] || fail "build-image.sh $VARIANT failed ($rc)"
log "guest image ready in $((SECONDS - t0)) s"
# The UEFI guest's ESP (partition 2, at 1 MiB) has GRUB at \EFI\debian only, as Debian's
# grub-install leaves it: an empty NVRAM finds nothing (boot-proof.sh shows it), so a
# boot with one can only be the fallback loader the adaptation adds. mtools reads FAT
# without a mount.
export MTOOLS_SKIP_CHECK=1
esp_has() { mdir -i "$1@@$((1024 * 1024))" "::$2" >/dev/null 2>&1; }
if [ $UEFI = 1 ]; then
	esp_has "$T/src.img" /EFI/debian/grubx64.efi || fail "the source has no \\EFI\\debian\\grubx64.efi"
	esp_has "$T/src.img" /EFI/BOOT && fail "the source has a fallback loader already"
fi
# firmware_fallback CONSOLE: OVMF started a boot option it made itself for the disk (the
# removable-media path), not one naming a loader file (which only NVRAM could hold).
firmware_fallback() {
	[ $UEFI = 1 ] || return 0
	local line
	# grep reads the file itself: a grep -m1 behind a pipe would end its writer with
	# SIGPIPE, which pipefail takes for a failure.
	line=$(grep -a -m1 "BdsDxe: starting Boot" "$1" | tr -d '\r') ||
		fail "no firmware boot on $1"
	case $line in *'\EFI\'* | *.efi* | *.EFI*) fail "the firmware booted a loader named in NVRAM: $line" ;; esac
	log "firmware: $line"
}
LOOP=$(losetup --find --show "$T/src.img") || skip "cannot attach a loop device"
partx -a "$LOOP" 2>/dev/null || true
for _ in $(seq 50); do [ -b "${LOOP}p1" ] && break; sleep 0.1; done
[ -b "${LOOP}p1" ] || skip "partx could not add the partitions of $LOOP"
mkdir -p "$T/root" "$T/fs"
mount "${LOOP}p1" "$T/root"
MOUNTS+=("$T/root")
# The writer: a file changed and synced every half second, as a running server would.
(
	mkdir -p "$T/root/var/lib/tern-writer"
	n=0
	while :; do
		head -c 65536 /dev/urandom >"$T/root/var/lib/tern-writer/f$((n % 16))"
		sync -f "$T/root/var/lib/tern-writer"
		n=$((n + 1))
		sleep 0.5
	done
) &
WRITER=$!
PIDS+=("$WRITER")

# --- the targets: on a reflink file system; the state dir is not ----------------------
truncate -s 8G "$T/fs.img"
"mkfs.$FSTYPE" -q "$T/fs.img" >/dev/null 2>&1 || fail "mkfs.$FSTYPE failed"
mount -o loop "$T/fs.img" "$T/fs" || skip "cannot mount a $FSTYPE loop file system"
MOUNTS+=("$T/fs")
truncate -s 256M "$T/plain.img"
head -c 4M /dev/urandom | dd of="$T/plain.img" bs=1M seek=10 conv=notrunc status=none

STATE=$T/state
"$TERN_RECEIVER" init --state-dir "$STATE" >/dev/null
: >"$T/receiver.log"
"$TERN_RECEIVER" serve --state-dir "$STATE" --listen 127.0.0.1:0 --api 127.0.0.1:0 \
	--target vm="$T/fs/vm.img" --target plain="$T/fs/plain.img" >"$T/receiver.log" 2>&1 &
PIDS+=($!)
PORT=
for _ in $(seq 100); do
	PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/receiver.log" | head -n 1)
	[ -n "$PORT" ] && [ -f "$STATE/api.addr" ] && break
	sleep 0.1
done
[ -n "$PORT" ] || fail "the receiver did not start"
# --copy all: the checks below compare target and source byte for byte, free space of the
# mounted root included, which --copy used (the default) sends as zeros.
agent() { # NAME DISK: continuous replication with the scan tracker
	"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$STATE/agent-bundle.pem" \
		--name "$1" --disk "$2" --tracker scan --interval 2 --copy all --no-progress \
		>>"$T/agent-$1.log" 2>&1 &
	PIDS+=($!)
}
ctl() { "$TERNCTL" --state-dir "$STATE" "$@"; }
# How the guest boots on the platforms: firmware arguments of tests/guest/boot.sh, and
# how its original machine boots the failed-back disk (IMAGE CONSOLE).
BOOT_FW=()
[ $UEFI = 0 ] || BOOT_FW=(--uefi)
boot_original() {
	if [ $UEFI = 0 ]; then
		"$SRC/tests/guest/boot.sh" "$1" --bus ahci --console "$2"
		return
	fi
	# The old machine's NVRAM names \EFI\debian\grubx64.efi; a new VM's is empty, so a
	# copy with that same loader at the removable-media path stands in for the entry.
	cp --sparse=always "$1" "$T/original.img"
	mmd -i "$T/original.img@@$((1024 * 1024))" ::/EFI/BOOT 2>/dev/null || true
	mcopy -i "$T/original.img@@$((1024 * 1024))" ::/EFI/debian/grubx64.efi "$T/grubx64.efi"
	mcopy -i "$T/original.img@@$((1024 * 1024))" "$T/grubx64.efi" ::/EFI/BOOT/BOOTX64.EFI
	"$SRC/tests/guest/boot.sh" "$T/original.img" --bus ahci --uefi --console "$2"
}
verified() { grep -c "agent $1: disk $2 epoch [0-9]* durable and verified" "$T/receiver.log" || true; }
wait_verified() { # AGENT DISK N: until N epochs are verified
	for _ in $(seq 1200); do
		[ "$(verified "$1" "$2")" -ge "$3" ] && return 0
		sleep 0.5
	done
	fail "agent $1: not $3 verified epochs of $2 within 10 minutes"
}
agent web1 vm="$LOOP"
agent plain1 plain="$T/plain.img"
wait_verified web1 vm 1
wait_verified plain1 plain 1
log "first copies verified after $((SECONDS - t0)) s"

# --- refusals: one line each, nothing made ---------------------------------------------
for bad in "launch web1 --test --profile vmware" "launch web1" "launch web1 --test --discard" \
	"launch web1 --discard --boot-check"; do
	# shellcheck disable=SC2086 # the words are the arguments
	out=$(ctl $bad 2>&1) && fail "ternctl $bad was accepted"
	[ "$(wc -l <<<"$out")" -eq 1 ] || fail "ternctl $bad: not one line: $out"
done
out=$(ctl launch nosuch --test 2>&1) && fail "a launch of an unknown agent was accepted"
grep -q "no live session" <<<"$out" || fail "unknown agent: $out"
[ ! -e "$STATE/launch/nosuch" ] || [ -z "$(ls -A "$STATE/launch/nosuch")" ] ||
	fail "a refused launch left files"

# --- a disk tern cannot adapt: refused with its reason, the target untouched -----------
# Nothing writes plain1's source: its epochs change nothing on the target. The refusals
# do not depend on the guest: run once, with bios-itools (each starts an appliance).
ALL=0
[ "$VARIANT" = bios-itools ] && ALL=1
if [ $ALL = 1 ]; then
	sum=$(sha256sum <"$T/fs/plain.img")
	out=$(ctl launch plain1 --test --profile kvm 2>&1) && fail "a disk with no OS was launched: $out"
	grep -q "failed: adaptation for kvm failed: no operating system" <<<"$out" ||
		fail "no reason for the refused adaptation: $out"
	[ "$(sha256sum <"$T/fs/plain.img")" = "$sum" ] || fail "a refused launch changed the target"
	log "a disk with no OS: refused with its reason, target unchanged"
fi

# --- test launches of the guest while it replicates ------------------------------------
n=0
for prof in $PROFILES; do
	n=$((n + 1))
	before=$(verified web1 vm)
	ts=$SECONDS
	ctl launch web1 --test --profile "$prof" --boot-check >"$T/launch-$prof.out" 2>&1 ||
		{ cat "$T/launch-$prof.out"; fail "test launch with $prof did not pass"; }
	after=$(verified web1 vm)
	cat "$T/launch-$prof.out"
	grep -q "^PASSED$" "$T/launch-$prof.out" || fail "$prof: no PASSED"
	[ "$after" -ge $((before + 2)) ] ||
		fail "$prof: replication stalled during the launch ($before -> $after verified epochs)"
	ctl status --json >"$T/status.json"
	L=$(jq -c --arg p "$prof" '[.launches[] | select(.agent == "web1" and .profile == $p)] | last' "$T/status.json")
	[ "$(jq -r .state <<<"$L")" = passed ] || fail "$prof: status says $(jq -r .state <<<"$L")"
	addr=$(jq -r .address <<<"$L")
	console=$(jq -r .console <<<"$L")
	grep -aq "TERN-BOOT-OK $addr" "$console" || fail "$prof: no marker with $addr on $console"
	[[ $addr == 10.0.2.* ]] || fail "$prof: $addr is not a DHCP address of QEMU's user network"
	[ -f "$(jq -r .report <<<"$L")" ] || fail "$prof: no adaptation report"
	if [ $UEFI = 1 ]; then
		jq -e '.steps[] | select(.step == "uefi fallback")' "$(jq -r .report <<<"$L")" >/dev/null ||
			fail "$prof: the adaptation report has no uefi fallback step"
		firmware_fallback "$console"
	fi
	# What the clone holds: the epoch the receiver verified, with that root.
	epoch=$(jq -r '.disks[0].epoch' <<<"$L")
	root=$(jq -r '.disks[0].root' <<<"$L")
	grep -q "agent web1: disk vm epoch $epoch durable and verified .* merkle root $root$" \
		"$T/receiver.log" || fail "$prof: epoch $epoch with root $root was never verified"
	clone=$(jq -r '.disks[0].clone' <<<"$L")
	[ "$(jq -r '.disks[0].how' <<<"$L")" = reflink ] || fail "$prof: the clone is not a reflink"
	[ "$(jq -r '.disks[0].copied_bytes' <<<"$L")" = 0 ] || fail "$prof: the reflink copied data"
	case $clone in "$T/fs/.tern-launch/web1/"*) ;; *) fail "$prof: clone at $clone, not beside the target" ;; esac
	filefrag -v "$clone" | grep shared >/dev/null || fail "$prof: the clone shares no extent with the target"
	log "$prof: passed in $((SECONDS - ts)) s (clone $(jq -r .seconds.clone <<<"$L") s," \
		"adaptation $(jq -r .seconds.adapt <<<"$L") s, boot $(jq -r .seconds.boot <<<"$L") s);" \
		"$((after - before)) epochs verified meanwhile"
done

# --- the target was never written by a launch ------------------------------------------
kill "$WRITER"
wait "$WRITER" 2>/dev/null || true
PIDS=("${PIDS[@]/$WRITER/}")
# The source's root is frozen for the comparison, as a cutover freezes it: a mounted ext4
# still writes after the last sync (the journal's commits, lazy inode-table init soon
# after the mount), which would race two epochs and the read of the source. Thawed here
# on every path (and by cleanup, should the test be killed meanwhile).
sync -f "$T/root"
fsfreeze -f "$T/root"
FROZEN=$T/root
before=$(verified web1 vm)
same=0 ok=0
for _ in $(seq 1200); do # an epoch started after the freeze, ended
	[ "$(verified web1 vm)" -ge $((before + 2)) ] && { ok=1; break; }
	sleep 0.5
done
[ $ok = 1 ] && [ "$(sha256sum <"$T/fs/vm.img")" = "$(sha256sum <"$LOOP")" ] && same=1
fsfreeze -u "$T/root"
FROZEN=
[ $ok = 1 ] || fail "agent web1: not 2 more verified epochs of vm within 10 minutes"
[ $same = 1 ] || fail "the target differs from the source after the launches"
log "the target equals the source after $n launches"

# --- discard -----------------------------------------------------------------------------
if [ "$n" -gt 0 ]; then
	out=$(ctl launch web1 --discard) || fail "discard failed: $out"
	grep -q "^agent web1: $n test launch\(es\)\? discarded$" <<<"$out" || fail "discard: $out"
	[ ! -e "$T/fs/.tern-launch/web1" ] || fail "discard left $(find "$T/fs/.tern-launch/web1")"
	[ ! -e "$STATE/launch/web1" ] || fail "discard left $STATE/launch/web1"
fi
if [ $ALL = 1 ]; then
	[ -n "$(find "$T/fs/.tern-launch/plain1" -name plain.img)" ] || fail "discard of web1 took plain1's clone"
	ctl launch plain1 --discard >/dev/null || fail "discard of plain1 failed"
fi
[ ! -e "$T/fs/.tern-launch" ] || fail "discard left $(find "$T/fs/.tern-launch")"
out=$(ctl launch web1 --discard 2>&1) && fail "a second discard found something: $out"

# --- cutover with adaptation -------------------------------------------------------------
# A disk with no OS: the cutover is proven, the adaptation refused, the target left.
if [ $ALL = 1 ]; then
	sum=$(sha256sum <"$T/fs/plain.img")
	out=$(ctl cutover plain1 --adapt kvm 2>&1) && fail "adapting a disk with no OS passed: $out"
	grep -q "ADAPTATION FAILED: no operating system" <<<"$out" || fail "plain1: $out"
	grep -q "proven, unadapted target is left as it was" <<<"$out" || fail "plain1: $out"
	[ "$(sha256sum <"$T/fs/plain.img")" = "$sum" ] || fail "a failed adaptation changed the target"
fi
# The guest: proven, adapted on a reflink, booted on NVMe, and only then put in place.
ts=$SECONDS
ctl cutover web1 --adapt aws --boot-check >"$T/cutover.out" 2>&1 ||
	{ cat "$T/cutover.out"; fail "cutover --adapt aws --boot-check failed"; }
cat "$T/cutover.out"
proven=$(sed -n 's/^  proven root \([0-9a-f]*\)$/\1/p' "$T/cutover.out")
adapted=$(sed -n 's/^  adapted root \([0-9a-f]*\):.*/\1/p' "$T/cutover.out")
[ -n "$proven" ] && [ -n "$adapted" ] || fail "the cutover did not print both roots"
grep -q "^root=$proven$" "$STATE/disks/vm.state" || fail "the proven root is not the record's"
grep -q "merkle root $proven, final epoch" "$T/cutover.out" || fail "the proof names another root"
[ "$adapted" != "$proven" ] || fail "the adaptation changed nothing"
grep -q "changed /etc/fstab" "$T/cutover.out" || fail "the adaptation's changes are not listed"
report=$(sed -n 's/^  report \([^;]*\); undo copy .*/\1/p' "$T/cutover.out")
jq -e '[.checks[] | select(.check == "initramfs") | (.drivers | index("nvme") != null and index("ena") != null)] | all' \
	"$report" >/dev/null || fail "aws: the initramfs check does not list nvme and ena ($report)"
if [ $UEFI = 1 ]; then
	grep -q "boot check: booted on nvme (UEFI, empty NVRAM) to multi-user, DHCP address 10.0.2." \
		"$T/cutover.out" || fail "no UEFI boot check on NVMe"
	firmware_fallback "$(sed -n 's/^  boot check: .*(console \(.*\))$/\1/p' "$T/cutover.out")"
	esp_has "$T/fs/vm.img" /EFI/BOOT/BOOTX64.EFI || fail "the adapted target has no fallback loader"
else
	grep -q "boot check: booted on nvme to multi-user, DHCP address 10.0.2." "$T/cutover.out" ||
		fail "no boot check on NVMe"
fi
[ "$(sha256sum <"$T/fs/vm.img")" != "$(sha256sum <"$LOOP")" ] || fail "the target is not the adapted disk"
[ -z "$(find "$T/fs" -name '.tern-adapt-*')" ] || fail "the adapted clone was left beside the target"
# The marker unit was the boot check's: the disk put in service goes without it.
grep -q "boot check's marker unit removed from the disk" "$T/cutover.out" ||
	fail "the cutover did not say it removed the marker unit"
LOOP2=$(losetup --find --show --read-only "$T/fs/vm.img")
partx -a "$LOOP2" 2>/dev/null || true
for _ in $(seq 50); do [ -b "${LOOP2}p1" ] && break; sleep 0.1; done
mkdir -p "$T/adapted"
mount -o ro,noload "${LOOP2}p1" "$T/adapted" || fail "cannot mount the adapted root read-only"
MOUNTS+=("$T/adapted")
[ -f "$T/adapted/etc/fstab" ] || fail "partition 1 of the adapted disk is not its root"
[ ! -e "$T/adapted/etc/systemd/system/tern-boot-marker.service" ] &&
	[ ! -e "$T/adapted/usr/local/sbin/tern-boot-marker" ] ||
	fail "the disk put in service still has the test launch's marker unit"
umount "$T/adapted"
unset 'MOUNTS[${#MOUNTS[@]}-1]'
partx -d "$LOOP2" 2>/dev/null || true
losetup -d "$LOOP2"
LOOP2=
log "cutover --adapt aws --boot-check in $((SECONDS - ts)) s: proven $proven, adapted $adapted"

# --- failback: the migrated machine's disk back onto its original disk -------------------
# The migrated machine runs on NVMe and writes its disk (the cut-over target, booted
# without an overlay). Then a receiver on the "old host" takes the original disk (the
# source, unchanged since the cutover) as a target that holds an earlier copy
# (reconcile=yes), an agent reads the migrated disk, and only the chunks that differ
# cross the link. The adaptation's undo then makes the disk boot on AHCI again.
undo=$(sed -n 's/^  report .*; undo copy \([^ ]*\) (tern-receiver adapt --undo.*/\1/p' "$T/cutover.out")
[ -d "$undo" ] || fail "the cutover named no undo copy"
# (A process ended by the signal may exit non-zero: that is not the test's failure.)
for p in "${PIDS[@]}"; do
	[ -n "$p" ] || continue
	kill "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
done
PIDS=()
umount "$T/root"
MOUNTS=("$T/fs")
ts=$SECONDS
"$SRC/tests/guest/boot.sh" "$T/fs/vm.img" --bus nvme --writable --console "$T/cloud.console" \
	"${BOOT_FW[@]}" >"$T/cloud.out" 2>&1 || { cat "$T/cloud.out"; fail "the migrated disk did not boot on NVMe"; }
log "the migrated machine ran on NVMe: $(cat "$T/cloud.out")"
# Chunks (64 KiB) where the migrated disk differs from the original, counted apart from tern.
want=$(python3 - "$T/fs/vm.img" "$LOOP" <<'PY'
import sys
cs = 65536
n = 0
with open(sys.argv[1], "rb") as a, open(sys.argv[2], "rb") as b:
    while True:
        x, y = a.read(cs), b.read(cs)
        if not x and not y:
            break
        n += x != y
print(n)
PY
)
[ "$want" -gt 0 ] || fail "the migrated disk does not differ from the original"
BACK=$T/state-back
"$TERN_RECEIVER" init --state-dir "$BACK" >/dev/null
: >"$T/back.log"
"$TERN_RECEIVER" serve --state-dir "$BACK" --listen 127.0.0.1:0 --api none \
	--target vm="$LOOP",reconcile=yes >"$T/back.log" 2>&1 &
BACK_PID=$!
PIDS+=("$BACK_PID")
BPORT=
for _ in $(seq 100); do
	BPORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/back.log" | head -n 1)
	[ -n "$BPORT" ] && break
	sleep 0.1
done
[ -n "$BPORT" ] || { cat "$T/back.log"; fail "the failback receiver did not start"; }
"$TERN_AGENT" run --receiver "127.0.0.1:$BPORT" --credentials "$BACK/agent-bundle.pem" \
	--name web1 --disk vm="$T/fs/vm.img" --once --reconcile --no-progress >"$T/agent-back.log" 2>&1 ||
	{ cat "$T/agent-back.log"; fail "the failback copy failed"; }
sent=$(sed -n 's/.*epoch 0: \([0-9]*\) of \([0-9]*\) chunks sent.*/\1/p' "$T/agent-back.log" | tail -n 1)
[ "$sent" = "$want" ] || { cat "$T/agent-back.log"; fail "failback sent $sent chunks; $want differ"; }
kill "$BACK_PID"
wait "$BACK_PID" 2>/dev/null || true
PIDS=()
[ "$(sha256sum <"$LOOP")" = "$(sha256sum <"$T/fs/vm.img")" ] ||
	fail "the original disk does not equal the migrated one after the failback"
"$TERN_RECEIVER" adapt --undo "$undo" --accel tcg "$LOOP" >"$T/undo.out" 2>&1 ||
	{ cat "$T/undo.out"; fail "the adaptation's undo failed on the failed-back disk"; }
sync
# The undo put the old machine's files back: fstab names /dev/sda1 again, nothing of the
# adaptation is left (the fallback loader on UEFI included).
mkdir -p "$T/back"
mount -o ro,noload "${LOOP}p1" "$T/back" || fail "cannot mount the failed-back root read-only"
MOUNTS+=("$T/back")
grep -q "^/dev/sda1[[:space:]]" "$T/back/etc/fstab" ||
	fail "the failed-back fstab does not name /dev/sda1: the undo was not applied"
[ ! -e "$T/back/etc/systemd/system/tern-boot-marker.service" ] || fail "the marker unit is back"
umount "$T/back"
unset 'MOUNTS[${#MOUNTS[@]}-1]'
if [ $UEFI = 1 ]; then
	esp_has "$T/src.img" /EFI/BOOT/BOOTX64.EFI && fail "the undo left the fallback loader"
fi
boot_original "$T/src.img" "$T/back.console" >"$T/back.out" 2>&1 ||
	{ cat "$T/back.out"; fail "the failed-back disk does not boot on AHCI"; }
log "failback in $((SECONDS - ts)) s: $sent of the disk's chunks sent (the $want that differ);" \
	"undone, booted on AHCI: $(cat "$T/back.out")"
echo "PASS: test launches while replicating, cutover and failback, in $((SECONDS - t0)) s"

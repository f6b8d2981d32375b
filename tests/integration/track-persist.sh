#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The eBPF tracker across a reboot, on a loop device: tern-agent track --save at shutdown,
# a write after the save, --seal once the file system holding the state is unmounted,
# the pins removed (as a reboot loses them), --start with that file system mounted
# read-only: the next agent's epoch sends exactly the chunks written before and after,
# reading no more, and the target equals the source. An unsealed state, a file system
# mounted read-write since the seal, and another disk are refused with the reason, and the
# agent falls back to reconciling by fingerprints.
. "$(dirname "$0")/lib.sh"
need_root
command -v sfdisk >/dev/null && command -v partx >/dev/null && command -v mkfs.ext4 >/dev/null ||
	skip "needs sfdisk, partx (util-linux) and mkfs.ext4"
"$TERN_AGENT" run --help | grep "ebpf" >/dev/null || skip "agent without the eBPF tracker"

init_state "$T/state"
truncate -s 64M "$T/disk.img"
# p1: the ext4 file system holding the state (the root, in a real system); p2: the source.
printf 'label: gpt\nstart=2048, size=32768, type=linux\nstart=34816, size=65536, type=linux\n' |
	sfdisk -q "$T/disk.img"
loop_attach_parts DEV "$T/disk.img"
mkfs.ext4 -q -F -b 4096 "${DEV}p1"
make_mixed_image "$T/fill.img" 32
dd if="$T/fill.img" of="${DEV}p2" bs=1M oflag=direct status=none
start_receiver "$T/state" --target part="$T/part-dst.img"
MNT="$T/mnt"
mkdir -p "$MNT"
SRC="${DEV}p2" # the source track is told about (another disk in the last case)
track() { "$TERN_AGENT" track "$1" --disk part="$SRC" --tracker ebpf --state-dir "$MNT/tern" --run-dir "$T/run"; }

wait_for() {
	for _ in $(seq 1 600); do [ "$(grep -c -- "$2" "$1" 2>/dev/null)" -ge "${3:-1}" ] && return 0; sleep 0.1; done
	cat "$1"; fail "timed out waiting for '$2' in $1"
}
agent() { # agent LOG: one agent until its next epoch past the first is verified, then stop
	"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$T/state/agent-bundle.pem" \
		--name a1 --disk part="${DEV}p2" --interval 1 --tracker ebpf --no-progress >"$1" 2>&1 &
	AGENT_PID=$!
	wait_for "$1" "durable and verified" 2
	kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=
}
chunk() { # chunk N: one 4 KiB block of random data into chunk N of p2
	dd if=/dev/urandom of="${DEV}p2" bs=4096 seek=$(($1 * 16 + 3)) count=1 oflag=direct status=none
}
shutdown_() { # shutdown_ [--no-seal]: save, a write after it, unmount, seal
	track --save >"$T/save.log" 2>&1 || { cat "$T/save.log"; fail "save"; }
	chunk 300
	umount "$MNT"
	[ "${1:-}" = --no-seal ] && return 0
	track --seal >"$T/seal.log" 2>&1 || { cat "$T/seal.log"; fail "seal"; }
	grep -q "part: sealed [0-9]* pending blocks" "$T/seal.log" || { cat "$T/seal.log"; fail "not sealed"; }
}
boot() { # boot LOG: the pins are gone, the state's file system mounted read-only
	[ -e "$TERN_BPF_PIN_ROOT/part/link" ] || fail "no pinned tracker before the reboot"
	rm -rf "${TERN_BPF_PIN_ROOT:?}/part"
	mount -o ro "${DEV}p1" "$MNT"
	track --start >"$1" 2>&1 ||
		{ cat "$1"; fail "track --start failed"; }
	mount -o remount,rw "$MNT"
	track --consume >>"$1" 2>&1 || { cat "$1"; fail "consume"; }
	[ ! -e "$MNT/tern/part.state" ] || fail "--consume left the state"
}
last_epoch() { grep "part: epoch [0-9]*: [0-9]* of 512 chunks sent" "$1" | tail -n 1; }

# 1. Replicating, then a clean reboot with writes before the save, between the save and
# the seal, and after the boot.
agent "$T/a0.log"
mount "${DEV}p1" "$MNT"
MOUNTS+=("$MNT")
for c in 5 100 200; do chunk $c; done
shutdown_
grep -q "part: saved 3 pending blocks" "$T/save.log" || { cat "$T/save.log"; fail "save did not hold the 3 writes"; }
grep -q "part: sealed 4 pending blocks" "$T/seal.log" || { cat "$T/seal.log"; fail "the seal missed the write after the save"; }
boot "$T/start.log"
grep -q "part: resumed tracking from the state sealed at shutdown: 4 pending blocks" "$T/start.log" ||
	{ cat "$T/start.log"; fail "the sealed state was not resumed"; }
for c in 400 500; do chunk $c; done
agent "$T/a1.log"
grep -q "eBPF tracker resumed from" "$T/a1.log" || { cat "$T/a1.log"; fail "the agent did not resume the tracker"; }
grep -q "tracking has been continuous since epoch" "$T/a1.log" || { cat "$T/a1.log"; fail "no continuity across the reboot"; }
# Exactly the 6 chunks written, reading those 6 chunks of 64 KiB, not the disk.
grep -q "part: epoch [0-9]*: 6 of 512 chunks sent" "$T/a1.log" ||
	{ cat "$T/a1.log"; fail "the first epoch after the reboot did not send exactly the 6 written chunks"; }
grep -q "part: epoch [0-9]*: read 384.00 KiB of 32.00 MiB" "$T/a1.log" ||
	{ cat "$T/a1.log"; fail "the first epoch after the reboot read more than the written chunks"; }
[ "$(sha_disk "${DEV}p2")" = "$(sha "$T/part-dst.img")" ] || fail "target differs from the source"

# 2. Refusals: each falls back, and the agent reads the whole disk and sends what differs.
refused() { # refused LOG REASON: the state was refused for REASON, the agent reconciles
	grep -q "part: not resuming from .*: .*$2" "$1" || { cat "$1"; fail "not refused for '$2'"; }
	agent "$T/r.log"
	grep -q "tracking has been continuous" "$T/r.log" && { cat "$T/r.log"; fail "a refused state was resumed"; }
	grep -q "part: epoch [0-9]*: read 32.00 MiB of 32.00 MiB" "$T/r.log" ||
		{ cat "$T/r.log"; fail "the reconciling epoch did not read the whole disk"; }
	[ "$(sha_disk "${DEV}p2")" = "$(sha "$T/part-dst.img")" ] || fail "target differs after the fallback ($2)"
}
# Unsealed: the shutdown hook never ran (a crash after the save).
chunk 7
shutdown_ --no-seal
boot "$T/start.log"
refused "$T/start.log" "not sealed"
# Another system mounted the state's file system read-write after the seal.
chunk 8
shutdown_
mount "${DEV}p1" "$MNT"; umount "$MNT"
boot "$T/start.log"
refused "$T/start.log" "was written since the seal"
# A garbled state file: one byte of its pending set flipped.
chunk 10
shutdown_
mount "${DEV}p1" "$MNT"
printf 'X' | dd of="$MNT/tern/part.state" bs=1 seek=5000 conv=notrunc status=none
umount "$MNT"
boot "$T/start.log"
refused "$T/start.log" "checksum does not match"
# Another disk: a copy of this one, sealed state and all, on another loop device.
chunk 9
shutdown_
cp --sparse=always "$T/disk.img" "$T/copy.img"
loop_attach_parts COPY "$T/copy.img"
SRC="${COPY}p2"
boot "$T/start.log"
grep -q "part: not resuming from .*: another disk" "$T/start.log" || { cat "$T/start.log"; fail "another disk's state was not refused"; }
pass "track across a reboot: exactly the 6 chunks written before and after were sent, no rescan; unsealed, written-since, other-disk and garbled states refused, the agent reconciled"

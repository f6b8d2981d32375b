#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# --copy used: a disk with a GPT of two partitions, ext4 on one and XFS on the other, both
# mounted, filled with random files of which most are then deleted (their stale bytes stay
# in the free space), written to during the copy. The agent sends the free space as zeros
# without reading it: the first copy's bytes on the wire (the agent's own count) stay
# within 1.1x of the used files' contents compressed with zstd -1; a cutover with --verify
# full passes; the target's file systems check clean (e2fsck -fn, xfs_repair -n) and hold
# the same files (SHA-256 of every file). --copy all sends the stale free space too.
. "$(dirname "$0")/lib.sh"
: "${TERNCTL:?set by meson}"

need_root
for t in sfdisk partx mkfs.ext4 e2fsck zstd; do
	command -v "$t" >/dev/null || skip "$t not installed"
done
HAVE_XFS=1
if ! command -v mkfs.xfs >/dev/null && command -v apt-get >/dev/null; then
	. "$(dirname "$0")/../../scripts/deps.sh"
	tern_install xfsprogs >/dev/null 2>&1 || true
fi
command -v mkfs.xfs >/dev/null && command -v xfs_repair >/dev/null || HAVE_XFS=0

# 2 x 300 MiB partitions.
truncate -s 640M "$T/src.img"
printf 'label: gpt\nstart=2048, size=300MiB, type=linux\nsize=300MiB, type=linux\n' |
	sfdisk -q "$T/src.img" >/dev/null
loop_attach_parts SDEV "$T/src.img"
mkfs.ext4 -q -F -b 4096 "${SDEV}p1"
mkdir -p "$T/m1" "$T/m2"
mount "${SDEV}p1" "$T/m1" || skip "cannot mount ext4 here"
MOUNTS+=("$T/m1")
DIRS=("$T/m1")
if [ $HAVE_XFS = 1 ]; then
	mkfs.xfs -q -f "${SDEV}p2"
	mount "${SDEV}p2" "$T/m2" || skip "cannot mount XFS here"
	MOUNTS+=("$T/m2")
	DIRS+=("$T/m2")
fi

# 200 MiB of random files in each, of which 4 in 5 are deleted: 40 MiB stay.
for d in "${DIRS[@]}"; do
	for i in $(seq 0 24); do
		head -c 8M /dev/urandom >"$d/f$i"
	done
	sync -f "$d"
	for i in $(seq 0 24); do
		[ $((i % 5)) -eq 0 ] || rm "$d/f$i"
	done
	sync -f "$d"
	# The writer's files, there from the start: it rewrites them during the copies.
	for i in $(seq 0 19); do head -c 65536 /dev/urandom >"$d/w$i"; done
done

init_state "$T/state"
start_receiver "$T/state" --target s="$T/s.img" --target b="$T/b.img" --target a="$T/a.img"

wait_for() {
	for _ in $(seq 1 600); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	cat "$1"; fail "timed out waiting for '$2' in $1"
}
# Waits for the second epoch to start after now to be durable: it read the file systems'
# free space after now.
after_two_epochs() {
	local e
	e=$(sed -n 's/^[a-z]*: epoch \([0-9]*\) durable.*/\1/p' "$1" | tail -n 1)
	wait_for "$1" "epoch $((e + 2)) durable and verified"
}
sums() { # sums DIR: SHA-256 of every file under DIR
	(cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
}

# replicate ID TRACKER: continuous replication of the disk as ID while a writer writes
# 64 KiB files under 20 names in each file system, then a cutover with --verify full
# (the hook stops the writer). Checks what the agent said it skipped; sets WIRE0, the
# first copy's bytes on the wire (the agent's own count).
replicate() {
	local id=$1 trk=$2 log="$T/agent-$1.log" hook
	rm -f "$T/stop" "$T/stopped"
	(
		i=0
		while [ -d "$T" ] && [ ! -e "$T/stop" ]; do
			for d in "${DIRS[@]}"; do head -c 65536 /dev/urandom >"$d/w$((i % 20))"; done
			i=$((i + 1))
			sleep 0.02
		done
		touch "$T/stopped"
	) &
	WRITER_PID=$!
	hook="touch $T/stop; while [ ! -e $T/stopped ]; do sleep 0.05; done"
	"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$T/state/agent-bundle.pem" \
		--name "host-$id" --disk "$id=$SDEV" --interval 1 --no-progress --pre-cutover "$hook" \
		--tracker "$trk" ${TERN_TEST_DEBUG:+--log-level debug} >"$log" 2>&1 &
	AGENT_PID=$!
	wait_for "$log" "epoch 1 durable and verified"
	# Free space (zeros on the target) allocated and never written (an unwritten extent)
	# keeps the deleted files' bytes on the source: no write for the tracker to see, yet
	# no missed change either. The agent reads such newly used chunks; else --verify full
	# fails the cutover below. Nearly all the free space, so the deleted files' is in.
	for d in "${DIRS[@]}"; do
		fallocate -l $(( $(df -B1 --output=avail "$d" | tail -n 1) - 16 * 1048576 )) "$d/fill"
		sync -f "$d"
	done
	after_two_epochs "$log"
	"$TERNCTL" --state-dir "$T/state" cutover "host-$id" --verify full --timeout 120 >"$T/ctl.out" 2>&1 ||
		{ cat "$T/ctl.out" "$log"; fail "$trk: the cutover with --verify full failed"; }
	wait "$AGENT_PID" || { cat "$log"; fail "$trk: agent did not exit 0 after the cutover"; }
	AGENT_PID=
	wait "$WRITER_PID" 2>/dev/null || true
	WRITER_PID=
	grep -q "^disk $id: .* verify full: match" "$T/ctl.out" || { cat "$T/ctl.out"; fail "$trk: no full proof"; }
	grep -q "^$id: skipped [0-9.]* [KMG]iB free in ext4 ${SDEV}p1 mounted at $T/m1" "$log" ||
		{ cat "$log"; fail "$trk: the agent did not say what it skipped of the ext4"; }
	if [ $HAVE_XFS = 1 ]; then
		grep -q "skipped [0-9.]* [KMG]iB free in xfs ${SDEV}p2 mounted at $T/m2" "$log" ||
			{ cat "$log"; fail "$trk: the agent did not say what it skipped of the XFS"; }
	fi
	WIRE0=$(sed -n "s/^$id: copied .*, \([0-9]*\) bytes)\$/\1/p" "$log")
	[ -n "$WIRE0" ] || { cat "$log"; fail "$trk: no count of the first copy's bytes"; }
	grep "^tern-agent: info: tracker" "$log" | head -n 1
	grep "do not fit\|reconciliation found\|reconciling" "$log" || true
	grep "^$id: \(copied\|epoch\|skipped\)" "$log" | grep -v "durable" | tail -n 4
}

# check_target IMG TAG: the target's file systems are clean and hold the source's files
# (the source is untouched since the hook stopped the writer).
check_target() {
	loop_attach_parts TDEV "$1"
	e2fsck -fn "${TDEV}p1" >"$T/fsck.out" 2>&1 || { cat "$T/fsck.out"; fail "$2: the target's ext4 is not clean"; }
	mkdir -p "$T/t1" "$T/t2"
	mount -o ro,noload "${TDEV}p1" "$T/t1" || fail "$2: cannot mount the target's ext4"
	sums "$T/t1" >"$T/dst1.sum"
	umount "$T/t1"
	cmp -s "$T/src1.sum" "$T/dst1.sum" || { diff "$T/src1.sum" "$T/dst1.sum" | head; fail "$2: the target's ext4 holds other files"; }
	[ $HAVE_XFS = 1 ] || return 0
	# A frozen XFS leaves its log covered but not unmounted, with its free-block count
	# in the log (lazy counters): as after a crash, a mount replays it first; only then
	# can xfs_repair -n judge. nouuid: the source's file system, same UUID, is mounted.
	mount -o nouuid "${TDEV}p2" "$T/t2" && umount "$T/t2" || fail "$2: cannot mount the target's XFS"
	xfs_repair -n "${TDEV}p2" >"$T/repair.out" 2>&1 || { cat "$T/repair.out"; fail "$2: the target's XFS is not clean"; }
	mount -o ro,nouuid "${TDEV}p2" "$T/t2" || fail "$2: cannot mount the target's XFS"
	sums "$T/t2" >"$T/dst2.sum"
	umount "$T/t2"
	cmp -s "$T/src2.sum" "$T/dst2.sum" || { diff "$T/src2.sum" "$T/dst2.sum" | head; fail "$2: the target's XFS holds other files"; }
}

# The block tracker auto picks where it can (eBPF; else scan, said in its log), then the
# scan tracker (each epoch re-reads all but the free space).
WIRES=()
for run in b:auto s:scan; do
	id=${run%%:*}
	trk=${run#*:}
	# The used data as the first copy starts, compressed: every file's contents through
	# zstd -1, as the agent's level 1 would (the writer's files are there already).
	USED_Z=$(find "${DIRS[@]}" -type f -print0 | sort -z | xargs -0 cat | zstd -1 -c | wc -c)
	replicate "$id" "$trk"
	echo "$trk: first copy $WIRE0 bytes on the wire; used files through zstd -1: $USED_Z bytes"
	[ "$WIRE0" -le $((USED_Z * 11 / 10)) ] ||
		fail "$trk: the first copy sent $WIRE0 bytes, over 1.1x the used data's $USED_Z"
	sums "$T/m1" >"$T/src1.sum"
	[ $HAVE_XFS = 1 ] && sums "$T/m2" >"$T/src2.sum"
	check_target "$T/$id.img" "$trk"
	WIRES+=("$WIRE0")
	# The unwritten extents' stale bytes would join the next run's first copy: freed.
	for d in "${DIRS[@]}"; do rm "$d/fill"; sync -f "$d"; done
done

# --copy all reads and sends the free space: the deleted files' stale random bytes.
run_agent --credentials "$T/state/agent-bundle.pem" --name host2 --disk a="$SDEV" --copy all ||
	{ cat "$T/agent.log"; fail "--copy all failed"; }
WIRE_ALL=$(sed -n 's/^a: copied .*, \([0-9]*\) bytes)$/\1/p' "$T/agent.log")
echo "--copy all: $WIRE_ALL bytes on the wire"
grep -q "skipped" "$T/agent.log" && fail "--copy all skipped free space"
[ "$WIRE_ALL" -ge $((WIRE0 * 3)) ] || fail "--copy all sent $WIRE_ALL bytes, not far more than $WIRE0"
[ $HAVE_XFS = 1 ] || echo "SKIPPED the XFS half: mkfs.xfs or xfs_repair missing (xfsprogs)"
# A bad value is refused with a one-line reason.
rc=0; run_agent --credentials "$T/state/agent-bundle.pem" --name host2 --disk a="$SDEV" --copy some || rc=$?
[ $rc -ne 0 ] && grep -q -- "--copy some: used or all" "$T/agent.log" || fail "--copy some was not refused"

pass "used blocks only: ${WIRES[*]} bytes on the wire (auto, scan) for ${USED_Z} of used data compressed (--copy all: ${WIRE_ALL}); fsck clean, same files, --verify full passed"

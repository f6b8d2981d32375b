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
mkfs.ext4 -q -F "${SDEV}p1"
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
done

init_state "$T/state"
start_receiver "$T/state" --target u="$T/u.img" --target a="$T/a.img"

# The writer: 64 KiB files under 20 names in each file system until $T/stop exists.
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
HOOK="touch $T/stop; while [ ! -e $T/stopped ]; do sleep 0.05; done"
wait_for() {
	for _ in $(seq 1 600); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	cat "$1"; fail "timed out waiting for '$2' in $1"
}

"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$T/state/agent-bundle.pem" \
	--name host1 --disk u="$SDEV" --interval 1 --no-progress --pre-cutover "$HOOK" \
	--tracker scan >"$T/agent.log" 2>&1 &
AGENT_PID=$!
wait_for "$T/agent.log" "epoch 2 durable and verified"
"$TERNCTL" --state-dir "$T/state" cutover host1 --verify full --timeout 120 >"$T/ctl.out" 2>&1 ||
	{ cat "$T/ctl.out" "$T/agent.log"; fail "the cutover with --verify full failed"; }
wait "$AGENT_PID" || { cat "$T/agent.log"; fail "agent did not exit 0 after the cutover"; }
AGENT_PID=
wait "$WRITER_PID" 2>/dev/null || true
WRITER_PID=
grep -q "^disk u: .* verify full: match" "$T/ctl.out" || { cat "$T/ctl.out"; fail "no full proof"; }
grep -q "^u: skipped [0-9.]* [KMG]iB free in ext4 ${SDEV}p1 mounted at $T/m1" "$T/agent.log" ||
	{ cat "$T/agent.log"; fail "the agent did not say what it skipped of the ext4"; }
if [ $HAVE_XFS = 1 ]; then
	grep -q "skipped [0-9.]* [KMG]iB free in xfs ${SDEV}p2 mounted at $T/m2" "$T/agent.log" ||
		{ cat "$T/agent.log"; fail "the agent did not say what it skipped of the XFS"; }
fi

# The used data, compressed: every file's contents through zstd -1, as the agent's level 1
# would do it (the writer's files are in, as they are in the copy).
USED_Z=$(find "${DIRS[@]}" -type f -print0 | sort -z | xargs -0 cat | zstd -1 -c | wc -c)
WIRE0=$(sed -n 's/^u: copied .*, \([0-9]*\) bytes)$/\1/p' "$T/agent.log")
[ -n "$WIRE0" ] || { cat "$T/agent.log"; fail "no count of the first copy's bytes"; }
echo "first copy: $WIRE0 bytes on the wire; used files zstd -1: $USED_Z bytes"
[ "$WIRE0" -le $((USED_Z * 11 / 10)) ] ||
	fail "the first copy sent $WIRE0 bytes, over 1.1x the used data's $USED_Z"

# The target's file systems: clean, and the same files. The source stays mounted and
# untouched since the hook stopped the writer.
(cd "$T/m1" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$T/src1.sum"
[ $HAVE_XFS = 1 ] && (cd "$T/m2" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$T/src2.sum"
stop_receiver
loop_attach_parts TDEV "$T/u.img"
e2fsck -fn "${TDEV}p1" >"$T/fsck.out" 2>&1 || { cat "$T/fsck.out"; fail "the target's ext4 is not clean"; }
mkdir -p "$T/t1" "$T/t2"
mount -o ro,noload "${TDEV}p1" "$T/t1" || fail "cannot mount the target's ext4"
MOUNTS+=("$T/t1")
(cd "$T/t1" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$T/dst1.sum"
cmp -s "$T/src1.sum" "$T/dst1.sum" || { diff "$T/src1.sum" "$T/dst1.sum" | head; fail "the target's ext4 holds other files"; }
if [ $HAVE_XFS = 1 ]; then
	# A frozen XFS leaves its log covered but not unmounted, and its free-block count
	# in the log (lazy counters): as after a crash, a mount replays it first; only then
	# can xfs_repair -n judge. nouuid: the source's file system, same UUID, is mounted.
	mount -o nouuid "${TDEV}p2" "$T/t2" && umount "$T/t2" || fail "cannot mount the target's XFS"
	xfs_repair -n "${TDEV}p2" >"$T/repair.out" 2>&1 || { cat "$T/repair.out"; fail "the target's XFS is not clean"; }
	mount -o ro,nouuid "${TDEV}p2" "$T/t2" || fail "cannot mount the target's XFS"
	MOUNTS+=("$T/t2")
	(cd "$T/t2" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$T/dst2.sum"
	cmp -s "$T/src2.sum" "$T/dst2.sum" || { diff "$T/src2.sum" "$T/dst2.sum" | head; fail "the target's XFS holds other files"; }
fi

# --copy all reads and sends the free space: the deleted files' stale random bytes.
start_receiver "$T/state" --target u="$T/u.img" --target a="$T/a.img"
run_agent --credentials "$T/state/agent-bundle.pem" --name host2 --disk a="$SDEV" --copy all ||
	{ cat "$T/agent.log"; fail "--copy all failed"; }
WIRE_ALL=$(sed -n 's/^a: copied .*, \([0-9]*\) bytes)$/\1/p' "$T/agent.log")
echo "--copy all: $WIRE_ALL bytes on the wire"
grep -q "skipped" "$T/agent.log" && fail "--copy all skipped free space"
[ "$WIRE_ALL" -ge $((WIRE0 * 3)) ] || fail "--copy all sent $WIRE_ALL bytes, not far more than $WIRE0"
# A bad value is refused with a one-line reason.
rc=0; run_agent --credentials "$T/state/agent-bundle.pem" --name host2 --disk a="$SDEV" --copy some || rc=$?
[ $rc -ne 0 ] && grep -q -- "--copy some: used or all" "$T/agent.log" || fail "--copy some was not refused"

pass "used blocks only: ${WIRE0} bytes on the wire for ${USED_Z} of used data compressed (--copy all: ${WIRE_ALL}); fsck clean, same files, --verify full passed"

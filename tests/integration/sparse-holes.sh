#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Holes at scale (issue 13, item 6): a sparse 16 GiB image with 1 MiB of random data at a
# few places (the first MiB, two in the middle, the last whole MiB, and a short unaligned
# tail) is copied: the data regions and the tail compare equal, the holes around them
# read as zeros, the target allocates little more than the data, and a cutover with
# --verify full (both sides re-read and fingerprinted) passes. A run of holes costs one
# batch and one ZERO frame on the wire, not one per MiB: the first copy's frames stay
# within 64 KiB of the data they carry (one ZERO frame per MiB of holes was 0.56 MB
# here). 16 GiB, not more: --verify full reads the whole target back, holes included.
. "$(dirname "$0")/lib.sh"
: "${TERNCTL:?set by meson}"

MiB=$((1024 * 1024))
GiB=$((1024 * MiB))
TAIL=12345
SIZE=$((16 * GiB + TAIL))
AT=(0 $((5 * 1024 + 5)) $((10 * 1024 + 333)) $((16 * 1024 - 1))) # MiB offsets of the data
init_state "$T/state"
truncate -s "$SIZE" "$T/src.img"
for m in "${AT[@]}"; do
	head -c "$MiB" /dev/urandom | dd of="$T/src.img" bs=1M seek="$m" conv=notrunc status=none
done
head -c "$TAIL" /dev/urandom | dd of="$T/src.img" bs=1 seek=$((16 * GiB)) conv=notrunc status=none
DATA=$((${#AT[@]} * MiB + TAIL))

start_receiver "$T/state" --target d="$T/dst.img,max-size=17G"
"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$T/state/agent-bundle.pem" \
	--name holes --interval 1 --no-progress --disk d="$T/src.img" >"$T/agent.log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 1 1200); do
	[ "$(grep -c "d: epoch [0-9]* durable and verified" "$T/agent.log")" -ge 2 ] && break
	kill -0 "$AGENT_PID" 2>/dev/null || { cat "$T/agent.log"; fail "the agent exited"; }
	sleep 0.1
done
grep -q "d: epoch 1 durable and verified" "$T/agent.log" || { cat "$T/agent.log"; fail "no verified epoch 1 in 120 s"; }

# The first copy's bytes on the wire: the data's DATA frames (random, sent raw) and a few
# ZERO frames, not one frame per MiB of holes.
wire=$(sed -n 's/^d: copied .* on the wire (.*, \([0-9]*\) bytes)$/\1/p' "$T/agent.log")
[ -n "$wire" ] || { cat "$T/agent.log"; fail "no summary of the first copy"; }
[ "$wire" -lt $((DATA + 65536)) ] ||
	fail "the first copy put $wire bytes on the wire for $DATA bytes of data: a frame per MiB of holes?"

"$TERNCTL" --state-dir "$T/state" cutover holes --verify full --timeout 300 >"$T/ctl.out" 2>&1 ||
	{ cat "$T/ctl.out" "$T/agent.log"; fail "the cutover with --verify full failed"; }
wait "$AGENT_PID" || { cat "$T/ctl.out" "$T/agent.log"; fail "the agent did not exit 0 after the cutover"; }
AGENT_PID=
grep -q "^cutover=1" "$T/state/disks/d.state" || { cat "$T/ctl.out"; fail "the cutover with --verify full did not pass"; }

[ "$(stat -c %s "$T/dst.img")" = "$SIZE" ] || fail "the target is $(stat -c %s "$T/dst.img") bytes, not $SIZE"
for m in "${AT[@]}"; do
	# The data MiB and the MiB on either side of it (holes: zeros on both).
	from=$((m > 0 ? m - 1 : 0))
	cmp <(dd if="$T/src.img" bs=1M skip="$from" count=3 status=none) \
		<(dd if="$T/dst.img" bs=1M skip="$from" count=3 status=none) ||
		fail "the target differs around MiB $m"
	[ "$from" -eq "$m" ] || [ "$(dd if="$T/dst.img" bs=1M skip="$from" count=1 status=none | tr -d '\0' | wc -c)" -eq 0 ] ||
		fail "the hole before MiB $m is not zeros on the target"
done
cmp <(tail -c "$TAIL" "$T/src.img") <(tail -c "$TAIL" "$T/dst.img") || fail "the tail differs"
alloc=$(($(stat -c %b "$T/dst.img") * $(stat -c %B "$T/dst.img")))
[ "$alloc" -lt $((DATA + 16 * MiB)) ] || fail "the target allocates $alloc bytes for $DATA bytes of data"
SUMMARY="16 GiB sparse: $wire bytes on the wire for $DATA of data, $alloc allocated, --verify full passed"

# A block target (a loop device) with old bytes in the source's holes: the receiver zeroes
# the merged runs of holes (GiBs each) a piece at a time, and they read back as zeros.
if [ "$(id -u)" -ne 0 ] || ! command -v losetup >/dev/null || [ ! -e /dev/loop-control ]; then
	pass "$SUMMARY; block target skipped (needs root and loop devices)"
	exit 0
fi
truncate -s $((16 * GiB + MiB)) "$T/blk.img"
OLD=(100 $((3 * 1024 + 7)) $((12 * 1024)))
for m in "${OLD[@]}"; do
	head -c "$MiB" /dev/urandom | dd of="$T/blk.img" bs=1M seek="$m" conv=notrunc status=none
done
loop_attach BDEV "$T/blk.img"
stop_receiver
start_receiver "$T/state" --target b="$BDEV"
run_agent --credentials "$T/state/agent-bundle.pem" --name holesb --disk b="$T/src.img" ||
	{ cat "$T/agent.log"; fail "the copy to a block target failed"; }
grep -q "b: epoch 0 durable and verified" "$T/agent.log" || { cat "$T/agent.log"; fail "no verified copy to the block target"; }
for m in "${OLD[@]}"; do
	[ "$(dd if="$BDEV" bs=1M skip="$m" count=1 iflag=direct status=none | tr -d '\0' | wc -c)" -eq 0 ] ||
		fail "the block target's old bytes at MiB $m were not zeroed"
done
for m in "${AT[@]}"; do
	cmp <(dd if="$T/src.img" bs=1M skip="$m" count=1 status=none) \
		<(dd if="$BDEV" bs=1M skip="$m" count=1 iflag=direct status=none) ||
		fail "the block target differs at MiB $m"
done
pass "$SUMMARY; a loop device target's old bytes in the holes zeroed"

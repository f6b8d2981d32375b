#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Continuous replication with the scan tracker: a writer keeps changing the source while
# the agent runs epochs; after the last epoch the target's SHA-256 equals the source's,
# and the epochs after the full copy sent only a small part of the disk.
. "$(dirname "$0")/lib.sh"

init_state "$T/state"
make_mixed_image "$T/src.img" 32
SIZE=$(stat -c %s "$T/src.img")
start_receiver "$T/state" --target d="$T/dst.img"

"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$T/state/agent-bundle.pem" \
	--disk d="$T/src.img" --tracker auto --interval 1 --epochs 4 --no-progress \
	>"$T/agent.log" 2>&1 &
AGENT_PID=$!
# The writer: scattered 4 KiB random writes, and one zeroed MiB, during the epochs.
for round in 1 2 3; do
	sleep 0.5
	for k in 1 2 3 4 5; do
		off=$(( (RANDOM * 7919 + k * 104729 + round) % (SIZE / 4096) ))
		dd if=/dev/urandom of="$T/src.img" bs=4096 seek=$off count=1 conv=notrunc status=none
	done
done
dd if=/dev/zero of="$T/src.img" bs=1M seek=5 count=1 conv=notrunc status=none
# The agent stops after its 4th epoch; the writes above all end before the 3rd begins.
wait $AGENT_PID || { cat "$T/agent.log"; fail "agent exited non-zero"; }

grep -q "picked scan" "$T/agent.log" || fail "auto did not say which tracker it picked"
[ "$(grep -c 'durable and verified' "$T/agent.log")" -eq 5 ] || { cat "$T/agent.log"; fail "expected 5 verified epochs"; }
[ "$(sha "$T/src.img")" = "$(sha "$T/dst.img")" ] || fail "SHA-256 differs after the last epoch"
grep -q '^epoch=4$' "$T/state/disks/d.state" || fail "state record not at epoch 4"
grep -q '^verified=1$' "$T/state/disks/d.state" || fail "last epoch not recorded as verified"
# Bytes on the wire after the full copy: under 10% of the disk.
LATER=$(sed -n 's/.*epoch [1-9][0-9]*: read .* \([0-9]*\) bytes on the wire/\1/p' "$T/agent.log" |
	awk '{ s += $1 } END { print s + 0 }')
[ "$LATER" -gt 0 ] || fail "later epochs sent nothing although the source changed"
[ "$LATER" -lt $((SIZE / 10)) ] || fail "later epochs sent $LATER bytes, over 10% of $SIZE"
# An epoch with nothing changed sends no chunk.
grep -q "epoch 4: read .* 0 changed chunks" "$T/agent.log" || { cat "$T/agent.log"; fail "idle epoch sent chunks"; }
# Epochs that change nothing leave the saved fingerprints alone (rewriting them is 256 MiB
# per TiB of disk each interval); a new agent resuming an unchanged disk is such a case.
INODE=$(stat -c %i "$T/state/disks/d.fps")
"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$T/state/agent-bundle.pem" \
	--disk d="$T/src.img" --interval 1 --epochs 1 --no-progress >"$T/agent2.log" 2>&1 ||
	{ cat "$T/agent2.log"; fail "the idle agent failed"; }
[ "$(grep -c 'durable and verified' "$T/agent2.log")" -eq 2 ] || { cat "$T/agent2.log"; fail "expected 2 idle epochs"; }
[ "$(stat -c %i "$T/state/disks/d.fps")" = "$INODE" ] || fail "idle epochs rewrote the fingerprint file"
pass "scan tracker kept the target in step; later epochs sent $LATER bytes"

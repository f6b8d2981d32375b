#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The scan tracker's deltas: after a full copy of 256 MiB of random data, 1% of its size
# rewritten as scattered random 4 KiB blocks goes on the wire as those blocks (within 1.1x
# the changed bytes: the data is incompressible), not as their 64 KiB chunks (~16x). And a
# patch over a target changed behind tern's back is refused (ESTALE), never mixed in: the
# agent reconciles with whole chunks and the target equals the source again; so is a patch
# a block sum collision left a changed block out of (a test seam makes one).
. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || skip "python3 not installed"

B=4096
SIZE=$((256 << 20))
NCHG=$((SIZE / B / 100))
init_state "$T/state"
head -c $SIZE /dev/urandom >"$T/src.img"
start_receiver "$T/state" --target d="$T/dst.img"

# Rewrites $2 distinct random blocks of the source with random bytes (seed $1).
rewrite() {
	python3 - "$T/src.img" "$1" "$2" <<-'PY'
	import os, random, sys
	B, fd = 4096, os.open(sys.argv[1], os.O_WRONLY)
	rng = random.Random(int(sys.argv[2]))
	for b in sorted(rng.sample(range(os.fstat(fd).st_size // B), int(sys.argv[3]))):
	    os.pwrite(fd, os.urandom(B), b * B)
	os.fsync(fd)
	PY
}

# Waits up to 300 s for epoch $1's verified line in $T/agent.log.
wait_epoch() {
	local i
	for i in $(seq 1 3000); do
		grep -q "epoch $1 durable and verified" "$T/agent.log" && return 0
		kill -0 "$AGENT_PID" 2>/dev/null || break
		sleep 0.1
	done
	cat "$T/agent.log"; fail "no verified epoch $1"
}

# Continuous with scan: the full copy, then (in the 10 s pause) the rewrite, then epoch 1.
"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$T/state/agent-bundle.pem" \
	--disk d="$T/src.img" --tracker scan --interval 10 --epochs 1 --no-progress \
	>"$T/agent.log" 2>&1 &
AGENT_PID=$!
wait_epoch 0
rewrite 7 $NCHG
wait $AGENT_PID || { cat "$T/agent.log"; fail "agent exited non-zero"; }
AGENT_PID=
[ "$(sha "$T/src.img")" = "$(sha_disk "$T/dst.img")" ] || fail "SHA-256 differs after the delta epoch"
WIRE=$(sed -n 's/.*epoch 1: read .* \([0-9]*\) bytes on the wire/\1/p' "$T/agent.log")
PATCHED=$(sed -n 's/.*epoch 1: [0-9]* of [0-9]* chunks sent (\([0-9]*\) as patches.*/\1/p' "$T/agent.log")
[ -n "$WIRE" ] && [ -n "$PATCHED" ] || { cat "$T/agent.log"; fail "no summary of epoch 1"; }
CHG=$((NCHG * B))
[ "$WIRE" -le $((CHG * 11 / 10)) ] ||
	fail "epoch 1 put $WIRE bytes on the wire for $CHG changed bytes ($NCHG blocks): over 1.1x"
[ "$WIRE" -ge "$CHG" ] || fail "epoch 1 put $WIRE bytes on the wire, less than the $CHG changed random bytes"
[ "$PATCHED" -gt 0 ] || fail "epoch 1 sent no patches"

# A new agent sums every chunk in its first epoch (2); then a block of chunk 100 changes on
# the target behind tern's back and another of it on the source. The patch of the source's
# block (epoch 3) does not fit what the target holds: refused, then reconciled whole.
"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$T/state/agent-bundle.pem" \
	--disk d="$T/src.img" --tracker scan --interval 10 --epochs 1 --no-progress \
	>"$T/agent.log" 2>&1 &
AGENT_PID=$!
wait_epoch 2
head -c $B /dev/urandom | dd of="$T/dst.img" bs=$B seek=$((100 * 16 + 1)) oflag=direct conv=notrunc,fsync status=none
head -c $B /dev/urandom | dd of="$T/src.img" bs=$B seek=$((100 * 16 + 5)) conv=notrunc,fsync status=none
wait $AGENT_PID || { cat "$T/agent.log"; fail "agent exited non-zero after the refused patch"; }
AGENT_PID=
grep -q "reconciling every disk" "$T/agent.log" || { cat "$T/agent.log"; fail "the patch over the changed target was not refused"; }
[ "$(sha "$T/src.img")" = "$(sha_disk "$T/dst.img")" ] || fail "SHA-256 differs after the reconciliation"
# A collision (the seam: block 3 of every chunk sums alike whatever it holds) leaves a
# changed block out of its patch: the receiver refuses the patch, and the reconciliation
# sends the chunk whole instead of the same patch again (which would loop forever): the
# sums now describe the content the refused patch was to make, which the receiver lacks.
TERN_FAULT_SUM_BLIND=3 "$TERN_AGENT" run --receiver "127.0.0.1:$PORT" \
	--credentials "$T/state/agent-bundle.pem" --disk d="$T/src.img" --tracker scan \
	--interval 10 --epochs 1 --no-progress >"$T/agent.log" 2>&1 &
AGENT_PID=$!
wait_epoch '[0-9]*'
head -c $B /dev/urandom | dd of="$T/src.img" bs=$B seek=$((200 * 16 + 3)) conv=notrunc,fsync status=none
head -c $B /dev/urandom | dd of="$T/src.img" bs=$B seek=$((200 * 16 + 5)) conv=notrunc,fsync status=none
for i in $(seq 1 1200); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$AGENT_PID" 2>/dev/null && { cat "$T/agent.log"; fail "the agent did not recover from a patch a collision spoilt in 120 s"; }
wait $AGENT_PID || { cat "$T/agent.log"; fail "agent exited non-zero after the spoilt patch"; }
AGENT_PID=
grep -q "reconciling every disk" "$T/agent.log" || { cat "$T/agent.log"; fail "the spoilt patch was not refused"; }
[ "$(sha "$T/src.img")" = "$(sha_disk "$T/dst.img")" ] || fail "SHA-256 differs after the spoilt patch"
pass "1% of the disk rewritten as $NCHG blocks: $WIRE bytes on the wire for $CHG changed ($PATCHED patches); a patch over a changed target and one a collision spoilt were refused and reconciled"

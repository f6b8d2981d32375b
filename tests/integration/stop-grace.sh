#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# A stop request (SIGTERM, as a service manager sends at shutdown) during a first copy too
# long to finish soon abandons the epoch in flight after its grace period instead of
# holding the stop for as long as the copy takes; the receiver keeps the copy's checkpoint,
# and the next agent resumes from it. The source is a loop device over a 256 GiB sparse
# file (read whole: a block device has no holes to skip), which takes minutes to read.
. "$(dirname "$0")/lib.sh"
: "${TERNCTL:?set by meson}"
need_root

init_state "$T/state"
truncate -s 256G "$T/big.img"
dd if=/dev/urandom of="$T/big.img" bs=1M count=4 conv=notrunc status=none
loop_attach DEV "$T/big.img"
losetup --direct-io=on "$DEV" 2>/dev/null || true
start_receiver "$T/state" --target big="$T/big-dst.img,max-size=300G"

agent() { # LOG
	"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$T/state/agent-bundle.pem" \
		--name stopper --disk big="$DEV" --interval 1 --no-progress >"$1" 2>&1 &
	AGENT_PID=$!
}
agent "$T/a1.log"
wait_log "$T/a1.log" "connected to" || { cat "$T/a1.log"; fail "the agent did not connect"; }
sleep 2
kill -TERM "$AGENT_PID"
# Generous: the grace period is 10 s; without it the agent reads the whole 256 GiB first.
for _ in $(seq 1 1200); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$AGENT_PID" 2>/dev/null; then
	kill -9 "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=
	cat "$T/a1.log"; fail "the agent did not stop within 120 s of SIGTERM during a long first copy"
fi
rc=0; wait "$AGENT_PID" || rc=$?; AGENT_PID=
[ $rc -eq 0 ] || { cat "$T/a1.log"; fail "the stopped agent exited $rc"; }
grep -q "stopping on request: the epoch in flight is abandoned" "$T/a1.log" ||
	{ cat "$T/a1.log"; fail "the agent did not abandon the epoch in flight (it held the stop until the copy's end)"; }
grep -q "epoch 0 durable" "$T/a1.log" && fail "the first copy was both abandoned and finished"
# The receiver checkpointed what arrived; the next agent goes on from there.
agent "$T/a2.log"
wait_log "$T/a2.log" "chunks of the first copy (its checkpoint)" ||
	{ cat "$T/a2.log" "$T/receiver.log"; fail "the next agent did not resume from the receiver's checkpoint"; }
held=$(sed -n 's/.*big: the receiver holds \([0-9]*\) of .*/\1/p' "$T/a2.log" | head -n 1)
[ "${held:-0}" -gt 64 ] || { cat "$T/a2.log"; fail "the checkpoint held only ${held:-0} chunks"; }
kill -9 "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=
pass "a stop during a long first copy abandoned its epoch after the grace period; the next agent resumed from $held chunks the receiver held"

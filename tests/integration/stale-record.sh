#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# A record never vouches for a target that changed after it (issue 10, item 10): a
# verified copy, then an epoch ending with a wrong root and nothing written, then a chunk
# rewritten and the link lost. The next agent, whose source is the verified content
# again, must be told what the target really holds, so that the receiver reports
# "verified" only when the target equals the source.
. "$(dirname "$0")/lib.sh"
: "${TERN_BADPEER:?set by meson}"

init_state "$T/state"
SIZE=$((1024 * 1024))
head -c $SIZE /dev/zero | tr '\0' '\102' >"$T/src.img" # 0x42, what badpeer copies
start_receiver "$T/state" --target d="$T/dst.img"
"$TERN_BADPEER" "127.0.0.1:$PORT" "$T/state/agent-bundle.pem" d $SIZE stale - ||
	fail "the stale sequence did not run"
wait_log "$T/receiver.log" "connection closed without BYE" || fail "the session did not end"
# The rewritten chunk is on the target (it was accepted); the source is back to 0x42.
[ "$(sha "$T/dst.img")" != "$(sha "$T/src.img")" ] || fail "the rewrite did not reach the target"
grep -q '^verified=1$' "$T/state/disks/d.state" &&
	fail "the record still vouches for epoch 0 after a chunk was rewritten"

# The agent under the name the target belongs to, resuming from what the receiver says.
"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$T/state/agent-bundle.pem" \
	--name badpeer --disk d="$T/src.img" --interval 1 --epochs 1 --no-progress \
	>"$T/agent.log" 2>&1 || { cat "$T/agent.log"; fail "the agent failed"; }
grep -q "durable and verified" "$T/agent.log" || { cat "$T/agent.log"; fail "no verified epoch"; }
[ "$(sha "$T/dst.img")" = "$(sha "$T/src.img")" ] ||
	fail "the receiver reported verified while the target differs from the source"
grep -q '^verified=1$' "$T/state/disks/d.state" || fail "the final epoch is not recorded"
pass "no stale verified record: the rewritten chunk was reconciled and re-sent"

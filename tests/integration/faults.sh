#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Faults at several points of the full copy (epoch 0) and of a later epoch: for each of
# kill -9 of the agent, kill -9 of the receiver and a network cut, at a point given in
# bytes the agent has sent, the run converges to the source's SHA-256 and the bytes sent
# beyond a fault-free run of the same work stay under 10% of the disk.
#
# The point is exact: a proxy between agent and receiver relays that many bytes of the
# agent's connection and then either resets it (the cut) or holds it still while the test
# kills the agent or the receiver. A fault-free run through the same proxy gives the
# bytes the work costs without faults.
. "$(dirname "$0")/lib.sh"
: "${TERN_CUTPROXY:?set by meson}"

init_state "$T/state"
# 64 MiB: a reset loses what sat unread in the receiver's socket buffer (a few MiB on
# loopback, more when the receiver is slow, as under ASan), which must stay small next
# to the disk for the 10% bound to measure tern rather than TCP buffering.
make_mixed_image "$T/orig.img" 64
SIZE=$(stat -c %s "$T/orig.img")
head -c $((3 * 1024 * 1024)) /dev/urandom >"$T/change.bin"
start_receiver "$T/state" --target d="$T/dst.img"
RPORT=$PORT

wait_for() { # wait_for FILE PATTERN
	for _ in $(seq 1 300); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	cat "$1"; fail "timed out waiting for '$2' in $1"
}
restart_receiver() { # on the same port, so the agent's retries find it
	: >>"$T/receiver.log"
	"$TERN_RECEIVER" serve --state-dir "$T/state" --listen "127.0.0.1:$RPORT" --api 127.0.0.1:0 \
		--target d="$T/dst.img" >>"$T/receiver.log" 2>&1 &
	RECEIVER_PID=$!
}
fresh_target() { # the receiver forgets d entirely; the source is the original again
	stop_receiver
	rm -f "$T/dst.img" "$T/state/disks/d.state" "$T/state/disks/d.fps"
	cp --sparse=always "$T/orig.img" "$T/src.img"
	restart_receiver
	for _ in $(seq 1 50); do grep -q "listening on 127.0.0.1:$RPORT" <(tail -n 5 "$T/receiver.log") && break; sleep 0.1; done
}
# A later epoch: a clean full copy straight to the receiver, then 3 MiB and a few blocks
# of the source change, the same way each time.
later_epoch_ready() {
	"$TERN_AGENT" run --receiver "127.0.0.1:$RPORT" --credentials "$T/state/agent-bundle.pem" \
		--disk d="$T/src.img" --once --no-progress >"$T/prep.log" 2>&1 ||
		{ cat "$T/prep.log"; fail "the clean full copy failed"; }
	dd if="$T/change.bin" of="$T/src.img" bs=1M seek=9 conv=notrunc status=none
	for k in 1 2 3 4 5; do
		dd if="$T/change.bin" of="$T/src.img" bs=4096 skip=$k seek=$((k * 1237)) count=1 \
			conv=notrunc status=none
	done
}
start_proxy() { # start_proxy CUT_BYTES MODE: sets PPORT
	start_cutproxy "$RPORT" "$1" 1 "$2"
}
# A fixed zstd level: the adaptive one follows the machine's load, so a faulted run could
# compress better than the fault-free one and never reach the proxy's stall point.
start_agent() { # through the proxy: one epoch after the first, then exit
	"$TERN_AGENT" run --receiver "127.0.0.1:$PPORT" --credentials "$T/state/agent-bundle.pem" \
		--disk d="$T/src.img" --interval 1 --epochs 1 --level 3 --no-progress \
		>>"$T/agent.log" 2>&1 &
	AGENT_PID=$!
}
finish_agent() {
	wait "$AGENT_PID" || { cat "$T/agent.log"; fail "$1: the agent did not converge"; }
	AGENT_PID=
}

# The fault-free cost of each phase's work, through the proxy.
declare -A BASE
for phase in epoch0 later; do
	fresh_target
	[ $phase = later ] && later_epoch_ready
	: >"$T/agent.log"
	start_proxy 0 reset
	start_agent
	finish_agent "fault-free $phase"
	stop_proxy; BASE[$phase]=$RELAYED
	[ -n "${BASE[$phase]}" ] || fail "the proxy did not report its byte count"
	[ "$(sha "$T/src.img")" = "$(sha "$T/dst.img")" ] || fail "fault-free $phase: SHA-256 differs"
done
[ "${BASE[later]}" -gt $((3 * 1024 * 1024)) ] || fail "the later epoch did not carry the change"

SUMMARY=
run_case() { # run_case KIND PHASE PERCENT
	local kind=$1 phase=$2 pct=$3 at total extra name
	name="$kind at $pct% of $phase"
	at=$((BASE[$phase] * pct / 100))
	fresh_target
	[ "$phase" = later ] && later_epoch_ready
	: >"$T/agent.log"
	start_proxy "$at" "$([ "$kind" = cut ] && echo reset || echo stall)"
	start_agent
	case $kind in
	agent)
		wait_for "$T/proxy.log" "stalled at"
		sleep 0.3 # the receiver takes in what reached it
		kill -9 "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true
		start_agent
		;;
	receiver)
		wait_for "$T/proxy.log" "stalled at"
		sleep 0.3
		kill -9 "$RECEIVER_PID"; wait "$RECEIVER_PID" 2>/dev/null || true
		restart_receiver
		;;
	esac
	finish_agent "$name"
	stop_proxy; total=$RELAYED
	[ "$(sha "$T/src.img")" = "$(sha "$T/dst.img")" ] || fail "$name: SHA-256 differs"
	[ "$kind" = agent ] || grep -q "reconnecting in" "$T/agent.log" ||
		{ cat "$T/agent.log"; fail "$name: the agent never lost its connection"; }
	extra=$((total - BASE[$phase]))
	[ "$extra" -lt $((SIZE / 10)) ] ||
		fail "$name: $extra bytes beyond a fault-free run (${BASE[$phase]}), over 10% of $SIZE"
	SUMMARY+="$name: $total bytes (fault-free ${BASE[$phase]}); "
}

for kind in agent receiver cut; do
	for pct in 10 50 90; do run_case $kind epoch0 $pct; done
	for pct in 30 80; do run_case $kind later $pct; done
done
pass "converged after each fault; ${SUMMARY% }"

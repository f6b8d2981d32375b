#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# A full copy resumes where it stopped: kill -9 of the receiver (then a new one) and, apart,
# kill -9 of the agent (then a new one, which resumes the pinned eBPF tracker) at 10, 50
# and 90% of epoch 0 of a 256 MiB loop device of random data, with a few blocks of what
# the receiver already holds written meanwhile. The restarted receiver reads
# nothing of its target (it offers its checkpoint), the agent reads again and the wire
# carries again less than 5% of the disk each, the target's SHA-256 is the source's, and
# a cutover with --verify full passes.
#
# The point is exact: tests/integration/cutproxy.c relays that many bytes of the agent's
# first connection and holds it still while the test kills a process; the bytes it
# relayed over all connections, less the disk's size, are what crossed the wire again
# (incompressible data goes raw, framing is ~0.03%).
. "$(dirname "$0")/lib.sh"
: "${TERN_CUTPROXY:?set by meson}"
: "${TERNCTL:?set by meson}"
need_root
"$TERN_AGENT" run --help | grep "ebpf" >/dev/null || skip "agent without the eBPF tracker"

MIB=256
SIZE=$((MIB * 1024 * 1024))
CS=65536
N=$((SIZE / CS))
init_state "$T/state"
head -c "$SIZE" /dev/urandom >"$T/disk.img"
loop_attach DEV "$T/disk.img"
start_receiver "$T/state" --target d="$T/dst.img"
RPORT=$PORT

wait_for() { # wait_for FILE PATTERN [SECONDS]
	local i
	for i in $(seq 1 $((${3:-120} * 10))); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	cat "$1"; fail "timed out waiting for '$2' in $1"
}
restart_receiver() { # on the same port, so the agent's retries find it
	"$TERN_RECEIVER" serve --state-dir "$T/state" --listen "127.0.0.1:$RPORT" --api 127.0.0.1:0 \
		--target d="$T/dst.img" >>"$T/receiver.log" 2>&1 &
	RECEIVER_PID=$!
	wait_for "$T/receiver.log" "listening on 127.0.0.1:$RPORT" 10
}
fresh_target() { # the receiver forgets d entirely
	stop_receiver
	rm -f "$T/dst.img" "$T/state/disks/d".*
	: >"$T/receiver.log"
	restart_receiver
}
start_agent() { # start_agent LOG: continuous, through the proxy, eBPF tracker
	"$TERN_AGENT" run --receiver "127.0.0.1:$PPORT" --credentials "$T/state/agent-bundle.pem" \
		--name a1 --disk d="$DEV" --tracker ebpf --interval 1 --no-progress >"$1" 2>&1 &
	AGENT_PID=$!
}
# The number in "... NAME <number> ..." of the last line of FILE matching PATTERN.
num_after() { sed -n "s/.*$2 \([0-9][0-9]*\).*/\1/p" "$1" | tail -n 1; }

SUMMARY=
run_case() { # run_case KIND PERCENT
	local kind=$1 pct=$2 at log held sent read reread resent name
	name="$kind killed at $pct%"
	at=$((SIZE * pct / 100))
	fresh_target
	start_cutproxy "$RPORT" "$at" 1 stall
	log="$T/agent-$kind-$pct.log"
	start_agent "$T/agent1.log"
	wait_for "$T/proxy.log" "stalled at"
	if grep -q -- "--tracker ebpf:" "$T/agent1.log"; then
		kill "$AGENT_PID" 2>/dev/null; wait "$AGENT_PID" 2>/dev/null || true
		skip "$(grep -o -- '--tracker ebpf:.*' "$T/agent1.log")"
	fi
	sleep 0.5 # the receiver takes in what reached it
	# Writes to chunks the receiver already holds, while the copy is interrupted: the
	# tracker's pending set has them, so the resumed copy reads and sends those chunks.
	for k in 1 2 3 4; do
		dd if=/dev/urandom of="$DEV" bs=4096 seek=$((k * 1031)) count=1 oflag=direct \
			conv=notrunc status=none
	done
	case $kind in
	agent)
		kill -9 "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true
		start_agent "$log"
		;;
	receiver)
		kill -9 "$RECEIVER_PID"; wait "$RECEIVER_PID" 2>/dev/null || true
		restart_receiver
		log="$T/agent1.log"
		;;
	esac
	wait_for "$log" "epoch 0 durable and verified" 180
	# The receiver offered its checkpoint and read nothing of its target.
	grep -q "disk d resumes its first copy from the checkpoint: [0-9]* of $N chunks held, nothing of the target read" \
		"$T/receiver.log" || { cat "$T/receiver.log"; fail "$name: the receiver did not resume from its checkpoint"; }
	! grep -q "fingerprinted to reconcile" "$T/receiver.log" ||
		fail "$name: the receiver read its target to reconcile"
	# The agent trusted its tracker: it read only what the receiver does not hold.
	grep -q "d: its chunks were read under this tracker's generation" "$log" ||
		{ cat "$log"; fail "$name: the agent did not trust its tracker's generation"; }
	[ "$kind" = receiver ] || grep -q "eBPF tracker resumed from" "$log" ||
		{ cat "$log"; fail "$name: the new agent did not resume the pinned tracker"; }
	held=$(sed -n "s/.*d: the receiver holds \([0-9]*\) of $N chunks.*/\1/p" "$log" | tail -n 1)
	sent=$(sed -n "s/.*d: epoch 0: \([0-9]*\) of $N chunks sent.*/\1/p" "$log" | tail -n 1)
	read=$(num_after "$log" "d: epoch 0: .* patches of their changed blocks),")
	[ -n "$held" ] && [ -n "$sent" ] && [ -n "$read" ] || { cat "$log"; fail "$name: no figures in the agent's log"; }
	# It held about what the proxy let through (the last checkpoint may be a little behind).
	[ "$held" -gt $((N * (pct - 5) / 100)) ] ||
		fail "$name: the receiver held only $held of $N chunks after ${pct}% had been sent"
	# Read again: what the resumed epoch read of the chunks the receiver held.
	reread=$((read - (N - held) * CS))
	[ "$reread" -lt $((SIZE / 20)) ] || fail "$name: the agent read $reread bytes again (over 5% of $SIZE)"
	[ "$sent" -ge $((N - held)) ] || fail "$name: $sent chunks sent, fewer than the $((N - held)) not held"
	# The cutover with --verify full re-reads both sides and compares.
	"$TERNCTL" --state-dir "$T/state" cutover a1 --verify full --timeout 120 >"$T/ctl.out" 2>&1 ||
		{ cat "$T/ctl.out" "$log"; fail "$name: the cutover with --verify full failed"; }
	wait "$AGENT_PID" || { cat "$log"; fail "$name: the agent did not exit 0 after the cutover"; }
	AGENT_PID=
	stop_proxy
	resent=$((RELAYED - SIZE))
	[ "$resent" -lt $((SIZE / 20)) ] ||
		fail "$name: $RELAYED bytes relayed, $resent beyond the disk (over 5% of $SIZE)"
	[ "$(sha_n "$DEV" "$SIZE")" = "$(sha "$T/dst.img")" ] || fail "$name: SHA-256 differs"
	SUMMARY+="$name: receiver held $held/$N chunks, agent read again $reread bytes, "
	SUMMARY+="$resent bytes crossed again; "
}

for kind in receiver agent; do
	for pct in 10 50 90; do run_case $kind $pct; done
done
pass "${SUMMARY% }"

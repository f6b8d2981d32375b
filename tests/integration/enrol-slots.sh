#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Slow strangers on the enrolment port: eight of them from one address no longer block
# every join (two slots per address); with every slot held from many addresses, `tern-agent
# join` fails with a clear one-line error and exit code 1 (not a SIGPIPE death) and issues
# nothing; once they are gone, the same token enrols.
. "$(dirname "$0")/lib.sh"
: "${TERN_TRICKLE:?set by meson}"

init_state "$T/state"
start_receiver "$T/state" --target d="$T/dst.img" --enrol-listen 127.0.0.1:0 \
	--handshake-timeout 60
enrol_port
token() {
	"$TERN_RECEIVER" token create --state-dir "$T/state" --address "127.0.0.1:$EPORT" "$@" \
		2>>"$T/token.log"
}
issued() { grep -c . "$T/state/issued" 2>/dev/null || true; }
# Starts the trickling client in the background; waits until its connections are open.
trickle() {
	rm -f "$T/ready"
	"$TERN_TRICKLE" 127.0.0.1 "$EPORT" --every 1000 --hold 60000 --ready "$T/ready" "$@" \
		>"$T/trickle.out" &
	TRICKLE_PID=$!
	EXTRA_PIDS+=("$TRICKLE_PID")
	for i in $(seq 1 200); do [ -e "$T/ready" ] && return 0; sleep 0.1; done
	fail "the trickling client did not open its connections"
}
untrickle() { kill "$TRICKLE_PID" 2>/dev/null || true; wait "$TRICKLE_PID" 2>/dev/null || true; }

# 1. Eight slow peers from one address: a join from another still enrols, at once (20 s is
# a generous bound for what takes well under a second; the peers trickle for 60 s).
trickle --from 127.0.0.2 --count 8
TOK=$(token --ttl 10m)
rc=0
timeout 20 "$TERN_AGENT" join "$TOK" --name slow1 --config-dir "$T/a1" >"$T/join1.log" 2>&1 || rc=$?
[ $rc -eq 0 ] || { cat "$T/join1.log"; fail "join blocked by 8 slow peers from one address (exit $rc)"; }
[ -s "$T/a1/agent.pem" ] || fail "no credentials after the join"
untrickle

# 2. Every slot held, from eight addresses: the join fails clearly and spends nothing.
trickle --from "$(seq -s, -f '127.0.3.%g' 1 8)" --count 2
TOK=$(token --ttl 10m)
before=$(issued)
rc=0
"$TERN_AGENT" join "$TOK" --name slow2 --config-dir "$T/a2" >"$T/join2.log" 2>&1 || rc=$?
cat "$T/join2.log"
[ $rc -eq 1 ] || fail "join with every slot full exited $rc, not 1"
grep -q "closed the connection" "$T/join2.log" || fail "join did not say the receiver dropped it"
[ "$(grep -c . "$T/join2.log")" -eq 1 ] || fail "join's error is not one line"
[ ! -e "$T/a2/agent.pem" ] && [ "$(issued)" = "$before" ] || fail "a refused join issued something"
untrickle

# 3. The slots free again: the same token enrols.
"$TERN_AGENT" join "$TOK" --name slow2 --config-dir "$T/a2" >"$T/join3.log" 2>&1 ||
	{ cat "$T/join3.log"; fail "join failed once the slow peers were gone"; }
# The summary of the interval is logged at the latest as the receiver stops.
stop_receiver
grep -q "enrolment port: connections refused or cut.*over the limit of 16 handshakes in all" \
	"$T/receiver.log" || fail "the receiver did not log the full slots"
pass "slow strangers cannot block enrolment; a full listener gives join a clear error"

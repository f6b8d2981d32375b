#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# A flapping link must not stall a copy: the proxy (cutproxy.c) resets 20 connections in
# a row, each after its own 2-6 MiB of the agent's bytes, during the full copy of a 128 MiB
# disk of random data (so every MiB read is a MiB on the wire). The copy must finish with equal SHA-256, the agent's reconnect waits (the backoff
# it logs) must stay a small share of the run (a connection that moved data does not grow
# the backoff), progress in ternctl must not fall back to nothing at each reconnect (the
# receiver's FPS answer says what it holds), and no wrapped epoch number is logged.
. "$(dirname "$0")/lib.sh"
: "${TERN_CUTPROXY:?set by meson}"
: "${TERNCTL:?set by meson}"
command -v python3 >/dev/null || skip "python3 not installed"

MiB=$((1024 * 1024))
CUTS=20
init_state "$T/state"
head -c $((128 * MiB)) /dev/urandom >"$T/src.img"
SIZE=$(stat -c %s "$T/src.img")
start_receiver "$T/state" --target d="$T/dst.img"
for i in $(seq 1 50); do [ -s "$T/state/api.addr" ] && break; sleep 0.1; done

start_cutproxy "$PORT" "$((2 * MiB))-$((6 * MiB))" "$CUTS"

T0=$(date +%s.%N)
"$TERN_AGENT" run --receiver "127.0.0.1:$PPORT" --credentials "$T/state/agent-bundle.pem" \
	--disk d="$T/src.img" --tracker scan --interval 1 --epochs 1 --no-progress \
	>"$T/agent.log" 2>&1 &
AGENT_PID=$!
# What ternctl shows copied of the first copy (no epoch verified yet), sampled through the
# run (generous bound: 120 s).
: >"$T/copied"
END=$((SECONDS + 120))
while [ $SECONDS -lt $END ]; do
	kill -0 "$AGENT_PID" 2>/dev/null || break
	"$TERNCTL" --state-dir "$T/state" status --json 2>/dev/null | python3 -c "import json,sys
s = json.load(sys.stdin)
for a in s['agents']:
    for d in a['disks']:
        if d['state'] == 'error': print('error', d['last_error'])
        elif d['verified_epoch'] is None: print(d['bytes_copied'])" >>"$T/copied" 2>/dev/null || true
	sleep 0.2
done
kill -0 "$AGENT_PID" 2>/dev/null && { cat "$T/agent.log"; fail "the copy did not finish in 120 s through the flapping link"; }
rc=0; wait "$AGENT_PID" || rc=$?
AGENT_PID=
T1=$(date +%s.%N)
[ $rc -eq 0 ] || { cat "$T/agent.log"; fail "the agent exited $rc"; }
[ "$(sha "$T/src.img")" = "$(sha_disk "$T/dst.img")" ] || fail "SHA-256 differs after the flapping link"
DROPS=$(grep -c "reconnecting in" "$T/agent.log" || true)
[ "$DROPS" -ge $((CUTS / 2)) ] || { cat "$T/agent.log"; fail "only $DROPS reconnects: the link did not flap"; }
if grep -q "epoch 18446744073709551615" "$T/agent.log"; then fail "a wrapped epoch number was logged"; fi
# The time spent not connected: the backoff sleeps the agent logged.
SLEPT=$(sed -n 's/.*reconnecting in \([0-9.]*\) s.*/\1/p' "$T/agent.log" | paste -sd+ | bc)
RUN=$(echo "$T1 - $T0" | bc)
echo "run ${RUN}s, $DROPS drops, ${SLEPT}s asleep"
# Each wait stays short (a backoff that grew to 60 s would sleep minutes), and all of them
# together a small share of the run, however slow the machine.
[ "$(echo "$SLEPT <= $DROPS * 0.5 && $SLEPT * 3 <= $RUN" | bc)" = 1 ] ||
	{ cat "$T/agent.log"; fail "the agent slept ${SLEPT}s of a ${RUN}s run between reconnects"; }
# Progress survives reconnects: once a quarter was shown copied, never less than an eighth.
# (Each connection lives well under the second between STATUS reports, so the operator sees
# mostly the report sent as each connection's epoch starts: it must count what the
# receiver already holds.)
# A lost link is no error: between reconnects the disk reads as disconnected.
if grep "^error" "$T/copied"; then fail "a flapping link showed the disk as error"; fi
python3 - "$T/copied" "$SIZE" <<'EOF' || fail "progress fell back at a reconnect (samples in $T/copied)"
import sys
vals = [int(x) for x in open(sys.argv[1]).read().split()]
size = int(sys.argv[2])
top = 0
for v in vals:
    if top >= size // 4 and v < size // 8:
        print(f"bytes_copied fell from {top} to {v}")
        sys.exit(1)
    top = max(top, v)
if top < size // 4:
    print(f"never saw progress past {top}")
    sys.exit(1)
EOF
pass "128 MiB through $DROPS link drops: converged in ${RUN}s, ${SLEPT}s of it reconnecting"

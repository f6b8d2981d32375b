#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Strangers on the replication port: handshakes that trickle a byte at a time are cut at
# the absolute deadline; connections from one address beyond its limit are refused while
# a real agent connects and copies (also with a low open-file limit); with many addresses
# flooding a receiver whose open-file limit is low, an agent already connected still
# finishes its epochs and the API still answers; refusals are logged as a few summary
# lines, not one per connection.
. "$(dirname "$0")/lib.sh"
: "${TERN_TRICKLE:?set by meson}"
: "${TERNCTL:?set by meson}"

TRICKLE_PID=
stop_trickle() {
	if [ -n "$TRICKLE_PID" ]; then
		kill "$TRICKLE_PID" 2>/dev/null || true
		wait "$TRICKLE_PID" 2>/dev/null || true
		TRICKLE_PID=
	fi
}

# Waits up to 20 s for the file $1 to exist.
wait_file() {
	local i
	for i in $(seq 1 200); do [ -e "$1" ] && return 0; sleep 0.1; done
	return 1
}

init_state "$T/state"
make_mixed_image "$T/src.img" 8
CRED="$T/state/agent-bundle.pem"

# 0. A bad limit is one line and exit 2, before anything listens.
for opt in "--handshake-timeout 0" "--max-handshakes x" "--max-sessions 0" "--fd-reserve -1"; do
	rc=0
	"$TERN_RECEIVER" serve --state-dir "$T/state" --listen 127.0.0.1:0 --api none \
		--target d="$T/dst.img" $opt >"$T/bad.out" 2>&1 || rc=$?
	[ $rc -eq 2 ] && [ "$(grep -c . "$T/bad.out")" -eq 1 ] && grep -q -- "${opt% *}" "$T/bad.out" ||
		{ cat "$T/bad.out"; fail "serve $opt: exit $rc"; }
done

# 1. The deadline is absolute: a byte every 300 ms would keep a per-read timeout happy
# forever, but the connection is cut at the 2 s deadline (generous upper bound: 8 s). The
# limit comes from a config file, whose keys are serve's long options.
printf 'handshake-timeout = 2\n' >"$T/receiver.conf"
chmod 600 "$T/receiver.conf"
start_receiver "$T/state" --target d="$T/dst.img" --config "$T/receiver.conf"
"$TERN_TRICKLE" 127.0.0.1 "$PORT" --from 127.0.0.2 --count 4 --every 300 --hold 15000 \
	>"$T/trickle1.out"
read -r line <"$T/trickle1.out"
echo "deadline: $line"
eval "${line// / ; }"
[ "$opened" = 4 ] && [ "$cut" = 4 ] && [ "$open" = 0 ] ||
	fail "trickling handshakes were not all cut at the deadline: $line"
[ "$cut_min_ms" -ge 1500 ] || fail "a handshake was cut before its deadline: $line"
[ "$cut_max_ms" -le 8000 ] || fail "a handshake outlived its deadline by far: $line"
stop_receiver

# 2. One address over its limit while an agent copies, with the open-file limit at 64: 70
# connections from 127.0.0.2 (limit 4) hold their slots with a byte every second.
OLD_NOFILE=$(ulimit -Sn)
ulimit -Sn 64
start_receiver "$T/state" --target d="$T/dst.img" --max-handshakes-per-address 4 \
	--handshake-timeout 60 --fd-reserve 16
ulimit -Sn "$OLD_NOFILE"
rm -f "$T/ready2"
"$TERN_TRICKLE" 127.0.0.1 "$PORT" --from 127.0.0.2 --count 70 --every 1000 --hold 30000 \
	--ready "$T/ready2" >"$T/trickle2.out" &
TRICKLE_PID=$!
EXTRA_PIDS+=("$TRICKLE_PID")
wait_file "$T/ready2" || fail "the trickling client did not open its connections"
run_agent --credentials "$CRED" --disk d="$T/src.img" ||
	{ cat "$T/agent.log"; fail "the agent could not copy while one address flooded the port"; }
[ "$(sha "$T/src.img")" = "$(sha "$T/dst.img")" ] || fail "SHA-256 differs after the copy"
stop_trickle
# The receiver summarises what is left of its interval as it stops.
stop_receiver
grep -e "refused or cut" "$T/receiver.log" || true
N=$(grep -o '[0-9]* over the limit of 4 handshakes per address' "$T/receiver.log" |
	awk '{ s += $1 } END { print s + 0 }')
[ "$N" -ge 60 ] || fail "expected at least 60 refusals over the per-address limit, the log says $N"

# 3. Many addresses at once against a low open-file limit: an agent already connected keeps
# replicating and the API answers, because new connections stop --fd-reserve short of the
# limit. 40 addresses x 3 connections would need 120 descriptors.
ulimit -Sn 64
start_receiver "$T/state" --target d="$T/dst.img" --handshake-timeout 60 --fd-reserve 24 \
	--max-handshakes 1000 --max-handshakes-per-address 8
ulimit -Sn "$OLD_NOFILE"
"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$CRED" --disk d="$T/src.img" \
	--interval 1 --no-progress >"$T/agent3.log" 2>&1 &
AGENT_PID=$!
for i in $(seq 1 200); do
	grep -q "durable and verified" "$T/agent3.log" && break
	sleep 0.1
done
grep -q "durable and verified" "$T/agent3.log" || { cat "$T/agent3.log"; fail "the agent did not connect"; }
FROMS=$(seq -s, -f '127.0.1.%g' 1 40)
rm -f "$T/ready3"
"$TERN_TRICKLE" 127.0.0.1 "$PORT" --from "$FROMS" --count 3 --every 1000 --hold 40000 \
	--ready "$T/ready3" >"$T/trickle3.out" &
TRICKLE_PID=$!
EXTRA_PIDS+=("$TRICKLE_PID")
wait_file "$T/ready3" || fail "the trickling client did not open its connections"
# New data must reach the target through the live session: its epochs open temp files.
dd if=/dev/urandom of="$T/src.img" bs=64K seek=3 count=4 conv=notrunc status=none
WANT=$(sha "$T/src.img")
ok=
for i in $(seq 1 300); do
	if [ "$(sha "$T/dst.img")" = "$WANT" ] && grep -q '^verified=1$' "$T/state/disks/d.state"; then
		ok=1
		break
	fi
	sleep 0.1
done
[ -n "$ok" ] || { tail -n 20 "$T/agent3.log"; fail "the connected agent stopped replicating under the flood"; }
"$TERNCTL" --state-dir "$T/state" status --json >"$T/status3.json" 2>"$T/status3.err" ||
	{ cat "$T/status3.err"; fail "the API did not answer under the flood"; }
kill "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null || true
AGENT_PID=
stop_trickle
stop_receiver
grep -q "to keep 24 descriptors free" "$T/receiver.log" ||
	fail "no refusal for the descriptor reserve was logged"
# The reserve was kept: the receiver itself never ran out of descriptors.
! grep -q -e "accept failures" -e "Too many open files" "$T/receiver.log" ||
	fail "the receiver ran out of descriptors under the flood"
# Over 100 refused or cut connections in a few seconds: a handful of lines, not one each.
LINES=$(grep -c -e 'refused or cut' -e 'refused connection' -e 'accept' "$T/receiver.log" || true)
grep -e "refused or cut" "$T/receiver.log" || true
echo "warning lines: $LINES"
[ "$LINES" -le 8 ] || fail "$LINES warning lines for one flood: not rate-limited"
# 4. --max-sessions: a second agent while one is served is told so, and gets in after.
make_mixed_image "$T/src2.img" 2
start_receiver "$T/state" --target d="$T/dst.img" --target e="$T/dst2.img" --max-sessions 1
"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$CRED" --disk d="$T/src.img" \
	--interval 1 --no-progress >"$T/agent4.log" 2>&1 &
AGENT_PID=$!
for i in $(seq 1 200); do grep -q "durable and verified" "$T/agent4.log" && break; sleep 0.1; done
grep -q "durable and verified" "$T/agent4.log" || { cat "$T/agent4.log"; fail "the first agent did not connect"; }
if run_agent --credentials "$CRED" --disk e="$T/src2.img" --name two; then
	fail "a second session was served over --max-sessions 1"
fi
grep -q "maximum number of sessions" "$T/agent.log" || { cat "$T/agent.log"; fail "the second agent was not told why"; }
kill "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null || true
AGENT_PID=
run_agent --credentials "$CRED" --disk e="$T/src2.img" --name two ||
	{ cat "$T/agent.log"; fail "the second agent was refused after the first left"; }
[ "$(sha "$T/src2.img")" = "$(sha "$T/dst2.img")" ] || fail "SHA-256 differs for the second agent"
stop_receiver

pass "session limit, handshake deadline, per-address limit, descriptor reserve and rate-limited warnings hold"

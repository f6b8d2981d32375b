#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# What the operator meets around a copy, against real binaries over real TLS: a state
# dir left with a loose mode is made 0700 (init and serve, with a warning); ternctl
# status --until-synced waits for a receiver that is not serving yet and for the first
# disk (--agent NAME: for that agent's); a finished --once copy reads "verified", not
# "disconnected"; an agent that never owned a disk leaves status after the expiry; a
# cutover asked while the agent is away waits for it, says so, and completes once it is
# back; one whose agent stays away fails when its timeout passes.
. "$(dirname "$0")/lib.sh"
: "${TERNCTL:?set by meson}"
command -v jq >/dev/null || skip "jq not installed"

# Processes of this test beyond lib.sh's, ended by PID whatever happens.
EXTRA_PIDS=()
trap 'rc=$?; set +e; for p in "${EXTRA_PIDS[@]}"; do kill "$p" 2>/dev/null; done; (exit $rc); cleanup' EXIT

ctl() { "$TERNCTL" --state-dir "$T/state" "$@"; }
wait_json() { # wait_json JQ_EXPR: until ternctl status --json satisfies it (30 s)
	for _ in $(seq 1 300); do
		ctl status --json 2>/dev/null | jq -e "$1" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	ctl status --json; fail "timed out waiting for $1"
}
wait_for() { # wait_for FILE PATTERN (30 s)
	for _ in $(seq 1 300); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	cat "$1"; fail "timed out waiting for '$2' in $1"
}
mode() { stat -c %a "$1"; }

# 1. The state dir: init tightens a dir made 0755 beforehand, and says so.
mkdir -m 0755 "$T/state"
"$TERN_RECEIVER" init --state-dir "$T/state" >/dev/null 2>"$T/init.err" || { cat "$T/init.err"; fail "init"; }
[ "$(mode "$T/state")" = 700 ] || fail "init left the state dir at mode $(mode "$T/state")"
grep -q "had mode 0755; made it 0700" "$T/init.err" || { cat "$T/init.err"; fail "init did not warn about the mode"; }
# ... and serve one loosened afterwards (below, once the receiver starts).
chmod 0750 "$T/state"

# 2. --until-synced before the receiver serves (no api.addr yet): it waits, for agent
# web1's disks only.
timeout 300 "$TERNCTL" --state-dir "$T/state" status --until-synced --agent web1 --interval 0.2 \
	>"$T/until.txt" 2>"$T/until.err" &
UNTIL_PID=$!
EXTRA_PIDS+=("$UNTIL_PID")
sleep 1
kill -0 "$UNTIL_PID" 2>/dev/null || { cat "$T/until.txt" "$T/until.err"; fail "--until-synced gave up on a receiver not serving yet"; }

make_mixed_image "$T/src1.img" 8
make_mixed_image "$T/src2.img" 8
make_mixed_image "$T/src3.img" 8
TERN_REGISTRY_EXPIRE_S=3 start_receiver "$T/state" --target d1="$T/dst1.img" \
	--target d2="$T/dst2.img" --target d3="$T/dst3.img"
[ "$(mode "$T/state")" = 700 ] || fail "serve left the state dir at mode $(mode "$T/state")"
grep -q "had mode 0750; made it 0700" "$T/receiver.log" || fail "serve did not warn about the mode"
for _ in $(seq 1 100); do [ -s "$T/state/api.addr" ] && break; sleep 0.1; done
# No disk yet: still waiting.
sleep 1
kill -0 "$UNTIL_PID" 2>/dev/null || { cat "$T/until.txt" "$T/until.err"; fail "--until-synced ended with no disk"; }

# 3. An agent that registers nothing (its disk is refused) shows, then expires.
run_agent --credentials "$T/state/agent-bundle.pem" --name ghost --disk nosuch="$T/src1.img" &&
	fail "an unknown disk was accepted"
wait_json '[.agents[].name] | index("ghost") != null'

# 4. Another agent's finished copy does not end a wait for web1's.
run_agent --credentials "$T/state/agent-bundle.pem" --name web2 --disk d2="$T/src2.img" ||
	{ cat "$T/agent.log"; fail "copy of d2"; }
sleep 1
kill -0 "$UNTIL_PID" 2>/dev/null || { cat "$T/until.txt" "$T/until.err"; fail "--until-synced --agent web1 ended on web2's disk"; }

# 5. web1's --once copy: the wait ends, and the finished copy reads verified.
run_agent --credentials "$T/state/agent-bundle.pem" --name web1 --disk d1="$T/src1.img" ||
	{ cat "$T/agent.log"; fail "copy of d1"; }
for _ in $(seq 1 600); do kill -0 "$UNTIL_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$UNTIL_PID" 2>/dev/null && { tail "$T/until.txt"; fail "--until-synced --agent web1 still waits 60 s after web1's copy"; }
rc=0; wait "$UNTIL_PID" || rc=$?
[ $rc -eq 0 ] || { cat "$T/until.txt" "$T/until.err"; fail "--until-synced --agent web1 did not end by itself (rc $rc)"; }
grep -q " web1/d1 verified " "$T/until.txt" || { tail "$T/until.txt"; fail "--until-synced did not end on a verified disk"; }
[ "$(sha "$T/src1.img")" = "$(sha "$T/dst1.img")" ] || fail "SHA-256 of d1 differs"
ctl status --json | jq -e '.agents[] | select(.name == "web1") |
	.connected == false and .state == "verified" and .disks[0].state == "verified" and
	.disks[0].verified_epoch == 0' >/dev/null || { ctl status --json; fail "a finished copy is not shown as verified"; }
ctl status >"$T/st.out" || fail "status"
grep -Eq "^web1 +d1 +verified " "$T/st.out" || { cat "$T/st.out"; fail "the table does not show d1 verified"; }
curl -sS --max-time 10 -H "Authorization: Bearer $(cat "$T/state/api.token")" \
	"http://$(cat "$T/state/api.addr")/metrics" >"$T/metrics.txt" 2>/dev/null &&
	{ grep -q '^tern_disk_state{agent="web1",disk="d1",state="verified"} 1$' "$T/metrics.txt" ||
		{ cat "$T/metrics.txt"; fail "the metrics do not show d1 verified"; }; }

# 6. The ghost is gone once the expiry has passed; the agents that own disks stay.
for _ in $(seq 1 300); do
	ctl status --json | jq -e '[.agents[].name] | index("ghost") == null' >/dev/null && break
	sleep 0.1
done
ctl status --json | jq -e '[.agents[].name] | index("ghost") == null and index("web1") != null and
	index("web2") != null' >/dev/null || { ctl status --json; fail "the agent that owned nothing did not expire"; }
rc=0; ctl pause ghost >/dev/null 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "an expired agent can still be paused (rc $rc)"

# 7. A cutover asked while the agent is away (killed: its link gone at once) waits,
# says so, and completes once the agent is back.
agent3() {
	"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$T/state/agent-bundle.pem" \
		--name web3 --disk d3="$T/src3.img" --interval 1 --no-progress >>"$T/agent3.log" 2>&1 &
	AGENT_PID=$!
}
agent3
wait_for "$T/agent3.log" "epoch 1 durable and verified"
kill -9 "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=
wait_json '.agents[] | select(.name == "web3") | .connected == false'
ctl cutover web3 --timeout 120 >"$T/ctl.out" 2>&1 &
CUT_PID=$!
EXTRA_PIDS+=("$CUT_PID")
wait_for "$T/ctl.out" "^agent web3 is not connected; waiting up to 120 s for it to come back$"
sleep 1
kill -0 "$CUT_PID" 2>/dev/null || { cat "$T/ctl.out"; fail "the cutover did not wait for the agent"; }
agent3
rc=0; wait "$CUT_PID" || rc=$?
[ $rc -eq 0 ] || { cat "$T/ctl.out" "$T/agent3.log"; fail "the cutover after the agent came back failed (rc $rc)"; }
grep -q "^disk d3: .* merkle root [0-9a-f]\{32\}, final epoch [0-9]*, verify tracked: match" "$T/ctl.out" ||
	{ cat "$T/ctl.out"; fail "no proof printed"; }
grep -q "^OK$" "$T/ctl.out" || fail "ternctl did not end with OK"
wait "$AGENT_PID" || { cat "$T/agent3.log"; fail "agent did not exit 0 after the cutover"; }
AGENT_PID=
grep -q '^cutover=1$' "$T/state/disks/d3.state" || fail "cutover not recorded"
[ "$(sha "$T/src3.img")" = "$(sha "$T/dst3.img")" ] || fail "SHA-256 of d3 differs after the cutover"
grep -q "agent web3 is not connected; waiting up to 120 s" "$T/receiver.log" || fail "the receiver did not log the wait"
# Gone with every disk cut over: nothing to wait for, refused at once.
rc=0; ctl cutover web3 --timeout 120 >"$T/ctl.out" 2>&1 || rc=$?
[ $rc -eq 1 ] && grep -q "^FAILED: agent web3 is not connected, and every disk of it is cut over already" "$T/ctl.out" &&
	! grep -q "waiting" "$T/ctl.out" || { cat "$T/ctl.out"; fail "a cut-over agent's cutover was not refused at once (rc $rc)"; }

# 8. An agent that stays away: the cutover fails when its timeout passes, saying why,
# and records nothing.
SECONDS=0
rc=0; ctl cutover web2 --timeout 2 >"$T/ctl.out" 2>&1 || rc=$?
el=$SECONDS
[ $rc -eq 1 ] && grep -q "^agent web2 is not connected; waiting up to 2 s" "$T/ctl.out" &&
	grep -q "^FAILED: agent web2 is not connected (waited 2 s for it to come back)" "$T/ctl.out" ||
	{ cat "$T/ctl.out"; fail "cutover of an agent that stayed away (rc $rc)"; }
[ "$el" -ge 1 ] && [ "$el" -lt 60 ] || fail "the cutover's wait took $el s for a 2 s timeout"
grep -q '^cutover=1$' "$T/state/disks/d2.state" && fail "a failed cutover was recorded"
pass "state dir 0700, --until-synced waits (receiver, first disk, --agent), verified after --once, expiry, cutover waits for an absent agent"

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# ternctl against a real receiver's HTTP API during a real replication: status --json is
# the API's answer (compared with curl's), the table shows each disk with its state, the
# live view redraws in place under a pseudo-terminal and prints plain lines otherwise,
# pause/resume/rate are reflected in status, bad requests are refused clearly, and with
# the receiver gone status falls back to the records on disk.
. "$(dirname "$0")/lib.sh"
: "${TERNCTL:?set by meson}"
for tool in jq curl script timeout; do
	command -v "$tool" >/dev/null || skip "$tool not installed"
done

init_state "$T/state"
make_mixed_image "$T/src.img" 256
start_receiver "$T/state" --target d="$T/dst.img"
for _ in $(seq 1 100); do [ -s "$T/state/api.addr" ] && break; sleep 0.1; done
[ -s "$T/state/api.addr" ] || fail "the receiver did not write api.addr"
URL="http://$(cat "$T/state/api.addr")"
TOKEN=$(cat "$T/state/api.token")
ctl() { "$TERNCTL" --state-dir "$T/state" "$@"; }
api() { curl -sS --max-time 10 -H "Authorization: Bearer $TOKEN" "$URL$1"; }
wait_json() { # wait_json JQ_EXPR: until ternctl status --json satisfies it
	for _ in $(seq 1 300); do
		ctl status --json | jq -e "$1" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	ctl status --json; fail "timed out waiting for $1"
}

# No agent yet: a table that says so, and requests about nobody are refused with a reason.
ctl status >"$T/st.out" || fail "status with no agents"
grep -q "no agents yet" "$T/st.out" || { cat "$T/st.out"; fail "no 'no agents yet'"; }
for cmd in "pause nobody" "resume nobody" "rate nobody 1M"; do
	rc=0; ctl $cmd >"$T/out" 2>"$T/err" || rc=$?
	[ $rc -eq 1 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -q "nobody" "$T/err" ||
		{ cat "$T/out" "$T/err"; fail "'$cmd' was not refused with one line (rc $rc)"; }
done
rc=0; ctl cutover nobody --timeout 5 >"$T/out" 2>&1 || rc=$?
[ $rc -eq 1 ] && grep -q "^FAILED: .*nobody" "$T/out" || { cat "$T/out"; fail "cutover of nobody (rc $rc)"; }
# Usage errors: exit 2, one line, nothing asked of the receiver.
for cmd in "rate web1 12Q" "status --verify full" "pause" "pause bad/name" "frobnicate" \
	"status --watch --interval 0"; do
	rc=0; ctl $cmd >"$T/out" 2>"$T/err" || rc=$?
	[ $rc -eq 2 ] && [ "$(wc -l <"$T/err")" -eq 1 ] ||
		{ cat "$T/out" "$T/err"; fail "'$cmd' is not a usage error (rc $rc)"; }
done

# The copy, slowed by the agent's own limit so that the live view sees it progress.
"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$T/state/agent-bundle.pem" \
	--name web1 --disk d="$T/src.img" --interval 1 --max-rate 40M --no-progress \
	>"$T/agent.log" 2>&1 &
AGENT_PID=$!
wait_json '.agents[0].disks[0].id == "d"'

# A wrong token is refused and changes nothing.
printf '%064x\n' 12345 >"$T/wrong.token"
rc=0; ctl --token-file "$T/wrong.token" pause web1 >"$T/out" 2>"$T/err" || rc=$?
[ $rc -eq 1 ] && grep -qi "token" "$T/err" || { cat "$T/out" "$T/err"; fail "a wrong token was not refused (rc $rc)"; }
rc=0; ctl --token-file "$T/wrong.token" status >"$T/out" 2>"$T/err" || rc=$?
[ $rc -eq 1 ] || { cat "$T/out" "$T/err"; fail "status with a wrong token (rc $rc)"; }
ctl status --json | jq -e '.agents[0].paused == false' >/dev/null || fail "a refused pause paused"

# The live view under a pseudo-terminal: hides the cursor, redraws in place (cursor up,
# clear line) more than once with a progress bar, and restores the cursor on SIGINT.
script -qfec "timeout -s INT 3 $TERNCTL --state-dir $T/state status --watch --interval 0.2" \
	/dev/null >"$T/watch.tty" 2>&1 || true
ESC=$'\033'
grep -q "$ESC\[?25l" "$T/watch.tty" || { cat -v "$T/watch.tty"; fail "the live view did not hide the cursor"; }
UPS=$(grep -o "$ESC\[[0-9]*A" "$T/watch.tty" | wc -l)
[ "$UPS" -ge 2 ] || { cat -v "$T/watch.tty"; fail "the live view did not redraw in place ($UPS cursor-ups)"; }
[ "$(grep -c "$ESC\[2K" "$T/watch.tty")" -gt "$UPS" ] || fail "the live view does not clear the lines it redraws"
grep -q "web1/d .*\[[#.]*\] *[0-9.]*%" "$T/watch.tty" || { cat -v "$T/watch.tty"; fail "no progress bar"; }
tail -c 64 "$T/watch.tty" | grep -q "$ESC\[?25h" || { cat -v "$T/watch.tty"; fail "the cursor was not restored"; }
# Without a terminal: plain lines, one per disk per interval, no escape codes.
timeout -s INT 2 "$TERNCTL" --state-dir "$T/state" status --watch --interval 0.2 >"$T/watch.txt" || true
[ "$(grep -c "^[0-9:]* web1/d [a-z-]* [0-9.]*% " "$T/watch.txt")" -ge 3 ] ||
	{ cat "$T/watch.txt"; fail "no plain progress lines without a terminal"; }
! grep -q "$ESC" "$T/watch.txt" || { cat -v "$T/watch.txt"; fail "escape codes without a terminal"; }
# --until-synced ends by itself once the copy is in sync.
rc=0; timeout 300 "$TERNCTL" --state-dir "$T/state" status --until-synced --interval 0.5 >"$T/until.txt" || rc=$?
[ $rc -eq 0 ] || { tail "$T/until.txt" "$T/agent.log"; fail "--until-synced did not end by itself (rc $rc)"; }
tail -n 1 "$T/until.txt" | grep -q " web1/d in-sync " || { tail "$T/until.txt"; fail "--until-synced ended before the disk was in sync"; }

# status --json is the API's answer: the same fields and, where they do not move between
# two requests, the same values.
stable='{receiver: .receiver.version, agents: [.agents[] | {name, connected, peer, paused,
	rate_limit_bps, disks: [.disks[] | {id, size_bytes, bytes_total, tracker, cut_over,
	converges: .forecast.converges}]}]}'
shape='[paths | map(tostring) | join(".")] | sort'
ctl status --json >"$T/ctl.json" || fail "status --json"
api /v1/status >"$T/api.json" || fail "curl /v1/status"
[ "$(jq -c "$stable" "$T/ctl.json")" = "$(jq -c "$stable" "$T/api.json")" ] ||
	{ jq -c "$stable" "$T/ctl.json" "$T/api.json"; fail "status --json differs from the API"; }
[ "$(jq -c "$shape" "$T/ctl.json")" = "$(jq -c "$shape" "$T/api.json")" ] ||
	fail "status --json has other fields than the API"
# The table: a row per disk with the state the API reports (which moves between in-sync
# and copying as epochs run: asked again until two answers agree), then its forecast.
for i in $(seq 1 20); do
	STATE=$(ctl status --json | jq -r '.agents[0].disks[0].state')
	ctl status >"$T/st.out" 2>"$T/st.err" || fail "status"
	grep -Eq "^web1 +d +$STATE +[0-9.]+% [0-9. KMGi]+B/256 MiB .* (scan|ebpf)$" "$T/st.out" && break
	[ "$i" -lt 20 ] || { echo "state $STATE"; cat "$T/st.out"; fail "the table does not show disk d $STATE"; }
done
[ ! -s "$T/st.err" ] || { cat "$T/st.err"; fail "status wrote to stderr"; }
grep -Eq "^  (forecast: |WARNING: )" "$T/st.out" || { cat "$T/st.out"; fail "no forecast line"; }
grep -q "^  agent web1: connected from 127.0.0.1:" "$T/st.out" || { cat "$T/st.out"; fail "no agent line"; }

# Pause and resume: answered, and reflected in status.
ctl pause web1 >"$T/out" || fail "pause"
grep -q "^agent web1: paused$" "$T/out" || { cat "$T/out"; fail "pause said $(cat "$T/out")"; }
wait_json '.agents[0].paused == true and .agents[0].disks[0].state == "paused"'
ctl status | grep -Eq "^web1 +d +paused " || fail "the table does not show the pause"
ctl resume web1 --json >"$T/out" || fail "resume"
jq -e '.result == "ok" and .agent == "web1" and .paused == false and .connected == true' "$T/out" >/dev/null ||
	{ cat "$T/out"; fail "resume --json"; }
wait_json '.agents[0].paused == false and .agents[0].disks[0].state != "paused"'
# Rate: K/M/G suffixes, shown in the table; unlimited lifts it.
ctl rate web1 20M >"$T/out" || fail "rate"
grep -q "^agent web1: rate limit 20.0 MiB/s$" "$T/out" || { cat "$T/out"; fail "rate said $(cat "$T/out")"; }
wait_json '.agents[0].rate_limit_bps == 20971520'
ctl status | grep -q "^  agent web1: connected .*, rate limit 20.0 MiB/s" || fail "the table does not show the rate limit"
ctl rate web1 unlimited --json | jq -e '.rate_limit_bps == 0' >/dev/null || fail "rate unlimited"
wait_json '.agents[0].rate_limit_bps == 0'

# The cutover: the proof, OK, and the table then says the disk is cut over.
ctl cutover web1 --timeout 60 >"$T/cut.out" 2>&1 || { cat "$T/cut.out" "$T/agent.log"; fail "cutover failed"; }
grep -q "^disk d: .* merkle root [0-9a-f]\{32\}, final epoch [0-9]*, verify tracked: match" "$T/cut.out" ||
	{ cat "$T/cut.out"; fail "no proof printed"; }
[ "$(tail -n 1 "$T/cut.out")" = "OK" ] || { cat "$T/cut.out"; fail "the cutover did not end with OK"; }
wait "$AGENT_PID" || { cat "$T/agent.log"; fail "the agent did not exit 0 after the cutover"; }
AGENT_PID=
[ "$(sha "$T/src.img")" = "$(sha "$T/dst.img")" ] || fail "SHA-256 differs after the cutover"
ctl status | grep -Eq "^web1 +d +cut-over " || { ctl status; fail "the table does not show the cutover"; }

# The receiver gone: status shows the records on disk, says why on stderr, exits 0.
stop_receiver
rc=0; ctl status >"$T/st.out" 2>"$T/st.err" || rc=$?
[ $rc -eq 0 ] || { cat "$T/st.out" "$T/st.err"; fail "offline status exited $rc"; }
grep -Eq "not reachable|no receiver API" "$T/st.err" || { cat "$T/st.err"; fail "offline status did not say why"; }
grep -Eq "^d +web1 +[0-9]+ +yes +yes " "$T/st.out" || { cat "$T/st.out"; fail "offline status does not show the record"; }
# A damaged record is refused whole, and neither it nor its file's name can drive the
# terminal: the name's control bytes come out as '?'; the good record is still shown.
EVIL="$T/state/disks/$(printf 'ev\033[2Jil').state"
printf 'disk=ev\033[2Jil\nagent=x\033]0;EVILTITLE\007\nepoch=1\033c\nevent=EVILEVENT\033[31m\n' >"$EVIL"
ctl status >"$T/st.out" 2>/dev/null || true
grep -q "^ev?\[2Jil .*its record cannot be read" "$T/st.out" ||
	{ cat -v "$T/st.out"; fail "the damaged record is not named, sanitised, as unreadable"; }
! grep -q "$(printf '\033')" "$T/st.out" || { cat -v "$T/st.out"; fail "offline status printed an escape sequence"; }
! grep -q "EVIL" "$T/st.out" || { cat -v "$T/st.out"; fail "offline status showed a refused record's fields"; }
grep -Eq "^d +web1 +[0-9]+ +yes +yes " "$T/st.out" || { cat "$T/st.out"; fail "a damaged record hid the good one"; }
rm -f "$EVIL"
rc=0; ctl status --json >"$T/out" 2>&1 || rc=$?
[ $rc -eq 1 ] || { cat "$T/out"; fail "status --json without a receiver exited $rc"; }
pass "ternctl: JSON matches the API, table, live view on a pty and plain, pause/resume/rate, cutover, refusals, offline status"

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Identity and authorisation over real TLS, against the real binaries: enrolment cannot
# mint the shared bundle's name, a certificate that only carries that name is not the
# shared bundle, an unbound token cannot take a name that owns a disk or was revoked, a
# revocation holds against the shared bundle claiming the name and ends live sessions
# within seconds, ternctl disconnect closes a session that then comes back, a bound
# target refuses every other agent, and --no-shared-bundle (flag or config key) refuses
# the shared bundle. Each refusal leaves the target's bytes as they were.
. "$(dirname "$0")/lib.sh"
: "${TERNCTL:?set by meson}"
command -v openssl >/dev/null || skip "openssl not installed"

init_state "$T/state"
[ -s "$T/state/shared-bundle.sha256" ] || fail "init did not mark the shared bundle"
BUNDLE="$T/state/agent-bundle.pem"
make_mixed_image "$T/src.img" 4
# Targets that exist before any agent comes: a refused agent must leave them alone.
for t in victim bound; do head -c 4194304 /dev/urandom >"$T/$t.img"; done
RECEIVER_ARGS=(--target v="$T/victim.img" --target b="$T/bound.img,agent=owner"
	--target e="$T/e.img" --target l="$T/live.img" --target i="$T/idle.img"
	--target c="$T/dc.img" --enrol-listen 127.0.0.1:0)
start_enrol_receiver() {
	start_receiver "$T/state" "${RECEIVER_ARGS[@]}" "$@"
	enrol_port
}
start_enrol_receiver

token() { "$TERN_RECEIVER" token create --state-dir "$T/state" --address "127.0.0.1:$EPORT" "$@"; }
issued() { grep -c . "$T/state/issued" 2>/dev/null || true; }
# refused_join WHAT REASON TOKEN NAME: the join fails with REASON and nothing is issued.
refused_join() {
	local before rc=0
	before=$(issued)
	"$TERN_AGENT" join "$3" --name "$4" --config-dir "$T/join-$4" >"$T/join.log" 2>&1 || rc=$?
	[ $rc -ne 0 ] || { cat "$T/join.log"; fail "$1: join succeeded"; }
	grep -q -- "$2" "$T/join.log" || { cat "$T/join.log"; fail "$1: no reason '$2'"; }
	[ ! -e "$T/join-$4/agent.pem" ] || fail "$1: credentials written"
	[ "$(issued)" = "$before" ] || fail "$1: a certificate was issued"
}
# agent_once CREDENTIALS NAME DISK: one copy; exit code returned, output in $T/agent.log.
agent_once() {
	local rc=0
	"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$1" --name "$2" --once \
		--no-progress --disk "$3" >"$T/agent.log" 2>&1 || rc=$?
	return $rc
}
# refused_run WHAT REASON CREDENTIALS NAME DISK_ID IMG: refused with REASON, IMG unchanged.
refused_run() {
	local before
	before=$(sha "$6")
	if agent_once "$3" "$4" "$5=$T/src.img"; then
		fail "$1: the agent was accepted"
	fi
	grep -q -- "$2" "$T/agent.log" || { cat "$T/agent.log"; fail "$1: no reason '$2'"; }
	[ "$(sha "$6")" = "$before" ] || fail "$1: the target changed"
}

# 1. The victim replicates through the shared bundle; status says it uses it.
agent_once "$BUNDLE" victim v="$T/src.img" || { cat "$T/agent.log"; fail "victim could not replicate"; }
[ "$(sha "$T/src.img")" = "$(sha "$T/victim.img")" ] || fail "victim's copy differs"
"$TERNCTL" --state-dir "$T/state" status --json >"$T/status.json" || fail "ternctl status --json"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); a={x["name"]: x for x in s["agents"]};
assert a["victim"]["shared_bundle"] is True, a' "$T/status.json" || fail "status does not say victim uses the shared bundle"
"$TERNCTL" --state-dir "$T/state" status >"$T/status.txt" || fail "ternctl status"
grep -q "agent victim: .*with the shared agent bundle" "$T/status.txt" ||
	{ cat "$T/status.txt"; fail "ternctl status does not say victim uses the shared bundle"; }
pass "the shared bundle replicates, and status says which agent uses it"

# 2. Enrolment never issues the reserved names, whatever the case; token create refuses
# to bind them.
TOK=$(token 2>/dev/null)
refused_join "join as tern-agent" "reserved" "$TOK" tern-agent
refused_join "join as TERN-RECEIVER" "reserved" "$TOK" TERN-RECEIVER
rc=0; token --name tern-agent >/dev/null 2>"$T/token.err" || rc=$?
[ $rc -eq 2 ] && grep -q reserved "$T/token.err" || { cat "$T/token.err"; fail "token create --name tern-agent (rc $rc)"; }

# 3. A name that owns a disk (the victim's, through the shared bundle) is taken for an
# unbound token; a revoked name is too, even without a disk.
refused_join "take the victim's name" "owns disk v" "$TOK" victim
"$TERN_RECEIVER" agent revoke ghost --state-dir "$T/state" >/dev/null || fail "revoke ghost"
refused_join "take a revoked name" "was revoked" "$TOK" ghost
pass "reserved, disk-owning and revoked names are refused to unbound tokens"

# 4. A certificate that merely carries the shared bundle's name (as an older receiver's
# enrolment could issue it, made here with the CA key) is not the shared bundle: it
# cannot act as the victim, nor under its own name.
openssl ecparam -name prime256v1 -genkey -noout -out "$T/rogue.key" 2>/dev/null
openssl req -new -key "$T/rogue.key" -subj "/CN=tern-agent" -out "$T/rogue.csr" 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >"$T/rogue.ext"
openssl x509 -req -in "$T/rogue.csr" -CA "$T/state/ca.pem" -CAkey "$T/state/ca.key" \
	-set_serial 0x5eed -days 30 -extfile "$T/rogue.ext" -out "$T/rogue.crt" 2>/dev/null ||
	fail "cannot sign the rogue certificate"
cat "$T/rogue.crt" "$T/rogue.key" "$T/state/ca.pem" >"$T/rogue.pem"
chmod 600 "$T/rogue.pem"
refused_run "rogue certificate as victim" "is not the receiver's shared bundle" "$T/rogue.pem" victim v "$T/victim.img"
refused_run "rogue certificate as tern-agent" "is not the receiver's shared bundle" "$T/rogue.pem" tern-agent v "$T/victim.img"
pass "a certificate named like the shared bundle cannot claim the victim's name"

# 5. Revoking the victim holds against the shared bundle claiming its name; another name
# on the shared bundle goes on.
"$TERN_RECEIVER" agent revoke victim --state-dir "$T/state" >/dev/null || fail "revoke victim"
refused_run "shared bundle as revoked victim" "agent victim is revoked" "$BUNDLE" victim v "$T/victim.img"
refused_join "take the revoked victim's name" "was revoked" "$TOK" victim
# A token bound to the name may re-enrol it, and its own certificate then replicates.
TOKV=$(token --name victim 2>/dev/null)
"$TERN_AGENT" join "$TOKV" --name victim --config-dir "$T/victim" >"$T/join.log" 2>&1 ||
	{ cat "$T/join.log"; fail "a token bound to victim could not re-enrol it"; }
agent_once "$T/victim/agent.pem" victim v="$T/src.img" || { cat "$T/agent.log"; fail "re-enrolled victim refused"; }
# The shared bundle may not claim a name that holds a certificate of its own (here one
# never revoked, enrolled with an unbound token).
"$TERN_AGENT" join "$TOK" --name web9 --config-dir "$T/web9" >"$T/join.log" 2>&1 ||
	{ cat "$T/join.log"; fail "a free name could not be enrolled"; }
agent_once "$T/web9/agent.pem" web9 e="$T/src.img" || { cat "$T/agent.log"; fail "web9 refused"; }
refused_run "shared bundle as enrolled web9" "has its own certificate" "$BUNDLE" web9 e "$T/e.img"
pass "revocation holds against the shared bundle; an enrolled name is its certificate's alone"

# 6. A bound target refuses another agent (nothing written, no record), then takes its own.
refused_run "intruder on a bound target" "bound to agent owner" "$BUNDLE" intruder b "$T/bound.img"
[ ! -e "$T/state/disks/b.state" ] || fail "the refused agent left a record for the bound target"
agent_once "$BUNDLE" owner b="$T/src.img" || { cat "$T/agent.log"; fail "the bound agent was refused"; }
[ "$(sha "$T/src.img")" = "$(sha "$T/bound.img")" ] || fail "the bound agent's copy differs"
pass "a bound target refuses another agent and serves its own"

# 7. A live session of a revoked agent is closed within seconds, busy (an epoch every
# second) or idle (no epoch for an hour), and no later epoch is acknowledged.
acks() { grep -c "agent $1: disk $2 epoch [0-9]* durable and verified" "$T/receiver.log" || true; }
revoke_live() { # NAME DISK INTERVAL
	local n0 n1 i
	"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$BUNDLE" --name "$1" \
		--disk "$2=$T/src.img" --tracker scan --interval "$3" --no-progress >"$T/agent.log" 2>&1 &
	AGENT_PID=$!
	for i in $(seq 1 300); do
		[ "$(acks "$1" "$2")" -ge 1 ] && break
		sleep 0.1
	done
	[ "$(acks "$1" "$2")" -ge 1 ] || { cat "$T/agent.log"; fail "$1: no epoch acknowledged"; }
	[ "$3" = 1 ] && for i in $(seq 1 100); do [ "$(acks "$1" "$2")" -ge 3 ] && break; sleep 0.1; done
	"$TERN_RECEIVER" agent revoke "$1" --state-dir "$T/state" >/dev/null || fail "revoke $1"
	n0=$(acks "$1" "$2")
	# Generous for a loaded machine; without the re-check the session would go on for good.
	for i in $(seq 1 200); do
		kill -0 "$AGENT_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$AGENT_PID" 2>/dev/null && { cat "$T/agent.log"; fail "$1: revoked session still open after 20 s"; }
	wait "$AGENT_PID" 2>/dev/null || true
	AGENT_PID=
	n1=$(acks "$1" "$2")
	grep -q "receiver refused: agent $1 is revoked" "$T/agent.log" ||
		{ cat "$T/agent.log"; fail "$1: the agent was not told it is revoked"; }
	# An epoch whose check passed just before the revocation landed may still be acked.
	[ "$n1" -le $((n0 + 1)) ] || fail "$1: $((n1 - n0)) epochs acknowledged after the revocation"
}
revoke_live live l 1
revoke_live idle i 3600
pass "a revoked agent's live session is closed, busy or idle"

# 8. ternctl disconnect closes a live session; the agent reconnects.
"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$BUNDLE" --name dc \
	--disk c="$T/src.img" --tracker scan --interval 1 --no-progress >"$T/agent.log" 2>&1 &
AGENT_PID=$!
for i in $(seq 1 300); do [ "$(acks dc c)" -ge 1 ] && break; sleep 0.1; done
[ "$(acks dc c)" -ge 1 ] || { cat "$T/agent.log"; fail "dc: no epoch acknowledged"; }
"$TERNCTL" --state-dir "$T/state" disconnect dc >"$T/dc.out" 2>&1 || { cat "$T/dc.out"; fail "ternctl disconnect"; }
grep -q "agent dc: disconnected (1 session); it will reconnect unless it is revoked" "$T/dc.out" ||
	{ cat "$T/dc.out"; fail "ternctl disconnect does not say what happens next"; }
wait_log "$T/agent.log" "operator disconnected agent dc" || { cat "$T/agent.log"; fail "the agent was not told"; }
for i in $(seq 1 300); do [ "$(grep -c "agent dc connected" "$T/receiver.log")" -ge 2 ] && break; sleep 0.1; done
[ "$(grep -c "agent dc connected" "$T/receiver.log")" -ge 2 ] || { cat "$T/agent.log"; fail "dc did not reconnect"; }
kill -0 "$AGENT_PID" 2>/dev/null || fail "the disconnected agent exited"
kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=
rc=0; "$TERNCTL" --state-dir "$T/state" disconnect nobody >"$T/dc.out" 2>&1 || rc=$?
[ $rc -eq 1 ] && grep -q "no live session" "$T/dc.out" || { cat "$T/dc.out"; fail "disconnect of an absent agent (rc $rc)"; }
pass "ternctl disconnect closes a live session, and the agent comes back"

# 9. --no-shared-bundle, as a flag and as a config key, refuses the shared bundle; enrolled
# agents go on. A state dir from an older init (no marks) gets them back on serve.
stop_receiver
start_enrol_receiver --no-shared-bundle
refused_run "shared bundle switched off" "shared agent bundle is switched off" "$BUNDLE" owner b "$T/bound.img"
agent_once "$T/victim/agent.pem" victim v="$T/src.img" || { cat "$T/agent.log"; fail "enrolled agent refused"; }
stop_receiver
printf 'no-shared-bundle = true\ntarget = b=%s,agent=owner\n' "$T/bound.img" >"$T/receiver.conf"
chmod 600 "$T/receiver.conf"
RECEIVER_ARGS=(--config "$T/receiver.conf")
start_receiver "$T/state" "${RECEIVER_ARGS[@]}"
refused_run "shared bundle switched off in the config" "shared agent bundle is switched off" "$BUNDLE" owner b "$T/bound.img"
stop_receiver
MARKS=$(cat "$T/state/shared-bundle.sha256")
rm "$T/state/shared-bundle.sha256"
printf 'target = b=%s,agent=owner\n' "$T/bound.img" >"$T/receiver.conf"
start_receiver "$T/state" "${RECEIVER_ARGS[@]}"
[ "$(cat "$T/state/shared-bundle.sha256")" = "$MARKS" ] || fail "serve did not mark an older state dir's bundle"
agent_once "$BUNDLE" owner b="$T/src.img" || { cat "$T/agent.log"; fail "the shared bundle is refused after re-marking"; }
refused_run "intruder on a bound target from the config" "bound to agent owner" "$BUNDLE" intruder b "$T/bound.img"
pass "--no-shared-bundle refuses the shared bundle; an older state dir is marked on serve"

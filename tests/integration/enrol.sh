#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Enrolment and revocation over real TLS: a join token buys one certificate, which then
# replicates; reused, expired, damaged, forged and foreign tokens, a wrong name and a taken
# name are refused with a clear reason and nothing issued; a revoked agent is refused at
# its next connection, without a receiver restart, while another agent goes on.
. "$(dirname "$0")/lib.sh"

init_state "$T/state"
init_state "$T/other"
make_mixed_image "$T/src.img" 4
start_receiver "$T/state" --target d="$T/dst.img" --target e="$T/dst2.img" \
	--enrol-listen 127.0.0.1:0
enrol_port

token() {
	"$TERN_RECEIVER" token create --state-dir "$T/state" --address "127.0.0.1:$EPORT" "$@" \
		2>>"$T/token.log"
}
# Runs tern-agent join; its exit code is returned, output goes to $T/join.log.
join() {
	local rc=0
	"$TERN_AGENT" join ${TERN_TEST_DEBUG:+--log-level debug} "$@" >"$T/join.log" 2>&1 || rc=$?
	return $rc
}
# Makes a token and names its record on the receiver in REC.
token_rec() {
	local before
	before=$(ls "$T/state/tokens")
	TOK=$(token "$@")
	REC=$(comm -13 <(echo "$before") <(ls "$T/state/tokens"))
	[ -n "$REC" ] && [ -f "$T/state/tokens/$REC" ] || fail "no record for the new token"
}
issued() { grep -c . "$T/state/issued" 2>/dev/null || true; }
# A refused join: exit code 1, the reason in its output, nothing issued, no credentials.
refused() {
	local what=$1 reason=$2 dir=$3 before
	shift 3
	before=$(issued)
	if join "$@" --config-dir "$dir"; then
		cat "$T/join.log"
		fail "$what: join succeeded"
	fi
	grep -q -- "$reason" "$T/join.log" || { cat "$T/join.log"; fail "$what: no reason '$reason'"; }
	[ ! -e "$dir/agent.pem" ] || fail "$what: credentials written"
	[ "$(issued)" = "$before" ] || fail "$what: a certificate was issued"
}

# 1. A token enrols an agent; its credentials replicate.
TOK=$(token --ttl 10m)
case "$TOK" in tern1.*) ;; *) fail "token create printed '$TOK'" ;; esac
[ "$(stat -c %a "$T/state/tokens")" = 700 ] || fail "tokens directory not 0700"
for f in "$T/state/tokens"/*; do
	[ "$(stat -c %a "$f")" = 600 ] || fail "token record $f not 0600"
	grep -q "${TOK#tern1.}" "$f" && fail "the token's text is stored on the receiver"
done
join "$TOK" --name web1 --config-dir "$T/web1" || { cat "$T/join.log"; fail "join failed"; }
grep -q "enrolled as web1" "$T/join.log" || { cat "$T/join.log"; fail "join did not say so"; }
[ "$(stat -c %a "$T/web1/agent.pem")" = 600 ] || fail "agent.pem not 0600"
grep -qx "receiver = 127.0.0.1:$PORT" "$T/web1/agent.conf" ||
	{ cat "$T/web1/agent.conf"; fail "agent.conf lacks the replication address"; }
grep -qx "credentials = $T/web1/agent.pem" "$T/web1/agent.conf" || fail "agent.conf lacks credentials"
grep -qx "name = web1" "$T/web1/agent.conf" || fail "agent.conf lacks the name"
grep -q "enrolled agent web1" "$T/receiver.log" || fail "receiver did not log the enrolment"
[ "$(issued)" = 1 ] || fail "issued list does not hold one certificate"
openssl x509 -in "$T/web1/agent.pem" -noout -subject | grep -q "CN *= *web1" ||
	fail "certificate not issued to web1"
RCV=$(sed -n 's/^receiver = //p' "$T/web1/agent.conf")
"$TERN_AGENT" run --receiver "$RCV" --credentials "$T/web1/agent.pem" --name web1 --once \
	--no-progress --disk d="$T/src.img" >"$T/agent.log" 2>&1 ||
	{ cat "$T/agent.log"; fail "joined agent could not replicate"; }
[ "$(sha "$T/src.img")" = "$(sha "$T/dst.img")" ] || fail "SHA-256 differs after a joined copy"
# The certificate binds the name: web1's credential cannot pose as another agent.
BEFORE=$(sha "$T/dst.img")
if "$TERN_AGENT" run --receiver "$RCV" --credentials "$T/web1/agent.pem" --name mallory --once \
	--no-progress --disk d="$T/src.img" >"$T/agent.log" 2>&1; then
	fail "web1's certificate was accepted as agent mallory"
fi
grep -q "does not match its certificate" "$T/agent.log" || { cat "$T/agent.log"; fail "no reason for the name refusal"; }
[ "$(sha "$T/dst.img")" = "$BEFORE" ] || fail "the refused agent changed the target"
pass "join, then a verified copy with the joined credentials; the name is bound"

# 2. The same token again: refused, whatever the name.
refused "reused token" "already used" "$T/web2" "$TOK" --name web2
wait_log "$T/receiver.log" "enrolment from .* refused: the token was already used" ||
	fail "receiver did not log the refusal"

# 3. An expired token.
TOK=$(token --ttl 1s)
sleep 2
refused "expired token" "expired" "$T/web2" "$TOK" --name web2

# 4. A damaged token: every tamper with its text is caught before anything is sent.
TOK=$(token)
MID=$(( ${#TOK} / 2 ))
C=${TOK:$MID:1}
[ "$C" = A ] && N=B || N=A
refused "tampered token" "damaged" "$T/web2" "${TOK:0:$MID}$N${TOK:$((MID + 1))}" --name web2
refused "truncated token" "damaged" "$T/web2" "${TOK:0:$((${#TOK} - 3))}" --name web2
# ...and the untouched token still works: nothing was spent.
join "$TOK" --name web2 --config-dir "$T/web2" || { cat "$T/join.log"; fail "token spent by a refusal"; }

# 5. A well-formed token whose secret the receiver does not know, and one it never issued.
token_rec
sed -i "s/^secret-sha256 = .*/secret-sha256 = $(printf '%064d' 0)/" "$T/state/tokens/$REC"
refused "wrong secret" "secret does not match" "$T/web3" "$TOK" --name web3
token_rec
rm "$T/state/tokens/$REC"
refused "unknown token" "unknown token" "$T/web3" "$TOK" --name web3

# 6. A token from another receiver's CA that points at this receiver: the pin does not
# match, so the agent sends nothing.
TOK=$("$TERN_RECEIVER" token create --state-dir "$T/other" --address "127.0.0.1:$EPORT" 2>/dev/null)
refused "foreign pin" "does not match the token's pin" "$T/web3" "$TOK" --name web3
wait_log "$T/receiver.log" "TLS handshake failed" || fail "receiver did not see the aborted handshake"

# 7. A token bound to a name refuses another name, and is not spent by that.
TOK=$(token --name web3)
refused "wrong name" "is for agent web3, not web4" "$T/web4" "$TOK" --name web4
join "$TOK" --name web3 --config-dir "$T/web3" || { cat "$T/join.log"; fail "bound token refused its name"; }

# 8. An unbound token cannot take an enrolled agent's name.
TOK=$(token)
refused "taken name" "already enrolled" "$T/web1b" "$TOK" --name web1
# 9. An existing agent.pem is kept; the token is checked for nothing and stays usable.
if join "$TOK" --name web5 --config-dir "$T/web3"; then fail "agent.pem overwritten without --force"; fi
grep -q "already enrolled (pass --force" "$T/join.log" || { cat "$T/join.log"; fail "no reason for keeping agent.pem"; }
join "$TOK" --name web5 --config-dir "$T/web5" || { cat "$T/join.log"; fail "token spent by a local refusal"; }
pass "reused, expired, tampered, truncated, forged, unknown, foreign, misnamed tokens refused"

# 10. Revocation: the running receiver refuses web1 at its next connection; web3 goes on.
"$TERN_RECEIVER" agent revoke web1 --state-dir "$T/state" >/dev/null || fail "revoke failed"
[ "$(stat -c %a "$T/state/revoked")" = 600 ] || fail "revoked list not 0600"
BEFORE=$(sha "$T/dst.img")
if "$TERN_AGENT" run --receiver "$RCV" --credentials "$T/web1/agent.pem" --name web1 --once \
	--no-progress --disk d="$T/src.img" >"$T/agent.log" 2>&1; then
	fail "revoked agent accepted"
fi
grep -q "receiver refused: agent web1 is revoked" "$T/agent.log" ||
	{ cat "$T/agent.log"; fail "no clear reason for the revoked agent"; }
wait_log "$T/receiver.log" "agent web1 is revoked" || fail "receiver did not log the revoked agent"
[ "$(sha "$T/dst.img")" = "$BEFORE" ] || fail "revoked agent changed the target"
"$TERN_AGENT" run --receiver "$RCV" --credentials "$T/web3/agent.pem" --name web3 --once \
	--no-progress --disk e="$T/src.img" >"$T/agent.log" 2>&1 ||
	{ cat "$T/agent.log"; fail "a non-revoked agent was refused"; }
[ "$(sha "$T/src.img")" = "$(sha "$T/dst2.img")" ] || fail "SHA-256 differs for the other agent"
"$TERN_RECEIVER" agent list --state-dir "$T/state" >"$T/list.log"
grep -q "^web1 .*revoked" "$T/list.log" || { cat "$T/list.log"; fail "agent list does not show web1 revoked"; }
grep -q "^web3 .*valid" "$T/list.log" || { cat "$T/list.log"; fail "agent list does not show web3 valid"; }
pass "a revoked agent is refused without a restart; another agent still replicates"

# 11. Re-enrolling the revoked name with a token made for it gives a working certificate.
TOK=$(token --name web1)
join "$TOK" --name web1 --config-dir "$T/web1" --force || { cat "$T/join.log"; fail "re-enrolment failed"; }
"$TERN_AGENT" run --receiver "$RCV" --credentials "$T/web1/agent.pem" --name web1 --once \
	--no-progress --disk d="$T/src.img" >"$T/agent.log" 2>&1 ||
	{ cat "$T/agent.log"; fail "re-enrolled agent refused"; }
pass "a revoked name re-enrolled with a token bound to it replicates again"

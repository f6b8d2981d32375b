#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# A hostile peer against a real receiver while a real agent replicates (issue 10): badpeer,
# linked with tern's own protocol and TLS code, holds an enrolled credential of its own and
# tries what the review reproduced: to act as the victim (items 1, 2), to go on after its
# revocation (3), to hold connections open without finishing a handshake (5), to make the
# receiver allocate for a huge disk (9), and to leave a stale "verified" record (10).
# Meanwhile the victim's agent keeps replicating a source that a writer changes; at the
# end its target equals its source and the receiver's peak RSS stayed bounded.
. "$(dirname "$0")/lib.sh"
: "${TERN_BADPEER:?set by meson}"

init_state "$T/state"
make_mixed_image "$T/src.img" 16
RECEIVER_ARGS=(--fp-memory 256M --enrol-listen 127.0.0.1:0 --handshake-timeout 3
	--target v="$T/victim.img" --target m="$T/m.img" --target h="$T/h.img"
	--target s="$T/s.img")
start_receiver "$T/state" "${RECEIVER_ARGS[@]}"
enrol_port
token() { "$TERN_RECEIVER" token create --state-dir "$T/state" --address "127.0.0.1:$EPORT" "$@" 2>/dev/null; }
# join TOKEN NAME [DIR]: credentials in DIR (default $T/cred-NAME).
join() { "$TERN_AGENT" join "$1" --name "$2" --config-dir "${3:-$T/cred-$2}" >"$T/join.log" 2>&1; }
acks() { grep -c "agent $1: disk $2 epoch [0-9]* durable and verified" "$T/receiver.log" || true; }
wait_acks() { # NAME DISK COUNT
	local i
	for i in $(seq 1 600); do
		[ "$(acks "$1" "$2")" -ge "$3" ] && return 0
		kill -0 "$AGENT_PID" 2>/dev/null || { cat "$T/agent.log"; fail "the victim's agent exited"; }
		sleep 0.1
	done
	cat "$T/agent.log"
	fail "$1: fewer than $3 epochs of disk $2 acknowledged"
}
peer() { # CREDENTIAL DISK SIZE SCENARIO EXPECTED
	"$TERN_BADPEER" "127.0.0.1:$PORT" "$T/cred-$1/agent.pem" "${@:2}"
}

# The victim enrols with a token the operator bound to its name, and replicates
# continuously while a writer changes its source.
join "$(token --name victim)" victim || { cat "$T/join.log"; fail "the victim could not enrol"; }
"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$T/cred-victim/agent.pem" \
	--name victim --disk v="$T/src.img" --tracker scan --interval 1 --no-progress \
	>"$T/agent.log" 2>&1 &
AGENT_PID=$!
wait_acks victim v 1
( while :; do
	dd if=/dev/urandom of="$T/src.img" bs=4k count=1 seek=$((RANDOM % 4096)) conv=notrunc status=none
	sleep 0.1
done ) &
WRITER_PID=$!

# The attacker holds unbound tokens (each works once), as anyone handed them for other
# machines would.
join "$(token)" mallory || { cat "$T/join.log"; fail "the attacker could not enrol under a free name"; }

# 1. The shared identity cannot be minted, and the attacker's own certificate cannot
#    claim the victim's name (nor the shared bundle's).
join "$(token)" tern-agent "$T/try" && fail "enrolment issued the shared bundle's name"
grep -q reserved "$T/join.log" || { cat "$T/join.log"; fail "no reason for the reserved name"; }
BADPEER_NAME=victim peer mallory v 4096 hello "does not match" >/dev/null ||
	fail "the attacker's certificate was taken as the victim"
BADPEER_NAME=tern-agent peer mallory v 4096 hello "does not match" >/dev/null ||
	fail "the attacker's certificate was taken as the shared bundle"
pass "1: no shared identity minted; the attacker cannot claim the victim's name"

# 2. The victim's name, which owns a disk, cannot be enrolled with an unbound token.
join "$(token)" victim "$T/try" && fail "an unbound token enrolled the victim's name"
grep -q "already enrolled\|owns disk v" "$T/join.log" || { cat "$T/join.log"; fail "no reason for the taken name"; }
pass "2: a name that owns a disk is not up for grabs"

# 3. The attacker replicates its own target without end; once revoked, its session is
#    closed within seconds and at most one more epoch (already past its check) is acked.
BADPEER_NAME=mallory BADPEER_MARK="$T/revoked" peer mallory m 65536 epochs - \
	>"$T/epochs.out" 2>"$T/epochs.err" &
PEER_PID=$!
for _ in $(seq 1 100); do [ "$(acks mallory m)" -ge 2 ] && break; sleep 0.1; done
[ "$(acks mallory m)" -ge 2 ] || { cat "$T/epochs.err"; fail "the attacker's epochs were not acknowledged"; }
"$TERN_RECEIVER" agent revoke mallory --state-dir "$T/state" >/dev/null || fail "revoke"
touch "$T/revoked"
for _ in $(seq 1 200); do kill -0 "$PEER_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$PEER_PID" 2>/dev/null && { kill "$PEER_PID"; fail "the revoked session is still open after 20 s"; }
wait "$PEER_PID" || { cat "$T/epochs.err"; fail "the epochs scenario failed"; }
cat "$T/epochs.out"
after=$(sed -n 's/.*, \([0-9]*\) after the mark/\1/p' "$T/epochs.out")
[ -n "$after" ] && [ "$after" -le 1 ] || fail "$after epochs acknowledged after the revocation"
grep -q "mallory is revoked" "$T/epochs.err" || { cat "$T/epochs.err"; fail "the attacker was not told why"; }
pass "3: a revoked session ends at once"

# 5. Strangers open connections and trickle a byte every second, never finishing a
#    handshake: each is closed at the handshake deadline (3 s here), and the victim's
#    epochs go on being acknowledged meanwhile.
n0=$(acks victim v)
python3 - "$PORT" 40 >"$T/trickle.out" 2>&1 <<'EOF' &
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks, closed, t0 = [], [], time.monotonic()
for _ in range(n):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        socks.append(s)
    except OSError:
        closed.append(0.0)
while socks and time.monotonic() - t0 < 30:
    for s in list(socks):
        try:
            s.send(b"\x16")
            s.settimeout(0.01)
            if s.recv(1) == b"":
                raise OSError("closed")
        except socket.timeout:
            pass
        except OSError:
            closed.append(time.monotonic() - t0)
            socks.remove(s)
    time.sleep(1)
print("closed %d of %d, last after %.1f s, %d still open" % (len(closed), n, max(closed or [0]), len(socks)))
sys.exit(0 if not socks else 1)
EOF
TRICKLE_PID=$!
wait_acks victim v $((n0 + 3))
wait "$TRICKLE_PID" || { cat "$T/trickle.out"; fail "trickling connections outlived the handshake deadline"; }
cat "$T/trickle.out"
pass "5: trickling strangers are cut at the deadline while the victim replicates"

# The attacker comes back under a second free name for the rest.
join "$(token)" eve || { cat "$T/join.log"; fail "a second free name could not be enrolled"; }

# 9. A 128 GiB disk at 4 KiB chunks asks for 516 MiB of fingerprints: refused before the
#    target is touched.
BADPEER_NAME=eve peer eve h $((128 << 30)) disk-4k "fingerprint memory" >/dev/null ||
	fail "a disk beyond the fingerprint budget was not refused"
[ ! -e "$T/h.img" ] || fail "the refused disk left a target file"
pass "9: a huge disk at 4 KiB chunks is refused, nothing allocated or created"

# 10. Verified copy, mismatched epoch end, a rewrite, a lost link: the record must not
#     vouch for the old content.
BADPEER_NAME=eve peer eve s $((1 << 20)) stale - >/dev/null || fail "the stale sequence did not run"
wait_log "$T/receiver.log" "agent eve.*connection closed without BYE\|connection closed without BYE" ||
	fail "the stale session did not end"
grep -q '^verified=1$' "$T/state/disks/s.state" && fail "a stale record vouches for a changed target"
pass "10: no stale verified record"

# The victim's copy: with the writer stopped, two more acknowledged epochs mean the
# target holds the source as it is now.
kill "$WRITER_PID"; wait "$WRITER_PID" 2>/dev/null || true; WRITER_PID=
n0=$(acks victim v)
wait_acks victim v $((n0 + 2))
[ "$(sha "$T/victim.img")" = "$(sha "$T/src.img")" ] || fail "the victim's target differs from its source"
HWM=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$RECEIVER_PID/status")
echo "receiver peak RSS: $((HWM / 1024)) MiB"
[ "$HWM" -lt $((192 * 1024)) ] || fail "the receiver's peak RSS reached $((HWM / 1024)) MiB"
pass "the victim's target equals its source; the receiver stayed within 192 MiB"

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Strangers at the operator API: 64 idle sockets from one address and a client trickling a
# request head do not lock ternctl out (8 connections per address; request heads have an
# absolute deadline), while a cutover that waits far longer than that deadline for its
# proof is still answered; the API off loopback refuses TLS 1.2 and takes 1.3; ternctl
# refuses plain http:// (from --api or TERN_API) to anything but loopback and sends nothing.
. "$(dirname "$0")/lib.sh"
: "${TERN_TRICKLE:?set by meson}"
: "${TERNCTL:?set by meson}"
for tool in curl openssl python3; do
	command -v $tool >/dev/null || skip "$tool not installed"
done

init_state "$T/state"
make_mixed_image "$T/src.img" 8
start_receiver "$T/state" --target d="$T/dst.img" --handshake-timeout 3
for i in $(seq 1 50); do [ -s "$T/state/api.addr" ] && break; sleep 0.1; done
ADDR=$(cat "$T/state/api.addr")
APORT=${ADDR##*:}
ctl() { "$TERNCTL" --state-dir "$T/state" "$@"; }

# 1. 64 idle sockets from 127.0.0.2 (more than the API's 64 connections in all) and four
# clients from 127.0.0.3 sending a request head a byte a second, never finishing it. An idle
# socket closed within 2 s counts as refused: the 8 let in are cut at the 3 s deadline, and a
# loaded machine (a sanitizer build beside other tests) can see a refusal a second late.
"$TERN_TRICKLE" 127.0.0.1 "$APORT" --from 127.0.0.2 --count 64 --every 0 --hold 20000 \
	--refused-within 2000 --ready "$T/ready1" >"$T/idle.out" &
IDLE_PID=$!
EXTRA_PIDS+=("$IDLE_PID")
"$TERN_TRICKLE" 127.0.0.1 "$APORT" --from 127.0.0.3 --count 4 --every 1000 --hold 20000 \
	--ready "$T/ready2" >"$T/slow.out" &
SLOW_PID=$!
EXTRA_PIDS+=("$SLOW_PID")
for i in $(seq 1 200); do [ -e "$T/ready1" ] && [ -e "$T/ready2" ] && break; sleep 0.1; done
[ -e "$T/ready1" ] && [ -e "$T/ready2" ] || fail "the idle clients did not connect"
# While they hold what they could get, ternctl is served (twice: a second connection too).
for k in 1 2; do
	ctl status --json >"$T/status.json" 2>"$T/status.err" ||
		{ cat "$T/status.err"; fail "ternctl locked out by idle sockets (try $k)"; }
done
wait "$IDLE_PID" "$SLOW_PID" || true
read -r idle <"$T/idle.out"
read -r slow <"$T/slow.out"
echo "idle: $idle"
echo "slow: $slow"
eval "${idle// / ; }"
[ "$open" = 0 ] || fail "idle sockets outlived the request deadline: $idle"
[ "$refused" -ge 56 ] || fail "more than 8 connections from one address were let in: $idle"
[ "$cut_max_ms" -le 10000 ] || fail "an idle socket was closed long after the 3 s deadline: $idle"
eval "${slow// / ; }"
# libmicrohttpd's own timeout counts only idle time: a byte a second would never reach it.
[ "$cut" = 4 ] && [ "$open" = 0 ] || fail "trickled request heads were not cut at the deadline: $slow"
[ "$cut_min_ms" -ge 2500 ] && [ "$cut_max_ms" -le 10000 ] || fail "trickled heads cut at the wrong time: $slow"

# 2. A request being served has no deadline: a cutover asked during a slow full copy (256 KiB/s
# for 2.4 MiB on the wire) waits for that epoch to end, well past the 3 s head deadline, and succeeds.
"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$T/state/agent-bundle.pem" \
	--disk d="$T/src.img" --name web1 --interval 1 --max-rate 256K --no-progress \
	>"$T/agent.log" 2>&1 &
AGENT_PID=$!
for i in $(seq 1 100); do
	ctl status --json 2>/dev/null | grep -q '"name":"web1"' && break
	sleep 0.1
done
START=$(date +%s)
ctl cutover web1 --timeout 120 >"$T/cut.out" 2>&1 || { cat "$T/cut.out"; fail "the cutover failed"; }
TOOK=$(( $(date +%s) - START ))
echo "cutover took $TOOK s"
[ "$TOOK" -ge 4 ] || fail "the cutover took $TOOK s: the test did not hold a request past the deadline"
[ "$(tail -n 1 "$T/cut.out")" = "OK" ] || { cat "$T/cut.out"; fail "the cutover did not end with OK"; }
wait "$AGENT_PID" || { cat "$T/agent.log"; fail "the agent did not exit 0 after the cutover"; }
AGENT_PID=
[ "$(sha "$T/src.img")" = "$(sha "$T/dst.img")" ] || fail "SHA-256 differs after the cutover"
stop_receiver
grep -q "api: closed [0-9]* connection(s) whose request was not complete" "$T/receiver.log" ||
	fail "the receiver did not report the connections it closed"

# 3. Off loopback the API is TLS 1.3 only.
init_state "$T/s2"
"$TERN_RECEIVER" serve --state-dir "$T/s2" --listen 127.0.0.1:0 --api 0.0.0.0:0 \
	--target d="$T/dst2.img" >"$T/receiver2.log" 2>&1 &
RECEIVER_PID=$!
for i in $(seq 1 50); do [ -s "$T/s2/api.addr" ] && break; sleep 0.1; done
grep -q '^https://' "$T/s2/api.addr" || fail "a non-loopback API is not TLS"
A2=$(cat "$T/s2/api.addr"); P2=${A2##*:}
if openssl s_client -connect "127.0.0.1:$P2" -tls1_2 </dev/null >"$T/tls12.out" 2>&1; then
	cat "$T/tls12.out"
	fail "the API accepted a TLS 1.2 handshake"
fi
openssl s_client -connect "127.0.0.1:$P2" -tls1_3 </dev/null >"$T/tls13.out" 2>&1 ||
	{ cat "$T/tls13.out"; fail "the API refused TLS 1.3"; }
grep -q "TLSv1.3" "$T/tls13.out" || { cat "$T/tls13.out"; fail "no TLS 1.3 session"; }
"$TERNCTL" --state-dir "$T/s2" status --json >/dev/null 2>"$T/ctl2.err" ||
	{ cat "$T/ctl2.err"; fail "ternctl cannot use the TLS 1.3 API"; }
stop_receiver

# 4. ternctl sends the token in clear text to loopback only. A listener on a non-loopback
# address of this machine, when there is one, proves that nothing is sent.
HOSTIP=$(ip -4 -o addr show scope global 2>/dev/null | awk '{ split($4, a, "/"); print a[1]; exit }')
HOSTIP=${HOSTIP:-192.0.2.1}
python3 - "$HOSTIP" "$T/got" "$T/lport" <<'PY' &
import socket, sys
s = socket.socket()
try:
    s.bind((sys.argv[1], 0))
except OSError:
    open(sys.argv[3], 'w').write('none\n'); sys.exit(0)
s.listen(8)
open(sys.argv[3], 'w').write('%d\n' % s.getsockname()[1])
s.settimeout(15)
got = b''
try:
    while True:
        c, _ = s.accept()
        c.settimeout(2)
        try:
            got += c.recv(65536)
        except OSError:
            pass
        c.close()
except OSError:
    pass
open(sys.argv[2], 'wb').write(got)
PY
LISTENER_PID=$!
EXTRA_PIDS+=("$LISTENER_PID")
for i in $(seq 1 50); do [ -s "$T/lport" ] && break; sleep 0.1; done
LPORT=$(cat "$T/lport")
[ "$LPORT" != none ] || LPORT=9
for how in option env; do
	rc=0
	if [ $how = option ]; then
		"$TERNCTL" --state-dir "$T/state" --api "http://$HOSTIP:$LPORT" status --json \
			>"$T/clear.out" 2>"$T/clear.err" || rc=$?
	else
		TERN_API="http://$HOSTIP:$LPORT" "$TERNCTL" --state-dir "$T/state" status --json \
			>"$T/clear.out" 2>"$T/clear.err" || rc=$?
	fi
	cat "$T/clear.err"
	[ $rc -eq 1 ] || fail "ternctl over clear text to $HOSTIP ($how) exited $rc, not 1"
	grep -q "refusing to send the API token in clear text" "$T/clear.err" || fail "no clear reason ($how)"
	[ "$(grep -c . "$T/clear.err")" -eq 1 ] || fail "the refusal is not one line ($how)"
done
# localhost and any 127/8 address stay allowed: this one answers nothing, so a connection
# failure (not the refusal) is what ternctl reports.
rc=0
"$TERNCTL" --state-dir "$T/state" --api "http://127.0.0.9:9" status --json >/dev/null 2>"$T/lo.err" || rc=$?
! grep -q "clear text" "$T/lo.err" || fail "ternctl refused a loopback address"
kill "$LISTENER_PID" 2>/dev/null || true
wait "$LISTENER_PID" 2>/dev/null || true
if [ -e "$T/got" ]; then
	[ ! -s "$T/got" ] || { cat "$T/got"; fail "ternctl sent something to $HOSTIP"; }
fi
pass "idle and slow API clients cannot lock ternctl out; TLS 1.3 only off loopback; no token in clear text"

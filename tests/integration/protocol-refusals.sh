#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# A peer with a valid credential that breaks the protocol gets an ERROR frame naming the
# rule it broke, and nothing reaches the target.
. "$(dirname "$0")/lib.sh"
: "${TERN_BADPEER:?set by meson}"

init_state "$T/state"
SIZE=$((1024 * 1024))
head -c $SIZE /dev/zero | tr '\0' '\125' >"$T/dst.img"
BEFORE=$(sha "$T/dst.img")
start_receiver "$T/state" --target d="$T/dst.img" --target fresh="$T/fresh.img"

check() {
	local scenario=$1 expect=$2 disk=${3:-d}
	"$TERN_BADPEER" "127.0.0.1:$PORT" "$T/state/agent-bundle.pem" "$disk" $SIZE "$scenario" "$expect" ||
		fail "$scenario"
}
check no-hello "expected HELLO"
check bad-magic "malformed frame header"
check bad-version "malformed frame header"
check oversize "malformed frame header"
check past-end "past the end"
check unregistered "unregistered disk"
check bad-zstd "corrupt compressed extent"
# Compression streams: one not granted (none asked for), a first piece that is garbage, a
# continuation of a frame never begun.
check stream-start "DATA on compression stream 0, but 0 granted"
BADPEER_STREAMS=1 check stream-start "corrupt compressed extent"
BADPEER_STREAMS=1 check stream-cont "corrupt compressed extent"
check incomplete "incomplete" fresh
# An agent's report of an unreadable source is checked like any frame.
check fault-unregistered "DISK_FAULT for unregistered disk"
check fault-epoch "DISK_FAULT for epoch 5 where epoch 0 is open"
check fault-unverified "DISK_FAULT for epoch 0 where epoch 0 is open"
check fault-malformed "malformed DISK_FAULT"
[ "$(sha "$T/dst.img")" = "$BEFORE" ] || fail "a refused frame changed the target"
# The first copy of the chunk is legitimate; the second is the one refused.
check twice "sent twice"
kill -0 "$RECEIVER_PID" || fail "receiver died"

# A receiver of another protocol version (a real TLS server with the receiver's
# credential that answers HELLO with a header of version 3): the agent says so and stops
# at once instead of reconnecting to be refused again.
python3 -u - "$T/state" >"$T/v3.log" 2>&1 <<'PY' &
import socket, ssl, struct, sys, time
st = sys.argv[1]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(st + "/receiver.pem", st + "/receiver.key")
ctx.load_verify_locations(st + "/ca.pem")
ctx.verify_mode = ssl.CERT_REQUIRED
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(4)
print("port", ls.getsockname()[1], flush=True)
ls.settimeout(30)
for _ in range(3):  # count the agent's attempts: one is expected
    try:
        c, _ = ls.accept()
    except socket.timeout:
        break
    print("connection", flush=True)
    try:
        t = ctx.wrap_socket(c, server_side=True)
        t.recv(16)  # HELLO's header
        t.sendall(struct.pack(">IBBHII", 0x5445524E, 3, 2, 0, 0, 0))
        time.sleep(0.5)
        t.close()
    except (ssl.SSLError, OSError):
        c.close()
PY
EXTRA_PIDS+=($!)
wait_for "$T/v3.log" "^port "
V3PORT=$(sed -n 's/^port //p' "$T/v3.log")
rc=0
timeout 60 "$TERN_AGENT" run --receiver "127.0.0.1:$V3PORT" --no-progress \
	--credentials "$T/state/agent-bundle.pem" --disk d="$T/dst.img" >"$T/agent.log" 2>&1 || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || { cat "$T/agent.log"; fail "the agent did not stop (rc $rc)"; }
grep -q "the receiver speaks another protocol version than this agent's v2" "$T/agent.log" ||
	{ cat "$T/agent.log"; fail "the agent did not say the versions differ"; }
[ "$(grep -c '^connection' "$T/v3.log")" -eq 1 ] || fail "the agent tried again: $(cat "$T/v3.log")"
pass "protocol violations refused, nothing written; another version named, not retried"

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
pass "protocol violations refused, nothing written"

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Network cuts during continuous replication: a proxy resets the first connections partway
# through the full copy and the epoch that resumes it; the agent reconnects with backoff,
# the receiver reconciles the interrupted epoch, the target converges to the source's
# SHA-256, and the bytes sent beyond one clean copy stay under 10% of the disk.
. "$(dirname "$0")/lib.sh"
: "${TERN_CUTPROXY:?set by meson}"

init_state "$T/state"
make_mixed_image "$T/src.img" 64
SIZE=$(stat -c %s "$T/src.img")
cp "$T/src.img" "$T/clean.img"
start_receiver "$T/state" --target d="$T/dst.img" --target c="$T/cdst.img"


start_proxy() { # start_proxy CUT_BYTES CUT_CONNECTIONS: sets PPORT
	start_cutproxy "$PORT" "$1" "$2"
}
# A fixed zstd level: the adaptive one follows the machine's load, and two runs compared
# byte for byte must compress alike.
agent() {
	"$TERN_AGENT" run --receiver "127.0.0.1:$PPORT" --credentials "$T/state/agent-bundle.pem" \
		--level 3 --no-progress "$@" >"$T/agent.log" 2>&1
}

# One clean copy through the proxy, for the byte count to compare against.
start_proxy 0 0
agent --disk c="$T/clean.img" --once || { cat "$T/agent.log"; fail "clean copy failed"; }
stop_proxy; CLEAN=$RELAYED

# The first two connections are reset after 4 MiB each: once inside the full copy, once
# inside the epoch that resumes it.
start_proxy $((4 * 1024 * 1024)) 2
agent --disk d="$T/src.img" --interval 1 --epochs 1 ||
	{ stop_proxy; cat "$T/agent.log"; fail "agent did not converge through the cuts"; }
stop_proxy; CUT=$RELAYED

[ -n "$CLEAN" ] && [ -n "$CUT" ] || fail "the proxy did not report its byte counts"
[ "$(grep -c "reconnecting in" "$T/agent.log")" -ge 2 ] || { cat "$T/agent.log"; fail "expected 2 reconnects"; }
[ "$(sha "$T/src.img")" = "$(sha "$T/dst.img")" ] || fail "SHA-256 differs after the cuts"
EXTRA=$((CUT - CLEAN))
[ "$EXTRA" -lt $((SIZE / 10)) ] || fail "sent $EXTRA bytes beyond a clean copy ($CLEAN), over 10% of $SIZE"
pass "2 network cuts: converged; $CUT bytes against $CLEAN for a clean copy"

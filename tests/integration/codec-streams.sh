#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Compression streams (protocol v2): a worker's extents share one zstd stream, so an
# extent can refer to the 8 MiB before it. A source of 1 MiB of text, then 4 MiB of random
# bytes eight times over, goes on the wire about once with a stream and eight times without
# (--streams 0: extents of their own, as before v2); a disk whose data never shrinks (as an
# encrypted volume's) starts no stream; with the defaults (two workers, two streams) the
# target equals the source too. A fixed level: a level change begins a new frame, which
# forgets the window; one worker and one read at a time: batches complete in any order,
# and the extents sent alone before the first that shrinks are in no stream's window.
# --streams out of range is refused in one line.
. "$(dirname "$0")/lib.sh"

MIB=$((1 << 20))
yes "tern: an extent of text that compresses well before the random part" |
	head -c $MIB >"$T/src.img" || true
head -c $((4 * MIB)) /dev/urandom >"$T/rand"
for _ in 1 2 3 4 5 6 7 8; do cat "$T/rand"; done >>"$T/src.img"
cat "$T/rand" "$T/rand" >"$T/noise.img"

for bad in 5 -1 x ""; do
	out=$("$TERN_AGENT" run --receiver 127.0.0.1:1 --credentials /nonexistent \
		--disk d="$T/src.img" --once --streams "$bad" 2>&1) && fail "--streams '$bad' was accepted"
	[ "$(wc -l <<<"$out")" -eq 1 ] || fail "--streams '$bad': not one line: $out"
done

init_state "$T/state"
start_receiver "$T/state" --target d="$T/dst.img" --target n="$T/dstn.img"
copy() { # NAME SRC ARGS...: a copy; sets WIRE (the agent's bytes on the wire)
	local name=$1 src=$2
	shift 2
	rm -f "$T/dst.img" "$T/dstn.img" "$T/state/disks/"*
	run_agent --credentials "$T/state/agent-bundle.pem" --disk "$name=$src" "$@" ||
		{ cat "$T/agent.log"; fail "the copy with $* failed"; }
	WIRE=$(sed -n 's/.*smaller, \([0-9]*\) bytes).*/\1/p' "$T/agent.log" | tail -n 1)
	[ -n "$WIRE" ] || { cat "$T/agent.log"; fail "no byte count in the agent's log"; }
	grep -q "granted" "$T/agent.log" && { cat "$T/agent.log"; fail "streams not granted"; }
	local dst=$T/dst.img
	[ "$name" = n ] && dst=$T/dstn.img
	[ "$(sha "$dst")" = "$(sha "$src")" ] || fail "with $*: the target differs"
}

copy d "$T/src.img" --threads 1 --queue-depth 1 --streams 1 --level 3
one=$WIRE
# Status says what the agent's last session asked for and got.
"$TERNCTL" --state-dir "$T/state" status --json >"$T/status.json" || fail "ternctl status --json"
python3 -c 'import json, sys
a = json.load(open(sys.argv[1]))["agents"][0]
assert (a["streams_asked"], a["streams_granted"]) == (1, 1), a' "$T/status.json" ||
	fail "status does not say one stream was asked for and granted"
[ "$one" -lt $((5 * MIB)) ] || fail "one stream sent $one bytes of 4 MiB of noise repeated 8 times"
copy d "$T/src.img" --threads 1 --queue-depth 1 --streams 0 --level 3
none=$WIRE
[ "$none" -gt $((32 * MIB)) ] || fail "extents of their own sent only $none bytes"
copy d "$T/src.img" --level 3
both=$WIRE
[ "$both" -lt "$none" ] || fail "two streams sent $both bytes, none $none"
pass "4 MiB of noise 8 times: one stream $one bytes, two $both, none $none; targets equal"

# Nothing shrinks: no stream begins, so its repeat is not found either.
copy n "$T/noise.img" --threads 1 --queue-depth 1 --streams 1 --level 3
[ "$WIRE" -gt $((8 * MIB)) ] || fail "a disk of noise sent $WIRE bytes: a stream began"
pass "a disk whose data never shrinks started no stream ($WIRE bytes for 8 MiB)"

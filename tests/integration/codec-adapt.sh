#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The zstd level adapts to the link (issue 13, item 5): through the project's proxy as a
# 4 MB/s WAN link, a copy with `--level 1..9` raises its level (frames wait for the link,
# so compression has time to spare) and puts fewer bytes on the wire than a fixed level 1
# through the same link; the target equals the source either way. A bad --level is
# refused in one line. No timing is asserted: only levels and bytes.
. "$(dirname "$0")/lib.sh"

# Data that compresses as a system disk does (neither noise nor runs of one byte): the
# host's shared libraries, over and over.
find /usr/lib/x86_64-linux-gnu /usr/lib -maxdepth 1 -name '*.so*' -type f 2>/dev/null |
	sort >"$T/libs" || true
[ -s "$T/libs" ] || skip "no shared libraries to make compressible data from"
# (head ends the loop early: its SIGPIPE is expected.)
for _ in 1 2 3 4 5 6 7 8; do xargs cat <"$T/libs" 2>/dev/null; done |
	head -c $((96 << 20)) >"$T/src.img" || true
[ "$(stat -c %s "$T/src.img")" -eq $((96 << 20)) ] || skip "not 96 MiB of library data here"

for bad in 0..3 3..1 2..2 1..99 x; do
	out=$("$TERN_AGENT" run --receiver 127.0.0.1:1 --credentials /nonexistent \
		--disk d="$T/src.img" --once --level "$bad" 2>&1) && fail "--level $bad was accepted"
	[ "$(wc -l <<<"$out")" -eq 1 ] || fail "--level $bad: not one line: $out"
done

init_state "$T/state"
copy() { # LEVEL: a copy through a 4 MB/s link; sets WIRE (bytes the proxy relayed)
	rm -f "$T/dst.img" "$T/state/disks/"*
	start_receiver "$T/state" --target d="$T/dst.img"
	start_cutproxy "$PORT" 0 0 wan 4000000 0
	"$TERN_AGENT" run --receiver "127.0.0.1:$PPORT" --credentials "$T/state/agent-bundle.pem" \
		--disk d="$T/src.img" --once --no-progress --level "$1" >"$T/agent-$1.log" 2>&1 ||
		{ cat "$T/agent-$1.log"; fail "the copy at --level $1 failed"; }
	stop_proxy
	stop_receiver
	WIRE=$RELAYED
	[ "$(sha "$T/dst.img")" = "$(sha "$T/src.img")" ] || fail "--level $1: the target differs"
}
copy 1
fixed=$WIRE
copy 1..9
adaptive=$WIRE
line=$(grep "zstd level adapts within 1..9" "$T/agent-1..9.log") || fail "no level report"
high=$(sed -n 's/.* to \([0-9]*\) used so far.*/\1/p' <<<"$line")
[ "$high" -gt 1 ] || fail "on a 4 MB/s link the level never rose: $line"
[ "$adaptive" -lt "$fixed" ] || fail "adaptive put $adaptive bytes on the wire, level 1 $fixed"
pass "4 MB/s link: --level 1..9 rose to $high and sent $adaptive bytes, --level 1 $fixed"

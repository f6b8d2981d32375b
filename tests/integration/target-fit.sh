#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# A file target ends up exactly the source's size (issue 10, item 11): a reused file
# larger than the source is cut, so no stale byte lies past the disk's end outside the
# proof. A file that another disk's verified record names is refused, unchanged.
. "$(dirname "$0")/lib.sh"

init_state "$T/state"
make_mixed_image "$T/src.img" 3
# An odd size: the last chunk is short and ends off a 4 KiB boundary.
truncate -s $((3 * 1024 * 1024 + 12345)) "$T/src.img"
head -c $((8 * 1024 * 1024)) /dev/urandom >"$T/dst.img"
start_receiver "$T/state" --target d="$T/dst.img"
run_agent --credentials "$T/state/agent-bundle.pem" --disk d="$T/src.img" ||
	{ cat "$T/agent.log"; fail "the copy failed"; }
[ "$(stat -c %s "$T/dst.img")" -eq "$(stat -c %s "$T/src.img")" ] ||
	fail "target is $(stat -c %s "$T/dst.img") bytes, the source $(stat -c %s "$T/src.img")"
[ "$(sha "$T/dst.img")" = "$(sha "$T/src.img")" ] || fail "SHA-256 differs"
stop_receiver

# Disk d's verified record names dst.img: another disk id configured onto the same file
# (here through a hard link) may neither overwrite nor cut it.
ln "$T/dst.img" "$T/alias.img"
BEFORE=$(sha "$T/dst.img")
head -c $((1024 * 1024)) /dev/urandom >"$T/other.img"
start_receiver "$T/state" --target e="$T/alias.img"
run_agent --credentials "$T/state/agent-bundle.pem" --disk e="$T/other.img" &&
	fail "a copy over another disk's verified target was accepted"
grep -q "its target holds disk d, verified in the receiver.s state records" "$T/agent.log" ||
	{ cat "$T/agent.log"; fail "no clear refusal"; }
[ "$(sha "$T/dst.img")" = "$BEFORE" ] || fail "the refused copy changed the target"
[ "$(stat -c %s "$T/dst.img")" -eq "$(stat -c %s "$T/src.img")" ] || fail "the refused copy resized it"
kill -0 "$RECEIVER_PID" || fail "receiver died"
pass "a larger file target is cut to the source; another disk's verified target refused"

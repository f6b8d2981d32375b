#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Where O_DIRECT is refused (ramfs has no direct I/O), both sides fall back to buffered
# I/O, say so, and the copy is still verified by SHA-256.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || skip "needs root to mount ramfs"
grep -qw ramfs /proc/filesystems || skip "no ramfs in this kernel"

mkdir -p "$T/ram"
mount -t ramfs -o size=64m none "$T/ram" || skip "cannot mount ramfs"
MOUNTS+=("$T/ram")
init_state "$T/state"
make_mixed_image "$T/ram/src.img" 12
start_receiver "$T/state" --target d="$T/ram/dst.img"
run_agent --credentials "$T/state/agent-bundle.pem" --disk d="$T/ram/src.img" ||
	{ cat "$T/agent.log"; fail "agent exited non-zero"; }
grep -q "O_DIRECT refused by $T/ram/src.img; using buffered reads" "$T/agent.log" ||
	{ cat "$T/agent.log"; fail "the agent did not say it fell back to buffered reads"; }
grep -q "O_DIRECT refused by $T/ram/dst.img; using buffered writes" "$T/receiver.log" ||
	fail "the receiver did not say it fell back to buffered writes"
[ "$(sha "$T/ram/src.img")" = "$(sha "$T/ram/dst.img")" ] || fail "SHA-256 differs"
stop_receiver
pass "buffered fallback copy verified by SHA-256"

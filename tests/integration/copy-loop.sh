#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Loop device to loop device: O_DIRECT reads and writes, zeroing on a block device, and the
# target's first source-size bytes equal the source afterwards.
. "$(dirname "$0")/lib.sh"
need_root

init_state "$T/state"
make_mixed_image "$T/src.img" 32
head -c $((40 * 1024 * 1024)) /dev/urandom >"$T/dst.img" # larger, full of garbage
loop_attach SRC "$T/src.img"
loop_attach DST "$T/dst.img"
start_receiver "$T/state" --target vda="$DST"
run_agent --credentials "$T/state/agent-bundle.pem" --disk vda="$SRC" ||
	{ cat "$T/agent.log"; fail "agent exited non-zero"; }
grep -q "O_DIRECT refused" "$T/agent.log" && fail "O_DIRECT should work on a loop device"
SIZE=$(blockdev --getsize64 "$SRC")
[ "$(sha_n "$SRC" "$SIZE")" = "$(sha_n "$DST" "$SIZE")" ] || fail "SHA-256 differs on loop devices"
pass "loop device copy verified by SHA-256"

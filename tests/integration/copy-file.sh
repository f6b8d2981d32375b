#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# A file-to-file copy of mixed zero/text/random content ends with equal SHA-256 on both
# sides; a second copy over a target full of garbage converges too.
. "$(dirname "$0")/lib.sh"

init_state "$T/state"
make_mixed_image "$T/src.img" 24
# An odd tail: the last chunk is short and not 4 KiB aligned.
printf 'tail bytes that end mid-sector' >>"$T/src.img"
start_receiver "$T/state" --target disk0="$T/dst.img"

run_agent --credentials "$T/state/agent-bundle.pem" --disk disk0="$T/src.img" ||
	{ cat "$T/agent.log"; fail "agent exited non-zero"; }
grep -q "durable and verified" "$T/agent.log" || fail "no verification line"
[ "$(stat -c %s "$T/dst.img")" = "$(stat -c %s "$T/src.img")" ] || fail "sizes differ"
[ "$(sha "$T/src.img")" = "$(sha "$T/dst.img")" ] || fail "SHA-256 differs after copy"
grep -q '^verified=1' "$T/state/disks/disk0.state" || fail "no durable state recorded"
[ "$(stat -c %a "$T/state/disks/disk0.state")" = 600 ] || fail "state file not 0600"

# Garbage in the target must be overwritten, zero runs included.
head -c "$(stat -c %s "$T/src.img")" /dev/urandom >"$T/dst.img"
run_agent --credentials "$T/state/agent-bundle.pem" --disk disk0="$T/src.img" --chunk-size 16K ||
	{ cat "$T/agent.log"; fail "second agent run failed"; }
[ "$(sha "$T/src.img")" = "$(sha "$T/dst.img")" ] || fail "SHA-256 differs over a dirty target"

# Two disks in one session, buffered and incompressible level settings.
make_mixed_image "$T/src2.img" 6
stop_receiver
start_receiver "$T/state" --target a="$T/a.img" --target b="$T/b.img"
run_agent --credentials "$T/state/agent-bundle.pem" --disk a="$T/src.img" --disk b="$T/src2.img" \
	--level -3 --threads 1 --queue-depth 1 || { cat "$T/agent.log"; fail "two-disk run failed"; }
[ "$(sha "$T/src.img")" = "$(sha "$T/a.img")" ] || fail "disk a differs"
[ "$(sha "$T/src2.img")" = "$(sha "$T/b.img")" ] || fail "disk b differs"
pass "file copies verified by SHA-256"

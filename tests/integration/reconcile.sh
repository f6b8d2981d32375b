#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# A target that already holds an earlier copy of the disk (issue 11, failback: the
# original disk, on the old host, receives the migrated machine's disk back): with
# `--target ID=PATH,reconcile=yes` the receiver fingerprints it, and `tern-agent run
# --once --reconcile` sends exactly the chunks that differ; the target then equals the
# source. Without --reconcile, --once sends everything. A target of another size is
# refused unchanged, and bad flags are refused with one line.
. "$(dirname "$0")/lib.sh"

CS=65536
# Chunks of $1 and $2 (same size) that differ, counted independently of tern.
differing() { { cmp -l "$1" "$2" || true; } | awk -v cs=$CS '{ print int(($1 - 1) / cs) }' | sort -u | wc -l; }
sent() { sed -n 's/.*epoch 0: \([0-9]*\) of \([0-9]*\) chunks sent.*/\1/p' "$T/agent.log" | tail -n 1; }

init_state "$T/state"
make_mixed_image "$T/old.img" 8
cp "$T/old.img" "$T/new.img"
# What the machine wrote on the new platform: a few bytes in two chunks, a whole chunk
# where the old disk had zeros, a chunk of data turned to zeros, and the odd tail.
printf 'migrated' | dd of="$T/new.img" bs=1 seek=$((3 * CS + 100)) conv=notrunc status=none
printf 'cloud' | dd of="$T/new.img" bs=1 seek=$((41 * CS + 9)) conv=notrunc status=none
head -c $CS /dev/urandom | dd of="$T/new.img" bs=$CS seek=2 conv=notrunc status=none
dd if=/dev/zero of="$T/new.img" bs=$CS seek=20 count=1 conv=notrunc status=none
want=$(differing "$T/old.img" "$T/new.img")
[ "$want" -eq 4 ] || fail "the test changed $want chunks, not 4"

# Bad flags: one line, nothing started.
out=$("$TERN_RECEIVER" serve --state-dir "$T/state" --listen 127.0.0.1:0 --api none \
	--target d="$T/old.img",reconcile=maybe 2>&1) && fail "reconcile=maybe was accepted"
[ "$(wc -l <<<"$out")" -eq 1 ] || fail "reconcile=maybe: not one line: $out"
out=$("$TERN_AGENT" run --receiver 127.0.0.1:1 --credentials "$T/state/agent-bundle.pem" \
	--disk d="$T/new.img" --reconcile 2>&1) && fail "--reconcile without --once was accepted"
[ "$(wc -l <<<"$out")" -eq 1 ] || fail "--reconcile without --once: not one line: $out"

# A target of another size is no earlier copy: refused, not grown, cut or written.
head -c $((4 * 1024 * 1024)) /dev/urandom >"$T/small.img"
before=$(sha "$T/small.img")
start_receiver "$T/state" --target d="$T/small.img",reconcile=yes
run_agent --credentials "$T/state/agent-bundle.pem" --disk d="$T/new.img" --reconcile &&
	fail "a target of another size was reconciled with"
grep -q "not an earlier copy of it (reconcile=yes needs the same size)" "$T/agent.log" ||
	{ cat "$T/agent.log"; fail "no clear refusal of the size"; }
[ "$(sha "$T/small.img")" = "$before" ] || fail "the refused target was changed"
[ "$(stat -c %s "$T/small.img")" -eq $((4 * 1024 * 1024)) ] || fail "the refused target was resized"
stop_receiver
rm -f "$T/state/disks/d.state" "$T/state/disks/d.fps"

# The failback: only what differs crosses the link, and the old disk becomes the new.
cp "$T/old.img" "$T/old2.img"
start_receiver "$T/state" --target d="$T/old.img",reconcile=yes
run_agent --credentials "$T/state/agent-bundle.pem" --disk d="$T/new.img" --reconcile ||
	{ cat "$T/agent.log"; fail "the reconciling copy failed"; }
[ "$(sent)" = "$want" ] || { cat "$T/agent.log"; fail "sent $(sent) chunks, $want differ"; }
[ "$(sha "$T/old.img")" = "$(sha "$T/new.img")" ] || fail "the target does not equal the source"
grep -q "declared an earlier copy (reconcile=yes)" "$T/receiver.log" || fail "the receiver did not say so"
stop_receiver

# The control: the same with --once alone sends every chunk.
rm -f "$T/state/disks/d.state" "$T/state/disks/d.fps"
start_receiver "$T/state" --target d="$T/old2.img",reconcile=yes
run_agent --credentials "$T/state/agent-bundle.pem" --disk d="$T/new.img" ||
	{ cat "$T/agent.log"; fail "the plain copy failed"; }
all=$(sed -n 's/.*epoch 0: [0-9]* of \([0-9]*\) chunks sent.*/\1/p' "$T/agent.log" | tail -n 1)
[ -n "$all" ] && [ "$(sent)" -gt "$want" ] || { cat "$T/agent.log"; fail "--once alone sent $(sent) of $all"; }
[ "$(sha "$T/old2.img")" = "$(sha "$T/new.img")" ] || fail "the plain copy differs"
pass "reconcile=yes + --reconcile sent the $want differing chunks; --once alone sent $(sent) of $all"

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Block-device targets the receiver must refuse without writing: one smaller than the
# source, and one that is mounted.
. "$(dirname "$0")/lib.sh"
need_root

init_state "$T/state"
make_mixed_image "$T/src.img" 16
head -c $((8 * 1024 * 1024)) /dev/urandom >"$T/small.img"
loop_attach SMALL "$T/small.img"
BEFORE=$(sha "$SMALL")
start_receiver "$T/state" --target small="$SMALL"
if run_agent --credentials "$T/state/agent-bundle.pem" --disk small="$T/src.img"; then
	fail "a target smaller than the source was accepted"
fi
grep -q "smaller than the source" "$T/agent.log" || { cat "$T/agent.log"; fail "no reason given"; }
[ "$(sha "$SMALL")" = "$BEFORE" ] || fail "the small target was written"
stop_receiver

command -v mkfs.ext4 >/dev/null || skip "mkfs.ext4 missing for the mounted-target case"
truncate -s 32M "$T/mnt.img"
mkfs.ext4 -q -F "$T/mnt.img"
loop_attach MNT "$T/mnt.img"
mkdir -p "$T/mnt"
# Read-only, so the filesystem itself writes nothing while we compare.
mount -o ro "$MNT" "$T/mnt" || skip "cannot mount ext4 here"
MOUNTS+=("$T/mnt")
BEFORE=$(sha "$MNT")
start_receiver "$T/state" --target busy="$MNT"
if run_agent --credentials "$T/state/agent-bundle.pem" --disk busy="$T/src.img"; then
	fail "a mounted target was accepted"
fi
grep -q "mounted or in use" "$T/agent.log" || { cat "$T/agent.log"; fail "no reason given"; }
[ "$(sha "$MNT")" = "$BEFORE" ] || fail "the mounted target was written"
pass "small and mounted block devices refused, nothing written"

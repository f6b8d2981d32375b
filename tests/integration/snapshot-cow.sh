#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# --snapshot-cow is checked before anything is made (root, loop devices): a store that is
# a source, a partition of one, or the disk a source is a partition of is refused as
# overlapping; one that is mounted is refused as in use; a separate partition passes the
# check (and the agent then stops at the next one: the host has no device-mapper source).
# The same against real dm stacks runs in the VM test (tests/vm/guest-30-dm-agent.sh).
. "$(dirname "$0")/lib.sh"
need_root
for tool in sfdisk partx mkfs.ext4 mount; do
	command -v "$tool" >/dev/null || skip "$tool not installed"
done
init_state "$T/state"
truncate -s 24M "$T/disk.img"
printf 'label: gpt\nsize=8MiB, type=linux\ntype=linux\n' | sfdisk -q "$T/disk.img" >/dev/null
loop_attach_parts P "$T/disk.img"
truncate -s 32M "$T/fs.img"
mkfs.ext4 -q -F "$T/fs.img"
loop_attach M "$T/fs.img"
mkdir -p "$T/mnt"
mount "$M" "$T/mnt" || skip "cannot mount ext4 here"
MOUNTS+=("$T/mnt")

try() { # try SOURCE COW: runs the agent until it gives up, log in $T/agent.log
	local rc=0
	timeout 60 "$TERN_AGENT" run --receiver 127.0.0.1:1 --credentials "$T/state/agent-bundle.pem" \
		--name s --disk "d=$1" --snapshot dm --snapshot-cow "$2" --no-progress \
		>"$T/agent.log" 2>&1 || rc=$?
	[ $rc -ne 0 ] && [ $rc -ne 124 ] || { cat "$T/agent.log"; fail "agent on $1 with store $2 (rc $rc)"; }
}
for c in "${P}p1 ${P}p1" "${P}p1 $P" "$P ${P}p2"; do
	set -- $c
	try "$1" "$2"
	grep -q -- "--snapshot-cow $2 overlaps source d ($1)" "$T/agent.log" ||
		{ cat "$T/agent.log"; fail "store $2 for source $1 was not refused as overlapping"; }
done
try "${P}p1" "$M"
grep -q -- "--snapshot-cow $M is in use" "$T/agent.log" || { cat "$T/agent.log"; fail "a mounted store was not refused"; }
# Another partition of the same disk is a device of its own: past the check.
try "${P}p1" "${P}p2"
grep -q -- "--snapshot-cow" "$T/agent.log" && { cat "$T/agent.log"; fail "a separate partition was refused as a store"; }
grep -q "is not a device-mapper device" "$T/agent.log" || { cat "$T/agent.log"; fail "unexpected end"; }
pass "overlapping and mounted snapshot stores refused before anything is made"

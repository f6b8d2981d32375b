#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# A real EIO source: a dm device over /dev/vdc whose 64 KiB at 4 MiB is the kernel's
# dm "error" target, next to a healthy dm device over /dev/vdd. --once copies the healthy
# disk and exits 1 naming the faulty one; --skip-unreadable copies the faulty one with the
# bad range zero-filled, lists it, never calls it verified, and exits 3. The guest prints
# each target's expected SHA-256 ("TERN-VM: copy-sha256 NAME") for the host to compare.
. /tests/lib.sh
tern-agent run --help | grep -q -- --skip-unreadable || skip "the agent has no --skip-unreadable"
[ -b /dev/vdc ] && [ -b /dev/vdd ] || skip "no vdc/vdd for the EIO test"
[ -c /dev/mapper/control ] || skip "no device-mapper in the guest"
export DM_DISABLE_UDEV=1
# 16 MiB: [0, 4 MiB) and [4 MiB + 64 KiB, 16 MiB) of vdc, an error target between.
dmsetup create eiobad <<EOF || fail "cannot create the error device"
0 8192 linear /dev/vdc 0
8192 128 error
8320 24448 linear /dev/vdc 8320
EOF
dmsetup create eiogood --table "0 16384 linear /dev/vdd 0" || fail "cannot create the good device"
trap 'rc=$?; [ -n "$AGENT_PID" ] && kill -9 "$AGENT_PID" 2>/dev/null; dmsetup remove eiobad; dmsetup remove eiogood; exit $rc' EXIT
dd if=/dev/mapper/eiobad of=/dev/null bs=64K skip=64 count=1 iflag=direct 2>/dev/null &&
	fail "the error target read without an error"

agent() { # agent LOG OPTIONS...: the agent's exit code
	log=$1
	shift
	tern-agent run --receiver "$TERN_RECEIVER" --credentials /etc/tern/agent-bundle.pem \
		--name eio --disk eio=/dev/mapper/eiobad --disk good=/dev/mapper/eiogood --once \
		--no-progress --threads 2 "$@" >"$log" 2>&1
}

rc=0; agent /tmp/eio1.log || rc=$?
[ $rc = 1 ] || fail "--once with an EIO disk exited $rc, not 1"
grep -q "good: epoch 0 durable and verified" /tmp/eio1.log || fail "the healthy disk was not copied"
grep -q "eio: not copied: reading /dev/mapper/eiobad at byte 4194304 failed: Input/output error" \
	/tmp/eio1.log || fail "the exit does not name the EIO disk and why"

rc=0; agent /tmp/eio2.log --skip-unreadable || rc=$?
[ $rc = 3 ] || fail "--skip-unreadable exited $rc, not 3"
grep -q "eio: epoch [0-9]* durable on the receiver.*NOT a verified copy: 1 unreadable chunk" \
	/tmp/eio2.log || fail "the EIO disk was not copied, or called verified"
grep -q "unreadable bytes: 4194304-4259840" /tmp/eio2.log || fail "the bad range is not listed"
grep -q "eio: epoch [0-9]* durable and verified" /tmp/eio2.log && fail "the EIO disk was called verified"
grep -q "good: epoch [0-9]* durable and verified" /tmp/eio2.log || fail "the healthy disk was not verified"
want=$({ dd if=/dev/vdc bs=64K count=64 2>/dev/null; dd if=/dev/zero bs=64K count=1 2>/dev/null
	dd if=/dev/vdc bs=64K skip=65 count=191 2>/dev/null; } | sha256sum | cut -d' ' -f1)
echo "TERN-VM: copy-sha256 eio $want"
echo "TERN-VM: copy-sha256 good $(sha256sum </dev/mapper/eiogood | cut -d' ' -f1)"
grep -h -e "unreadable" -e "not copied" /tmp/eio1.log /tmp/eio2.log | sed 's/^/guest: eio: /'
pass "a dm-error source: the healthy disk copied, the bad range zero-filled and listed"

#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# tern-agent --tracker kmod replicates /dev/vdb to the receiver on the host while it is
# written (O_DIRECT, buffered + fsync, discard); killed with SIGKILL, its successor
# (--tracker auto, which picks the loaded module) resumes the module's tracker and reads
# only what changed, including a write made while no agent ran. Then the host cuts over
# with --verify full (any change the tracker missed fails it); the agent unregisters its
# tracker, and the guest prints the source's SHA-256 for the host to compare.
. /tests/lib.sh
[ -c /dev/tern ] || insmod /lib/modules/tern.ko
tern-agent run --help | grep -q kmod || skip "the agent has no kmod tracker"

agent() { # agent LOG TRACKER
	tern-agent run --receiver "$TERN_RECEIVER" --credentials /etc/tern/agent-bundle.pem \
		--name kmod --disk kmod=/dev/vdb --interval 1 --tracker "$2" --no-progress \
		--threads 2 >"$1" 2>&1 &
	AGENT_PID=$!
}

agent /tmp/kmod1.log kmod
wait_for /tmp/kmod1.log "epoch 0 durable and verified"
grep -q "tracker kmod: block writes" /tmp/kmod1.log || fail "the agent did not use the kmod tracker"
dd if=/dev/urandom of=/dev/vdb bs=4096 seek=100 count=1 oflag=direct conv=notrunc 2>/dev/null
dd if=/dev/urandom of=/dev/vdb bs=4096 seek=5000 count=3 conv=fsync,notrunc 2>/dev/null
blkdiscard -o $((41 * 1048576)) -l 1048576 /dev/vdb
wait_for /tmp/kmod1.log "durable and verified" 3
kill -9 "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null
AGENT_PID=
# No agent runs: the module still records this.
dd if=/dev/urandom of=/dev/vdb bs=4096 seek=9000 count=2 oflag=direct conv=notrunc 2>/dev/null
# auto prefers the loaded module.
agent /tmp/kmod2.log auto
wait_for /tmp/kmod2.log "durable and verified"
grep -q "tracker kmod: block writes" /tmp/kmod2.log || fail "auto did not pick the loaded module"
grep -q "kmod tracker resumed" /tmp/kmod2.log || fail "the second agent did not resume the tracker"
grep -q "tracking has been continuous since epoch" /tmp/kmod2.log ||
	fail "the second agent read the whole disk although the tracker was continuous"
dd if=/dev/urandom of=/dev/vdb bs=4096 seek=12001 count=1 oflag=direct conv=notrunc 2>/dev/null
wait_for /tmp/kmod2.log "durable and verified" 3
sync
echo "TERN-VM: cutover-ready kmod"
wait_exit "$AGENT_PID" 300 /tmp/kmod2.log || fail "the agent did not exit 0 after the cutover"
grep -q "cutover complete" /tmp/kmod2.log || fail "no cutover"
AGENT_PID=
# After the cutover nothing needs tracking: the agent unregistered its tracker.
[ "$(kmod-marks --trackers)" = 0 ] || fail "a tracker is still registered after the cutover"
echo "TERN-VM: source-sha256 kmod $(sha256sum </dev/vdb | cut -d' ' -f1)"
pass "kmod replication"

#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# A first copy with --tracker kmod is killed half-way (a rate cap keeps it slow): its
# successor resumes the module's tracker under the same generation and skips the chunks
# the receiver's checkpoint holds, reading only the rest and what was written meanwhile.
# Then tern-agent --tracker kmod replicates /dev/vdb to the receiver on the host while it is
# written (O_DIRECT, buffered + fsync, discard); killed with SIGKILL, its successor
# (--tracker auto, which picks the loaded module) resumes the module's tracker and reads
# only what changed, including a write made while no agent ran. Then the host cuts over
# with --verify full (any change the tracker missed fails it); the agent unregisters its
# tracker, and the guest prints the source's SHA-256 for the host to compare.
. /tests/lib.sh
[ -c /dev/tern ] || insmod /lib/modules/tern.ko
tern-agent run --help | grep -q kmod || skip "the agent has no kmod tracker"

agent() { # agent LOG TRACKER [OPTION...]
	_log=$1 _trk=$2
	shift 2
	tern-agent run --receiver "$TERN_RECEIVER" --credentials /etc/tern/agent-bundle.pem \
		--name kmod --disk kmod=/dev/vdb --interval 1 --tracker "$_trk" --no-progress \
		--threads 2 "$@" >"$_log" 2>&1 &
	AGENT_PID=$!
}

# The first copy, 8 MiB of data at 256 KiB/s, killed after a few seconds.
agent /tmp/kmod0.log kmod --max-rate 256K
wait_for /tmp/kmod0.log "tracker kmod: block writes"
sleep 6
grep -q "epoch 0 durable and verified" /tmp/kmod0.log && fail "the rate-capped first copy ended before the kill"
kill -9 "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null
AGENT_PID=
# Written while no agent runs, in the first MiB of data, which the receiver holds by now.
dd if=/dev/urandom of=/dev/vdb bs=4096 seek=260 count=2 oflag=direct conv=notrunc 2>/dev/null
agent /tmp/kmod1.log kmod
wait_for /tmp/kmod1.log "epoch 0 durable and verified"
grep -q "resumes its first copy\|the receiver holds" /tmp/kmod1.log ||
	fail "the receiver held nothing of the interrupted first copy"
grep -q "its chunks were read under this tracker's generation" /tmp/kmod1.log ||
	fail "the resumed first copy did not trust the module's generation: $(grep -o 'its chunks were read under.*' /tmp/kmod1.log)"
# What it read: the chunks not held and the one written meanwhile (64 KiB chunks), not the
# held ones again.
set -- $(sed -n 's/.*kmod: the receiver holds \([0-9]*\) of \([0-9]*\) chunks.*/\1 \2/p' /tmp/kmod1.log | head -n 1)
held=${1:-0} total=${2:-0}
nread=$(sed -n 's/.*kmod: epoch 0: .* \([0-9]*\) bytes read from the source.*/\1/p' /tmp/kmod1.log | head -n 1)
[ "$held" -gt 0 ] && [ -n "$nread" ] || fail "no figures of the resumed first copy in its log"
echo "guest: resumed first copy: $held of $total chunks held, $nread bytes read"
[ "$nread" -le $(((total - held + 2) * 65536)) ] ||
	fail "the resumed first copy read $nread bytes, more than the $((total - held)) chunks not held"
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

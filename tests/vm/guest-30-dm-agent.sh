#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# tern-agent --snapshot dm replicates a linear device-mapper device over /dev/vdc, its
# snapshots' copies on slices of /dev/vdd. An epoch is the origin as its snapshot was
# taken: a marker written right after the snapshot is not in that epoch (the next agent,
# comparing fingerprints, finds exactly its chunk changed). A clean stop removes every
# device it made; a kill -9 mid-epoch leaves them, and the next agent removes them before
# anything else. A COW slice too small for a large write loses its snapshot: the epoch
# reads the whole disk and converges. Then the host cuts over with --verify full.
. /tests/lib.sh
tern-agent run --help | grep -q -- --snapshot-cow || skip "the agent has no dm-snapshot source"
[ -b /dev/vdc ] && [ -b /dev/vdd ] || skip "no vdc/vdd for the dm test"
[ -c /dev/mapper/control ] || skip "no device-mapper in the guest"
# No udev in the guest: dmsetup makes its own /dev/mapper nodes.
export DM_DISABLE_UDEV=1
ORIGIN=/dev/mapper/vmsrc
WRITER_PID=
dmsetup create vmsrc --table "0 $(cat /sys/block/vdc/size) linear /dev/vdc 0" ||
	fail "cannot create the origin"
# 10 MiB slices hold the 8 MiB change below; 1 MiB slices do not hold a 4 MiB one.
dmsetup create bigcow --table "0 40960 linear /dev/vdd 0" || fail "cannot create bigcow"
dmsetup create tinycow --table "0 4096 linear /dev/vdd 40960" || fail "cannot create tinycow"

agent() { # agent LOG COW [OPTIONS...]
	log=$1 cow=$2
	shift 2
	tern-agent run --receiver "$TERN_RECEIVER" --credentials /etc/tern/agent-bundle.pem \
		--name dm --disk dm=$ORIGIN --snapshot dm --snapshot-cow "$cow" --no-progress \
		--threads 2 "$@" >"$log" 2>&1 &
	AGENT_PID=$!
}
tern_devs() { dmsetup ls | grep -c '^tern-'; }
snapshots() { dmsetup table | grep -c ': 0 [0-9]* snapshot '; }
origin_is_linear() { dmsetup table vmsrc | grep -q '^0 [0-9]* linear '; }
stop_writer() { [ -n "$WRITER_PID" ] && kill "$WRITER_PID" 2>/dev/null; wait "$WRITER_PID" 2>/dev/null; WRITER_PID=; }
trap 'rc=$?; stop_writer; [ -n "$AGENT_PID" ] && kill -9 "$AGENT_PID" 2>/dev/null; exit $rc' EXIT

# 0. The store must be a device of its own and free: the origin itself and the disk under
# it overlap the source, and vdd, held by bigcow and tinycow, is in use. Each is refused
# before any device is made.
for cow in $ORIGIN /dev/vdc /dev/vdd; do
	tern-agent run --receiver "$TERN_RECEIVER" --credentials /etc/tern/agent-bundle.pem \
		--name dm --disk dm=$ORIGIN --snapshot dm --snapshot-cow "$cow" --no-progress \
		>/tmp/dm0.log 2>&1 && fail "store $cow was accepted"
	case $cow in
	/dev/vdd) grep -q -- "--snapshot-cow $cow is in use" /tmp/dm0.log ;;
	*) grep -q -- "--snapshot-cow $cow overlaps source dm" /tmp/dm0.log ;;
	esac || { cat /tmp/dm0.log; fail "no reason for refusing store $cow"; }
	[ "$(tern_devs)" = 0 ] || fail "a refused store left devices: $(dmsetup ls)"
	origin_is_linear || fail "a refused store changed the origin: $(dmsetup table vmsrc)"
done

# 1. Point in time. 8 MiB change before epoch 1; epoch 1 sends them at 2 MiB/s, reading
# at most a few MiB ahead; a marker in the last changed block, written as soon as
# epoch 1's snapshot is taken, is read seconds later, from the snapshot: not in epoch 1.
head -c 8388608 /dev/urandom >/tmp/r8
agent /tmp/dm1.log /dev/mapper/bigcow --interval 4 --epochs 1 --queue-depth 1 --max-rate 2M
wait_for /tmp/dm1.log "epoch 0 durable and verified"
grep -q "snapshot dm: each epoch reads a snapshot" /tmp/dm1.log || fail "the agent did not use dm snapshots"
dd if=/tmp/r8 of=$ORIGIN bs=1M seek=16 oflag=direct conv=notrunc 2>/dev/null
wait_for /tmp/dm1.log "snapshot tern-dm-s1 taken"
echo "TERN-MARKER written after snapshot s1" | dd of=$ORIGIN bs=4096 seek=6143 count=1 \
	conv=notrunc,sync oflag=direct 2>/dev/null
wait_exit "$AGENT_PID" 120 /tmp/dm1.log || fail "the first agent did not stop after --epochs 1"
AGENT_PID=
grep -q "epoch 1 durable and verified" /tmp/dm1.log || fail "epoch 1 was not verified"
# Epoch 1 read only what snapshot s0's exceptions named: the 8 MiB (128 chunks).
grep -q "lost" /tmp/dm1.log && fail "snapshot s0 was lost"
grep -q "epoch 1: read .* 128 changed chunks" /tmp/dm1.log ||
	fail "epoch 1 did not send exactly the changed chunks: $(grep 'epoch 1:' /tmp/dm1.log)"
# A clean stop leaves nothing behind.
[ "$(tern_devs)" = 0 ] || fail "tern devices left after a clean stop: $(dmsetup ls)"
origin_is_linear || fail "the origin did not get its own table back: $(dmsetup table vmsrc)"

# 2. The next agent compares fingerprints with the receiver's epoch 1: only the marker's
# chunk differs. Then, under a writer, it is killed as an epoch starts.
agent /tmp/dm2.log /dev/mapper/bigcow --interval 1
wait_for /tmp/dm2.log "epoch 2 durable and verified"
grep -q "epoch 2: read .* 1 changed chunks" /tmp/dm2.log ||
	fail "epoch 1 was not the origin at its snapshot: $(grep 'epoch 2:' /tmp/dm2.log)"
(
	i=0
	while :; do
		dd if=/dev/urandom of=$ORIGIN bs=4096 seek=$(((i * 7919) % 8192)) count=1 \
			oflag=direct conv=notrunc 2>/dev/null
		i=$((i + 1))
		sleep 0.05
	done
) &
WRITER_PID=$!
wait_for /tmp/dm2.log "snapshot tern-dm-s3 taken"
kill -9 "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null
AGENT_PID=
[ "$(snapshots)" -ge 1 ] || fail "a killed agent left no snapshot (nothing to test)"
dmsetup table vmsrc | grep -q snapshot-origin || fail "the killed agent's origin is not a snapshot-origin"
sleep 1
stop_writer

# 3. A new agent removes the leftovers first; its COW slices are 1 MiB, so a 4 MiB write
# overflows a snapshot: that epoch reads the whole disk and still converges.
agent /tmp/dm3.log /dev/mapper/tinycow --interval 3
wait_for /tmp/dm3.log "durable and verified"
grep -q "removed tern-dm-s" /tmp/dm3.log || fail "the leftover snapshot was not removed"
grep -q "its own table is back" /tmp/dm3.log || fail "the leftover origin was not restored"
# Between epochs: one snapshot, the new agent's (real, 2 COW slices, 1 snapshot).
[ "$(snapshots)" = 1 ] && [ "$(tern_devs)" = 4 ] ||
	fail "devices besides the new agent's: $(dmsetup ls)"
# (a variable of its own: the helpers once used n.)
verified=$(grep -c "durable and verified" /tmp/dm3.log)
dd if=/tmp/r8 of=$ORIGIN bs=1M count=4 seek=1 oflag=direct conv=notrunc 2>/dev/null
wait_for /tmp/dm3.log "COW slice is full"
wait_for /tmp/dm3.log "durable and verified" $((verified + 2))
echo "TERN-VM: cutover-ready dm"
wait_exit "$AGENT_PID" 300 /tmp/dm3.log || fail "the agent did not exit 0 after the cutover"
AGENT_PID=
grep -q "cutover complete" /tmp/dm3.log || fail "no cutover"
[ "$(tern_devs)" = 0 ] || fail "tern devices left after the cutover: $(dmsetup ls)"
origin_is_linear || fail "the origin did not get its own table back after the cutover"
echo "TERN-VM: source-sha256 dm $(sha256sum <$ORIGIN | cut -d' ' -f1)"
dmsetup remove vmsrc && dmsetup remove bigcow && dmsetup remove tinycow
# What each agent said of its snapshots, for the record.
grep -h -e "lost" -e "removed" -e "table" -e "changed chunks" -e "connection lost" \
	/tmp/dm1.log /tmp/dm2.log /tmp/dm3.log | sed 's/^/guest: dm: /'
pass "dm-snapshot replication"

#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# A test launch of block targets on LVM, in the guest (the host's kernel may have no
# device-mapper): a receiver here, its target "sys" a thin volume in a thin pool on
# /dev/vde, "data" a plain (linear) volume beside it, an agent replicating two image files
# into them. `ternctl launch --test` takes a thin snapshot of sys (lvs: a thin volume with
# sys as its origin, nothing copied) and copies data; the adaptation then fails (no OS on
# the disk, no libguestfs appliance here), which keeps the clones until the discard. The
# snapshot holds the source as of the launch's epoch while the target moves on to the
# next. After a restart of the receiver, `--discard` fails while the snapshot is held open
# (keeping its record), then removes the snapshot and the copy. A launch whose second
# clone fails (its state dir full) removes the snapshot it had made, and one whose
# lvcreate fails (the VG at its LV limit) says why in one line. Nothing else is left.
. /tests/lib.sh
command -v lvm >/dev/null && command -v jq >/dev/null || skip "no lvm or jq in the guest"
command -v tern-receiver >/dev/null && command -v ternctl >/dev/null || skip "no receiver in the guest"
[ -b /dev/vde ] || skip "no vde for the thin-pool test"
[ -c /dev/mapper/control ] || skip "no device-mapper in the guest"
dmsetup targets | grep -q '^thin-pool' || skip "no dm-thin-pool in the guest kernel"
export DM_DISABLE_UDEV=1
mkdir -p /run/lock/lvm
ST=/tmp/thin-state
RPID=
ctl() { ternctl --state-dir "$ST" "$@"; }
snaps() { lvm lvs --noheadings -o lv_name tv 2>/dev/null | grep -c 'tern-' || true; }
sha() { sha256sum <"$1" | cut -d' ' -f1; }
trap 'rc=$?; [ -n "$AGENT_PID" ] && kill -9 "$AGENT_PID" 2>/dev/null
	[ -n "$RPID" ] && kill "$RPID" 2>/dev/null; sleep 1
	lvm vgremove -ff -y tv >/dev/null 2>&1; umount "$ST" 2>/dev/null; exit $rc' EXIT

# 1. The volumes: a 40 MiB thin pool holding the 16 MiB thin volume sys; an 8 MiB
# linear volume data. Sizes equal the sources'.
lvm pvcreate -q /dev/vde >/tmp/lvm.log 2>&1 && lvm vgcreate -q tv /dev/vde >>/tmp/lvm.log 2>&1 &&
	lvm lvcreate -q --type thin-pool -L 40M -n pool tv >>/tmp/lvm.log 2>&1 &&
	lvm lvcreate -q -V 16M --thinpool tv/pool -n sys >>/tmp/lvm.log 2>&1 &&
	lvm lvcreate -q -L 8M -n data tv >>/tmp/lvm.log 2>&1 || fail "cannot make the volumes"
[ -b /dev/tv/sys ] && [ -b /dev/tv/data ] || fail "no /dev/tv/sys or /dev/tv/data"
head -c 16777216 /dev/zero >/tmp/src-sys.img
for i in 0 3 7 12; do
	head -c 1048576 /dev/urandom | dd of=/tmp/src-sys.img bs=1M seek=$i conv=notrunc 2>/dev/null
done
head -c 8388608 /dev/urandom >/tmp/src-data.img

# 2. The receiver (its state dir a 24 MiB file system of its own, to fill in step 6) and
# the agent.
mkdir -p "$ST" && mount -t tmpfs -o size=24m tmpfs "$ST" || fail "cannot mount the state dir"
tern-receiver init --state-dir "$ST" >/tmp/rinit.log 2>&1 || fail "tern-receiver init failed"
tern-receiver serve --state-dir "$ST" --listen 127.0.0.1:0 --api 127.0.0.1:0 \
	--target sys=/dev/tv/sys --target data=/dev/tv/data >/tmp/receiver.log 2>&1 &
RPID=$!
wait_for /tmp/receiver.log "listening on 127.0.0.1:" 1 60
PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' /tmp/receiver.log | head -n 1)
tern-agent run --receiver 127.0.0.1:$PORT --credentials "$ST/agent-bundle.pem" --name lv \
	--disk sys=/tmp/src-sys.img --disk data=/tmp/src-data.img --interval 2 --no-progress \
	>/tmp/agent.log 2>&1 &
AGENT_PID=$!
wait_for /tmp/agent.log "sys: epoch 0 durable and verified" 1 300
wait_for /tmp/agent.log "data: epoch 0 durable and verified" 1 300
S0=$(sha /tmp/src-sys.img)
D0=$(sha /tmp/src-data.img)
[ "$(sha /dev/tv/sys)" = "$S0" ] || fail "the thin target does not hold the source"

# 3. The test launch: its clones are made at the next epoch boundary.
ctl launch lv --test --profile kvm --timeout 120 --json >/tmp/launch.json 2>/tmp/launch.err &&
	fail "the launch of a disk with no OS passed"
L=$(tail -n 1 /tmp/launch.json)
echo "$L" | jq -e .disks >/dev/null 2>&1 || fail "no launch JSON: $(cat /tmp/launch.json /tmp/launch.err)"
echo "guest: thin: launch $(echo "$L" | jq -r '.state + ": " + .result' | cut -c1-200)"
d() { echo "$L" | jq -r ".disks[] | select(.id == \"$1\") | .$2"; }
[ "$(d sys how)" = thin-snapshot ] || fail "sys was cloned as '$(d sys how)', not a thin snapshot"
[ "$(d sys copied_bytes)" = 0 ] || fail "the thin snapshot copied $(d sys copied_bytes) bytes"
[ -z "$(d sys warning)" ] || fail "the thin snapshot warned: $(d sys warning)"
SNAP=$(d sys lv)
CLONE=$(d sys clone)
case $SNAP in tv/tern-lv-*-sys) ;; *) fail "the snapshot is named '$SNAP'" ;; esac
[ -b "$CLONE" ] || fail "the snapshot's path $CLONE is not a block device"
# LVM's own view: a thin volume of the pool, sys its origin, active.
info=$(lvm lvs --noheadings --separator , -o segtype,origin,pool_lv,lv_active "$SNAP" | tr -d ' ')
[ "$info" = "thin,sys,pool,active" ] || fail "lvs shows the snapshot as '$info'"
grep -qx "thin $SNAP" "$(echo "$L" | jq -r .dir)/clones" ||
	fail "the launch's clones file does not name $SNAP"
# The copy: data is a linear volume, so a sparse copy in the state dir, announced.
[ "$(d data how)" = copy ] || fail "data (not thin) was cloned as '$(d data how)'"
[ "$(d data copied_bytes)" -gt 0 ] || fail "the copy of data copied nothing"
d data warning | grep -q "an LVM volume that is not thin: copying" ||
	fail "the copy's warning: $(d data warning)"
DCLONE=$(d data clone)
case $DCLONE in "$ST"/launch/lv/*/data.img) ;; *) fail "the copy is at $DCLONE" ;; esac
# What the clones hold: the source as of the epoch the launch recorded (no write since
# epoch 0, so that is S0), and the targets are unchanged.
EPOCH=$(d sys epoch)
[ "$EPOCH" -ge 0 ] || fail "no epoch recorded"
[ "$(sha "$CLONE")" = "$S0" ] || fail "the snapshot does not hold epoch $EPOCH"
[ "$(sha "$DCLONE")" = "$D0" ] || fail "the copy does not hold epoch $EPOCH"
[ "$(sha /dev/tv/sys)" = "$S0" ] || fail "the launch changed the thin target"
[ "$(sha /dev/tv/data)" = "$D0" ] || fail "the launch changed the data target"
echo "guest: thin: $SNAP ($CLONE) holds epoch $EPOCH, made in $(d sys clone_seconds) s"

# 4. Replication goes on: a change after the launch reaches the target, not the
# snapshot, which still holds the launch's epoch.
head -c 2097152 /dev/urandom | dd of=/tmp/src-sys.img bs=1M seek=5 conv=notrunc 2>/dev/null
S1=$(sha /tmp/src-sys.img)
n=$(grep -c "sys: epoch .* durable and verified" /tmp/agent.log)
wait_for /tmp/agent.log "sys: epoch .* durable and verified" $((n + 2)) 300
[ "$(sha /dev/tv/sys)" = "$S1" ] || fail "the thin target did not move on to the new source"
[ "$(sha "$CLONE")" = "$S0" ] || fail "the snapshot changed with its origin"

# 5. The discard goes by the launch's clones file, also after a restart of the receiver.
# While the snapshot is open, lvremove refuses: the discard fails in one line and keeps
# the launch's dir and clones file. Once closed, the discard removes the snapshot (LVM no
# longer lists it) and the copy.
serve() {
	tern-receiver serve --state-dir "$ST" --listen 127.0.0.1:$PORT --api 127.0.0.1:0 \
		--target sys=/dev/tv/sys --target data=/dev/tv/data >>/tmp/receiver.log 2>&1 &
	RPID=$!
}
kill "$RPID" && wait "$RPID"
n=$(grep -c "listening on 127.0.0.1:" /tmp/receiver.log)
serve
wait_for /tmp/receiver.log "listening on 127.0.0.1:" $((n + 1)) 60
LDIR=$(echo "$L" | jq -r .dir)
exec 3<"$CLONE"
ctl launch lv --discard >/tmp/discard.log 2>&1 && fail "a discard of an open snapshot passed"
exec 3<&-
[ "$(grep -c '^FAILED: ' /tmp/discard.log)" = 1 ] &&
	grep -q "^FAILED: .*cannot remove the thin snapshot $SNAP: lvm lvremove failed: " /tmp/discard.log ||
	fail "the failed discard's error: $(cat /tmp/discard.log)"
[ -b "$CLONE" ] && grep -qx "thin $SNAP" "$LDIR/clones" ||
	fail "the failed discard did not keep the snapshot and its record"
sed -n 's/^FAILED: //p' /tmp/discard.log | cut -c1-200 | sed 's/^/guest: thin: refused: /'
ctl launch lv --discard >/tmp/discard.log 2>&1 || fail "discard failed: $(cat /tmp/discard.log)"
[ "$(snaps)" = 0 ] || fail "the discard left $(lvm lvs --noheadings -o lv_name tv)"
[ ! -e "$DCLONE" ] && [ ! -e "$ST/launch/lv" ] || fail "the discard left files in $ST/launch"
[ "$(sha /dev/tv/sys)" = "$S1" ] || fail "the discard changed the thin target"

# The agent is back after the restart before the next launch.
n=$(grep -c "sys: epoch .* durable and verified" /tmp/agent.log)
wait_for /tmp/agent.log "sys: epoch .* durable and verified" $((n + 1)) 300

# 6. A launch whose copy of data fails (the state dir full) after the snapshot of sys was
# made: one line of error, no snapshot, no launch dir left.
avail=$(df -k "$ST" | awk 'NR == 2 { print $4 }')
dd if=/dev/zero of="$ST/filler" bs=1K count=$((avail - 3072)) 2>/dev/null
ctl launch lv --test --profile kvm --timeout 120 >/tmp/launch2.log 2>&1 &&
	fail "a launch into a full state dir passed"
grep -q "FAILED: .*the clone failed: cannot copy the target into .*No space left on device" \
	/tmp/launch2.log || fail "the failed clone's error: $(cat /tmp/launch2.log)"
grep -q "removed the thin snapshot tv/tern-lv-" /tmp/receiver.log ||
	fail "the receiver did not remove the snapshot it had made"
rm -f "$ST/filler"
[ "$(snaps)" = 0 ] || fail "the failed launch left $(lvm lvs --noheadings -o lv_name tv)"
[ -z "$(ls "$ST/launch/lv" 2>/dev/null)" ] || fail "the failed launch left $(ls "$ST/launch/lv")"
[ "$(sha /dev/tv/sys)" = "$S1" ] || fail "the failed launch changed the thin target"
n=$(grep -c "sys: epoch .* durable and verified" /tmp/agent.log)
wait_for /tmp/agent.log "sys: epoch .* durable and verified" $((n + 1)) 300
sed -n 's/^FAILED: //p' /tmp/launch2.log | cut -c1-200 | sed 's/^/guest: thin: refused: /'

# 7. lvcreate itself fails (the VG may hold no more LVs): its error in one line, nothing
# made.
lvm vgchange -q -l "$(lvm lvs --noheadings -o lv_name tv | wc -l)" tv >/tmp/lvm.log 2>&1 ||
	fail "cannot limit tv's LVs"
ctl launch lv --test --profile kvm --timeout 120 >/tmp/launch3.log 2>&1 &&
	fail "a launch in a full VG passed"
lvm vgchange -q -l 0 tv >>/tmp/lvm.log 2>&1 || fail "cannot lift tv's limit"
[ "$(grep -c '^FAILED: ' /tmp/launch3.log)" = 1 ] &&
	grep -q "^FAILED: .*the clone failed: lvm lvcreate failed: .*[Mm]aximum number of logical volumes" /tmp/launch3.log ||
	fail "lvcreate's failure: $(cat /tmp/launch3.log)"
[ "$(snaps)" = 0 ] && [ -z "$(ls "$ST/launch/lv" 2>/dev/null)" ] ||
	fail "the failed lvcreate left $(lvm lvs --noheadings -o lv_name tv) $(ls "$ST/launch/lv")"
sed -n 's/^FAILED: //p' /tmp/launch3.log | cut -c1-200 | sed 's/^/guest: thin: refused: /'
pass "thin snapshot of an LVM thin target; a linear LV copied; discard and a failed launch leave nothing"

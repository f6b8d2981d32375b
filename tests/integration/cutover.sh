#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The cutover: ternctl asks the receiver, which asks the agent; the agent runs the
# operator's hook (here: stop the writer), freezes what is mounted from the source, sends a
# final epoch, thaws, and the receiver verifies (full: re-reading its target) and records
# the cutover. ternctl prints the proof and exits 0; afterwards the target is never
# written again. As root, the same with an ext4 filesystem mounted from a loop device:
# frozen and thawed, and the target is a clean filesystem.
. "$(dirname "$0")/lib.sh"
: "${TERNCTL:?set by meson}"

init_state "$T/state"
make_mixed_image "$T/src.img" 24
SIZE=$(stat -c %s "$T/src.img")
start_receiver "$T/state" --target d="$T/dst.img" --target fs="$T/fs-dst.img" \
	--target v="$T/v-dst.img" --target fs2="$T/fs2-dst.img" --target whole="$T/whole-dst.img" \
	--target w="$T/w-dst.img" --target fs3="$T/fs3-dst.img" --target fs4="$T/fs4-dst.img"

WRITER_PID=
start_writer() { # start_writer FILE_OR_DIR: writes until $T/stop exists, then $T/stopped
	rm -f "$T/stop" "$T/stopped"
	(
		i=0
		while [ -d "$T" ] && [ ! -e "$T/stop" ]; do
			if [ -d "$1" ]; then
				head -c 65536 /dev/urandom >"$1/file$((i % 50))"
			else
				dd if=/dev/urandom of="$1" bs=4096 seek=$(( (i * 7919) % (SIZE / 4096) )) \
					count=1 conv=notrunc status=none
			fi
			i=$((i + 1))
			sleep 0.02
		done
		touch "$T/stopped"
	) &
	WRITER_PID=$!
}
HOOK="touch $T/stop; while [ ! -e $T/stopped ]; do sleep 0.05; done; echo ran >$T/hook-ran"
agent() { # agent NAME DISK=PATH LOG [ARGS...]
	local name=$1 disk=$2 log=$3; shift 3
	"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$T/state/agent-bundle.pem" \
		--name "$name" --disk "$disk" --interval 1 --no-progress --pre-cutover "$HOOK" "$@" \
		>"$log" 2>&1 &
	AGENT_PID=$!
}
wait_for() {
	for _ in $(seq 1 300); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	cat "$1"; fail "timed out waiting for '$2' in $1"
}

# Nobody to cut over yet: a clear refusal.
rc=0; "$TERNCTL" --state-dir "$T/state" cutover nobody --timeout 5 >"$T/ctl.out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "not connected" "$T/ctl.out" || { cat "$T/ctl.out"; fail "cutover of an absent agent"; }

# 1. An image file changed by a writer until the hook stops it.
start_writer "$T/src.img"
agent web1 d="$T/src.img" "$T/agent.log"
wait_for "$T/agent.log" "epoch 1 durable and verified"
"$TERNCTL" --state-dir "$T/state" cutover web1 --verify full --timeout 60 >"$T/ctl.out" 2>&1 ||
	{ cat "$T/ctl.out" "$T/agent.log"; fail "cutover failed"; }
wait "$AGENT_PID" || { cat "$T/agent.log"; fail "agent did not exit 0 after the cutover"; }
wait "$WRITER_PID" 2>/dev/null || true
grep -q "^disk d: .* merkle root [0-9a-f]\{32\}, final epoch [0-9]*, verify full: match" "$T/ctl.out" ||
	{ cat "$T/ctl.out"; fail "no proof printed"; }
grep -q "^OK$" "$T/ctl.out" || fail "ternctl did not end with OK"
[ -e "$T/hook-ran" ] || fail "the pre-cutover hook did not run"
grep -q "cutover complete" "$T/agent.log" || fail "agent did not report the cutover"
[ "$(sha "$T/src.img")" = "$(sha "$T/dst.img")" ] || fail "SHA-256 differs after the cutover"
grep -q '^cutover=1$' "$T/state/disks/d.state" || fail "cutover not recorded"
"$TERNCTL" --state-dir "$T/state" status | grep -Eq "^web1 +d +cut-over " || fail "status does not show the cutover"
# After the cutover the target is not written again.
BEFORE=$(sha "$T/dst.img")
if run_agent --credentials "$T/state/agent-bundle.pem" --disk d="$T/src.img" --name web1; then
	fail "a cut-over target accepted a new copy"
fi
grep -q "was cut over" "$T/agent.log" || { cat "$T/agent.log"; fail "no reason for the refusal"; }
[ "$(sha "$T/dst.img")" = "$BEFORE" ] || fail "the cut-over target was written"

# 1b. --verify full re-reads the target: a change made behind the receiver's back (a write
# the tracker never saw, a bad disk) fails the cutover that "tracked" would have passed.
cp "$T/src.img" "$T/v-src.img"
agent web2 v="$T/v-src.img" "$T/agent-v.log"
wait_for "$T/agent-v.log" "epoch 1 durable and verified"
dd if=/dev/urandom of="$T/v-dst.img" bs=4096 seek=300 count=1 conv=notrunc status=none
rc=0; "$TERNCTL" --state-dir "$T/state" cutover web2 --verify full --timeout 60 >"$T/ctl.out" 2>&1 || rc=$?
[ $rc -ne 0 ] || { cat "$T/ctl.out"; fail "verify full passed over a changed target"; }
grep -q "VERIFY FULL FAILED" "$T/ctl.out" || { cat "$T/ctl.out"; fail "no reason for the failed verification"; }
wait "$AGENT_PID" && fail "the agent claimed success after a failed verification"
grep -q '^cutover=1$' "$T/state/disks/v.state" && fail "a failed cutover was recorded"

# 1c. A cutover whose request times out is withdrawn: ternctl fails, nothing is recorded,
# the agent thaws and goes on replicating, and a later cutover succeeds.
cp "$T/src.img" "$T/w-src.img"
TERN_FAULT_STALL_FROZEN=3 agent web3 w="$T/w-src.img" "$T/agent-w3.log"
wait_for "$T/agent-w3.log" "epoch 1 durable and verified"
rc=0; "$TERNCTL" --state-dir "$T/state" cutover web3 --timeout 1 >"$T/ctl.out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "no cutover within 1 s" "$T/ctl.out" || { cat "$T/ctl.out"; fail "the cutover did not time out"; }
wait_for "$T/agent-w3.log" "the receiver withdrew the cutover"
grep -q '^cutover=1$' "$T/state/disks/w.state" && fail "a withdrawn cutover was recorded"
wait_for "$T/agent-w3.log" "the receiver holds it up to epoch"
"$TERNCTL" --state-dir "$T/state" cutover web3 --timeout 60 >"$T/ctl.out" 2>&1 ||
	{ cat "$T/ctl.out" "$T/agent-w3.log"; fail "the cutover after a withdrawn one failed"; }
wait "$AGENT_PID" || { cat "$T/agent-w3.log"; fail "agent did not exit 0 after the second cutover"; }
grep -q '^cutover=1$' "$T/state/disks/w.state" || fail "the second cutover was not recorded"
[ "$(sha "$T/w-src.img")" = "$(sha "$T/w-dst.img")" ] || fail "SHA-256 differs after the second cutover"

# 2. As root: a mounted ext4 on a loop device is frozen for the final epoch and thawed.
if [ "$(id -u)" -ne 0 ] || ! command -v mkfs.ext4 >/dev/null; then
	pass "cutover of an image file (FIFREEZE part skipped: needs root and mkfs.ext4)"
	exit 0
fi
truncate -s 64M "$T/fs.img"
mkfs.ext4 -q -F "$T/fs.img"
loop_attach FSDEV "$T/fs.img"
mkdir -p "$T/mnt"
mount "$FSDEV" "$T/mnt" || skip "cannot mount ext4 here"
MOUNTS+=("$T/mnt")
start_writer "$T/mnt"
agent db1 fs="$FSDEV" "$T/agent-fs.log"
wait_for "$T/agent-fs.log" "epoch 1 durable and verified"
"$TERNCTL" --state-dir "$T/state" cutover db1 --timeout 60 >"$T/ctl.out" 2>&1 ||
	{ cat "$T/ctl.out" "$T/agent-fs.log"; fail "cutover of a mounted filesystem failed"; }
wait "$AGENT_PID" || { cat "$T/agent-fs.log"; fail "agent did not exit 0"; }
wait "$WRITER_PID" 2>/dev/null || true
grep -q "froze $T/mnt" "$T/agent-fs.log" || { cat "$T/agent-fs.log"; fail "the filesystem was not frozen"; }
grep -q "thawed $T/mnt" "$T/agent-fs.log" || fail "the filesystem was not thawed"
timeout 10 touch "$T/mnt/after-cutover" || fail "the filesystem is still frozen"
# The final epoch was taken quiesced: the target is a clean filesystem.
e2fsck -fn "$T/fs-dst.img" >"$T/fsck.out" 2>&1 || { cat "$T/fsck.out"; fail "the target filesystem is not clean"; }

# 2b. A freeze that outlives --freeze-limit is thawed by the watchdog, and the cutover is
# refused rather than trusting a final epoch read from a live filesystem.
start_writer "$T/mnt"
TERN_FAULT_STALL_FROZEN=3 agent db2 fs2="$FSDEV" "$T/agent-fs2.log" --freeze-limit 1
wait_for "$T/agent-fs2.log" "epoch 1 durable and verified"
rc=0; "$TERNCTL" --state-dir "$T/state" cutover db2 --timeout 60 >"$T/ctl.out" 2>&1 || rc=$?
[ $rc -ne 0 ] || { cat "$T/ctl.out"; fail "a cutover whose freeze timed out succeeded"; }
wait "$AGENT_PID" && fail "the agent claimed success after the watchdog thawed"
wait "$WRITER_PID" 2>/dev/null || true
grep -q "the watchdog thawed it" "$T/agent-fs2.log" || { cat "$T/agent-fs2.log"; fail "no watchdog thaw"; }
timeout 10 touch "$T/mnt/after-watchdog" || fail "the filesystem is still frozen after the watchdog"
grep -q "thawed by the watchdog" "$T/ctl.out" || { cat "$T/ctl.out"; fail "ternctl did not say why"; }

# 2c. Killed while frozen (SIGKILL: no code of the agent's runs): the guardian it started
# before freezing sees it go and thaws the filesystem at once.
guarded_cutover() { # guarded_cutover NAME DISK=DEV LOG [ARGS...]: cut over, stalled frozen
	local log=$3
	start_writer "$T/mnt"
	TERN_FAULT_STALL_FROZEN=60 agent "$@"
	wait_for "$log" "epoch 1 durable and verified"
	"$TERNCTL" --state-dir "$T/state" cutover "$1" --timeout 90 >"$T/ctl-$1.out" 2>&1 &
	CTL_PID=$!
	wait_for "$log" "froze $T/mnt"
}
wait_thawed() { # wait_thawed SECONDS
	for _ in $(seq 1 $(($1 * 10))); do is_thawed "$T/mnt" && return 0; sleep 0.1; done
	fsfreeze --unfreeze "$T/mnt" 2>/dev/null # the test never leaves it frozen
	return 1
}
guarded_cutover db3 fs3="$FSDEV" "$T/agent-fs3.log" --freeze-limit 120
kill -KILL "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null || true
wait_thawed 5 || { cat "$T/agent-fs3.log"; fail "the filesystem stayed frozen after the agent was killed"; }
grep -q "the agent ended while the source was frozen: the thaw guardian thawed $T/mnt" \
	"$T/agent-fs3.log" || { cat "$T/agent-fs3.log"; fail "the guardian did not say it thawed"; }
wait "$CTL_PID" && fail "ternctl reported a cutover whose agent was killed"
wait "$WRITER_PID" 2>/dev/null || true

# 2d. Stopped while frozen (SIGSTOP: its watchdog thread cannot run either): the guardian
# thaws once the freeze outlives --freeze-limit by its grace.
guarded_cutover db4 fs4="$FSDEV" "$T/agent-fs4.log" --freeze-limit 3
kill -STOP "$AGENT_PID"
wait_thawed 15 || { kill -KILL "$AGENT_PID"; kill -CONT "$AGENT_PID"; cat "$T/agent-fs4.log"; fail "the filesystem stayed frozen under a stopped agent"; }
grep -q "the agent kept the source frozen past its limit: the thaw guardian thawed $T/mnt" \
	"$T/agent-fs4.log" || { cat "$T/agent-fs4.log"; fail "the guardian did not say it thawed"; }
# The shell may reap the killed agent before the CONT: it is gone either way.
kill -KILL "$AGENT_PID"
kill -CONT "$AGENT_PID" 2>/dev/null || true
wait "$AGENT_PID" 2>/dev/null || true
wait "$CTL_PID" && fail "ternctl reported a cutover whose agent was stopped"
wait "$WRITER_PID" 2>/dev/null || true
timeout 10 touch "$T/mnt/after-guardian" || fail "the filesystem is still frozen after the guardian"

# 2e. The usual server: the source is a whole disk, its filesystem lives on a partition
# and is mounted twice (a bind mount). It is found through the partition, frozen once
# (a second FIFREEZE of one filesystem would fail), and thawed.
if command -v sfdisk >/dev/null && command -v partx >/dev/null; then
	truncate -s 64M "$T/whole.img"
	printf 'label: gpt\nstart=2048, type=linux\n' | sfdisk -q "$T/whole.img" >/dev/null
	loop_attach_parts WDEV "$T/whole.img"
	mkfs.ext4 -q -F "${WDEV}p1"
	mkdir -p "$T/wmnt" "$T/wbind"
	mount "${WDEV}p1" "$T/wmnt" || skip "cannot mount ext4 here"
	MOUNTS+=("$T/wmnt")
	mount --bind "$T/wmnt" "$T/wbind" || fail "bind mount"
	MOUNTS+=("$T/wbind")
	start_writer "$T/wmnt"
	agent srv1 whole="$WDEV" "$T/agent-w.log"
	wait_for "$T/agent-w.log" "epoch 1 durable and verified"
	"$TERNCTL" --state-dir "$T/state" cutover srv1 --timeout 60 >"$T/ctl.out" 2>&1 ||
		{ cat "$T/ctl.out" "$T/agent-w.log"; fail "cutover of a partitioned disk failed"; }
	wait "$AGENT_PID" || { cat "$T/agent-w.log"; fail "agent did not exit 0"; }
	wait "$WRITER_PID" 2>/dev/null || true
	[ "$(grep -c "froze " "$T/agent-w.log")" -eq 1 ] ||
		{ cat "$T/agent-w.log"; fail "the partition's filesystem was not frozen exactly once"; }
	grep -q "thawed " "$T/agent-w.log" || fail "the partition's filesystem was not thawed"
	timeout 10 touch "$T/wmnt/after-cutover" || fail "the partition's filesystem is still frozen"
fi
# SIGTERM is an orderly shutdown: the API's address file goes with the receiver.
stop_receiver
grep -q "shutting down" "$T/receiver.log" || { tail "$T/receiver.log"; fail "SIGTERM did not shut the receiver down in order"; }
[ ! -e "$T/state/api.addr" ] || fail "the API's address file was left behind"
pass "cutover verified with proof; verify full caught a changed target; FIFREEZE thawed (watchdog, and the guardian after SIGKILL and SIGSTOP); target fsck-clean"

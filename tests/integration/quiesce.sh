#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The cutover's freeze against real ext4 filesystems on loop devices (root only):
# 1. the watchdog thaws before it logs: with the agent's stderr stuck (a pipe nobody
#    reads, as a log on the frozen filesystem would be), the watchdog still thaws at its
#    limit, and the guardian (which thaws later, when the agent cannot) has nothing to do;
# 2. a mount point that leads to another filesystem than the source's (mounted over it)
#    is not frozen in its place: the cutover is refused with the reason.
. "$(dirname "$0")/lib.sh"
: "${TERNCTL:?set by meson}"
need_root
command -v mkfs.ext4 >/dev/null || skip "mkfs.ext4 not installed"
command -v fsfreeze >/dev/null || skip "fsfreeze not installed"

EXTRA_PIDS=()
trap 'rc=$?; set +e; for p in "${EXTRA_PIDS[@]}"; do kill "$p" 2>/dev/null; done; (exit $rc); cleanup' EXIT
wait_for() { # wait_for FILE PATTERN (30 s)
	for _ in $(seq 1 300); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	cat "$1"; fail "timed out waiting for '$2' in $1"
}
new_fs() { # new_fs VAR IMAGE: an ext4 on a new loop device
	truncate -s 64M "$2"
	mkfs.ext4 -q -F "$2"
	loop_attach "$1" "$2"
}

init_state "$T/state"
start_receiver "$T/state" --target a="$T/a-dst.img" --target b="$T/b-dst.img"
new_fs DEV "$T/fs.img"
mkdir -p "$T/mnt"
mount "$DEV" "$T/mnt" || skip "cannot mount ext4 here"
MOUNTS+=("$T/mnt")
head -c 1048576 /dev/urandom >"$T/mnt/data"

# 1. stderr goes to a FIFO that this shell holds open both ways; cat drains it into the
# log until the source is frozen, then the pipe is filled so the agent's next write to
# stderr blocks, as it would on the frozen filesystem.
mkfifo "$T/err.fifo"
exec {RW}<>"$T/err.fifo"
drain() { cat <&"$RW" >>"$T/agent-a.log" & DRAIN_PID=$!; EXTRA_PIDS+=("$DRAIN_PID"); }
drain
TERN_FAULT_STALL_FROZEN=8 "$TERN_AGENT" run --receiver "127.0.0.1:$PORT" \
	--credentials "$T/state/agent-bundle.pem" --name qa --disk a="$DEV" --interval 1 \
	--no-progress --freeze-limit 3 >&"$RW" 2>&"$RW" &
AGENT_PID=$!
wait_for "$T/agent-a.log" "epoch 1 durable and verified"
"$TERNCTL" --state-dir "$T/state" cutover qa --timeout 120 >"$T/ctl.out" 2>&1 &
CUT_PID=$!
EXTRA_PIDS+=("$CUT_PID")
wait_for "$T/agent-a.log" "fault injection: staying frozen"
kill "$DRAIN_PID"; wait "$DRAIN_PID" 2>/dev/null || true
# Fill the pipe: nonblocking writes until it is full.
yes "pipe filler" | dd of=/dev/fd/"$RW" bs=4096 count=64 iflag=fullblock oflag=nonblock \
	status=none 2>/dev/null || true
for _ in $(seq 1 300); do is_thawed "$T/mnt" && break; sleep 0.1; done
is_thawed "$T/mnt" || fail "the source stayed frozen with the agent's stderr stuck"
drain
rc=0; wait "$CUT_PID" || rc=$?
[ $rc -ne 0 ] || { cat "$T/ctl.out"; fail "a cutover whose freeze timed out succeeded"; }
wait "$AGENT_PID" && fail "the agent claimed success after the watchdog thawed"
AGENT_PID=
wait_for "$T/agent-a.log" "the watchdog thawed it"
grep -q "thaw guardian thawed" "$T/agent-a.log" &&
	{ grep -v "pipe filler" "$T/agent-a.log"; fail "the watchdog blocked on its log before thawing: the guardian had to thaw"; }
kill "$DRAIN_PID"; wait "$DRAIN_PID" 2>/dev/null || true
exec {RW}>&-

# 2. Another filesystem mounted over the source's mount point: the path leads there, so
# freezing it would leave the source live. Refused, and the top filesystem left alone.
new_fs TOPDEV "$T/top.img"
mount "$TOPDEV" "$T/mnt" || skip "cannot mount a second ext4 here"
MOUNTS+=("$T/mnt")
"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$T/state/agent-bundle.pem" \
	--name qb --disk b="$DEV" --interval 1 --no-progress >"$T/agent-b.log" 2>&1 &
AGENT_PID=$!
wait_for "$T/agent-b.log" "epoch 1 durable and verified"
rc=0; "$TERNCTL" --state-dir "$T/state" cutover qb --timeout 60 >"$T/ctl.out" 2>&1 || rc=$?
[ $rc -ne 0 ] || { cat "$T/ctl.out" "$T/agent-b.log"; fail "a cutover froze the filesystem mounted over the source's"; }
wait "$AGENT_PID" && fail "the agent claimed success"
AGENT_PID=
grep -q "$T/mnt is listed as the mount of source device .* but leads to device .*; not freezing it" \
	"$T/agent-b.log" || { cat "$T/agent-b.log"; fail "no reason for the refused freeze"; }
grep -q "froze $T/mnt" "$T/agent-b.log" && fail "the filesystem mounted over the source's was frozen"
is_thawed "$T/mnt" || fail "the top filesystem is frozen"
grep -q '^cutover=1$' "$T/state/disks/b.state" && fail "a refused cutover was recorded"
pass "the watchdog thaws before it logs; a mount point leading elsewhere is not frozen"

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# A disk that grows is followed (issue 13, item 4). (a) An image file and a loop device
# (eBPF tracker where it runs, else scan), written to all along, grow by 64 MiB in the
# middle of replication, with data written into the new range before and after the epoch
# that noticed: the file targets grow, the records say the new size, and a cutover with
# --verify full (which also counts writes the tracker missed) leaves target = source.
# (b) A block target too small for the growth: one clear line in the receiver's log, in
# ternctl status and in the agent's log; nothing written, the other disk goes on; once the
# target's loop device is enlarged (losetup -c) replication resumes by itself, no restart.
# (c) A source that shrinks: refused in one line, the target unchanged.
. "$(dirname "$0")/lib.sh"
: "${TERNCTL:?set by meson}"
need_root

MiB=$((1024 * 1024))
init_state "$T/state"

agent() { # agent NAME LOG ARGS...: continuous, 1 s apart, stops the writer for a cutover
	local name=$1 log=$2; shift 2
	"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$T/state/agent-bundle.pem" \
		--name "$name" --interval 1 --no-progress --tracker auto \
		--pre-cutover "touch $T/stop; while [ ! -e $T/stopped ]; do sleep 0.05; done" \
		"$@" >"$log" 2>&1 &
	AGENT_PID=$!
}
# Random 4 KiB writes into the first $2 bytes of each of the files or devices $3..., until
# $T/stop appears (the cutover's hook), then $T/stopped.
start_writer() {
	local limit=$1; shift
	rm -f "$T/stop" "$T/stopped"
	(
		i=0
		while [ -d "$T" ] && [ ! -e "$T/stop" ]; do
			for f in "$@"; do
				dd if=/dev/urandom of="$f" bs=4096 seek=$(( (i * 7919) % (limit / 4096) )) \
					count=1 conv=notrunc oflag=direct status=none 2>/dev/null ||
				dd if=/dev/urandom of="$f" bs=4096 seek=$(( (i * 7919) % (limit / 4096) )) \
					count=1 conv=notrunc status=none
			done
			i=$((i + 1))
			sleep 0.05
		done
		touch "$T/stopped"
	) &
	WRITER_PID=$!
}
stop_agent() { kill "$AGENT_PID" 2>/dev/null; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=; }
state_size() { sed -n 's/^size=//p' "$T/state/disks/$1.state"; }

# Sources: an image file and a loop device over another, 64 MiB each, odd content. The
# file's size is not a multiple of the chunk: its short last chunk grows too.
make_mixed_image "$T/f-src.img" 64
truncate -s $((64 * MiB - 4096)) "$T/f-src.img"
make_mixed_image "$T/b-back.img" 64
loop_attach BDEV "$T/b-back.img"
# (b): a 24 MiB source onto a 24 MiB loop device, and another disk beside it.
make_mixed_image "$T/k-src.img" 24
truncate -s $((24 * MiB)) "$T/k-tgt.img"
loop_attach KDEV "$T/k-tgt.img"
make_mixed_image "$T/o-src.img" 8
# (c): a source that will shrink.
make_mixed_image "$T/s-src.img" 16

start_receiver "$T/state" --target f="$T/f-dst.img" --target b="$T/b-dst.img" \
	--target k="$KDEV" --target o="$T/o-dst.img" --target s="$T/s-dst.img" \
	--target r="$T/r-dst.img"

# ---- (a) a file and a loop device grow under a writer. One agent each: auto picks one
# tracker for all of an agent's disks, and the loop device's should be eBPF where it runs.
start_writer $((64 * MiB - 4096)) "$T/f-src.img" "$BDEV"
agent grow1 "$T/a.log" --disk b="$BDEV"
PID_B=$AGENT_PID
agent grow1f "$T/af.log" --disk f="$T/f-src.img"
PID_F=$AGENT_PID
EXTRA_PIDS+=("$PID_B" "$PID_F")
wait_for "$T/a.log" "b: epoch 1 durable and verified"
wait_for "$T/af.log" "f: epoch 1 durable and verified"
TRACKER=$(sed -n 's/.*info: tracker \([a-z]*\): .*/\1/p' "$T/a.log" | head -n 1)
# Grow both by 64 MiB; data lands in the new range right away.
truncate -s $((128 * MiB - 4096)) "$T/f-src.img"
truncate -s $((128 * MiB)) "$T/b-back.img"
losetup -c "$BDEV"
[ "$(blockdev --getsize64 "$BDEV")" -eq $((128 * MiB)) ] || fail "losetup -c did not grow $BDEV"
dd if=/dev/urandom of="$T/f-src.img" bs=1M seek=100 count=3 conv=notrunc status=none
dd if=/dev/urandom of="$BDEV" bs=1M seek=90 count=3 oflag=direct status=none
wait_for "$T/af.log" "f: the source grew from"
wait_for "$T/a.log" "b: the source grew from"
grep -q "agent grow1: disk b grew from $((64 * MiB)) to $((128 * MiB)) bytes" "$T/receiver.log" ||
	fail "the receiver did not say that disk b grew"
# After the epoch that noticed: writes into the new range only the new tracker can see.
N=$(verified b "$T/a.log")
wait_for "$T/a.log" "b: epoch [0-9]* durable and verified" $((N + 1))
dd if=/dev/urandom of="$BDEV" bs=4096 seek=$((120 * MiB / 4096)) count=2 oflag=direct status=none
dd if=/dev/urandom of="$T/f-src.img" bs=4096 seek=$((120 * MiB / 4096)) count=2 conv=notrunc status=none
N=$(verified b "$T/a.log")
wait_for "$T/a.log" "b: epoch [0-9]* durable and verified" $((N + 2))
for a in grow1:a:PID_B grow1f:af:PID_F; do
	IFS=: read -r name log pidvar <<<"$a"
	"$TERNCTL" --state-dir "$T/state" cutover "$name" --verify full --timeout 120 >"$T/ctl.out" 2>&1 ||
		{ cat "$T/ctl.out" "$T/$log.log"; fail "the cutover of $name after the growth failed"; }
	wait "${!pidvar}" || { cat "$T/$log.log"; fail "agent $name did not exit 0 after the cutover"; }
	grep -q "verify full: match" "$T/ctl.out" || { cat "$T/ctl.out"; fail "no full verification"; }
done
EXTRA_PIDS=()
wait "$WRITER_PID" 2>/dev/null || true
WRITER_PID=
FSIZE=$(stat -c %s "$T/f-src.img")
[ "$(stat -c %s "$T/f-dst.img")" -eq "$FSIZE" ] || fail "file target is $(stat -c %s "$T/f-dst.img") bytes, not $FSIZE"
[ "$(stat -c %s "$T/b-dst.img")" -eq $((128 * MiB)) ] || fail "loop source's target did not grow"
[ "$(sha "$T/f-src.img")" = "$(sha "$T/f-dst.img")" ] || fail "file: SHA-256 differs after the growth"
[ "$(sha_n "$BDEV" $((128 * MiB)))" = "$(sha "$T/b-dst.img")" ] || fail "loop device: SHA-256 differs after the growth"
[ "$(state_size f)" = "$FSIZE" ] || fail "record of f says size $(state_size f), not $FSIZE"
[ "$(state_size b)" = $((128 * MiB)) ] || fail "record of b says size $(state_size b)"
"$TERNCTL" --state-dir "$T/state" status --json | python3 -c "import json,sys
s=json.load(sys.stdin)
d={d['id']: d for a in s['agents'] for d in a['disks']}
assert d['b']['size_bytes'] == 128 << 20, d['b']
" || fail "ternctl status does not show the new size"

# ---- (b) a block target too small: held, said, then resumed once the volume grows.
start_writer $((24 * MiB)) "$T/k-src.img"
agent grow2 "$T/k.log" --disk k="$T/k-src.img" --disk o="$T/o-src.img"
wait_for "$T/k.log" "k: epoch 1 durable and verified"
touch "$T/stop"; wait "$WRITER_PID" 2>/dev/null || true; WRITER_PID=
N=$(verified k "$T/k.log")
wait_for "$T/k.log" "k: epoch [0-9]* durable and verified" $((N + 1))
KBEFORE=$(sha_disk "$KDEV")
truncate -s $((40 * MiB)) "$T/k-src.img"
dd if=/dev/urandom of="$T/k-src.img" bs=1M seek=30 count=2 conv=notrunc status=none
WANT="target $KDEV is $((24 * MiB)) bytes, the disk grew to $((40 * MiB)): attach a bigger volume"
wait_for "$T/receiver.log" "$WANT"
wait_for "$T/k.log" "k: the source grew to $((40 * MiB)) bytes and the receiver cannot follow: disk k: the target is"
grep "attach a bigger volume" "$T/k.log" | grep -q "$KDEV" && fail "the agent was told the receiver's path"
"$TERNCTL" --state-dir "$T/state" status >"$T/status.out"
grep -q "last fault: .*$WANT" "$T/status.out" || { cat "$T/status.out"; fail "ternctl status does not show why k is held"; }
# Held: nothing of k is written, the other disk goes on.
NO=$(verified o "$T/k.log")
wait_for "$T/k.log" "o: epoch [0-9]* durable and verified" $((NO + 3))
[ "$(sha_disk "$KDEV")" = "$KBEFORE" ] || fail "the held target was written"
[ "$(sha_n "$T/k-src.img" $((24 * MiB)))" = "$KBEFORE" ] || fail "the held target is not the last verified epoch"
[ "$(state_size k)" = $((24 * MiB)) ] || fail "the held disk's record changed size"
grep -q "^verified=1$" "$T/state/disks/k.state" || fail "the held disk's record lost its verified epoch"
kill -0 "$AGENT_PID" || fail "the agent stopped"
# Asked again meanwhile, and said once on each side.
wait_for "$T/receiver.log" "disk k: still held: target $KDEV is"
[ "$(grep -c "error: .*attach a bigger volume" "$T/receiver.log")" -eq 1 ] || fail "not one error line in the receiver's log"
[ "$(grep -c "error: k: .*epochs are held" "$T/k.log")" -eq 1 ] || fail "not one error line in the agent's log"
# The operator attaches a bigger volume: replication resumes without a restart.
truncate -s $((48 * MiB)) "$T/k-tgt.img"
losetup -c "$KDEV"
wait_for "$T/k.log" "k: the receiver's target holds the new size now; replication resumes"
N=$(verified k "$T/k.log")
wait_for "$T/k.log" "k: epoch [0-9]* durable and verified" $((N + 1))
"$TERNCTL" --state-dir "$T/state" cutover grow2 --verify full --timeout 120 >"$T/ctl.out" 2>&1 ||
	{ cat "$T/ctl.out" "$T/k.log"; fail "the cutover after the held growth failed"; }
wait "$AGENT_PID" || { cat "$T/k.log"; fail "agent did not exit 0 after the cutover"; }
AGENT_PID=
[ "$(sha "$T/k-src.img")" = "$(sha_n "$KDEV" $((40 * MiB)))" ] || fail "block target: SHA-256 differs after the growth"
[ "$(state_size k)" = $((40 * MiB)) ] || fail "record of k says size $(state_size k)"

# ---- (a2) a disk that grew while no agent ran: resumed at the recorded size and grown,
# sending what differs, not a new full copy.
make_mixed_image "$T/r-src.img" 32
agent grow4 "$T/r.log" --disk r="$T/r-src.img"
wait_for "$T/r.log" "r: epoch 1 durable and verified"
stop_agent
truncate -s $((48 * MiB)) "$T/r-src.img"
dd if=/dev/urandom of="$T/r-src.img" bs=1M seek=40 count=1 conv=notrunc status=none
run_agent --credentials "$T/state/agent-bundle.pem" --name grow4 --disk r="$T/r-src.img" --reconcile ||
	{ cat "$T/agent.log"; fail "the agent of a disk grown meanwhile failed"; }
grep -q "agent grow4: disk r grew from $((32 * MiB)) to $((48 * MiB)) bytes" "$T/receiver.log" ||
	fail "the receiver did not grow the recorded copy"
grep -q "r: the receiver holds it up to epoch 1" "$T/agent.log" || { cat "$T/agent.log"; fail "not resumed"; }
SENT=$(sed -n 's/.*r: epoch 2: \([0-9]*\) of [0-9]* chunks sent.*/\1/p' "$T/agent.log")
[ -n "$SENT" ] && [ "$SENT" -le 20 ] || { cat "$T/agent.log"; fail "a disk grown meanwhile was copied anew ($SENT chunks)"; }
[ "$(sha "$T/r-src.img")" = "$(sha "$T/r-dst.img")" ] || fail "grown meanwhile: SHA-256 differs"
[ "$(state_size r)" = $((48 * MiB)) ] || fail "record of r says size $(state_size r)"

# ---- (c) a source that shrinks: refused, the target unchanged.
agent grow3 "$T/s.log" --disk s="$T/s-src.img"
wait_for "$T/s.log" "s: epoch 1 durable and verified"
SBEFORE=$(sha "$T/s-dst.img")
truncate -s $((8 * MiB)) "$T/s-src.img"
wait_for "$T/s.log" "shrinking is refused"
[ "$(grep -c "shrinking is refused" "$T/s.log")" -eq 1 ] || { cat "$T/s.log"; fail "not one line for the shrink"; }
grep -q "s: the source shrank from 16.00 MiB to 8.00 MiB ($((16 * MiB)) to $((8 * MiB)) bytes): shrinking is refused" "$T/s.log" ||
	{ cat "$T/s.log"; fail "the refusal does not say what shrank"; }
wait_log "$T/receiver.log" "disk s: .*shrinking is refused" || fail "the receiver did not record the refusal"
sleep 3 # epochs would have run meanwhile
[ "$(sha "$T/s-dst.img")" = "$SBEFORE" ] || fail "the target of a shrunk source was written"
[ "$(stat -c %s "$T/s-dst.img")" -eq $((16 * MiB)) ] || fail "the target of a shrunk source was cut"
"$TERNCTL" --state-dir "$T/state" status >"$T/status.out"
grep -q "shrinking is refused" "$T/status.out" || { cat "$T/status.out"; fail "ternctl status does not show the shrink"; }
stop_agent
# A new agent of the shrunk source is refused too: a new copy would cut the target.
rc=0; run_agent --credentials "$T/state/agent-bundle.pem" --name grow3 --disk s="$T/s-src.img" || rc=$?
[ $rc -ne 0 ] || fail "a new agent of a shrunk source was accepted"
grep -q "disk s: the source is $((8 * MiB)) bytes, smaller than the $((16 * MiB)) the receiver holds: shrinking is refused" \
	"$T/agent.log" || { cat "$T/agent.log"; fail "no clear refusal of the shrunk source"; }
[ "$(sha "$T/s-dst.img")" = "$SBEFORE" ] || fail "the refused agent changed the target"
[ "$(stat -c %s "$T/s-dst.img")" -eq $((16 * MiB)) ] || fail "the refused agent cut the target"
pass "growth followed ($TRACKER), a too small block target held then resumed, a shrink refused"

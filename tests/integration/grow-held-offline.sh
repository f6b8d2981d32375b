#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# A disk that grew while no agent ran onto a block target too small for it (issue 13,
# item 4): one agent, two loop-device sources, each onto a loop device. The agent stops,
# one source grows, the agent starts again: the session goes on, the other disk's epochs
# go on and its target follows its writes, the grown disk is held with one clear line in
# the receiver's log and in ternctl status, nothing of its target is written (nor past its
# end); once the target's loop device is enlarged (losetup -c) its replication resumes by
# itself, the new range is copied, and a cutover with --verify full leaves target = source.
. "$(dirname "$0")/lib.sh"
: "${TERNCTL:?set by meson}"
need_root

MiB=$((1024 * 1024))
init_state "$T/state"

agent() { # agent LOG: continuous, 1 s apart
	"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$T/state/agent-bundle.pem" \
		--name held --interval 1 --no-progress --tracker auto \
		--disk h="$HSRC" --disk p="$PSRC" >"$1" 2>&1 &
	AGENT_PID=$!
}
stop_agent() { kill "$AGENT_PID" 2>/dev/null; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=; }
state_size() { sed -n 's/^size=//p' "$T/state/disks/$1.state"; }
wr() { dd if=/dev/urandom of="$1" bs=4096 seek=$(($2 / 4096)) count="$3" oflag=direct status=none; }

# h: a 24 MiB source onto a 24 MiB loop device; p: an 8 MiB one beside it. Loop devices
# on both sides, so that auto may pick the eBPF tracker for the agent's disks.
make_mixed_image "$T/h-back.img" 24
loop_attach HSRC "$T/h-back.img"
truncate -s $((24 * MiB)) "$T/h-tgt.img"
loop_attach HDEV "$T/h-tgt.img"
make_mixed_image "$T/p-back.img" 8
loop_attach PSRC "$T/p-back.img"
truncate -s $((8 * MiB)) "$T/p-tgt.img"
loop_attach PDEV "$T/p-tgt.img"
start_receiver "$T/state" --target h="$HDEV" --target p="$PDEV"

agent "$T/a1.log"
wait_for "$T/a1.log" "h: epoch 1 durable and verified"
wait_for "$T/a1.log" "p: epoch 1 durable and verified"
TRACKER=$(sed -n 's/.*info: tracker \([a-z]*\): .*/\1/p' "$T/a1.log" | head -n 1)
stop_agent
grep -q "^verified=1$" "$T/state/disks/h.state" || fail "h has no verified record"

# While no agent runs, h's source grows to 40 MiB, with data in the new range and a change
# in the old one.
truncate -s $((40 * MiB)) "$T/h-back.img"
losetup -c "$HSRC"
[ "$(blockdev --getsize64 "$HSRC")" -eq $((40 * MiB)) ] || fail "losetup -c did not grow $HSRC"
wr "$HSRC" $((30 * MiB)) 256
wr "$HSRC" $((2 * MiB)) 4
HBEFORE=$(sha_disk "$HDEV")

agent "$T/a2.log"
EXTRA_PIDS+=("$AGENT_PID")
WANT="target $HDEV is $((24 * MiB)) bytes, the disk grew to $((40 * MiB)): attach a bigger volume"
wait_for "$T/receiver.log" "$WANT"
wait_for "$T/a2.log" "h: the source grew to $((40 * MiB)) bytes while no agent ran; the receiver registered it at the $((24 * MiB)) it holds"
wait_for "$T/a2.log" "h: the source grew to $((40 * MiB)) bytes and the receiver cannot follow: disk h: the target is"
grep "attach a bigger volume" "$T/a2.log" | grep -q "$HDEV" && fail "the agent was told the receiver's path"
grep -q "receiver refused" "$T/a2.log" && { cat "$T/a2.log"; fail "the session was refused"; }
"$TERNCTL" --state-dir "$T/state" status >"$T/status.out"
grep -q "last fault: .*$WANT" "$T/status.out" || { cat "$T/status.out"; fail "ternctl status does not show why h is held"; }
"$TERNCTL" --state-dir "$T/state" status --json | python3 -c "import json,sys
s=json.load(sys.stdin)
d={d['id']: d for a in s['agents'] for d in a['disks']}
assert d['h']['size_bytes'] == 24 << 20, d['h']
" || fail "ternctl status does not show h at the size the receiver holds"

# The other disk goes on: its epochs are verified, and a change reaches its target.
NP=$(verified p "$T/a2.log")
wait_for "$T/a2.log" "p: epoch [0-9]* durable and verified" $((NP + 2))
wr "$PSRC" $((3 * MiB)) 8
for _ in $(seq 1 600); do
	[ "$(sha_disk "$PSRC")" = "$(sha_disk "$PDEV")" ] && break
	sleep 0.1
done
[ "$(sha_disk "$PSRC")" = "$(sha_disk "$PDEV")" ] || fail "p's target did not follow while h was held"

# Held: nothing of h's target written, nor past its end; its record still the verified copy.
wait_for "$T/receiver.log" "disk h: still held: target $HDEV is"
[ "$(sha_disk "$HDEV")" = "$HBEFORE" ] || fail "the held target was written"
[ "$(stat -c %s "$T/h-tgt.img")" -eq $((24 * MiB)) ] || fail "something was written past the held target's end"
[ "$(state_size h)" = $((24 * MiB)) ] || fail "the held disk's record changed size"
grep -q "^verified=1$" "$T/state/disks/h.state" || fail "the held disk's record lost its verified epoch"
kill -0 "$AGENT_PID" || fail "the agent stopped"
[ "$(grep -c "error: .*attach a bigger volume" "$T/receiver.log")" -eq 1 ] || fail "not one error line in the receiver's log"
[ "$(grep -c "error: h: .*epochs are held" "$T/a2.log")" -eq 1 ] || fail "not one error line in the agent's log"
# Written while held, in the old range and the new one.
wr "$HSRC" $((5 * MiB)) 2
wr "$HSRC" $((35 * MiB)) 2

# The operator enlarges the target: replication resumes without a restart of either side.
truncate -s $((48 * MiB)) "$T/h-tgt.img"
losetup -c "$HDEV"
wait_for "$T/a2.log" "h: the receiver's target holds the new size now; replication resumes"
wait_for "$T/receiver.log" "agent held: disk h grew from $((24 * MiB)) to $((40 * MiB)) bytes"
N=$(verified h "$T/a2.log")
wait_for "$T/a2.log" "h: epoch [0-9]* durable and verified" $((N + 1))
# After the growth's epoch: writes only the tracker can report, checked by --verify full.
wr "$HSRC" $((1 * MiB)) 2
wr "$HSRC" $((38 * MiB)) 2
N=$(verified h "$T/a2.log")
wait_for "$T/a2.log" "h: epoch [0-9]* durable and verified" $((N + 1))
"$TERNCTL" --state-dir "$T/state" cutover held --verify full --timeout 120 >"$T/ctl.out" 2>&1 ||
	{ cat "$T/ctl.out" "$T/a2.log"; fail "the cutover after the held growth failed"; }
wait "$AGENT_PID" || { cat "$T/a2.log"; fail "agent did not exit 0 after the cutover"; }
AGENT_PID=
EXTRA_PIDS=()
grep -q "verify full: match" "$T/ctl.out" || { cat "$T/ctl.out"; fail "no full verification"; }
[ "$(sha_disk "$HSRC")" = "$(sha_n "$HDEV" $((40 * MiB)))" ] || fail "h: SHA-256 differs after the growth"
[ "$(sha_disk "$PSRC")" = "$(sha_disk "$PDEV")" ] || fail "p: SHA-256 differs"
[ "$(state_size h)" = $((40 * MiB)) ] || fail "record of h says size $(state_size h)"
pass "a disk grown while no agent ran onto a too small block target held ($TRACKER), the other disk went on, resumed after losetup -c"

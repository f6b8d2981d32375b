#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The eBPF tracker misses no write, round after round, as `scripts/bench --update` uses it:
# a full copy from a loop device (direct I/O), the agent stopped, then each round rewrites
# seeded random 4 KiB blocks through the loop device while no agent runs (O_DIRECT, or
# buffered with fsync), with other I/O meanwhile (writes to a second, buffered loop
# device, whose requests complete in its worker's task context), then runs one tracked
# epoch of an agent that resumes the pinned tracker. After every epoch the target must
# equal the source (SHA-256), the receiver must have refused no patch and the agent
# reconciled nothing. The kernel now and then runs no BPF program for one request's
# completion (a softirq completion over a task), so a tracker hooked on
# block_rq_complete alone lost those writes: without the issue hook this test failed in
# 3 of 4 runs of 4 rounds; the tracker marks requests at issue too (see
# docs/ARCHITECTURE.md, "The eBPF tracker").
# TERN_STRESS_ROUNDS and TERN_STRESS_WRITES scale it (defaults: 8 rounds of 16,000).
. "$(dirname "$0")/lib.sh"
need_root
command -v python3 >/dev/null || skip "needs python3"
"$TERN_AGENT" run --help | grep "ebpf" >/dev/null || skip "agent without the eBPF tracker"
ROUNDS=${TERN_STRESS_ROUNDS:-8}
WRITES=${TERN_STRESS_WRITES:-16000}

init_state "$T/state"
# 256 MiB: the first half random data, the rest holes (zeros).
truncate -s 256M "$T/src.img"
head -c 128M /dev/urandom | dd of="$T/src.img" bs=1M conv=notrunc status=none
DEV=$(losetup --find --show --direct-io=on "$T/src.img") || skip "cannot attach a loop device"
LOOPS+=("$DEV")
start_receiver "$T/state" --target s="$T/dst.img"
agent() { # agent LOG ARGS...: one agent of disk s, in the foreground
	local log=$1
	shift
	"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$T/state/agent-bundle.pem" \
		--name st --disk s="$DEV" --tracker ebpf --interval 1 --no-progress "$@" >"$log" 2>&1
}

# The full copy; its tracker stays pinned for the rounds.
agent "$T/a0.log" --epochs 1 || { cat "$T/a0.log"; fail "the full copy failed"; }
grep -q "tracker ebpf" "$T/a0.log" || { cat "$T/a0.log"; skip "the eBPF tracker did not load here"; }
[ -e "$TERN_BPF_PIN_ROOT/s/link" ] || fail "the tracker was not pinned"

# rewrite SEED N MODE: N distinct random 4 KiB blocks of the device, seeded.
rewrite() {
	python3 - "$DEV" "$1" "$2" "$3" <<-'EOF'
	import mmap, os, random, sys
	dev, seed, n, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
	fd = os.open(dev, os.O_WRONLY | os.O_CLOEXEC | (os.O_DIRECT if mode == "direct" else 0))
	size = os.lseek(fd, 0, os.SEEK_END)
	rng = random.Random(seed)
	buf = mmap.mmap(-1, 4096)   # page-aligned, as O_DIRECT wants
	for b in sorted(rng.sample(range(size // 4096), n)):
	    buf[:] = rng.randbytes(4096)
	    if os.pwrite(fd, buf, b * 4096) != 4096:
	        sys.exit("short write")
	os.fsync(fd)
	EOF
}
# Other I/O meanwhile, until stopped: writes to a second loop device, buffered by the
# loop driver, whose worker completes them in task context; the tracked device's
# completions arrive in softirqs, some over that worker.
truncate -s 64M "$T/noise.img"
NOISE_DEV=$(losetup --find --show --direct-io=off "$T/noise.img") || skip "cannot attach a loop device"
LOOPS+=("$NOISE_DEV")
noise() {
	while :; do
		dd if=/dev/zero of="$NOISE_DEV" bs=4K count=4096 oflag=direct status=none
	done
}

for i in $(seq 1 "$ROUNDS"); do
	MODE=direct
	[ $((i % 3)) -eq 0 ] && MODE=buffered
	noise &
	NOISE_PID=$!
	EXTRA_PIDS+=("$NOISE_PID")
	rewrite $((7000 + i)) "$WRITES" $MODE || fail "round $i: the rewrite failed"
	kill "$NOISE_PID"; wait "$NOISE_PID" 2>/dev/null || true
	agent "$T/a$i.log" --epochs 1 || { cat "$T/a$i.log"; fail "round $i: the agent failed"; }
	grep -q "tracking has been continuous" "$T/a$i.log" ||
		{ cat "$T/a$i.log"; fail "round $i: the agent did not resume its tracking"; }
	if grep -q "refused\|reconcil" "$T/a$i.log"; then
		grep "refused\|reconcil" "$T/a$i.log"
		fail "round $i ($WRITES $MODE writes): the tracker missed a write (patch refused, reconcile)"
	fi
	[ "$(sha_disk "$DEV")" = "$(sha "$T/dst.img")" ] ||
		fail "round $i ($WRITES $MODE writes): the target differs from the source"
	echo "round $i: $WRITES $MODE writes, $(sed -n 's/^s: epoch [0-9]*: read \(.*\) in .*, \([0-9]*\) changed chunks.*/\2 chunks (read \1)/p' "$T/a$i.log" | head -n 1), target = source"
done
pass "eBPF tracker: $ROUNDS rounds of $WRITES random 4 KiB writes with other I/O, no agent running: every write reported, target = source after each epoch"

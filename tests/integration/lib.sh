# SPDX-License-Identifier: GPL-2.0-only
# Shared helpers for tern's integration tests: a temp dir, a receiver on a free loopback
# port, loop devices that are always detached, and exit codes meson understands
# (0 pass, 77 skip, anything else fail).
set -euo pipefail

: "${TERN_AGENT:?set by meson}"
: "${TERN_RECEIVER:?set by meson}"

T=$(mktemp -d /tmp/tern-test.XXXXXX)
RECEIVER_PID=
# eBPF tracker pins of this test, apart from any real agent's, removed at the end.
# (bpffs refuses names with a dot.)
export TERN_BPF_PIN_ROOT="/sys/fs/bpf/tern_test_${T##*.}"
LOOPS=()
PART_LOOPS=() # loop devices whose partitions partx added
MOUNTS=()
EXTRA_PIDS=() # helper processes a test started in the background, stopped by PID

cleanup() {
	local rc=$?
	set +e
	for p in "${EXTRA_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	if [ -n "$RECEIVER_PID" ]; then
		kill "$RECEIVER_PID" 2>/dev/null
		wait "$RECEIVER_PID" 2>/dev/null
	fi
	[ -n "${PROXY_PID:-}" ] && kill "$PROXY_PID" 2>/dev/null
	[ -n "${WRITER_PID:-}" ] && kill "$WRITER_PID" 2>/dev/null && wait "$WRITER_PID" 2>/dev/null
	[ -n "${AGENT_PID:-}" ] && kill "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null
	[ -d "$TERN_BPF_PIN_ROOT" ] && rm -rf "$TERN_BPF_PIN_ROOT"
	# Last mounted first (a bind mount before what it binds); never leave one frozen.
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
		fsfreeze --unfreeze "${MOUNTS[$i]}" 2>/dev/null
		umount "${MOUNTS[$i]}" 2>/dev/null
	done
	# Partitions before their loop device: a detached loop keeps them, and the next user
	# of its number inherits them.
	for l in "${PART_LOOPS[@]}"; do partx -d "$l" 2>/dev/null; done
	for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null; done
	if [ $rc -ne 0 ] && [ $rc -ne 77 ] && [ -f "$T/receiver.log" ]; then
		echo "--- receiver log"; tail -n 30 "$T/receiver.log"
	fi
	rm -rf "$T"
	exit $rc
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }
pass() { echo "PASS: $*"; }

need_root() {
	[ "$(id -u)" -eq 0 ] || skip "needs root for loop devices"
	command -v losetup >/dev/null || skip "losetup not installed"
	[ -e /dev/loop-control ] || skip "no loop device support"
}

# Attaches a file to a new loop device and stores its name in the variable named $1;
# the device is remembered for cleanup (no subshell, or the list would be lost).
loop_attach() {
	local dev
	dev=$(losetup --find --show "$2") || skip "cannot attach a loop device"
	LOOPS+=("$dev")
	printf -v "$1" '%s' "$dev"
}

# loop_attach, then adds the image's partitions (DEVp1, ...) with partx; skips when they
# do not appear. Leftover partitions of an earlier user of the number are dropped first.
loop_attach_parts() {
	local dev i
	loop_attach "$1" "$2"
	dev=${!1}
	PART_LOOPS+=("$dev")
	if ls "/sys/block/${dev#/dev/}" | grep -q "^${dev#/dev/}p[0-9]"; then
		partx -d "$dev" 2>/dev/null || true
	fi
	for i in 1 2 3 4 5; do
		partx -a "$dev" 2>"$T/partx.err" && break
		sleep 0.5
	done
	for i in $(seq 1 50); do
		[ -b "${dev}p1" ] && return 0
		sleep 0.1
	done
	cat "$T/partx.err" >&2
	skip "partx could not add the partitions of $dev"
}

sha() { sha256sum "$1" | cut -d' ' -f1; }
# True when the filesystem mounted at $1 is not frozen. Probes without blocking (a write
# to a frozen filesystem would sleep uninterruptibly): FIFREEZE fails with EBUSY on a
# frozen one, and a successful probe is thawed at once.
is_thawed() { fsfreeze --freeze "$1" 2>/dev/null && fsfreeze --unfreeze "$1"; }
# Waits up to 10 s for a line matching $2 in file $1: a daemon may log a refusal just
# after its peer has already given up and exited.
wait_log() {
	local i
	for i in $(seq 1 100); do
		grep -q -- "$2" "$1" && return 0
		sleep 0.1
	done
	return 1
}

# Up to 60 s for COUNT (default 1) lines of FILE matching PATTERN; else shows FILE and
# fails. (Some tests keep their own, shorter one.)
wait_for() { # wait_for FILE PATTERN [COUNT]
	for _ in $(seq 1 600); do
		[ "$(grep -c -- "$2" "$1" 2>/dev/null)" -ge "${3:-1}" ] && return 0
		sleep 0.1
	done
	cat "$1"; fail "timed out waiting for '$2' in $1"
}
# How many epochs of disk ID the agent's LOG says were durable and verified.
verified() { grep -c "$1: epoch [0-9]* durable and verified" "$2" || true; }

# The SHA-256 of the first N bytes of a file or device.
# SHA-256 of what is on the disk, read with O_DIRECT past the page cache: the receiver
# writes O_DIRECT, and a page cached by an earlier buffered read (while a refused
# session's writes were still landing) can differ from the disk. File size: 4 KiB multiple.
sha_disk() { dd if="$1" bs=1M iflag=direct status=none | sha256sum | cut -d' ' -f1; }
sha_n() { head -c "$2" "$1" | sha256sum | cut -d' ' -f1; }

# Makes an image with mixed content: zero runs, text, random and a short odd tail.
make_mixed_image() {
	local img=$1 size_mib=$2
	truncate -s "${size_mib}M" "$img"
	local i=0
	while [ $i -lt "$size_mib" ]; do
		case $((i % 4)) in
		0) ;; # zeros: leave sparse
		1) head -c 1048576 /dev/urandom | dd of="$img" bs=1M seek=$i conv=notrunc status=none ;;
		2) head -c 1048576 < <(yes "tern replicates disks block by block $i") |
			dd of="$img" bs=1M seek=$i conv=notrunc status=none ;;
		3) head -c 524288 < <(seq 1 200000) |
			dd of="$img" bs=512K seek=$((i * 2 + 1)) conv=notrunc status=none ;;
		esac
		i=$((i + 1))
	done
}

# Starts a receiver in the background on a free loopback port; sets PORT.
start_receiver() {
	local state=$1; shift
	# The background job opens its log only once it runs: create it first.
	: >"$T/receiver.log"
	"$TERN_RECEIVER" serve --state-dir "$state" --listen 127.0.0.1:0 --api 127.0.0.1:0 \
		${TERN_TEST_DEBUG:+--log-level debug} "$@" \
		>"$T/receiver.log" 2>&1 &
	RECEIVER_PID=$!
	local i
	for i in $(seq 1 100); do
		PORT=$(sed -n 's/^tern-receiver: info: listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/receiver.log" | head -n 1)
		[ -n "$PORT" ] && return 0
		kill -0 "$RECEIVER_PID" 2>/dev/null || { cat "$T/receiver.log"; fail "receiver exited"; }
		sleep 0.1
	done
	fail "receiver did not start"
}

# After start_receiver with --enrol-listen 127.0.0.1:0: sets EPORT, the enrolment port.
enrol_port() {
	local i
	EPORT=
	for i in $(seq 1 50); do
		EPORT=$(sed -n 's/.*enrolment listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/receiver.log")
		[ -n "$EPORT" ] && return 0
		sleep 0.1
	done
	fail "no enrolment listener in the receiver's log"
}

# start_cutproxy TARGET_PORT ARGS...: tests/integration/cutproxy.c in front of
# 127.0.0.1:TARGET_PORT (ARGS: what to cut, see cutproxy.c); sets PROXY_PID and PPORT.
start_cutproxy() {
	local i port=$1
	shift
	: >"$T/proxy.log"
	"$TERN_CUTPROXY" 0 "$port" "$@" >"$T/proxy.log" 2>&1 &
	PROXY_PID=$!
	for i in $(seq 1 50); do grep -q "listening on" "$T/proxy.log" && break; sleep 0.1; done
	PPORT=$(sed -n 's/listening on //p' "$T/proxy.log")
	[ -n "$PPORT" ] || fail "proxy did not start"
}

# Stops the proxy and sets RELAYED to the bytes it relayed from the agent, over all
# connections. Not in a $(...): that subshell could not wait for the proxy, and would
# read its log before the proxy wrote the count.
stop_proxy() {
	local i
	kill -TERM "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null || true
	PROXY_PID=
	RELAYED=
	for i in $(seq 1 50); do
		RELAYED=$(sed -n 's/relayed //p' "$T/proxy.log" | tail -n 1)
		[ -n "$RELAYED" ] && return 0
		sleep 0.1
	done
}

stop_receiver() {
	if [ -n "$RECEIVER_PID" ]; then
		kill "$RECEIVER_PID" 2>/dev/null || true
		wait "$RECEIVER_PID" 2>/dev/null || true
		RECEIVER_PID=
	fi
}

init_state() {
	"$TERN_RECEIVER" init --state-dir "$1" >/dev/null
}

# Runs the agent; its exit code is returned, output goes to $T/agent.log.
run_agent() {
	local rc=0
	"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --no-progress --once ${TERN_TEST_DEBUG:+--log-level debug} "$@" \
		>"$T/agent.log" 2>&1 || rc=$?
	return $rc
}

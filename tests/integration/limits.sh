#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# What an authenticated agent's DISK frame may cost the receiver (issue 10, item 9): the
# agent picks the disk size and the chunk size, so fingerprint memory has a receiver-wide
# budget (--fp-memory), a file target grows only up to its max-size (default: its
# filesystem's free space), and a ZERO frame over a huge disk costs no memory per chunk.
# Each refusal is one line, leaves no file behind, and the receiver goes on serving.
. "$(dirname "$0")/lib.sh"
: "${TERN_BADPEER:?set by meson}"

init_state "$T/state"
GIB=$((1024 * 1024 * 1024))
peer() { # peer DISK SIZE SCENARIO EXPECTED
	"$TERN_BADPEER" "127.0.0.1:$PORT" "$T/state/agent-bundle.pem" "$@"
}
hwm_kib() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$RECEIVER_PID/status"; }
alive() { kill -0 "$RECEIVER_PID" 2>/dev/null || fail "receiver died ($1)"; }

# 1. The default budget (a quarter of RAM) against 1 PiB at 4 KiB chunks: 4 TiB of
#    fingerprints, refused before the target is touched.
start_receiver "$T/state" --target huge="$T/huge.img" \
	--target capped="$T/capped.img,max-size=1G" --target zero="$T/zero.img,max-size=32G"
peer huge $((1024 * 1024 * GIB)) disk-4k "fingerprint memory" || fail "1 PiB at 4 KiB not refused"
[ ! -e "$T/huge.img" ] || fail "a refused disk left its target file"
alive "budget refusal"

# 2. A file grows no further than its max-size: 2 GiB into max-size=1G is refused, and
#    the file it would have created is not left behind; 512 MiB fits.
peer capped $((2 * GIB)) disk-4k "max-size" || fail "growth past max-size not refused"
[ ! -e "$T/capped.img" ] || fail "a refused disk left its target file"
alive "max-size refusal"
stop_receiver

# 3. Without max-size, the filesystem's free space is the limit: 1 PiB does not fit
#    anywhere here (a budget large enough lets the disk reach the target's check).
FREE=$(df -B1 --output=avail "$T" | tail -n 1 | tr -d ' ')
if [ "$FREE" -lt $((1024 * 1024 * GIB)) ]; then
	start_receiver "$T/state" --fp-memory 1024T --target huge="$T/huge.img"
	peer huge $((1024 * 1024 * GIB)) disk-4k "what its filesystem has free" ||
		fail "growth past the free space not refused"
	[ ! -e "$T/huge.img" ] || fail "a refused disk left its target file"
	alive "free-space refusal"
	stop_receiver
else
	echo "skipping the free-space refusal: this filesystem has a PiB free"
fi

# 4. An explicit budget: 128 GiB at 4 KiB chunks needs 516 MiB of fingerprints.
start_receiver "$T/state" --fp-memory 256M --target huge="$T/huge.img,max-size=200G"
peer huge $((128 * GIB)) disk-4k "more than the 256.00 MiB this receiver has left" ||
	fail "a disk over --fp-memory not refused"
[ ! -e "$T/huge.img" ] || fail "a refused disk left its target file"
alive "explicit budget refusal"
stop_receiver

# 5. A disk within the budget, 16 GiB at 4 KiB chunks (64 MiB of fingerprints), zeroed by
#    one ZERO frame and ended with the right root: acknowledged, and the receiver's peak
#    memory grows by far less than the fingerprints would take if each were written.
start_receiver "$T/state" --target zero="$T/zero.img,max-size=32G"
sleep 0.5
BEFORE=$(hwm_kib)
peer zero $((16 * GIB)) zero-all-4k match || fail "the zeroed disk was not acknowledged"
AFTER=$(hwm_kib)
alive "zeroed disk"
echo "receiver peak RSS: $BEFORE KiB before, $AFTER KiB after"
# Each fingerprint written would take 64 MiB (and the old root's second array 32 more);
# what remains is buffers, which meson's MALLOC_PERTURB_ fills and so commits.
[ $((AFTER - BEFORE)) -lt $((48 * 1024)) ] ||
	fail "a ZERO frame over 4 Mi chunks cost $(((AFTER - BEFORE) / 1024)) MiB of memory"
[ "$(stat -c %s "$T/zero.img")" -eq $((16 * GIB)) ] || fail "target not sized to the disk"
[ "$(stat -c %b "$T/zero.img")" -lt 1024 ] || fail "a zeroed target took space"
grep -q '^verified=1$' "$T/state/disks/zero.state" || fail "zeroed disk not recorded as verified"
stop_receiver
pass "DISK frames bounded: budget, max-size, free space; a huge ZERO costs no memory"

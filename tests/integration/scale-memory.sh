#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The receiver's memory with many disks (issue 13, item 6): one receiver serves 32 sparse
# disks from 8 real agents at once, and its peak RSS (VmHWM) stays within the goal of
# 256 MiB + 32 MiB per TiB held at 64 KiB chunks, i.e. 2 bytes a chunk; every target then
# holds exactly its source. The disks are 8 GiB at 8 KiB chunks: as many chunks as the
# bench's 64 GiB disks at 64 KiB (32 Mi in all, bound 320 MiB), in an eighth of the time
# (a ZERO frame of 1 MiB then covers 2 KiB of fingerprints, part of a page, as at 64 KiB;
# at 4 KiB it would cover exactly one). The fingerprints of the holes must cost nothing: each ZERO frame covers a part of
# a page of fingerprints, and writing zeros there used to commit the whole array (16 bytes
# a chunk, 512 MiB here).
. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || skip "python3 not installed"

AGENTS=8 DISKS=4 GIB=8 CHUNK=8192
MIB=$((1024 * 1024))
init_state "$T/state"
TARGETS=()
for a in $(seq $AGENTS); do
	for d in $(seq $DISKS); do
		img="$T/src$a-$d.img"
		truncate -s "${GIB}G" "$img"
		# A little data: 1 MiB at the start, and 1 MiB at an offset that is not a
		# multiple of the chunk size somewhere in the middle (a chunk part data, part zeros).
		head -c $MIB /dev/urandom | dd of="$img" bs=1M conv=notrunc status=none
		head -c $MIB /dev/urandom | dd of="$img" bs=4K conv=notrunc status=none \
			seek=$(((a * 7 + d) * 32768 + 5))
		TARGETS+=(--target "a$a-d$d=$T/a$a-d$d.img,max-size=1T")
	done
done
start_receiver "$T/state" "${TARGETS[@]}"
START=$SECONDS

PIDS=()
for a in $(seq $AGENTS); do
	ARGS=()
	for d in $(seq $DISKS); do ARGS+=(--disk "a$a-d$d=$T/src$a-$d.img"); done
	"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$T/state/agent-bundle.pem" \
		--name "agent$a" --chunk-size $CHUNK "${ARGS[@]}" --once --no-progress >"$T/agent$a.log" 2>&1 &
	PIDS+=($!)
	EXTRA_PIDS+=($!)
done
a=0
for p in "${PIDS[@]}"; do
	a=$((a + 1))
	wait "$p" || { cat "$T/agent$a.log"; fail "agent $a exited non-zero"; }
done
echo "copied in $((SECONDS - START)) s"
HWM=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$RECEIVER_PID/status")
stop_receiver

# The goal's formula: 256 MiB and 2 bytes for every chunk held.
CHUNKS=$((AGENTS * DISKS * GIB * 1024 * MIB / CHUNK))
BOUND_KIB=$((256 * 1024 + CHUNKS * 2 / 1024))
echo "receiver peak RSS: $((HWM / 1024)) MiB for $CHUNKS chunks held (bound $((BOUND_KIB / 1024)) MiB)"
[ "$HWM" -le "$BOUND_KIB" ] ||
	fail "the receiver of $((AGENTS * DISKS)) disks peaked at $((HWM / 1024)) MiB, over $((BOUND_KIB / 1024)) MiB"

START=$SECONDS
# Equal contents without reading 4 TiB of holes: the SHA-256 of every non-zero 4 KiB block
# with its offset, found through SEEK_DATA (a hole reads as zeros), and the sizes.
python3 - "$T" $AGENTS $DISKS <<'EOF' || fail "a target differs from its source"
import hashlib, os, sys

t, agents, disks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ZERO = bytes(4096)

def digest(path):
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        h.update(size.to_bytes(8, "little"))
        off = 0
        while off < size:
            try:
                off = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:
                break  # no data past off
            end = os.lseek(fd, off, os.SEEK_HOLE)
            off -= off % 4096
            while off < end:
                block = os.pread(fd, 4096, off)
                if block.rstrip(b"\0"):
                    h.update(off.to_bytes(8, "little") + block)
                off += len(block) or 4096
    finally:
        os.close(fd)
    return h.hexdigest()

bad = 0
for a in range(1, agents + 1):
    for d in range(1, disks + 1):
        src, dst = digest(f"{t}/src{a}-{d}.img"), digest(f"{t}/a{a}-d{d}.img")
        if src != dst:
            print(f"a{a}-d{d}: target {dst} != source {src}")
            bad += 1
sys.exit(1 if bad else 0)
EOF
echo "compared in $((SECONDS - START)) s"
pass "$((AGENTS * DISKS)) disks from $AGENTS agents: receiver peak $((HWM / 1024)) MiB (bound $((BOUND_KIB / 1024))), every target equal"

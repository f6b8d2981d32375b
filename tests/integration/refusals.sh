#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# What the receiver must refuse, each with a clear reason and nothing written: an agent
# credential from another CA, a corrupted chunk, an unknown disk id.
. "$(dirname "$0")/lib.sh"

init_state "$T/state"
init_state "$T/other"
make_mixed_image "$T/src.img" 8

# 1. Foreign CA: the handshake fails and the target is never created.
start_receiver "$T/state" --target disk0="$T/dst.img"
if run_agent --credentials "$T/other/agent-bundle.pem" --disk disk0="$T/src.img"; then
	fail "agent with a foreign CA was accepted"
fi
grep -qi "handshake" "$T/agent.log" || { cat "$T/agent.log"; fail "no handshake error shown"; }
[ ! -e "$T/dst.img" ] || fail "target created for a refused agent"
wait_log "$T/receiver.log" "refused connection" || fail "receiver did not log the refusal"

# 1b. A credential from another CA that trusts this receiver: the receiver's side of the
# handshake refuses it (TLS 1.3 lets the client finish first), and the agent says so.
cat "$T/other/agent-bundle.pem" "$T/state/ca.pem" >"$T/mixed.pem"
if run_agent --credentials "$T/mixed.pem" --disk disk0="$T/src.img"; then
	fail "agent certificate from a foreign CA was accepted"
fi
grep -q "receiver ended the TLS session" "$T/agent.log" || { cat "$T/agent.log"; fail "no reason shown"; }
[ ! -e "$T/dst.img" ] || fail "target created for a refused agent"

# 2. A chunk corrupted after fingerprinting: refused, and its bytes never reach the target.
# Pre-fill the target with a pattern so an untouched region is recognisable.
SIZE=$(stat -c %s "$T/src.img")
head -c "$SIZE" /dev/zero | tr '\0' '\252' >"$T/dst.img"
# Chunk 21 (64 KiB chunks) lies in the random second MiB.
if TERN_FAULT_CORRUPT_CHUNK=21 run_agent --credentials "$T/state/agent-bundle.pem" \
	--disk disk0="$T/src.img" --threads 1; then
	fail "corrupted chunk accepted"
fi
grep -q "fingerprint mismatch in chunk 21" "$T/agent.log" ||
	{ cat "$T/agent.log"; fail "agent did not report the receiver's refusal"; }
AFTER=$(dd if="$T/dst.img" bs=64K skip=21 count=1 status=none | od -v -An -tx1 | tr -d ' \n' | tr -d 'a')
[ -z "$AFTER" ] || fail "bytes of the refused chunk reached the target"
grep -q '^verified=0' "$T/state/disks/disk0.state" || fail "a refused copy was not recorded as unverified"

# 3. Unknown disk id: refused by name, nothing created.
if run_agent --credentials "$T/state/agent-bundle.pem" --disk nosuch="$T/src.img"; then
	fail "unknown disk accepted"
fi
grep -q "unknown disk id nosuch" "$T/agent.log" || { cat "$T/agent.log"; fail "no reason for unknown disk"; }

# 4. The receiver survived all of that and still copies correctly.
run_agent --credentials "$T/state/agent-bundle.pem" --disk disk0="$T/src.img" ||
	{ cat "$T/agent.log"; fail "receiver unusable after refusals"; }
[ "$(sha "$T/src.img")" = "$(sha "$T/dst.img")" ] || fail "SHA-256 differs after refusals"
grep -q '^verified=1' "$T/state/disks/disk0.state" || fail "verified copy not recorded"

# 4b. A refused first frame changes nothing at all: not the target, not its record.
# (All data, no holes: a hole's ZERO frame could arrive first, and an accepted ZERO marks
# the record, rightly, since zeroing the target may begin before the epoch ends.)
head -c "$SIZE" /dev/urandom >"$T/srcr.img"
# One read in flight and one worker: the pipeline emits batches as their reads complete,
# so only then is chunk 0's frame surely the first.
BEFORE=$(sha_disk "$T/dst.img")
if TERN_FAULT_CORRUPT_CHUNK=0 run_agent --credentials "$T/state/agent-bundle.pem" \
	--disk disk0="$T/srcr.img" --threads 1 --queue-depth 1; then
	fail "corrupted first chunk accepted"
fi
grep -q "fingerprint mismatch in chunk 0" "$T/agent.log" || { cat "$T/agent.log"; fail "no refusal of chunk 0"; }
[ "$(sha_disk "$T/dst.img")" = "$BEFORE" ] || fail "a refused frame changed the target"
grep -q '^verified=1' "$T/state/disks/disk0.state" || fail "a refused frame cleared the verified record"

# 5. A later copy that fails must not leave the earlier verified record standing.
if TERN_FAULT_CORRUPT_CHUNK=21 run_agent --credentials "$T/state/agent-bundle.pem" \
	--disk disk0="$T/src.img" --threads 1; then
	fail "corrupted chunk accepted"
fi
grep -q '^verified=0' "$T/state/disks/disk0.state" || fail "stale verified record after a failed copy"

# 6. A target belongs to the agent that wrote it: another agent name is refused.
BEFORE=$(sha "$T/dst.img")
if run_agent --credentials "$T/state/agent-bundle.pem" --disk disk0="$T/src.img" --name intruder; then
	fail "another agent overwrote the target"
fi
grep -q "target belongs to agent" "$T/agent.log" || { cat "$T/agent.log"; fail "no reason for the owner refusal"; }
[ "$(sha "$T/dst.img")" = "$BEFORE" ] || fail "the refused agent changed the target"

# 7. A target file locked by another writer (another receiver, another path to it).
if command -v flock >/dev/null; then
	# This shell holds the lock itself, so nothing outlives the test.
	exec {LOCKFD}<>"$T/dst.img"
	flock -x "$LOCKFD"
	if run_agent --credentials "$T/state/agent-bundle.pem" --disk disk0="$T/src.img"; then
		fail "a locked target was written"
	fi
	exec {LOCKFD}>&-
	grep -q "in use" "$T/agent.log" || { cat "$T/agent.log"; fail "no reason for the locked target"; }
	[ "$(sha "$T/dst.img")" = "$BEFORE" ] || fail "the locked target was changed"
fi
# 8. One agent per source: a second one on the same file (by another path, another disk
# id) is refused before it connects, and the first keeps replicating.
"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --no-progress --interval 1 \
	--credentials "$T/state/agent-bundle.pem" --disk disk0="$T/src.img" >"$T/agent-first.log" 2>&1 &
AGENT_PID=$!
wait_log "$T/agent-first.log" "durable and verified" || { cat "$T/agent-first.log"; fail "first agent"; }
ln -s "$T/src.img" "$T/src-link.img"
if run_agent --credentials "$T/state/agent-bundle.pem" --disk other="$T/src-link.img"; then
	fail "a second agent replicated the same source"
fi
grep -q "source $T/src-link.img is being replicated by another tern-agent" "$T/agent.log" ||
	{ cat "$T/agent.log"; fail "no reason for the second agent's refusal"; }
grep -q "agent vm: disk other" "$T/receiver.log" && fail "the refused second agent reached the receiver"
kill -0 "$AGENT_PID" || fail "the first agent died"
kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=

# 9. A refusal tells the agent the disk and the reason, never the receiver's paths (a
# hostile or merely curious agent learns nothing of the staging host's layout); the
# receiver's own log keeps the path for its operator.
stop_receiver
mkdir "$T/a-dir"
start_receiver "$T/state" --target disk0="$T/dst.img" --target nodir="$T/no/such/dir/t.img" \
	--target isdir="$T/a-dir"
for id in nodir isdir $(command -v flock >/dev/null && echo disk0); do
	[ "$id" = disk0 ] && { exec {LOCKFD}<>"$T/dst.img"; flock -x "$LOCKFD"; }
	if run_agent --credentials "$T/state/agent-bundle.pem" --disk "$id=$T/src.img"; then
		fail "target $id was accepted"
	fi
	[ "$id" = disk0 ] && exec {LOCKFD}>&-
	grep "receiver refused" "$T/agent.log" >"$T/refusal.txt" || { cat "$T/agent.log"; fail "no refusal of $id"; }
	grep -q "receiver refused: disk $id: " "$T/refusal.txt" || { cat "$T/refusal.txt"; fail "the refusal of $id does not name the disk"; }
	! grep -q "$T" "$T/refusal.txt" || { cat "$T/refusal.txt"; fail "the refusal of $id tells the agent a receiver path"; }
	wait_log "$T/receiver.log" "disk $id: target $T/" || fail "the receiver's log lost the path of $id"
done
[ ! -e "$T/no" ] || fail "a refused target's directory was created"
pass "foreign CA, corrupted chunk, unknown disk, other agent, locked target and a second agent on one source refused; refusals name no receiver path"

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# A source that cannot be read is that disk's fault, not the session's: with reads of one
# range of disk a failing with EIO (the agent's TERN_FAULT_EIO seam, real reads elsewhere;
# tests/vm/guest-40-eio.sh does the same with a dm-error device), over real TLS:
#   --once copies the healthy disk b, exits 1 naming a, and ternctl shows a as error with
#   the reason;
#   --once --skip-unreadable copies a except the bad range (zeros on the target), lists the
#   range, never calls a verified, and exits 3;
#   continuous replication goes on with b while a fails, retries a with backoff, and
#   copies it once it reads again.
. "$(dirname "$0")/lib.sh"
: "${TERNCTL:?set by meson}"
command -v python3 >/dev/null || skip "python3 not installed"

MiB=$((1024 * 1024))
BAD_OFF=$((5 * MiB)) BAD_LEN=$((64 * 1024))
init_state "$T/state"
head -c $((16 * MiB)) /dev/urandom >"$T/a.img"
make_mixed_image "$T/b.img" 16
start_receiver "$T/state" --target a="$T/ta.img" --target b="$T/tb.img"
for i in $(seq 1 50); do [ -s "$T/state/api.addr" ] && break; sleep 0.1; done
# jget EXPR: a Python expression over ternctl status --json (bound to s), disk by id in d().
jget() {
	"$TERNCTL" --state-dir "$T/state" status --json | python3 -c "import json,sys
s = json.load(sys.stdin)
def d(i): return [x for a in s['agents'] for x in a['disks'] if x['id'] == i][0]
print($1)"
}
agent() { # agent ARGS...: returns the agent's exit code; output in $T/agent.log
	local rc=0
	"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$T/state/agent-bundle.pem" \
		--name src1 --no-progress --disk a="$T/a.img" --disk b="$T/b.img" "$@" \
		>"$T/agent.log" 2>&1 || rc=$?
	return $rc
}

# 1. --once: b copied and verified, a named, exit 1.
export TERN_FAULT_EIO="a:$BAD_OFF+$BAD_LEN"
rc=0; agent --once || rc=$?
[ $rc -eq 1 ] || { cat "$T/agent.log"; fail "--once with an unreadable disk exited $rc, not 1"; }
grep -q "b: epoch 0 durable and verified" "$T/agent.log" || { cat "$T/agent.log"; fail "b was not copied"; }
[ "$(sha "$T/b.img")" = "$(sha_disk "$T/tb.img")" ] || fail "b's target differs from its source"
grep -q "error: a: not copied: reading $T/a.img at byte $BAD_OFF failed: Input/output error" \
	"$T/agent.log" || { cat "$T/agent.log"; fail "the exit does not name disk a and why"; }
[ "$(jget "d('a')['state']")" = error ] || fail "ternctl does not show a as error: $(jget "d('a')")"
jget "d('a')['last_error']" | grep -q "at byte $BAD_OFF failed: Input/output error" ||
	fail "ternctl does not say why a failed: $(jget "d('a')['last_error']")"
[ "$(jget "d('b')['verified_epoch']")" = 0 ] || fail "b not verified in ternctl"

# 2. --skip-unreadable: everything but the bad range copied; zeros there; exit 3.
rc=0; agent --once --skip-unreadable || rc=$?
[ $rc -eq 3 ] || { cat "$T/agent.log"; fail "--skip-unreadable exited $rc, not 3"; }
grep -q "a: epoch [0-9]* durable on the receiver.*NOT a verified copy: 1 unreadable chunk" \
	"$T/agent.log" || { cat "$T/agent.log"; fail "a was called verified, or not copied"; }
grep -q "a: .*unreadable bytes: $BAD_OFF-$((BAD_OFF + BAD_LEN))" "$T/agent.log" ||
	{ cat "$T/agent.log"; fail "the unreadable range is not listed"; }
if grep -q "a: epoch [0-9]* durable and verified" "$T/agent.log"; then fail "a called verified"; fi
cp "$T/a.img" "$T/want.img"
dd if=/dev/zero of="$T/want.img" bs=64K seek=$((BAD_OFF / 65536)) count=1 conv=notrunc status=none
[ "$(sha "$T/want.img")" = "$(sha_disk "$T/ta.img")" ] ||
	fail "a's target is not its source with the unreadable range zero-filled"
[ "$(jget "d('a')['state']")" = error ] || fail "a with unreadable ranges not shown as error"
jget "d('a')['last_error']" | grep -q "zero-filled on the target, not a verified copy" ||
	fail "ternctl does not say a is not a verified copy: $(jget "d('a')['last_error']")"

# 3. Continuous: a fails while the flag file exists; b goes on; a is copied once it reads.
touch "$T/bad.flag"
export TERN_FAULT_EIO="a:$BAD_OFF+$BAD_LEN:$T/bad.flag"
"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$T/state/agent-bundle.pem" \
	--name src1 --no-progress --disk a="$T/a.img" --disk b="$T/b.img" --tracker scan \
	--interval 1 >"$T/agent.log" 2>&1 &
AGENT_PID=$!
wait_log "$T/agent.log" "a: .*failed: Input/output error; the other disks go on, and this one is tried again in 2 s" ||
	{ cat "$T/agent.log"; fail "a's fault was not retried with backoff"; }
# b's epochs go on meanwhile, and are verified.
B0=$(grep -c "b: epoch [0-9]* durable and verified" "$T/agent.log" || true)
for i in $(seq 1 100); do
	[ "$(grep -c "b: epoch [0-9]* durable and verified" "$T/agent.log")" -ge $((B0 + 2)) ] && break
	sleep 0.1
done
[ "$(grep -c "b: epoch [0-9]* durable and verified" "$T/agent.log")" -ge $((B0 + 2)) ] ||
	{ cat "$T/agent.log"; fail "b stopped while a was faulty"; }
[ "$(jget "d('a')['state']")" = error ] || fail "a not shown as error while faulty"
kill -0 "$AGENT_PID" || fail "the agent exited over one disk's fault"
rm "$T/bad.flag"
wait_log "$T/agent.log" "a: the source reads again" || sleep 10
grep -q "a: the source reads again" "$T/agent.log" || { cat "$T/agent.log"; fail "a was not retried"; }
for i in $(seq 1 100); do
	[ "$(jget "d('a')['state']")" = in-sync ] && break
	sleep 0.1
done
[ "$(sha "$T/a.img")" = "$(sha_disk "$T/ta.img")" ] || fail "a's target differs once it read again"
[ "$(jget "d('a')['state']")" = in-sync ] || fail "a not in-sync after its retry: $(jget "d('a')")"
kill -TERM "$AGENT_PID"
rc=0; wait "$AGENT_PID" || rc=$?
AGENT_PID=
[ $rc -eq 0 ] || { cat "$T/agent.log"; fail "the agent exited $rc after a recovered"; }
pass "one unreadable disk: the other copied (exit 1 naming it), skip-unreadable zero-filled and listed (exit 3), retried with backoff and copied once readable"

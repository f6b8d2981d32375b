# SPDX-License-Identifier: GPL-2.0-only
# Helpers for the guest tests (busybox sh): exit 0 pass, 1 fail, 77 skip.
AGENT_PID=
on_exit() {
	rc=$?
	[ -n "$AGENT_PID" ] && kill -9 "$AGENT_PID" 2>/dev/null
	exit $rc
}
trap on_exit EXIT
fail() {
	echo "guest: FAIL: $*"
	for f in /tmp/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 15 "$f"; }; done
	exit 1
}
skip() { echo "guest: SKIP: $*"; exit 77; }
pass() { echo "guest: PASS: $*"; }
# wait_for FILE PATTERN [COUNT] [SECONDS]: until PATTERN is in FILE COUNT times.
# A FILE not there yet counts as none (a background job creates its log only once it
# runs); the counter has its own name, as busybox sh has no local scope for callers' n.
wait_for() {
	_wf_n=0
	while :; do
		_wf_c=$(grep -c -- "$2" "$1" 2>/dev/null) || true
		[ "${_wf_c:-0}" -lt "${3:-1}" ] || break
		_wf_n=$((_wf_n + 1))
		[ $_wf_n -le $((${4:-300} * 5)) ] || fail "timed out waiting for '$2' in $1"
		sleep 0.2
	done
}
# wait_exit PID SECONDS LOG: waits for PID; true when it exited 0 in time.
wait_exit() {
	_we_n=0
	while kill -0 "$1" 2>/dev/null; do
		_we_n=$((_we_n + 1))
		[ $_we_n -le $(($2 * 5)) ] || { kill -9 "$1"; echo "guest: $1 still running"; return 1; }
		sleep 0.2
	done
	wait "$1"
}

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The command-line contract: --help and --version answer, bad input gets a one-line error
# and exit status 2, and init is idempotent with 0600 files.
. "$(dirname "$0")/lib.sh"

# Not grep -q: quitting at the match would kill the agent, still writing a help longer
# than stdio's 4 KiB buffer, with SIGPIPE, and pipefail would call that a failure.
"$TERN_AGENT" --help | grep -- "--receiver" >/dev/null || fail "agent --help"
"$TERN_RECEIVER" --help | grep -q -- "--state-dir" || fail "receiver --help"
"$TERN_AGENT" --version | grep -q "tern-agent" || fail "agent --version"
"$TERN_RECEIVER" --version | grep -q "tern-receiver" || fail "receiver --version"

expect_usage_error() {
	local rc=0 out
	out=$("$@" 2>&1) || rc=$?
	[ $rc -eq 2 ] || fail "'$*' exited $rc, expected 2"
	[ "$(printf '%s\n' "$out" | grep -c 'error')" -ge 1 ] || fail "'$*' gave no error line"
}
expect_usage_error "$TERN_AGENT" frobnicate
expect_usage_error "$TERN_AGENT" run --receiver 127.0.0.1:1 --credentials x --disk 'a/b=/dev/null' --once
expect_usage_error "$TERN_AGENT" run --receiver 127.0.0.1:1 --credentials x --disk d=/x --chunk-size 3000 --once
expect_usage_error "$TERN_AGENT" run --receiver 127.0.0.1:1 --credentials x --disk d=/x --level 99 --once
expect_usage_error "$TERN_AGENT" run --credentials x --disk d=/x --once
expect_usage_error "$TERN_AGENT" run --receiver 127.0.0.1:1 --credentials x --disk d=/x --ioprio rt --once
# Without --disk, run picks disks itself (tests/integration/auto-disks.sh).
expect_usage_error "$TERN_RECEIVER" serve --state-dir "$T/s" --listen 127.0.0.1:0
expect_usage_error "$TERN_RECEIVER" serve --state-dir "$T/s" --listen 127.0.0.1:0 --target x=/a --target x=/b

"$TERN_RECEIVER" init --state-dir "$T/s" | grep -q initialised || fail "init output"
for f in ca.pem ca.key receiver.pem receiver.key agent-bundle.pem; do
	[ "$(stat -c %a "$T/s/$f")" = 600 ] || fail "$f is not 0600"
done
sum1=$(cat "$T/s"/* | sha256sum)
"$TERN_RECEIVER" init --state-dir "$T/s" | grep -q "already initialised" || fail "init not idempotent"
[ "$(cat "$T/s"/* | sha256sum)" = "$sum1" ] || fail "second init changed files"

# Serving without credentials, or with an unparseable address: one line, exit 1.
rc=0; "$TERN_RECEIVER" serve --state-dir "$T/none" --listen 127.0.0.1:0 --target a=/x 2>"$T/err" || rc=$?
[ $rc -eq 1 ] && [ "$(wc -l <"$T/err")" -eq 1 ] || { cat "$T/err"; fail "serve without init"; }
rc=0; "$TERN_RECEIVER" serve --state-dir "$T/s" --listen nonsense --target a=/x 2>"$T/err" || rc=$?
[ $rc -eq 1 ] && [ "$(wc -l <"$T/err")" -eq 1 ] || { cat "$T/err"; fail "bad listen address"; }
# An agent with a missing source fails before connecting, one line.
rc=0; "$TERN_AGENT" run --receiver 127.0.0.1:1 --credentials "$T/s/agent-bundle.pem" \
	--disk d="$T/missing.img" --once 2>"$T/err" || rc=$?
[ $rc -eq 1 ] && grep -q "cannot open source" "$T/err" || { cat "$T/err"; fail "missing source"; }
# Nothing listening: a clear connection error, one line.
truncate -s 1M "$T/one.img"
rc=0; "$TERN_AGENT" run --receiver 127.0.0.1:1 --credentials "$T/s/agent-bundle.pem" \
	--disk d="$T/one.img" --once 2>"$T/err" || rc=$?
[ $rc -eq 1 ] && grep -q "cannot connect to receiver 127.0.0.1:1" "$T/err" &&
	[ "$(wc -l <"$T/err")" -eq 1 ] || { cat "$T/err"; fail "agent against nothing"; }
# A character device is not a disk.
rc=0; "$TERN_AGENT" run --receiver 127.0.0.1:1 --credentials "$T/s/agent-bundle.pem" \
	--disk d=/dev/null --once 2>"$T/err" || rc=$?
[ $rc -eq 1 ] && grep -q "neither a block device nor a regular file" "$T/err" ||
	{ cat "$T/err"; fail "a character device accepted as a source"; }
pass "command-line contract"

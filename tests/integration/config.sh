#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Config files: an agent.conf drives a real `run --once` copy, command-line flags override
# its values (a --disk replaces every disk line), a receiver.conf supplies targets, and a
# bad file is one error line naming file:line, exit 2, with nothing started. Under journald
# (JOURNAL_STREAM naming our stderr) lines carry syslog priorities instead.
. "$(dirname "$0")/lib.sh"

init_state "$T/state"
make_mixed_image "$T/src1.img" 6
make_mixed_image "$T/src2.img" 3

# The receiver's targets come from its file; the file's listen address is overridden by
# start_receiver's --listen (it would not parse), and its log level shows it was read.
cat >"$T/receiver.conf" <<EOF
# receiver.conf for the test
state-dir = $T/elsewhere
listen = not-an-address
target = d1=$T/t1.img
target = d2=$T/t2.img
log-level = debug
EOF
start_receiver "$T/state" --config "$T/receiver.conf"
grep -q "debug:" "$T/receiver.log" || { cat "$T/receiver.log"; fail "receiver.conf's log-level not applied"; }
[ ! -e "$T/elsewhere" ] || fail "the file's state-dir won over --state-dir"

# What `tern-agent join` writes, plus disks and flags.
cat >"$T/agent.conf" <<EOF
receiver = 127.0.0.1:$PORT
credentials = $T/state/agent-bundle.pem

# two disks; a command-line --disk replaces both
disk = d1=$T/src1.img
disk = d2=$T/src2.img
once = true
no-progress = yes
name = cfg-agent
EOF
rc=0; "$TERN_AGENT" run --config "$T/agent.conf" >"$T/agent.log" 2>&1 || rc=$?
[ $rc -eq 0 ] || { cat "$T/agent.log"; fail "run --config exited $rc"; }
[ "$(sha "$T/src1.img")" = "$(sha "$T/t1.img")" ] || fail "d1 differs after a config-driven copy"
[ "$(sha "$T/src2.img")" = "$(sha "$T/t2.img")" ] || fail "d2 differs after a config-driven copy"

# Flags win: the file's receiver points nowhere, --receiver fixes it; --disk d2 replaces
# both disk lines, so d1's target is not touched.
sed -i "s/^receiver = .*/receiver = 127.0.0.1:1/" "$T/agent.conf"
rm -f "$T/t1.img" "$T/t2.img"
rc=0; "$TERN_AGENT" run --config "$T/agent.conf" --receiver "127.0.0.1:$PORT" \
	--disk d2="$T/src2.img" >"$T/agent.log" 2>&1 || rc=$?
[ $rc -eq 0 ] || { cat "$T/agent.log"; fail "flags over the file exited $rc"; }
[ "$(sha "$T/src2.img")" = "$(sha "$T/t2.img")" ] || fail "d2 differs after the override run"
[ ! -e "$T/t1.img" ] || fail "a file disk line was used although --disk was given"

# Bad files: exit 2, one line naming file:line, nothing started (no connection is made:
# the receiver's target stays absent).
expect_conf_error() { # pattern, then the file's lines
	local want=$1 rc=0; shift
	printf '%s\n' "$@" >"$T/bad.conf"
	"$TERN_AGENT" run --config "$T/bad.conf" --receiver "127.0.0.1:$PORT" \
		--credentials "$T/state/agent-bundle.pem" --disk d1="$T/src1.img" --once \
		>"$T/out" 2>"$T/err" || rc=$?
	[ $rc -eq 2 ] || { cat "$T/err"; fail "bad config ($want) exited $rc, expected 2"; }
	[ "$(wc -l <"$T/err")" -eq 1 ] || { cat "$T/err"; fail "bad config ($want): not one line"; }
	grep -q -- "$want" "$T/err" || { cat "$T/err"; fail "bad config: expected '$want'"; }
	[ ! -e "$T/t1.img" ] || fail "bad config ($want): the agent replicated anyway"
}
expect_conf_error "bad.conf:2: unknown key 'recevier'" "# ok" "recevier = 10.0.0.5:7480"
expect_conf_error "bad.conf:1: expected 'key = value'" "once"
expect_conf_error "bad.conf:3: once = sometimes: expected true or false" "" "" "once = sometimes"
expect_conf_error "bad.conf:1: line longer than 4095" "pre-cutover = $(head -c 5000 /dev/zero | tr '\0' x)"
expect_conf_error "bad.conf:2: 'name' given twice (first on line 1)" "name = a" "name = b"
# A value the option's own parser refuses names the line too.
expect_conf_error "bad.conf:2: --interval 0: seconds from 1 to 86400" "name = a" "interval = 0"
rc=0; "$TERN_AGENT" run --config "$T/missing.conf" 2>"$T/err" || rc=$?
[ $rc -eq 2 ] && grep -q "cannot read config $T/missing.conf" "$T/err" || { cat "$T/err"; fail "missing --config"; }
printf 'once = true\n' >"$T/open.conf"
chmod 0666 "$T/open.conf"
rc=0; "$TERN_AGENT" run --config "$T/open.conf" 2>"$T/err" || rc=$?
[ $rc -eq 2 ] && grep -q "writable by group or others" "$T/err" || { cat "$T/err"; fail "world-writable config"; }
# The receiver's init takes no config; serve refuses a bad one before listening.
rc=0; "$TERN_RECEIVER" init --state-dir "$T/s2" --config "$T/receiver.conf" 2>"$T/err" || rc=$?
[ $rc -eq 2 ] && [ ! -e "$T/s2" ] || { cat "$T/err"; fail "init --config"; }
printf 'targte = x=/y\n' >"$T/rbad.conf"
rc=0; "$TERN_RECEIVER" serve --config "$T/rbad.conf" 2>"$T/err" || rc=$?
[ $rc -eq 2 ] && grep -q "rbad.conf:1: unknown key 'targte'" "$T/err" || { cat "$T/err"; fail "receiver bad config"; }

# journald: with JOURNAL_STREAM naming stderr, "<3>" and no program name; with another
# stream's numbers, the plain format.
: >"$T/journal"
rc=0; JOURNAL_STREAM=$(stat -c %d:%i "$T/journal") "$TERN_AGENT" run --config "$T/bad.conf" \
	2>>"$T/journal" || rc=$?
grep -q "^<3>$T/bad.conf:2: --interval 0" "$T/journal" || { cat "$T/journal"; fail "no <3> prefix under journald"; }
rc=0; JOURNAL_STREAM=$(stat -c %d:%i "$T/agent.conf") "$TERN_AGENT" run --config "$T/bad.conf" \
	2>"$T/err" || rc=$?
grep -q "^tern-agent: error: " "$T/err" || { cat "$T/err"; fail "priority prefix for a stream that is not stderr"; }
pass "config files drive runs, flags override them, bad lines are refused by file:line"

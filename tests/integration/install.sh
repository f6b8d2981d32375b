#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# scripts/install into a staging directory: binaries, units pointing at them, /etc/tern
# 0700 with example configs that parse and are never replaced, bad arguments refused
# before anything is written, and units that `systemd-analyze verify` accepts.
. "$(dirname "$0")/lib.sh"

src=$(cd "$(dirname "$0")/../.." && pwd)
build=$(dirname "$(dirname "$TERN_AGENT")")
D="$T/dest"
mode() { stat -c %a "$1"; }

"$src/scripts/install" --builddir "$build" --destdir "$D" >"$T/install.log" ||
	{ cat "$T/install.log"; fail "install into a destdir failed"; }
for b in agent/tern-agent receiver/tern-receiver ternctl/ternctl; do
	[ "$(mode "$D/usr/local/bin/${b#*/}")" = 755 ] || fail "$b not installed 0755"
	cmp -s "$D/usr/local/bin/${b#*/}" "$build/$b" || fail "$b differs from the build's"
done
"$D/usr/local/bin/tern-agent" --version | grep -q tern-agent || fail "installed agent does not run"
U="$D/usr/local/lib/systemd/system"
for u in tern-agent tern-receiver; do
	[ "$(mode "$U/$u.service")" = 644 ] || fail "$u.service not 0644"
	grep -q "^ExecStart=/usr/local/bin/$u .*--config /etc/tern/${u#tern-}.conf\$" "$U/$u.service" ||
		fail "$u.service: ExecStart"
done
[ "$(mode "$U/tern-track.service")" = 644 ] || fail "tern-track.service not 0644"
grep -q "^ExecStart=/usr/local/bin/tern-agent track --start --config /etc/tern/agent.conf\$" \
	"$U/tern-track.service" || fail "tern-track.service: ExecStart"
H="$D/usr/lib/systemd/system-shutdown/tern-track"
[ "$(mode "$H")" = 755 ] || fail "the shutdown hook is not installed 0755"
grep -q "^exec /usr/local/bin/tern-agent track --seal " "$H" || fail "the shutdown hook's command"
sh -n "$H" || fail "the shutdown hook does not parse"
[ "$(mode "$D/etc/tern")" = 700 ] || fail "/etc/tern not 0700"
for c in agent.conf receiver.conf; do
	[ "$(mode "$D/etc/tern/$c")" = 600 ] || fail "$c not 0600"
done
# The examples parse: what is missing is an option, not a good line.
rc=0; "$TERN_AGENT" run --config "$D/etc/tern/agent.conf" 2>"$T/err" || rc=$?
[ $rc -eq 2 ] && grep -q "run needs --receiver" "$T/err" || { cat "$T/err"; fail "example agent.conf"; }
rc=0; "$TERN_RECEIVER" serve --config "$D/etc/tern/receiver.conf" 2>"$T/err" || rc=$?
[ $rc -eq 2 ] && grep -q "serve needs --listen" "$T/err" || { cat "$T/err"; fail "example receiver.conf"; }

# A second install keeps an operator's configs, replaces binaries and units.
echo "receiver = 10.0.0.5:7480" >>"$D/etc/tern/agent.conf"
sum=$(sha "$D/etc/tern/agent.conf")
chmod 0750 "$D/etc/tern"
"$src/scripts/install" --builddir "$build" --destdir "$D" >"$T/install.log" || fail "second install"
[ "$(sha "$D/etc/tern/agent.conf")" = "$sum" ] || fail "install replaced an existing agent.conf"
grep -q "kept $D/etc/tern/agent.conf" "$T/install.log" || fail "install did not say it kept agent.conf"
[ "$(mode "$D/etc/tern")" = 750 ] || fail "install changed an existing /etc/tern's mode"

# Another prefix: the units follow the binaries.
"$src/scripts/install" --builddir "$build" --destdir "$T/usr" --prefix /usr >/dev/null || fail "--prefix /usr"
grep -q "^ExecStart=/usr/bin/tern-agent " "$T/usr/usr/lib/systemd/system/tern-agent.service" ||
	fail "--prefix /usr: ExecStart"
grep -q "^exec /usr/bin/tern-agent " "$T/usr/usr/lib/systemd/system-shutdown/tern-track" ||
	fail "--prefix /usr: the shutdown hook"

# Bad arguments: exit 2, one line, nothing written.
for args in "--bogus" "--prefix relative/dir" "--prefix /a|b" "--builddir $T/nowhere" "--destdir"; do
	rc=0
	# shellcheck disable=SC2086
	"$src/scripts/install" $args --destdir "$T/bad" >"$T/out" 2>"$T/err" || rc=$?
	[ "$args" = "--destdir" ] && { rc=0; "$src/scripts/install" --destdir >"$T/out" 2>"$T/err" || rc=$?; }
	[ $rc -eq 2 ] || { cat "$T/err"; fail "install $args exited $rc, expected 2"; }
	grep -q "^install: " "$T/err" || { cat "$T/err"; fail "install $args: no error line"; }
	[ ! -e "$T/bad/usr" ] && [ ! -e "$T/bad/etc" ] || fail "install $args wrote files"
done

command -v systemd-analyze >/dev/null || skip "systemd-analyze not installed: units not verified"
# verify checks that ExecStart's binary exists, and --root would also want a whole
# systemd tree in the destdir: verify copies that name the staged binaries instead.
mkdir "$T/verify"
for u in tern-agent tern-receiver tern-track; do
	sed "s|/usr/local/bin/|$D/usr/local/bin/|g" "$U/$u.service" >"$T/verify/$u.service"
done
systemd-analyze verify "$T/verify/tern-agent.service" "$T/verify/tern-receiver.service" \
	"$T/verify/tern-track.service" \
	>"$T/verify.log" 2>&1 || { cat "$T/verify.log"; fail "systemd-analyze verify"; }
[ ! -s "$T/verify.log" ] || { cat "$T/verify.log"; fail "systemd-analyze verify warned"; }
pass "install stages binaries, units and configs; the units verify"

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The receiver's operator API during a real replication: every endpoint answers, with
# figures that match what the agent actually sent; a bad token, bad JSON, an unknown agent
# or a wrong method is refused with a JSON error and changes nothing; /metrics parses as
# Prometheus text (a strict parser here, promtool too when installed) and says what
# /v1/status says; pause holds the stream, resume and rate reach the agent; cutover over
# the API proves the target; a non-loopback API is served only over TLS.
. "$(dirname "$0")/lib.sh"
: "${TERNCTL:?set by meson}"
for tool in curl python3; do
	command -v $tool >/dev/null || skip "$tool not installed"
done

init_state "$T/state"
make_mixed_image "$T/src.img" 48
SIZE=$(stat -c %s "$T/src.img")
start_receiver "$T/state" --target d="$T/dst.img"
for i in $(seq 1 50); do [ -s "$T/state/api.addr" ] && break; sleep 0.1; done
[ -s "$T/state/api.addr" ] || fail "no api.addr"
[ "$(stat -c %a "$T/state/api.token")" = 600 ] || fail "api.token is not 0600"
API="http://$(cat "$T/state/api.addr")"
TOKEN=$(cat "$T/state/api.token")
api() { curl -sS -H "Authorization: Bearer $TOKEN" "$@"; }
# code METHOD PATH [BODY] [TOKEN]: prints the HTTP status; the body goes to $T/body.
code() {
	curl -sS -o "$T/body" -w '%{http_code}' -X "$1" ${3:+--data "$3"} \
		-H "Authorization: Bearer ${4:-$TOKEN}" "$API$2"
}
# jget EXPR: evaluates a Python expression over the status JSON (bound to s).
jget() { api "$API/v1/status" | python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"; }
wait_for() {
	local i
	for i in $(seq 1 "${2:-300}"); do
		[ "$(jget "$1")" = True ] && return 0
		sleep 0.1
	done
	api "$API/v1/status"; echo; cat "$T/agent.log"; fail "timed out waiting for: $1"
}

# A limited rate makes the full copy last a few seconds, to look at it under way.
"$TERN_AGENT" run --receiver "127.0.0.1:$PORT" --credentials "$T/state/agent-bundle.pem" \
	--disk d="$T/src.img" --name web1 --tracker scan --interval 1 --max-rate 6M \
	--no-progress >"$T/agent.log" 2>&1 &
AGENT_PID=$!
wait_for "s['agents'] and s['agents'][0]['disks'] and 0 < s['agents'][0]['disks'][0]['bytes_copied'] < $SIZE"
[ "$(jget "s['agents'][0]['disks'][0]['state']")" = copying ] || fail "not copying during the full copy"
[ "$(jget "s['agents'][0]['disks'][0]['bytes_total']")" = "$SIZE" ] || fail "bytes_total is not the disk size"
[ "$(jget "s['agents'][0]['disks'][0]['tracker']")" = scan ] || fail "tracker not reported"
[ "$(jget "s['agents'][0]['connected'] and s['agents'][0]['name'] == 'web1'")" = True ] || fail "agent not shown"
wait_for "s['agents'][0]['disks'][0]['throughput_bps'] > 0" 50
# The agent's own limit caps what it sends: 6 MiB/s, within a generous margin.
T0=$(jget "s['agents'][0]['disks'][0]['wire_bytes_total']"); sleep 2
T1=$(jget "s['agents'][0]['disks'][0]['wire_bytes_total']")
[ $((T1 - T0)) -le $((2 * 9 * 1024 * 1024)) ] || fail "sent $((T1 - T0)) bytes in 2 s under a 6 MiB/s limit"

# Prometheus text during the copy: strict syntax, a TYPE for every family, and the same
# figures as the JSON of the same moment (counters only grow, so compare after pausing).
check_metrics() {
	local try
	# Two requests: while a copy runs, its counters may move between them. A real
	# disagreement stays; one from a moving counter is gone at the next try.
	for try in 1 2 3 4 5 6 7 8 9 10; do
		api "$API/metrics" >"$T/metrics"
		api "$API/v1/status" >"$T/status.json"
		metrics_agree 2>"$T/metrics.err" && break
		[ "$try" = 10 ] && { cat "$T/metrics.err" >&2; fail "metrics do not parse or disagree with /v1/status"; }
		sleep 0.3
	done
	if command -v promtool >/dev/null; then
		promtool check metrics <"$T/metrics" || fail "promtool refuses the metrics"
	fi
}
metrics_agree() {
	python3 - "$T/metrics" "$T/status.json" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
status = json.load(open(sys.argv[2]))
name = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
lbl = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
sample = re.compile(r'^(%s)(\{%s(?:,%s)*\})? (-?(?:[0-9]+(?:\.[0-9]*)?(?:e[+-]?[0-9]+)?|NaN|\+Inf|-Inf))$' % (name, lbl, lbl))
types, got = {}, {}
assert text.endswith('\n'), 'no final newline'
for line in text.split('\n')[:-1]:
    if line.startswith('# HELP '):
        assert re.match(r'^# HELP %s .+$' % name, line), line
    elif line.startswith('# TYPE '):
        m = re.match(r'^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$' % name, line)
        assert m, line
        assert m.group(1) not in types, 'TYPE twice: ' + line
        types[m.group(1)] = m.group(2)
    else:
        m = sample.match(line)
        assert m, 'bad sample line: ' + repr(line)
        assert m.group(1) in types, 'sample before its TYPE: ' + line
        got[m.group(1) + (m.group(2) or '')] = float(m.group(3))
for a in status['agents']:
    assert got['tern_agent_connected{agent="%s"}' % a['name']] == float(a['connected'])
    for d in a['disks']:
        key = '{agent="%s",disk="%s"}' % (a['name'], d['id'])
        assert got['tern_disk_state{agent="%s",disk="%s",state="%s"}' % (a['name'], d['id'], d['state'])] == 1
        for metric, field in (('tern_disk_size_bytes', 'size_bytes'), ('tern_disk_bytes_total', 'bytes_total'),
                              ('tern_disk_wire_bytes_total', 'wire_bytes_total'),
                              ('tern_disk_plain_bytes_total', 'plain_bytes_total')):
            assert got[metric + key] == float(d[field]), (metric, got[metric + key], d[field])
PY
}

# Refusals change nothing: no token, a wrong token, bad JSON, an unknown field, a wrong
# type, an unknown agent, a wrong method, an unknown path.
WRONG=$(printf '%064d' 0)
[ "$(curl -sS -o "$T/body" -w '%{http_code}' "$API/v1/status")" = 401 ] || fail "no token not refused"
[ "$(code POST /v1/agents/web1/pause "" "$WRONG")" = 401 ] || fail "wrong token not refused"
python3 -c "import json,sys; assert json.load(open(sys.argv[1]))['error']" "$T/body" || fail "401 without a JSON error"
[ "$(code PUT /v1/agents/web1/rate '{"bytes_per_second": 1')" = 400 ] || fail "truncated JSON not refused"
[ "$(code PUT /v1/agents/web1/rate '{"bytes_per_second": "fast"}')" = 400 ] || fail "ill-typed rate not refused"
[ "$(code PUT /v1/agents/web1/rate '{"bytes_per_second": -5}')" = 400 ] || fail "negative rate not refused"
[ "$(code PUT /v1/agents/web1/rate '{"bytes_per_second": 5, "x": 1}')" = 400 ] || fail "unknown field not refused"
[ "$(code PUT /v1/agents/web1/rate '[1]')" = 400 ] || fail "non-object body not refused"
[ "$(code POST /v1/agents/web1/cutover '{"verify": "sometimes"}')" = 400 ] || fail "bad verify not refused"
[ "$(code POST /v1/agents/nobody/pause)" = 404 ] || fail "unknown agent not refused"
[ "$(code GET /v1/agents/web1/pause)" = 405 ] || fail "GET pause not refused"
[ "$(code POST /v1/status)" = 405 ] || fail "POST status not refused"
[ "$(code GET /v1/nothing)" = 404 ] || fail "unknown path not refused"
[ "$(code GET '/v1/agents/bad%20name/pause')" = 404 ] || fail "bad agent name not refused"
[ "$(jget "s['agents'][0]['paused'] or s['agents'][0]['rate_limit_bps'] != 0")" = False ] ||
	fail "a refused request changed the agent's wishes"
grep -q "paused by the operator\|bandwidth limit set" "$T/agent.log" && fail "a refused request reached the agent"
check_metrics

# The full copy ends verified; then the wire bytes equal what the agent says it sent.
wait_for "s['agents'][0]['disks'][0]['verified_epoch'] is not None" 600
[ "$(code POST /v1/agents/web1/pause)" = 200 ] || fail "pause refused"
wait_for "s['agents'][0]['disks'][0]['state'] == 'paused' and s['agents'][0]['state'] == 'paused'" 50
grep -q "paused by the operator" "$T/agent.log" || fail "the agent did not hear of the pause"
# While paused, no epoch starts (an epoch under way at the pause may still end).
sleep 1.5
N0=$(grep -c "durable and verified" "$T/agent.log" || true); sleep 2.5
N1=$(grep -c "durable and verified" "$T/agent.log" || true)
[ "$N0" = "$N1" ] || fail "epochs went on while paused ($N0 -> $N1)"
EPOCH0=$(sed -n 's/.*on the wire (.* smaller, \([0-9]*\) bytes).*/\1/p' "$T/agent.log")
LATER=$(sed -n 's/.*epoch [1-9][0-9]*: read .* \([0-9]*\) bytes on the wire/\1/p' "$T/agent.log" |
	awk '{ s += $1 } END { print s + 0 }')
[ -n "$EPOCH0" ] || { cat "$T/agent.log"; fail "agent did not print its bytes"; }
WIRE=$(jget "s['agents'][0]['disks'][0]['wire_bytes_total']")
[ "$WIRE" = $((EPOCH0 + LATER)) ] || fail "API says $WIRE wire bytes, the agent sent $((EPOCH0 + LATER))"
PLAIN=$(jget "s['agents'][0]['disks'][0]['plain_bytes_total']")
[ "$PLAIN" -ge "$SIZE" ] || fail "plain bytes $PLAIN below the disk size"
[ "$(jget "s['agents'][0]['disks'][0]['compression_ratio'] > 1")" = True ] || fail "no compression ratio"
[ "$(jget "s['agents'][0]['disks'][0]['lag_seconds'] is not None")" = True ] || fail "no lag after a verified epoch"
check_metrics

[ "$(code PUT /v1/agents/web1/rate '{"bytes_per_second": 0}')" = 200 ] || fail "rate refused"
[ "$(code POST /v1/agents/web1/resume)" = 200 ] || fail "resume refused"
wait_for "s['agents'][0]['disks'][0]['state'] == 'in-sync'" 100
grep -q "resumed by the operator" "$T/agent.log" || fail "the agent did not hear of the resume"
# Nothing writes to the source yet: after two more epochs the churn measured is nil (the
# full copy's bytes are not churn) and the forecast converges.
V=$(jget "s['agents'][0]['disks'][0]['verified_epoch']")
wait_for "s['agents'][0]['disks'][0]['verified_epoch'] >= $V + 2" 100
[ "$(jget "s['agents'][0]['disks'][0]['churn_bps'] == 0 and s['agents'][0]['disks'][0]['forecast']['converges'] is True")" = True ] ||
	{ api "$API/v1/status"; fail "churn measured on an idle source"; }
# Churn it cannot keep up with, under a tight limit, is forecast not to converge.
[ "$(code PUT /v1/agents/web1/rate '{"bytes_per_second": 262144}')" = 200 ] || fail "rate refused"
grep -q "rate_limit_bps\":262144" "$T/body" || fail "rate answer does not say the limit"
for i in $(seq 1 30); do
	dd if=/dev/urandom of="$T/src.img" bs=64K count=8 seek=$((i * 9)) conv=notrunc status=none
	sleep 0.2
	[ "$(jget "s['agents'][0]['disks'][0]['forecast']['converges'] is False")" = True ] && break
done
[ "$(jget "s['agents'][0]['disks'][0]['forecast']['converges'] is False and 'will not converge' in s['agents'][0]['disks'][0]['forecast']['warning']")" = True ] ||
	{ api "$API/v1/status"; fail "no warning for churn above the limit"; }
grep -q "bandwidth limit set by the operator: 256.00 KiB/s" "$T/agent.log" || fail "the agent did not hear of the limit"
# Debt run up under a tiny limit is not owed once the limit is lifted.
[ "$(code PUT /v1/agents/web1/rate '{"bytes_per_second": 1024}')" = 200 ] || fail "rate refused"
dd if=/dev/urandom of="$T/src.img" bs=64K count=8 seek=3 conv=notrunc status=none
sleep 2
[ "$(code PUT /v1/agents/web1/rate '{"bytes_per_second": 0}')" = 200 ] || fail "rate refused"
V=$(jget "s['agents'][0]['disks'][0]['verified_epoch']")
wait_for "s['agents'][0]['disks'][0]['verified_epoch'] >= $V + 2" 150
[ "$(code PUT /v1/agents/web1/rate '{"bytes_per_second": 1125899906842625}')" = 400 ] ||
	fail "a rate over 2^50 was taken"

# Cutover over the API.
[ "$(code POST /v1/agents/web1/cutover '{"verify": "full", "timeout_seconds": 120}')" = 200 ] ||
	{ cat "$T/body"; fail "cutover refused"; }
grep -q "verify full: match" "$T/body" || fail "cutover answer carries no proof"
wait $AGENT_PID || { cat "$T/agent.log"; fail "agent exited non-zero after the cutover"; }
AGENT_PID=
[ "$(sha "$T/src.img")" = "$(sha "$T/dst.img")" ] || fail "SHA-256 differs after the cutover"
[ "$(jget "s['agents'][0]['state'] == 'cut-over' and s['agents'][0]['disks'][0]['state'] == 'cut-over'")" = True ] ||
	fail "status does not show the cutover"
# A cutover refused (the agent is gone) changes nothing: the pause stays.
[ "$(code POST /v1/agents/web1/pause)" = 200 ] || fail "pause of a known agent refused"
[ "$(code POST /v1/agents/web1/cutover '{"timeout_seconds": 5}')" = 404 ] ||
	{ cat "$T/body"; fail "cutover of a gone agent not refused with 404"; }
[ "$(jget "s['agents'][0]['paused']")" = True ] || fail "a refused cutover lifted the pause"
stop_receiver
[ ! -e "$T/state/api.addr" ] || fail "api.addr left behind"

# Another address than loopback: TLS only, with the receiver's certificate.
"$TERN_RECEIVER" serve --state-dir "$T/state" --listen 127.0.0.1:0 --api 0.0.0.0:0 \
	--target d="$T/dst2.img" >"$T/receiver.log" 2>&1 &
RECEIVER_PID=$!
for i in $(seq 1 50); do [ -s "$T/state/api.addr" ] && break; sleep 0.1; done
grep -q '^https://' "$T/state/api.addr" || fail "a non-loopback API is not TLS"
ADDR=$(cat "$T/state/api.addr"); APORT=${ADDR##*:}
HC=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
	"http://127.0.0.1:$APORT/v1/status" || true)
[ "$HC" != 200 ] || fail "the non-loopback API answered plain HTTP"
# The certificate names the receiver (CN tern-receiver), verified against the state's CA.
curl -sS --cacert "$T/state/ca.pem" --resolve "tern-receiver:$APORT:127.0.0.1" \
	-H "Authorization: Bearer $TOKEN" "https://tern-receiver:$APORT/v1/status" >"$T/tls.json" ||
	fail "the TLS API did not answer"
# A restarted receiver shows what its records say before any agent comes back.
python3 -c "
import json, sys
a = json.load(open(sys.argv[1]))['agents']
assert len(a) == 1 and a[0]['name'] == 'web1' and a[0]['state'] == 'cut-over', a
assert a[0]['disks'][0]['id'] == 'd' and a[0]['disks'][0]['state'] == 'cut-over', a
" "$T/tls.json" || { cat "$T/tls.json"; fail "the TLS API answered wrongly after a restart"; }
# ternctl finds the TLS API in api.addr and verifies the receiver against the state's CA.
"$TERNCTL" --state-dir "$T/state" status --json >"$T/ctl-tls.json" 2>"$T/ctl-tls.err" ||
	{ cat "$T/ctl-tls.err"; fail "ternctl cannot use the TLS API"; }
python3 -c "import json,sys; assert json.load(open(sys.argv[1]))['agents'][0]['state'] == 'cut-over'" \
	"$T/ctl-tls.json" || fail "ternctl over TLS answered wrongly"
pass "API figures match the bytes sent; refusals change nothing; metrics parse; TLS off loopback"

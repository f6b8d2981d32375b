#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# `tern-agent run` without --disk replicates exactly the disks that qualify, each named by
# its stable id made a valid DISK_ID. The scan is shown only this test's devices
# (TERN_DISKS_ROOT: a sysfs block directory and a by-id directory of our own): two loop
# disks with by-id links and one without any stable id. Without --include-loop none
# qualifies, which is a clear error.
. "$(dirname "$0")/lib.sh"

need_root
init_state "$T/state"
make_mixed_image "$T/a.img" 8
make_mixed_image "$T/b.img" 5
make_mixed_image "$T/c.img" 2
loop_attach LA "$T/a.img"
loop_attach LB "$T/b.img"
loop_attach LC "$T/c.img"

R="$T/root"
mkdir -p "$R/sys/block" "$R/dev/disk/by-id"
for dev in "$LA" "$LB" "$LC"; do
	name=${dev#/dev/}
	ln -s "$(readlink -f "/sys/block/$name")" "$R/sys/block/$name"
done
ln -s "$LA" "$R/dev/disk/by-id/wwn-0x5000c500tern0001"
# Characters a DISK_ID cannot hold become '_'.
ln -s "$LB" "$R/dev/disk/by-id/scsi-TERN DISK(B)"
export TERN_DISKS_ROOT="$R"

"$TERN_AGENT" disks --json >"$T/disks.json" || fail "disks --json"
python3 - "$T/disks.json" "${LA#/dev/}" "${LB#/dev/}" "${LC#/dev/}" <<'EOF' || fail "disks --json ids"
import json, sys
d = {x["name"]: x for x in json.load(open(sys.argv[1]))["disks"]}
a, b, c = sys.argv[2:]
assert sorted(d) == sorted([a, b, c]), sorted(d)
assert d[a]["disk_id"] == "wwn-0x5000c500tern0001", d[a]
assert d[b]["stable_id"] == "scsi-TERN DISK(B)" and d[b]["disk_id"] == "scsi-TERN_DISK_B_", d[b]
assert d[c]["disk_id"] is None and d[c]["stable_id_source"] == "none", d[c]
assert all(not x["auto"] and x["skip_reason"] == "loop device" for x in d.values())
EOF

start_receiver "$T/state" --target wwn-0x5000c500tern0001="$T/ta.img" \
	--target scsi-TERN_DISK_B_="$T/tb.img"
creds=(--credentials "$T/state/agent-bundle.pem")

# Loop devices are not disks to replicate unless asked for.
rc=0; run_agent "${creds[@]}" || rc=$?
[ $rc -eq 1 ] && grep -q "no disk qualifies for automatic selection" "$T/agent.log" ||
	{ cat "$T/agent.log"; fail "no qualifying disk: expected a clear error, got $rc"; }
[ ! -e "$T/ta.img" ] || fail "a target was written although nothing qualified"

run_agent "${creds[@]}" --include-loop || { cat "$T/agent.log"; fail "run --include-loop failed"; }
[ "$(sha "$T/ta.img")" = "$(sha "$LA")" ] || fail "disk A's target differs from its source"
[ "$(sha "$T/tb.img")" = "$(sha "$LB")" ] || fail "disk B's target differs from its source"
[ "$(sha "$LA")" = "$(sha "$T/a.img")" ] || fail "loop A does not show its image"
grep -q "replicating $LA .* as disk wwn-0x5000c500tern0001 from $R/dev/disk/by-id/wwn-0x5000c500tern0001" \
	"$T/agent.log" || { cat "$T/agent.log"; fail "choice of A not logged"; }
grep -q "not replicating $LC: no stable id" "$T/agent.log" ||
	{ cat "$T/agent.log"; fail "skip of C not logged"; }
[ "$(ls "$T/state/disks" | grep -c '\.state$')" -eq 2 ] || { ls "$T/state/disks"; fail "not exactly two disks"; }
pass "run without --disk copied exactly the qualifying disks by stable id"

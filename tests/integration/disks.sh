#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# `tern-agent disks`: a GPT loop disk with an ext4 partition (labelled, mounted) and an empty
# one is reported as lsblk and blkid see it, and is never picked automatically. lsblk takes
# filesystem and table types from udev's database, which a host without udev lacks, so those
# are checked against blkid's low-level probe and against lsblk only where it has them.
. "$(dirname "$0")/lib.sh"

# Not grep -q: quitting at the match would kill the agent, still writing a help longer
# than stdio's 4 KiB buffer, with SIGPIPE, and pipefail would call that a failure.
"$TERN_AGENT" disks --help | grep -- "disks \[--json\]" >/dev/null || fail "agent disks --help"
rc=0; "$TERN_AGENT" disks --bogus >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "disks with a bad option exited $rc, expected 2"

need_root
for tool in sfdisk partx mkfs.ext4 lsblk blkid python3 mount; do
	command -v "$tool" >/dev/null || skip "$tool not installed"
done

truncate -s 64M "$T/disk.img"
printf 'label: gpt\nsize=24MiB, type=linux\ntype=linux\n' | sfdisk -q "$T/disk.img" >/dev/null ||
	fail "sfdisk"
loop_attach_parts LOOP "$T/disk.img"
for i in $(seq 1 50); do
	[ -b "${LOOP}p1" ] && [ -b "${LOOP}p2" ] && break
	sleep 0.1
done
[ -b "${LOOP}p1" ] || fail "${LOOP}p1 did not appear after partx -a"
mkfs.ext4 -q -F -L ternlbl "${LOOP}p1" || fail "mkfs.ext4"
mkdir "$T/mnt"
mount -o ro "${LOOP}p1" "$T/mnt" || fail "mount ${LOOP}p1"
MOUNTS+=("$T/mnt")

"$TERN_AGENT" disks --json >"$T/disks.json" 2>"$T/disks.err" ||
	{ cat "$T/disks.err"; fail "disks --json exited non-zero"; }
lsblk --json -b -o NAME,SIZE,TYPE,PTTYPE,FSTYPE,UUID,LABEL,MOUNTPOINT,LOG-SEC,PHY-SEC,RM,RO,ROTA \
	"$LOOP" >"$T/lsblk.json" || fail "lsblk"
blkid -p -o export "$LOOP" >"$T/blkid-disk.txt" || fail "blkid -p $LOOP"
blkid -p -o export "${LOOP}p1" >"$T/blkid.txt" || fail "blkid -p ${LOOP}p1"

python3 - "$LOOP" "$T/disks.json" "$T/lsblk.json" "$T/blkid-disk.txt" "$T/blkid.txt" "$T/mnt" <<'EOF' ||
import json, os, sys

loop, ours_f, lsblk_f, blkid_disk_f, blkid_f, mnt = sys.argv[1:]
name = os.path.basename(loop)
errors = []

def check(what, got, want):
    if got != want:
        errors.append(f"{what}: got {got!r}, want {want!r}")

def check_lsblk(what, got, want):
    # lsblk has no value without udev's database; when it has one, it must agree.
    if want is not None:
        check(what + " vs lsblk", got, want)

def flag(v):
    # lsblk prints booleans in newer versions, "0"/"1" in older ones.
    return v if isinstance(v, bool) else str(v) == "1"

ours = json.load(open(ours_f))
found = [d for d in ours["disks"] if d["name"] == name]
if len(found) != 1:
    sys.exit(f"FAIL: {name} listed {len(found)} times by tern-agent disks")
d = found[0]
ref = json.load(open(lsblk_f))["blockdevices"][0]
def export(path):
    return dict(l.strip().split("=", 1) for l in open(path) if "=" in l)
blk_disk = export(blkid_disk_f)
blk = export(blkid_f)

check("path", d["path"], loop)
check("type", d["type"], "disk")
check("size", d["size"], int(ref["size"]))
check("size vs image", d["size"], 64 << 20)
check("pttype", d["pttype"], "gpt")
check("pttype vs blkid", d["pttype"], blk_disk.get("PTTYPE"))
check_lsblk("pttype", d["pttype"], ref["pttype"])
check("logical sector", d["logical_sector_size"], int(ref["log-sec"]))
check("physical sector", d["physical_sector_size"], int(ref["phy-sec"]))
check("removable", d["removable"], flag(ref["rm"]))
check("read_only", d["read_only"], flag(ref["ro"]))
check("rotational", d["rotational"], flag(ref["rota"]))
check("auto", d["auto"], False)
check("skip_reason", d["skip_reason"], "loop device")
check("device_mapper", d["device_mapper"], False)
check("lvm", d["lvm"], False)
if d["stable_id_source"] not in ("by-id", "serial", "wwid", "none"):
    errors.append(f"stable_id_source {d['stable_id_source']!r}")
check("stable_id null iff none", d["stable_id"] is None, d["stable_id_source"] == "none")
check("probe_error", d["probe_error"], None)

parts = d["partitions"]
kids = ref.get("children", [])
check("partition names", [p["name"] for p in parts], [k["name"] for k in kids])
check("partition count", len(parts), 2)
check("partition sizes", [p["size"] for p in parts], [int(k["size"]) for k in kids])
check("partition numbers", [p["number"] for p in parts], [1, 2])
check("partition parents", {p["parent"] for p in parts}, {name})
for p in parts:
    with open(f"/sys/class/block/{p['name']}/start") as f:
        check(f"{p['name']} start", p["start"], int(f.read()) * 512)
    check(f"{p['name']} path", p["path"], "/dev/" + p["name"])

if len(parts) == 2:
    p1, p2 = parts
    check("p1 fstype", p1["fstype"], "ext4")
    check_lsblk("p1 fstype", p1["fstype"], kids[0]["fstype"])
    check("p1 fstype vs blkid", p1["fstype"], blk.get("TYPE"))
    check("p1 label", p1["label"], "ternlbl")
    check("p1 label vs blkid", p1["label"], blk.get("LABEL"))
    check_lsblk("p1 label", p1["label"], kids[0]["label"])
    check("p1 uuid vs blkid", p1["uuid"], blk.get("UUID"))
    check_lsblk("p1 uuid", p1["uuid"], kids[0]["uuid"])
    check("p1 number vs blkid", p1["number"], int(blk.get("PART_ENTRY_NUMBER", -1)))
    check("p1 start vs blkid", p1["start"], int(blk.get("PART_ENTRY_OFFSET", -1)) * 512)
    check("p1 size vs blkid", p1["size"], int(blk.get("PART_ENTRY_SIZE", -1)) * 512)
    if not p1["uuid"]:
        errors.append("p1 has no uuid")
    check("p1 mountpoints", p1["mountpoints"], [mnt])
    check("p1 mountpoint vs lsblk", p1["mountpoints"], [kids[0]["mountpoint"]])
    check("p2 fstype", p2["fstype"], None)
    check("p2 mountpoints", p2["mountpoints"], [])
    check("disk mountpoints", d["mountpoints"], [])

if errors:
    print("\n".join("FAIL: " + e for e in errors))
    sys.exit(1)
EOF
	{ cat "$T/disks.json"; cat "$T/lsblk.json"; fail "disks --json differs from lsblk/blkid"; }

# The table for people: the same facts, one line per device.
"$TERN_AGENT" disks >"$T/disks.txt" 2>"$T/disks.err" || fail "disks exited non-zero"
name=${LOOP#/dev/}
grep -E "^$name .*no: loop device\$" "$T/disks.txt" >/dev/null ||
	{ cat "$T/disks.txt"; fail "table: $name not listed as skipped loop device"; }
grep -E "^  ${name}p1 .*ext4 +ternlbl .*$T/mnt" "$T/disks.txt" >/dev/null ||
	{ cat "$T/disks.txt"; fail "table: ${name}p1 line"; }
pass "disks reports the loop disk as lsblk and blkid do"

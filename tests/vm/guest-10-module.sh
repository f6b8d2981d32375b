#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# tern.ko loads, makes /dev/tern, unloads cleanly, loads again, and marks every kind of
# write to the scratch disk /dev/vda (kmod-marks).
set -e
insmod /lib/modules/tern.ko
[ -c /dev/tern ] || { echo "guest: no /dev/tern after insmod"; exit 1; }
rmmod tern
[ ! -e /dev/tern ] || { echo "guest: /dev/tern left after rmmod"; exit 1; }
insmod /lib/modules/tern.ko
echo "guest: discard_max_bytes $(cat /sys/block/vda/queue/discard_max_bytes)," \
	"write_zeroes_max_bytes $(cat /sys/block/vda/queue/write_zeroes_max_bytes)"
kmod-marks /dev/vda
# Nothing left registered: the module unloads.
rmmod tern
insmod /lib/modules/tern.ko

# SPDX-License-Identifier: GPL-2.0-only
# Installs what tern needs to build and test from Debian's packages, only when missing.
# Sourced by scripts/test, scripts/demo and scripts/bench.

TERN_BUILD_DEPS=(meson ninja-build pkg-config gcc liburing-dev libzstd-dev libssl-dev
	libxxhash-dev libblkid-dev libjson-c-dev libmicrohttpd-dev libcurl4-openssl-dev check
	libguestfs-dev
	openssl util-linux e2fsprogs fdisk clang bpftool libbpf-dev python3 curl jq)

tern_install() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing packages: ${missing[*]}; run as root or install them" >&2
		return 1
	fi
	echo "installing: ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	# Tests running side by side may install at once: take turns (apt's own lock timeout
	# covers dpkg's lock, not every lock `apt-get update` takes), and wait, not fail.
	(
		flock -w 1200 9 || { echo "tern_install: waited 20 minutes for another install" >&2; exit 1; }
		apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
		apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	) 9>/tmp/tern-install.lock
}

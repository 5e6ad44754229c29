#!/usr/bin/env bash
# Sourced by scripts/test.sh and scripts/demo.sh: makes sure the Debian 12 packages a
# step needs are installed. As root it installs what is missing; otherwise it prints
# the exact apt-get line and stops.

VD_BUILD_PACKAGES="build-essential cmake pkg-config libevent-dev libcurl4-openssl-dev libjansson-dev libsqlite3-dev libpq-dev libcmocka-dev libncurses-dev python3 curl"
# libsystemd-dev: sd_notify (optional for a build, wanted in CI so it is built and
# tested); dpkg-dev, man-db and systemd: the package test (cpack, dpkg-shlibdeps,
# man --warnings, systemd-analyze verify); tmux: the vramctl top test reads its screen;
# postgresql: the tests start their own server (tests/pgserver.py) for the PostgreSQL store.
VD_TEST_PACKAGES="$VD_BUILD_PACKAGES clang clang-format libsystemd-dev dpkg-dev man-db systemd tmux postgresql"

vd_ensure_packages() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "Missing Debian packages. Install them with:" >&2
		echo "  sudo apt-get install -y ${missing[*]}" >&2
		exit 1
	fi
	echo "Installing missing Debian packages: ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# node and npm (for the official ollama npm client test): any installation on PATH will
# do (nodesource's nodejs bundles npm); otherwise Debian's nodejs and npm.
vd_ensure_node() {
	if command -v node >/dev/null && command -v npm >/dev/null; then
		return 0
	fi
	vd_ensure_packages nodejs npm
}

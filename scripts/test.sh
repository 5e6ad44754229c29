#!/usr/bin/env bash
# The test command: installs what it needs (as root), builds everything with
# AddressSanitizer + UndefinedBehaviorSanitizer, checks that clang also builds it
# warning-free, and runs every test (unit, fuzz replay, integration, npm client, style).
#   scripts/test.sh                 everything
#   scripts/test.sh -R scheduler    only tests whose name matches (ctest -R)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
vd_ensure_packages $VD_TEST_PACKAGES
vd_ensure_node

build=${VRAMD_TEST_BUILD_DIR:-build-test}
cmake -S . -B "$build" -DVRAMD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$build" -j"$(nproc)"

if [ "${VRAMD_SKIP_CLANG:-0}" != 1 ]; then
	echo "== clang build (warnings are errors)"
	CC=clang cmake -S . -B "$build-clang" -DCMAKE_BUILD_TYPE=Debug >/dev/null
	cmake --build "$build-clang" -j"$(nproc)" >/dev/null
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" "$@"

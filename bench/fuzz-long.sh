#!/usr/bin/env bash
# Runs every fuzz target (tests/fuzz/fuzz-*.c) for longer than the test command does:
# the corpus pass with fresh mutations, repeated for SECONDS per target, under the
# sanitizers of the test build. Not part of scripts/test.sh; run it nightly or before a
# release.
#   bench/fuzz-long.sh [SECONDS_PER_TARGET] [BUILD_DIR]     (defaults: 120, build-test)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-120}
build=${2:-build-test}
[ -d "$build/tests" ] || { echo "build $build first: scripts/test.sh builds build-test" >&2; exit 2; }
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
for src in tests/fuzz/fuzz-*.c; do
	name=$(basename "$src" .c)
	corpus=tests/fuzz/corpus/${name#fuzz-}
	printf '%-28s ' "$name"
	if out=$(FUZZ_SECONDS=$secs "$build/tests/$name" "$corpus" 2>&1); then
		echo "${out##*$'\n'}"
	else
		echo "FAILED"
		echo "$out" | tail -30
		status=1
	fi
done
exit $status

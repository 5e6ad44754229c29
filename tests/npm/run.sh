#!/usr/bin/env bash
# The official `ollama` npm client against ollama-sim: installs the pinned clients
# (ollama, openai for openai.test.mjs, playwright-core for ui.test.mjs) into
# tests/npm/node_modules when missing,
# then runs client.test.mjs (or the test file given as $1), which starts ollama-sim on a free port
# ($VRAMD_BUILD_DIR/sim/ollama-sim) and prints "N passed, N failed"; with VRAMD_FRONT=1
# the same cases run through vramd started in front of ollama-sim. Needs node >= 18 and
# npm (and the npm registry once).
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "node and npm are needed: apt-get install -y nodejs npm" >&2
	exit 1
fi
if [ ! -f node_modules/ollama/package.json ] || [ ! -f node_modules/openai/package.json ] ||
	[ ! -f node_modules/playwright-core/package.json ]; then
	npm install --no-audit --no-fund --no-package-lock --loglevel=error >&2
fi
export VRAMD_BUILD_DIR=${VRAMD_BUILD_DIR:-/work/main/build}
exec node "${1:-client.test.mjs}"

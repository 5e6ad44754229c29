#!/usr/bin/env bash
# Regenerates the key table of docs/configuration.md from src/config.c's table, as
# printed by `vramd --help-markdown` (tests/test-config.c fails when they differ).
#   scripts/update-config-doc.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-test}
table=$("$build/src/vramd" --help-markdown)
python3 - "$table" <<'PY'
import re, sys
table = sys.argv[1].strip("\n")
path = "docs/configuration.md"
doc = open(path).read()
lines = doc.split("\n")
first = next(i for i, l in enumerate(lines) if l.startswith("| Key"))
last = first
while last + 1 < len(lines) and lines[last + 1].startswith("|"):
    last += 1
lines[first:last + 1] = table.split("\n")
open(path, "w").write("\n".join(lines))
PY
echo "docs/configuration.md: table regenerated"

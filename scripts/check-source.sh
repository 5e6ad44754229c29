#!/usr/bin/env bash
# The source check (run by ctest as style/check-source): banned functions, external
# library headers outside the one module that owns each, and clang-format.
set -u
cd "$(dirname "$0")/.."
fail=0
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find src cli sim tests bench -name '*.[ch]')

banned=$(grep -nE '\b(sprintf|strcpy|strcat|gets|atoi|strtok)\s*\(' $files | grep -vE 'snprintf|vsnprintf')
if [ -n "$banned" ]; then
	echo "banned functions (use snprintf, vd_strlcpy, vd_parse_int64, strtok_r):"
	echo "$banned"
	fail=1
fi

# Each external library sits behind one module.
check_owner() { # header-regex allowed-files-regex what
	local hits
	hits=$(grep -lE "#include <$1" $(echo "$files" | grep '^src/') 2>/dev/null | grep -vE "$2")
	if [ -n "$hits" ]; then
		echo "$3 included outside its module: $hits"
		fail=1
	fi
}
check_owner 'sqlite3\.h' '^src/store/store-sqlite\.c$' 'sqlite3.h'
check_owner 'libpq-fe\.h' '^src/store/(store-pg|leader)\.c$' 'libpq-fe.h'
check_owner 'curl/' '^src/fleet/httpc\.c$' 'curl/curl.h'
check_owner 'dlfcn\.h' '^src/gpu/gpu-nvml\.c$' 'dlfcn.h (NVML loading)'
check_owner 'systemd/' '^src/service\.c$' 'systemd/sd-daemon.h'

# vramctl talks HTTP only: no daemon headers except the generic helpers.
daemon=$(grep -nE '#include "(scheduler|queue|store|engine|registry|monitor|job|config|api|gpu|httpc|backend)[^"]*\.h"' cli/*.c 2>/dev/null)
if [ -n "$daemon" ]; then
	echo "vramctl includes daemon internals:"
	echo "$daemon"
	fail=1
fi

if command -v clang-format >/dev/null; then
	if ! clang-format --dry-run -Werror $files 2>/tmp/vramd-format.$$; then
		head -40 /tmp/vramd-format.$$
		echo "clang-format: run  clang-format -i \$(git ls-files '*.c' '*.h')"
		fail=1
	fi
	rm -f /tmp/vramd-format.$$
fi
[ $fail -eq 0 ] && echo "source check passed"
exit $fail

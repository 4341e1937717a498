#!/usr/bin/env bash
# Compile include/zerohttp.h (or $1) on its own as strict C11 and as C++, warnings as errors,
# and check it is self-contained, guarded and includable twice.
# usage: scripts/check-header.sh [path/to/zerohttp.h]
set -euo pipefail
cd "$(dirname "$0")/.."
hdr=${1:-include/zerohttp.h}
[ -f "$hdr" ] || { echo "check-header: $hdr missing: run 'make header'" >&2; exit 1; }
hdr=$(cd "$(dirname "$hdr")" && pwd)/$(basename "$hdr")
CC=${CC:-gcc}
CXX=${CXX:-g++}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/use.c" <<EOC
#include "$hdr"
#include "$hdr"
int main(void) { return 0; }
EOC
cp "$tmp/use.c" "$tmp/use.cpp"

"$CC" -std=c11 -Wall -Wextra -Werror -pedantic -c "$tmp/use.c" -o "$tmp/c.o"
"$CC" -std=c99 -Wall -Wextra -Werror -pedantic -c "$tmp/use.c" -o "$tmp/c99.o"
"$CXX" -std=c++11 -Wall -Wextra -Werror -pedantic -c "$tmp/use.cpp" -o "$tmp/cxx11.o"
"$CXX" -Wall -Wextra -Werror -pedantic -c "$tmp/use.cpp" -o "$tmp/cxx.o"
grep -q '^#ifndef ZEROHTTP_H' "$hdr" || { echo "check-header: include guard ZEROHTTP_H missing" >&2; exit 1; }
echo "check-header: $hdr compiles as C11, C99, C++11 and C++ (default) with -Wall -Wextra -Werror -pedantic"

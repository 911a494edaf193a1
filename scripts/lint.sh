#!/usr/bin/env bash
# make lint: every check that needs no build. Fails on the first kind of
# finding, after printing all of that kind.
#   luacheck         the engine's Lua, the runbooks, the world, the tests (.luacheckrc)
#   clang-format     every C file against .clang-format (clang-format -i FILE fixes it)
#   long functions   no C file over 600 lines, no C function over 60 (scripts/long-functions.py)
#   boundary         no binding includes an engine internal (docs/architecture.md)
set -u
cd "$(dirname "$0")/.."
status=0

echo "lint: luacheck"
luacheck --quiet --formatter plain . || status=1

echo "lint: clang-format"
c_files=$(ls engine/*.c engine/*.h engine/include/*.h bindings/*.c bindings/*.h tests/unit/*.c tests/unit/*.h tests/boundary/*.c tests/fuzz/*.c 2>/dev/null)
# shellcheck disable=SC2086
clang-format --dry-run -Werror $c_files || { echo "lint: run clang-format -i on the files above"; status=1; }

echo "lint: long files and functions"
python3 scripts/long-functions.py . || status=1

echo "lint: engine/bindings boundary"
internal=$(cd engine && ls *.h | paste -sd'|')
if grep -nE "#include \"($internal)\"" bindings/*.c bindings/*.h; then
  echo "lint: a binding includes an engine internal; use engine/include/rb_api.h"
  status=1
fi

[ "$status" -eq 0 ] && echo "lint: clean"
exit "$status"

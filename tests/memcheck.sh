#!/usr/bin/env bash
# The suite's C unit tests, Lua tests and the demo under valgrind: any
# definite or indirect leak, or any memory error, fails.
# usage: tests/memcheck.sh build/runbook
set -u
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
build=$(dirname "$bin")
src=$(cd "$(dirname "$0")/.." && pwd)
vg=(valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite,indirect
    --show-leak-kinds=definite,indirect --error-exitcode=99 --track-fds=no)
fails=0; passes=0
state=$(mktemp -d); trap 'rm -rf "$state"' EXIT   # plans and reports go here, not into the tree
run() {   # run NAME cmd...   (the command must exit 0)
  run_expect "$1" 0 "${@:2}"
}
run_expect() {   # run_expect NAME CODE cmd...   (valgrind's own findings exit 99)
  local name=$1 want=$2; shift 2
  local log code; log=$(mktemp)
  "${vg[@]}" "$@" >"$log" 2>&1; code=$?
  if [ "$code" -eq "$want" ]; then echo "ok   $name"; passes=$((passes+1))
  else echo "FAIL $name (exit $code, want $want)"; tail -40 "$log"; fails=$((fails+1)); fi
  rm -f "$log"
}
for t in "$build"/tests/test_*; do run "unit $(basename "$t")" "$t"; done
cd "$src/tests/lua"
for f in test_*.lua; do
  flags=""; head -1 "$f" | grep -q '^--! dry-run' && flags="--dry-run"
  run "lua $f" env RUNBOOK_SOURCE="$src" "$bin" test $flags "$f"
done
run "demo (dry-run)" "$bin" run demo.lua --dry-run -q --state-dir "$state"
run "rollout (dry-run)" "$bin" run rollout.lua --dry-run -q --state-dir "$state"
run_expect "rollout, boot fails (dry-run): stops with exit 1, undo runs" 1 "$bin" run rollout.lua --dry-run -q --state-dir "$state" --scenario "$src/runbooks/scenarios/faults/boot-fails-k8s-2.yaml"
echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]

#!/usr/bin/env bash
# make fuzz: builds the libFuzzer harnesses (clang, in build-fuzz/) and runs
# each for FUZZ_SECONDS (default 600), two at a time, from the seed corpora
# in tests/fuzz/corpus (the scenario loader also from runbooks/scenarios).
# Prints one line per harness with its run count; a crash, leak or failed
# check is kept in build-fuzz/findings/<harness>/ and makes this exit 1.
# FUZZ_ONLY="edit cli" runs a subset.
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD:-$src/build-fuzz}
secs=${FUZZ_SECONDS:-600}
harnesses=${FUZZ_ONLY:-"yaml json edit journal scenario cli"}

bash "$src/scripts/install-deps.sh" clang libclang-rt-14-dev || exit 2
CC=clang cmake -S "$src" -B "$build" -DRUNBOOK_FUZZ=ON -DRUNBOOK_TESTS=OFF -DCMAKE_BUILD_TYPE=Debug >/dev/null || exit 2
targets=(); for h in $harnesses; do targets+=("fuzz_$h"); done
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >/dev/null || exit 2

run_one() {   # run_one HARNESS
  local h=$1 work="$build/corpus/$1" found="$build/findings/$1" seeds=("$src/tests/fuzz/corpus/$1")
  [ "$h" = scenario ] && seeds+=("$src/runbooks/scenarios" "$src/runbooks/scenarios/faults")
  mkdir -p "$work" "$found"
  local d dirs=()   # libFuzzer refuses a seed directory that is not there
  for d in "${seeds[@]}"; do [ -d "$d" ] && dirs+=("$d"); done
  seeds=("${dirs[@]}")
  "$build/tests/fuzz/fuzz_$h" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$found/" "$work" "${seeds[@]}" >"$build/fuzz_$h.log" 2>&1
  echo $? >"$build/fuzz_$h.rc"
}

set -- $harnesses
while [ $# -gt 0 ]; do
  run_one "$1" & a=$!
  if [ $# -gt 1 ]; then run_one "$2" & b=$!; wait $b; shift; fi
  wait $a; shift
done

status=0
printf '%-10s %12s %8s %8s  %s\n' harness runs seconds corpus result
for h in $harnesses; do
  runs=$(awk '/stat::number_of_executed_units/ {print $2}' "$build/fuzz_$h.log")
  took=$(awk '/^Done [0-9]+ runs in/ {print $5}' "$build/fuzz_$h.log")
  units=$(ls "$build/corpus/$h" | wc -l)
  rc=$(cat "$build/fuzz_$h.rc")
  if [ "$rc" = 0 ] && [ -z "$(ls -A "$build/findings/$h")" ]; then result=clean
  else result="FINDING (exit $rc): $(ls "$build/findings/$h" | head -3 | tr '\n' ' ')see $build/fuzz_$h.log"; status=1; fi
  printf '%-10s %12s %8s %8s  %s\n' "$h" "${runs:-?}" "${took:-?}" "$units" "$result"
done
exit $status

#!/usr/bin/env bash
# Reproducible benchmarks; every figure is printed next to a baseline
# measured in the same run. usage: bench/run.sh path/to/runbook
set -eu
bin=${1:-build/runbook}
here=$(cd "$(dirname "$0")" && pwd)
echo "== scheduler"
"$bin" run "$here/scripts/tasks_real.lua" -q 2>/dev/null
start=$(date +%s%N)
"$bin" run "$here/scripts/tasks_virtual.lua" --dry-run -q 2>/dev/null
end=$(date +%s%N)
echo "tasks_virtual: 10000 tasks x 1h in dry-run, wall $(( (end - start) / 1000000 )) ms"
echo "== start-up"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cc -O2 -o "$tmp/maxrss" "$here/maxrss.c"
python3 "$here/startup.py" "$tmp/maxrss" "$bin" "$here/scripts/empty.lua"

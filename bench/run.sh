#!/usr/bin/env bash
# Reproducible benchmarks; every figure is printed next to a baseline
# measured in the same run. usage: bench/run.sh path/to/runbook
set -eu
bin=${1:-build/runbook}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")   # the rehearsal runs from another directory
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
echo "== decode"
python3 "$here/gen_config.py" "$tmp/config.yaml" "$tmp/config.json" "${SIZE_MB:-4}"
cc -O2 -o "$tmp/yaml_events" "$here/yaml_events.c" $(pkg-config --cflags --libs yaml-0.1)
python3 "$here/decode.py" "$bin" "$tmp/yaml_events" "$tmp/config.yaml" "$tmp/config.json"
echo "== exec and http"
bash "$here/io.sh" "$bin"
echo "== fleet rehearsal (bench/gen_fleet.sh: 3 control planes, the rest workers)"
prev=""
for n in 3 100 1000; do
  bash "$here/gen_fleet.sh" "$n" "$tmp/fleet-$n"
  read -r ns kib < <(cd "$tmp/fleet-$n" && "$tmp/maxrss" "$bin" run rollout.lua --dry-run -q)
  per=$(( ns / n / 1000 ))
  echo "fleet $n nodes: wall $(( ns / 1000000 )) ms, peak RSS $(( kib / 1024 )) MiB, $per us per node${prev:+ ($(awk "BEGIN{printf \"%.2f\", $per/$prev}")x the per-node time of the row before)}"
  prev=$per
done
echo "== rollout rehearsal"
start=$(date +%s%N)
(cd "$(mktemp -d)" && "$bin" run rollout.lua --dry-run -q >/dev/null 2>&1)
end=$(date +%s%N)
echo "rollout --dry-run on the default scenario (a 6-minute virtual timeline): wall $(( (end - start) / 1000000 )) ms"

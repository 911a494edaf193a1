#!/usr/bin/env bash
# The rollout rehearsed (`runbook run rollout.lua --dry-run`, the world
# built from a generated talconfig.yaml) at 3, 100 and 1,000 nodes, and at
# 1,000 in worker batches of 10 %: wall, peak RSS (bench/maxrss.c) and the
# wall per node, against the per-node wall at 100 nodes of the same run
# (the growth #16 bounds at 1.5x). Several runs each, interleaved, medians.
# usage: fleet.sh RUNBOOK_BIN MAXRSS_BIN WORK_DIR
set -eu
bin=$1; maxrss=$2; work=$3
here=$(cd "$(dirname "$0")" && pwd)
R=${FLEET_ROUNDS:-3}
cases=("3" "100" "1000" "1000 batch=10%")
for c in "${cases[@]}"; do
  set -- $c
  [ -d "$work/fleet-$1" ] || bash "$here/gen_fleet.sh" "$1" "$work/fleet-$1" >/dev/null
done
: > "$work/times"
for _ in $(seq "$R"); do
  for c in "${cases[@]}"; do
    set -- $c
    rm -rf "$work/fleet-$1/.runbook"
    read -r ns kib < <(cd "$work/fleet-$1" && "$maxrss" "$bin" run rollout.lua --dry-run -q ${2:+--var "$2"}) \
      || { echo "fleet $c: the rehearsal failed"; exit 1; }
    echo "$c|$ns|$kib" >> "$work/times"
  done
done
python3 - "$work/times" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    case, ns, kib = line.strip().split("|")
    runs.setdefault(case, []).append((int(ns), int(kib)))
def med(case):
    ns = statistics.median(r[0] for r in runs[case]); kib = statistics.median(r[1] for r in runs[case])
    n = int(case.split()[0])
    return ns / 1e9, kib / 1024, ns / 1e6 / n
base = med("100")[2]
for case in runs:
    wall, mib, per = med(case)
    print(f"fleet {case} nodes: wall {wall:.2f} s, peak RSS {mib:.0f} MiB, {per:.2f} ms per node, "
          f"{per/base:.2f}x the per-node time at 100 nodes (medians of {len(runs[case])})")
    if case != "100":
        label = case.replace(" batch=10%", " nodes, workers in batches of 10 %") if "batch" in case else case + " nodes"
        print(f"row|rollout rehearsal, {label}: wall per node|{per:.2f} ms ({wall:.2f} s, {mib:.0f} MiB peak)|per node at 100 nodes|{base:.2f} ms|{per/base:.2f}x")
PY

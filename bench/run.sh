#!/usr/bin/env bash
# make bench: every figure next to a baseline measured in the same run,
# pairs interleaved, medians of several runs; at the end, one table of all
# the rows. Exits non-zero only when a benchmark could not run.
# usage: bench/run.sh path/to/runbook
set -u -o pipefail
bin=${1:-build/runbook}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")   # the rehearsal runs from another directory
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
all=$tmp/all.txt; : > "$all"
missing=()
part() {   # part NAME CMD...: runs one benchmark, its lines kept for the table
  local name=$1; shift
  echo "== $name"
  "$@" 2>&1 | tee -a "$all" | { grep -v '^row|' || true; } || missing+=("$name")
}
cc -O2 -o "$tmp/maxrss" "$here/maxrss.c"
cc -O2 -o "$tmp/yaml_events" "$here/yaml_events.c" $(pkg-config --cflags --libs yaml-0.1)

# the peers are installed by the bench only, never by make test
if ! command -v ansible-playbook >/dev/null && [ "$(id -u)" = 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ansible-core >/dev/null 2>&1 || true
fi

part "start-up and journaled steps against lua5.4 and ansible-playbook" \
  python3 "$here/peers.py" "$tmp/maxrss" "$bin" "$here/scripts" "$(mkdir -p "$tmp/peers" && echo "$tmp/peers")"
part "scheduler" bash -c '"$1" run "$2/scripts/tasks_real.lua" -q 2>/dev/null
  s=$(date +%s%N); "$1" run "$2/scripts/tasks_virtual.lua" --dry-run -q 2>/dev/null; e=$(date +%s%N)
  echo "tasks_virtual: 10000 tasks x 1h in dry-run, wall $(( (e - s) / 1000000 )) ms"' _ "$bin" "$here"
python3 "$here/gen_config.py" "$tmp/config.yaml" "$tmp/config.json" "${SIZE_MB:-4}"
part "decode" python3 "$here/decode.py" "$bin" "$tmp/yaml_events" "$tmp/config.yaml" "$tmp/config.json"
part "exec and http" bash "$here/io.sh" "$bin"
part "rollout rehearsal (bench/gen_fleet.sh: 3 control planes, the rest workers)" bash "$here/fleet.sh" "$bin" "$tmp/maxrss" "$tmp/fleet"
part "the rollout's preflight through the served world" bash "$here/preflight.sh" "$bin" "${SERVED_NODES:-6}" "$(mkdir -p "$tmp/preflight" && echo "$tmp/preflight")"
part "a real rollout through the served world" bash "$here/served.sh" "$bin" "${SERVED_NODES:-6}" "$(mkdir -p "$tmp/served" && echo "$tmp/served")"

echo
echo "| benchmark | runbook | baseline (same run) | baseline | ratio |"
echo "|---|---|---|---|---|"
grep '^row|' "$all" | awk -F'|' '{printf "|"; for (i = 2; i <= NF; i++) printf " %s |", $i; print ""}'
echo
echo "$(nproc) cores, $(. /etc/os-release && echo "$PRETTY_NAME"), $(date -u +%Y-%m-%d)"
if [ ${#missing[@]} -gt 0 ]; then
  echo "could not run: ${missing[*]}" >&2
  exit 1
fi

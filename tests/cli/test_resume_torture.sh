#!/usr/bin/env bash
# Resume torture: a runbook of N steps, each appending its name to a
# counter file, is killed with SIGKILL at every step boundary and inside
# every step, then resumed until it finishes. Every step's side effect must
# have happened exactly once where the step had finished before the kill,
# at most twice where the kill cut it inside, and the final state is
# complete every time.
# usage: test_resume_torture.sh RUNBOOK_BIN SOURCE_DIR
set -u
bin=$1
source "$(dirname "$0")/../support/bounded.sh"   # every wait bounded, $bin_real for background runs
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
N=5
fails=0; passes=0

cat > "$tmp/torture.lua" <<'LUA'
-- each step appends its name to COUNTER; KILL_AT / KILL_WHERE make the
-- process SIGKILL itself at one precise point
local rb = require "runbook"
local exec = require "runbook.exec"
local counter = os.getenv("COUNTER")
local kill_at, where = tonumber(os.getenv("KILL_AT") or ""), os.getenv("KILL_WHERE")
local function die()
  local pid = io.open("/proc/self/stat"):read("n")
  exec.run({"kill", "-9", tostring(pid)})
end
local function side_effect(i)
  local f = io.open(counter, "a"); f:write("step" .. i .. "\n"); f:close()
end
for i = 1, tonumber(os.getenv("N")) do
  -- "before": at the boundary after step i-1 was journaled, before step i starts
  if kill_at == i and where == "before" then die() end
  rb.step("step " .. i, function()
    side_effect(i)
    if kill_at == i and where == "inside" then die() end
    return i
  end)
end
LUA

count() { grep -cx "step$2" "$1" 2>/dev/null || true; }

for where in before inside; do
  for k in $(seq 1 $N); do
    dir="$tmp/$where-$k"; mkdir -p "$dir"; cnt="$dir/counter"; : > "$cnt"
    code=$( (cd "$dir" && COUNTER=$cnt N=$N KILL_AT=$k KILL_WHERE=$where "$bin" run "$tmp/torture.lua" -q >/dev/null 2>&1); echo $? )
    if [ "$code" -ne 137 ]; then echo "FAIL $where-$k: first run exit $code, want 137 (SIGKILL)"; fails=$((fails+1)); continue; fi
    resume=--resume
    if [ "$where" = before ] && [ "$k" -eq 1 ]; then
      # killed before the first step: nothing happened, nothing is recorded
      [ ! -e "$dir/.runbook/torture.journal" ] || { echo "FAIL $where-$k: a journal exists though no step started"; fails=$((fails+1)); continue; }
      resume=
    else
      # a plain run must refuse the unfinished journal
      (cd "$dir" && COUNTER=$cnt N=$N "$bin" run "$tmp/torture.lua" -q >/dev/null 2>&1); code=$?
      if [ "$code" -ne 2 ]; then echo "FAIL $where-$k: plain rerun exit $code, want 2"; fails=$((fails+1)); continue; fi
    fi
    (cd "$dir" && COUNTER=$cnt N=$N "$bin" run "$tmp/torture.lua" $resume -q >/dev/null 2>&1); code=$?
    if [ "$code" -ne 0 ]; then echo "FAIL $where-$k: resume exit $code"; fails=$((fails+1)); continue; fi
    ok=1
    for i in $(seq 1 $N); do
      c=$(count "$cnt" $i)
      if [ "$where" = inside ] && [ "$i" -eq "$k" ]; then
        [ "$c" -ge 1 ] && [ "$c" -le 2 ] || { echo "FAIL $where-$k: step$i ran $c times (cut inside: 1 or 2)"; ok=0; }
      else
        [ "$c" -eq 1 ] || { echo "FAIL $where-$k: step$i ran $c times (want exactly 1)"; ok=0; }
      fi
    done
    grep -q '"type":"finish","ok":true\|"ok":true.*"type":"finish"' "$dir/.runbook/torture.journal" || { echo "FAIL $where-$k: journal not finished"; ok=0; }
    if [ $ok -eq 1 ]; then echo "ok   killed $where step $k, resumed: every step done, none repeated"; passes=$((passes+1)); else fails=$((fails+1)); fi
  done
done
echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]

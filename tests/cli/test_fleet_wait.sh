#!/usr/bin/env bash
# fleet --wait-lock: a cluster whose lock another run holds (an operator's
# run, a CronJob) waits for it when the fleet was given --wait-lock, and
# ends "locked" (exit 4, a failure against the budget) without it.
# usage: test_fleet_wait.sh RUNBOOK_BIN SOURCE_DIR
set -u
bin=$1
source "$(dirname "$0")/../support/bounded.sh"   # every wait bounded, $bin_real for background runs
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0; passes=0
cd "$tmp"
ok() { echo "ok   $1"; passes=$((passes+1)); }
bad() { echo "FAIL $1"; fails=$((fails+1)); }

# hold.lua: one step that takes `hold` seconds, then notes who ran it
cat > hold.lua <<'LUA'
local rb = require "runbook"
local time = require "runbook.time"
local v = rb.vars{hold = {type = "number", default = 0}, who = {type = "string", default = "fleet"}}
rb.step("hold", function()
  time.sleep(v.hold)
  local f = io.open("ran", "a"); f:write(v.who, "\n"); f:close()
end)
LUA
printf 'clusters:\n  - dir: a\n  - dir: b\n' > fleet.yaml

# start_holder: a plain run in cluster a that holds its lock for 4 s;
# returns once its lock file exists
start_holder() {
  rm -rf a b .runbook; mkdir a b
  (cd a && exec "$bin_real" run ../hold.lua --var hold=4 --var who=holder --yes >../holder.out 2>&1) &
  holder=$!
  for _ in $(seq 100); do [ -e a/.runbook/hold.lockdir/lock ] && return; sleep 0.05; done
  echo "the holder never took its lock: $(cat holder.out)"
}

start_holder
"$bin" fleet run hold.lua --clusters fleet.yaml --yes --output json >ev.json 2>err.txt; code=$?
await_exit "$holder" 30 "the holder" >/dev/null
a_ran=$(cat a/ran 2>/dev/null | tr '\n' ' ')
if [ "$code" -eq 1 ] && grep -q '"outcome":"locked"' ev.json && [ "$a_ran" = "holder " ] && [ ! -e b/ran ]; then
  ok "without --wait-lock: cluster a ends locked (exit 4), the budget of 0 is spent, b not started, fleet exit 1"
else bad "without --wait-lock: exit $code, a ran by '$a_ran', b ran: $(cat b/ran 2>/dev/null); $(cat err.txt)"; fi

start_holder
"$bin" fleet run hold.lua --clusters fleet.yaml --yes --wait-lock 30 --output json >ev.json 2>err.txt; code=$?
await_exit "$holder" 30 "the holder" >/dev/null
a_ran=$(cat a/ran 2>/dev/null | tr '\n' ' ')
if [ "$code" -eq 0 ] && [ "$a_ran" = "holder fleet " ] && [ "$(cat b/ran 2>/dev/null)" = fleet ]; then
  ok "--wait-lock 30: cluster a waited for the holder, then ran (a: holder then fleet), b ran, fleet exit 0"
else bad "--wait-lock 30: exit $code, a ran by '$a_ran'; $(cat err.txt)"; fi
if grep -q '"msg":"waiting up to 30s for the lock: another run of hold.lua holds the lock' .runbook/fleet.hold/a.events.jsonl; then
  ok "the child was given --wait-lock 30 (its events say it waited up to 30s)"
else bad "no wait in a's events: $(head -c 600 .runbook/fleet.hold/a.events.jsonl)"; fi

start_holder
"$bin" fleet run hold.lua --clusters fleet.yaml --yes --wait-lock 1 --output json >ev.json 2>err.txt; code=$?
await_exit "$holder" 30 "the holder" >/dev/null
if [ "$code" -eq 1 ] && grep -q '"outcome":"locked"' ev.json && grep -q 'waited 1s, --wait-lock' ev.json; then
  ok "--wait-lock 1 past the holder's 4 s: a ends locked, the wait was bounded"
else bad "--wait-lock 1: exit $code; $(grep fleet_cluster ev.json | tail -1)"; fi

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]

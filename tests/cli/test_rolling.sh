#!/usr/bin/env bash
# rb.rolling: items in batches, concurrent within a batch, each item undoing
# only itself, the failure budget, a later failure undoing finished items,
# its timeline in the report and the events, and its refusals.
# usage: test_rolling.sh RUNBOOK_BIN SOURCE_DIR
set -u
bin=$1
source "$(dirname "$0")/../support/bounded.sh"   # every wait bounded, $bin_real for background runs
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0; passes=0
cd "$tmp"
ok() { echo "ok   $1"; passes=$((passes+1)); }
bad() { echo "FAIL $1"; fails=$((fails+1)); }

# roll.lua: a step before the rolling, then five items, batch 2; item
# `FAIL` (a comma list) fails in its gate after its step, items in
# `commit` (or `all`) call rb.commit once they passed it; each records
# do/undo and its virtual start time
cat > roll.lua <<'LUA'
local rb = require "runbook"
local time = require "runbook.time"
local v = rb.vars{fail = {type = "list", default = {}}, max_failures = {type = "integer", default = 0},
                  later = {type = "boolean", default = false}, commit = {type = "list", default = {}}}
local bad, commit = {}, {}
for _, x in ipairs(v.fail) do bad[x] = true end
for _, x in ipairs(v.commit) do commit[x] = true end
local function note(s) local f = io.open("trail", "a"); f:write(s, "\n"); f:close() end
rb.phase("Roll", function()
  rb.step("prepare", function() note("do prepare") end, {undo = function() note("undo prepare") end})
  local res = rb.rolling("items", {"i1", "i2", "i3", "i4", "i5"}, function(it)
    rb.step("do " .. it, function() note(string.format("do %s at %d", it, math.floor(time.monotonic()))) end,
            {undo = function() note("undo " .. it) end})
    rb.gate(it .. " settles", function() time.sleep(10); if bad[it] then rb.fatal(it .. " broke") end return true end)
    if commit[it] or commit.all then rb.commit() end
  end, {batch = 2, max_failures = v.max_failures})
  note("done " .. #res.done .. " failed " .. #res.failed .. (res.failed[1] and (" " .. res.failed[1].name) or ""))
end)
if v.later then rb.step("later", function() error("later broke") end) end
LUA
undos() { grep '^undo' trail | tr '\n' '|'; }   # the undos, in the order they ran
"$bin" run roll.lua --dry-run >out.txt 2>&1; code=$?
starts=$(grep -o 'do i[0-9] at [0-9]*' trail | tr '\n' '|')
# batches {i1,i2} {i3,i4} {i5}: each item sleeps 10 virtual seconds
if [ $code -eq 0 ] && [ "$starts" = "do i1 at 0|do i2 at 0|do i3 at 10|do i4 at 10|do i5 at 20|" ] && grep -qx "done 5 failed 0" trail; then
  ok "batch 2: the items of a batch run at once, the next batch after the whole one"
else bad "concurrency: exit $code; trail $(cat trail)"; fi
grep -q '^| items | 2/3 | i3, i4 | +10.0s | 10.0s | 0 |$' .runbook/roll.plan.md && ok "the report's Batches table is the timeline" \
  || bad "Batches table: $(grep -A6 Batches .runbook/roll.plan.md)"

rm -f trail
"$bin" run roll.lua --dry-run --var fail=i3 --var max_failures=1 --output json >ev.json 2>out.txt; code=$?
tr '\n' '|' <trail >t
if [ $code -eq 0 ] && grep -q "undo i3|" t && ! grep -q "undo i[1245]" t && grep -q "done 4 failed 1 i3" t && grep -q "do i5" t; then
  ok "within max_failures: the failed item alone is undone, the others and the next batch go on"
else bad "within budget: exit $code; trail $(cat trail); $(tail -3 out.txt)"; fi
python3 -c '
import json, sys
evs = [json.loads(l) for l in open("ev.json")]
b = [e for e in evs if e["type"] == "batch"]
d = [e for e in evs if e["type"] == "batch_done"]
assert [e["items"] for e in b] == [["i1", "i2"], ["i3", "i4"], ["i5"]], b
assert [e["failed"] for e in d] == [0, 1, 1] and all(e["batches"] == 3 for e in d), d
' && ok "batch and batch_done events" || bad "batch events"

# past the budget the rolling fails as a step does in sequence: the failed
# item undid itself, then the run's stack is undone, newest first: the
# finished items (i4 of the batch in flight, i1 and i2 of the one before)
# and the step before the rolling
rm -f trail
"$bin" run roll.lua --dry-run --var fail=i3 >out.txt 2>&1; code=$?
tr '\n' '|' <trail >t
if [ $code -eq 1 ] && grep -q "do i4" t && ! grep -q "do i5" t && ! grep -q "^done" trail \
   && [ "$(undos)" = "undo i3|undo i4|undo i2|undo i1|undo prepare|" ] && grep -q "i3 settles' failed: i3 broke" out.txt; then
  ok "past max_failures: the batch in flight ends (i4 finishes), the run stops as the failure itself, undoing every uncommitted step, newest first"
else bad "past budget: exit $code; trail $(cat trail); $(tail -3 out.txt)"; fi

# a committed item stays: i1 committed (and with it the step before the
# rolling), i2 and i4 finished without committing and are undone
rm -f trail
"$bin" run roll.lua --dry-run --var fail=i3 --var commit=i1 >out.txt 2>&1; code=$?
if [ $code -eq 1 ] && [ "$(undos)" = "undo i3|undo i4|undo i2|" ] && grep -q "still in effect: Roll/prepare, Roll/do i1$" out.txt \
   && grep -q " undone: Roll/do i3, Roll/do i4, Roll/do i2$" out.txt; then
  ok "past max_failures: the items that committed stay, those that finished without committing are undone"
else bad "budget spent, i1 committed: exit $code; undos $(undos); $(tail -4 out.txt)"; fi

rm -f trail
"$bin" run roll.lua --dry-run --var fail=i1,i2 --var max_failures=1 --output json >ev.json 2>out.txt; code=$?
if [ $code -eq 1 ] && python3 -c '
import json
out = [json.loads(l) for l in open("ev.json")][-1]
assert out["type"] == "outcome" and out["failed_items"] == ["i1", "i2"] and out["failed_kind"] == "rolling", out
assert "2 items failed, more than max_failures=1" in out["error"], out
assert out["undone"] == ["Roll/do i1", "Roll/do i2", "Roll/prepare"], out
assert not any("do i1" in s or "do i2" in s or "prepare" in s for s in out["in_effect"]), out
'; then ok "several failures past the budget: one error naming each, failed_items and undone in the outcome"
else bad "several failures: exit $code; $(tail -3 out.txt)"; fi

# a failure after the rolling undoes the finished items and the step before
# it, newest first, as in sequence
rm -f trail
"$bin" run roll.lua --dry-run --var later=true >out.txt 2>&1; code=$?
[ $code -eq 1 ] && [ "$(undos)" = "undo i5|undo i4|undo i3|undo i2|undo i1|undo prepare|" ] \
  && ok "a later failure undoes the finished items and the steps before the rolling, newest first" \
  || bad "later: exit $code; $(cat trail)"
rm -f trail
"$bin" run roll.lua --dry-run --var later=true --var commit=all >out.txt 2>&1; code=$?
[ $code -eq 1 ] && ! grep -q '^undo' trail && ok "rb.commit inside every item accepts them all" || bad "commit: exit $code; $(cat trail)"
# rb.commit in i3 accepts its own steps and the run's stack (the step before
# the rolling, i1 and i2 of the batch before); i4, finished in i3's batch
# without committing, and i5 are undone
rm -f trail
"$bin" run roll.lua --dry-run --var later=true --var commit=i3 >out.txt 2>&1; code=$?
[ $code -eq 1 ] && [ "$(undos)" = "undo i5|undo i4|" ] \
  && ok "rb.commit in an item accepts it and everything before its batch, not the other items of its batch" \
  || bad "commit in i3: exit $code; undos $(undos)"

# an interrupt mid-batch stops the lanes where they are and undoes nothing
# (neither the item finished in the batch, nor the one in flight, nor the
# step before); --resume skips every finished step and ends the rolling
cat > int.lua <<'LUA'
local rb = require "runbook"
local time = require "runbook.time"
local function note(s) local f = io.open("trail", "a"); f:write(s, "\n"); f:close() end
rb.step("prepare", function() note("do prepare") end, {undo = function() note("undo prepare") end})
rb.rolling("items", {"i1", "i2", "i3", "i4"}, function(it)
  rb.step("do " .. it, function()
    note("do " .. it)
    if it == "i2" and not io.open("interrupted") then note("waiting i2"); time.sleep(30) end
  end, {undo = function() note("undo " .. it) end})
  note("finished " .. it)
end, {batch = 2})
LUA
rm -f trail interrupted
"$bin_real" run int.lua >int.out 2>&1 & ipid=$!
for _ in $(seq 200); do grep -q "finished i1" trail 2>/dev/null && grep -q "waiting i2" trail && break; sleep 0.05; done
touch interrupted; kill -INT $ipid; await_exit $ipid 30 "int.lua after SIGINT"; icode=$?
if [ $icode -eq 3 ] && ! grep -q '^undo' trail && ! grep -q "finished i2" trail && grep -q "nothing was undone" int.out \
   && grep -q "in step do i2, not finished" int.out; then
  ok "SIGINT mid-batch: exit 3, the lane in flight stopped, nothing undone (the finished item, the step before)"
else bad "SIGINT mid-batch: exit $icode; trail $(tr '\n' '|' <trail); $(tail -4 int.out)"; fi
"$bin" run int.lua --resume >int2.out 2>&1; rcode=$?
if [ $rcode -eq 0 ] && ! grep -q '^undo' trail && [ "$(grep -c '^do prepare$' trail)" = 1 ] && [ "$(grep -c '^do i1$' trail)" = 1 ] \
   && [ "$(grep -c '^do i2$' trail)" = 2 ] && grep -q "finished i4" trail; then
  ok "--resume after the interrupt: the finished steps skipped, the interrupted one again, the rolling ends"
else bad "resume after SIGINT: exit $rcode; trail $(tr '\n' '|' <trail); $(tail -4 int2.out)"; fi

# --step-timeout is a failure, not an interrupt: the item that outlives it
# is undone and counts against max_failures; past the budget the finished
# item is undone as well (exit 1)
cat > slow.lua <<'LUA'
local rb = require "runbook"
local time = require "runbook.time"
local v = rb.vars{max_failures = {type = "integer", default = 0}}
local function note(s) local f = io.open("trail", "a"); f:write(s, "\n"); f:close() end
local res = rb.rolling("items", {"i1", "i2"}, function(it)
  rb.step("do " .. it, function() note("do " .. it) end, {undo = function() note("undo " .. it) end})
  rb.step("wait " .. it, function() if it == "i2" then time.sleep(100) end end)
end, {batch = 2, max_failures = v.max_failures})
note("failed " .. #res.failed)
LUA
rm -rf trail .runbook
"$bin" run slow.lua --dry-run --step-timeout 50 --var max_failures=1 >slow.out 2>&1; code=$?
if [ $code -eq 0 ] && [ "$(undos)" = "undo i2|" ] && grep -q "^failed 1$" trail && grep -q "timed out after 50s" slow.out; then
  ok "--step-timeout in an item: a failure within max_failures, the item undone, the run goes on"
else bad "step-timeout within budget: exit $code; trail $(tr '\n' '|' <trail); $(tail -3 slow.out)"; fi
rm -rf trail .runbook
"$bin" run slow.lua --dry-run --step-timeout 50 >slow.out 2>&1; code=$?
if [ $code -eq 1 ] && [ "$(undos)" = "undo i2|undo i1|" ] && ! grep -q "^failed" trail; then
  ok "--step-timeout in an item past max_failures: the item and the finished one undone, exit 1"
else bad "step-timeout past budget: exit $code; trail $(tr '\n' '|' <trail); $(tail -3 slow.out)"; fi

# a lock lost mid-batch stops the run the same way: i2 moves the lock away
# once i1 finished; exit 4, nothing undone
cat > lost.lua <<'LUA'
local rb = require "runbook"
local time = require "runbook.time"
local function note(s) local f = io.open("trail", "a"); f:write(s, "\n"); f:close() end
local function seen(s)
  local f = io.open("trail"); local t = f:read("a"); f:close(); return t:find(s, 1, true) ~= nil
end
rb.step("prepare", function() note("do prepare") end, {undo = function() note("undo prepare") end})
rb.rolling("items", {"i1", "i2", "i3"}, function(it)
  rb.step("do " .. it, function()
    note("do " .. it)
    if it == "i2" then
      for _ = 1, 600 do if seen("finished i1") then break end time.sleep(0.05) end
      assert(os.rename(".runbook/lost.lockdir", "moved.lockdir"))
    end
  end, {undo = function() note("undo " .. it) end})
  note("finished " .. it)
end, {batch = 2})
LUA
rm -rf trail .runbook moved.lockdir
"$bin" run lost.lua >lost.out 2>&1; code=$?
if [ $code -eq 4 ] && grep -q "finished i1" trail && ! grep -q "finished i2" trail && ! grep -q '^undo' trail && ! grep -q "do i3" trail \
   && grep -q "lock lost" lost.out; then
  ok "a lock lost mid-batch: exit 4, the batch stops, nothing undone"
else bad "lock lost mid-batch: exit $code; trail $(tr '\n' '|' <trail); $(tail -4 lost.out)"; fi

# refusals: a batch that is not an integer >= 1, a negative budget, an
# unknown option, a rolling inside a rolling
for c in 'batch = 0|batch must be an integer >= 1' 'batch = 1.5|batch must be an integer >= 1' \
         'max_failures = -1|max_failures must be an integer >= 0' 'batchsize = 2|unknown option .batchsize.'; do
  opt=${c%%|*}; want=${c#*|}
  printf 'local rb = require "runbook"\nrb.rolling("r", {1}, function() end, {%s})\n' "$opt" > badopt.lua
  "$bin" run badopt.lua --dry-run >out.txt 2>&1; code=$?
  [ $code -eq 1 ] && grep -qE "$want" out.txt && grep -q "badopt.lua:2" out.txt && ok "refused: {$opt}, at the caller's line" \
    || bad "{$opt}: exit $code; $(cat out.txt)"
done
cat > nest.lua <<'LUA'
local rb = require "runbook"
rb.rolling("outer", {1}, function() rb.rolling("inner", {1}, function() end) end)
LUA
"$bin" run nest.lua --dry-run >out.txt 2>&1; code=$?
[ $code -eq 1 ] && grep -q "rolling 'inner' inside another rolling: they do not nest" out.txt && ok "a rolling inside a rolling is refused" \
  || bad "nested: exit $code; $(cat out.txt)"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]

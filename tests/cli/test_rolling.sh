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

# roll.lua: five items, batch 2; item `FAIL` (a comma list) fails in its
# gate after its step; each records do/undo and its virtual start time
cat > roll.lua <<'LUA'
local rb = require "runbook"
local time = require "runbook.time"
local v = rb.vars{fail = {type = "list", default = {}}, max_failures = {type = "integer", default = 0},
                  later = {type = "boolean", default = false}, commit = {type = "boolean", default = false}}
local bad = {}
for _, x in ipairs(v.fail) do bad[x] = true end
local function note(s) local f = io.open("trail", "a"); f:write(s, "\n"); f:close() end
rb.phase("Roll", function()
  local res = rb.rolling("items", {"i1", "i2", "i3", "i4", "i5"}, function(it)
    rb.step("do " .. it, function() note(string.format("do %s at %d", it, math.floor(time.monotonic()))) end,
            {undo = function() note("undo " .. it) end})
    rb.gate(it .. " settles", function() time.sleep(10); if bad[it] then rb.fatal(it .. " broke") end return true end)
    if v.commit then rb.commit() end
  end, {batch = 2, max_failures = v.max_failures})
  note("done " .. #res.done .. " failed " .. #res.failed .. (res.failed[1] and (" " .. res.failed[1].name) or ""))
end)
if v.later then rb.step("later", function() error("later broke") end) end
LUA
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

rm -f trail
"$bin" run roll.lua --dry-run --var fail=i3 >out.txt 2>&1; code=$?
tr '\n' '|' <trail >t
if [ $code -eq 1 ] && grep -q "do i4" t && ! grep -q "do i5" t && ! grep -q "undo i4" t && grep -q "undo i3" t && ! grep -q "^done" trail \
   && grep -q "i3 settles' failed: i3 broke" out.txt; then
  ok "past max_failures: the batch in flight ends (i4 finishes), the run stops as the failure itself, the next batch never starts"
else bad "past budget: exit $code; trail $(cat trail); $(tail -3 out.txt)"; fi

rm -f trail
"$bin" run roll.lua --dry-run --var fail=i1,i2 --var max_failures=1 --output json >ev.json 2>out.txt; code=$?
if [ $code -eq 1 ] && python3 -c '
import json
out = [json.loads(l) for l in open("ev.json")][-1]
assert out["type"] == "outcome" and out["failed_items"] == ["i1", "i2"] and out["failed_kind"] == "rolling", out
assert "2 items failed, more than max_failures=1" in out["error"] and sorted(out["undone"]) == ["Roll/do i1", "Roll/do i2"], out
assert not any("do i1" in s or "do i2" in s for s in out["in_effect"]), out
'; then ok "several failures past the budget: one error naming each, failed_items and undone in the outcome"
else bad "several failures: exit $code; $(tail -3 out.txt)"; fi

# a failure after the rolling undoes the finished items, as in sequence;
# rb.commit in an item accepts it
rm -f trail
"$bin" run roll.lua --dry-run --var later=true >out.txt 2>&1; code=$?
[ $code -eq 1 ] && [ "$(grep -c '^undo' trail)" = 5 ] && ok "a later failure undoes the finished items" || bad "later: exit $code; $(cat trail)"
rm -f trail
"$bin" run roll.lua --dry-run --var later=true --var commit=true >out.txt 2>&1; code=$?
[ $code -eq 1 ] && ! grep -q '^undo' trail && ok "rb.commit inside an item accepts it" || bad "commit: exit $code; $(cat trail)"

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

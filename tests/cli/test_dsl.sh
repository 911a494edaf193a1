#!/usr/bin/env bash
# The runbook DSL end to end: steps, undo order, gates, vars, confirm,
# journal refusals, lock, JSON events, report.
# usage: test_dsl.sh RUNBOOK_BIN SOURCE_DIR
set -u
bin=$1
source "$(dirname "$0")/../support/bounded.sh"   # every wait bounded, $bin_real for background runs
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0; passes=0
cd "$tmp"

expect() {   # expect NAME CODE PATTERN -- cmd...
  local name=$1 want=$2 pat=$3; shift 4
  local out code
  out=$("$@" 2>&1 </dev/null); code=$?
  if [ "$code" -ne "$want" ]; then echo "FAIL $name: exit $code, want $want; output: $out"; fails=$((fails+1)); return; fi
  if [ -n "$pat" ] && ! grep -qE -- "$pat" <<<"$out"; then echo "FAIL $name: no /$pat/ in: $out"; fails=$((fails+1)); return; fi
  echo "ok   $name"; passes=$((passes+1))
}
has() {      # has NAME FILE PATTERN
  if grep -qE -- "$3" "$2"; then echo "ok   $1"; passes=$((passes+1)); else echo "FAIL $1: no /$3/ in $2: $(cat "$2")"; fails=$((fails+1)); fi
}

cat > undo.lua <<'LUA'
local rb = require "runbook"
local log = {}
local function note(s) local f = io.open("trail", "a"); f:write(s, "\n"); f:close() end
rb.phase("One", function()
  rb.step("a", function() note("do a") return 1 end, {undo = function(r) note("undo a " .. r) end})
  rb.step("b", function() note("do b") end)
  rb.step("c", function() note("do c") return {x = 1} end, {undo = function(r) note("undo c " .. r.x) end})
end)
rb.phase("Two", function()
  rb.step("d", function() error("disk on fire") end, {undo = function() note("undo d (must not run)") end})
end)
LUA
expect "failed step exits 1 and names step and cause" 1 "step 'Two/d' failed: .*disk on fire" -- "$bin" run undo.lua
has "undo runs newest first, with the step result" trail "^undo c 1$"
if [ "$(tr '\n' '|' < trail)" = "do a|do b|do c|undo c 1|undo a 1|" ]; then echo "ok   undo order c then a; failed step not undone"; passes=$((passes+1)); else echo "FAIL undo order: $(cat trail)"; fails=$((fails+1)); fi
expect "summary says what was undone and what stays" 2 "unfinished run" -- "$bin" run undo.lua
"$bin" run undo.lua --fresh >/dev/null 2>&1

# read_only steps are not "still in effect"; misspelt options are refused
cat > ro.lua <<'LUA'
local rb = require "runbook"
rb.step("look", function() return 1 end, {read_only = true})
rb.step("touch", function() return 2 end)
rb.step("break", function() error("no") end)
LUA
expect "still in effect lists only steps that changed something" 1 "still in effect: touch$" -- "$bin" run ro.lua --fresh
printf 'local rb = require "runbook"\nrb.step("s", function() end, {undoo = function() end})\n' > typo.lua
expect "unknown step option is named" 1 "typo.lua:2: step 's': unknown option 'undoo' \\(known: backoff, gate, gate_timeout, key, read_only, retries, retry_on, timeout, undo\\)" -- "$bin" run typo.lua --fresh
printf 'local rb = require "runbook"\nrb.gate("g", function() return true end, {timeout = "5m"})\n' > typo2.lua
expect "gate option of the wrong type is named" 1 "gate 'g': option 'timeout' must be a number, not a string" -- "$bin" run typo2.lua --fresh
printf 'local rb = require "runbook"\nrb.step("s", function() end, {read_only = true, undo = function() end})\n' > ro2.lua
expect "read_only with undo is refused" 1 "a read_only step has nothing to undo" -- "$bin" run ro2.lua --fresh
ls .runbook/undo.journal.* >/dev/null 2>&1 && { echo "ok   --fresh archives the old journal"; passes=$((passes+1)); } || { echo "FAIL no archived journal"; fails=$((fails+1)); }
expect "--resume and --fresh exclude each other" 2 "exclude" -- "$bin" run undo.lua --resume --fresh

cat > gate.lua <<'LUA'
local rb = require "runbook"
local n = 0
rb.gate("node k8s-2 Ready", function() n = n + 1; return false, "NotReady (poll " .. n .. ")" end, {timeout = 30, interval = 10})
LUA
expect "gate timeout fails with the last observation" 1 "gate 'node k8s-2 Ready' failed: not met after 30.0s \(4 checks\); last observation: NotReady \(poll 4\)" -- "$bin" run gate.lua --dry-run

# max_interval caps the backoff: 1 s, then 10x capped at 5 s, so polls at
# 0 1 6 11 16 21 26 30 (without the cap: 0 1 11 30, 4 checks)
cat > gatecap.lua <<'LUA'
local rb = require "runbook"
local time = require "runbook.time"
local at = {}
rb.gate("capped", function()
  at[#at + 1] = string.format("%.0f", time.monotonic())
  return false, "polls at " .. table.concat(at, " ")
end, {timeout = 30, interval = 1, backoff = 10, max_interval = 5})
LUA
expect "a gate's max_interval caps its backoff" 1 "not met after 30.0s \(8 checks\); last observation: polls at 0 1 6 11 16 21 26 30$" -- "$bin" run gatecap.lua --dry-run

cat > dup.lua <<'LUA'
local rb = require "runbook"
rb.step("same", function() end)
rb.step("same", function() end)
LUA
expect "duplicate step identity is an error at the second" 1 "two steps with the same identity 'same'" -- "$bin" run dup.lua --dry-run

cat > ser.lua <<'LUA'
local rb = require "runbook"
rb.step("returns a function", function() return {f = print} end)
LUA
expect "a non-serialisable result is a clear error" 1 "not JSON-serialisable.*cannot encode a function at f" -- "$bin" run ser.lua --dry-run

cat > vars.lua <<'LUA'
local rb = require "runbook"
local v = rb.vars{
  node = {type = "string", required = true, desc = "node to upgrade"},
  count = {type = "integer", default = 3},
  route = {type = "list", default = {"10.96.0.0/12"}},
  mode = {type = "string", choices = {"safe", "fast"}, default = "safe"},
  authkey = {type = "secret", env = "TEST_AUTHKEY"},
}
print(v.node, v.count, math.type(v.count), table.concat(v.route, "+"), v.mode, tostring(v.authkey))
LUA
expect "missing required variable is exit 2 before anything runs" 2 "missing required variable node \(node to upgrade\): use --var node=VALUE" -- "$bin" run vars.lua
expect "unknown variable is exit 2" 2 "unknown variable 'nodee'" -- "$bin" run vars.lua --var node=x --var nodee=y
expect "typed variables" 0 "^k8s-1	5	integer	a\+b	fast	nil$" -- "$bin" run vars.lua --var node=k8s-1 --var count=5 --var route=a,b --var mode=fast
expect "integer type is checked" 2 "count \(--var\) must be an integer" -- "$bin" run vars.lua --var node=x --var count=2.5
expect "choices are checked" 2 "mode must be one of safe, fast" -- "$bin" run vars.lua --var node=x --var mode=yolo
expect "a secret cannot be given on the command line" 2 "is a secret: it cannot be given as a value" -- "$bin" run vars.lua --var node=x --var authkey=tskey-123
echo "tskey-from-file" > key.txt
expect "a secret from a file prints masked" 0 "\*\*\*\(TEST_AUTHKEY\)" -- "$bin" run vars.lua --var node=x --var authkey_file=key.txt
expect "a secret from the environment" 0 "\*\*\*\(TEST_AUTHKEY\)" -- env TEST_AUTHKEY=tskey-env "$bin" run vars.lua --var node=x
printf 'node: from-file\ncount: 7\n' > vars.yaml
expect "--vars FILE.yaml, command line wins" 0 "^from-file	9	integer" -- "$bin" run vars.lua --vars vars.yaml --var count=9
printf 'node: [unclosed\n' > bad.yaml
expect "--vars syntax error has file:line:col" 2 "bad\.yaml:[0-9]+:[0-9]+:" -- "$bin" run vars.lua --vars bad.yaml
expect "--vars missing file" 2 "ENOENT" -- "$bin" run vars.lua --vars nope.yaml

cat > confirm.lua <<'LUA'
local rb = require "runbook"
rb.confirm("Upgrade k8s-1 now?")
print("confirmed")
LUA
expect "confirm without a terminal and without --yes" 2 "no terminal to ask on; run with --yes" -- "$bin" run confirm.lua
expect "confirm with --yes" 0 "confirmed" -- "$bin" run confirm.lua --yes
expect "confirm in a dry-run is assumed" 0 "confirmed" -- "$bin" run confirm.lua --dry-run

cat > slow.lua <<'LUA'
local rb = require "runbook"
rb.step("hold the lock", function()
  io.open("holding", "w"):close()     -- the lock is taken before any step runs
  require("runbook.time").sleep(tonumber(os.getenv("HOLD") or "0"))
end)
LUA
rm -f holding
HOLD=30 "$bin_real" run slow.lua -q >/dev/null 2>&1 & holder=$!
for _ in $(seq 200); do [ -e holding ] && break; sleep 0.05; done   # at most 10 s
[ -e holding ] || echo "FAIL the lock holder did not start its step within 10 s"
expect "a second concurrent run exits 4 naming the holder" 4 "another run of slow.lua holds the lock \(pid $holder" -- "$bin" run slow.lua
rm -f .runbook/slow.lockdir/lock      # deleted from under the holder
expect "a deleted lock file does not let a second run in" 4 "holds the lock \(its lock file was removed" -- "$bin" run slow.lua
mkdir -p other
cat > other/slow.lua <<'LUA'
local rb = require "runbook"      -- required, never used: no lock, no journal
print("duration " .. rb.duration(61))
LUA
expect "requiring the DSL without using it takes no lock" 0 "duration 1m01s" -- "$bin" run other/slow.lua
kill -9 $holder; await_exit $holder 10 >/dev/null 2>&1
expect "a stale lock of a dead process is taken over" 0 "" -- "$bin" run slow.lua --resume -q
cat > early.lua <<'LUA'
local rb = require "runbook"
rb.vars{x = {type = "string", required = true}}
rb.step("never", function() end)
LUA
expect "a run stopped before its first step leaves no journal" 2 "missing required variable x" -- "$bin" run early.lua
[ ! -e .runbook/early.journal ] && { echo "ok   no journal after a refusal"; passes=$((passes+1)); } || { echo "FAIL journal left behind"; fails=$((fails+1)); }
expect "so a plain run is not refused" 0 "" -- "$bin" run early.lua --var x=1 -q

cat > json.lua <<'LUA'
local rb = require "runbook"
rb.phase("P", function() rb.step("s", function() return 1 end) end)
LUA
"$bin" run json.lua --output json --dry-run > events.jsonl 2>/dev/null
if python3 - events.jsonl <<'PY'
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
types = [e["type"] for e in evs]
assert all(e["schema"] == 1 and "seq" in e and "time" in e for e in evs), evs
for t in ["run", "phase", "step", "step_done", "phase_done", "summary"]:
    assert t in types, (t, types)
assert [e["seq"] for e in evs] == list(range(1, len(evs) + 1))
PY
then echo "ok   --output json: one valid event per line with schema, seq, time"; passes=$((passes+1)); else echo "FAIL json events"; fails=$((fails+1)); fi

# the outcome, last, as data (#14 item 5): a failed step, what was undone, what stays
cat > outcome.lua <<'LUA'
local rb = require "runbook"
rb.phase("P", function()
  rb.step("kept", function() return 1 end, {read_only = false})
  rb.step("undone", function() return 2 end, {undo = function() end})
  rb.step("breaks", function() error("the cause") end)
end)
LUA
"$bin" run outcome.lua --output json > outcome.jsonl 2>/dev/null
if python3 - outcome.jsonl <<'PY'
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
o = evs[-1]
assert o["type"] == "outcome", o
assert o["ok"] is False and o["exit"] == 1 and o["failed"] == "P/breaks" and o["failed_kind"] == "step", o
assert o["undone"] == ["P/undone"] and o["in_effect"] == ["P/kept"] and "the cause" in o["error"], o
PY
then echo "ok   the last JSON event is the outcome: failed step, undone, still in effect"; passes=$((passes+1)); else echo "FAIL outcome event: $(tail -1 outcome.jsonl)"; fails=$((fails+1)); fi
printf 'return 0\n' > plain.lua
"$bin" run plain.lua --output json 2>/dev/null | tail -1 | grep -q '"type":"outcome"' && { echo "ok   a plain script ends with an outcome event too"; passes=$((passes+1)); } || { echo "FAIL plain outcome"; fails=$((fails+1)); }

"$bin" run undo.lua --fresh --report report.md >/dev/null 2>&1
has "report lists the failed step" report.md "\| Two \| d \| failed: "
has "report lists what was undone" report.md "^- One/c$"
has "report is also in the state dir" .runbook/undo.report.md "^# undo.lua: run report"

# stable step keys: a renamed step is still found by its key on resume,
# and the journal reader gives the steps by key
cat > keyed.lua <<'LUA'
local rb = require "runbook"
rb.step("the first name", function() local f = io.open("trail", "a"); f:write("ran k1\n"); f:close(); return 7 end, {key = "k1"})
rb.step("then fail", function() error("stop here") end)
LUA
rm -f trail
expect "a keyed step runs, the next fails" 1 "stop here" -- "$bin" run keyed.lua
sed -i 's/the first name/a new display name/; s/error("stop here")/return 1/' keyed.lua
expect "renamed, the keyed step is skipped on resume" 0 "a new display name \(done in an earlier run\)" -- "$bin" run keyed.lua --resume
has "the keyed step ran once" trail "^ran k1$"
[ "$(grep -c 'ran k1' trail)" = 1 ] && { echo "ok   and only once"; passes=$((passes+1)); } || { echo "FAIL the keyed step ran again"; fails=$((fails+1)); }
cat > reader.lua <<'LUA'
local journal = require "runbook.journal"
local recs = journal.read(".runbook/keyed.journal.old")
local by_key, order = journal.steps(recs)
print("order " .. table.concat(order, ","), "k1=" .. tostring(by_key.k1 and by_key.k1.result))
LUA
cp "$(ls .runbook/keyed.journal* | head -1)" .runbook/keyed.journal.old
expect "the journal reader finds steps by key" 0 "order k1,then fail	k1=7" -- "$bin" run reader.lua
printf '{"type":"step","key":"a","id":"a"}\nnot json\n{"type":"finish","ok":true}\n' > .runbook/keyed.journal.old
expect "the reader refuses a corrupt record in the middle, naming the line" 2 "keyed.journal.old:2: corrupt journal record" -- "$bin" run reader.lua

# a run that stops having done only read-only steps changed nothing: it
# says so, and the next run is not refused as "unfinished"
cat > nochange.lua <<'LUA'
local rb = require "runbook"
rb.step("read", function() return 1 end, {read_only = true})
rb.confirm("go?")
rb.step("change", function() return 2 end, {key = "change"})
print("is_done " .. tostring(rb.is_done("change")))
LUA
expect "read-only steps, then no answer: exit 2, nothing changed" 2 "nothing was changed: run nochange.lua again" -- "$bin" run nochange.lua
expect "so the next run starts afresh" 0 "is_done false" -- "$bin" run nochange.lua --yes
cat > ro2.lua <<'LUA'
local rb = require "runbook"
rb.step("change", function() return 2 end, {key = "change"})
print("is_done " .. tostring(rb.is_done("change")))
error("stop after the change")
LUA
expect "a change, then a failure: resumable" 1 "next: fix the cause" -- "$bin" run ro2.lua
sed -i 's/error("stop after the change")//' ro2.lua
expect "rb.is_done sees the step done in the run being resumed" 0 "is_done true" -- "$bin" run ro2.lua --resume

# Ctrl-C while a step waits: nothing is undone, exit 3, and --resume
# skips the finished step and runs the interrupted one again
cat > int.lua <<'LUA'
local rb = require "runbook"
local time = require "runbook.time"
local function note(s) local f = io.open("trail.int", "a"); f:write(s, "\n"); f:close() end
rb.step("a", function() note("do a") return 1 end, {undo = function() note("undo a") end})
rb.step("b", function() note("start b"); time.sleep(30); note("end b") end)
LUA
rm -f trail.int
"$bin_real" run int.lua >int.out 2>&1 & ipid=$!
for _ in $(seq 100); do grep -q "start b" trail.int 2>/dev/null && break; sleep 0.05; done
kill -INT $ipid; await_exit $ipid 30 "int.lua after SIGINT"; icode=$?
if [ $icode -eq 3 ] && ! grep -q "undo a" trail.int && grep -q "nothing was undone" int.out && grep -q "in step b, not finished" int.out; then
  echo "ok   SIGINT during a step: exit 3, no undo, the summary names the step"; passes=$((passes+1))
else echo "FAIL SIGINT: exit $icode; trail: $(cat trail.int); $(tail -3 int.out)"; fails=$((fails+1)); fi
sed -i 's/time.sleep(30)/time.sleep(0)/' int.lua
"$bin" run int.lua --resume -q >/dev/null 2>&1; rcode=$?
[ $rcode -eq 0 ] && [ "$(grep -c 'do a' trail.int)" = 1 ] && [ "$(grep -c 'start b' trail.int)" = 2 ] \
  && { echo "ok   --resume after SIGINT: a not repeated, b run again"; passes=$((passes+1)); } \
  || { echo "FAIL resume after SIGINT: exit $rcode; trail: $(cat trail.int)"; fails=$((fails+1)); }

# a second signal exits at once, and kills the group of a child that
# ignores SIGTERM instead of leaving it running
cat > sg.lua <<'LUA'
local rb = require "runbook"
local exec = require "runbook.exec"
rb.step("stubborn child", function()
  exec.run({"sh", "-c", "trap '' TERM; echo $$ > child.pid; sleep 60 & wait; sleep 60"}, {grace = 30})
end)
LUA
rm -f child.pid
"$bin_real" run sg.lua -q >sg.out 2>&1 & spid=$!
for _ in $(seq 100); do [ -s child.pid ] && break; sleep 0.05; done
kill -INT $spid; sleep 0.3; kill -INT $spid; await_exit $spid 30 "sg.lua after a second SIGINT"; scode=$?
cpid=$(cat child.pid); state=gone
for _ in $(seq 40); do
  state=$(awk '{print $3}' /proc/$cpid/stat 2>/dev/null || echo gone)
  [ "$state" = gone ] || [ "$state" = Z ] && break; sleep 0.05
done
if [ $scode -eq 3 ] && grep -q "interrupted again" sg.out && { [ "$state" = gone ] || [ "$state" = Z ]; }; then
  echo "ok   a second SIGINT exits 3 at once and kills the child that ignored SIGTERM"; passes=$((passes+1))
else echo "FAIL second signal: exit $scode, child $cpid state $state"; kill -9 $cpid 2>/dev/null; fails=$((fails+1)); fi

# the journal's end and its fingerprint (#17: torn last record, mismatched resume, empty, directory, missing field)
cat > jr.lua <<'LUA'
local rb = require "runbook"
local v = rb.vars{target = {type = "string", default = "a"}}
local function note(s) local f = io.open("trail.jr", "a"); f:write(s, "\n"); f:close() end
rb.step("one", function() note("one " .. v.target) return 1 end)
rb.step("two", function() note("two " .. v.target); if os.getenv("JR_FAIL") then error("stop") end end)
LUA
rm -f trail.jr
JR_FAIL=1 "$bin" run jr.lua --var target=x -q >/dev/null 2>&1
printf '{"type":"step","id":"two","key":"two","na' >> .runbook/jr.journal     # a kill mid-write
expect "a torn last record is dropped with a warning, the run resumes" 0 "torn last record was dropped" -- "$bin" run jr.lua --resume --var target=x
[ "$(grep -c '^one x' trail.jr)" = 1 ] && { echo "ok   and the finished step was not repeated"; passes=$((passes+1)); } || { echo "FAIL torn resume repeated: $(cat trail.jr)"; fails=$((fails+1)); }
JR_FAIL=1 "$bin" run jr.lua --fresh --var target=x -q >/dev/null 2>&1
expect "a resume with other variables is refused, saying so" 2 "started with other variables" -- "$bin" run jr.lua --resume --var target=y
# a bare --resume (no --var at all) takes the variables the run was started with (#28.7)
rm -f trail.jr
expect "a bare --resume keeps the stopped run's variables" 0 "resumed with the variables the run was started with" -- "$bin" run jr.lua --resume
[ "$(cat trail.jr)" = "two x" ] && { echo "ok   and ran the rest with them (target=x)"; passes=$((passes+1)); } || { echo "FAIL bare resume ran: $(cat trail.jr)"; fails=$((fails+1)); }
mv .runbook/jr.journal .runbook/jr.saved
: > .runbook/jr.journal
expect "an empty journal is not an unfinished run" 0 "" -- "$bin" run jr.lua -q
printf '{"type":"start","runbook":"jr.lua"}\n{"type":"step","key":"one"}\n' > .runbook/jr.journal
expect "a record without its id is an error naming the line" 2 "jr.journal:2: journal step record without its id" -- "$bin" run jr.lua --resume
rm -f .runbook/jr.journal; mkdir .runbook/jr.journal
expect "a journal that is a directory is exit 2" 2 "is a directory, not a journal" -- "$bin" run jr.lua --resume
rmdir .runbook/jr.journal

# retries are for transient failures only (#14 item 5)
cat > retry.lua <<'LUA'
local rb = require "runbook"
local errors = require "runbook.error"
local function note(s) local f = io.open("trail.retry", "a"); f:write(s, "\n"); f:close() end
local mode = os.getenv("MODE")
rb.step("flaky", function()
  note(mode)
  if mode == "plain" then error("the schematics differ") end
  if mode == "notfound" then error(errors.new("factory", "GET returned 404", {status = 404}), 0) end
  -- #30.9: the raiser marks its own: the engine names no domain kind
  if mode == "marked" then error(errors.new("factory", "the factory rejects this schematic", {retry = false}), 0) end
  if mode == "forced" then error(errors.new("usage", "try again", {retry = true}), 0) end
  error(errors.new("connect", "connection refused"), 0)
end, {retries = 2, backoff = 0.01})
LUA
for m in plain notfound connect marked forced; do rm -f trail.retry; MODE=$m "$bin" run retry.lua --fresh -q >/dev/null 2>&1; eval "n_$m=$(wc -l < trail.retry)"; done
[ "$n_plain" = 1 ] && [ "$n_notfound" = 1 ] && [ "$n_connect" = 3 ] && [ "$n_marked" = 1 ] && [ "$n_forced" = 3 ] \
  && { echo "ok   a plain error, a 404 and retry = false are not retried; a connect error and retry = true are (3 attempts)"; passes=$((passes+1)); } \
  || { echo "FAIL retries: plain $n_plain, 404 $n_notfound, connect $n_connect, marked $n_marked, forced $n_forced attempts"; fails=$((fails+1)); }

# an interrupt while a gate waits: the summary and the report say where, with what the gate last saw (#14 item 5)
cat > gint.lua <<'LUA'
local rb = require "runbook"
local n = 0
rb.gate("node-7 back", function()
  n = n + 1
  if n == 1 then io.open("gating", "w"):close() end
  return false, "rebooting (Talos API unreachable)"
end, {interval = 0.2, timeout = 60})
LUA
rm -f gating
"$bin_real" run gint.lua >gint.out 2>&1 & gpid=$!
for _ in $(seq 100); do [ -e gating ] && break; sleep 0.05; done; sleep 0.3
kill -INT $gpid; await_exit $gpid 30 "gint.lua after SIGINT"; gcode=$?
if [ $gcode -eq 3 ] && grep -q "waiting in gate node-7 back, [0-9]* checks in; last seen: rebooting (Talos API unreachable)" gint.out \
   && grep -q "outcome: stopped: interrupted: interrupted waiting in gate node-7 back" .runbook/gint.report.md && ! grep -q "task 1 (main) was cancelled" gint.out .runbook/gint.report.md; then
  echo "ok   an interrupt in a gate: summary and report name the gate and what it last saw"; passes=$((passes+1))
else echo "FAIL gate interrupt: exit $gcode; $(tail -3 gint.out); $(grep outcome .runbook/gint.report.md)"; fails=$((fails+1)); fi

# the outcome event of an interrupted run says exit 3, as the process does
cat > intj.lua <<'LUA'
local rb = require "runbook"
rb.step("wait", function() io.open("intj.started", "w"):close(); require("runbook.time").sleep(30) end)
LUA
rm -f intj.started
"$bin_real" run intj.lua --output json >intj.json 2>intj.err & jpid=$!
for _ in $(seq 200); do [ -e intj.started ] && break; sleep 0.05; done
kill -INT $jpid; await_exit $jpid 30 "intj.lua after SIGINT"; jcode=$?
if [ $jcode -eq 3 ] && grep '"type":"outcome"' intj.json | grep -q '"exit":3'; then
  echo "ok   an interrupted run: exit 3, and its outcome event says exit 3"; passes=$((passes+1))
else echo "FAIL interrupted outcome: exit $jcode; $(grep '"type":"outcome"' intj.json)"; fails=$((fails+1)); fi

# --limit/--exclude need the runbook's variables; rb.pause needs a reason
printf 'local rb = require "runbook"\nrb.vars{}\nrb.step("s", function() return 1 end)\n' > nolimit.lua
expect "--limit on a runbook without a limit variable is refused" 2 "\-\-limit: this runbook has no variable 'limit' to take it" -- "$bin" run nolimit.lua --limit a
expect "--exclude likewise" 2 "\-\-exclude: this runbook has no variable 'exclude'" -- "$bin" run nolimit.lua --exclude a
printf 'local rb = require "runbook"\nrb.step("s", function() return 1 end)\nrb.pause(42)\n' > badpause.lua
expect "rb.pause without a reason string is a clear error" 1 "bad argument #1 to 'pause'" -- "$bin" run badpause.lua --fresh

printf 'local rb = require "runbook"\nprint("state dir: " .. rb.state_dir)\n' > statedir.lua
expect "rb.state_dir is .runbook by default" 0 "state dir: .runbook$" -- "$bin" run statedir.lua
expect "rb.state_dir follows --state-dir" 0 "state dir: elsewhere/st$" -- "$bin" run statedir.lua --state-dir elsewhere/st

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]

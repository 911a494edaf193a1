#!/usr/bin/env bash
# Trace context (#32): every JSON event carries trace_id and span_id; the
# run, its phases, steps, gates and batches are spans nested as they run;
# an inherited TRACEPARENT is honoured (its trace, its span the run's
# parent) and a step's children get a TRACEPARENT naming the step.
# usage: test_trace.sh RUNBOOK_BIN SOURCE_DIR
set -u
bin=$1; src=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0; passes=0
ok()   { echo "ok   $1"; passes=$((passes+1)); }
fail() { echo "FAIL $1"; fails=$((fails+1)); }
cd "$tmp"

# check.py EVENTS [TRACE_ID PARENT]: the stream's trace is one tree
cat > check.py <<'PY'
import json, re, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
want_trace = sys.argv[2] if len(sys.argv) > 2 else None
want_parent = sys.argv[3] if len(sys.argv) > 3 else None
problems = []
def bad(msg):
    problems.append(msg)
traces = {e.get("trace_id") for e in evs}
if len(traces) != 1: bad("not one trace id: %r" % traces)
for e in evs:
    if not re.fullmatch(r"[0-9a-f]{32}", str(e.get("trace_id"))): bad("event %d: trace_id %r" % (e["seq"], e.get("trace_id")))
    if not re.fullmatch(r"[0-9a-f]{16}", str(e.get("span_id"))): bad("event %d: span_id %r" % (e["seq"], e.get("span_id")))
if want_trace and traces != {want_trace}: bad("trace %r, want %s" % (traces, want_trace))
run = evs[0]
if run["type"] != "run": bad("first event not run")
if want_parent and run.get("parent_span_id") != want_parent: bad("run's parent %r, want %s" % (run.get("parent_span_id"), want_parent))
if not want_parent and "parent_span_id" in run: bad("run has a parent without TRACEPARENT")
parent, kind, opened = {run["span_id"]: None}, {run["span_id"]: "run"}, {run["span_id"]}
for e in evs[1:]:
    if e["type"] in ("phase", "step", "gate", "batch", "undo", "undo_failed", "step_skipped"):
        if e["span_id"] in opened: bad("span %s opened twice" % e["span_id"])
        if e.get("parent_span_id") not in opened: bad("%s %s: parent %r never opened" % (e["type"], e["seq"], e.get("parent_span_id")))
        opened.add(e["span_id"]); parent[e["span_id"]] = e.get("parent_span_id"); kind[e["span_id"]] = e["type"]
        if e["type"] == "phase": kind[e["phase"]] = e["span_id"]
    elif e["span_id"] not in opened:
        bad("%s %s: span %s never opened" % (e["type"], e["seq"], e["span_id"]))
# a step of phase P has P's span among its ancestors; a gate's poll is in the gate's span
gate_span = {}
for e in evs:
    if e["type"] == "step" and "/" in e["step"]:
        p, anc = e["step"].split("/")[0], e["span_id"]
        chain = []
        while anc: chain.append(anc); anc = parent.get(anc)
        if kind.get(p) not in chain: bad("step %r: phase %r's span not among its ancestors" % (e["step"], p))
    if e["type"] == "gate": gate_span[e["gate"]] = e["span_id"]
    if e["type"] == "gate_poll" and gate_span.get(e["gate"]) != e["span_id"]: bad("gate_poll %s not in its gate's span" % e["seq"])
steps = sum(1 for e in evs if e["type"] == "step")
print("%d events, %d spans, %d steps" % (len(evs), len(opened), steps))
for p in problems[:10]: print("  " + p)
sys.exit(1 if problems else 0)
PY

"$bin" run rollout.lua --dry-run --scenario sample --output json >a.json 2>/dev/null || fail "rehearsal exit $?"
out=$(python3 check.py a.json) && ok "every event has trace_id/span_id; one trace; spans nest (run > phase > step/gate): $out" \
  || fail "trace of the rollout rehearsal: $out"
"$bin" run rollout.lua --dry-run --scenario faults/boot-fails-k8s-2 --var batch=2 --output json >b.json 2>/dev/null
out=$(python3 check.py b.json) && ok "a failing batched rehearsal nests too: $out" || fail "failing batched: $out"

tid=4bf92f3577b34da6a3ce929d0e0e4736; sid=00f067aa0ba902b7
TRACEPARENT="00-$tid-$sid-01" "$bin" run rollout.lua --dry-run --scenario sample --output json >c.json 2>/dev/null
out=$(python3 check.py c.json "$tid" "$sid") && ok "TRACEPARENT honoured: the run is a child of $sid in trace $tid" \
  || fail "inherited TRACEPARENT: $out"
for badtp in "00-$tid-$sid" "ff-$tid-$sid-01" "00-00000000000000000000000000000000-$sid-01" "00-${tid^^}-$sid-01" "junk"; do
  TRACEPARENT="$badtp" "$bin" run demo.lua --dry-run --output json >d.json 2>/dev/null
  out=$(python3 check.py d.json) && ! grep -q "$tid" d.json && ok "an invalid TRACEPARENT ($badtp) starts a new trace" \
    || fail "invalid TRACEPARENT $badtp: $out"
done

# a real run: the step's child sees the step's span (and the inherited flags)
cat > child.lua <<'LUA'
local rb = require "runbook"
local exec = require "runbook.exec"
rb.phase("P", function()
  rb.step("ask the child", function()
    print("child saw " .. exec.run({"sh", "-c", 'printf %s "$TRACEPARENT"'}, {check = true}).stdout)
  end)
end)
LUA
TRACEPARENT="00-$tid-$sid-00" "$bin" run child.lua --output json --state-dir st >e.json 2>/dev/null || fail "child.lua exit $?"
python3 - e.json "$tid" <<'PY' && ok "a step's child gets TRACEPARENT 00-<trace>-<the step's span>-<inherited flags>" || fail "child's TRACEPARENT"
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
step = next(e for e in evs if e["type"] == "step")
saw = next(e for e in evs if e["type"] == "print")["text"].split()[-1]
want = "00-%s-%s-00" % (sys.argv[2], step["span_id"])
print("  child saw %s, want %s" % (saw, want))
sys.exit(0 if saw == want else 1)
PY

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]

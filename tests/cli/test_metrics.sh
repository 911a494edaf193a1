#!/usr/bin/env bash
# --metrics-file and --pushgateway (#32): the file is Prometheus text that
# Debian's promtool accepts, its counts are the run's own events, a failed
# run keeps the last success's time; the push reaches a real
# prometheus-pushgateway on 127.0.0.1, scraped back. prometheus and
# prometheus-pushgateway come from scripts/install-deps.sh for this test.
# usage: test_metrics.sh RUNBOOK_BIN SOURCE_DIR
set -u
bin=$1; src=$2
tmp=$(mktemp -d)
pg=""
trap '[ -n "$pg" ] && kill "$pg" 2>/dev/null; rm -rf "$tmp"' EXIT
fails=0; passes=0
ok()   { echo "ok   $1"; passes=$((passes+1)); }
fail() { echo "FAIL $1"; fails=$((fails+1)); }
value() { grep -E "^$1(\{| )" | grep -F -- "${2:-}" | awk '{print $NF}' | head -n 1; }   # value METRIC [LABEL-TEXT] < text

cd "$tmp"; mkdir m
"$bin" run rollout.lua --dry-run --scenario sample --output json --metrics-file m/run.prom >events.json 2>/dev/null \
  && ok "a rehearsal with --metrics-file exits 0" || fail "rehearsal exit $?"
chk=$(promtool check metrics <m/run.prom 2>&1) && ok "promtool check metrics: clean${chk:+ ($chk)}" || fail "promtool: $chk"
[ "$(ls m)" = run.prom ] && ok "the directory holds only run.prom (no temporary left)" || fail "m/ holds: $(ls m)"
count() { python3 -c 'import json,sys
n=0
for l in open(sys.argv[1]):
    e=json.loads(l)
    if e["type"]==sys.argv[2]: n+=1
print(n)' events.json "$1"; }
[ "$(value runbook_steps_total 'outcome="done"' <m/run.prom)" = "$(count step_done)" ] \
  && ok "runbook_steps_total{outcome=done} = the step_done events ($(count step_done))" || fail "steps done"
[ "$(value runbook_gates_total 'outcome="passed"' <m/run.prom)" = "$(count gate_done)" ] \
  && ok "runbook_gates_total{outcome=passed} = the gate_done events ($(count gate_done))" || fail "gates passed"
[ "$(value runbook_gate_polls_total <m/run.prom)" = "$(count gate_poll)" ] \
  && ok "runbook_gate_polls_total = the gate_poll events ($(count gate_poll))" || fail "gate polls"
[ "$(value runbook_run_success <m/run.prom)" = 1 ] && [ "$(value runbook_run_in_progress <m/run.prom)" = 0 ] \
  && ok "runbook_run_success 1, runbook_run_in_progress 0" || fail "success/in_progress"
grep -q '^runbook_run_info{runbook="rollout.lua",cluster="home-lab",dry_run="true",version="[0-9.]*"} 1$' m/run.prom \
  && ok "runbook_run_info names the runbook and the cluster" || fail "run_info: $(grep run_info m/run.prom)"
[ "$(value runbook_nodes_done <m/run.prom)" = 3 ] && ok "runbook_nodes_done 3 (the sample's nodes)" || fail "nodes done"
last=$(value runbook_last_success_timestamp_seconds <m/run.prom)
[ -n "$last" ] && ok "runbook_last_success_timestamp_seconds $last" || fail "no last success"

# a failed run: success 0, exit 1, the failed gate and undone steps; the
# last success stays the previous run's
"$bin" run rollout.lua --dry-run --scenario faults/boot-fails-k8s-2 --metrics-file m/run.prom -q 2>/dev/null
rc=$?
[ "$rc" -eq 1 ] && ok "the failing rehearsal exits 1" || fail "failing rehearsal exit $rc"
chk=$(promtool check metrics <m/run.prom 2>&1) && ok "promtool check metrics (failed run): clean" || fail "promtool: $chk"
[ "$(value runbook_run_success <m/run.prom)" = 0 ] && [ "$(value runbook_run_exit_code <m/run.prom)" = 1 ] \
  && ok "runbook_run_success 0, runbook_run_exit_code 1" || fail "failed run's success/exit"
[ "$(value runbook_gates_total 'outcome="failed"' <m/run.prom)" = 1 ] && [ "$(value runbook_steps_total 'outcome="undone"' <m/run.prom)" = 2 ] \
  && [ "$(value runbook_nodes_failed <m/run.prom)" = 1 ] \
  && ok "one gate failed, two steps undone, one node failed" || fail "failed run counts: $(grep -E '^runbook_(gates|steps)_total|nodes' m/run.prom)"
[ "$(value runbook_last_success_timestamp_seconds <m/run.prom)" = "$last" ] \
  && ok "the last success is kept from the previous run ($last)" || fail "last success changed: $(value runbook_last_success_timestamp_seconds <m/run.prom)"

# a real run rewrites the file at each gate poll: the gate's own check
# reads it, and poll n sees the n-1 polls before it
cat > polls.lua <<'LUA'
local rb = require "runbook"
rb.phase("P", function()
  local seen = {}
  rb.gate("three polls", function()
    local f = io.open(os.getenv("METRICS_FILE"), "r")
    local text = f and f:read("a") or ""
    if f then f:close() end
    seen[#seen + 1] = text:match("\nrunbook_gate_polls_total[^\n]* (%d+)") or "none"
    return #seen >= 3, table.concat(seen, ",")
  end, {timeout = 30, interval = 0.1})
end)
LUA
METRICS_FILE=m/polls.prom "$bin" run polls.lua --metrics-file m/polls.prom --state-dir st --output json >polls.json 2>/dev/null \
  || fail "polls.lua exit $?"
seen=$(grep '"type":"gate_poll"' polls.json | tail -n 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["observation"])')
[ "$seen" = "0,1,2" ] && ok "a real run rewrites the file at each gate poll (the check saw polls $seen)" \
  || fail "the gate's check saw polls '$seen' in the file, want 0,1,2"

# bad input: one line, exit 2, nothing written
out=$("$bin" run demo.lua --dry-run --metrics-file nodir/x.prom 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -q "no directory nodir" <<<"$out" && [ ! -e nodir ] && ok "--metrics-file in a missing directory: exit 2" \
  || fail "missing dir: $rc $out"
out=$("$bin" run demo.lua --dry-run --pushgateway ftp://x 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -q "expects an http" <<<"$out" && ok "--pushgateway ftp://x: exit 2" || fail "bad url: $rc $out"

# a real Pushgateway on loopback
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
timeout 240 prometheus-pushgateway --web.listen-address="127.0.0.1:$port" >pg.log 2>&1 &
pg=$!
timeout 20 bash -c "until curl -sf http://127.0.0.1:$port/-/ready >/dev/null; do sleep 0.2; done" \
  || { cat pg.log; fail "the pushgateway did not start"; }
url=http://127.0.0.1:$port
"$bin" run rollout.lua --dry-run --scenario sample --pushgateway "$url" -q 2>/dev/null && ok "a rehearsal pushes, exit 0" || fail "push run"
scraped=$(timeout 20 curl -sf "$url/metrics")
sel='{cluster="home-lab",instance="",job="runbook",runbook="rollout.lua"}'
grep -qF "runbook_run_success$sel 1" <<<"$scraped" && ok "scraped back: runbook_run_success$sel 1" \
  || fail "not scraped back: $(grep ^runbook_ <<<"$scraped")"
plast=$(grep -F "runbook_last_success_timestamp_seconds$sel" <<<"$scraped" | awk '{print $2}')
"$bin" run rollout.lua --dry-run --scenario faults/boot-fails-k8s-2 --pushgateway "$url" -q 2>/dev/null
scraped=$(timeout 20 curl -sf "$url/metrics")
grep -qF "runbook_run_success$sel 0" <<<"$scraped" && grep -qF "runbook_nodes_failed$sel 1" <<<"$scraped" \
  && ok "a failed run pushes too: success 0, a node failed" || fail "failed push: $(grep ^runbook_ <<<"$scraped")"
[ -n "$plast" ] && grep -qF "runbook_last_success_timestamp_seconds$sel $plast" <<<"$scraped" \
  && ok "the Pushgateway keeps the last success ($plast) after the failed run" || fail "last success lost"
chk=$(promtool check metrics <<<"$scraped" 2>&1) && ok "promtool check metrics on the scrape: clean" || fail "promtool on scrape: $chk"
# a Pushgateway that is not there: a warning, the run's result unchanged
kill "$pg"; wait "$pg" 2>/dev/null; pg=""
out=$("$bin" run demo.lua --dry-run --pushgateway "$url" 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "metrics: push to $url failed" <<<"$out" && ok "an unreachable Pushgateway: a warning, exit 0" \
  || fail "unreachable: $rc $out"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]

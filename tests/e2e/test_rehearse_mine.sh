#!/usr/bin/env bash
# #14 item 1: a dry-run with no --scenario rehearses the operator's own
# talconfig.yaml (a fixture with talhelper variables from the environment
# and talenv.yaml, a controlPlane: group schematic, workers on talosImageURL
# IDs, one of them unknown offline), to the end; without a talconfig.yaml,
# the sample, saying so.
# usage: test_rehearse_mine.sh RUNBOOK_BIN SOURCE_DIR
set -u
bin=$1; src=$2
source "$(dirname "$0")/../support/bounded.sh"   # every wait bounded, $bin_real for background runs
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0; passes=0
ok() { echo "ok   $1"; passes=$((passes+1)); }
bad() { echo "FAIL $1"; fails=$((fails+1)); }

cp -r "$src/tests/e2e/fixtures/mine" "$tmp/mine"
cd "$tmp/mine"
cp talconfig.yaml talconfig.before
SVC_NET=10.96.0.0/12 "$bin" run rollout.lua --dry-run --output json >run.json 2>run.err; code=$?
python3 - run.json <<'PY' && ok "my talconfig.yaml rehearses to the end: every node upgraded, the group schematic too" || bad "rehearsal of my cluster: exit $code; $(tail -5 run.err)"
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
world = [e for e in evs if e["type"] == "world"]
assert world and "your cluster from talconfig.yaml and talenv.yaml: 5 nodes (3 control plane)" in world[0]["about"], world
assert "scenario" not in world[0], world[0]
warns = " ".join(e.get("msg", "") for e in evs if e["type"] == "log" and e.get("level") == "warn")
assert "gpu-1: talosImageURL names schematic 613e1592b2da" in warns and "unknown offline" in warns, warns
assert "the tailnet is a stand-in" in warns, warns
steps = {e["step"] for e in evs if e["type"] == "step_done"}
for n in ("cp-1", "cp-2", "cp-3", "worker-1", "gpu-1"):
    assert any(n in s and "upgrade" in s.lower() for s in steps), (n, sorted(steps))
fin = [e for e in evs if e["type"] == "summary"]
assert fin and fin[0]["text"].startswith("rehearsed rollout.lua"), fin
PY
cmp -s talconfig.yaml talconfig.before && [ ! -e clusterconfig ] && [ ! -e patches ] \
  && ok "the rehearsal changed no file of mine (talconfig.yaml, no clusterconfig/, no patches/)" || bad "the dry-run wrote files: $(ls)"
grep -q "talosImageURL: factory.talos.dev/installer/4a0d65c669d4" .runbook/rollout.plan.md \
  && grep -q "+          - siderolabs/tailscale" .runbook/rollout.plan.md \
  && ok "the plan: worker-1 on the tailscale schematic, tailscale appended to the controlPlane: schematic block" \
  || bad "plan: $(grep -n 'talosImageURL\|siderolabs/tailscale' .runbook/rollout.plan.md | head -5)"

# a variable that is set nowhere: one clear line, exit 2
sed -i 's/^CP1_IP: .*//' talenv.yaml
"$bin" run rollout.lua --dry-run >unset.out 2>&1; code=$?
[ $code -eq 2 ] && grep -q "nodes\[1\].ipAddress is '\${CP1_IP}' and CP1_IP is not set" unset.out && ! grep -q "\.lua:[0-9]" unset.out \
  && ok "an unset talhelper variable: exit 2, named, no traceback" || bad "unset variable: exit $code: $(cat unset.out)"

# --limit, --exclude and the canary pause (#14 item 4), on my cluster
cd "$tmp/mine" && sed -i 's/^$/CP1_IP: 10.0.3.21/' talenv.yaml && grep -q CP1_IP talenv.yaml || echo 'CP1_IP: 10.0.3.21' >> talenv.yaml
"$bin" run rollout.lua --dry-run --limit worker-1 --exclude gpu-1 --output json >limit.json 2>/dev/null; code=$?
python3 - limit.json <<'PY' && [ $code -eq 0 ] && ok "--limit worker-1: only worker-1 is configured and upgraded; the gates still check every node" || bad "--limit: exit $code"
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
done = [e["step"] for e in evs if e["type"] == "step_done"]
ups = [s for s in done if "/upgrade " in s or "/configure " in s]
assert ups == ["Sequential node updates/configure worker-1", "Sequential node updates/upgrade worker-1"], ups
polls = [e for e in evs if e["type"] == "gate_done" and e["gate"].endswith("cluster healthy before worker-1")]
assert polls, "no cluster gate before worker-1"
assert any("this run changes 1 of 5 nodes: worker-1" in e.get("msg", "") for e in evs if e["type"] == "log")
PY
"$bin" run rollout.lua --dry-run --limit cp-1 >cp1.out 2>&1; code=$?
[ $code -eq 2 ] && grep -q "cp-1's schematic is the controlPlane: group's, which cp-2 shares and this run leaves out" cp1.out \
  && ok "--limit cp-1 is refused: its schematic: block is the whole group's" || bad "--limit cp-1: exit $code: $(grep stopped cp1.out)"
"$bin" run rollout.lua --dry-run --limit cp-9 >cp9.out 2>&1; code=$?
[ $code -eq 2 ] && grep -q "\-\-limit names cp-9, which talconfig.yaml does not have (its nodes: cp-1, cp-2, cp-3, worker-1, gpu-1)" cp9.out \
  && ok "--limit with an unknown node: exit 2, naming the nodes" || bad "--limit cp-9: exit $code"
"$bin" run rollout.lua --dry-run --var pause_after_first=true --output json >pause.json 2>/dev/null; code=$?
python3 - pause.json <<'PY' && [ $code -eq 0 ] && ok "pause_after_first: exit 0 once the first node passed every gate, nothing more upgraded" || bad "pause: exit $code"
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
ups = [e["step"] for e in evs if e["type"] == "step_done" and "/upgrade " in e["step"]]
assert ups == ["Sequential node updates/upgrade cp-1"], ups
o = evs[-1]
assert o["type"] == "outcome" and o["paused"] is True and o["exit"] == 0 and "cp-1, the first node, passed every gate (4 more to go)" in o["reason"], o
gates = [e["gate"] for e in evs if e["type"] == "gate_done"]
assert any(g.endswith("cp-1 online in the tailnet as cp-1") for g in gates), gates
PY

# `world serve` in my directory serves my cluster, saying so (#26 item 4:
# it served the sample without a word)
cd "$tmp/mine"
"$bin_real" world serve --dir "$tmp/srv" 2>serve.err & srv=$!
for _ in $(seq 100); do [ -s "$tmp/srv/world.url" ] && break; sleep 0.05; done
nodes=$(curl -s --max-time 30 "$(cat "$tmp/srv/world.url")/state" | python3 -c 'import json,sys; print(",".join(n["name"] for n in json.load(sys.stdin)["nodes"]))')
kill $srv 2>/dev/null; await_exit $srv 10 "world serve after SIGTERM"
grep -q "^simulating your cluster from talconfig.yaml and talenv.yaml: 5 nodes (3 control plane)" serve.err \
  && [ "$nodes" = "cp-1,cp-2,cp-3,worker-1,gpu-1" ] \
  && ok "world serve in my directory serves my cluster and says so" || bad "world serve here: nodes '$nodes'; $(head -3 serve.err)"

# no talconfig.yaml here: the sample, saying so; and by name
mkdir "$tmp/empty" && cd "$tmp/empty"
"$bin" run rollout.lua --dry-run -q >/dev/null 2>sample.err; code=$?
"$bin" run rollout.lua --dry-run --fresh 2>&1 | grep -q "rehearsing against the built-in sample cluster (no talconfig.yaml here to rehearse: --scenario sample)" \
  && [ $code -eq 0 ] && ok "no talconfig.yaml: the sample, saying so" || bad "no talconfig: exit $code"
"$bin" run rollout.lua --dry-run --fresh --scenario sample 2>&1 | grep -q "rehearsing against the built-in sample cluster (scenarios/default.yaml)" \
  && ok "--scenario sample names it" || bad "--scenario sample"
"$bin" run rollout.lua --dry-run --fresh --scenario faults/authkey-expired >fa.out 2>&1
grep -q "rehearsing against the shipped scenario faults/authkey-expired" fa.out && ok "a shipped scenario by its name" || bad "named scenario: $(head -3 fa.out)"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]

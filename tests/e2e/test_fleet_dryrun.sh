#!/usr/bin/env bash
# #16: a generated fleet (bench/gen_fleet.sh: 3 control planes, the rest
# workers) rehearses to the end from its talconfig.yaml alone, every node
# upgraded exactly once, control planes first, with a constant number of
# cluster-wide reads per node: one node list for each "cluster healthy"
# gate, no per-node `tailscale status` while the nodes answer ping.
# Correctness only: the time it takes is bench/'s (docs/benchmarks.md).
# usage: test_fleet_dryrun.sh RUNBOOK_BIN SOURCE_DIR
set -u
bin=$1; src=$2
source "$(dirname "$0")/../support/bounded.sh"   # every wait bounded, $bin_real for background runs
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0; passes=0
ok() { echo "ok   $1"; passes=$((passes+1)); }
bad() { echo "FAIL $1"; fails=$((fails+1)); }

n=60
bash "$src/bench/gen_fleet.sh" "$n" "$tmp/fleet"
cd "$tmp/fleet"
# RUNBOOK_SIM_SELFCHECK: every node list the world keeps is checked against
# one rendered afresh (docs/simulation.md)
RUNBOOK_SIM_SELFCHECK=1 "$bin" run rollout.lua --dry-run --output json -v >run.json 2>run.err; code=$?
[ "$code" -eq 0 ] && ok "a $n-node fleet rehearses to the end" || bad "fleet rehearsal: exit $code; $(tail -5 run.err)"
python3 - run.json "$n" <<'PY' && ok "every node upgraded once, control planes first; one node list per 'cluster healthy' gate" || bad "fleet shape"
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
n = int(sys.argv[2])
ups = [e["step"].split("/")[-1] for e in evs if e["type"] == "step_done" and e["step"].split("/")[-1].startswith("upgrade node-")]
assert len(ups) == n and len(set(ups)) == n, (len(ups), len(set(ups)))
assert ups[:3] == ["upgrade node-1", "upgrade node-2", "upgrade node-3"], ups[:5]
argvs = [" ".join(e["argv"]) for e in evs if e["type"] == "exec"]
lists = [a for a in argvs if a.startswith("kubectl get nodes ")]
healthy = sum(e["polls"] for e in evs if e["type"] == "gate_done" and "cluster healthy" in e["gate"])
assert healthy >= n and len(lists) <= healthy + 5, (len(lists), healthy)
statuses = [a for a in argvs if a == "tailscale status --json"]
assert len(statuses) <= 5, len(statuses)
PY

# the self-check itself: a node changed behind the kept list's back (not
# through _node_changed) is an error with it, and goes unseen without it
cat >"$tmp/behind.lua" <<LUA
--! dry-run
package.path = "$src/runbooks/lib/?.lua;" .. package.path
local world = dofile("$src/runbooks/sim/world.lua")
package.loaded["runbook.world"] = world
local kube = require "kube"
world.load("$src/runbooks/scenarios/default.yaml")
function test_behind_the_back()
  kube.nodes()
  world.state().ix.node_by_name["k8s-2"].unschedulable = true
  local n = kube.nodes()[2]
  assert(n.name == "k8s-2")
  print("unschedulable " .. tostring(n.unschedulable))
end
LUA
out=$(RUNBOOK_SIM_SELFCHECK=1 "$bin" test --dry-run "$tmp/behind.lua" 2>&1)
case $out in *"kept node list is stale for k8s-2"*) ok "the self-check catches a change that bypassed _node_changed";;
  *) bad "self-check: $out";; esac
out=$("$bin" test --dry-run "$tmp/behind.lua" 2>&1)
case $out in *"unschedulable false"*) ok "without it the kept list does not see such a change (why every write goes through _node_changed)";;
  *) bad "no self-check: $out";; esac

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]

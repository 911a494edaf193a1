#!/usr/bin/env bash
# Issue #27's edges rehearsed whole: a rollout whose nodes answer only
# through DERP, a machine that does not accept subnet routes (rollout and
# validate), recover's rollback of a node that fell back (refused) and
# recover's tailnet path for dotted hostnames.
# usage: test_tailnet_edges_dryrun.sh RUNBOOK_BIN SOURCE_DIR
set -u
bin=$1; src=$2
source "$(dirname "$0")/../support/bounded.sh"   # every wait bounded, $bin_real for background runs
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0; passes=0
S="$src/runbooks/scenarios"
SU="Sequential node updates"

run() {   # run NAME SCENARIO SPEC [extra args...]: rollout.lua, asserted by check.py
  local name=$1 scen=$2 spec=$3; shift 3
  local dir="$tmp/$name"; mkdir -p "$dir"
  (cd "$dir" && "$bin" run rollout.lua --dry-run --scenario "$scen" --output json "$@" >events.jsonl 2>stderr.txt)
  local code=$?
  local plan="$dir/.runbook/rollout.plan.md"
  [ $code -ne 0 ] && plan="$dir/.runbook/rollout.plan.failed.md"
  if out=$(python3 "$src/tests/e2e/check.py" "$dir/events.jsonl" "$plan" "$code" "$spec" 2>&1); then
    echo "ok   $name"; passes=$((passes+1))
  else
    echo "FAIL $name: $out"; tail -5 "$dir/stderr.txt"; fails=$((fails+1))
  fi
}
expect() {   # expect NAME CODE PATTERN -- cmd...
  local name=$1 want=$2 pat=$3; shift 4
  local out code
  out=$("$@" 2>&1 </dev/null); code=$?
  if [ "$code" -ne "$want" ]; then echo "FAIL $name: exit $code, want $want; output: $(tail -5 <<<"$out")"; fails=$((fails+1)); return; fi
  if [ -n "$pat" ] && ! grep -qE -- "$pat" <<<"$out"; then echo "FAIL $name: no /$pat/ in: $(tail -8 <<<"$out")"; fails=$((fails+1)); return; fi
  echo "ok   $name"; passes=$((passes+1))
}
lacks() {   # lacks NAME FILE PATTERN
  if grep -qE -- "$3" "$2"; then echo "FAIL $1: /$3/ in $2"; fails=$((fails+1)); else echo "ok   $1"; passes=$((passes+1)); fi
}
has() {
  if grep -qE -- "$3" "$2"; then echo "ok   $1"; passes=$((passes+1)); else echo "FAIL $1: no /$3/ in $2"; fails=$((fails+1)); fi
}

# #27.5: a pong through DERP is an answer (tailscale ping --until-direct=false)
run derp-only "$S/faults/tailnet-derp-only.yaml" '{"exit": 0, "upgraded": ["192.168.10.11", "192.168.10.12", "192.168.10.13"],
  "ok_gates": ["k8s-1 online in the tailnet as k8s-1", "k8s-3 online in the tailnet as k8s-3"], "not_rolled_back": ["192.168.10.11"],
  "logs_have": ["k8s-1 answers tailscale ping \\(100\\.[0-9.]+, via DERP\\(fra\\)\\)"]}'

# #27.11: this machine does not accept routes: the last check says what to run
run admin-rejects-routes "$S/faults/admin-rejects-routes.yaml" '{"exit": 1,
  "failed": "validate access: .*API server through the route \\(this machine does not accept the tailnet.s subnet routes .*run `tailscale set --accept-routes`",
  "upgraded": ["192.168.10.11", "192.168.10.12", "192.168.10.13"],
  "logs_have": ["the route check at the end will fail: this machine does not accept the tailnet.s subnet routes"]}'
cd "$tmp"
expect "validate names the missing --accept-routes" 1 "✗ API server through the route: .*run \`tailscale set --accept-routes\`" -- \
  "$bin" run validate.lua --dry-run --scenario "$S/faults/admin-rejects-routes-after-rollout.yaml"
has "validate read this machine's prefs" .runbook/validate.plan.failed.md "tailscale debug prefs"

# #27.9: recover's rollback asks the node first
expect "rollback of a node that fell back is refused" 1 "refused: k8s-2 runs schematic 376567988ad3, not 4a0d65c669d4 \(named by talconfig.yaml's talosImageURL\): Talos may have fallen back already" -- \
  "$bin" run recover.lua --dry-run --scenario "$S/faults/fell-back-after-rollout-k8s-2.yaml" --var action=rollback --var node=k8s-2
lacks "... nothing rolled back" .runbook/recover.plan.failed.md "talosctl -n 192.168.10.12 rollback"
lacks "... not even the snapshot before it" .runbook/recover.plan.failed.md "etcd snapshot"
cat > rollout.journal <<JSON
{"type":"start","runbook":"rollout.lua","time":1}
{"type":"step","id":"Image Factory/compute the schematics","key":"schematic","name":"compute the schematics","result":{"pairs":[],"nodes":{"k8s-2":{"id":"4a0d65c669d46663f377e7161e50cfd570c401f26fd9e7bda34a0216b6f1922b","current_id":"376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"}}},"time":2}
{"type":"step","id":"$SU/upgrade k8s-2","key":"upgrade/k8s-2","name":"upgrade k8s-2","result":{},"time":3}
{"type":"finish","ok":true,"exit":0,"time":4}
JSON
expect "with the rollout's journal: it already runs its previous schematic" 1 "refused: k8s-2 already runs its previous schematic 376567988ad3 .*would boot the other slot, the new image 4a0d65c669d4, again; nothing was done" -- \
  "$bin" run recover.lua --dry-run --scenario "$S/faults/fell-back-after-rollout-k8s-2.yaml" --var action=rollback --var node=k8s-2 --var rollout_journal=rollout.journal
expect "a node on its new image is rolled back" 0 "rollback k8s-1" -- \
  "$bin" run recover.lua --dry-run --scenario "$S/faults/fell-back-after-rollout-k8s-2.yaml" --var action=rollback --var node=k8s-1
has "... after the snapshot, with the talosctl rollback" .runbook/recover.plan.md "talosctl -n 192.168.10.11 rollback"

# #27.13: the tailnet path by the device name, as the rollout named it
expect "recover reaches k8s-1.home over the tailnet as k8s-1-home" 0 "k8s-1.home via tailnet \(k8s-1-home.tail1234.ts.net\): reachable" -- \
  "$bin" run recover.lua --dry-run --scenario "$S/dotted-hostnames-after-rollout.yaml"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]

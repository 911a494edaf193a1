#!/usr/bin/env bash
# Issue #27, "a version matrix, tested": for each Talos minor the runbooks
# support (v1.8 .. v1.13, one real patch tag each, talosctl the same) and
# two talhelper releases on either side of the installer form's change
# (v3.0.23 writes installer/<id>, v3.0.24 and later metal-installer/<id>:
# budimanjojo/talhelper pkg/config/defaults.go), rehearse rollout.lua,
# then validate.lua, rollback.lua and recover.lua (action=diagnose) on the
# same cluster after a rollout. The scenarios are made here from
# runbooks/scenarios/default.yaml and after-rollout.yaml.
# One line per cell; a cell in KNOWN fails with its reason, not the suite.
# usage: test_version_matrix.sh RUNBOOK_BIN SOURCE_DIR
set -u
bin=$1; src=$2
source "$(dirname "$0")/../support/bounded.sh"   # every wait bounded, $bin_real for background runs
tmp=$(mktemp -d); trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
fails=0; passes=0; known=0
S="$src/runbooks/scenarios"
CHECK="$src/tests/e2e/check.py"

# Talos tags (each a real tag of siderolabs/talos; v1.8.2 for its extension
# health `Fail`, runbooks/sim/talosctl.lua) and talhelper releases
TALOS="v1.8.2 v1.8.4 v1.9.5 v1.10.6 v1.11.5 v1.12.6 v1.13.0"
TALHELPER="v3.0.23 v3.1.16"
# cells that fail for a reason not fixed here: "talos/talhelper/step reason"
KNOWN=""

# gen.py SRC OUT TALOS TALHELPER [schematic]: the scenario at that version:
# the nodes' images and talconfig's talosVersion at TALOS, the factory
# offering it, talosctl the same (or env TALOSCTL), Kubernetes the default of that Talos
# (constants.DefaultKubernetesVersion, runbooks/sim/talos/generate.lua).
# With "schematic", talconfig names a controlPlane schematic: block and no
# talosImageURL, so talhelper itself writes the installer URL.
cat >"$tmp/gen.py" <<'PY'
import os, re, sys
src, out, talos, th = sys.argv[1:5]
client = os.environ.get("TALOSCTL") or talos
K8S = {"8": "v1.31.4", "9": "v1.32.3", "10": "v1.33.3", "11": "v1.34.1", "12": "v1.35.2", "13": "v1.36.0"}
s = open(src).read()
assert "v1.10.6" in s and "v1.33.3" in s, "seed scenario changed: " + src
s = s.replace("v1.10.6", talos).replace("v1.33.3", K8S[talos.split(".")[1]])
s, n = re.subn(r"(?m)^  versions: \[.*\]$", "  versions: [%s]" % talos, s)
assert n == 1, "factory.versions"
head = "  talosVersion: %s\n  kubernetesVersion" % talos
assert head in s, "cluster.talosVersion"
s = s.replace(head, "  talosVersion: %s\n  talosctlVersion: %s\n  talhelperVersion: %s\n  kubernetesVersion"
              % (talos, client, th), 1)
if len(sys.argv) > 5:
    url = "      talosImageURL: factory.talos.dev/installer/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba\n"
    img = ("      image: factory.talos.dev/installer/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba:%s\n"
           "      extensions: []\n" % talos)
    assert s.count(url) == 3 and s.count(img) == 3, "seed nodes changed"
    s = s.replace(url, "").replace(img, "      schematic: {customization: {systemExtensions: "
                                        "{officialExtensions: [siderolabs/iscsi-tools]}}}\n")
    s = s.replace("  clusterSvcNets:\n    - 10.43.0.0/16\n", "  clusterSvcNets:\n    - 10.43.0.0/16\n  controlPlane:\n"
                  "    schematic:\n      customization:\n        systemExtensions:\n          officialExtensions:\n"
                  "            - siderolabs/iscsi-tools\n", 1)
open(out, "w").write(s)
PY

# talconfig.yaml before the rollout, for rollback's journal
python3 - "$S/default.yaml" >"$tmp/talconfig.orig.yaml" <<'PY'
import sys, yaml
print(yaml.safe_load(open(sys.argv[1]))["talconfig"], end="")
PY

# the records a rollout writes that rollback.lua reads (by their keys)
journal() {
  cat <<'JSON'
{"type":"start","runbook":"rollout.lua","time":1}
{"type":"step","id":"Image Factory/work out the schematic","key":"schematic","name":"work out the schematic","result":{"id":"4a0d65c669d46663f377e7161e50cfd570c401f26fd9e7bda34a0216b6f1922b","current_id":"376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"},"time":2}
{"type":"step","id":"Configuration/update talconfig.yaml","key":"talconfig","name":"update talconfig.yaml","result":{"backup":"talconfig.orig.yaml"},"time":3}
{"type":"step","id":"Sequential node updates/upgrade k8s-1","key":"upgrade/k8s-1","name":"upgrade k8s-1","result":{},"time":4}
{"type":"step","id":"Sequential node updates/upgrade k8s-2","key":"upgrade/k8s-2","name":"upgrade k8s-2","result":{},"time":5}
{"type":"step","id":"Sequential node updates/upgrade k8s-3","key":"upgrade/k8s-3","name":"upgrade k8s-3","result":{},"time":6}
{"type":"finish","ok":true,"exit":0,"time":7}
JSON
}

# rollback's order (check.py's is the rollout's: the tailnet gate between
# nodes): newest first, each node's previous image installed with the
# version's flags, then its gates (previous schematic, Ready, etcd
# healthy) before the next node. usage: EVENTS EXIT "IMAGE-RE|FLAGS-RE"
cat >"$tmp/rollback_check.py" <<'PY'
import json, re, sys
evs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
code = int(sys.argv[2]); image, flags = sys.argv[3].split("|")
errs = [] if code == 0 else ["exit %d, want 0" % code]
nodes = []
for e in evs:
    if e["type"] != "exec" or "upgrade" not in e["argv"]: continue
    argv = e["argv"]; node = argv[argv.index("-n") + 1]
    if nodes and nodes[-1][1] == node: continue      # an exec's events come twice
    nodes.append((e["seq"], node))
    line = " ".join(argv[argv.index("upgrade"):])
    if not re.fullmatch("upgrade --image " + image + flags, line): errs.append("%s: %s" % (node, line))
if [n for _, n in nodes] != ["192.168.10.13", "192.168.10.12", "192.168.10.11"]:
    errs.append("upgraded %s, want k8s-3, k8s-2, k8s-1" % [n for _, n in nodes])
gates = [(e["seq"], e["gate"]) for e in evs if e["type"] == "gate_done"]
for i, (seq, node) in enumerate(nodes):
    host = "k8s-" + node[-1]
    end = nodes[i + 1][0] if i + 1 < len(nodes) else float("inf")
    for g in (host + " runs the previous schematic", host + " Ready", "etcd healthy after " + host):
        if not any(seq < s < end and g in name for s, name in gates):
            errs.append("no gate %r after %s's install" % (g, host))
print("\n".join(errs))
sys.exit(1 if errs else 0)
PY

# cell NAME SPEC RUNBOOK SCENARIO [args...]: runs it in its own directory,
# asserts SPEC (check.py) on its events and plan; prints ok/FAIL/KNOWN
cell() {
  local name=$1 spec=$2 rb=$3 scen=$4; shift 4
  local dir="$tmp/$name" base=${rb%.lua}; mkdir -p "$dir"
  [ "$rb" = rollback.lua ] && { journal >"$dir/rollout.journal"; cp "$tmp/talconfig.orig.yaml" "$dir/"; }
  (cd "$dir" && "$bin" run "$rb" --dry-run --scenario "$scen" --output json "$@" >events.jsonl 2>stderr.txt)
  local code=$? plan="$dir/.runbook/$base.plan.md" out reason
  [ $code -ne 0 ] && [ -f "$dir/.runbook/$base.plan.failed.md" ] && plan="$dir/.runbook/$base.plan.failed.md"
  [ -f "$plan" ] || plan=-
  reason=$(printf '%s\n' "$KNOWN" | awk -v k="$name" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }')
  if [ "$rb" = rollback.lua ]; then
    out=$(python3 "$tmp/rollback_check.py" "$dir/events.jsonl" "$code" "$spec" 2>&1)
  else
    out=$(python3 "$CHECK" "$dir/events.jsonl" "$plan" "$code" "$spec" 2>&1)
  fi
  if [ $? -eq 0 ]; then
    if [ -n "$reason" ]; then echo "FAIL $name: listed as known ($reason) but passes"; fails=$((fails+1))
    else echo "ok   $name"; passes=$((passes+1)); fi
  elif [ -n "$reason" ]; then
    echo "KNOWN $name: $reason"; known=$((known+1))
  else
    echo "FAIL $name: $(echo "$out" | head -3 | tr '\n' ' ')"; tail -3 "$dir/stderr.txt"; fails=$((fails+1))
  fi
}

ALL='"192.168.10.11", "192.168.10.12", "192.168.10.13"'
for t in $TALOS; do
  minor=${t#v1.}; minor=${minor%%.*}
  for th in $TALHELPER; do
    pre=$t/$th
    python3 "$tmp/gen.py" "$S/default.yaml" "$tmp/before-$t-$th.yaml" "$t" "$th" schematic
    python3 "$tmp/gen.py" "$S/after-rollout.yaml" "$tmp/after-$t-$th.yaml" "$t" "$th"
    # the installer form talhelper writes for a schematic: block
    if [ "$th" = v3.0.23 ]; then form=installer; other=metal-installer; else form=metal-installer; other=installer; fi
    # talosctl upgrade's flags (cmd/talosctl/cmd/talos/upgrade.go): up to
    # v1.12 --wait=false returns at once; v1.13 waits for the drain and boot
    if [ "$minor" -ge 13 ]; then flags=' --timeout=[0-9]+s'; noflag='--wait=false'
    else flags=' --wait=false'; noflag='--drain'; fi
    img="factory\\\\.talos\\\\.dev/$form/[0-9a-f]{64}:${t//./\\\\.}"
    if [ "$th" = v3.0.23 ] && [ "$minor" -ge 12 ]; then
      # talhelper v3.0.23 accepts Talos up to v1.11 (pkg/config/validator.go
      # checkSupportedTalosVersion): its genconfig refuses the talconfig and
      # the rollout stops before any change (exit 2, refused: #28.3), with talhelper's message
      cell "$pre/rollout" "{\"exit\": 2, \"not_upgraded\": [$ALL],
        \"logs_have\": [\"(?s)talhelper genconfig failed: .*\\\"${t//./\\\\.}\\\" is not a supported Talos version\"],
        \"plan_lacks\": [\"Files it would change\", \"upgrade --image\"]}" rollout.lua "$tmp/before-$t-$th.yaml"
    else
      cell "$pre/rollout" "{\"exit\": 0, \"upgraded\": [$ALL],
        \"ok_gates\": [\"k8s-1 online in the tailnet as k8s-1\", \"k8s-3 online in the tailnet as k8s-3\"],
        \"plan_has\": [\"^\\\\[[0-9:]+\\\\] \\\\$ talosctl -n 192\\\\.168\\\\.10\\\\.11 upgrade --image $img$flags$\"],
        \"plan_lacks\": [\"upgrade --image factory\\\\.talos\\\\.dev/$other/\", \"upgrade .*$noflag\"]}" \
        rollout.lua "$tmp/before-$t-$th.yaml"
    fi
    # the rest does not depend on talhelper: once per Talos version
    [ "$th" = v3.1.16 ] || continue
    # talosctl one minor newer than the nodes (docs/rollout.md "Versions"):
    # a v1.13 client against older nodes passes --drain=false --wait=false
    next=$(set -- $TALOS; while [ $# -gt 1 ] && [ "$1" != "$t" ]; do shift; done; echo "${2:-}")
    if [ -n "$next" ]; then
      if [ "${next#v1.13.}" != "$next" ]; then nflags=' --drain=false --wait=false'; else nflags=' --wait=false'; fi
      TALOSCTL=$next python3 "$tmp/gen.py" "$S/default.yaml" "$tmp/client-$t.yaml" "$t" "$th" schematic
      cell "$t/talosctl-$next/rollout" "{\"exit\": 0, \"upgraded\": [$ALL],
        \"ok_gates\": [\"k8s-3 online in the tailnet as k8s-3\"],
        \"plan_has\": [\"^\\\\[[0-9:]+\\\\] \\\\$ talosctl -n 192\\\\.168\\\\.10\\\\.13 upgrade --image $img$nflags$\"]}" \
        rollout.lua "$tmp/client-$t.yaml"
    fi
    cell "$t/validate" '{"exit": 0, "logs_have": ["etcd healthy on 3 members", "route served: 10.43.0.0/16",
      "k8s-3: talosctl answers over the tailnet"]}' validate.lua "$tmp/after-$t-$th.yaml"
    # diagnosis is recover.lua's default action (action=none)
    cell "$t/recover-diagnose" "{\"exit\": 0, \"logs_have\": [\"etcd: healthy\",
      \"k8s-3 via tailnet \\\\(k8s-3\\\\.tail1234\\\\.ts\\\\.net\\\\): reachable, Talos ${t//./\\\\.}, schematic 4a0d65c669d4, ext-tailscale running\"]}" \
      recover.lua "$tmp/after-$t-$th.yaml"
    # rollback re-installs each node's previous image (at the same Talos);
    # its SPEC is rollback_check.py's "IMAGE-REGEX|FLAGS-REGEX"
    prev="factory\\.talos\\.dev/installer/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba:${t//./\\.}"
    cell "$t/rollback" "$prev|$flags" rollback.lua "$tmp/after-$t-$th.yaml" --var rollout_journal=rollout.journal
  done
done

echo "$passes passed, $fails failed${known:+, $known known}"
[ $fails -eq 0 ]

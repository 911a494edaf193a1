#!/usr/bin/env bash
# Issue #28.5 through the served world (`runbook world serve`, real
# processes and sockets): a dual-stack cluster (runbooks/scenarios/
# dual-stack.yaml, tailscale0's addresses in the kubelet's way on every
# node) rolled out; the pins hold each node's IPv4 and IPv6 address, and
# once tailscale0 is up the kubelet keeps both node IPs (talosctl get
# nodeips, kubectl's InternalIPs), none of them tailscale0's 100.64.0.0/10
# or fd7a:115c:a1e0::/48 address. Pins of the IPv4 address alone (the old
# code) drop the IPv6 node IP: the nodeips and InternalIP checks fail.
# Then the pins' sanity (#28.3): pins that would not hold a node's address
# (a LAN in 100.64.0.0/10, an operator's stale validSubnets) are refused on
# the scratch copy: exit 2, git status clean, no node touched.
# usage: test_address_pins.sh RUNBOOK_BIN SOURCE_DIR
source "$(dirname "$0")/common.sh" "$@"
source "$(dirname "$0")/staged_lib.sh"

python3 - "$src/runbooks/scenarios/dual-stack.yaml" "$tmp/dual.yaml" <<'PY'
import sys
s = open(sys.argv[1]).read().replace("bootSeconds: [90, 150]", "bootSeconds: [1, 2]")
faults = "".join("  - {type: node_ip_on_tailscale, node: k8s-%d}\n" % i for i in (1, 2, 3))
open(sys.argv[2], "w").write(s.replace("faults: []\n", "faults:\n" + faults))
PY
serve "$tmp/dual" "$tmp/dual.yaml"
TS_AUTHKEY=$key "$bin" run rollout.lua --yes "${common[@]}" >"$tmp/dual.out" 2>&1; code=$?
[ $code -eq 0 ] && ok "dual-stack rollout: exit 0" \
  || bad "dual-stack rollout: exit $code: $(grep -m1 'stopped:' "$tmp/dual.out")"

# the pins: each node's addresses of both families, single addresses
if python3 - <<'PY'
import yaml
for i in (1, 2, 3):
    docs = list(yaml.safe_load_all(open("patches/tailscale-pins-k8s-%d.yaml" % i)))
    kubelet = docs[0]["machine"]["kubelet"]["nodeIP"]["validSubnets"]
    etcd = docs[0]["cluster"]["etcd"]["advertisedSubnets"]
    assert kubelet == ["192.168.10.1%d/32" % i, "fdb5:8d3a:10::1%d/128" % i], kubelet
    assert etcd == ["192.168.10.1%d/32" % i], etcd
PY
then ok "the pins hold both families: validSubnets [192.168.10.1N/32, fdb5:8d3a:10::1N/128], etcd the IPv4 address"
else bad "the pins: $(cat patches/tailscale-pins-k8s-1.yaml 2>&1 | tr '\n' ' ')"; fi

# tailscale0 is up on every node (its addresses among the routed ones), and
# the kubelet keeps its LAN node IPs of both families
members=$(talosctl -n 192.168.10.11 get members -o json 2>&1)
if python3 -c '
import json, sys
docs = json.loads("[" + sys.argv[1].replace("}\n{", "},\n{") + "]")
for d in docs:
    a = d["spec"]["addresses"]
    assert any(x.startswith("100.64.") for x in a) and any(x.startswith("fd7a:115c:a1e0:") for x in a), a
' "$members"; then ok "tailscale0 is up on every node: its 100.64.0.0/10 and fd7a:115c:a1e0::/48 addresses are routed"
else bad "tailscale0's addresses not routed: $members"; fi

for i in 1 2 3; do
  ips=$(talosctl -n 192.168.10.1$i get nodeips -o json 2>&1)
  if python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["spec"]["addresses"] == [sys.argv[2], sys.argv[3]], d["spec"]
' "$ips" "192.168.10.1$i" "fdb5:8d3a:10::1$i"; then
    ok "k8s-$i: talosctl get nodeips: 192.168.10.1$i and fdb5:8d3a:10::1$i after tailscale0 came up"
  else bad "k8s-$i: nodeips $(echo "$ips" | tr -d ' \n')"; fi
done

nodes=$(kubectl get nodes -o json 2>&1)
if python3 -c '
import ipaddress, json, sys
tail = [ipaddress.ip_network("100.64.0.0/10"), ipaddress.ip_network("fd7a:115c:a1e0::/48")]
for n in json.loads(sys.argv[1])["items"]:
    i = n["metadata"]["name"][-1]
    got = [a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP"]
    assert got == ["192.168.10.1" + i, "fdb5:8d3a:10::1" + i], (n["metadata"]["name"], got)
    assert not any(ipaddress.ip_address(a) in t for a in got for t in tail), got
' "$nodes"; then ok "kubectl get nodes: each node's InternalIPs are its IPv4 and IPv6 LAN addresses, none on tailscale0"
else bad "kubectl get nodes InternalIPs: $(echo "$nodes" | python3 -c 'import json,sys; print([(n["metadata"]["name"], n["status"]["addresses"]) for n in json.load(sys.stdin)["items"]])' 2>&1)"; fi

truthful "dual-stack: after the rollout"
cd "$tmp"

# {== the pins' sanity (#28.3): pins that would not hold a node's address
# are refused on the scratch copy (exit 2), the directory as git knows it,
# no node touched
# refused NAME WHAT PATTERN: the last run ($code) refused with PATTERN
refused() {
  local st state
  st=$(git status --porcelain --untracked-files=all); state=$(curl -s "$url/state")
  if [ "$code" -eq 2 ] && grep -q "$3" "$tmp/$1.out" && grep -q "Nothing was changed" "$tmp/$1.out" && [ -z "$st" ] \
     && ! grep -q "write the address pins\|? Apply" "$tmp/$1.out" \
     && python3 -c 'import json,sys; s=json.loads(sys.argv[1]); assert all(n["upgrades"] == 0 and not n["configured"] for n in s["nodes"]), s' "$state"; then
    ok "$2: refused on the scratch copy (exit 2), git status clean, no node touched: $(grep -o "$3" "$tmp/$1.out" | head -1)"
  else
    bad "$2: exit $code; git status: $st; $(grep -m1 stopped: "$tmp/$1.out")"
  fi
  cd "$tmp"
}

# a LAN in Tailscale's CGNAT range: the /32 pins overlap 100.64.0.0/10
sed 's/192\.168\.10\./100.100.10./g; /node_ip_on_tailscale/d; s/^faults:$/faults: []/' "$tmp/dual.yaml" > "$tmp/cgnat.yaml"
serve "$tmp/cgnat" "$tmp/cgnat.yaml"
TS_AUTHKEY=$key "$bin" run rollout.lua --yes "${common[@]}" >"$tmp/cgnat.out" 2>&1; code=$?
refused cgnat "a LAN in 100.64.0.0/10" "k8s-1: the kubelet pin 100.100.10.11/32 overlaps the tailnet range 100.64.0.0/10"

# the operator's own kubelet pin, stale (the node's address moved to
# 192.168.10.0/24): the rollout counts k8s-1 as pinned and would reboot it
# with a filter that keeps none of its addresses
mkdir -p "$tmp/stale/patches"
python3 - "$src/runbooks/scenarios/default.yaml" "$tmp/stale/talconfig.yaml" <<'PY'
import sys, yaml
text = yaml.safe_load(open(sys.argv[1]))["talconfig"]
disk = "    installDisk: /dev/sda\n"
assert disk in text
open(sys.argv[2], "w").write(text.replace(disk, disk + "    patches:\n      - \"@./patches/kubelet-k8s-1.yaml\"\n", 1))
PY
printf 'machine:\n  kubelet:\n    nodeIP:\n      validSubnets:\n        - 192.168.20.0/24\n' > "$tmp/stale/patches/kubelet-k8s-1.yaml"
serve "$tmp/stale"
TS_AUTHKEY=$key "$bin" run rollout.lua --yes "${common[@]}" >"$tmp/stale.out" 2>&1; code=$?
refused stale "an operator's validSubnets that excludes the node's address" \
  "k8s-1: the kubelet's validSubnets \[192.168.20.0/24\] would not keep the current address 192.168.10.11"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]

#!/usr/bin/env bash
# The served world's Kubernetes API (runbooks/sim/kubeapi.lua, kubewrite.lua)
# on 127.0.0.1: through libcurl (kubeapi_client.lua: Leases, ConfigMaps,
# Secrets, resourceVersion conflicts, 404/409 Status objects, watch) and
# through the real kubectl (discovery, tables, nodes, pods, services,
# servicecidrs, wait, create/replace/patch/get -w/delete; the kube lib).
# usage: test_kubeapi.sh RUNBOOK_BIN SOURCE_DIR
source "$(dirname "$0")/common.sh" "$@"

"$bin_real" world serve --dir "$tmp/world" 2>"$tmp/serve.log" & srv=$!
for _ in $(seq 100); do [ -s "$tmp/world/world.url" ] && break; sleep 0.05; done
url=$(cat "$tmp/world/world.url" 2>/dev/null)
case "$url" in http://127.0.0.1:*) ok "world serve listens on loopback";; *) bad "world serve did not start: $(cat "$tmp/serve.log")"; exit 1;; esac
token=${url##*/}

# through libcurl, as a store backend uses it
if RUNBOOK_WORLD_DIR="$tmp/world" timeout 120 "$bin" test "$src/tests/e2e/kubeapi_client.lua" >"$tmp/client.out" 2>&1; then
  ok "the API through libcurl: $(tail -1 "$tmp/client.out")"
else
  bad "the API through libcurl:"; cat "$tmp/client.out"
fi

# {====== the real kubectl, through DIR/bin/kubectl (the real one with DIR/kubeconfig)
export PATH="$tmp/world/bin:$PATH"
real=$(sed -n "s/.* exec '\(.*\)' \"\$@\"/\1/p" "$tmp/world/bin/kubectl")
case "$real" in /*kubectl) ok "bin/kubectl runs the real kubectl ($real) with the served kubeconfig";; *) bad "bin/kubectl: $(cat "$tmp/world/bin/kubectl")";; esac
grep -q '^    server: https://127.0.0.1:' "$tmp/world/kubeconfig" && grep -q 'certificate-authority-data:' "$tmp/world/kubeconfig" \
  && ok "the kubeconfig names the HTTPS port on 127.0.0.1 and its certificate" || bad "kubeconfig: $(grep server "$tmp/world/kubeconfig")"
k() { timeout 30 kubectl "$@"; }
k version -o json >"$tmp/v.json" 2>&1
python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); assert v["serverVersion"]["gitVersion"]=="v1.33.3", v' "$tmp/v.json" \
  && ok "kubectl version: the server is the scenario's Kubernetes" || bad "kubectl version: $(cat "$tmp/v.json")"
k get nodes >"$tmp/nodes.txt" 2>&1
if head -1 "$tmp/nodes.txt" | grep -Eq '^NAME +STATUS +ROLES +AGE +VERSION$' && [ "$(grep -c ' Ready  *control-plane ' "$tmp/nodes.txt")" = 3 ]; then
  ok "kubectl get nodes: the server-side Table, three Ready control planes"
else bad "kubectl get nodes: $(cat "$tmp/nodes.txt")"; fi
k get nodes -o wide >"$tmp/wide.txt" 2>&1
grep -Eq '^k8s-1 +Ready +control-plane +[0-9a-z]+ +v1.33.3 +192.168.10.11 +<none> +Talos \(v1.10.6\)' "$tmp/wide.txt" \
  && ok "kubectl get nodes -o wide: INTERNAL-IP and OS-IMAGE" || bad "-o wide: $(cat "$tmp/wide.txt")"
k get node k8s-1 -o json >"$tmp/node.json" 2>&1
python3 - "$tmp/node.json" <<'PY' && ok "kubectl get node -o json: addresses, Ready, nodeInfo, labels" || bad "node json: $(head -c 400 "$tmp/node.json")"
import json, sys
n = json.load(open(sys.argv[1]))
assert n["kind"] == "Node" and n["metadata"]["name"] == "k8s-1"
assert {"type": "InternalIP", "address": "192.168.10.11"} in n["status"]["addresses"]
assert [c["status"] for c in n["status"]["conditions"] if c["type"] == "Ready"] == ["True"]
assert n["status"]["nodeInfo"]["kubeletVersion"] == "v1.33.3"
assert "node-role.kubernetes.io/control-plane" in n["metadata"]["labels"]
PY
k get node k8s-1 -o yaml | grep -q '^kind: Node$' && ok "kubectl get node -o yaml" || bad "-o yaml"
k get node no-such-node >"$tmp/nf.txt" 2>&1; code=$?
[ $code -eq 1 ] && grep -q 'Error from server (NotFound): nodes "no-such-node" not found' "$tmp/nf.txt" \
  && ok "a missing node: NotFound as kubectl prints a 404 Status, exit 1" || bad "missing node: exit $code $(cat "$tmp/nf.txt")"
k wait --for=condition=Ready node/k8s-2 --timeout=10s >"$tmp/wait.txt" 2>&1 && grep -q 'node/k8s-2 condition met' "$tmp/wait.txt" \
  && ok "kubectl wait --for=condition=Ready node/k8s-2" || bad "kubectl wait: $(cat "$tmp/wait.txt")"
pods=$(k get pods -n kube-system -o name 2>&1)
echo "$pods" | grep -qx 'pod/kube-apiserver-k8s-1' && echo "$pods" | grep -q '^pod/coredns-' \
  && [ "$(k get pods -n tailscale -o jsonpath='{.items[*].status.phase}')" = Running ] \
  && ok "pods of kube-system and of the operator's namespace" || bad "pods: $pods"
[ "$(k get svc kubernetes -n default -o jsonpath='{.spec.clusterIP}')" = 10.43.0.1 ] \
  && [ "$(k get servicecidr kubernetes -o jsonpath='{.spec.cidrs[*]}')" = 10.43.0.0/16 ] \
  && ok "the kubernetes Service's ClusterIP and the ServiceCIDR come from the service CIDR" || bad "service/servicecidr"

# kubectl's typed generators (protobuf bodies from v1.33, JSON before)
if k create namespace runbook-ns >/dev/null 2>&1 && k create configmap journal -n runbook-ns --from-literal=0001=started >/dev/null 2>&1 \
   && k create secret generic creds -n runbook-ns --from-literal=pw=hunter2 >/dev/null 2>&1 \
   && [ "$(k get configmap journal -n runbook-ns -o jsonpath='{.data.0001}')" = started ] \
   && [ "$(k get secret creds -n runbook-ns -o jsonpath='{.data.pw}')" = aHVudGVyMg== ] \
   && [ -z "$(k get configmap journal -n runbook-ns -o jsonpath='{.metadata.generateName}')" ]; then
  ok "kubectl create namespace/configmap/secret generic (typed generators)"
else bad "typed generators: $(k get cm,secret -n runbook-ns 2>&1)"; fi
k delete namespace runbook-ns >/dev/null 2>&1 && ! k get configmap journal -n runbook-ns >/dev/null 2>&1 \
  && ok "deleting the namespace deletes its objects" || bad "namespace delete"

# a Lease through kubectl from a file (no OpenAPI served: --validate=false)
cat >"$tmp/lease.yaml" <<'YAML'
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: runbook-lock, namespace: default}
spec: {holderIdentity: alice@laptop, leaseDurationSeconds: 15}
YAML
k create -f "$tmp/lease.yaml" --validate=false >/dev/null 2>&1 && ok "kubectl create -f: a Lease" || bad "create lease"
k create -f "$tmp/lease.yaml" --validate=false >"$tmp/ae.txt" 2>&1; code=$?
[ $code -eq 1 ] && grep -q '(AlreadyExists).*leases.coordination.k8s.io "runbook-lock" already exists' "$tmp/ae.txt" \
  && ok "create again: AlreadyExists (409)" || bad "create again: exit $code $(cat "$tmp/ae.txt")"
k get lease runbook-lock -o json >"$tmp/lease.json"
(timeout 8 kubectl get lease runbook-lock -w -o jsonpath='{.spec.holderIdentity}{"\n"}' >"$tmp/lw.txt" 2>&1 &)
# the watch's list has been printed: the change comes after it (bounded)
for _ in $(seq 80); do [ -s "$tmp/lw.txt" ] && break; sleep 0.1; done
k patch lease runbook-lock --type=merge -p '{"spec":{"holderIdentity":"bob@ci"}}' >/dev/null 2>&1
k replace -f "$tmp/lease.json" --validate=false >"$tmp/conf.txt" 2>&1; code=$?
[ $code -eq 1 ] && grep -q '(Conflict).*Operation cannot be fulfilled on leases.coordination.k8s.io "runbook-lock": the object has been modified' "$tmp/conf.txt" \
  && ok "kubectl replace with a stale resourceVersion: Conflict (409)" || bad "stale replace: exit $code $(cat "$tmp/conf.txt")"
[ "$(k get lease runbook-lock -o jsonpath='{.spec.holderIdentity}')" = bob@ci ] && ok "the stale replace wrote nothing" || bad "lease after stale replace"
for _ in $(seq 80); do grep -qx 'bob@ci' "$tmp/lw.txt" 2>/dev/null && break; sleep 0.1; done
[ "$(head -1 "$tmp/lw.txt")" = alice@laptop ] && grep -qx 'bob@ci' "$tmp/lw.txt" \
  && ok "kubectl get -w: the lease, then its change (watch)" || bad "watch: $(cat "$tmp/lw.txt")"
k delete lease runbook-lock >/dev/null 2>&1 && ! k get lease runbook-lock >/dev/null 2>&1 && ok "kubectl delete, then NotFound" || bad "delete lease"

k cordon k8s-3 >"$tmp/cordon.txt" 2>&1 && [ "$(k get node k8s-3 -o jsonpath='{.spec.unschedulable}')" = true ] \
  && k get nodes | grep -Eq '^k8s-3 +Ready,SchedulingDisabled ' && k uncordon k8s-3 >/dev/null 2>&1 \
  && [ -z "$(k get node k8s-3 -o jsonpath='{.spec.unschedulable}')" ] \
  && ok "kubectl cordon/uncordon: the node's spec.unschedulable (a patch the world takes)" || bad "cordon: $(cat "$tmp/cordon.txt")"

# the runbooks' kube lib through the real kubectl
if RUNBOOK_SOURCE="$src" timeout 120 "$bin" test "$src/tests/e2e/kube_lib_client.lua" >"$tmp/lib.out" 2>&1; then
  ok "runbooks/lib/kube.lua through the real kubectl: $(tail -1 "$tmp/lib.out")"
else bad "kube lib:"; cat "$tmp/lib.out"; fi
# }======

# a second world served while the first's bin/ is first on PATH: its
# kubectl is still the real one, not the first world's wrapper
"$bin_real" world serve --dir "$tmp/world2" 2>"$tmp/serve2.log" & srv2=$!
for _ in $(seq 100); do [ -s "$tmp/world2/world.url" ] && [ -s "$tmp/world2/env" ] && break; sleep 0.05; done
real2=$(sed -n "s/.* exec '\(.*\)' \"\$@\"/\1/p" "$tmp/world2/bin/kubectl")
kill $srv2 2>/dev/null; wait $srv2 2>/dev/null
[ -n "$real" ] && [ "$real2" = "$real" ] && ok "a world served after another runs the real kubectl, not the other's wrapper" \
  || bad "second world's kubectl: $(cat "$tmp/world2/bin/kubectl")"

# the token is in no file but the 0600 ones, and in no log
[ "$(stat -c %a "$tmp/world/kubeconfig")" = 600 ] && ok "the kubeconfig is 0600" || bad "kubeconfig mode $(stat -c %a "$tmp/world/kubeconfig")"
if grep -rlF -- "$token" "$tmp" --exclude-dir=world2 2>/dev/null | grep -vxF -e "$tmp/world/world.url" -e "$tmp/world/kubeconfig" -e "$tmp/world/env" | grep -q .; then
  bad "the token is in other files: $(grep -rlF -- "$token" "$tmp")"
else
  ok "the token is only in world.url, env and kubeconfig (0600)"
fi

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]

#!/usr/bin/env bash
# Writes a talhelper talconfig.yaml of N nodes (3 control planes, the rest
# workers) into DIR, for the fleet rehearsal: `runbook run rollout.lua
# --dry-run` there builds its world from it. With --scenario it also writes
# DIR/scenario.yaml, the same cluster as a world scenario (docs/simulation.md)
# with each reboot taking --boot SECONDS (default 90) and the faults given
# as --fault TYPE:NODE, for `--scenario` or `runbook world serve`.
# usage: gen_fleet.sh N DIR [--scenario] [--boot SECONDS] [--fault TYPE:NODE]...
set -eu
usage() { echo "usage: gen_fleet.sh N DIR [--scenario] [--boot SECONDS] [--fault TYPE:NODE]..." >&2; exit 2; }
n=${1:-}; dir=${2:-}
[ -n "$n" ] && [ -n "$dir" ] || usage
shift 2
scenario=false; boot=90; faults=()
while [ $# -gt 0 ]; do
  case $1 in
    --scenario) scenario=true;;
    --boot) boot=${2:?--boot needs seconds}; shift;;
    --fault) faults+=("${2:?--fault needs TYPE:NODE}"); shift;;
    *) usage;;
  esac
  shift
done
mkdir -p "$dir"
vanilla=376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba
ip_of() { echo "10.$(($1 / 65536 + 1)).$(($1 / 256 % 256)).$(($1 % 256))"; }
{
  cat <<YAML
clusterName: fleet
talosVersion: v1.10.6
kubernetesVersion: v1.33.3
endpoint: https://10.0.0.10:6443
clusterPodNets:
  - 10.244.0.0/16
clusterSvcNets:
  - 10.96.0.0/12
nodes:
YAML
  for ((i = 1; i <= n; i++)); do
    cp=false; [ "$i" -le 3 ] && cp=true
    printf '  - hostname: node-%d\n    ipAddress: %s\n    controlPlane: %s\n    installDisk: /dev/sda\n    talosImageURL: factory.talos.dev/installer/%s\n' \
      "$i" "$(ip_of "$i")" "$cp" "$vanilla"
  done
} > "$dir/talconfig.yaml"
$scenario || exit 0
{
  printf 'seed: 1\ncluster:\n  name: fleet\n  talosVersion: v1.10.6\n  kubernetesVersion: v1.33.3\n'
  printf '  serviceCIDR: 10.96.0.0/12\n  podCIDR: 10.244.0.0/16\n  nodes:\n'
  for ((i = 1; i <= n; i++)); do
    role=worker; [ "$i" -le 3 ] && role=controlplane
    printf '    - hostname: node-%d\n      ip: %s\n      role: %s\n      image: factory.talos.dev/installer/%s:v1.10.6\n      extensions: []\n      bootSeconds: [%s, %s]\n' \
      "$i" "$(ip_of "$i")" "$role" "$vanilla" "$boot" "$boot"
  done
  cat <<YAML
factory:
  versions: [v1.10.6]
  extensions: [siderolabs/tailscale]
tailnet:
  name: tail1234.ts.net
  autoApprovedRoutes: [10.96.0.0/12]
  authKey: {reusable: true, preauthorized: true, expired: false}
  devices:
    - hostname: tailscale-operator
      tags: [tag:k8s-operator]
      online: true
  operator: {namespace: tailscale, deployment: operator, pods: 1}
talconfig: |
YAML
  sed 's/^/  /' "$dir/talconfig.yaml"
  if [ ${#faults[@]} -eq 0 ]; then echo "faults: []"; else
    echo "faults:"
    for f in "${faults[@]}"; do printf '  - {type: %s, node: %s}\n' "${f%%:*}" "${f#*:}"; done
  fi
} > "$dir/scenario.yaml"

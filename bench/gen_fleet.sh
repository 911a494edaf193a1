#!/usr/bin/env bash
# Writes a talhelper talconfig.yaml of N nodes (3 control planes, the rest
# workers) into DIR, for the fleet rehearsal: `runbook run rollout.lua
# --dry-run` there builds its world from it. usage: gen_fleet.sh N DIR
set -eu
n=${1:?usage: gen_fleet.sh N DIR}
dir=${2:?usage: gen_fleet.sh N DIR}
mkdir -p "$dir"
vanilla=376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba
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
    printf '  - hostname: node-%d\n    ipAddress: 10.%d.%d.%d\n    controlPlane: %s\n    installDisk: /dev/sda\n    talosImageURL: factory.talos.dev/installer/%s\n' \
      "$i" $((i / 65536 + 1)) $((i / 256 % 256)) $((i % 256)) "$cp" "$vanilla"
  done
} > "$dir/talconfig.yaml"

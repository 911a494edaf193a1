#!/usr/bin/env python3
"""Writes a config-like YAML file and the same data as JSON, about SIZE_MB
each: many Talos machine-config-shaped documents folded into one list."""
import json, sys

def node(i):
    return {
        "version": "v1alpha1",
        "machine": {
            "type": "controlplane" if i % 3 == 0 else "worker",
            "token": f"abcdef.{i:016x}",
            "certSANs": [f"10.0.{i % 250}.{j}" for j in range(4)],
            "kubelet": {"image": "ghcr.io/siderolabs/kubelet:v1.33.3",
                        "extraArgs": {"rotate-server-certificates": "true", "max-pods": 110},
                        "nodeIP": {"validSubnets": ["192.168.10.0/24"]}},
            "network": {"hostname": f"node-{i}",
                        "interfaces": [{"deviceSelector": {"hardwareAddr": f"aa:bb:cc:{i % 256:02x}:00:01"},
                                        "dhcp": True, "mtu": 1500,
                                        "routes": [{"network": "0.0.0.0/0", "gateway": "192.168.10.1", "metric": 1024}]}]},
            "install": {"disk": "/dev/sda", "image": "factory.talos.dev/installer/4a0d65c669d46663f377e7161e50cfd570c401f26fd9e7bda34a0216b6f1922b:v1.10.6",
                        "wipe": False},
            "features": {"rbac": True, "stableHostname": True, "kubePrism": {"enabled": True, "port": 7445}},
        },
        "cluster": {"clusterName": "home-lab", "network": {"podSubnets": ["10.244.0.0/16"], "serviceSubnets": ["10.96.0.0/12"]},
                    "etcd": {"advertisedSubnets": ["192.168.10.0/24"]}, "ratio": 0.75 + i / 1e6},
    }

def main():
    out_yaml, out_json, size_mb = sys.argv[1], sys.argv[2], float(sys.argv[3])
    import yaml
    data, text = [], ""
    i = 0
    chunk = []
    while True:
        chunk = [node(i + k) for k in range(200)]
        data.extend(chunk)
        i += 200
        if len(json.dumps(data)) > size_mb * 1e6:
            break
    with open(out_yaml, "w") as f:
        yaml.dump({"nodes": data}, f, Dumper=yaml.CDumper, sort_keys=False)
    with open(out_json, "w") as f:
        json.dump({"nodes": data}, f, indent=2)

main()

#!/usr/bin/env bash
# Installs the Debian packages runbook needs to build and test, and only
# those that are missing. Needs root or sudo when anything is missing.
set -eu

pkgs=(
  build-essential cmake pkg-config
  liblua5.4-dev lua5.4
  libuv1-dev libcurl4-openssl-dev libyaml-dev libjansson-dev libssl-dev
  libcmocka-dev
  python3 python3-yaml openssl curl valgrind
  lua-check clang-format
  etcd-server etcd-client   # tests/cli/test_store_etcd.sh: the etcd store against real etcd (3.4 in Debian 12)
)
# the real kubectl: the served world's Kubernetes API is tested with it
# (tests/e2e/test_kubeapi.sh) and tests/cli/test_deploy.sh reads deploy/
# with it. Debian's kubernetes-client, unless a kubectl is installed already
# (another package's /usr/bin/kubectl would conflict with it)
command -v kubectl >/dev/null 2>&1 || pkgs+=(kubernetes-client)
pkgs+=("$@")   # extra packages a target needs (make fuzz: clang libclang-rt-14-dev)

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  sudo=""
elif command -v sudo >/dev/null 2>&1; then
  sudo="sudo"
else
  echo "runbook: installing ${missing[*]} needs root or sudo; run 'make deps' as root, or install them yourself" >&2
  exit 1
fi

echo "runbook: installing ${missing[*]} (apt-get; needs root or sudo)" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

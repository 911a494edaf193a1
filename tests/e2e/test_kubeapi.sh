#!/usr/bin/env bash
# The served world's Kubernetes API (runbooks/sim/kubeapi.lua, kubewrite.lua)
# on 127.0.0.1: through libcurl (kubeapi_client.lua: Leases, ConfigMaps,
# Secrets, resourceVersion conflicts, 404/409 Status objects, watch).
# usage: test_kubeapi.sh RUNBOOK_BIN SOURCE_DIR
source "$(dirname "$0")/common.sh" "$@"

"$bin" world serve --dir "$tmp/world" 2>"$tmp/serve.log" & srv=$!
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

# the token is in no file but the 0600 ones, and in no log
[ "$(stat -c %a "$tmp/world/kubeconfig")" = 600 ] && ok "the kubeconfig is 0600" || bad "kubeconfig mode $(stat -c %a "$tmp/world/kubeconfig")"
if grep -rlF -- "$token" "$tmp" 2>/dev/null | grep -vxF -e "$tmp/world/world.url" -e "$tmp/world/kubeconfig" -e "$tmp/world/env" | grep -q .; then
  bad "the token is in other files: $(grep -rlF -- "$token" "$tmp")"
else
  ok "the token is only in world.url, env and kubeconfig (0600)"
fi

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]

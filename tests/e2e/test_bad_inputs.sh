#!/usr/bin/env bash
# Every variable checked before the first change (issue #29.4): on the
# served world, each bad value of each variable of rollout.lua and
# rollback.lua is refused with exit 2, naming the variable, and nothing
# changed: the world counted no change (no POST, no genconfig, no talosctl
# that writes), talconfig.yaml is as it was, no backup, no patch.
# usage: test_bad_inputs.sh RUNBOOK_BIN SOURCE_DIR
source "$(dirname "$0")/common.sh" "$@"
source "$(dirname "$0")/crash_lib.sh"

world_up "$tmp/world"
cp talconfig.yaml "$tmp/talconfig.old"

# unchanged: no change counted by the world, the files as they were
unchanged() {
  local m
  m=$(state | python3 -c 'import json,sys; print(json.load(sys.stdin)["mutations"])')
  [ "$m" = 0 ] || { echo "the world counted $m changes: $(state | python3 -c 'import json,sys; print(json.load(sys.stdin)["calls"])')"; return 1; }
  cmp -s talconfig.yaml "$tmp/talconfig.old" || { echo "talconfig.yaml changed"; return 1; }
  [ ! -e patches ] && [ ! -e .runbook/backups ] && ! ls talconfig.yaml.bak.* >/dev/null 2>&1 || { echo "files written"; return 1; }
}

# refused RUNBOOK NAME VALUE: --var NAME=VALUE refused before any change
refused() {
  local rb=$1 name=$2 value=$3 code why
  run "$rb" "$tmp/out" --var "$name=$value"; code=$?
  if [ $code -ne 2 ]; then bad "$rb $name=$value: exit $code, not 2: $(grep -v '^\s*$' "$tmp/out" | tail -2)"; return; fi
  grep -qF -- "--var $name=" "$tmp/out" || { bad "$rb $name=$value: the message does not name it: $(grep -v '^\s*$' "$tmp/out" | tail -2)"; return; }
  why=$(unchanged) || { bad "$rb $name=$value: $why"; return; }
  ok "$rb --var $name=$value: refused (exit 2) before any change"
}

refused rollout max_failures -1
refused rollout batch 0
refused rollout batch 150%
refused rollout batch half
refused rollout boot_timeout 0
refused rollout boot_timeout -5
refused rollout poll_interval 0
refused rollout factory_url ftp://factory.example
refused rollout tailscale_api api.tailscale.com
refused rollout api_probe_url localhost:6443
refused rollout routes 10.43.0.0/33
refused rollout routes 300.1.1.0/24
refused rollout routes 10.43.0.0
refused rollout tailnet nodots
refused rollout tailnet "tail 1234.ts.net"
refused rollout operator_namespace Tail_Scale
refused rollout operator_device "tailscale operator"
refused rollout extra_args $'--accept-routes\n--ssh'
refused rollout talconfig missing.yaml
refused rollout talosconfig missing-talosconfig

# the rollback, once a rollout ran: its own variables, before any change
run rollout "$tmp/rollout.out" || { bad "the rollout failed: $(tail -3 "$tmp/rollout.out")"; exit 1; }
before=$(state | python3 -c 'import json,sys; print(json.load(sys.stdin)["mutations"])')
cp talconfig.yaml "$tmp/talconfig.rolled"
rb_refused() {
  local name=$1 value=$2 code m
  run rollback "$tmp/out" --var "$name=$value"; code=$?
  m=$(state | python3 -c 'import json,sys; print(json.load(sys.stdin)["mutations"])')
  if [ $code -eq 2 ] && grep -qF -- "--var $name=" "$tmp/out" && [ "$m" = "$before" ] && cmp -s talconfig.yaml "$tmp/talconfig.rolled"; then
    ok "rollback --var $name=$value: refused (exit 2) before any change"
  else
    bad "rollback $name=$value: exit $code, changes $((m - before)): $(grep -v '^\s*$' "$tmp/out" | tail -2)"
  fi
}
rb_refused boot_timeout 0
rb_refused poll_interval -1
rb_refused tailscale_api notaurl
cd "$tmp"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]

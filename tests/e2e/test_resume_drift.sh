#!/usr/bin/env bash
# Drift before resume (issue #29.5): a rollout paused after its first node
# (pause_after_first) is resumed after talconfig.yaml changed: restored
# from its backup, or edited. The resume stops (exit 2) naming the file and
# how it changed, and changes nothing; --resume --accept-drift goes on.
# usage: test_resume_drift.sh RUNBOOK_BIN SOURCE_DIR
source "$(dirname "$0")/common.sh" "$@"
source "$(dirname "$0")/crash_lib.sh"

world_up "$tmp/world"
changes() { state | python3 -c 'import json,sys; print(json.load(sys.stdin)["mutations"])'; }
run rollout "$tmp/p1.out" --var pause_after_first=true; code=$?
[ $code -eq 0 ] && grep -q "paused: k8s-1" "$tmp/p1.out" && ok "paused after k8s-1" || { bad "pause: exit $code"; exit 1; }
cp talconfig.yaml "$tmp/left.yaml"
before=$(changes)

# restored from its backup: the rollout's edit is gone
cp "$(ls .runbook/backups/talconfig.yaml.* | head -1)" talconfig.yaml
run rollout "$tmp/r1.out" --var pause_after_first=true --resume; code=$?
[ $code -eq 2 ] && grep -q "talconfig.yaml is its backup .runbook/backups/talconfig.yaml.* again: the run's edit of it is gone" "$tmp/r1.out" \
  && [ "$(changes)" = "$before" ] && ok "talconfig.yaml restored from its backup: the resume stops (exit 2), names it, changes nothing" \
  || bad "restored backup: exit $code, changes $(( $(changes) - before )): $(grep -v '^\s*$' "$tmp/r1.out" | tail -3)"

# edited by hand
cp "$tmp/left.yaml" talconfig.yaml; echo "# an operator's note" >> talconfig.yaml
run rollout "$tmp/r2.out" --var pause_after_first=true --resume; code=$?
[ $code -eq 2 ] && grep -q "talconfig.yaml changed (sha256 " "$tmp/r2.out" && grep -q -- "--accept-drift" "$tmp/r2.out" \
  && [ "$(changes)" = "$before" ] && ok "talconfig.yaml edited: the resume stops (exit 2), names it and --accept-drift" \
  || bad "edited: exit $code: $(grep -v '^\s*$' "$tmp/r2.out" | tail -3)"

# a pin file removed (k8s-1's: the pause left only the rolled node's pins)
mv patches/tailscale-pins-k8s-1.yaml "$tmp/pin.yaml"; cp "$tmp/left.yaml" talconfig.yaml
run rollout "$tmp/r3.out" --var pause_after_first=true --resume; code=$?
[ $code -eq 2 ] && grep -q "patches/tailscale-pins-k8s-1.yaml was removed" "$tmp/r3.out" && ok "a pins file removed: the resume stops (exit 2) naming it" \
  || bad "pin removed: exit $code: $(grep -v '^\s*$' "$tmp/r3.out" | tail -3)"
mv "$tmp/pin.yaml" patches/tailscale-pins-k8s-1.yaml

# the operator means it
echo "# an operator's note" >> talconfig.yaml
run rollout "$tmp/r4.out" --var pause_after_first=true --resume --accept-drift; code=$?
[ $code -eq 0 ] && grep -q "accept-drift: going on with files changed" "$tmp/r4.out" \
  && grep -q "changed since the stop; it is rebuilt from the first run's backup" "$tmp/r4.out" \
  && grep -q "an operator's note" "$(ls -t .runbook/backups/talconfig.yaml.* | head -1)" && rolled=$(state | python3 -c '
import json,sys; s=json.load(sys.stdin); print(all(n["upgrades"] == 1 and n["tailscale"] == "Running" for n in s["nodes"]))') && [ "$rolled" = True ] \
  && ok "--resume --accept-drift goes on (a warning), every node rolled once" || bad "accept-drift: exit $code: $(grep -v '^\s*$' "$tmp/r4.out" | tail -3)"
"$bin" run rollout.lua --accept-drift >"$tmp/r5.out" 2>&1; code=$?
[ $code -eq 2 ] && grep -q -- "--accept-drift goes with --resume" "$tmp/r5.out" && ok "--accept-drift without --resume: exit 2" || bad "accept-drift alone: exit $code"
cd "$tmp"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]

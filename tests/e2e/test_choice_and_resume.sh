#!/usr/bin/env bash
# The small ones of issue #29.7 that a run shows: --limit/--exclude that
# choose no node are refused (exit 2), not "nothing to do"; repeated
# --limit add up; a resume refused for other variables names them.
# usage: test_choice_and_resume.sh RUNBOOK_BIN SOURCE_DIR
source "$(dirname "$0")/common.sh" "$@"
source "$(dirname "$0")/crash_lib.sh"

mkdir -p "$tmp/dry"; cd "$tmp/dry"
rehearse() { TS_AUTHKEY=$key timeout 120 "$bin" run rollout.lua --dry-run --scenario sample "$@" >"$tmp/out" 2>&1; }
rehearse --limit ,; code=$?
[ $code -eq 2 ] && grep -q "choose no node of talconfig.yaml; nothing was changed" "$tmp/out" && ok "--limit , chooses no node: exit 2" \
  || bad "--limit ,: exit $code: $(grep -i 'ERROR\|nothing' "$tmp/out" | head -2)"
rehearse --limit k8s-1 --exclude k8s-1; code=$?
[ $code -eq 2 ] && grep -q -- "--limit k8s-1 --exclude k8s-1 choose no node" "$tmp/out" && ok "--limit k8s-1 --exclude k8s-1: exit 2, naming both" \
  || bad "--limit/--exclude: exit $code: $(grep -i 'ERROR\|nothing' "$tmp/out" | head -2)"
rehearse --limit k8s-1 --limit k8s-3; code=$?
[ $code -eq 0 ] && grep -q "this run changes 2 of 3 nodes: k8s-1, k8s-3" "$tmp/out" && ok "--limit k8s-1 --limit k8s-3: both chosen" \
  || bad "repeated --limit: exit $code: $(grep -i 'this run changes\|ERROR' "$tmp/out" | head -2)"

# a resume with other variables: refused, naming each that differs
world_up "$tmp/world"
run rollout "$tmp/p1.out" --var pause_after_first=true --var batch=1; code=$?
[ $code -eq 0 ] || bad "pause: exit $code"
run rollout "$tmp/r1.out" --resume --var batch=2 --var dest_ip=true; code=$?
[ $code -eq 2 ] && grep -q "it was started with other variables (batch, dest_ip, pause_after_first differ)" "$tmp/r1.out" \
  && ok "a resume with other variables is refused naming batch, dest_ip and pause_after_first" \
  || bad "resume with other variables: exit $code: $(grep 'other variables' "$tmp/r1.out" | head -1)"
cd "$tmp"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]

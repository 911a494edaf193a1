#!/usr/bin/env bash
# A kill at every change (issue #29.2): for each change the served rollout
# and then the rollback make (the world counts them: a talosctl call that
# changes a node, a genconfig, a POST or DELETE), the change lands and then
# the run is cut short: SIGKILL, SIGINT, --step-timeout (the reply held
# past it) or the reply lost (a transport error), by turns. Then --resume;
# after each: the resume finishes, every node was changed exactly once,
# talconfig.yaml is the old or the new one as the cluster is, no temporary
# file is left, and the canary auth key is nowhere but in the generated
# configs. CRASH_MODES="kill int timeout lost" runs every mode at every
# change (make crash-all); the default turns through them. CRASH_CASES=
# "rollout:5" runs only the cases named.
# usage: test_crash_points.sh RUNBOOK_BIN SOURCE_DIR
source "$(dirname "$0")/common.sh" "$@"
source "$(dirname "$0")/crash_lib.sh"

reference "$tmp/ref"
echo "the changes of a clean rollout ($n_rollout) and rollback ($n_rollback):"
cat "$tmp/calls.txt"
[ "$n_rollout" -ge 8 ] && [ "$n_rollback" -ge 8 ] && ok "the world counts the changes ($n_rollout, $n_rollback)" \
  || bad "too few changes counted: $n_rollout, $n_rollback"

modes=(kill int timeout lost)
i=0
for rb in rollout rollback; do
  count=$n_rollout; [ "$rb" = rollback ] && count=$n_rollback
  for n in $(seq "$count"); do
    if [ -n "${CRASH_MODES:-}" ]; then these=($CRASH_MODES); else these=("${modes[$(( i % 4 ))]}"); fi
    for mode in "${these[@]}"; do
      # CRASH_CASES="rollout:5 rollback:2": only these (debugging)
      case " ${CRASH_CASES:-$rb:$n} " in *" $rb:$n "*) ;; *) continue;; esac
      crash_case "$rb" "$n" "$mode" "$tmp/$rb-$n-$mode"
      [ -n "${KEEP:-}" ] || rm -rf "$tmp/$rb-$n-$mode" "$tmp/$rb-$n-$mode.tmp"
    done
    i=$((i + 1))
  done
done
cd "$tmp"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]

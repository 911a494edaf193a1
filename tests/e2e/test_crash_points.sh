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
# "rollout:5 record" runs only the cases named.
# usage: test_crash_points.sh RUNBOOK_BIN SOURCE_DIR
source "$(dirname "$0")/common.sh" "$@"
source "$(dirname "$0")/crash_lib.sh"

reference "$tmp/ref"
echo "the changes of a clean rollout ($n_rollout) and rollback ($n_rollback):"
cat "$tmp/calls.txt"
[ "$n_rollout" -ge 8 ] && [ "$n_rollback" -ge 8 ] && ok "the world counts the changes ($n_rollout, $n_rollback)" \
  || bad "too few changes counted: $n_rollout, $n_rollback"

modes=(kill int timeout lost)
# under ASan+UBSan (make test-asan) every third change: the engine's memory
# is what that pass checks, and each run there is several times slower
stride=${CRASH_STRIDE:-1}; [ -n "${ASAN_OPTIONS:-}" ] && [ -z "${CRASH_STRIDE:-}" ] && stride=3
i=0
for rb in rollout rollback; do
  count=$n_rollout; [ "$rb" = rollback ] && count=$n_rollback
  for n in $(seq "$count"); do
    if [ -n "${CRASH_MODES:-}" ]; then these=($CRASH_MODES); else these=("${modes[$(( i % 4 ))]}"); fi
    for mode in "${these[@]}"; do
      # CRASH_CASES="rollout:5 rollback:2": only these (debugging)
      case " ${CRASH_CASES:-$rb:$n} " in *" $rb:$n "*) ;; *) continue;; esac
      [ $(( (n - 1) % stride )) -eq 0 ] || continue
      crash_case "$rb" "$n" "$mode" "$tmp/$rb-$n-$mode"
      [ -n "${KEEP:-}" ] || rm -rf "$tmp/$rb-$n-$mode" "$tmp/$rb-$n-$mode.tmp"
    done
    i=$((i + 1))
  done
done
# a kill between a file's write and the journal's record of it: the run is
# killed at its 5th change (the genconfig after the talconfig.yaml edit;
# the scratch copy's genconfig and the pending check's come before it),
# and the record of the edit is taken out of the journal, as if the kill
# had come right after the write. The resume finds the edit done (every
# chosen node has its entry) and does not edit the file twice.
if [[ " ${CRASH_CASES:-record} " == *" record "* ]]; then
  dir="$tmp/record-lost"
  world_up "$dir"
  arm reply_held 5
  start rollout "$dir.cut.out"
  if wait_held; then
    kill -KILL -- "-$pid"; finish
    python3 - .runbook/rollout.journal <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines(True)
keep = [l for l in lines if json.loads(l).get("key") != "talconfig"]
assert len(keep) < len(lines), "no record of the edit"
open(sys.argv[1], "w").write("".join(keep))
PY
    [ $? -eq 0 ] || bad "record lost: the journal holds no record of the edit"
    resume rollout "$dir.resume.out"; code=$?
    # the backup the journal names (rollback restores it) is the original
    bak=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("key") == "talconfig" and r.get("type") == "step": print(r["result"]["backup"])' .runbook/rollout.journal)
    why=$(rolled_out) && why=$(no_leftovers "$dir" "$dir".*.out) && [ $code -eq 0 ] \
      && { cmp -s "$bak" "$tmp/talconfig.old" || { why="the journal's backup $bak is not the original"; false; }; } \
      && ok "talconfig.yaml written, its record lost: the resume finds the edit done (not made twice, the backup still the original)" \
      || bad "record lost: exit $code: $why $(grep ERROR "$dir.resume.out" | head -2)"
  else bad "record lost: the 5th change was never held"; finish; fi
fi
cd "$tmp"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]

#!/usr/bin/env bash
# The random-kill loop (issue #29.2): on a fresh served world per round,
# the rollout (odd rounds) or, after a clean rollout, the rollback (even
# rounds) is killed at random moments (SIGKILL or SIGINT to its process
# group, 0.2 to 6 s after it started, up to 5 times a round), resumed each
# time, then left to finish; after each round the checks of the
# kill-at-every-change test: each node changed exactly once, talconfig.yaml
# true to the cluster, no temporary file, the canary key nowhere.
# Stops once KILLS kills (default 100) were made. `make chaos`.
# usage: random_kills.sh RUNBOOK_BIN SOURCE_DIR [KILLS]
here=$(cd "$(dirname "$0")/../e2e" && pwd)
kills_wanted=${3:-100}
source "$here/common.sh" "$1" "$2"
source "$here/crash_lib.sh"
RANDOM=${SEED:-$$}
echo "seed ${SEED:-$$}"

reference "$tmp/ref"
kills=0; round=0
# journal_open RB: an unfinished journal to resume
journal_open() { [ -s ".runbook/$1.journal" ] && ! tail -1 ".runbook/$1.journal" | grep -q '"type":"finish"'; }
while [ $kills -lt "$kills_wanted" ]; do
  round=$((round + 1))
  rb=rollout; [ $((round % 2)) -eq 0 ] && rb=rollback
  dir="$tmp/round-$round"
  world_up "$dir"
  if [ $rb = rollback ]; then run rollout "$dir.pre.out" || { bad "round $round: the rollout before the rollback failed"; continue; }; fi
  here_kills=0; code=1; try=0
  while :; do
    try=$((try + 1))
    flags=(); journal_open $rb && flags=(--resume)
    start $rb "$dir.$try.out" "${flags[@]}"
    if [ $here_kills -lt 5 ] && [ $kills -lt "$kills_wanted" ]; then
      sleep "$(( RANDOM % 58 / 10 )).$(( RANDOM % 10 + 2 ))"
      if kill -0 "$pid" 2>/dev/null; then
        sig=KILL; [ $((RANDOM % 2)) -eq 0 ] && sig=INT
        kill -$sig -- "-$pid" 2>/dev/null && { kills=$((kills + 1)); here_kills=$((here_kills + 1)); echo "  round $round ($rb): SIG$sig after try $try"; }
      fi
    fi
    finish; code=$?
    [ $code -eq 0 ] && ! journal_open $rb && break
    [ $try -ge 12 ] && break
    # a run that failed (not killed) is resumed as an operator would
    if [ $code -ne 0 ] && [ $code -ne 3 ] && [ $code -ne 137 ] && [ $code -ne 130 ]; then
      echo "  round $round: try $try exit $code: $(grep -v '^\s*$' "$dir.$try.out" | grep ERROR | head -1)"
    fi
  done
  if [ $code -ne 0 ]; then bad "round $round ($rb, $here_kills kills): did not finish: $(grep -v '^\s*$' "$dir.$try.out" | tail -3)"; continue; fi
  if [ $rb = rollout ]; then why=$(rolled_out); else why=$(rolled_back); fi || { bad "round $round ($rb, $here_kills kills): $why"; continue; }
  why=$(no_leftovers "$dir" "$dir".*.out) || { bad "round $round ($rb, $here_kills kills): $why"; continue; }
  ok "round $round ($rb): $here_kills kills, finished, each node changed once, nothing left behind"
  cd "$tmp"; [ -n "${KEEP:-}" ] || rm -rf "$dir" "$dir.tmp"
done
cd "$tmp"
echo "$kills kills in $round rounds: $passes rounds passed, $fails failed"
[ "$fails" -eq 0 ]

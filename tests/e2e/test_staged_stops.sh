#!/usr/bin/env bash
# Issue #28 through the served world: after any stop (a failure, a resumed
# run's stop, a pause, an interrupt) the directory tells the truth (.4);
# pause and a bare --resume (.7); the world's token on no command line and
# in no output (.8); git status after rollout and recover (.6).
# usage: test_staged_stops.sh RUNBOOK_BIN SOURCE_DIR
source "$(dirname "$0")/common.sh" "$@"
source "$(dirname "$0")/staged_lib.sh"

# {== 4. after any stop the directory tells the truth
# a boot failure on k8s-2: k8s-1 rolled, k8s-2 undone, k8s-3 never reached
serve "$tmp/bootfail" "$tmp/bootfail.yaml"
cp talconfig.yaml "$tmp/talconfig.orig"
TS_AUTHKEY=$key "$bin" run rollout.lua --yes "${common[@]}" >"$tmp/bf1.out" 2>&1; code=$?
[ $code -eq 1 ] && [ "$(entries)" = "k8s-1" ] && [ -e patches/tailscale-pins-k8s-1.yaml ] && [ ! -e patches/tailscale-pins-k8s-2.yaml ] \
  && [ ! -e patches/tailscale-pins-k8s-3.yaml ] && grep -q "now holds the tailscale entries of k8s-1 only" "$tmp/bf1.out" \
  && ok "a failed node (k8s-2) and one never reached (k8s-3): talconfig.yaml keeps k8s-1's entries only" \
  || bad "after the boot failure: exit $code, entries '$(entries)', $(ls patches 2>&1 | tr '\n' ' ')"
truthful "after the boot failure"
TS_AUTHKEY=$key "$bin" run rollout.lua --yes --resume "${common[@]}" >"$tmp/bf2.out" 2>&1; code=$?
[ $code -eq 1 ] && grep -q "entries of the nodes still to roll are back in" "$tmp/bf2.out" && [ "$(entries)" = "k8s-1" ] \
  && ok "--resume puts the remaining nodes' entries back before their turn, and the same stop takes them out again" \
  || bad "resume after the boot failure: exit $code, entries '$(entries)'; $(grep -m1 stopped: "$tmp/bf2.out")"
truthful "after the resumed run's stop"

# a pause after the canary: k8s-1 only; the resume rolls the rest
serve "$tmp/pause" "$tmp/fast.yaml"
TS_AUTHKEY=$key "$bin" run rollout.lua --yes "${common[@]}" --var pause_after_first=true >"$tmp/p1.out" 2>&1; code=$?
[ $code -eq 0 ] && [ "$(entries)" = "k8s-1" ] && ok "a pause after k8s-1: talconfig.yaml holds k8s-1's entries only" \
  || bad "pause: exit $code, entries '$(entries)'"
truthful "after the pause"
TS_AUTHKEY=$key "$bin" run rollout.lua --yes --resume "${common[@]}" --var pause_after_first=true >"$tmp/p2.out" 2>&1; code=$?
[ $code -eq 0 ] && [ "$(entries)" = "k8s-1 k8s-2 k8s-3" ] && ok "the resumed canary run ends with every node's entries" \
  || bad "resume after pause: exit $code, entries '$(entries)'; $(tail -2 "$tmp/p2.out")"
truthful "after the whole rollout"

# a worker that fails within max_failures: undone, the rest rolled, exit 1
bash "$src/bench/gen_fleet.sh" 6 "$tmp/fleet" --scenario --boot 1 --fault boot_fails:node-5 >/dev/null
serve "$tmp/fleet.run" "$tmp/fleet/scenario.yaml"
TS_AUTHKEY=$key "$bin" run rollout.lua --yes "${common[@]}" --var max_failures=1 >"$tmp/mf.out" 2>&1; code=$?
[ $code -eq 1 ] && [ "$(entries)" = "node-1 node-2 node-3 node-4 node-6" ] && [ ! -e patches/tailscale-pins-node-5.yaml ] \
  && ok "a worker failed within max_failures (node-5): talconfig.yaml keeps every other node's entries, not node-5's" \
  || bad "max_failures: exit $code, entries '$(entries)'; $(grep -m1 stopped: "$tmp/mf.out")"
truthful "after a failure within max_failures"

# an interrupt (SIGINT) while k8s-2 boots
serve "$tmp/intr" "$tmp/fast.yaml"
sed -i 's/bootSeconds: \[1, 2\]/bootSeconds: [4, 5]/' "$tmp/fast.yaml"
TS_AUTHKEY=$key "$bin_real" run rollout.lua --yes "${common[@]}" >"$tmp/i1.out" 2>&1 & run=$!
for _ in $(seq 600); do grep -q "k8s-2 runs the new schematic" "$tmp/i1.out" && break; sleep 0.1; done
kill -INT $run; timeout 60 tail --pid=$run -f /dev/null; wait $run; code=$?
sed -i 's/bootSeconds: \[4, 5\]/bootSeconds: [1, 2]/' "$tmp/fast.yaml"
[ $code -eq 3 ] && [ "$(entries)" = "k8s-1 k8s-2" ] && ok "an interrupt while k8s-2 boots: k8s-1 and k8s-2 (configured) keep their entries, k8s-3's are out" \
  || bad "interrupt: exit $code, entries '$(entries)'; $(grep -m1 'interrupted' "$tmp/i1.out")"
truthful "after the interrupt" 

# {== 7. pause and resume as an operator expects; 8. the token stays secret
# The served world's URL (with its token) comes from the env file world serve
# writes (RUNBOOK_WORLD_URL), never from a --var: no command line holds it.
serve "$tmp/tok" "$tmp/fast.yaml"
token=${url##*/}
set -a; . "$tmp/tok/env"; set +a
TS_AUTHKEY=$key "$bin" run rollout.lua --yes --var pause_after_first=true --var poll_interval=0.5 --var boot_timeout=60 \
  >"$tmp/tok1.out" 2>&1 & run=$!
# every process's argv sampled while the run goes on; the pattern comes from
# a file, so that grep's own argv does not hold the token
printf '%s\n' "$token" >"$tmp/token.pat"
bash -c 'sleep 3; :' control "$token" & ctl=$!    # a control: the sampler does see a token on a command line
sleep 0.2
grep -laFf "$tmp/token.pat" /proc/[0-9]*/cmdline 2>/dev/null | grep -q "^/proc/$ctl/cmdline$" \
  && ok "the sampler finds a token on a command line (a control process)" || bad "the sampler misses a token in argv"
kill $ctl 2>/dev/null; wait $ctl 2>/dev/null
seen=0; samples=0
while kill -0 $run 2>/dev/null; do
  hits=$(grep -laFf "$tmp/token.pat" /proc/[0-9]*/cmdline 2>/dev/null)
  if [ -n "$hits" ]; then seen=$((seen+1)); for f in $hits; do tr '\0' ' ' <"$f" >>"$tmp/tok.seen" 2>/dev/null; echo >>"$tmp/tok.seen"; done; fi
  samples=$((samples+1)); sleep 0.05
done
wait $run; code=$?
[ $code -eq 0 ] && [ $seen -eq 0 ] && [ $samples -gt 20 ] \
  && ok "served world through RUNBOOK_WORLD_URL: the token in no /proc/*/cmdline ($samples samples of every process)" \
  || bad "token on a command line: exit $code, $seen hits in $samples samples: $(head -2 "$tmp/tok.seen" 2>/dev/null)"
if [ $code -eq 0 ] && ! grep -q "ERROR" "$tmp/tok1.out" && grep -q "== Sequential node updates: paused" "$tmp/tok1.out"; then
  ok "a pause is its own line, no ERROR, exit 0"
else
  bad "pause output: exit $code; $(grep -m2 'ERROR\|== Sequential' "$tmp/tok1.out")"
fi
TS_AUTHKEY=$key "$bin" run rollout.lua --yes --resume >"$tmp/tok2.out" 2>&1; code=$?
if [ $code -eq 0 ] && grep -q "resumed with the variables the run was started with" "$tmp/tok2.out" \
   && grep -q "? Continue with the remaining 2 nodes (k8s-2, k8s-3)?" "$tmp/tok2.out" && ! grep -q "? Apply this plan" "$tmp/tok2.out"; then
  ok "a bare --resume keeps the paused run's variables and asks only about the remaining 2 nodes"
else
  bad "bare resume: exit $code; $(grep -m2 'stopped:\|? ' "$tmp/tok2.out")"
fi
"$bin" run validate.lua >"$tmp/tok3.out" 2>&1; code=$?
[ $code -eq 0 ] && grep -q "API server answered 200 at" "$tmp/tok3.out" && ok "validate finds the served world without a --var (exit 0)" \
  || bad "validate via RUNBOOK_WORLD_URL: exit $code; $(grep -m1 '✗\|stopped' "$tmp/tok3.out")"
leaks=$(grep -rl -F -- "$token" "$tmp"/tok1.out "$tmp"/tok2.out "$tmp"/tok3.out .runbook 2>/dev/null)
[ -z "$leaks" ] && ok "the token is in no output, journal or report" || bad "the token leaked into: $leaks"
unset RUNBOOK_WORLD_URL
cd "$tmp"

# {== 6. git hygiene: after the rollout, a recover and a rollback, git sees only
# talconfig.yaml and the rollout's patch files (nothing under .runbook/)
cd "$tmp/pause"
st=$(git status --porcelain --untracked-files=all | grep -v ' talconfig.yaml$\| patches/tailscale-pins-k8s-[123].yaml$\| TAILSCALE-ACCESS.md$\| clusterconfig/.gitignore$')
[ -z "$st" ] && grep -qx '\*' .runbook/.gitignore && ok "after the rollout git sees only talconfig.yaml, the pin files, the access sheet and talhelper's clusterconfig/.gitignore" \
  || bad "git status after the rollout: $st"
"$bin" run recover.lua >/dev/null 2>&1
"$bin" run recover.lua --yes --var action=snapshot --var node=k8s-1 >"$tmp/snap.out" 2>&1 || bad "recover snapshot: $(tail -2 "$tmp/snap.out")"
"$bin" run recover.lua --yes --var action=restart --var node=k8s-3 >"$tmp/restart.out" 2>&1 || bad "recover restart: $(tail -2 "$tmp/restart.out")"
st=$(git status --porcelain --untracked-files=all | grep -v ' talconfig.yaml$\| patches/tailscale-pins-k8s-[123].yaml$\| TAILSCALE-ACCESS.md$\| clusterconfig/.gitignore$')
[ -z "$st" ] && ls .runbook/snapshots/*.snapshot >/dev/null 2>&1 \
  && ok "after recover (diagnosis, snapshot, restart): nothing new for git, the etcd snapshot in the ignored .runbook/" \
  || bad "git status after recover: $st"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]

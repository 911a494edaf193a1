#!/usr/bin/env bash
# The Kubernetes store (--store k8s://NAMESPACE/NAME): a Lease for the lock
# and a ConfigMap for the journal, against the served world's Kubernetes
# API (a model of the API conventions it relies on: resourceVersion, 409,
# 404; no real API server runs here), with the real kubectl as the outside
# actor. 3 s leases; every wait bounded.
# usage: test_store_k8s.sh RUNBOOK_BIN SOURCE_DIR
source "$(dirname "$0")/common.sh" "$@"
pids=()
trap '[ -n "$srv" ] && kill $srv 2>/dev/null; for p in "${pids[@]}"; do kill -9 $p 2>/dev/null; done; wait 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
check() { if eval "$2"; then ok "$1"; else bad "$1${3:+: $3}"; fi; }
command -v kubectl >/dev/null || { bad "kubectl is not installed (scripts/install-deps.sh installs kubernetes-client)"; exit 1; }

"$bin_real" world serve --dir "$tmp/world" 2>"$tmp/serve.log" & srv=$!
timeout 10 bash -c "until [ -s '$tmp/world/world.url' ]; do sleep 0.05; done" || { bad "world serve: $(cat "$tmp/serve.log")"; exit 1; }
export KUBECONFIG=$tmp/world/kubeconfig
cd "$tmp"
S="k8s://default/runbook?ttl=3"
kc() { timeout 10 kubectl -n default "$@"; }
lease_holder() { kc get lease runbook-c1 -o 'jsonpath={.spec.holderIdentity}' 2>/dev/null; }

cat > hold.lua <<'LUA'
local rb = require "runbook"
local fs = require "runbook.fs"
local time = require "runbook.time"
local function mark(s) local f = assert(io.open(os.getenv("MARKS"), "a")); f:write(s, "\n"); f:close() end
rb.cluster("c1")
rb.step("one", function() mark("one") end)
rb.step("wait", function()
  mark("wait")
  fs.write("ready", "x")
  local t0 = time.monotonic()
  while not fs.exists("go") and time.monotonic() - t0 < 40 do time.sleep(0.05) end
end, {gate = function() mark("gate") return true end, gate_timeout = 2})   -- the fresh gate of a takeover
rb.step("three", function() mark("three") end)
rb.step("four", function() mark("four") end)
LUA
export MARKS=$tmp/marks
count() { grep -cx "$1" "$MARKS" 2>/dev/null || true; }
run_in() {
  local dir=$1 tag=$2; shift 2
  mkdir -p "$dir"; rm -f "$dir/ready" "$dir/go"
  (cd "$dir" && timeout 60 "$bin_real" run "$tmp/hold.lua" --store "$S" "$@" >"$tmp/$tag.out" 2>&1; echo "exit $?" >>"$tmp/$tag.out") &
  RUN_PID=$!; pids+=($!)
}
runbook_pid() { local t; t=$(pgrep -P "$1" | head -1); pgrep -P "$t" | head -1; }
ready() { timeout 15 bash -c "until [ -e '$1/ready' ]; do sleep 0.05; done"; }
finished() { timeout 40 bash -c "while kill -0 $1 2>/dev/null; do sleep 0.05; done"; }
exit_of() { sed -n 's/^exit \([0-9]*\)$/\1/p' "$tmp/$1.out"; }

# 1. two racing runs
rm -f "$MARKS"
run_in "$tmp/a" a; pa=$RUN_PID
run_in "$tmp/b" b; pb=$RUN_PID
timeout 15 bash -c "until [ -e '$tmp/a/ready' ] || [ -e '$tmp/b/ready' ]; do sleep 0.05; done"
timeout 15 bash -c "while kill -0 $pa 2>/dev/null && kill -0 $pb 2>/dev/null; do sleep 0.05; done"
check "while a run holds the Lease, holderIdentity names it" '[ -n "$(lease_holder)" ]'
touch "$tmp/a/go" "$tmp/b/go"; finished $pa; finished $pb
codes="$(exit_of a) $(exit_of b)"
check "two racing runs: one finishes, the other exits 4 naming the holder" \
  '{ [ "$codes" = "0 4" ] || [ "$codes" = "4 0" ]; } && grep -qE "another run of cluster c1 holds the lock \(pid [0-9]+, started [^,]+, hold.lua" $tmp/a.out $tmp/b.out' "$codes: $(cat $tmp/a.out $tmp/b.out)"
check "the winner deleted its Lease at the end" '! kc get lease runbook-c1 >/dev/null 2>&1'
out=$(timeout 20 "$bin" status --store "$S" 2>&1); code=$?
check "runbook status --store k8s:// lists the journal: finished, its steps" \
  '[ $code = 0 ] && grep -qE "^journal hold \(k8s://default/configmaps/runbook-c1-hold\): finished, .* 4 step\(s\): one, wait, three, four" <<<"$out" && grep -q "^no lock held" <<<"$out"' "$code $out"

# 2. SIGSTOP past the lease; a takeover (a --resume elsewhere) after a full
#    duration without an observed renewal; the continued holder is fenced out
rm -f "$MARKS"
run_in "$tmp/a" a --fresh; pa=$RUN_PID
ready "$tmp/a" || bad "holder not ready: $(cat $tmp/a.out)"
rpa=$(runbook_pid $pa); kill -STOP "$rpa"
run_in "$tmp/b" b --resume; pb=$RUN_PID
ready "$tmp/b" || bad "the takeover did not start: $(cat $tmp/b.out)"
check "the takeover counts a transition" '[ "$(kc get lease runbook-c1 -o jsonpath={.spec.leaseTransitions})" = 1 ]'
touch "$tmp/a/go"; kill -CONT "$rpa"; finished $pa
check "the continued holder exits 4, lock lost to the run that holds it now" '[ "$(exit_of a)" = 4 ] && grep -qE "lock lost to pid [0-9]+, started [^,]+, hold.lua" $tmp/a.out' "$(cat $tmp/a.out)"
touch "$tmp/b/go"; finished $pb
check "the takeover finishes" '[ "$(exit_of b)" = 0 ]' "$(cat $tmp/b.out)"
check "every finished step once, the interrupted one again after its fresh gate, none by the stopped holder" \
  '[ "$(tr "\n" " " < "$MARKS")" = "one wait gate wait three four " ]' "marks: $(tr '\n' ' ' < "$MARKS")"

# 3. SIGKILL, then a resume from another directory once a duration passed unrenewed
rm -f "$MARKS"
run_in "$tmp/a" a --fresh; pa=$RUN_PID
ready "$tmp/a" || bad "holder not ready"
kill -9 "$(runbook_pid $pa)"; finished $pa
run_in "$tmp/b" b --resume; pb=$RUN_PID
ready "$tmp/b" || bad "resume not ready: $(cat $tmp/b.out)"
touch "$tmp/b/go"; finished $pb
check "after a SIGKILL, a resume elsewhere finishes with every finished step exactly once" \
  '[ "$(exit_of b)" = 0 ] && [ "$(count one) $(count three) $(count four)" = "1 1 1" ]' "$(tail -3 $tmp/b.out); marks: $(tr '\n' ' ' < "$MARKS")"

# W. the waiter (--wait-lock): while a holder runs, a second run waits on a
#    watch of the Lease instead of exiting 4; the holder finishes (its Lease
#    deleted): the waiter starts anew; the holder killed: after a full
#    duration unrenewed the waiter takes over as a resume; bounded: exit 4
waiting() { timeout 15 bash -c "until grep -q 'waiting up to' '$tmp/$1.out'; do sleep 0.05; done"; }
rm -f "$MARKS"
run_in "$tmp/a" a --fresh; pa=$RUN_PID
ready "$tmp/a" || bad "holder not ready: $(cat $tmp/a.out)"
run_in "$tmp/b" b --wait-lock 30; pb=$RUN_PID
waiting b && ok "a run with --wait-lock waits while the Lease is held (no exit 4)" || bad "the waiter did not wait: $(cat $tmp/b.out)"
out=$(timeout 20 "$bin" status --store "$S" 2>&1); code=$?
check "runbook status --store k8s:// names the holder (pid, runbook, user@host), its renewal, and the unfinished journal" \
  '[ $code = 0 ] && grep -qE "^lock runbook-c1: held by pid [0-9]+, started [^,]+, hold.lua, [^@]+@[^,]+, variables [0-9a-f]{12}, renewed at 20[0-9-]+T" <<<"$out" && grep -qE "^journal hold .*: unfinished, .* 1 step\(s\): one$" <<<"$out"' "$code $out"
out=$(timeout 20 "$bin" status --store "$S" --output json 2>&1)
check "... and as JSON" 'python3 -c "import json,sys; d=json.loads(sys.argv[1]); assert d[\"locks\"][\"runbook-c1\"][\"runbook\"] == \"hold.lua\"; assert d[\"runs\"][0][\"summary\"][\"state\"] == \"unfinished\"" "$out"' "$out"
touch "$tmp/a/go"; finished $pa
ready "$tmp/b" || bad "the waiter did not go on after the holder finished: $(cat $tmp/b.out)"
touch "$tmp/b/go"; finished $pb
check "the holder finished: the waiter took the Lease and ran anew, exit 0" \
  '[ "$(exit_of a) $(exit_of b)" = "0 0" ] && [ "$(tr "\n" " " < "$MARKS")" = "one wait three four one wait three four " ]' \
  "exits $(exit_of a) $(exit_of b), marks: $(tr '\n' ' ' < "$MARKS") $(cat $tmp/b.out)"
rm -f "$MARKS"
run_in "$tmp/a" a --fresh; pa=$RUN_PID
ready "$tmp/a" || bad "holder not ready: $(cat $tmp/a.out)"
run_in "$tmp/b" b --wait-lock 30; pb=$RUN_PID
waiting b || bad "the waiter did not wait: $(cat $tmp/b.out)"
kill -9 "$(runbook_pid $pa)"; finished $pa
ready "$tmp/b" || bad "the waiter did not take over after the holder died: $(cat $tmp/b.out)"
touch "$tmp/b/go"; finished $pb
check "the holder killed: the waiter took over as a resume, the step cut short again after its gate" \
  '[ "$(exit_of b)" = 0 ] && grep -q "wait-lock: resuming the unfinished run" $tmp/b.out && [ "$(tr "\n" " " < "$MARKS")" = "one wait gate wait three four " ]' \
  "exit $(exit_of b), marks: $(tr '\n' ' ' < "$MARKS") $(cat $tmp/b.out)"
run_in "$tmp/a" a --fresh; pa=$RUN_PID
ready "$tmp/a" || bad "holder not ready: $(cat $tmp/a.out)"
out=$(cd "$tmp/b" && timeout 20 "$bin_real" run "$tmp/hold.lua" --store "$S" --wait-lock 1 2>&1 </dev/null); code=$?
check "a wait is bounded: past --wait-lock the waiter exits 4 naming the holder" '[ $code = 4 ] && grep -q "waited 1s, --wait-lock" <<<"$out"' "$code $out"
touch "$tmp/a/go"; finished $pa

# 4. the Lease deleted from outside (kubectl delete lease): the holder stops where it waits
rm -f "$MARKS"
run_in "$tmp/a" a --fresh; pa=$RUN_PID
ready "$tmp/a" || bad "holder not ready"
kc delete lease runbook-c1 >/dev/null
finished $pa
check "a Lease deleted from outside stops the holder: exit 4, no further step" '[ "$(exit_of a)" = 4 ] && grep -q "its Lease was deleted" $tmp/a.out && [ "$(count three)" = 0 ]' "$(cat $tmp/a.out)"

# 5. the Lease written by another (kubectl annotate): the next renewal is a 409
rm -f "$MARKS"
run_in "$tmp/a" a --resume; pa=$RUN_PID
ready "$tmp/a" || bad "holder not ready: $(cat $tmp/a.out)"
kc annotate lease runbook-c1 intruder=yes >/dev/null
finished $pa
check "a Lease written by another stops the holder: exit 4 (409 Conflict), no further step" '[ "$(exit_of a)" = 4 ] && grep -q "409 Conflict" $tmp/a.out && [ "$(count three)" = 0 ]' "$(cat $tmp/a.out)"

# 6. the journal's ConfigMap written by another while the Lease stays this
#    run's (renewals go on): only its resourceVersion fence catches it
rm -f "$MARKS"
run_in "$tmp/a" a --resume; pa=$RUN_PID
ready "$tmp/a" || bad "holder not ready: $(cat $tmp/a.out)"
kc annotate configmap runbook-c1-hold runbook.dev/holder='{"text":"an intruder"}' --overwrite >/dev/null
touch "$tmp/a/go"; finished $pa
check "an append fenced on the journal's resourceVersion is refused: exit 4, no further step" \
  '[ "$(exit_of a)" = 4 ] && grep -q "the journal runbook-c1-hold was written by another run (409)" $tmp/a.out && [ "$(count three)" = 0 ]' "$(cat $tmp/a.out)"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]

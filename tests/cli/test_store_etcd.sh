#!/usr/bin/env bash
# The etcd store against real etcd (Debian's etcd-server 3.4, installed by
# scripts/install-deps.sh): a single member and three members on 127.0.0.1
# ports picked here, short leases (3 s, 6 s with three members), every wait
# bounded. The cases of issue #31 point 2, each a guarantee of
# docs/reliability.md ("Shared stores").
# usage: test_store_etcd.sh RUNBOOK_BIN SOURCE_DIR
set -u
bin=$1
tmp=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fails=0; passes=0
cd "$tmp"
ok()   { echo "ok   $1"; passes=$((passes+1)); }
fail() { echo "FAIL $1"; fails=$((fails+1)); }
check() { if eval "$2"; then ok "$1"; else fail "$1${3:+: $3}"; fi; }   # check NAME CONDITION [DETAIL]

for p in etcd etcdctl python3 curl; do
  command -v $p >/dev/null || { echo "FAIL $p is not installed (scripts/install-deps.sh installs etcd-server, etcd-client)"; exit 1; }
done

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

# start_cluster N: N members on fresh ports; sets CLIENTS (comma list of
# host:port), MEMBER_PID[i], MEMBER_URL[i]
start_cluster() {
  local n=$1 i initial="" cp pp
  declare -ga MEMBER_PID=() MEMBER_URL=() PEER=()
  for ((i = 0; i < n; i++)); do
    cp=$(free_port); pp=$(free_port)
    MEMBER_URL[i]=127.0.0.1:$cp; PEER[i]=$pp
    initial+="${initial:+,}m$i=http://127.0.0.1:$pp"
  done
  rm -rf "$tmp/etcd"; mkdir -p "$tmp/etcd"
  for ((i = 0; i < n; i++)); do
    # quick elections, so that a leader's death costs well under a lease
    etcd --name "m$i" --data-dir "$tmp/etcd/m$i" \
      --listen-client-urls "http://${MEMBER_URL[i]}" --advertise-client-urls "http://${MEMBER_URL[i]}" \
      --listen-peer-urls "http://127.0.0.1:${PEER[i]}" --initial-advertise-peer-urls "http://127.0.0.1:${PEER[i]}" \
      --initial-cluster "$initial" --initial-cluster-state new --initial-cluster-token "t$$" \
      --heartbeat-interval 50 --election-timeout 500 >"$tmp/etcd/m$i.log" 2>&1 &
    MEMBER_PID[i]=$!; pids+=($!)
  done
  CLIENTS=$(IFS=,; echo "${MEMBER_URL[*]}")
  for ((i = 0; i < n; i++)); do
    timeout 30 bash -c "until curl -sf http://${MEMBER_URL[i]}/health | grep -q true; do sleep 0.1; done" \
      || { echo "FAIL etcd m$i did not start: $(tail -5 "$tmp/etcd/m$i.log")"; exit 1; }
  done
}
stop_cluster() { local p; for p in "${MEMBER_PID[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; }
ctl() { ETCDCTL_API=3 timeout 10 etcdctl --endpoints="$CLIENTS" --dial-timeout=2s --command-timeout=5s "$@"; }
lock_key() { ctl get --print-value-only rb/c1/lock; }
wait_lock_gone() { timeout 20 bash -c "while [ -n \"\$(ETCDCTL_API=3 etcdctl --endpoints=$CLIENTS get --print-value-only rb/c1/lock 2>/dev/null)\" ]; do sleep 0.1; done"; }

# hold.lua: four steps, each leaving a mark in $MARKS; the second says
# "ready" in the run's directory and waits (at most 40 s) for "go" there.
# The fresh gate a resume needs before "wait" runs again after its holder
# died in it (HOLD_GATE): "step" its own gate option, "before" an rb.gate
# before it, "none" neither, "never" a gate option that never passes;
# each gate that passes marks "gate"
cat > "$tmp/hold.lua" <<'LUA'
local rb = require "runbook"
local fs = require "runbook.fs"
local time = require "runbook.time"
local function mark(s) local f = assert(io.open(os.getenv("MARKS"), "a")); f:write(s, "\n"); f:close() end
local mode = os.getenv("HOLD_GATE") or "step"
local function settled() mark("gate") return true end
rb.cluster("c1")
rb.step("one", function() mark("one") end)
if mode == "before" then rb.gate("the cluster settled", settled, {interval = 0.2}) end
rb.step("wait", function()
  mark("wait")
  fs.write("ready", "x")
  local t0 = time.monotonic()
  while not fs.exists("go") and time.monotonic() - t0 < 40 do time.sleep(0.05) end
end, {gate = mode == "step" and settled or mode == "never" and function() return false, "a node still rebooting" end or nil,
      gate_timeout = 2})
rb.step("three", function() mark("three") end)
rb.step("four", function() mark("four") end)
LUA
export MARKS=$tmp/marks
count() { grep -cx "$1" "$MARKS" 2>/dev/null || true; }
marks() { tr '\n' ' ' < "$MARKS" 2>/dev/null | sed 's/ $//'; }

# run_in DIR TAG STORE ARGS...: a run of hold.lua in DIR, in the background; its
# output and exit code in $tmp/TAG.out, its pid in RUN_PID
run_in() {
  local dir=$1 tag=$2 store=$3; shift 3
  mkdir -p "$dir"; rm -f "$dir/ready" "$dir/go"
  (cd "$dir" && timeout 60 "$bin" run "$tmp/hold.lua" --store "$store" "$@" >"$tmp/$tag.out" 2>&1; echo "exit $?" >>"$tmp/$tag.out") &
  RUN_PID=$!; pids+=($!)
}
# the runbook's own pid (the subshell's child)
runbook_pid() { local t; t=$(pgrep -P "$1" | head -1); pgrep -P "$t" | head -1; }
ready() { timeout 15 bash -c "until [ -e '$1/ready' ]; do sleep 0.05; done"; }
finished() { timeout 30 bash -c "while kill -0 $1 2>/dev/null; do sleep 0.05; done"; }
exit_of() { sed -n 's/^exit \([0-9]*\)$/\1/p' "$tmp/$1.out"; }

# ---------------------------------------------------------------- one member
start_cluster 1
S="etcd://$CLIENTS/rb?ttl=3"

# 1. two racing runs: one wins, the other exits 4 naming the holder
rm -f "$MARKS"
run_in "$tmp/a" a "$S"; pa=$RUN_PID
run_in "$tmp/b" b "$S"; pb=$RUN_PID
timeout 15 bash -c "until [ -e '$tmp/a/ready' ] || [ -e '$tmp/b/ready' ]; do sleep 0.05; done"
finished_one() { timeout 15 bash -c "while kill -0 $pa 2>/dev/null && kill -0 $pb 2>/dev/null; do sleep 0.05; done"; }
finished_one
touch "$tmp/a/go" "$tmp/b/go"
finished $pa; finished $pb
codes="$(exit_of a) $(exit_of b)"
check "two racing runs: one finishes, the other exits 4" '[ "$codes" = "0 4" ] || [ "$codes" = "4 0" ]' "exits $codes: $(cat $tmp/a.out $tmp/b.out)"
check "the loser names the holder (pid, runbook)" 'grep -qE "another run of cluster c1 holds the lock \(pid [0-9]+, started [^,]+, hold.lua" $tmp/a.out $tmp/b.out'
check "the loser ran no step" '[ "$(count one)" = 1 ]' "marks: $(tr '\n' ' ' < "$MARKS")"
check "the winner released its lease at the end (no lock left)" '[ -z "$(lock_key)" ]'
out=$(timeout 20 "$bin" status --store "$S" 2>&1)
check "runbook status lists the journal, its state and steps" 'grep -qE "journal hold .*finished.* 4 step\(s\): one, wait, three, four" <<<"$out"' "$out"

# 2. the holder stopped (SIGSTOP) past its lease; another machine resumes
#    (a takeover is a resume); the first, continued, has its next append
#    refused and runs no further step: "lock lost to HOLDER"
rm -f "$MARKS"
run_in "$tmp/a" a "$S" --fresh; pa=$RUN_PID
ready "$tmp/a" || fail "holder not ready: $(cat $tmp/a.out)"
rpa=$(runbook_pid $pa)
kill -STOP "$rpa"
wait_lock_gone && ok "a stopped holder's lock expires with its lease" || fail "the lock stayed: $(lock_key)"
run_in "$tmp/b" b "$S"
finished $RUN_PID
check "a plain run on an unfinished journal in the store is refused, exit 2, saying --resume (takeover is a resume)" \
  '[ "$(exit_of b)" = 2 ] && grep -q "unfinished run of hold.lua is recorded in etcd://.*continue it with --resume" $tmp/b.out' "$(cat $tmp/b.out)"
run_in "$tmp/b" b "$S" --resume; pb=$RUN_PID
ready "$tmp/b" || fail "resume not ready: $(cat $tmp/b.out)"
touch "$tmp/a/go"; kill -CONT "$rpa"
finished $pa
check "the continued holder exits 4" '[ "$(exit_of a)" = 4 ]' "$(cat $tmp/a.out)"
check "it says the lock was lost to the run that holds it now" 'grep -qE "lock lost to pid [0-9]+, started [^,]+, hold.lua" $tmp/a.out' "$(cat $tmp/a.out)"
touch "$tmp/b/go"; finished $pb
check "the resume from another directory finishes" '[ "$(exit_of b)" = 0 ]' "$(cat $tmp/b.out)"
check "every finished step once, the interrupted one again after its fresh gate, none by the stopped holder" \
  '[ "$(marks)" = "one wait gate wait three four" ]' "marks: $(marks)"

# 3. the holder killed (SIGKILL): a second machine resumes once the lease is gone
rm -f "$MARKS"
run_in "$tmp/a" a "$S" --fresh; pa=$RUN_PID
ready "$tmp/a" || fail "holder not ready"
kill -9 "$(runbook_pid $pa)"; finished $pa
out=$(timeout 20 "$bin" run "$tmp/hold.lua" --store "$S" --resume 2>&1 </dev/null); code=$?
check "while the killed holder's lease lives, a resume exits 4" '[ $code = 4 ]' "$code $out"
wait_lock_gone || fail "the killed holder's lock stayed"
out=$(cd "$tmp/b" && timeout 20 "$bin" run "$tmp/hold.lua" --store "$S" 2>&1 </dev/null); code=$?
check "a fresh run over the dead holder's journal is refused: exit 2, continue it with --resume" \
  '[ $code = 2 ] && grep -q "continue it with --resume" <<<"$out"' "$code $out"
run_in "$tmp/b" b "$S" --resume; pb=$RUN_PID
ready "$tmp/b" || fail "resume not ready: $(cat $tmp/b.out)"
touch "$tmp/b/go"; finished $pb
check "after it, a resume on another machine finishes" '[ "$(exit_of b)" = 0 ]' "$(cat $tmp/b.out)"
check "every finished step exactly once, the one cut short again only after its gate passed" \
  '[ "$(marks)" = "one wait gate wait three four" ]' "marks: $(marks)"

# 3b. the holder killed inside a step that declares no gate, with no gate
#     before it: the takeover does not run it again blind (exit 2, naming
#     it), nor after a gate that never passes (exit 1); each refusal leaves
#     it cut short for the next resume; an rb.gate before it lets it run
rm -f "$MARKS"
run_in "$tmp/a" a "$S" --fresh; pa=$RUN_PID
ready "$tmp/a" || fail "holder not ready"
kill -9 "$(runbook_pid $pa)"; finished $pa
wait_lock_gone || fail "the killed holder's lock stayed"
resume_b() { (cd "$tmp/b" && rm -f ready go && HOLD_GATE=$1 timeout 30 "$bin" run "$tmp/hold.lua" --store "$S" --resume 2>&1 </dev/null); }
out=$(resume_b none); code=$?
check "a step cut short with no fresh gate is not run again: exit 2, naming it" \
  '[ $code = 2 ] && grep -q "step .wait. was cut short in the run being resumed .*no gate passed in this run before it" <<<"$out"' "$code $out"
out=$(resume_b none); code=$?
check "the refusal leaves it cut short: the next resume without a gate is refused again" '[ $code = 2 ]' "$code $out"
out=$(resume_b never); code=$?
check "a gate that does not pass within its timeout stops the resume (exit 1) before the step runs" \
  '[ $code = 1 ] && grep -q "wait settled before it runs again.*a node still rebooting" <<<"$out"' "$code $out"
check "none of the refused resumes ran it" '[ "$(marks)" = "one wait" ]' "marks: $(marks)"
out=$(resume_b none); code=$?
check "after a failed gate it is still cut short (refused again)" '[ $code = 2 ]' "$code $out"
out=$( (cd "$tmp/b" && rm -f ready && touch go && HOLD_GATE=before timeout 30 "$bin" run "$tmp/hold.lua" --store "$S" --resume 2>&1 </dev/null) ); code=$?
check "an rb.gate that passed before it in this run lets it run again" '[ $code = 0 ] && [ "$(marks)" = "one wait gate wait three four" ]' \
  "$code marks: $(marks) $out"

# 3c. a read_only step cut short changes nothing: the takeover runs it again
#     without a gate
cat > "$tmp/ro.lua" <<'LUA'
local rb = require "runbook"
local fs = require "runbook.fs"
local time = require "runbook.time"
local function mark(s) local f = assert(io.open(os.getenv("MARKS"), "a")); f:write(s, "\n"); f:close() end
rb.cluster("c1")
rb.step("change", function() mark("change") end)
rb.step("look", function()
  mark("look")
  fs.write("ready", "x")
  local t0 = time.monotonic()
  while not fs.exists("go") and time.monotonic() - t0 < 40 do time.sleep(0.05) end
end, {read_only = true})
rb.step("after", function() mark("after") end)
LUA
rm -f "$MARKS"; mkdir -p "$tmp/ro"; rm -f "$tmp/ro/ready" "$tmp/ro/go"
(cd "$tmp/ro" && timeout 60 "$bin" run "$tmp/ro.lua" --store "$S" >"$tmp/ro.out" 2>&1) & pr=$!; pids+=($pr)
ready "$tmp/ro" || fail "ro not ready: $(cat $tmp/ro.out)"
kill -9 "$(runbook_pid $pr)"; finished $pr
wait_lock_gone || fail "the killed holder's lock stayed"
out=$(cd "$tmp/b" && touch go && timeout 30 "$bin" run "$tmp/ro.lua" --store "$S" --resume 2>&1 </dev/null); code=$?
check "a read_only step cut short runs again on the takeover without a gate" '[ $code = 0 ] && [ "$(marks)" = "change look look after" ]' \
  "$code marks: $(marks) $out"

# 3d. in rb.rolling: the batch's `before` gate is the fresh gate of an
#     item's step cut short (as the rollout's "cluster healthy before NODE")
cat > "$tmp/roll.lua" <<'LUA'
local rb = require "runbook"
local fs = require "runbook.fs"
local time = require "runbook.time"
local function mark(s) local f = assert(io.open(os.getenv("MARKS"), "a")); f:write(s, "\n"); f:close() end
rb.cluster("c1")
rb.rolling("nodes", {"n1"}, function(n)
  rb.step("prep " .. n, function() mark("prep") end)
  rb.step("upgrade " .. n, function()
    mark("upgrade")
    fs.write("ready", "x")
    local t0 = time.monotonic()
    while not fs.exists("go") and time.monotonic() - t0 < 40 do time.sleep(0.05) end
  end)
end, {before = function() rb.gate("healthy before the batch", function() mark("gate") return true end, {interval = 0.2}) end})
LUA
rm -f "$MARKS"; mkdir -p "$tmp/roll"; rm -f "$tmp/roll/ready" "$tmp/roll/go"
(cd "$tmp/roll" && timeout 60 "$bin" run "$tmp/roll.lua" --store "$S" >"$tmp/roll.out" 2>&1) & pr=$!; pids+=($pr)
ready "$tmp/roll" || fail "roll not ready: $(cat $tmp/roll.out)"
kill -9 "$(runbook_pid $pr)"; finished $pr
wait_lock_gone || fail "the killed holder's lock stayed"
out=$(cd "$tmp/b" && touch go && timeout 30 "$bin" run "$tmp/roll.lua" --store "$S" --resume 2>&1 </dev/null); code=$?
check "in rb.rolling, the batch's before gate passed in the takeover lets the item's step cut short run again" \
  '[ $code = 0 ] && [ "$(marks)" = "gate prep upgrade gate upgrade" ]' "$code marks: $(marks) $out"

# W. the waiter (--wait-lock): while a holder runs, a second run waits on a
#    watch of the lock key (etcd counts a watcher) instead of exiting 4;
#    the holder finishes: the waiter starts anew; the holder killed: the
#    waiter resumes its run (a takeover is a resume, the step cut short
#    after its gate); a wait is bounded: past it, exit 4
waiting() { timeout 15 bash -c "until grep -q 'waiting up to' '$tmp/$1.out'; do sleep 0.05; done"; }
watchers() { curl -s --max-time 5 "http://$CLIENTS/metrics" | sed -n 's/^etcd_debugging_mvcc_watcher_total \([0-9]*\).*/\1/p'; }
rm -f "$MARKS"
run_in "$tmp/a" a "$S" --fresh; pa=$RUN_PID
ready "$tmp/a" || fail "holder not ready: $(cat $tmp/a.out)"
w0=$(watchers)
run_in "$tmp/b" b "$S" --wait-lock 30; pb=$RUN_PID
waiting b && ok "a run with --wait-lock waits while the lock is held (no exit 4)" || fail "the waiter did not wait: $(cat $tmp/b.out)"
w1=$(watchers)
check "the waiter watches the lock key (etcd counts one more watcher)" '[ -n "$w0" ] && [ "$w1" -gt "$w0" ]' "watchers before $w0, while waiting $w1"
touch "$tmp/a/go"; finished $pa
ready "$tmp/b" || fail "the waiter did not go on after the holder finished: $(cat $tmp/b.out)"
touch "$tmp/b/go"; finished $pb
check "the holder finished: the waiter took the lock and ran anew, exit 0" \
  '[ "$(exit_of a) $(exit_of b)" = "0 0" ] && [ "$(marks)" = "one wait three four one wait three four" ]' "exits $(exit_of a) $(exit_of b), marks: $(marks) $(cat $tmp/b.out)"

rm -f "$MARKS"
run_in "$tmp/a" a "$S" --fresh; pa=$RUN_PID
ready "$tmp/a" || fail "holder not ready: $(cat $tmp/a.out)"
run_in "$tmp/b" b "$S" --wait-lock 30; pb=$RUN_PID
waiting b || fail "the waiter did not wait: $(cat $tmp/b.out)"
kill -9 "$(runbook_pid $pa)"; finished $pa
ready "$tmp/b" || fail "the waiter did not take over after the holder died: $(cat $tmp/b.out)"
touch "$tmp/b/go"; finished $pb
check "the holder killed: the waiter took over as a resume, the step cut short again after its gate, every finished step once" \
  '[ "$(exit_of b)" = 0 ] && grep -q "wait-lock: resuming the unfinished run" $tmp/b.out && [ "$(marks)" = "one wait gate wait three four" ]' \
  "exit $(exit_of b), marks: $(marks) $(cat $tmp/b.out)"

run_in "$tmp/a" a "$S" --fresh; pa=$RUN_PID
ready "$tmp/a" || fail "holder not ready: $(cat $tmp/a.out)"
out=$(cd "$tmp/b" && timeout 20 "$bin" run "$tmp/hold.lua" --store "$S" --wait-lock 1 2>&1 </dev/null); code=$?
check "a wait is bounded: past --wait-lock the waiter exits 4 naming the holder" \
  '[ $code = 4 ] && grep -q "holds the lock (pid [0-9]*, .*waited 1s, --wait-lock" <<<"$out"' "$code $out"
touch "$tmp/a/go"; finished $pa

# 4. the lease revoked from outside (etcdctl lease revoke): the holder stops
rm -f "$MARKS"
run_in "$tmp/a" a "$S" --fresh; pa=$RUN_PID
ready "$tmp/a" || fail "holder not ready"
lease=$(ctl get rb/c1/lock -w json | python3 -c 'import json,sys; print("%x" % json.load(sys.stdin)["kvs"][0]["lease"])')
ctl lease revoke "$lease" >/dev/null
finished $pa
check "a revoked lease stops the holder where it waits: exit 4, lock lost" '[ "$(exit_of a)" = 4 ] && grep -q "lock lost" $tmp/a.out' "$(cat $tmp/a.out)"
check "it ran no further step" '[ "$(count three)" = 0 ]'

# 4b. the lock key replaced behind the holder's back while its lease lives
#     (renewals go on): only the compare on the lock's create revision, in
#     the same txn as the journal put, catches it
rm -f "$MARKS"
run_in "$tmp/a" a "$S" --fresh; pa=$RUN_PID
ready "$tmp/a" || fail "holder not ready"
ctl del rb/c1/lock >/dev/null
ctl put rb/c1/lock '{"text":"an intruder on another machine"}' >/dev/null
touch "$tmp/a/go"; finished $pa
check "a journal put fenced on the lock's create revision is refused: exit 4, lock lost to the new holder" \
  '[ "$(exit_of a)" = 4 ] && grep -q "lock lost to an intruder on another machine (the store refused a write fenced on it)" $tmp/a.out' "$(cat $tmp/a.out)"
check "the fenced-out holder ran no further step" '[ "$(count three)" = 0 ]'
run=$(ctl get --print-value-only rb/c1/runs/hold)
recs=$(ctl get --prefix "rb/c1/journal/hold/$run/" --print-value-only)
check "its step's record never reached the journal" \
  'grep "\"id\":\"one\"" <<<"$recs" | grep -q "\"type\":\"step\"" && ! grep "\"id\":\"wait\"" <<<"$recs" | grep -q "\"type\":\"step\""' "$recs"
ctl del rb/c1/lock >/dev/null

# 5. etcd stopped for longer than the margin: the holder stops
rm -f "$MARKS"
run_in "$tmp/a" a "$S" --fresh; pa=$RUN_PID
ready "$tmp/a" || fail "holder not ready"
kill -STOP "${MEMBER_PID[0]}"
finished $pa
kill -CONT "${MEMBER_PID[0]}"
check "a store that does not answer past the margin stops the holder: exit 4" '[ "$(exit_of a)" = 4 ] && grep -q "lock lost .*no renewal of its lease" $tmp/a.out' "$(cat $tmp/a.out)"
check "it ran no further step" '[ "$(count three)" = 0 ]'
stop_cluster

# ---------------------------------------------------------------- three members
for victim in follower leader; do
  start_cluster 3
  S="etcd://$CLIENTS/rb?ttl=6"
  rm -f "$MARKS"
  run_in "$tmp/a" a "$S" --fresh; pa=$RUN_PID
  ready "$tmp/a" || fail "holder not ready: $(cat $tmp/a.out)"
  st=$(ctl endpoint status -w json)
  leader=$(python3 -c 'import json,sys
for e in json.loads(sys.argv[1]):
    if e["Status"]["leader"] == e["Status"]["header"]["member_id"]: print(e["Endpoint"])' "$st")
  for ((i = 0; i < 3; i++)); do
    url=http://${MEMBER_URL[i]}
    # the follower case kills the first endpoint the client uses, unless it leads
    if { [ $victim = leader ] && [ "$url" = "$leader" ]; } || { [ $victim = follower ] && [ "$url" != "$leader" ]; }; then
      kill -9 "${MEMBER_PID[i]}"; killed=$i; break
    fi
  done
  CLIENTS=$(IFS=,; m=("${MEMBER_URL[@]}"); unset "m[$killed]"; echo "${m[*]}")
  sleep 7   # longer than the lease: renewals must go on through the other members
  touch "$tmp/a/go"; finished $pa
  check "three members, the $victim killed mid-run: the run goes on and finishes" '[ "$(exit_of a)" = 0 ]' "$(cat $tmp/a.out)"
  check "three members, the $victim killed: every step once" '[ "$(count one) $(count wait) $(count three) $(count four)" = "1 1 1 1" ]' "marks: $(tr '\n' ' ' < "$MARKS")"
  stop_cluster
done

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]

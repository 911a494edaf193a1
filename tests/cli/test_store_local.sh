#!/usr/bin/env bash
# The local store (.runbook/): one lock per cluster across runbooks
# (issue #29 point 3), none for a read-only run, and a lock held on open
# descriptors that stops its holder when it is removed or moved from under
# it (issue #30 point 18). Every wait is bounded.
# usage: test_store_local.sh RUNBOOK_BIN SOURCE_DIR
set -u
bin=$1 src=$2
tmp=$(mktemp -d)
holder=
cleanup() { [ -n "$holder" ] && kill "$holder" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fails=0; passes=0
cd "$tmp"

expect() {   # expect NAME CODE PATTERN -- cmd...
  local name=$1 want=$2 pat=$3; shift 4
  local out code
  out=$(timeout 60 "$@" 2>&1 </dev/null); code=$?
  if [ "$code" -ne "$want" ]; then echo "FAIL $name: exit $code, want $want; output: $out"; fails=$((fails+1)); return; fi
  if [ -n "$pat" ] && ! grep -qE -- "$pat" <<<"$out"; then echo "FAIL $name: no /$pat/ in: $out"; fails=$((fails+1)); return; fi
  echo "ok   $name"; passes=$((passes+1))
}
ok()   { echo "ok   $1"; passes=$((passes+1)); }
fail() { echo "FAIL $1"; fails=$((fails+1)); }

# hold.lua takes the lock of cluster $KEY, says "ready" inside its first
# step and waits (at most 20 s) for "go"; its second step leaves a mark
cat > hold.lua <<'LUA'
local rb = require "runbook"
local fs = require "runbook.fs"
local time = require "runbook.time"
rb.cluster(os.getenv("KEY"))
rb.step("wait", function()
  fs.write("ready", "x")
  local t0 = time.monotonic()
  while not fs.exists("go") and time.monotonic() - t0 < 20 do time.sleep(0.05) end
end)
rb.step("after", function() fs.write("after-ran", "x") end)
LUA
cat > look.lua <<'LUA'
local rb = require "runbook"
rb.cluster(os.getenv("KEY"), {read_only = true})
rb.step("look", function() return "seen" end, {read_only = true})
print("looked")
LUA
cat > other.lua <<'LUA'
local rb = require "runbook"
rb.cluster(os.getenv("KEY"))
rb.step("quick", function() return 1 end)
LUA

start_holder() {   # start_holder DIR KEY: the holder runs in DIR until "go"
  rm -f "$1/ready" "$1/go" "$1/after-ran"
  (cd "$1" && KEY=$2 timeout 30 "$bin" run "$tmp/hold.lua" --fresh -q >"$tmp/holder.out" 2>&1; echo "exit $?" >>"$tmp/holder.out") &
  holder=$!
  timeout 10 bash -c "until [ -e '$1/ready' ]; do sleep 0.05; done" || fail "the holder never got ready: $(cat "$tmp/holder.out")"
}
finish_holder() {  # finish_holder DIR
  touch "$1/go"
  timeout 20 bash -c "while kill -0 $holder 2>/dev/null; do sleep 0.05; done"
  holder=
}

# --- one lock per cluster, whichever runbook holds it
start_holder "$tmp" talos:demo@https://10.0.0.1:6443
expect "another runbook of the same cluster exits 4 naming the holder's runbook and pid" 4 \
  "another run of cluster talos:demo@https://10.0.0.1:6443 holds the lock \(pid [0-9]+, started [^,]+, hold.lua" \
  -- env KEY=talos:demo@https://10.0.0.1:6443 "$bin" run other.lua
expect "a read-only run of the same cluster takes no lock" 0 "looked" -- env KEY=talos:demo@https://10.0.0.1:6443 "$bin" run look.lua
[ ! -e .runbook/look.journal ] && ok "a read-only run keeps no journal" || fail "look.journal written"
expect "a run of another cluster is not held up" 0 "" -- env KEY=talos:other@https://10.0.0.9:6443 "$bin" run other.lua --fresh -q

# the shipped rollback takes the cluster's lock: refused while a rollout (any holder of it) runs
cat > talconfig.yaml <<'YAML'
clusterName: demo
endpoint: https://10.0.0.1:6443
nodes:
  - hostname: k8s-1
    ipAddress: 10.0.0.1
    controlPlane: true
YAML
expect "rollback.lua refuses while the cluster's lock is held, and names who holds it" 4 \
  "another run of cluster talos:demo@https://10.0.0.1:6443 holds the lock \(pid $holder|another run of cluster talos:demo@https://10.0.0.1:6443 holds the lock \(pid [0-9]+, started [^,]+, hold.lua" \
  -- "$bin" run "$src/runbooks/rollback.lua"
expect "recover.lua's repair refuses too" 4 "holds the lock \(pid [0-9]+, started [^,]+, hold.lua" \
  -- "$bin" run "$src/runbooks/recover.lua" --var action=snapshot --var node=k8s-1
expect "extension.lua refuses too" 4 "holds the lock \(pid [0-9]+, started [^,]+, hold.lua" \
  -- "$bin" run "$src/runbooks/extension.lua" --var extension=siderolabs/iscsi-tools
expect "talos-upgrade.lua refuses too" 4 "holds the lock \(pid [0-9]+, started [^,]+, hold.lua" \
  -- "$bin" run "$src/runbooks/talos-upgrade.lua" --var version=v1.11.5
finish_holder "$tmp"
grep -q "^exit 0" holder.out && ok "the holder finished" || fail "holder: $(cat holder.out)"

# --- the lock cannot be removed from under a run (issue #30 point 18)
for how in "mv .runbook/lk.lockdir moved.lockdir" "rm -rf .runbook/lk.lockdir" "mv .runbook moved-state"; do
  rm -rf .runbook moved.lockdir moved-state
  start_holder "$tmp" lk
  $how
  # a second run now finds no lock at that path and may take a new one;
  # the first must act no further
  expect "after '$how', a second run can lock the new path" 0 "" -- env KEY=lk "$bin" run other.lua --fresh -q
  finish_holder "$tmp"
  if grep -q "^exit 4" holder.out && grep -q "lock lost: the lock file .runbook/lk.lockdir/lock (or its directory) was removed, moved or replaced" holder.out; then
    ok "after '$how', the holder stops before its next step (exit 4, lock lost)"
  else fail "after '$how', holder: $(cat holder.out)"; fi
  [ ! -e after-ran ] && ok "after '$how', the holder ran no further step" || fail "after '$how', the holder's next step ran"
done

# a step with a gate option, killed inside (SIGKILL): its begin record says
# so, and the resume polls its gate before the body runs again; a step
# without one runs again at once (the flock proves the holder dead)
rm -rf .runbook marks ready go
cat > gated.lua <<'LUA'
local rb = require "runbook"
local fs = require "runbook.fs"
local time = require "runbook.time"
local function mark(s) local f = assert(io.open("marks", "a")); f:write(s, "\n"); f:close() end
rb.cluster("gk")
rb.step("one", function() mark("one") end)
rb.step("wait", function()
  mark("wait")
  fs.write("ready", "x")
  local t0 = time.monotonic()
  while not fs.exists("go") and time.monotonic() - t0 < 20 do time.sleep(0.05) end
end, {gate = function() mark("gate") return true end})
rb.step("two", function() mark("two") end)
LUA
"$bin" run gated.lua >gated.out 2>&1 & gp=$!     # its own wait ends within 20 s
timeout 15 bash -c 'until [ -e ready ]; do sleep 0.05; done' || fail "gated.lua not ready: $(cat gated.out)"
kill -9 "$gp"; wait "$gp" 2>/dev/null
touch go
expect "a gated step killed inside: the resume runs its gate, then the step" 0 "" -- "$bin" run gated.lua --resume -q
[ "$(tr '\n' ' ' < marks)" = "one wait gate wait two " ] && ok "... in that order, every finished step once" || fail "gated marks: $(tr '\n' ' ' < marks)"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]

#!/usr/bin/env bash
# Attacks on the engine (#17): a step that never waits, files that may hold
# run details, resource bounds, inputs that must fail clearly.
# usage: test_attacks.sh RUNBOOK_BIN SOURCE_DIR
set -u
bin=$1; src=$2
source "$(dirname "$0")/../support/bounded.sh"   # every wait bounded, $bin_real for background runs
tmp=$(mktemp -d); srv=; trap '[ -n "$srv" ] && kill $srv 2>/dev/null; rm -rf "$tmp"' EXIT
fails=0; passes=0
ok() { echo "ok   $1"; passes=$((passes+1)); }
bad() { echo "FAIL $1"; fails=$((fails+1)); }

expect() {   # expect NAME CODE PATTERN -- cmd...
  local name=$1 want=$2 pat=$3; shift 4
  local out code
  out=$("$@" 2>&1); code=$?
  if [ "$code" -ne "$want" ]; then bad "$name: exit $code, want $want; output: $out"; return; fi
  if [ -n "$pat" ] && ! grep -qE -- "$pat" <<<"$out"; then bad "$name: output does not match /$pat/: $out"; return; fi
  ok "$name"
}

# waits (at most 5 s) for FILE to exist
await_file() { for _ in $(seq 100); do [ -e "$1" ] && return 0; sleep 0.05; done; return 1; }
cd "$tmp"

# ---- a step that never waits (#17 item 5)
cat > spin.lua <<'LUA'
local rb = require "runbook"
rb.step("spin", function()
  io.open("spinning", "w"):close()
  local x = 0
  while true do x = x + 1 end
end)
LUA
for sig in INT TERM; do
  rm -f spinning; rm -rf .runbook
  "$bin_real" run spin.lua >spin.out 2>&1 & pid=$!
  await_file spinning; sleep 0.2
  kill -$sig $pid
  for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
  if kill -0 $pid 2>/dev/null; then kill -9 $pid; bad "SIG$sig does not stop a busy loop"; await_exit $pid 10 >/dev/null 2>&1
  else await_exit $pid 10 "the busy run after SIG$sig"; code=$?
    [ $code -eq 3 ] && grep -q "in step spin, not finished" spin.out && ok "SIG$sig stops a busy step: exit 3, resumable" \
      || bad "SIG$sig on a busy step: exit $code: $(tail -3 spin.out)"
  fi
done

# a loop that catches the interrupt's error goes on; a second signal exits at once
cat > stubborn.lua <<'LUA'
local rb = require "runbook"
rb.step("stubborn", function()
  io.open("spinning", "w"):close()
  while true do pcall(function() local x = 0 while true do x = x + 1 end end) end
end)
LUA
rm -f spinning; rm -rf .runbook
"$bin_real" run stubborn.lua >stub.out 2>&1 & pid=$!
await_file spinning; sleep 0.2
kill -INT $pid; sleep 0.5
if kill -0 $pid 2>/dev/null; then
  kill -INT $pid
  for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
  if kill -0 $pid 2>/dev/null; then kill -9 $pid; bad "a second SIGINT does not end a loop catching errors"
  else await_exit $pid 10 "the stubborn loop after a second SIGINT"; code=$?
    [ $code -eq 3 ] && grep -q "interrupted again" stub.out && ok "a loop that catches the interrupt: the second SIGINT exits 3 at once" \
      || bad "second SIGINT on a stubborn loop: exit $code: $(tail -2 stub.out)"
  fi
else await_exit $pid 10; bad "the stubborn loop ended on the first signal (exit $?), expected it to catch it"; fi

# a step's timeout, and --step-timeout, end a step computing without waiting
sed 's/rb.step("spin", function()/rb.step("spin", function()/; s/^end)$/end, {timeout = 0.3})/' spin.lua > spin_to.lua
expect "a step's timeout ends a busy loop (then the failure path)" 1 "step spin failed: timeout: timed out: still computing after [0-9.]+s" -- "$bin" run spin_to.lua --fresh
expect "--step-timeout ends a busy loop" 1 "step spin failed: timeout: timed out" -- "$bin" run spin.lua --fresh --step-timeout 0.3
expect "--step-timeout in a dry-run counts computing time" 1 "step spin failed: timeout" -- "$bin" run spin.lua --fresh --dry-run --step-timeout 0.3
expect "a timeout caught by a pcall loop still ends the step" 1 "went on computing after its timeout error" -- "$bin" run stubborn.lua --fresh --step-timeout 0.3
expect "--step-timeout refuses a non-number" 2 "--step-timeout expects seconds > 0, got 'soon'" -- "$bin" run spin.lua --step-timeout soon
cat > waits.lua <<'LUA'
local rb = require "runbook"
rb.step("sleeps", function() require("runbook.time").sleep(5) end)
LUA
expect "--step-timeout ends a waiting step too" 1 "step sleeps failed: timeout: timed out after 0.2s" -- "$bin" run waits.lua --step-timeout 0.2

# ---- files that may hold run details (#17 item 10)
cat > files.lua <<'LUA'
local fs = require "runbook.fs"
fs.write("new.txt", "details\n")
fs.write("shared.txt", "for everyone\n", {mode = tonumber("644", 8)})
fs.write("kept.txt", "rewritten\n")
print("written")
LUA
printf 'old\n' > kept.txt; chmod 640 kept.txt
( umask 022; "$bin" run files.lua -q >/dev/null 2>&1 )
[ "$(stat -c %a new.txt)" = 600 ] && ok "fs.write creates a new file 0600 (umask 022)" || bad "new file mode $(stat -c %a new.txt)"
[ "$(stat -c %a shared.txt)" = 644 ] && ok "fs.write honours an explicit mode" || bad "explicit mode gave $(stat -c %a shared.txt)"
[ "$(stat -c %a kept.txt)" = 640 ] && ok "fs.write keeps an existing file's mode" || bad "existing file now $(stat -c %a kept.txt)"
printf 'print("hi")\n' > hi.lua
printf 'local rb = require "runbook"\nrb.step("one", function() return 1 end)\n' > dsl.lua
( umask 022; "$bin" run dsl.lua --log new.log --report new.md -q >/dev/null 2>new.err )
# created 0600, not created readable and then narrowed (a window, and a warning about a file it just made)
[ "$(stat -c %a new.log)" = 600 ] && [ "$(stat -c %a new.md)" = 600 ] && ! grep -q "readable by others" new.err && ok "--log and --report files are created 0600" \
  || bad "--log $(stat -c %a new.log), --report $(stat -c %a new.md): $(cat new.err)"
printf 'older runs\n' > open.log; chmod 644 open.log
expect "an existing --log file readable by others is made 0600, saying so" 0 "open.log was readable by others \(mode 0644\); it is now 0600" -- "$bin" run hi.lua --log open.log
[ "$(stat -c %a open.log)" = 600 ] && grep -q "older runs" open.log && ok "... keeping what it held" || bad "open.log is $(stat -c %a open.log)"
# ---- a log that cannot be written (#17 item 13)
expect "--log on a full disk says so at once, and the run goes on" 0 "cannot write the log file /dev/full: No space left on device; the run goes on" -- "$bin" run hi.lua --log /dev/full
expect "... and again at the end" 0 "the log file /dev/full is incomplete: No space left on device" -- "$bin" run hi.lua --log /dev/full

# ---- the served world, driven by someone else (#17 item 11)
mkdir -p outside private-tmp
wdir="$tmp/it's a \$(touch pwned) dir"
TMPDIR="$tmp/private-tmp" "$bin_real" world serve --dir "$wdir" 2>serve.err & srv=$!
for _ in $(seq 100); do [ -s "$wdir/world.url" ] && break; sleep 0.05; done
url=$(cat "$wdir/world.url"); base=${url%/*}; token=${url##*/}
if [ ${#token} -eq 32 ] && [ "$(stat -c %a "$wdir/world.url")" = 600 ] && [ "$(stat -c %a "$wdir/env")" = 600 ] \
   && [ "$(stat -c %a "$wdir")" = 700 ] && ! grep -rq "$token" "$wdir/bin"; then
  ok "the token is 128 bits in world.url and env (0600, directory 0700), in no shim (argv is public)"
else bad "token files: ${#token} chars, world.url $(stat -c %a "$wdir/world.url"), env $(stat -c %a "$wdir/env"), shims: $(grep -rl "$token" "$wdir/bin" | head -1)"; fi
exec_body='{"argv":["talosctl","-n","192.168.10.11","version"],"cwd":"/"}'
status() { curl -s --max-time 30 -o /dev/null -w '%{http_code}' "$@"; }
[ "$(status -X POST -H 'Content-Type: application/json' -d "$exec_body" "$base/exec")" = 403 ] && ok "POST /exec without the token: 403" || bad "no token accepted"
[ "$(status -X POST -H 'Content-Type: application/json' -d "$exec_body" "$base/0123456789abcdef0123456789abcdef/exec")" = 403 ] && ok "a wrong token: 403" || bad "wrong token accepted"
[ "$(status -X POST -H 'Host: evil.example:80' -H 'Content-Type: application/json' -d "$exec_body" "$url/exec")" = 421 ] && ok "a foreign Host (DNS rebinding): 421" || bad "foreign Host accepted"
[ "$(status -X POST -H 'Origin: http://evil.example' -H 'Content-Type: application/json' -d "$exec_body" "$url/exec")" = 403 ] && ok "an Origin header (a web page): 403" || bad "Origin accepted"
[ "$(status -X POST -H 'Content-Type: text/plain' -d "$exec_body" "$url/exec")" = 415 ] && ok "text/plain to /exec (a page's simple request): 415" || bad "text/plain accepted"
[ "$(status -X POST -H 'Content-Type: application/json' -d "$exec_body" "$url/exec")" = 200 ] && ok "with the token, as JSON: 200" || bad "the right request was refused"
[ ! -e pwned ] && [ ! -e "$wdir/pwned" ] && ok "a --dir holding quotes and \$(...) runs nothing" || bad "the --dir name ran a command"
( . "$wdir/env"; [ "$(command -v talosctl)" = "$wdir/bin/talosctl" ] && [ "$RUNBOOK_WORLD_URL" = "$url" ] ) && ok "... and its env file still sets PATH and the URL" || bad "env file: $(cat "$wdir/env")"
( cd "$wdir" && PATH="$wdir/bin:$PATH" bounded 60 talosctl -n 192.168.10.11 etcd snapshot "$tmp/outside/snap.db" ) >snap.out 2>&1
[ ! -e outside/snap.db ] && grep -q "outside the served directory" snap.out && ok "a file path outside --dir is refused (etcd snapshot)" || bad "snapshot outside --dir: $(cat snap.out)"
printf 'clusterName: secret-stuff\n' > outside/talconfig.yaml
( cd "$wdir" && PATH="$wdir/bin:$PATH" bounded 60 talhelper gencommand apply -c "$tmp/outside/talconfig.yaml" ) >gc.out 2>&1
! grep -q "secret-stuff" gc.out && grep -q "outside the served directory" gc.out && ok "a file outside --dir is not read (talhelper -c)" || bad "talhelper -c outside: $(cat gc.out)"
( cd "$wdir" && PATH="$wdir/bin:$PATH" bounded 60 talosctl -n 192.168.10.11 etcd snapshot "$tmp/private-tmp/snap.db" ) >/dev/null 2>&1
[ -s private-tmp/snap.db ] && ok "the temporary directory stays usable (a runbook's private copies)" || bad "snapshot in TMPDIR refused"
bounded 60 python3 - "${base#http://}" <<'PY' && ok "a connection that never completes its request is dropped (10 s)" || bad "an idle connection stayed open"
import socket, sys, time
host, port = sys.argv[1].split(":")
s = socket.create_connection((host, int(port)))
s.sendall(b"POST /x HTTP/1.1\r\nHost: " + sys.argv[1].encode() + b"\r\n")
s.settimeout(20)
t0 = time.time()
try:
    data = s.recv(100)
except socket.timeout:
    sys.exit(1)
sys.exit(0 if data == b"" and 8 < time.time() - t0 < 19 else 1)
PY
kill $srv; await_exit $srv 10 "world serve after SIGTERM" >/dev/null

# ---- clear errors for bad input (#17 item 13)
printf 'return 256\n' > r256.lua
expect "a runbook returning 256 is an error, not exit 0" 1 "the runbook returned 256; an exit code is an integer 0 to 255" -- "$bin" run r256.lua
# #30.21: one rule for exit codes: nothing is 0, else an integer 0..255
# (7.0 counts); anything else is exit 1 naming it, os.exit included
for v in 3.5 '"7"' math.huge true; do
  printf 'return %s\n' "$v" > rv.lua
  expect "a runbook returning $v is an error, not exit 0" 1 "the runbook returned .*; an exit code is an integer 0 to 255" -- "$bin" run rv.lua
done
printf 'return 7.0\n' > r7.lua
expect "a runbook returning 7.0 exits 7" 7 "" -- "$bin" run r7.lua
printf 'os.exit(300)\n' > x300.lua
expect "os.exit(300) is an error, not exit 44" 1 "bad argument #1 to 'exit' \\(an exit code is an integer 0 to 255\\)" -- "$bin" run x300.lua
printf 'os.exit(9)\n' > x9.lua
expect "os.exit(9) exits 9" 9 "" -- "$bin" run x9.lua
printf 'local rb = require "runbook"\nlocal v = rb.vars{a = {type = "string", default = "x"}}\nprint(v.a)\n' > v.lua
expect "--vars /dev/zero is refused (not a regular file), not read until memory runs out" 2 "read /dev/zero: a device, not a regular file" -- "$bin" run v.lua --vars /dev/zero
out=$("$bin" run rollout.lua --dry-run --scenario /dev/zero 2>&1); code=$?
[ $code -eq 2 ] && grep -q "a device, not a regular file" <<<"$out" && ! grep -q "\.lua:[0-9]" <<<"$out" \
  && ok "--scenario /dev/zero: one line, exit 2, no traceback" || bad "--scenario /dev/zero: exit $code: $out"
printf 'cluster: [\n' > broken.yaml
out=$("$bin" run rollout.lua --dry-run --scenario broken.yaml 2>&1); code=$?
[ $code -eq 2 ] && grep -q "broken.yaml:" <<<"$out" && ! grep -q "world.lua:[0-9]\|scenario.lua:[0-9]" <<<"$out" \
  && ok "a scenario error names the file, never the world's traceback" || bad "broken scenario: exit $code: $out"
out=$( (ulimit -n 8; bounded 30 "$bin_real" run hi.lua) 2>&1); code=$?
[ $code -eq 1 ] && grep -q "the open-file limit is 8; runbook needs at least 16" <<<"$out" \
  && ok "ulimit -n 8: a message, exit 1" || bad "ulimit -n 8: exit $code: $out"

# ---- scripts and runbook headers read with the inputs' cap and type check (#30 item 19)
# A FIFO would block open() for ever (hence the 20 s bound), /dev/zero and a
# directory are not scripts, 17 MiB is past the 16 MiB cap.
mkdir -p scripts && cd scripts
mkfifo fifo.lua; mkdir dir.lua; ln -s /dev/zero zero.lua
{ printf 'return [['; head -c $((17 * 1024 * 1024)) /dev/zero | tr '\0' a; printf ']]\n'; } > big.lua
printf -- '-- a good one\nreturn 1\n' > good.lua
quick() { RUNBOOK_TEST_WAIT=20 "$bin" "$@"; }
for f in fifo:FIFO zero:device dir:directory; do
  name=${f%%:*}; kind=${f#*:}
  printf 'local chunk, err = loadfile("%s.lua")\nassert(chunk == nil, "loaded")\nprint(err)\n' "$name" > "load_$name.lua"
  expect "loadfile of a $kind: one clear error, at once" 0 "^read $name.lua: a $kind, not a regular file$" -- quick run "load_$name.lua" -q
  printf 'dofile("%s.lua")\n' "$name" > "do_$name.lua"
  expect "dofile of a $kind: one clear error, at once" 1 "read $name.lua: a $kind, not a regular file" -- quick run "do_$name.lua" -q
  printf 'require "%s"\n' "$name" > "req_$name.lua"
  expect "require of a module that is a $kind: one clear error, at once" 1 "^[[:space:]]read ./$name.lua: a $kind, not a regular file$" -- quick run "req_$name.lua" -q
  expect "runbook run of a $kind: exit 2, says what it is" 2 "^runbook: read ./$name.lua: a $kind, not a regular file$" -- quick run "./$name.lua"
  expect "runbook check of a $kind: exit 2, says what it is" 2 "^runbook: read ./$name.lua: a $kind, not a regular file$" -- quick check "./$name.lua"
done
printf 'print(select(2, loadfile("big.lua")))\n' > load_big.lua
expect "loadfile past 16 MiB is refused" 0 "^read big.lua: more than 16777216 bytes, too large for this input$" -- quick run load_big.lua -q
expect "a runbook past 16 MiB is refused (exit 2)" 2 "^runbook: read big.lua: more than 16777216 bytes, too large for this input$" -- quick run big.lua
printf 'print(dofile("good.lua") + loadfile("good.lua", "t", {})())\n' > load_good.lua
expect "dofile and loadfile of a regular file work as Lua's" 0 "^2$" -- quick run load_good.lua -q
# the io library opens by name too: a FIFO is refused at once, never waited on
printf 'print(io.open("fifo.lua"))\nprint(io.open("fifo.lua", "w"))\n' > io_fifo.lua
expect "io.open of a FIFO, to read and to write: nil and one clear message, at once" 0 "^nil.fifo.lua: a FIFO, not a regular file \(opening it would wait for another process\).22$" -- quick run io_fifo.lua -q
for fn in lines input output; do
  printf 'io.%s("fifo.lua")\n' "$fn" > "io_${fn}_fifo.lua"
  expect "io.$fn of a FIFO: one clear error, at once" 1 "cannot open file 'fifo.lua' \(a FIFO, not a regular file" -- quick run "io_${fn}_fifo.lua" -q
done
rm big.lua
mkdir -p fifoworld/sim && mkfifo fifoworld/sim/world.lua && printf 'print(1)\n' > fifoworld/r.lua
expect "a rehearsal whose sim/world.lua is a FIFO: one clear error, at once" 1 "^runbook: read fifoworld/sim/world.lua: a FIFO, not a regular file$" -- quick run fifoworld/r.lua --dry-run
out=$(RUNBOOK_PATH=$PWD quick list 2>&1); code=$?
if [ $code -eq 0 ] && grep -q "good.lua *a good one" <<<"$out" \
   && grep -q "runbook list: $PWD/fifo.lua: a FIFO, not a regular file; skipped" <<<"$out" \
   && grep -q "runbook list: $PWD/zero.lua: a device, not a regular file; skipped" <<<"$out" \
   && grep -q "runbook list: $PWD/dir.lua: a directory, not a regular file; skipped" <<<"$out"; then
  ok "runbook list: each entry that is no regular file named, one line each, never opened blocking"
else bad "runbook list with a FIFO, a device and a directory: exit $code: $out"; fi
mkdir -p longhead
{ for _ in $(seq 30000); do echo '--'; done; echo '-- past the cap'; echo 'return 1'; } > longhead/long.lua
out=$(RUNBOOK_PATH=$PWD/longhead quick list 2>&1)
grep -qE "^  long.lua *$" <<<"$out" && ! grep -q "past the cap" <<<"$out" \
  && ok "runbook list reads at most 64 KiB of a runbook for its first comment" || bad "list read past 64 KiB: $out"
cd "$tmp"

# ---- a journal that cannot be written, or is not a file (#17 item 2)
mkdir -p jfull && cd jfull
printf 'local rb = require "runbook"\nlocal function note(s) local f = io.open("trail", "a"); f:write(s, "\\n"); f:close() end\nfor i = 1, 20 do rb.step("step number " .. i, function() note("did " .. i) return string.rep("x", 100) end) end\n' > j.lua
out=$( (ulimit -f 2; "$bin" run j.lua) 2>&1); code=$?
if [ $code -eq 1 ] && grep -q "cannot write the journal .runbook/j.journal (fs: append to .runbook/j.journal: EFBIG" <<<"$out" \
   && grep -q "next: make room for the journal" <<<"$out" && grep -q "report: " <<<"$out"; then
  ok "a journal append that fails (file size limit) stops the run with its summary, next step and report"
else bad "journal append failure: exit $code: $(tail -4 <<<"$out")"; fi
"$bin" run j.lua --resume -q >/dev/null 2>&1; code=$?
[ $code -eq 0 ] && [ "$(sort -u trail | wc -l)" = 20 ] && [ "$(wc -l < trail)" -le 21 ] \
  && ok "... and --resume with room again finishes, repeating at most the step cut short" || bad "resume after a full journal: exit $code, trail $(wc -l < trail) lines"
rm -rf .runbook; mkdir .runbook; ln -s /dev/zero .runbook/j.journal
expect "a journal that is a device is refused (exit 2), not read for ever" 2 "is not a regular file \(a device, FIFO or socket\)" -- "$bin" run j.lua --resume
cd "$tmp"

# ---- a failed rehearsal keeps the last good plan (#14 item 5)
mkdir -p plans && cd plans
printf 'local rb = require "runbook"\nrb.step("one", function() if os.getenv("BREAK") then error("broken") end return 1 end)\n' > p.lua
"$bin" run p.lua --dry-run -q >/dev/null 2>&1
cp .runbook/p.plan.md good.md
BREAK=1 "$bin" run p.lua --dry-run >bad.out 2>&1; code=$?
[ $code -eq 1 ] && cmp -s .runbook/p.plan.md good.md && grep -q "report: .runbook/p.plan.failed.md" bad.out && grep -q "broken" .runbook/p.plan.failed.md \
  && ok "a failed rehearsal writes plan.failed.md and keeps the last good plan" || bad "plans: exit $code; $(ls .runbook)"
cd "$tmp"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]

-- Lua's io library opening by name (io.open, io.lines, io.input,
-- io.output) goes through the engine's guard (engine/input.c): what Lua's
-- own does for every file and mode, and a FIFO refused at once instead of
-- an open() that waits for another process. The FIFO cases with a time
-- bound are in tests/cli/test_attacks.sh.
local exec = require "runbook.exec"
local fs = require "runbook.fs"
local t = require "runbook.testing"

local function tmp() return fs.tmpdir("io-test") end
local function rm_rf(dir) exec.run({"rm", "-rf", dir}, {quiet = true, check = true}) end

function test_modes_as_lua()
  local d = tmp()
  local p = d .. "/f"
  local f = assert(io.open(p, "w"))
  t.eq(io.type(f), "file")
  f:write("one\n", "two\n")
  f:close()
  t.eq(io.type(f), "closed file")
  f = assert(io.open(p, "a"))
  f:write("three\n")
  f:close()
  f = assert(io.open(p))                           -- "r" by default
  t.eq(f:read("a"), "one\ntwo\nthree\n")
  t.eq(select(2, f:write("x")) ~= nil, true)        -- read-only: the write fails
  f:close()
  f = assert(io.open(p, "r+b"))
  f:write("ONE")
  f:seek("set")
  t.eq(f:read("l"), "ONE")
  f:close()
  f = assert(io.open(p, "a+"))
  f:write("four\n")
  f:seek("set")
  t.eq(f:read("a"), "ONE\ntwo\nthree\nfour\n")
  f:close()
  f = assert(io.open(p, "w+"))                     -- truncates
  t.eq(f:read("a"), "")
  f:close()
  rm_rf(d)
end

function test_errors_as_lua()
  local d = tmp()
  local f, msg, code = io.open(d .. "/none")
  t.eq(f, nil)
  t.eq(msg, d .. "/none: No such file or directory")
  t.eq(code, 2)
  local ok, err = pcall(io.open, d .. "/x", "rw")
  t.eq(ok, false)
  t.match(err, "bad argument #2 to 'io.open' %(invalid mode%)")
  ok, err = pcall(io.lines, d .. "/none")
  t.eq(ok, false)
  t.match(err, "cannot open file '.*/none' %(No such file or directory%)$")
  ok, err = pcall(io.input, d .. "/none")
  t.eq(ok, false)
  t.match(err, "cannot open file '.*/none' %(No such file or directory%)$")
  rm_rf(d)
end

-- io.lines(name) closes its file at the end, takes read formats, and
-- returns the file as its fourth value (Lua 5.4's to-be-closed)
function test_lines_close_at_end()
  local d = tmp()
  local p = d .. "/l"
  fs.write(p, "a\nb\nc\n")
  local got = {}
  for l in io.lines(p) do got[#got + 1] = l end
  t.eq(got, {"a", "b", "c"})
  local it, s, c, f = io.lines(p)
  t.eq({s, c, io.type(f)}, {nil, nil, "file"})
  t.eq({it(), it(), it(), it()}, {"a", "b", "c"})
  t.eq(io.type(f), "closed file")
  t.eq(pcall(it), false)                           -- as Lua's: "file is already closed"
  got = {}
  for x, rest in io.lines(p, 1, "L") do got[#got + 1] = x .. "|" .. rest end
  t.eq(got, {"a|\n", "b|\n", "c|\n"})
  rm_rf(d)
end

function test_default_files_by_name()
  local d = tmp()
  local p = d .. "/io"
  io.output(p)
  io.write("via output\n")
  io.output():close()
  io.output(io.stdout)
  io.input(p)
  t.eq(io.read("l"), "via output")
  io.input():close()
  io.input(io.stdin)
  t.eq(io.type(io.input()), "file")
  rm_rf(d)
end

-- a child process does not inherit a file the runbook opened
function test_close_on_exec()
  local d = tmp()
  local f = assert(io.open(d .. "/held", "w"))
  local r = exec.run({"sh", "-c", "ls -l /proc/self/fd/ | grep -c held || true"}, {quiet = true})
  t.eq(r.stdout, "0\n")
  f:close()
  rm_rf(d)
end

function test_fifo_refused_at_once()
  local d = tmp()
  local p = d .. "/fifo"
  exec.run({"mkfifo", p}, {quiet = true, check = true})
  for _, mode in ipairs{"r", "w", "a", "r+"} do
    local f, msg, code = io.open(p, mode)
    t.eq(f, nil, mode)
    t.eq(msg, p .. ": a FIFO, not a regular file (opening it would wait for another process)", mode)
    t.eq(code, 22, mode)
  end
  t.eq(pcall(io.lines, p), false)
  t.eq(pcall(io.input, p), false)
  t.eq(pcall(io.output, p), false)
  rm_rf(d)
end

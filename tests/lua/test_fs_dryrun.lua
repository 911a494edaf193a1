--! dry-run
-- runbook.fs in a dry-run: writes land in an overlay, reads see it, the
-- real files are untouched, and changes() / diff() describe the plan.
local fs = require "runbook.fs"
local core = require "runbook.fs.core"
local t = require "runbook.testing"

function test_overlay_hides_writes_from_disk()
  local d = core.tmpdir("overlay")
  core.write(d .. "/talconfig.yaml", "a: 1\nb: 2\n")
  fs.write(d .. "/talconfig.yaml", "a: 1\nb: 3\n", {backup = true})
  fs.write(d .. "/patches/new.yaml", "x: y\n", {mode = tonumber("600", 8)})
  t.eq(fs.read(d .. "/talconfig.yaml"), "a: 1\nb: 3\n")
  t.eq(core.read(d .. "/talconfig.yaml"), "a: 1\nb: 2\n")      -- disk untouched
  t.eq(core.exists(d .. "/patches/new.yaml"), false)
  t.truthy(fs.exists(d .. "/patches/new.yaml"))
  t.eq(fs.stat(d .. "/patches/new.yaml").mode, tonumber("600", 8))
  local ch = fs.changes()
  t.eq(#ch, 2)
  t.eq(ch[1].before, "a: 1\nb: 2\n")
  t.eq(ch[2].before, nil)
  t.eq(fs.diff(ch[1]), "--- a/" .. d .. "/talconfig.yaml\n+++ b/" .. d .. "/talconfig.yaml\n@@ -1,2 +1,2 @@\n a: 1\n-b: 2\n+b: 3\n")
  fs.remove(d .. "/talconfig.yaml")
  t.eq(fs.exists(d .. "/talconfig.yaml"), false)
  t.truthy(core.exists(d .. "/talconfig.yaml"))
  t.raises("removed in this dry%-run", fs.read, d .. "/talconfig.yaml")
  t.eq(fs.list(d), {})
  core.remove(d .. "/talconfig.yaml")
  core.remove(d)
end

-- A rehearsal's file modes are the real run's (test_fs.lua
-- test_a_new_file_is_0600_by_default): a new file without a mode is 0600,
-- an existing one keeps its own, a given mode wins. The plan's changes()
-- carry the mode a real run would give.
function test_a_new_file_is_0600_in_a_dry_run_too()
  local d = core.tmpdir("modes")
  core.write(d .. "/shared.yaml", "a: 1\n", {mode = tonumber("644", 8)})
  fs.write(d .. "/new.yaml", "x: 1\n")
  t.eq(fs.stat(d .. "/new.yaml").mode, tonumber("600", 8), "a new file is 0600, as for real")
  fs.write(d .. "/new.yaml", "x: 2\n")
  t.eq(fs.stat(d .. "/new.yaml").mode, tonumber("600", 8), "and stays 0600 when replaced")
  fs.write(d .. "/shared.yaml", "a: 2\n")
  t.eq(fs.stat(d .. "/shared.yaml").mode, tonumber("644", 8), "an existing file keeps its mode")
  fs.write(d .. "/given.yaml", "g: 1\n", {mode = tonumber("640", 8)})
  t.eq(fs.stat(d .. "/given.yaml").mode, tonumber("640", 8))
  local modes = {}
  for _, c in ipairs(fs.changes()) do modes[c.path] = c.mode end
  t.eq(modes[d .. "/new.yaml"], tonumber("600", 8))
  t.eq(core.exists(d .. "/new.yaml"), false)
  core.remove(d .. "/shared.yaml")
  core.remove(d)
end

function test_unified_diff_hunks()
  local diff = require "runbook.diff"
  local old = {}
  for i = 1, 20 do old[#old + 1] = "line " .. i end
  local new = {table.unpack(old)}
  new[2] = "changed 2"
  new[18] = "changed 18"
  local out = diff.unified(table.concat(old, "\n") .. "\n", table.concat(new, "\n") .. "\n", "f")
  t.eq(out, table.concat({
    "--- a/f", "+++ b/f",
    "@@ -1,5 +1,5 @@", " line 1", "-line 2", "+changed 2", " line 3", " line 4", " line 5",
    "@@ -15,6 +15,6 @@", " line 15", " line 16", " line 17", "-line 18", "+changed 18", " line 19", " line 20", ""}, "\n"))
  t.eq(diff.unified("same\n", "same\n", "f"), "")
  t.eq(diff.unified(nil, "new\n", "f"), "--- /dev/null\n+++ b/f\n@@ -0,0 +1,1 @@\n+new\n")
end

-- a fleet's talconfig.yaml: thousands of lines, many of them alike in every
-- node, a few added under each. The diff is the added lines, not the whole
-- file replaced (what an LCS over its 20,000 x 60,000 middle gave up to)
function test_unified_diff_large_file_keeps_small_hunks()
  local diff = require "runbook.diff"
  local old, new = {}, {}
  for i = 1, 2000 do
    for _, l in ipairs{"  - hostname: node-" .. i, "    ipAddress: 10.1." .. i // 256 .. "." .. i % 256,
                       "    installDisk: /dev/sda", "    talosImageURL: factory/abc"} do
      old[#old + 1] = l; new[#new + 1] = l
    end
    new[#new] = "    talosImageURL: factory/def"
    new[#new + 1] = "    certSANs:"
    new[#new + 1] = "      - node-" .. i .. ".tail0000.ts.net"
  end
  local out = diff.unified(table.concat(old, "\n") .. "\n", table.concat(new, "\n") .. "\n", "f")
  local minus, plus, same = 0, 0, 0
  for line in out:gmatch("[^\n]+") do
    local c = line:sub(1, 1)
    local header = line:match("^%-%-%- ") or line:match("^%+%+%+ ")
    if header then c = "header" end
    if c == "-" then minus = minus + 1 elseif c == "+" then plus = plus + 1
    elseif c == " " then same = same + 1 end
  end
  t.eq(minus, 2000)            -- each node's old image line, nothing else
  t.eq(plus, 6000)             -- its new image line and the two added
  t.truthy(same > 0)
  t.truthy(out:find("\n%-    talosImageURL: factory/abc\n%+    talosImageURL: factory/def\n%+    certSANs:\n%+      %- node%-1%.tail0000%.ts%.net\n"))
end

-- the same as diff -u on a mixed change: lines moved, removed, added and
-- repeated (patience anchors on the unique ones; the rest by LCS)
function test_unified_diff_applies_back()
  local diff = require "runbook.diff"
  local a = "a\nb\nc\nx\nx\nd\ne\nf\ng\nx\nh\n"
  local b = "a\nc\nb\nx\nd\nE\nf\nx\nx\ng\nh\ni\n"
  local out = diff.unified(a, b, "f")
  -- apply the hunks to a by hand: the result must be b
  local src = {}
  for l in a:gmatch("([^\n]*)\n") do src[#src + 1] = l end
  local res, at = {}, 1
  for start, body in out:gmatch("@@ %-(%d+),%d+ %+%d+,%d+ @@\n(.-)%f[@%z]") do
    start = tonumber(start)
    while at < start do res[#res + 1] = src[at]; at = at + 1 end
    for line in body:gmatch("([^\n]*)\n") do
      local op, text = line:sub(1, 1), line:sub(2)
      if op == " " then t.eq(src[at], text); res[#res + 1] = text; at = at + 1
      elseif op == "-" then t.eq(src[at], text); at = at + 1
      elseif op == "+" then res[#res + 1] = text end
    end
  end
  while at <= #src do res[#res + 1] = src[at]; at = at + 1 end
  t.eq(table.concat(res, "\n") .. "\n", b)
end

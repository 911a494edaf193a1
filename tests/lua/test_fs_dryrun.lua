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

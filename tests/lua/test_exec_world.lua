--! dry-run
-- #30.8: in a dry-run, exec.run's options shape the simulated world's answer
-- as they shape a real child's: on_line, max_output, timeout.
local exec = require "runbook.exec"
local time = require "runbook.time"
local t = require "runbook.testing"

local function with_world(answer, fn)
  local before = package.loaded["runbook.world"]
  package.loaded["runbook.world"] = {exec = answer}
  local ok, err = pcall(fn)
  package.loaded["runbook.world"] = before
  if not ok then error(err, 0) end
end

function test_on_line_and_max_output_apply_to_the_world()
  with_world(function() return {code = 0, stdout = "a\nbb\nlast", stderr = "e\n"} end, function()
    local seen = {}
    local r = exec.run({"talosctl", "version"}, {max_output = 3, on_line = function(line, stream, piece)
      seen[#seen + 1] = ("%s:%s:%s"):format(stream, line, tostring(piece))
    end})
    t.eq(seen, {"stdout:a:false", "stdout:bb:false", "stdout:last:false", "stderr:e:false"})
    t.eq(r.stdout, "a\nb")
    t.eq(r.stdout_dropped, 6)
    t.eq(r.stderr_dropped, 0)
    t.eq(r.timed_out, false)
  end)
end

function test_timeout_applies_to_the_world()
  with_world(function() time.sleep(600); return {code = 0, stdout = "late", stderr = ""} end, function()
    local r = exec.run({"talosctl", "upgrade"}, {timeout = 30, allow_timeout = true})
    t.eq(r.timed_out, true)
    t.eq(r.signal, 15)
    t.eq(r.duration, 30)
    t.eq(t.raises(exec.run, {"talosctl", "upgrade"}, {timeout = 30}).kind, "timeout")
  end)
end

--- Helpers shared by the Lua tests: a real HTTP server on 127.0.0.1,
--- started by the test itself and stopped when the test ends.
local async = require "runbook.async"
local exec = require "runbook.exec"

local M = {}

local function here()
  return (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".")
end

--- Starts tests/support/httpd.py (args: extra argv). Returns base URL and
--- a stop function. The server task is cancelled on stop (its process
--- group is terminated).
function M.httpd(extra)
  local port
  local argv = {"python3", here() .. "/../support/httpd.py"}
  for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
  local task = async.spawn(exec.run, argv, {grace = 0.5, quiet = true, on_line = function(line)
    port = port or tonumber(line:match("^PORT (%d+)"))
  end})
  async.wait_until(function() return port ~= nil or task:status() ~= "waiting" and task:status() ~= "ready", "starting" end,
                   {timeout = 20, interval = 0.02, desc = "test HTTP server"})
  if not port then error("test HTTP server did not start: " .. tostring(select(2, task:result()))) end
  return port, function() task:cancel(); pcall(task.wait, task) end
end

return M

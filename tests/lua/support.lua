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

--- Whether `decode` (called 200 times, each result kept, as a caller does)
--- runs without a collection: a young garbage key of a weak table
--- survives them. The heap is some 10 MB and the generational mode entered
--- afresh, so that the next minor collection is 20 % of it away, far more
--- than the decodes allocate, whatever earlier tests left. The key is then
--- cleared by a collection (the probe works). For the decoders, which
--- must not force a collection after each small input (docs/benchmarks.md).
---@param decode fun(i:integer):any
---@return boolean survived, boolean cleared_after
function M.no_collection_during(decode)
  local ballast = {}
  for i = 1, 200000 do ballast[i] = {i} end
  collectgarbage("incremental"); collectgarbage("generational")
  local weak = setmetatable({}, {__mode = "k"})
  weak[{}] = true
  local kept = {}
  for i = 1, 200 do kept[i] = decode(i) end
  local survived = next(weak) ~= nil
  collectgarbage()
  local cleared = next(weak) == nil and #ballast == 200000 and #kept == 200
  return survived, cleared
end

return M

--- A private working directory a step writes secrets into (a genconfig of
--- talconfig.yaml holds the cluster's), in the run's state directory: one
--- fixed place per use, so that a run killed before it cleaned up (SIGKILL,
--- a second Ctrl-C) leaves nothing a later run does not find and remove
--- (a mkdtemp name in /tmp would stay there for good). The state directory
--- is the run's own (one run at a time holds its lock).
local fs = require "runbook.fs"

local M = {}

--- Removes dir and the files in it (one level: what talhelper writes).
---@param dir string
function M.remove(dir)
  if not fs.exists(dir) then return end
  for _, f in ipairs(fs.list(dir)) do fs.remove(dir .. "/" .. f) end
  fs.remove(dir)
end

--- <state_dir>/scratch/<name>, empty, 0700 (leftovers of a killed run
--- removed first), inside a directory git ignores.
---@param state_dir string
---@param name string
---@return string dir
function M.dir(state_dir, name)
  local top = state_dir .. "/scratch"
  fs.mkdir_p(top, tonumber("700", 8))
  fs.write(top .. "/.gitignore", "# working copies that hold the cluster's secrets, removed after each use\n*\n")
  local dir = top .. "/" .. name
  M.remove(dir)
  fs.mkdir_p(dir, tonumber("700", 8))
  return dir
end

return M

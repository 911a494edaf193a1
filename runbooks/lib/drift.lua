--- Drift before resume (issue #29.5): the files a run wrote, as it left
--- them (a SHA-256 each, recorded in the step's journaled result), and the
--- check a resumed run makes before its first change: a file changed in
--- between (edited, restored from its backup, removed) stops the run with
--- the difference, exit 2, unless the operator passed --accept-drift.
--- Only hashes are kept: talconfig.yaml may hold literal values an
--- operator keeps out of the journal.
local fs = require "runbook.fs"
local hash = require "runbook.hash"
local log = require "runbook.log"
local errors = require "runbook.error"

local M = {}
local fmt = string.format

--- The SHA-256 of a file's content, or false when it does not exist.
---@param path string
---@return string|false
function M.hash(path)
  if not fs.exists(path) then return false end
  return hash.sha256(fs.read(path))
end

--- {path = hash} of each path.
---@param paths string[]
function M.hashes(paths)
  local out = {}
  for _, p in ipairs(paths) do out[p] = M.hash(p) end
  return out
end

--- What changed of `recorded` ({path = hash|false}), one line per file,
--- sorted; `backups` (path -> its backup) tells a restored backup apart.
---@param recorded table
---@param backups? table
---@return string[]
function M.differences(recorded, backups)
  local out = {}
  for path, want in pairs(recorded) do
    local have = M.hash(path)
    if have ~= want then
      local b = backups and backups[path]
      if not have then
        out[#out + 1] = fmt("%s was removed", path)
      elseif not want then
        out[#out + 1] = fmt("%s exists, which the run had removed", path)
      elseif b and fs.exists(b) and M.hash(b) == have then
        out[#out + 1] = fmt("%s is its backup %s again: the run's edit of it is gone", path, b)
      else
        out[#out + 1] = fmt("%s changed (sha256 %s, the run left %s)", path, have:sub(1, 12), want:sub(1, 12))
      end
    end
  end
  table.sort(out)
  return out
end

--- Stops a resumed run (exit 2) when a file it wrote changed since, naming
--- each; with --accept-drift it warns and goes on.
---@param recorded table {path = hash|false}
---@param backups? table path -> backup path
function M.check(recorded, backups)
  local diff = M.differences(recorded, backups)
  if #diff == 0 then return end
  local accept = require("runbook.sys").options().accept_drift
  local text = table.concat(diff, "; ")
  if accept then
    log.warn("--accept-drift: going on with files changed since the run being resumed: " .. text)
    return
  end
  error(errors.new("usage", fmt("files the run being resumed wrote changed since: %s. Nothing was changed by this run. "
    .. "Put them back as the run left them, or resume with --resume --accept-drift to go on with them as they are "
    .. "(docs/cli.md)", text), {exit = 2}), 0)
end

return M

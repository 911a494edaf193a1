--- statedir: the runbooks' own records under the state directory
--- (.runbook/: journals, reports, backups, etcd snapshots, the devices
--- record) kept out of git wherever the directory sits (issue #28.6).
local fs = require "runbook.fs"

local M = {}
local fmt = string.format

M.GITIGNORE = "# written by the runbooks: journals, reports, backups and etcd snapshots (the cluster's secrets)\n*\n"

--- Writes <state_dir>/.gitignore ignoring everything in it, unless it says
--- so already. A rehearsal writes nothing.
---@param state_dir string
---@param dry_run boolean
function M.ignore(state_dir, dry_run)
  if dry_run then return end
  local path = state_dir .. "/.gitignore"
  if fs.exists(path) and fs.read(path) == M.GITIGNORE then return end
  fs.mkdir_p(state_dir, tonumber("700", 8))
  fs.write(path, M.GITIGNORE)
end

M.KEEP_BACKUPS = 10

--- The record of what a stop left in the directory (rollout_dir's
--- settle, after a stop of rollout.lua): {path = sha256|false}. settled(dir) reads it ({} when
--- none), settled(dir, t) writes it, settled(dir, false) removes it. A
--- resume's drift check takes these hashes over the ones the run's steps
--- journaled, since the stop itself changed the files.
---@param state_dir string
---@param value? table|false
---@return table
function M.settled(state_dir, value)
  local json = require "runbook.json"
  local path = state_dir .. "/rollout.settled.json"
  if value == nil then
    if not fs.exists(path) then return {} end
    local ok, t = pcall(json.decode, fs.read(path))
    return ok and type(t) == "table" and t or {}
  elseif value == false then
    if fs.exists(path) then fs.remove(path) end
    return {}
  end
  fs.mkdir_p(state_dir, tonumber("700", 8))
  fs.write(path, json.encode(value))
  return value
end

--- Copies `file` to <state_dir>/backups/<name>.<UTC time> (0600), then
--- prunes: of the backups of that name, the newest KEEP_BACKUPS are kept
--- (names sort by time). Returns the backup's path (a rehearsal writes
--- nothing).
---@param state_dir string
---@param file string
---@param dry_run boolean
---@return string
function M.backup(state_dir, file, dry_run)
  local name = file:match("([^/]*)$")
  local dir = state_dir .. "/backups"
  if dry_run then return fmt("%s/%s.(dry-run)", dir, name) end
  fs.mkdir_p(dir, tonumber("700", 8))
  local stamp = os.date("!%Y%m%dT%H%M%SZ")
  local path = fmt("%s/%s.%s", dir, name, stamp)
  local n = 1
  while fs.exists(path) do n = n + 1; path = fmt("%s/%s.%s.%d", dir, name, stamp, n) end
  fs.write(path, fs.read(file), {mode = tonumber("600", 8)})
  local mine = {}
  for _, f in ipairs(fs.list(dir)) do
    if f:sub(1, #name + 1) == name .. "." then mine[#mine + 1] = f end
  end
  table.sort(mine)
  for i = 1, #mine - M.KEEP_BACKUPS do fs.remove(dir .. "/" .. mine[i]) end
  return path
end

return M

--- preflight: what a runbook checks before the first byte of the
--- operator's directory changes (issue #28.3). Every check that can refuse
--- runs on a scratch copy of the directory, in a private temporary
--- directory; a refusal stops the run with exit 2 ("refused, nothing
--- changed", docs/cli.md), and the scratch copy is removed whatever
--- happened.
local errors = require "runbook.error"
local fs = require "runbook.fs"

local M = {}
local fmt = string.format

--- Stops the run: exit 2, nothing undone (nothing was changed). Raised
--- inside a step, the step does not wrap it into a failure (exit 1).
---@param msg string why, and what to do
function M.refuse(msg)
  msg = msg:gsub("^[^:\n]+%.lua:%d+: ", ""):gsub("%s+$", "")
  if not msg:find("[Nn]othing was changed") then msg = msg .. (msg:find("[.:]$") and " " or ". ") .. "Nothing was changed." end
  error(errors.new("usage", msg, {exit = 2, stop = true}), 0)
end

--- Runs fn(); any error it raises becomes a refusal (exit 2). A refusal
--- or a stop raised inside keeps its own exit.
---@param fn fun(): any
---@return any
function M.refusing(fn)
  local ok, res = pcall(fn)
  if ok then return res end
  if type(res) == "table" and (res.stop or res.kind == "usage") then error(res, 0) end
  M.refuse(type(res) == "table" and tostring(res.message or res) or tostring(res))
end

-- What a scratch copy leaves out: version control, the runbooks' own state,
-- talhelper's output (regenerated in the copy) and anything large.
local SKIP = {[".git"] = true, [".runbook"] = true, clusterconfig = true}
local MAX_FILE, MAX_FILES, MAX_DEPTH = 4 * 1024 * 1024, 10000, 8
local COPY_MARK = ".runbook-scratch-copy"

--- Copies the directory tree src into dst (created), leaving out .git,
--- .runbook, clusterconfig, files of 4 MiB and more, and symbolic links'
--- targets outside (a link is copied as the file it names). Returns the
--- number of files copied.
---@param src string
---@param dst string
---@return integer
function M.copy_tree(src, dst)
  local count = 0
  local function walk(from, to, depth)
    fs.mkdir_p(to, tonumber("700", 8))
    for _, name in ipairs(fs.list(from)) do
      local path = from .. "/" .. name
      local st = not SKIP[name] and fs.stat(path)
      -- a scratch copy itself (a --state-dir inside the directory) is left out
      local copy = st and st.type == "directory" and fs.exists(path .. "/" .. COPY_MARK)
      if copy then
        st = nil
      end
      if st and st.type == "directory" and depth < MAX_DEPTH then
        walk(path, to .. "/" .. name, depth + 1)
      elseif st and st.type == "file" and st.size < MAX_FILE then
        count = count + 1
        if count > MAX_FILES then
          error(fmt("%s holds more than %d files: the scratch copy takes the talhelper directory only "
            .. "(run from the directory of talconfig.yaml)", src, MAX_FILES), 0)
        end
        fs.write(to .. "/" .. name, fs.read(path), {mode = tonumber("600", 8)})
      end
    end
  end
  walk(src, dst, 1)
  return count
end

--- Removes a directory tree (a scratch copy: it may hold the cluster's
--- secrets, as generated configs do). Errors are ignored: it is temporary.
---@param dir string
function M.remove_tree(dir)
  -- a rehearsal's copy lives in its overlay, whose listing does not show
  -- the directories made there: every file written under dir is removed
  for _, c in ipairs(fs.changes()) do
    if c.after and c.path:sub(1, #dir + 1) == dir .. "/" then fs.remove(c.path) end
  end
  if not fs.exists(dir) then return end
  local st = fs.stat(dir)
  if st and st.type == "directory" then
    for _, name in ipairs(fs.list(dir)) do M.remove_tree(dir .. "/" .. name) end
  end
  pcall(fs.remove, dir)
end

--- Runs fn(dir) with a scratch copy of src in <state_dir>/scratch/copy
--- (0700, git-ignored; a copy a killed run left is removed first, so none
--- stays for good; a rehearsal names it the same each time and writes it
--- only in its overlay), removed afterwards whatever happened; returns
--- fn's results.
---@param src string
---@param fn fun(dir: string): any
---@param dry_run boolean
---@param state_dir string the run's state directory (rb.state_dir)
---@return any
function M.with_scratch_copy(src, fn, dry_run, state_dir)
  local dir = "/tmp/runbook-scratch.rehearsal"
  if not dry_run then
    dir = state_dir .. "/scratch/copy"
    M.remove_tree(dir)
    require("scratch").dir(state_dir, "copy")
    fs.write(dir .. "/" .. COPY_MARK, "")
  end
  local ok, res = pcall(function()
    M.copy_tree(src, dir)
    return fn(dir)
  end)
  M.remove_tree(dir)
  if not ok then error(res, 0) end
  return res
end

return M

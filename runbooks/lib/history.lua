--- history: a rollout done in several runs (a canary with --limit, then
--- the rest; a run stopped and started again with --fresh) is the sum of
--- its runs (issue #28.1, .2). The engine keeps each finished or archived
--- run's journal beside the current one (<state dir>/rollout.journal.<UTC
--- time>, runbook.journal), or in the shared store a run uses (--store:
--- etcd, a Kubernetes ConfigMap; rb.journals), so that a rollback on
--- another machine finds the rollout's runs; this reads them all.
local fs = require "runbook.fs"
local journal = require "runbook.journal"

local M = {}
local fmt = string.format

--- The journals of `base` (e.g. "rollout"), newest first, as
--- {where, records, finished} or {where, why}: from the run's shared store
--- when it uses one (rb.journals), else from the state dir's files (the
--- current one, then the archived ones by their time stamps).
---@param state_dir string
---@param base string
---@return table[]
local function entries(state_dir, base)
  local rb = require "runbook"
  if rb.store() and state_dir == rb.state_dir then return rb.journals(base) end
  return require("runbook.store").open(nil, {state_dir = state_dir}):journals(base, base)
end
M.entries = entries

--- Where each journal of `base` is, newest first (file paths in the state
--- dir; in a shared store, what names it there).
---@param state_dir string
---@param base string
---@return string[]
function M.journals(state_dir, base)
  local out = {}
  for _, e in ipairs(entries(state_dir, base)) do out[#out + 1] = e.where end
  return out
end

--- One rollout run as its journal records it: {path (where it is),
--- time (its last record), schematic (the step "schematic"'s result),
--- talconfig (the step "talconfig"'s result: {backup}), upgraded (node
--- names in the order they were upgraded, not undone), finished}. nil for
--- a journal that cannot be read (said in `why`).
---@param src string|table a journal file, or an entry of entries()
---@return table? run, string? why
function M.read_run(src)
  local recs, finished, path
  if type(src) == "table" then
    if not src.records then return nil, src.why end
    recs, finished, path = src.records, src.finished, src.where
  else
    local ok
    ok, recs, finished = pcall(journal.read, src)
    if not ok then return nil, tostring(type(recs) == "table" and recs.message or recs) end
    path = src
  end
  local steps, order = journal.steps(recs)
  local run = {path = path, finished = finished, upgraded = {},
               time = recs[#recs] and recs[#recs].time or 0,
               schematic = steps.schematic and steps.schematic.result,
               talconfig = steps.talconfig and steps.talconfig.result}
  for _, key in ipairs(order) do
    local node = key:match("^upgrade/(.+)$")
    if node then run.upgraded[#run.upgraded + 1] = node end
  end
  return run
end

--- The time the newest finished rollback ended (its journal's last
--- record), or 0: a rollout run older than that was undone by it.
---@param state_dir string
---@return number
function M.last_rollback(state_dir)
  for _, e in ipairs(entries(state_dir, "rollback")) do
    -- a rollback that finished well; one that stopped having changed
    -- nothing (a change whose reply was lost) rolled nothing back
    local last = e.records and e.records[#e.records]
    if e.finished and last and last.ok == true then return last.time or 0 end
  end
  return 0
end

--- Whether a talconfig.yaml text holds a tailscale extensionServices entry.
local function has_tailscale_entry(text)
  return text:find("name:%s*['\"]?tailscale['\"]?%s*\n") ~= nil and text:find("TS_AUTHKEY", 1, true) ~= nil
end

--- The runs of the rollout still in effect, newest first: every rollout
--- journal newer than the last finished rollback that changed something
--- (a computed schematic), back to the run that found talconfig.yaml
--- without any tailscale entry (the directory before the rollout). The
--- oldest run's talconfig backup is the file as it was before the first run.
---@param state_dir string
---@return table[] runs, string[] unread journals that could not be read
function M.series(state_dir)
  local since = M.last_rollback(state_dir)
  local runs, unread = {}, {}
  for _, e in ipairs(entries(state_dir, "rollout")) do
    local run, why = M.read_run(e)
    if not run then
      unread[#unread + 1] = fmt("%s (%s)", e.where, why)
    elseif run.time <= since then
      break
    elseif run.schematic then
      runs[#runs + 1] = run
      local b = type(run.talconfig) == "table" and run.talconfig.backup
      if b and fs.exists(b) and not has_tailscale_entry(fs.read(b)) then break end
    end
  end
  return runs, unread
end

--- Per node, what the series did: {node -> {previous = the schematic it
--- ran before the first run that upgraded it, new = the one it was
--- upgraded to last, run = that run's path}}, and the nodes in the order
--- a rollback takes them (the last upgraded first).
---@param runs table[] newest first (series)
---@return table by_node, string[] order
function M.upgrades(runs)
  local by_node, order = {}, {}
  for _, run in ipairs(runs) do                 -- newest first
    for i = #run.upgraded, 1, -1 do
      local name = run.upgraded[i]
      local per = type(run.schematic) == "table" and type(run.schematic.nodes) == "table" and run.schematic.nodes[name]
      local prev = per and per.current_id or (type(run.schematic) == "table" and run.schematic.current_id)
      local new = per and per.id or (type(run.schematic) == "table" and run.schematic.id)
      local u = by_node[name]
      if not u then
        by_node[name] = {previous = prev, new = new, run = run.path}
        order[#order + 1] = name
      else
        u.previous = prev or u.previous            -- an older run: what the node ran before it
      end
    end
  end
  return by_node, order
end

--- What the newest rollout journal says node `name` was upgraded to:
--- {id, current_id (what it ran before), from}, or nil when it records no
--- upgrade of it (recover.lua's rollback check, from any store).
---@param state_dir string
---@param name string a hostname
---@return table?
function M.upgraded_to(state_dir, name)
  local e = entries(state_dir, "rollout")[1]
  if not (e and e.records) then return nil end
  local steps = journal.steps(e.records)
  local s = steps.schematic and steps.schematic.result
  if type(s) ~= "table" or not steps["upgrade/" .. name] then return nil end
  local per = type(s.nodes) == "table" and s.nodes[name] or s
  if per.id then return {id = per.id, current_id = per.current_id, from = "the rollout journal " .. e.where} end
end

--- The talconfig.yaml backup of the oldest run of the series that made one.
---@param runs table[] newest first
---@return string?
function M.first_backup(runs)
  for i = #runs, 1, -1 do
    local t = runs[i].talconfig
    if type(t) == "table" and t.backup then return t.backup end
  end
end

return M

--- runbook.store_cli: `runbook status`, the runs a store knows.
local core_fs = require "runbook.fs.core"
local json = require "runbook.json"
local sys = require "runbook.sys"

local M = {}

local fmt = string.format

--- The journal's state and its steps, from its records.
local function summarize(recs)
  local steps, last, holder_pid = {}, recs[#recs], nil
  for _, r in ipairs(recs) do
    if r.type == "step" then steps[#steps + 1] = r.key or r.id end
    if r.type == "start" or r.type == "resume" then holder_pid = r.pid end
  end
  local state = "unfinished"
  if last and last.type == "finish" then state = last.ok and "finished" or fmt("stopped (exit %s)", tostring(last.exit)) end
  local start = recs[1] or {}
  return {state = state, steps = steps, started = start.time, vars_sha256 = start.vars_sha256, pid = holder_pid,
          runbook = start.runbook}
end

local function local_runs(dir)
  local locks, runs = {}, {}
  local ok, names = pcall(core_fs.list, dir)
  if not ok then return locks, runs end
  table.sort(names)
  for _, name in ipairs(names) do
    local slug = name:match("^(.+)%.lockdir$")
    if slug then
      local rok, text = pcall(core_fs.read, dir .. "/" .. name .. "/lock", {max = 4096})
      local pid = rok and tonumber(text:match("^pid (%d+)"))
      -- the kernel drops a flock with its process: a lock file whose
      -- process is gone is free, whatever it says
      if pid and core_fs.exists("/proc/" .. pid) then locks[slug] = {text = text:gsub("%s+$", "")} end
    end
    local base = name:match("^(.+)%.journal$")
    if base then
      local jok, recs = pcall(require("runbook.journal").read, dir .. "/" .. name)
      runs[#runs + 1] = {runbook = base, where = dir .. "/" .. name, summary = jok and summarize(recs) or {state = "unreadable"}}
    end
  end
  return locks, runs
end

--- A shared store's locks and current journals (etcd, Kubernetes).
local function store_runs(url)
  local st = require("runbook.store").open(url, {})
  local locks, raw = st:list()
  local runs = {}
  for _, r in ipairs(raw) do
    runs[#runs + 1] = {runbook = r.runbook, slug = r.slug, where = r.where or fmt("%s %s", r.slug, r.run), summary = summarize(r.records)}
  end
  return locks, runs
end

local function out(s) sys.write("stdout", s .. "\n") end

--- Prints the locks and journals of the store: --store, RUNBOOK_STORE or
--- the state directory. Returns the exit code.
function M.status()
  local o = sys.options()
  local url = o.store
  local locks, runs
  if url and url ~= "" then
    if not (url:match("^etcds?://") or url:match("^k8s://")) then
      sys.write("stderr", fmt("runbook status: --store %s: not a store this runbook knows (etcd://HOST:PORT/PREFIX, k8s://NAMESPACE/NAME)\n", url))
      return 2
    end
    local ok, a, b = pcall(store_runs, url)
    if not ok then
      sys.write("stderr", fmt("runbook status: %s\n", tostring(a)))
      return 2
    end
    locks, runs = a, b
  else
    url = o.state_dir or ".runbook"
    locks, runs = local_runs(url)
  end
  if o.output == "json" then
    out(json.encode({store = url, locks = locks, runs = runs}))
    return 0
  end
  out("store: " .. url)
  local any = false
  for slug, h in pairs(locks) do
    any = true
    out(fmt("lock %s: held by %s%s%s", slug, h.text or "?", h.vars_sha256 and (", variables " .. h.vars_sha256:sub(1, 12)) or "",
            h.last_renewal and fmt(", renewed %s, expires %s", h.last_renewal, h.expires) or ""))
  end
  if not any then out("no lock held") end
  for _, r in ipairs(runs) do
    local s = r.summary
    out(fmt("journal %s (%s): %s, started %s, variables %s, %d step(s)%s", r.runbook, r.where, s.state,
            s.started and require("runbook.time").iso(s.started) or "?", s.vars_sha256 and s.vars_sha256:sub(1, 12) or "?", #(s.steps or {}),
            #(s.steps or {}) > 0 and (": " .. table.concat(s.steps, ", ")) or ""))
  end
  if #runs == 0 then out("no journal") end
  return 0
end

return M

--- runbook.fleet: `runbook fleet run FILE.lua --clusters FLEET.yaml`.
---
--- Each cluster of the fleet file is a directory; the runbook runs there
--- as a child `runbook run` (its own journal and lock, in the directory's
--- state dir or in --store, keyed by the cluster the runbook names), with
--- --output json so that its outcome comes back as data. The canaries run
--- first, one at a time; a failed canary starts nothing more. Then the
--- rest, --concurrency at a time; once more clusters failed than
--- --failure-budget, no new cluster starts (those running finish).
---
---   clusters:
---     - name: alpha            unique; default: the directory's name
---       dir: clusters/alpha    relative to the fleet file
---       canary: true
---       vars: {poll_interval: 5}       --var K=V for this cluster (after the fleet's)
---       vars_file: vars.yaml           --vars, relative to dir
---       env: {KUBECONFIG: kubeconfig}  the child's environment (added; values as given)
---
--- The fleet's record (STATE-DIR/fleet.<runbook>.json) keeps each
--- cluster's outcome: --resume skips the clusters that finished and
--- resumes the others. The combined report is STATE-DIR/fleet.<runbook>.report.md.
local core_exec = require "runbook.exec.core"
local core_fs = require "runbook.fs.core"
local async = require "runbook.async"
local errors = require "runbook.error"
local events = require "runbook.events"
local json = require "runbook.json"
local sys = require "runbook.sys"
local time = require "runbook.time"
local yaml = require "runbook.yaml"

local M = {}

local fmt = string.format

local function usage(msg) return errors.new("usage", msg, {exit = 2}) end

local function dir_of(path) return path:match("^(.*)/[^/]*$") or "." end

local function absolute(path)
  if path:sub(1, 1) == "/" then return path end
  local cwd = os.getenv("PWD") or "."
  return cwd .. "/" .. path
end

local function is_dir(path)
  local st = core_fs.exists(path) and core_fs.stat(path)
  return st and st.type == "directory"
end

local KNOWN = {name = true, dir = true, canary = true, vars = true, vars_file = true, env = true}

--- Reads and checks the fleet file: every problem is exit 2 naming the
--- file and the cluster, before any cluster starts.
local function load(path)
  local okr, text = pcall(core_fs.read, path, {max = 16 * 1024 * 1024})
  if not okr then error(usage(fmt("--clusters %s: %s", path, tostring(text))), 0) end
  local ok, doc = pcall(yaml.decode, text, {name = path})
  if not ok then error(usage(tostring(doc)), 0) end
  if type(doc) ~= "table" or type(doc.clusters) ~= "table" or #doc.clusters == 0 then
    error(usage(fmt("%s: expected 'clusters:', a list of {name, dir, canary, vars, vars_file, env}", path)), 0)
  end
  local base, seen, list = dir_of(absolute(path)), {}, {}
  for i, c in ipairs(doc.clusters) do
    local where = fmt("%s: cluster %d", path, i)
    if type(c) ~= "table" or type(c.dir) ~= "string" or c.dir == "" then error(usage(where .. ": needs 'dir'"), 0) end
    for k in pairs(c) do
      if not KNOWN[k] then error(usage(fmt("%s: unknown key '%s' (known: canary, dir, env, name, vars, vars_file)", where, tostring(k))), 0) end
    end
    local dir = c.dir:sub(1, 1) == "/" and c.dir or (base .. "/" .. c.dir)
    local name = c.name ~= nil and tostring(c.name) or c.dir:match("([^/]+)/*$")
    if seen[name] then error(usage(fmt("%s: the name %s twice (names must be unique)", where, name)), 0) end
    if not is_dir(dir) then error(usage(fmt("%s (%s): %s is not a directory", where, name, dir)), 0) end
    for _, t in ipairs{"vars", "env"} do
      if c[t] ~= nil and type(c[t]) ~= "table" then error(usage(fmt("%s (%s): '%s' must be a map", where, name, t)), 0) end
    end
    seen[name] = true
    list[#list + 1] = {name = name, dir = dir, canary = c.canary == true, vars = c.vars or {}, vars_file = c.vars_file,
                       env = c.env or {}}
  end
  return list
end

--- The child's argv: the fleet's flags, then the cluster's variables.
local function child_argv(o, script, c, resume)
  local argv = {sys.exe(), "run", script, "--output", "json"}
  local function add(...) for _, a in ipairs{...} do argv[#argv + 1] = a end end
  if o.dry_run then add("--dry-run") end
  if o.yes then add("--yes") end
  if resume then add("--resume") end
  if o.store and o.store ~= "" then add("--store", o.store) end
  if o.wait_lock then add("--wait-lock", fmt("%g", o.wait_lock)) end
  if o.vars_file then add("--vars", absolute(o.vars_file)) end
  for _, kv in ipairs(o.vars or {}) do add("--var", kv) end
  if c.vars_file then add("--vars", c.vars_file) end
  local keys = {}
  for k in pairs(c.vars) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  for _, k in ipairs(keys) do add("--var", k .. "=" .. tostring(c.vars[k])) end
  return argv
end

--- Runs one cluster's child and returns its record {outcome, exit, ...}.
local function run_cluster(o, script, c, prev, fleet_id, logdir)
  -- a child resumes only a run whose journal is open: interrupted, or
  -- stopped having changed something (its journal refuses a plain run then)
  local resume = prev and prev.resumable and not o.dry_run
  local run_id = fmt("%s/%s", fleet_id, c.name)
  events.emit{type = "fleet_cluster", cluster = c.name, run_id = run_id, state = "started", dir = c.dir, resume = resume or nil,
              text = fmt("▶ %s (%s)%s", c.name, c.dir, resume and ", resumed" or "")}
  local env = {RUNBOOK_FLEET_RUN = run_id}
  for k, v in pairs(c.env) do env[tostring(k)] = tostring(v) end
  local evfile, logfile = fmt("%s/%s.events.jsonl", logdir, c.name), fmt("%s/%s.log", logdir, c.name)
  core_fs.write(evfile, "", {mode = 384})
  core_fs.write(logfile, "", {mode = 384})
  local outcome
  local t0 = time.monotonic()
  local ok, res = pcall(core_exec.run, child_argv(o, script, c, resume), {
    cwd = c.dir, env = env, max_output = 1024 * 1024,
    on_line = function(line, stream)
      line = sys.mask(line)
      if stream == "stdout" then
        core_fs.append(evfile, line .. "\n")
        local dok, ev = pcall(json.decode, line)
        if dok and type(ev) == "table" and ev.type == "outcome" then outcome = ev end
      else
        core_fs.append(logfile, line .. "\n")
      end
    end,
  })
  local rec = {started = true, run_id = run_id, elapsed = time.monotonic() - t0, events = evfile, log = logfile}
  if not ok then
    rec.exit, rec.outcome, rec.error = sys.interrupted() and 3 or 1, "error", tostring(res)
  else
    rec.exit = res.code or 1
    rec.outcome = rec.exit == 0 and "done" or rec.exit == 3 and "interrupted" or rec.exit == 4 and "locked" or "failed"
    rec.error = outcome and outcome.error or nil
    rec.report = outcome and outcome.report or nil
    if rec.report and rec.report:sub(1, 1) ~= "/" then rec.report = c.dir .. "/" .. rec.report end
    local changed = outcome and (#(outcome.in_effect or {}) > 0 or #(outcome.undone or {}) > 0)
    rec.resumable = rec.exit == 3 or (rec.exit == 1 and (changed or resume)) or nil
  end
  events.emit{type = "fleet_cluster", cluster = c.name, run_id = run_id, state = "ended", outcome = rec.outcome, exit = rec.exit,
              elapsed = rec.elapsed, error = rec.error, level = rec.exit == 0 and "info" or "error",
              text = fmt("%s %s: %s (exit %d)%s", rec.exit == 0 and "✓" or "✗", c.name, rec.outcome, rec.exit,
                         rec.error and (": " .. rec.error) or "")}
  return rec
end

local function render(script, list, records, o, summary)
  local lines = {fmt("# Fleet: %s%s", script, o.dry_run and " (dry-run)" or ""), "", summary, "",
                 "| cluster | canary | outcome | exit | duration | directory | report |", "|---|---|---|---|---|---|---|"}
  for _, c in ipairs(list) do
    local r = records[c.name] or {}
    lines[#lines + 1] = fmt("| %s | %s | %s | %s | %s | %s | %s |", c.name, c.canary and "yes" or "", r.outcome or "not started",
                            r.exit and tostring(r.exit) or "", r.elapsed and fmt("%.1fs", r.elapsed) or "", c.dir,
                            r.report or "")
  end
  for _, c in ipairs(list) do
    local r = records[c.name]
    if r and r.error then lines[#lines + 1] = fmt("\n- %s: %s", c.name, (r.error:gsub("|", "\\|"))) end
  end
  return table.concat(lines, "\n") .. "\n"
end

--- The command. Returns the exit code.
function M.run()
  local o = sys.options()
  local script = o.file
  if core_fs.exists(script) then script = absolute(script) end   -- a name alone: found by each child as run finds it
  local list = load(o.clusters)
  local state = absolute(o.state_dir or ".runbook")
  core_fs.mkdir_p(state, 448)
  local base = (script:match("([^/]+)$") or script):gsub("%.lua$", "")
  local record_path = fmt("%s/fleet.%s%s.json", state, base, o.dry_run and ".dry-run" or "")
  local prev = {}
  if o.resume then
    local ok, text = pcall(core_fs.read, record_path)
    if not ok then error(usage(fmt("no fleet record at %s: nothing to resume", record_path)), 0) end
    prev = json.decode(text, {name = record_path}).clusters or {}
  end
  local fleet_id = fmt("fleet-%s-%d", time.iso():gsub("[-:]", ""), sys.pid())
  local logdir = fmt("%s/fleet.%s", state, base)
  core_fs.mkdir_p(logdir, 448)
  local records, failures, stop_reason = {}, 0, nil
  for name, r in pairs(prev) do if r.exit == 0 then records[name] = r end end
  local budget = o.failure_budget or 0
  local function save()
    core_fs.write(record_path, json.encode({runbook = script, fleet = fleet_id, clusters = records}), {mode = 384})
  end
  local function one(c)
    if records[c.name] and records[c.name].exit == 0 then
      events.emit{type = "fleet_cluster", cluster = c.name, state = "skipped", outcome = "done", text = "✓ " .. c.name .. " (done in an earlier fleet run)"}
      return
    end
    if stop_reason or sys.interrupted() then return end
    local r = run_cluster(o, script, c, prev[c.name], fleet_id, logdir)
    records[c.name] = r
    save()
    if r.exit ~= 0 then
      failures = failures + 1
      if c.canary then stop_reason = stop_reason or fmt("the canary %s failed: no other cluster was started", c.name)
      elseif failures > budget then
        stop_reason = stop_reason or fmt("%d cluster(s) failed, over the failure budget of %d: no new cluster was started", failures, budget)
      end
    end
  end
  events.emit{type = "fleet", runbook = script, clusters = #list, dry_run = o.dry_run, concurrency = o.concurrency or 1,
              failure_budget = budget, text = fmt("fleet: %s on %d cluster(s)%s", script, #list, o.dry_run and " (dry-run)" or "")}
  local rest = {}
  for _, c in ipairs(list) do if c.canary then one(c) else rest[#rest + 1] = c end end
  if #rest > 0 and not stop_reason then
    async.map(rest, one, {concurrency = o.concurrency or 1})
  end
  save()
  local done, total = 0, #list
  for _, c in ipairs(list) do if records[c.name] and records[c.name].exit == 0 then done = done + 1 end end
  local summary = fmt("%d of %d cluster(s) done%s", done, total, stop_reason and ("; " .. stop_reason) or "")
  local report_path = fmt("%s/fleet.%s.%s.md", state, base, o.dry_run and "plan" or "report")
  core_fs.write(report_path, sys.mask(render(script, list, records, o, summary)), {mode = 384})
  local code = done == total and 0 or sys.interrupted() and 3 or 1
  events.emit{type = "fleet_outcome", ok = code == 0, exit = code, done = done, clusters = total, stopped = stop_reason,
              report = report_path, level = code == 0 and "info" or "error",
              text = fmt("%s; report: %s", summary, report_path)}
  return code
end

return M

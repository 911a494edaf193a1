--- runbook: the DSL. Phases, steps, gates, confirmations, variables and
--- report sections, with a journal that makes a run resumable and a lock
--- that keeps two runs of one runbook apart.
---
---   local rb = require "runbook"
---   local v = rb.vars{node = {type = "string", required = true}}
---   rb.phase("Upgrade", function()
---     rb.step("upgrade " .. v.node, function() ... end, {undo = function(res) ... end})
---     rb.gate("node healthy", function() return ok, observation end, {timeout = 900})
---   end)
local async = require "runbook.async"
local core_fs = require "runbook.fs.core"
local errors = require "runbook.error"
local events = require "runbook.events"
local json = require "runbook.json"
local sys = require "runbook.sys"
local time = require "runbook.time"

local M = {}

local opts = sys.options()
local fmt = string.format

M.dry_run = opts.dry_run and true or false

-- {====== run state

local script = opts.script or "runbook.lua"
local runbook_name = script:match("([^/]+)$") or script
local base = runbook_name:gsub("%.lua$", "")
local state_dir = opts.state_dir or ".runbook"

local S = {
  phase = nil,           -- current phase name
  phases = {},           -- in order: {name, started, finished, status}
  seen = {},             -- step identity -> true
  undo = {},             -- stack of {id, fn, result}
  undone = {},           -- ids undone during this run
  resume = {},           -- identity -> journal record (resumed run)
  resumed = false,
  steps = {},            -- report: every step in order
  gates = {},            -- report: every gate
  commands = {},         -- report: commands and HTTP calls
  sections = {},         -- report: rb.report additions
  var_specs = {},        -- declared variables
  var_values = {},       -- resolved, for the report (secrets as their masked form)
  journal = nil,         -- path of the journal (nil in a dry-run)
  lock = nil,
  failed = nil,          -- the error that stopped the run
  started = time.now(),
}

local function usage_error(msg)
  return errors.new("usage", msg, {exit = 2})
end

local function mono() return time.monotonic() end

local function duration(secs)
  if secs < 60 then return fmt("%.1fs", secs) end
  if secs < 3600 then return fmt("%dm%02ds", secs // 60, math.floor(secs % 60)) end
  return fmt("%dh%02dm", secs // 3600, math.floor(secs % 3600) // 60)
end
M.duration = duration

-- }======

-- {====== journal and lock

local pending_start      -- the start record waits for the first real record

local function journal_write(rec)
  rec.time = time.now()
  if S.journal == nil then return end
  if rec.type == "start" then
    -- a run that stops before its first step changed nothing: it leaves no
    -- journal behind (and so nothing to resume)
    pending_start = rec
    return
  end
  if pending_start then
    local st = pending_start
    pending_start = nil
    core_fs.append(S.journal, sys.mask(json.encode(st)) .. "\n")
  end
  -- secrets never reach the disk: the record is masked as a whole
  core_fs.append(S.journal, sys.mask(json.encode(rec)) .. "\n")
end

--- Reads a journal: its records, and whether it ended with a successful finish.
local function journal_read(path)
  local text = core_fs.read(path)
  local recs, lineno = {}, 0
  for line in text:gmatch("[^\n]+") do
    lineno = lineno + 1
    local ok, rec = pcall(json.decode, line, {name = path})
    if ok and type(rec) == "table" then recs[#recs + 1] = rec
    elseif not text:find("\n", #text - #line, true) then
      break      -- a torn last line (killed mid-write): the step was not recorded
    else
      error(usage_error(fmt("%s:%d: corrupt journal record; move the file away or use --fresh", path, lineno)), 0)
    end
  end
  local last = recs[#recs]
  return recs, last ~= nil and last.type == "finish" and last.ok == true
end

local function archive(path)
  local stamp = time.iso():gsub("[-:]", "")
  local dest = path .. "." .. stamp
  local n = 1
  while core_fs.exists(dest) do dest = fmt("%s.%s.%d", path, stamp, n); n = n + 1 end
  assert(os.rename(path, dest))
  return dest
end

--- Takes the lock and opens the journal; runs when the DSL is first
--- required. Refusals carry their exit codes (2: journal, 4: lock).
local function setup()
  if M.dry_run then
    if opts.resume then error(usage_error("--resume does not apply to a dry-run (nothing was changed)"), 0) end
    return
  end
  core_fs.mkdir_p(state_dir)
  local lock, holder = core_fs.lock(state_dir .. "/" .. base .. ".lock",
                                    fmt("pid %d, started %s\n", sys.pid(), time.iso()))
  if not lock then
    error(errors.new("locked", fmt("another run of %s holds the lock (%s); wait for it or stop it",
      runbook_name, (holder or ""):gsub("%s+$", "")), {exit = 4}), 0)
  end
  S.lock = lock
  local path = state_dir .. "/" .. base .. ".journal"
  S.journal = path
  if core_fs.exists(path) then
    local recs, finished = journal_read(path)
    if opts.fresh then
      local to = archive(path)
      events.emit{type = "log", level = "info", msg = "archived the previous journal as " .. to}
    elseif opts.resume then
      if finished then
        error(usage_error(fmt("the last run of %s finished; there is nothing to resume (run without --resume to start again)", runbook_name)), 0)
      end
      for _, r in ipairs(recs) do
        if r.type == "step" then S.resume[r.id] = r
        elseif r.type == "undo" then S.resume[r.id] = nil end
      end
      S.resumed = true
      journal_write{type = "resume", pid = sys.pid()}
      return
    elseif finished then
      archive(path)                   -- a finished run's journal is kept as its record
    else
      error(usage_error(fmt("an unfinished run of %s is recorded in %s: continue it with --resume, or archive it and start over with --fresh",
        runbook_name, path)), 0)
    end
  elseif opts.resume then
    error(usage_error(fmt("no journal of %s in %s: there is nothing to resume", runbook_name, state_dir)), 0)
  end
  journal_write{type = "start", runbook = runbook_name, pid = sys.pid()}
end

-- }======

-- {====== failure and undo

local function is_stop(err)
  return type(err) == "table" and (err.kind == "step_failed" or err.kind == "declined" or err.stop == true)
end

--- Runs the registered undo functions, newest first. Returns the lists of
--- undone and failed identities.
local function run_undos()
  local done, failed = {}, {}
  while #S.undo > 0 do
    local u = table.remove(S.undo)
    events.emit{type = "undo", step = u.id, level = "warn", text = "undo: " .. u.id}
    local ok, err = pcall(u.fn, u.result)
    if ok then
      done[#done + 1] = u.id
      S.undone[#S.undone + 1] = u.id
      journal_write{type = "undo", id = u.id, ok = true}
    else
      failed[#failed + 1] = {id = u.id, err = tostring(err)}
      journal_write{type = "undo", id = u.id, ok = false, error = tostring(err)}
      events.emit{type = "undo_failed", step = u.id, level = "error", text = fmt("undo of %s failed: %s", u.id, tostring(err))}
    end
  end
  return done, failed
end

--- Stops the run: undo what asked for it, then raise a step_failed error.
local function fail(id, cause, what)
  if is_stop(cause) then error(cause, 0) end   -- an inner step already stopped the run
  local msg = type(cause) == "table" and tostring(cause) or tostring(cause)
  events.emit{type = "step_failed", step = id, level = "error", error = msg,
              text = fmt("✗ %s %s failed: %s", what, id, msg)}
  local done, failed = run_undos()
  local err = errors.new("step_failed", fmt("%s '%s' failed: %s", what, id, msg),
                         {exit = 1, step = id, cause = cause, undone = done, undo_failed = failed})
  if type(cause) == "table" and cause.traceback then err.traceback = cause.traceback end
  S.failed = err
  error(err, 0)
end

-- }======

-- {====== phases, steps, gates

local function identity(name)
  return S.phase and (S.phase .. "/" .. name) or name
end

local function check_name(fname, name)
  if type(name) ~= "string" or name == "" then
    error(fmt("bad argument #1 to '%s' (non-empty string expected, got %s)", fname, type(name)), 3)
  end
end

--- Groups steps under a name; phases do not nest.
---@param name string
---@param fn fun()
function M.phase(name, fn)
  check_name("phase", name)
  if type(fn) ~= "function" then error("bad argument #2 to 'phase' (function expected)", 2) end
  if S.phase then error(fmt("phase '%s' inside phase '%s': phases do not nest", name, S.phase), 2) end
  local ph = {name = name, started = time.now(), t0 = mono(), status = "running"}
  S.phases[#S.phases + 1] = ph
  S.phase = name
  events.emit{type = "phase", phase = name, text = "== " .. name}
  local ok, err = pcall(fn)
  S.phase = nil
  ph.elapsed = mono() - ph.t0
  ph.status = ok and "done" or "failed"
  events.emit{type = "phase_done", phase = name, ok = ok, elapsed = ph.elapsed, level = ok and "info" or "error",
              text = fmt("== %s: %s in %s", name, ok and "done" or "stopped", duration(ph.elapsed))}
  if not ok then error(err, 0) end
end

local function run_with_retries(fn, o)
  local tries = (o.retries or 0) + 1
  local backoff = o.backoff or 1
  local last
  for attempt = 1, tries do
    local ok, res
    if o.timeout then ok, res = pcall(async.timeout, o.timeout, fn)
    else ok, res = pcall(fn) end
    if ok then return true, res end
    if is_stop(res) or errors.is(res, "cancelled") then return false, res end
    last = res
    if attempt < tries then
      events.emit{type = "retry", attempt = attempt, level = "warn", text = fmt("  attempt %d failed: %s; retrying in %gs", attempt, tostring(res), backoff)}
      time.sleep(backoff)
      backoff = backoff * 2
    end
  end
  return false, last
end

---@class runbook.StepOpts
---@field undo? fun(result:any) called with the step's result if a later step fails
---@field retries? integer extra attempts after a failure (default 0)
---@field backoff? number seconds before the first retry, doubled after each (default 1)
---@field timeout? number seconds per attempt
---@field read_only? boolean the step changes nothing (left out of "still in effect")

local STEP_OPTS = {undo = "function", retries = "number", backoff = "number", timeout = "number",
                   read_only = "boolean"}
local GATE_OPTS = {timeout = "number", interval = "number", backoff = "number", max_interval = "number"}

--- A misspelt option would silently do nothing: refuse unknown keys and
--- wrong types, naming the call.
local function check_opts(what, name, o, known)
  for k, v in pairs(o) do
    if known[k] == nil then
      local list = {}
      for kk in pairs(known) do list[#list + 1] = kk end
      table.sort(list)
      error(fmt("%s '%s': unknown option '%s' (known: %s)", what, tostring(name), tostring(k), table.concat(list, ", ")), 3)
    elseif type(v) ~= known[k] then
      error(fmt("%s '%s': option '%s' must be a %s, not a %s", what, tostring(name), k, known[k], type(v)), 3)
    end
  end
end

--- Runs fn once per run (once across resumes) and returns its result.
---@param name string
---@param fn fun():any
---@param o? runbook.StepOpts
function M.step(name, fn, o)
  check_name("step", name)
  if type(fn) ~= "function" then error("bad argument #2 to 'step' (function expected)", 2) end
  o = o or {}
  if type(o) ~= "table" then error("bad argument #3 to 'step' (table expected)", 2) end
  check_opts("step", name, o, STEP_OPTS)
  if o.read_only and o.undo then error(fmt("step '%s': a read_only step has nothing to undo", name), 2) end
  local id = identity(name)
  local rec = {id = id, phase = S.phase, name = name, started = time.now(), t0 = mono(), read_only = o.read_only}
  S.steps[#S.steps + 1] = rec
  if S.seen[id] then
    rec.status = "failed"
    fail(id, fmt("two steps with the same identity '%s' in one run (give them distinct names)", id), "step")
  end
  S.seen[id] = true
  local prev = S.resume[id]
  if prev then
    rec.status, rec.skipped, rec.elapsed = "done", true, 0
    rec.result = prev.result
    local result = prev.result
    if result == json.null then result = nil end
    if o.undo then S.undo[#S.undo + 1] = {id = id, fn = o.undo, result = result} end
    events.emit{type = "step_skipped", step = id, text = "✓ " .. id .. " (done in an earlier run)"}
    return result
  end
  events.emit{type = "step", step = id, text = "→ " .. id}
  if pending_start then journal_write{type = "begin", id = id} end   -- a kill from here on leaves a journal
  local ok, res = run_with_retries(fn, o)
  rec.elapsed = mono() - rec.t0
  if not ok then
    rec.status = "failed"
    rec.error = tostring(res)
    fail(id, res, "step")
  end
  local enc_ok, enc = pcall(json.encode, res)
  if not enc_ok then
    rec.status = "failed"
    fail(id, "its result is not JSON-serialisable (" .. tostring(enc) .. "); return plain data", "step")
  end
  rec.status, rec.result = "done", res
  journal_write{type = "step", id = id, phase = S.phase, name = name, result = res == nil and json.null or res,
                started = rec.started, elapsed = rec.elapsed}
  if o.undo then S.undo[#S.undo + 1] = {id = id, fn = o.undo, result = res} end
  events.emit{type = "step_done", step = id, elapsed = rec.elapsed,
              text = fmt("✓ %s (%s)", id, duration(rec.elapsed))}
  return res
end

---@class runbook.GateOpts
---@field timeout? number seconds before the gate fails (default 300)
---@field interval? number seconds between checks (default 5)
---@field backoff? number factor applied to the interval after each check (default 1)
---@field max_interval? number cap for the interval (default 60)

--- Polls check() until it returns a truthy value; a gate is never skipped
--- on resume. check may return a second value, an observation, shown while
--- waiting and quoted if the gate fails. A check that raises counts as "not
--- yet" (a node that is rebooting does not answer).
function M.gate(name, check, o)
  check_name("gate", name)
  if type(check) ~= "function" then error("bad argument #2 to 'gate' (function expected)", 2) end
  o = o or {}
  if type(o) ~= "table" then error("bad argument #3 to 'gate' (table expected)", 2) end
  check_opts("gate", name, o, GATE_OPTS)
  local id = identity(name)
  local timeout, interval = o.timeout or 300, o.interval or 5
  local g = {id = id, phase = S.phase, name = name, started = time.now(), t0 = mono(), polls = 0, history = {}}
  S.gates[#S.gates + 1] = g
  events.emit{type = "gate", gate = id, timeout = timeout, text = fmt("⧗ %s (up to %s)", id, duration(timeout))}
  local last_obs
  while true do
    local ok, v, obs = pcall(check)
    g.polls = g.polls + 1
    if not ok and type(v) == "table" and v.fatal then
      -- the check saw a state that waiting cannot fix (a node back on its old image)
      g.ok, g.elapsed = false, mono() - g.t0
      fail(id, tostring(v.message or v), "gate")
    end
    if not ok then v, obs = false, "check failed: " .. tostring(v) end
    obs = obs ~= nil and tostring(obs) or (v and "ok" or "not yet")
    local changed = obs ~= last_obs
    if changed then
      g.history[#g.history + 1] = {at = mono() - g.t0, obs = obs}
      last_obs = obs
    end
    -- without a terminal, a poll line shows when the observation changes
    events.emit{type = "gate_poll", gate = id, poll = g.polls, ok = v and true or false, observation = obs,
                elapsed = mono() - g.t0, live = true, level = changed and "info" or "debug",
                text = fmt("  %s: poll %d, %s, %s", id, g.polls, duration(mono() - g.t0), obs)}
    if v then
      g.ok, g.elapsed = true, mono() - g.t0
      events.emit{type = "gate_done", gate = id, ok = true, polls = g.polls, elapsed = g.elapsed,
                  text = fmt("✓ %s (%d checks, %s)", id, g.polls, duration(g.elapsed))}
      return v
    end
    local elapsed = mono() - g.t0
    if elapsed >= timeout then
      g.ok, g.elapsed = false, elapsed
      fail(id, fmt("not met after %s (%d checks); last observation: %s", duration(timeout), g.polls, obs), "gate")
    end
    time.sleep(math.min(interval, timeout - elapsed))
    interval = math.min(interval * (o.backoff or 1), o.max_interval or 60)
  end
end

--- Accepts everything done so far: a later failure no longer undoes the
--- steps before this point (a node that passed all its gates stays).
function M.commit()
  S.undo = {}
end

--- Raises from a gate check to fail the gate at once (a state that waiting
--- cannot fix).
function M.fatal(msg)
  error(errors.new("fatal", msg, {fatal = true}), 2)
end

--- Asks the operator. --yes answers yes; a dry-run assumes yes and notes it
--- in the plan; without a terminal and without --yes the run stops. A "no"
--- stops the run without undoing anything (it can be resumed).
function M.confirm(question)
  check_name("confirm", question)
  local rec = {id = identity("confirm: " .. question), question = question}
  S.steps[#S.steps + 1] = rec
  if opts.yes or M.dry_run then
    rec.status = M.dry_run and "would ask" or "yes (--yes)"
    events.emit{type = "confirm", question = question, answer = "yes", auto = true,
                text = fmt("? %s yes (%s)", question, M.dry_run and "dry-run" or "--yes")}
    return true
  end
  if not sys.isatty("stdin") then
    error(errors.new("usage", fmt("confirmation needed (%s) but there is no terminal to ask on; run with --yes to answer yes", question),
                     {exit = 2, stop = true}), 2)
  end
  sys.write("stderr", fmt("? %s [y/N] ", question))
  local answer = io.read("l") or ""
  local yes = answer:lower():match("^%s*y") ~= nil
  rec.status = yes and "yes" or "no"
  events.emit{type = "confirm", question = question, answer = yes and "yes" or "no", level = yes and "info" or "warn",
              text = fmt("? %s %s", question, yes and "yes" or "no")}
  if not yes then
    error(errors.new("declined", fmt("stopped: the operator declined '%s'; nothing was undone, continue with --resume", question),
                     {exit = 1}), 2)
  end
  return true
end

--- Adds a section to the run report: a string (Markdown) or a table of
--- key/value rows.
function M.report(title, body)
  check_name("report", title)
  S.sections[#S.sections + 1] = {title = title, body = body}
end

-- }======

-- {====== variables

local TYPES = {string = true, number = true, integer = true, boolean = true, list = true, secret = true}

local function convert(name, spec, raw, source)
  local ty = spec.type or "string"
  if type(raw) ~= "string" then
    -- from a --vars YAML file: already typed
    if ty == "list" and type(raw) == "table" then return raw end
    if (ty == "number" and type(raw) == "number") or (ty == "integer" and math.type(raw) == "integer")
       or (ty == "boolean" and type(raw) == "boolean") then return raw end
    if ty == "string" and (type(raw) == "number") then return tostring(raw) end
    error(usage_error(fmt("variable %s (%s) must be a %s, got %s", name, source, ty, type(raw))), 0)
  end
  if ty == "string" then return raw
  elseif ty == "number" or ty == "integer" then
    local v = tonumber(raw)
    if v == nil or (ty == "integer" and math.type(v) ~= "integer") then
      error(usage_error(fmt("variable %s (%s) must be a%s %s, got '%s'", name, source, ty == "integer" and "n" or "", ty, raw)), 0)
    end
    return v
  elseif ty == "boolean" then
    local l = raw:lower()
    if l == "true" or l == "yes" or l == "1" then return true end
    if l == "false" or l == "no" or l == "0" then return false end
    error(usage_error(fmt("variable %s (%s) must be true or false, got '%s'", name, source, raw)), 0)
  elseif ty == "list" then
    local out = {}
    for item in raw:gmatch("[^,]+") do out[#out + 1] = item:match("^%s*(.-)%s*$") end
    return out
  end
end

--- Declares the runbook's variables and returns their values. Each spec:
--- {type = "string"|"number"|"integer"|"boolean"|"list"|"secret",
---  default =, required =, desc =, choices = {...}, env = "NAME"}.
--- Values come from --var K=V and --vars FILE.yaml (the command line wins).
--- A secret comes from the environment variable `env` (default: the name
--- in upper case) or from the file named by --var <name>_file=PATH, never
--- from the command line itself. Declare them all in one call at the top:
--- an unknown or missing required variable stops the run (exit 2) there.
function M.vars(specs)
  if type(specs) ~= "table" then error("bad argument #1 to 'vars' (table expected)", 2) end
  local secret = require "runbook.secret"
  for name, spec in pairs(specs) do
    if type(name) ~= "string" or type(spec) ~= "table" then error("bad argument #1 to 'vars' (name = {spec} expected)", 2) end
    if not TYPES[spec.type or "string"] then
      error(fmt("variable %s: unknown type '%s'", name, tostring(spec.type)), 2)
    end
    S.var_specs[name] = spec
  end
  -- the sources
  local from_file, file_name = {}, opts.vars_file
  if file_name then
    local ok, text = pcall(core_fs.read, file_name)
    if not ok then error(usage_error(tostring(text)), 0) end
    local ok2, v = pcall(require("runbook.yaml").decode, text, {name = file_name})
    if not ok2 then error(usage_error(tostring(v)), 0) end
    if v ~= nil and type(v) ~= "table" then error(usage_error(file_name .. ": expected a map of variables"), 0) end
    from_file = v or {}
  end
  local from_cli = {}
  for _, kv in ipairs(opts.vars or {}) do
    local k, val = kv:match("^([^=]+)=(.*)$")
    from_cli[k] = val
  end
  -- unknown names
  local known = {}
  for name, spec in pairs(S.var_specs) do
    known[name] = true
    if spec.type == "secret" then known[name .. "_file"] = true end
  end
  for _, src in ipairs{{from_cli, "--var"}, {from_file, file_name}} do
    for k in pairs(src[1]) do
      if not known[k] then
        local names = {}
        for n in pairs(known) do names[#names + 1] = n end
        table.sort(names)
        error(usage_error(fmt("unknown variable '%s' (%s); this runbook declares: %s", k, src[2], table.concat(names, ", "))), 0)
      end
    end
  end
  local out = {}
  local names = {}
  for name in pairs(specs) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local spec = specs[name]
    local v
    if spec.type == "secret" then
      if from_cli[name] ~= nil or from_file[name] ~= nil then
        error(usage_error(fmt("variable %s is a secret: it cannot be given as a value (it would show in the process list or a file of variables); set %s in the environment or use --var %s_file=PATH",
          name, spec.env or name:upper(), name)), 0)
      end
      local file = from_cli[name .. "_file"] or from_file[name .. "_file"]
      local env = spec.env or name:upper()
      if file then
        local ok, s = pcall(secret.file, file, env)
        if not ok then error(usage_error(tostring(s)), 0) end
        v = s
      elseif os.getenv(env) and os.getenv(env) ~= "" then
        v = secret.env(env)
      end
      S.var_values[name] = v and tostring(v) or nil
    else
      local raw, source = from_cli[name], "--var"
      if raw == nil then raw, source = from_file[name], file_name end
      if raw ~= nil then v = convert(name, spec, raw, source)
      else v = spec.default end
      if v ~= nil and spec.choices then
        local okc = false
        for _, c in ipairs(spec.choices) do if c == v then okc = true end end
        if not okc then
          error(usage_error(fmt("variable %s must be one of %s, got '%s'", name, table.concat(spec.choices, ", "), tostring(v))), 0)
        end
      end
      S.var_values[name] = v
    end
    if v == nil and spec.required then
      local how = spec.type == "secret"
        and fmt("set %s in the environment or use --var %s_file=PATH", spec.env or name:upper(), name)
        or fmt("use --var %s=VALUE or --vars FILE.yaml", name)
      error(usage_error(fmt("missing required variable %s%s: %s", name, spec.desc and (" (" .. spec.desc .. ")") or "", how)), 0)
    end
    out[name] = v
  end
  return out
end

-- }======

-- {====== the end of a run: journal, report, summary

local function md_escape(s)
  return (tostring(s):gsub("|", "\\|"):gsub("\n", " "))
end

local function render_report(ok, err)
  local fs = require "runbook.fs"
  local b = {}
  local function add(s) b[#b + 1] = s end
  add(fmt("# %s: %s%s", runbook_name, M.dry_run and "plan (dry-run)" or "run report",
          ok and "" or " (stopped)"))
  add("")
  add(fmt("- started: %s%s", time.iso(S.started), M.dry_run and " (virtual clock)" or ""))
  add(fmt("- finished: %s after %s", time.iso(), duration(mono())))
  add(fmt("- outcome: %s", ok and "done" or ("stopped: " .. tostring(err))))
  if S.resumed then add("- resumed from an earlier run's journal") end
  if next(S.var_values) then
    add("")
    add("## Variables")
    add("")
    add("| name | value |")
    add("|---|---|")
    local names = {}
    for n in pairs(S.var_values) do names[#names + 1] = n end
    table.sort(names)
    for _, n in ipairs(names) do
      local v = S.var_values[n]
      if type(v) == "table" then v = table.concat(v, ", ") end
      add(fmt("| %s | %s |", n, md_escape(v)))
    end
  end
  add("")
  add("## Steps")
  add("")
  add("| # | phase | step | outcome | time |")
  add("|---|---|---|---|---|")
  for i, s in ipairs(S.steps) do
    add(fmt("| %d | %s | %s | %s | %s |", i, md_escape(s.phase or ""), md_escape(s.name or s.question or s.id),
            md_escape(s.skipped and "done earlier" or s.status or "?") .. (s.error and (": " .. md_escape(s.error)) or ""),
            s.elapsed and duration(s.elapsed) or ""))
  end
  if #S.gates > 0 then
    add("")
    add("## Gates")
    add("")
    for _, g in ipairs(S.gates) do
      add(fmt("- **%s**: %s after %d checks (%s)", g.id, g.ok and "passed" or "failed", g.polls, duration(g.elapsed or 0)))
      for _, h in ipairs(g.history) do add(fmt("  - +%s: %s", duration(h.at), md_escape(h.obs))) end
    end
  end
  if #S.undone > 0 then
    add("")
    add("## Undone")
    add("")
    for _, id in ipairs(S.undone) do add("- " .. id) end
  end
  if #S.commands > 0 then
    add("")
    add(M.dry_run and "## Commands it would run" or "## Commands run")
    add("")
    add("```")
    for _, c in ipairs(S.commands) do add(c) end
    add("```")
  end
  local changes = fs.changes()
  if #changes > 0 then
    add("")
    add(M.dry_run and "## Files it would change" or "## Files changed")
    for _, c in ipairs(changes) do
      add("")
      add(fmt("### %s%s", c.path, c.before == nil and " (new)" or c.after == nil and " (removed)" or ""))
      add("")
      add("```diff")
      add((fs.diff(c):gsub("\n$", "")))
      add("```")
    end
  end
  for _, sec in ipairs(S.sections) do
    add("")
    add("## " .. sec.title)
    add("")
    if type(sec.body) == "table" then
      local keys = {}
      for k in pairs(sec.body) do keys[#keys + 1] = k end
      table.sort(keys, function(a, c) return tostring(a) < tostring(c) end)
      for _, k in ipairs(keys) do add(fmt("- %s: %s", tostring(k), tostring(sec.body[k]))) end
    else
      add(tostring(sec.body))
    end
  end
  return table.concat(b, "\n") .. "\n"
end

events.listen(function(ev)
  if ev.type == "exec" then
    S.commands[#S.commands + 1] = fmt("[%s] $ %s", time.iso(ev.time):sub(12, 19), require("runbook.exec").show_argv(ev.argv))
  elseif ev.type == "http" then
    S.commands[#S.commands + 1] = fmt("[%s] %s %s", time.iso(ev.time):sub(12, 19), ev.method, ev.url)
  end
end)

--- Called by the driver when the runbook returns or raises. Writes the
--- journal's last record and the report, prints the summary, and returns
--- the error to raise (nil when the run succeeded).
function M._finish(ok, err)
  local interrupted = sys.interrupted()
  if not ok and not interrupted and not is_stop(err) and not errors.is(err, "usage") and #S.undo > 0 then
    -- a plain error between steps also undoes what asked for it
    local done, failed = run_undos()
    err = errors.new("error", tostring(err), {traceback = type(err) == "table" and err.traceback or nil,
                                               undone = done, undo_failed = failed, exit = 1})
  end
  if pending_start then
    -- nothing was recorded in this run: no journal to finish
  elseif ok then journal_write{type = "finish", ok = true, exit = 0}
  elseif not interrupted then
    journal_write{type = "finish", ok = false, exit = type(err) == "table" and err.exit or 1, error = tostring(err)}
  end
  local report = render_report(ok, err)
  local report_path
  local okw, werr = pcall(function()
    core_fs.mkdir_p(state_dir)
    report_path = fmt("%s/%s.%s.md", state_dir, base, M.dry_run and "plan" or "report")
    core_fs.write(report_path, sys.mask(report), {mode = tonumber("600", 8)})
    if opts.report_file then core_fs.write(opts.report_file, sys.mask(report), {mode = tonumber("600", 8)}) end
  end)
  if not okw then
    events.emit{type = "log", level = "warn", msg = "could not write the report: " .. tostring(werr)}
    report_path = nil
  end
  -- the summary
  local lines = {}
  if ok then
    lines[#lines + 1] = fmt("%s %s in %s", M.dry_run and "rehearsed" or "done:", runbook_name, duration(mono()))
  elseif interrupted then
    lines[#lines + 1] = fmt("interrupted: %s stopped where it was; continue with: runbook run %s --resume", runbook_name, runbook_name)
  else
    lines[#lines + 1] = "stopped: " .. (type(err) == "table" and err.message or tostring(err))
    local undone = type(err) == "table" and err.undone or {}
    if #undone > 0 then lines[#lines + 1] = "undone: " .. table.concat(undone, ", ") end
    local uf = type(err) == "table" and err.undo_failed or {}
    for _, f in ipairs(uf) do lines[#lines + 1] = fmt("UNDO FAILED: %s: %s (check this by hand)", f.id, f.err) end
    local done = {}
    for _, s in ipairs(S.steps) do
      if s.status == "done" and s.id and not s.read_only then
        local was_undone = false
        for _, u in ipairs(undone) do if u == s.id then was_undone = true end end
        if not was_undone then done[#done + 1] = s.id end
      end
    end
    if #done > 0 then lines[#lines + 1] = "still in effect: " .. table.concat(done, ", ") end
    if S.journal and not M.dry_run and not pending_start then
      lines[#lines + 1] = fmt("next: fix the cause, then 'runbook run %s --resume' (finished steps are skipped), or --fresh to start over",
                              runbook_name)
    end
  end
  if report_path then lines[#lines + 1] = "report: " .. report_path end
  for _, l in ipairs(lines) do
    events.emit{type = "summary", level = ok and "info" or "error", summary = true, text = l}
  end
  if S.lock then S.lock:release() end
  return err
end

-- }======

setup()

return M

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
local args = require "runbook.args"
local async = require "runbook.async"
local core_fs = require "runbook.fs.core"
local errors = require "runbook.error"
local events = require "runbook.events"
local fingerprint = require "runbook.fingerprint"
local journal = require "runbook.journal"
local json = require "runbook.json"
local report = require "runbook.report"
local sys = require "runbook.sys"
local time = require "runbook.time"
local variables = require "runbook.vars"

local M = {}

local opts = sys.options()
local fmt = string.format

M.dry_run = opts.dry_run and true or false

-- {====== run state

local script = opts.script or "runbook.lua"
local runbook_name = script:match("([^/]+)$") or script
local base = runbook_name:gsub("%.lua$", "")
local state_dir = opts.state_dir or ".runbook"
M.state_dir = state_dir   -- where the journal, the lock, the report and a runbook's own records live

local S = {
  phase = nil,           -- current phase name
  phases = {},           -- in order: {name, started, finished, status}
  seen = {},             -- step key -> identity of the step that has it
  undo = {},             -- stack of {id, fn, result}
  undone = {},           -- ids undone during this run
  resumed = false,
  steps = {},            -- report: every step in order
  gates = {},            -- report: every gate
  commands = {},         -- report: commands and HTTP calls, in chunks of lines (add_command)
  command_tail = {},     -- the lines not yet folded into a chunk
  sections = {},         -- report: rb.report additions
  var_specs = {},        -- declared variables
  var_values = {},       -- resolved, for the report (secrets as their masked form)
  journal = nil,         -- the open journal (runbook.journal), once the run started
  failed = nil,          -- the error that stopped the run
  started = time.now(),
  batches = {},          -- report: the batches of rb.rolling, in order
  secret_sets = {},      -- rb.vars' {specs, values} given before the journal opened (secrets, bare --resume)
  waiting = {},          -- gate -> true while a check of it is awaited (an interrupt's summary names them)
}

-- A lane is one item of rb.rolling: its steps' undos are its own, so that
-- a failed item undoes only itself while the rest of its batch goes on.
-- The lane belongs to the task running the item (and to a step's timeout
-- task, which inherits it).
local lane_of = setmetatable({}, {__mode = "k"})
local function lane()
  local t = async.current()
  return t and lane_of[t]
end
local function undo_stack()
  local l = lane()
  return l and l.undo or S.undo
end


local function mono() return time.monotonic() end

local function duration(secs)
  if secs < 60 then return fmt("%.1fs", secs) end
  if secs < 3600 then return fmt("%dm%02ds", secs // 60, math.floor(secs % 60)) end
  return fmt("%dh%02dm", secs // 3600, math.floor(secs % 3600) // 60)
end
M.duration = duration

-- }======

-- {====== the run's start: lock and journal

--- Takes the lock and opens the journal, once, at the runbook's first use
--- of the DSL (rb.vars, phase, step, gate, confirm): requiring the module
--- changes nothing, so a library or a test may require it freely. What
--- makes a run the same run on --resume: runbook.fingerprint.
--- A new run records its secrets' keyed hashes in the journal's start
--- record; a resumed one is refused (exit 2) when one differs from the run
--- it continues, naming which.
local function secrets_check(J, specs, values)
  if J.path then
    -- a new run records its secrets' keyed hashes; a resumed one is
    -- refused when one differs from the run it continues
    local recorded = J.started and J.started.secrets
    if not J.resumed then
      local fps = fingerprint.of_secrets(state_dir, specs, values, true)
      if J.pending then
        J.pending.secrets = J.pending.secrets or {}
        for name, fp in pairs(fps) do J.pending.secrets[name] = fp end
      end
    elseif recorded then
      local fps = fingerprint.of_secrets(state_dir, specs, values, false)
      local differ = fps and fingerprint.secrets_differ(recorded, fps)
      local why = not fps and fmt("%s/fingerprint.key, which they were hashed with, is gone", state_dir)
        or #differ > 0 and fmt("the secret%s %s differ%s from the run being resumed", #differ > 1 and "s" or "",
                                 table.concat(differ, ", "), #differ > 1 and "" or "s")
      if why then
        J:release()
        error(errors.new("usage", fmt("cannot resume %s: %s; resume with the secrets it was started with, or start over with --fresh",
          runbook_name, why), {exit = 2}), 0)
      end
    end
  end
end

local function start()
  if S.journal then return S.journal end
  local c = S.cluster or {}
  S.journal = journal.open{
    state_dir = state_dir, base = base, name = runbook_name, dry_run = M.dry_run,
    resume = opts.resume, fresh = opts.fresh, fingerprint = fingerprint.of_run(runbook_name, script, opts),
    lock_key = c.key, read_only = c.read_only,
    store = not M.dry_run and not c.read_only and require("runbook.store").open(opts.store, {state_dir = state_dir}) or nil,
    on_archive = function(to)
      events.emit{type = "log", level = "info", msg = "archived the previous journal as " .. to}
    end,
  }
  for _, w in ipairs(S.journal.warnings) do events.emit{type = "log", level = "warn", msg = w} end
  S.resumed = S.journal.resumed
  local adopted = S.journal.adopted      -- a bare --resume: the variables the run was started with
  if adopted then
    opts.vars, opts.limit, opts.exclude = adopted.vars, adopted.limit, adopted.exclude
    -- rb.vars ran before the journal opened (rb.cluster may name the lock
    -- in between): its tables take the adopted values, in place
    for _, set in ipairs(S.secret_sets) do
      local values = variables.resolve(set[1], opts, S.var_specs, S.var_values)
      for k in pairs(set[2]) do set[2][k] = nil end
      for k, x in pairs(values) do set[2][k] = x end
    end
  end
  for _, set in ipairs(S.secret_sets) do secrets_check(S.journal, set[1], set[2]) end
  S.secret_sets = {}
  return S.journal
end

--- A journal that cannot be written (a full disk, no file descriptor left)
--- stops the run where it is, undoing nothing: what is recorded stays
--- true, and --resume continues once the cause is fixed.
local function journal_write(rec)
  if not S.journal or S.journal_failed then return end
  local ok, err = pcall(S.journal.write, S.journal, rec)
  if not ok and errors.is(err, "lock_lost") then error(err, 0) end   -- fenced out: nothing written, exit 4
  if not ok then
    S.journal_failed = tostring(err)
    error(errors.new("journal", fmt("cannot write the journal %s (%s); stopped so that no change goes unrecorded",
                                    S.journal.path or "?", tostring(err)), {stop = true, exit = 1}), 0)
  end
end

-- }======

-- {====== failure and undo

local function is_stop(err)
  return type(err) == "table" and (err.kind == "step_failed" or err.kind == "declined" or err.stop == true)
end

--- Runs the registered undo functions, newest first. Returns the lists of
--- undone and failed identities.
local function run_undos(stack)
  stack = stack or S.undo
  local done, failed = {}, {}
  while #stack > 0 do
    local u = table.remove(stack)
    events.emit{type = "undo", step = u.id, level = "warn", text = "undo: " .. u.id}
    local ok, err = pcall(u.fn, u.result)
    if ok then
      done[#done + 1] = u.id
      S.undone[#S.undone + 1] = u.id
      journal_write{type = "undo", id = u.id, key = u.key, ok = true}
    else
      failed[#failed + 1] = {id = u.id, err = tostring(err)}
      journal_write{type = "undo", id = u.id, key = u.key, ok = false, error = tostring(err)}
      events.emit{type = "undo_failed", step = u.id, level = "error", text = fmt("undo of %s failed: %s", u.id, tostring(err))}
    end
  end
  return done, failed
end

--- Stops the run: undo what asked for it, then raise a step_failed error.
--- A failure's message for the operator: an error() raised in the shipped
--- runbooks (or their world) carries its file:line, which is not theirs to
--- read; -v keeps it. A runbook author's own file keeps its position.
local shipped_dir = sys.runbooks_dir()
local function plain_message(cause)
  local msg = tostring(cause)
  if shipped_dir and (opts.verbosity or 0) < 1 and msg:sub(1, #shipped_dir + 1) == shipped_dir .. "/" then
    msg = msg:gsub("^[^:]+:%d+: ", "", 1)
  end
  return msg
end

local function fail(id, cause, what)
  local lost = S.journal and S.journal.lost and S.journal:lost()
  if lost then error(lost, 0) end              -- a run that lost its lock acts no further, undo included
  if is_stop(cause) then error(cause, 0) end   -- an inner step already stopped the run
  if sys.interrupted() and errors.is(cause, "cancelled") then
    -- Ctrl-C or SIGTERM: the run stops where it is and undoes nothing, so
    -- that --resume continues it (the step was not recorded as done)
    events.emit{type = "step_interrupted", step = id, level = "warn", text = fmt("⏸ %s %s interrupted", what, id)}
    S.interrupted_at = S.interrupted_at and (S.interrupted_at .. ", " .. id) or id
    error(cause, 0)
  end
  local msg = plain_message(cause)
  events.emit{type = "step_failed", step = id, level = "error", error = msg,
              text = fmt("✗ %s %s failed: %s", what, id, msg)}
  local done, failed = run_undos(undo_stack())
  local err = errors.new("step_failed", fmt("%s '%s' failed: %s", what, id, msg),
                         {exit = 1, step = id, what = what, cause = cause, undone = done, undo_failed = failed})
  if type(cause) == "table" and cause.traceback then err.traceback = cause.traceback end
  S.failed = err
  error(err, 0)
end

-- }======

-- {====== phases, steps, gates

local function identity(name)
  return S.phase and (S.phase .. "/" .. name) or name
end


--- Groups steps under a name; phases do not nest.
---@param name string
---@param fn fun()
function M.phase(name, fn)
  args.name(1, "phase", name)
  args.check(2, "phase", fn, "function")
  start()
  if S.phase then error(fmt("phase '%s' inside phase '%s': phases do not nest", name, S.phase), 2) end
  local ph = {name = name, started = time.now(), t0 = mono(), status = "running"}
  S.phases[#S.phases + 1] = ph
  S.phase = name
  events.emit{type = "phase", phase = name, text = "== " .. name}
  local ok, err = pcall(fn)
  S.phase = nil
  ph.elapsed = mono() - ph.t0
  -- a pause is no failure: its own word, at info level (exit 0)
  local paused = not ok and errors.is(err, "paused")
  ph.status = ok and "done" or paused and "paused" or "failed"
  events.emit{type = "phase_done", phase = name, ok = ok, paused = paused or nil, elapsed = ph.elapsed,
              level = (ok or paused) and "info" or "error",
              text = fmt("== %s: %s in %s", name, ok and "done" or paused and "paused" or "stopped", duration(ph.elapsed))}
  if not ok then error(err, 0) end
end

-- the engine's errors that come out the same however often they are
-- tried: a plain error() (a refusal, a bug), bad input, a client error of
-- a server. A library marks its own (a talconfig it cannot edit, a
-- schematic the factory would reject) with retry = false, or exit = 2.
local DETERMINISTIC = {error = true, usage = true, args = true, yaml = true, json = true, too_large = true}

--- Whether a failed attempt is worth another: transient kinds only
--- (network, timeouts, a command that failed, a 5xx, 408, 429...).
local function transient(err)
  if type(err) ~= "table" then return false end            -- error("...") with a string
  if err.retry ~= nil then return err.retry == true end    -- the raiser knows best
  if DETERMINISTIC[err.kind] or err.exit == 2 then return false end
  local st = math.tointeger(err.status)
  if st and st >= 400 and st < 500 and st ~= 408 and st ~= 429 then return false end
  return true
end

local function run_with_retries(fn, o)
  local tries = (o.retries or 0) + 1
  local backoff = o.backoff or 1
  local last
  for attempt = 1, tries do
    local ok, res
    local limit = o.timeout or opts.step_timeout
    local l = lane()
    if limit then
      ok, res = pcall(async.timeout, limit, function()
        lane_of[async.current()] = l
        return fn()
      end)
    else ok, res = pcall(fn) end
    if ok then return true, res end
    if is_stop(res) or errors.is(res, "cancelled") then return false, res end
    last = res
    local again = o.retry_on and o.retry_on(res) or (o.retry_on == nil and transient(res))
    if attempt < tries and not again then
      events.emit{type = "retry", attempt = attempt, retried = false, level = "info",
                  text = fmt("  not retried: %s is not a transient failure", errors.is(res) and res.kind or "a plain error")}
      return false, res
    end
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
---@field retries? integer extra attempts after a transient failure (default 0): not after a plain error(), bad input (exit 2) or a 4xx other than 408/429
---@field retry_on? fun(err:any):boolean decides instead which failures are retried
---@field backoff? number seconds before the first retry, doubled after each (default 1)
---@field timeout? number seconds per attempt
---@field read_only? boolean the step changes nothing (left out of "still in effect")
---@field key? string stable key the journal finds the step by (default: "<phase>/<name>"); give one where another script reads the journal

local STEP_OPTS = {undo = "function", retries = "number", backoff = "number", timeout = "number", retry_on = "function",
                   read_only = "boolean", key = "string"}
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
  args.name(1, "step", name)
  args.check(2, "step", fn, "function")
  o = args.check(3, "step", o, "?table") or {}
  check_opts("step", name, o, STEP_OPTS)
  if o.read_only and o.undo then error(fmt("step '%s': a read_only step has nothing to undo", name), 2) end
  if o.key == "" then error(fmt("step '%s': an empty key", name), 2) end
  local J = start()
  local id = identity(name)
  local key = o.key or id
  local rec = {id = id, key = key, phase = S.phase, name = name, started = time.now(), t0 = mono(), read_only = o.read_only}
  S.steps[#S.steps + 1] = rec
  if S.seen[key] then
    rec.status = "failed"
    fail(id, o.key and fmt("two steps with the key '%s' in one run ('%s' and '%s'; give them distinct keys)", key, S.seen[key], id)
                    or fmt("two steps with the same identity '%s' in one run (give them distinct names)", id), "step")
  end
  S.seen[key] = id
  local prev = J.resume[key]
  if prev then
    rec.status, rec.skipped, rec.elapsed = "done", true, 0
    rec.result = prev.result
    local result = prev.result
    if result == json.null then result = nil end
    if o.undo then local u = undo_stack(); u[#u + 1] = {id = id, key = key, fn = o.undo, result = result} end
    events.emit{type = "step_skipped", step = id, text = "✓ " .. id .. " (done in an earlier run)"}
    return result
  end
  J:check()                 -- the lock is still this run's (runbook.store), or the run stops here
  events.emit{type = "step", step = id, text = "→ " .. id}
  if J.pending then journal_write{type = "begin", id = id, key = key} end   -- a kill from here on leaves a journal
  local ok, res = run_with_retries(fn, o)
  rec.elapsed = mono() - rec.t0
  if not ok then
    rec.status = sys.interrupted() and errors.is(res, "cancelled") and "interrupted" or "failed"
    rec.error = tostring(res)
    fail(id, res, "step")
  end
  local enc_ok, enc = pcall(json.encode, res)
  if not enc_ok then
    rec.status = "failed"
    fail(id, "its result is not JSON-serialisable (" .. tostring(enc) .. "); return plain data", "step")
  end
  rec.status, rec.result = "done", res
  journal_write{type = "step", id = id, key = key, phase = S.phase, name = name, result = res == nil and json.null or res,
                started = rec.started, elapsed = rec.elapsed}
  if o.undo then local u = undo_stack(); u[#u + 1] = {id = id, key = key, fn = o.undo, result = res} end
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
  args.name(1, "gate", name)
  args.check(2, "gate", check, "function")
  o = args.check(3, "gate", o, "?table") or {}
  check_opts("gate", name, o, GATE_OPTS)
  start()
  local id = identity(name)
  local timeout, interval = o.timeout or 300, o.interval or 5
  local g = {id = id, phase = S.phase, name = name, started = time.now(), t0 = mono(), polls = 0, history = {}}
  S.gates[#S.gates + 1] = g
  events.emit{type = "gate", gate = id, timeout = timeout, text = fmt("⧗ %s (up to %s)", id, duration(timeout))}
  S.waiting[g] = true         -- where an interrupt finds the run (its summary says)
  local last_obs
  while true do
    local ok, v, obs = pcall(check)
    g.polls = g.polls + 1
    if not ok and type(v) == "table" and v.fatal then
      -- the check saw a state that waiting cannot fix (a node back on its old image)
      g.ok, g.elapsed = false, mono() - g.t0
      S.waiting[g] = nil
      fail(id, tostring(v.message or v), "gate")
    end
    if not ok then v, obs = false, "check failed: " .. tostring(v) end
    obs = obs ~= nil and tostring(obs) or (v and "ok" or "not yet")
    local changed = obs ~= last_obs
    if changed and not (sys.interrupted() and obs:find("cancelled", 1, true)) then
      g.history[#g.history + 1] = {at = mono() - g.t0, obs = obs}
      last_obs = obs
    end
    -- without a terminal, a poll line shows when the observation changes
    events.emit{type = "gate_poll", gate = id, poll = g.polls, ok = v and true or false, observation = obs,
                elapsed = mono() - g.t0, live = true, level = changed and "info" or "debug",
                text = fmt("  %s: poll %d, %s, %s", id, g.polls, duration(mono() - g.t0), obs)}
    if v then
      S.waiting[g] = nil
      g.ok, g.elapsed = true, mono() - g.t0
      events.emit{type = "gate_done", gate = id, ok = true, polls = g.polls, elapsed = g.elapsed,
                  text = fmt("✓ %s (%d checks, %s)", id, g.polls, duration(g.elapsed))}
      return v
    end
    local elapsed = mono() - g.t0
    if elapsed >= timeout then
      g.ok, g.elapsed = false, elapsed
      S.waiting[g] = nil
      fail(id, fmt("not met after %s (%d checks); last observation: %s", duration(timeout), g.polls, obs), "gate")
    end
    time.sleep(math.min(interval, timeout - elapsed))
    interval = math.min(interval * (o.backoff or 1), o.max_interval or 60)
  end
end

---@class runbook.ClusterOpts
---@field read_only? boolean this run changes nothing: it takes no lock and keeps no journal

--- Names the cluster this run changes: the lock is then the cluster's, not
--- the runbook's, so that every runbook changing one cluster (a rollout, its
--- rollback, a repair) excludes the others, whichever of them runs, and a
--- read-only run takes none. Call it once, after rb.vars and before the
--- first phase, step, gate or confirmation; it takes the lock at once (exit
--- 4 naming the holder when another run has it).
---@param key string a stable name of the cluster (the shipped runbooks: talconfig's clusterName and endpoint)
---@param o? runbook.ClusterOpts
function M.cluster(key, o)
  args.name(1, "cluster", key)
  o = args.check(2, "cluster", o, "?table") or {}
  check_opts("cluster", key, o, {read_only = "boolean"})
  if S.journal then error("cluster: the run has started already (call rb.cluster before the first phase, step, gate or confirmation)", 2) end
  S.cluster = {key = key, read_only = o.read_only}
  start()
end

--- Whether the step with this key finished in the run being resumed
--- (false in a fresh run and in a dry-run): to skip a question or a check
--- that only matters before the step, as the rollout does for a node that is done.
---@param key string
---@return boolean
function M.is_done(key)
  args.name(1, "is_done", key)
  return start().resume[key] ~= nil
end

--- Whether this run resumes an earlier one (--resume): a step that may
--- have been cut short can then look before it acts again.
---@return boolean
function M.resumed()
  return start().resumed and true or false
end

--- Stops the run here on purpose, exit 0, nothing undone and the journal
--- left open: `--resume` (with the same variables) continues after the
--- last finished step. A canary: pause once the first node passed its gates.
---@param reason string what the operator should look at before resuming
function M.pause(reason)
  args.check(1, "pause", reason, "string")
  error(errors.new("paused", reason, {exit = 0, stop = true}), 0)
end

--- Accepts everything done so far: a later failure no longer undoes the
--- steps before this point (a node that passed all its gates stays).
function M.commit()
  local l = lane()
  if l then l.undo = {} end
  S.undo = {}
end

---@class runbook.RollingOpts
---@field batch? integer items changed at once (default 1: one at a time)
---@field max_failures? integer items that may fail, each undone, before the run stops (default 0)
---@field name? fun(item:any):string the item's name in events and the plan (default tostring)
---@field before? fun(batch:any[], b:integer, n:integer) runs before batch b of n (a gate on the whole, a confirmation)
---@field after? fun(batch:any[], b:integer, n:integer) runs once every item of batch b finished (a pause)

local ROLLING_OPTS = {batch = "number", max_failures = "number", name = "function", before = "function", after = "function"}

--- Runs fn(item) for every item, `batch` items at a time, concurrently
--- within a batch; the next batch starts once the whole batch ended. Each
--- item is a lane with an undo stack of its own: an item that fails undoes
--- its own steps and the others go on. Once more than max_failures items
--- failed, the run stops after the batch in flight has ended (what the
--- other items finished stays). Returns {done = {items}, failed =
--- {{item, name, error, undone}}}; resume skips an item's finished steps
--- by their keys, as everywhere.
---@param name string
---@param items any[]
---@param fn fun(item:any, index:integer)
---@param o? runbook.RollingOpts
function M.rolling(name, items, fn, o)
  args.name(1, "rolling", name)
  args.check(2, "rolling", items, "table")
  args.check(3, "rolling", fn, "function")
  o = args.check(4, "rolling", o, "?table") or {}
  check_opts("rolling", name, o, ROLLING_OPTS)
  local size, budget = o.batch or 1, o.max_failures or 0
  args.expect(math.type(size) == "integer" and size >= 1, 4, "rolling", "batch must be an integer >= 1")
  args.expect(math.type(budget) == "integer" and budget >= 0, 4, "rolling", "max_failures must be an integer >= 0")
  if lane() then error(fmt("rolling '%s' inside another rolling: they do not nest", name), 2) end
  start()
  local label = o.name or tostring
  local nb = (#items + size - 1) // size
  local out = {done = {}, failed = {}}
  for b = 1, nb do
    local batch, names, lanes, tasks = {}, {}, {}, {}
    for i = (b - 1) * size + 1, math.min(b * size, #items) do batch[#batch + 1] = items[i] end
    for i, it in ipairs(batch) do names[i] = tostring(label(it)) end
    local rec = {rolling = name, phase = S.phase, batch = b, of = nb, items = names, started = time.now(), t0 = mono()}
    S.batches[#S.batches + 1] = rec
    events.emit{type = "batch", rolling = name, batch = b, batches = nb, items = names,
                text = fmt("▸ %s: batch %d/%d: %s", name, b, nb, table.concat(names, ", "))}
    if o.before then o.before(batch, b, nb) end
    for i, it in ipairs(batch) do
      lanes[i] = {name = names[i], undo = {}}
      tasks[i] = async.spawn_named(names[i], function()
        lane_of[async.current()] = lanes[i]
        fn(it, (b - 1) * size + i)
      end)
    end
    -- every lane runs to its end: one failure does not cancel the others
    local left = {}
    for i = 1, #tasks do left[i] = tasks[i] end
    while #left > 0 do
      local ok, idx = pcall(async.wait_any, left)
      if not ok then                -- interrupted: the lanes stop where they are
        for _, t in ipairs(tasks) do t:cancel() end
        for _, t in ipairs(tasks) do pcall(t.wait, t) end
        error(idx, 0)
      end
      table.remove(left, idx)
    end
    local stop
    for i, t in ipairs(tasks) do
      local ok, err = t:result()
      if ok then
        out.done[#out.done + 1] = batch[i]
        for _, u in ipairs(lanes[i].undo) do S.undo[#S.undo + 1] = u end   -- a later failure undoes it as in sequence
      elseif errors.is(err, "step_failed") then
        out.failed[#out.failed + 1] = {item = batch[i], name = names[i], error = err.message, undone = err.undone or {},
                                       undo_failed = err.undo_failed or {}, cause = err}
      elseif is_stop(err) or errors.is(err, "cancelled") then
        stop = stop or err          -- a refusal, a pause, a journal that cannot be written
      else                          -- an error between the item's steps: undo what it did
        local msg = plain_message(err)
        events.emit{type = "step_failed", step = names[i], level = "error", error = msg,
                    text = fmt("✗ %s %s failed: %s", name, names[i], msg)}
        local done, failed = run_undos(lanes[i].undo)
        out.failed[#out.failed + 1] = {item = batch[i], name = names[i], error = msg, undone = done, undo_failed = failed,
                                       cause = errors.new("step_failed", fmt("%s '%s' failed: %s", name, names[i], msg),
                                                          {exit = 1, step = names[i], what = name, undone = done,
                                                           undo_failed = failed})}
      end
    end
    rec.elapsed = mono() - rec.t0
    rec.failed = #out.failed
    if stop then error(stop, 0) end
    events.emit{type = "batch_done", rolling = name, batch = b, batches = nb, elapsed = rec.elapsed, failed = #out.failed,
                text = fmt("▸ %s: batch %d/%d ended in %s (%d failed so far, max_failures %d)", name, b, nb,
                           duration(rec.elapsed), #out.failed, budget)}
    if #out.failed > budget then
      local f = out.failed
      if #f == 1 then     -- as in sequence: the failure itself
        S.failed = f[1].cause
        error(f[1].cause, 0)
      end
      local undone, ufailed, which, names_failed = {}, {}, {}, {}
      for _, x in ipairs(f) do
        which[#which + 1] = fmt("%s (%s)", x.name, x.error)
        names_failed[#names_failed + 1] = x.name
        for _, id in ipairs(x.undone) do undone[#undone + 1] = id end
        for _, u in ipairs(x.undo_failed) do ufailed[#ufailed + 1] = u end
      end
      local err = errors.new("step_failed", fmt("%s: %d items failed, more than max_failures=%d; each was undone: %s",
                             name, #f, budget, table.concat(which, "; ")),
                             {exit = 1, step = f[1].cause.step, what = "rolling", undone = undone, undo_failed = ufailed,
                              failed_items = names_failed})
      S.failed = err
      error(err, 0)
    end
    for _, x in ipairs(out.failed) do
      if not x.reported then
        x.reported = true
        events.emit{type = "log", level = "warn", msg = fmt("%s failed and was undone; the rollout goes on (%d of max_failures %d)",
                                                        x.name, #out.failed, budget)}
      end
    end
    if o.after then o.after(batch, b, nb) end
  end
  return out
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
  args.name(1, "confirm", question)
  start()
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
  args.name(1, "report", title)
  S.sections[#S.sections + 1] = {title = title, body = body}
end

-- }======

-- {====== variables

--- Declares the runbook's variables and returns their values. Each spec:
--- {type = "string"|"number"|"integer"|"boolean"|"list"|"secret",
---  default =, required =, desc =, choices = {...}, env = "NAME"}.
--- Values come from --var K=V and --vars FILE.yaml (the command line wins).
--- A secret comes from the environment variable `env` (default: the name
--- in upper case) or from the file named by --var <name>_file=PATH, never
--- from the command line itself. Declare them all in one call at the top:
--- an unknown or missing required variable stops the run (exit 2) there.
---@param specs table<string, table>
---@return table<string, any>
function M.vars(specs)
  local values = variables.resolve(specs, opts, S.var_specs, S.var_values)
  -- the secrets are checked against the journal once it is open: now, or
  -- at the first step (rb.cluster may still name the lock before that)
  if S.journal then secrets_check(S.journal, specs, values)
  else S.secret_sets[#S.secret_sets + 1] = {specs, values} end
  return values
end

-- }======

-- {====== the end of a run: journal, report, summary

-- Each command's line goes into a short table folded into one string every
-- 256 lines: a list that grows by one at every call, tens of thousands
-- long in a fleet's rollout, would be traversed whole by each of the
-- generational collector's minor cycles (an old table written to is
-- re-marked entirely), a cost that grows with the run (docs/benchmarks.md)
local function add_command(line)
  local tail = S.command_tail
  tail[#tail + 1] = line
  if #tail == 256 then
    S.commands[#S.commands + 1] = table.concat(tail, "\n")
    S.command_tail = {}
  end
end

events.listen(function(ev)
  if ev.type == "exec" then
    add_command(fmt("[%s] $ %s", time.iso(ev.time):sub(12, 19), require("runbook.exec").show_argv(ev.argv)))
  elseif ev.type == "http" then
    add_command(fmt("[%s] %s %s", time.iso(ev.time):sub(12, 19), ev.method, ev.url))
  end
end)

--- Called by the driver when the runbook returns or raises. Writes the
--- journal's last record and the report, prints the summary, and returns
--- the error to raise (nil when the run succeeded).
--- The steps done in this run, not read-only, not undone.
local function in_effect(undone)
  local gone, out = {}, {}
  for _, u in ipairs(undone or {}) do gone[u] = true end
  for _, u in ipairs(S.undone) do gone[u] = true end     -- a failed item of rb.rolling, undone while the run went on
  for _, st in ipairs(S.steps) do
    if st.status == "done" and st.id and not st.read_only and not gone[st.id] then out[#out + 1] = st.id end
  end
  return out
end

--- The last event of a run: its outcome as data, for whoever reads the
--- JSON stream (docs/events.md).
local function emit_outcome(ok, err, interrupted, report_path, paused)
  local e = type(err) == "table" and err or {}
  local failed = S.failed
  local exit = ok and 0 or interrupted and 3 or (math.tointeger(e.exit) or 1)
  if paused then
    events.emit{type = "outcome", ok = true, exit = 0, paused = true, reason = e.message, dry_run = M.dry_run,
                in_effect = json.array(in_effect({})), report = report_path}
    return
  end
  local undone = e.undone or {}
  events.emit{type = "outcome", ok = ok, exit = exit, dry_run = M.dry_run, interrupted = interrupted or nil,
              interrupted_at = interrupted and S.interrupted_at or nil, where = interrupted and S.interrupted_where or nil,
              failed = not ok and not interrupted and failed and failed.step or nil,
              failed_kind = not ok and not interrupted and failed and failed.what or nil,
              error = not ok and not interrupted and (e.message or tostring(err)) or nil,
              undone = json.array(undone), undo_failed = json.array(e.undo_failed or {}),
              failed_items = e.failed_items and json.array(e.failed_items) or nil,
              in_effect = json.array(in_effect(undone)), report = report_path, level = ok and "info" or "error"}
end

function M._finish(ok, err)
  local interrupted = sys.interrupted()
  if not ok and interrupted then
    -- where it stopped, in words: the step cut short, or the gate waited on
    -- with what it last saw (a node mid-change), not "task 1 was cancelled"
    local waits = {}
    for g in pairs(S.waiting) do
      waits[#waits + 1] = fmt("%s, %d checks in%s", g.id, g.polls,
                              #g.history > 0 and ("; last seen: " .. g.history[#g.history].obs) or "")
    end
    table.sort(waits)
    local where = S.interrupted_at and ("in step " .. S.interrupted_at .. ", not finished: it runs again on --resume")
                  or #waits > 0 and ("waiting in gate " .. table.concat(waits, "; gate "))
                  or "between steps"
    S.interrupted_where = where
    err = errors.new("interrupted", "interrupted " .. where, {exit = 3})
  end
  local paused = not ok and errors.is(err, "paused")
  if not ok and not interrupted and not is_stop(err) and not errors.is(err, "usage") and #S.undo > 0 then
    -- a plain error between steps also undoes what asked for it
    local done, failed = run_undos()
    err = errors.new("error", tostring(err), {traceback = type(err) == "table" and err.traceback or nil,
                                               undone = done, undo_failed = failed, exit = 1})
  end
  local recorded = S.journal and not S.journal:is_empty()
  -- a run that stopped having done only read-only steps changed nothing:
  -- its journal counts as finished, so the next run starts afresh
  local changed = S.resumed     -- what an earlier run changed is still to be resumed
  for _, st in ipairs(S.steps) do
    if st.status == "done" and not st.skipped and st.id and not st.read_only then changed = true end
  end
  -- a run that recorded nothing has no journal to finish
  local okj, jerr = pcall(function()
    if paused then return end       -- left open: --resume continues it
    if recorded and ok then journal_write{type = "finish", ok = true, exit = 0}
    elseif recorded and not interrupted then
      journal_write{type = "finish", ok = false, changed = changed, exit = type(err) == "table" and err.exit or 1,
                    error = tostring(err)}
    end
  end)
  if not okj and ok then ok, err = false, jerr end
  local text = report.render{name = runbook_name, dry_run = M.dry_run, ok = ok, err = err, state = S, duration = duration}
  local report_path
  local okw, werr = pcall(function()
    core_fs.mkdir_p(state_dir)
    -- a rehearsal that stopped does not overwrite the last plan that ran
    -- to its end: it is the plan.failed.md beside it
    report_path = fmt("%s/%s.%s.md", state_dir, base, not M.dry_run and "report" or (ok or paused) and "plan" or "plan.failed")
    core_fs.write(report_path, sys.mask(text), {mode = tonumber("600", 8)})
    if opts.report_file then core_fs.write(opts.report_file, sys.mask(text), {mode = tonumber("600", 8)}) end
  end)
  if not okw then
    events.emit{type = "log", level = "warn", msg = "could not write the report: " .. tostring(werr)}
    report_path = nil
  end
  -- the summary
  local lines = {}
  if ok then
    lines[#lines + 1] = fmt("%s %s in %s", M.dry_run and "rehearsed" or "done:", runbook_name, duration(mono()))
  elseif paused then
    lines[#lines + 1] = fmt("paused: %s", err.message)
    lines[#lines + 1] = M.dry_run and "a rehearsal ends here; the real run pauses at the same point"
                        or fmt("continue with: runbook run %s --resume (it keeps the variables this run was started with)",
                                  runbook_name)
  elseif interrupted then
    lines[#lines + 1] = fmt("interrupted: %s stopped where it was%s; nothing was undone; continue with: runbook run %s --resume",
                            runbook_name, " (" .. S.interrupted_where .. ")",
                            runbook_name)
  else
    lines[#lines + 1] = "stopped: " .. (type(err) == "table" and err.message or tostring(err))
    local undone = type(err) == "table" and err.undone or {}
    if #undone > 0 then lines[#lines + 1] = "undone: " .. table.concat(undone, ", ") end
    local uf = type(err) == "table" and err.undo_failed or {}
    for _, f in ipairs(uf) do lines[#lines + 1] = fmt("UNDO FAILED: %s: %s (check this by hand)", f.id, f.err) end
    local done = in_effect(undone)
    if #done > 0 then lines[#lines + 1] = "still in effect: " .. table.concat(done, ", ") end
    if S.journal_failed then
      lines[#lines + 1] = fmt("next: make room for the journal (disk space, open files), then 'runbook run %s --resume': "
                              .. "the steps it recorded are skipped, the one cut short runs again", runbook_name)
    elseif recorded and not M.dry_run and changed then
      lines[#lines + 1] = fmt("next: fix the cause, then 'runbook run %s --resume' (finished steps are skipped), or --fresh to start over",
                              runbook_name)
    elseif recorded and not M.dry_run then
      lines[#lines + 1] = fmt("nothing was changed: run %s again once the cause is fixed", runbook_name)
    end
  end
  if report_path then lines[#lines + 1] = "report: " .. report_path end
  for _, l in ipairs(lines) do
    events.emit{type = "summary", level = (ok or paused) and "info" or "error", summary = true, text = l}
  end
  emit_outcome(ok, err, interrupted, report_path, paused)
  if S.journal then S.journal:release() end
  return err
end

-- }======

return M

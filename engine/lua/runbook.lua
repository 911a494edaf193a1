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
local errors = require "runbook.error"
local events = require "runbook.events"
local fingerprint = require "runbook.fingerprint"
local journal = require "runbook.journal"
local json = require "runbook.json"
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
    resume = opts.resume, fresh = opts.fresh, wait_lock = opts.wait_lock,
    fingerprint = fingerprint.of_run(runbook_name, script, opts),
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
---@field gate? fun():any, any? on a resume that finds this step cut short (begun, never finished), polled as rb.gate until it passes before the body runs again
---@field gate_timeout? number seconds for that gate (default 300)

local STEP_OPTS = {undo = "function", retries = "number", backoff = "number", timeout = "number", retry_on = "function",
                   read_only = "boolean", key = "string", gate = "function", gate_timeout = "number"}

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

local regate   -- runbook.gate, installed below with the gate

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
  regate(J, key, name, o)
  local here = lane() or S
  here.fresh_gate = false   -- this body may change what the last gate saw
  -- the lock is still this run's (runbook.store), or the run stops here.
  -- In a shared store the check is the begin record itself (a fenced
  -- write, no dearer than the check), which names the step a takeover
  -- finds cut short; in the state directory, where an fsync per record
  -- counts, only the first step (a kill from there leaves a journal) and a
  -- step with a gate (the one a resume must know was cut short) get one
  if J.pending or J.shared or o.gate then journal_write{type = "begin", id = id, key = key} else J:check() end
  events.emit{type = "step", step = id, text = "→ " .. id}
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

--- Every journal of the runbook `base` ("rollout") in this run's store, newest
--- first: the current one, then the archived runs. Each is {where,
--- records, finished} or, when it cannot be read, {where, why}. The store
--- is --store (RUNBOOK_STORE) or the state directory; in a shared store
--- the journals are those of this run's cluster (rb.cluster's key), so
--- rollback.lua on another machine finds the rollout's.
---@param base string a runbook's file name without .lua
---@return table[]
function M.journals(of)
  args.name(1, "journals", of)
  local key = S.cluster and S.cluster.key or of
  local st = require("runbook.store").open(opts.store, {state_dir = state_dir})
  return st:journals(key, of)
end

--- The shared store this run keeps its lock and journal in (--store,
--- RUNBOOK_STORE), or nil for the state directory.
---@return string?
function M.store()
  return opts.store ~= nil and opts.store ~= "" and opts.store or nil
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
--- Inside rb.rolling: the item's own steps and the run's stack, that is
--- the steps before the rolling and the items of earlier batches; the
--- other items of its batch keep theirs (docs/writing-runbooks.md).
function M.commit()
  local l = lane()
  if l then l.undo = {} end
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

-- {====== rb.gate, rb.rolling and the end of a run, in modules of their own

-- what they share with the rest of the DSL
local K = {S = S, M = M, opts = opts, runbook_name = runbook_name, state_dir = state_dir, base = base,
           lane = lane, lane_of = lane_of, start = start, check_opts = check_opts, is_stop = is_stop,
           plain_message = plain_message, run_undos = run_undos, journal_write = journal_write,
           duration = duration, mono = mono, identity = identity, fail = fail}

local gates = require("runbook.gate")(K)
M.gate, regate = gates.gate, gates.regate

M.rolling = require("runbook.rolling")(K)
M._finish = require("runbook.finish")(K)

-- }======

return M

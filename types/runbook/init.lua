---@meta runbook
-- LuaLS stub of require "runbook": the DSL (docs/writing-runbooks.md).
-- Shipped in share/runbook/types; see CONTRIBUTING.md for the editor set-up.

---@class runbook
---@field dry_run boolean true in a rehearsal (--dry-run)
---@field state_dir string the run's state directory (--state-dir, default .runbook)
local runbook = {}

---@class runbook.StepOpts
---@field undo? fun(result:any) run with the step's result if a later step fails
---@field retries? integer extra attempts after a transient failure (default 0): not after a plain error(), bad input (exit 2) or a 4xx other than 408/429
---@field retry_on? fun(err:any):boolean decides instead which failures are retried
---@field backoff? number seconds before the first retry, doubled after each (default 1)
---@field timeout? number seconds per attempt
---@field read_only? boolean the step changes nothing (left out of "still in effect")
---@field gate? fun():any, any? on a resume that finds this step cut short (begun, never finished), polled as rb.gate until it passes before the body runs again
---@field gate_timeout? number seconds for that gate (default 300)
---@field key? string stable key the journal finds the step by (default "<phase>/<name>")

---@class runbook.GateOpts
---@field timeout? number seconds before the gate fails (default 300)
---@field interval? number seconds between checks (default 5)
---@field backoff? number factor applied to the interval after each check (default 1)
---@field max_interval? number cap for the interval (default 60)

---@alias runbook.VarType "string"|"number"|"integer"|"boolean"|"list"|"secret"

---@class runbook.VarSpec
---@field type? runbook.VarType default "string"
---@field default? any
---@field required? boolean
---@field desc? string shown in errors and `runbook check`
---@field choices? any[] the allowed values
---@field env? string environment variable of a secret (default: the name in upper case)

--- Groups steps under a name; phases do not nest.
---@param name string
---@param fn fun()
function runbook.phase(name, fn) end

--- Runs fn once per run (once across resumes: a finished step is skipped on
--- --resume and returns its recorded result). Its result must be plain data
--- (it is journaled as JSON). Raises `step_failed` after running the undos.
---@param name string
---@param fn fun():any
---@param opts? runbook.StepOpts
---@return any result
function runbook.step(name, fn, opts) end

--- Polls check() until it returns a truthy value (and an observation);
--- never skipped on resume. A check that raises counts as "not yet"; one
--- that calls runbook.fatal fails the gate at once.
---@param name string
---@param check fun():(any, any)
---@param opts? runbook.GateOpts
---@return any value the check's truthy value
function runbook.gate(name, check, opts) end

--- Whether the step with this key finished in the run being resumed (false
--- in a fresh run and in a dry-run).
---@param key string
---@return boolean
function runbook.is_done(key) end

--- Stops the run here on purpose: exit 0, nothing undone, the journal left
--- open so that --resume (same variables) continues after the last step.
---@param reason string
function runbook.pause(reason) end

--- Names the cluster this run changes: the lock is the cluster's (every
--- runbook changing it excludes the others), taken at once (exit 4 naming
--- the holder). Call once, after rb.vars, before the first phase, step,
--- gate or confirmation. read_only: no lock, no journal.
---@param key string a stable name of the cluster
---@param opts? {read_only?: boolean}
function runbook.cluster(key, opts) end

--- Accepts everything done so far: a later failure no longer undoes it.
function runbook.commit() end

--- Every journal of the runbook `base` ("rollout") in this run's store,
--- newest first (the current one, then the archived runs): each
--- {where, records, finished}, or {where, why} when it cannot be read. The
--- store is --store (RUNBOOK_STORE) or the state directory; in a shared
--- store, the journals of this run's cluster (rb.cluster's key).
---@param base string a runbook's file name without .lua
---@return table[]
function runbook.journals(base) end

--- The shared store this run keeps its lock and journal in (--store,
--- RUNBOOK_STORE), or nil for the state directory.
---@return string?
function runbook.store() end

--- Whether this run resumes an earlier one (--resume).
---@return boolean
function runbook.resumed() end

---@class runbook.RollingOpts
---@field batch? integer items at once (default 1)
---@field max_failures? integer items that may fail, each undone alone, before the run stops (default 0)
---@field name? fun(item:any):string the item's name in events and the report
---@field before? fun(batch:any[], b:integer, n:integer) before each batch
---@field after? fun(batch:any[], b:integer, n:integer) after a batch whose items all finished

---@class runbook.RollingFailure
---@field item any
---@field name string
---@field error string
---@field undone string[]

--- Runs fn(item, index) for every item, `batch` at a time, concurrently
--- within a batch; a failed item undoes only its own steps. Past
--- max_failures the run stops once the batch in flight ended.
---@param name string
---@param items any[]
---@param fn fun(item:any, index:integer)
---@param opts? runbook.RollingOpts
---@return {done: any[], failed: runbook.RollingFailure[]}
function runbook.rolling(name, items, fn, opts) end

--- From a gate check: fail the gate at once (waiting cannot fix this).
---@param msg string
function runbook.fatal(msg) end

--- Asks the operator (--yes answers yes; a dry-run assumes yes; no terminal
--- and no --yes stops with exit 2). A "no" stops the run, undoing nothing.
---@param question string
---@return true
function runbook.confirm(question) end

--- Adds a section to the report: Markdown text, or a table of key/value rows.
---@param title string
---@param body string|table
function runbook.report(title, body) end

--- Declares the runbook's variables and returns their values (exit 2 on an
--- unknown, missing or ill-typed one). Secrets come from the environment
--- or --var NAME_file=PATH, never from the command line.
---@param specs table<string, runbook.VarSpec>
---@return table<string, any>
function runbook.vars(specs) end

--- "1.5s", "2m05s", "1h03m".
---@param secs number
---@return string
function runbook.duration(secs) end

return runbook

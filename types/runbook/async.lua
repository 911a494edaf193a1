---@meta runbook.async
local async = {}

---@class runbook.Task
local Task = {}
--- The task's results, or raises its error (waits).
---@return any ...
function Task:wait() end
--- Stops the task; true if it was still running.
---@return boolean
function Task:cancel() end
---@return "ready"|"running"|"waiting"|"done"|"failed"|"cancelled"
function Task:status() end
--- For a finished task: true, results... or false, err.
---@return boolean ok, any ...
function Task:result() end
---@return integer
function Task:id() end

---@param fn function
---@return runbook.Task
function async.spawn(fn, ...) end

---@param name string shown in errors and events
---@param fn function
---@return runbook.Task
function async.spawn_named(name, fn, ...) end

---@return runbook.Task?
function async.current() end

--- Index of the first finished task (does not raise its error).
---@param tasks runbook.Task[]
---@return integer
function async.wait_any(tasks) end

--- Runs functions (or waits on tasks) concurrently; their first results in
--- order. The first failure cancels the others and is raised.
---@param list (function|runbook.Task)[]
---@return any[]
function async.all(list) end

---@class runbook.async.MapOpts
---@field concurrency? integer at most this many at once (default: all)

---@param list any[]
---@param fn fun(item:any, index:integer):any
---@param opts? runbook.async.MapOpts
---@return any[]
function async.map(list, fn, opts) end

--- The first to finish wins; the others are cancelled.
---@param list (function|runbook.Task)[]
---@return any ...
function async.race(list) end

--- Runs fn(...) in a task; after seconds it is cancelled and a `timeout` error raised.
---@param seconds number
---@param fn function
---@return any ...
function async.timeout(seconds, fn, ...) end

---@class runbook.async.WaitOpts
---@field timeout? number seconds (default 60)
---@field interval? number seconds between polls (default 1)
---@field backoff? number factor applied to the interval (default 1)
---@field max_interval? number (default 60)
---@field desc? string what is awaited, for the timeout message

--- Polls pred() until truthy; raises `timeout` (fields polls, last).
---@param pred fun():(any, any)
---@param opts? runbook.async.WaitOpts
---@return any value, integer polls
function async.wait_until(pred, opts) end

---@param seconds number
function async.sleep(seconds) end

return async

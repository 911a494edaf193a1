--- runbook.async: tasks and the combinators that wait on them.
--- spawn/current/wait_any come from C (runbook.async.core); the rest is
--- built on them here. Every function that waits must run inside a task.
local args = require "runbook.args"
local core = require "runbook.async.core"
local time = require "runbook.time"
local errors = require "runbook.error"

local M = {}

local spawn, wait_any, sleep = core.spawn, core.wait_any, time.sleep
local pack, unpack = table.pack, table.unpack

M.spawn = spawn
M.spawn_named = core.spawn_named
M.current = core.current
M.wait_any = wait_any
M.sleep = sleep

local function is_cancel(err)
  return errors.is(err, "cancelled")
end

--- Cancels every task in `tasks` that is still running and waits until
--- each has unwound (its cleanup ran). Errors of those tasks are dropped.
local function cancel_and_drain(tasks)
  for _, t in ipairs(tasks) do t:cancel() end
  for _, t in ipairs(tasks) do pcall(t.wait, t) end
end

local function as_tasks(list, fname)
  if type(list) ~= "table" then args.error(1, fname, "table expected, got " .. type(list), 4) end
  local tasks = {}
  for i, v in ipairs(list) do
    if type(v) == "function" then tasks[i] = spawn(v)
    elseif getmetatable(v) and type(v.wait) == "function" then tasks[i] = v
    else
      args.error(1, fname, ("item %d is neither a function nor a task"):format(i), 4)
    end
  end
  return tasks
end

--- Runs functions (or waits on tasks) concurrently and returns a list of
--- their first results, in order. The first failure cancels the others,
--- waits for them to unwind, and is raised.
---@param list (function|userdata)[]
---@return any[]
function M.all(list)
  local tasks = as_tasks(list, "all")
  local results, left = {}, {}
  for i = 1, #tasks do left[i] = tasks[i] end
  while #left > 0 do
    local ok, err = pcall(wait_any, left)
    if not ok then             -- we were cancelled: take our children with us
      cancel_and_drain(tasks)
      error(err, 0)
    end
    -- every task finished by now leaves the list in one pass (each wait
    -- costs the length of the list: one task a wait made `all` of 1,000
    -- tasks quadratic); the first failure in list order is raised, as
    -- wait_any's first finished task was
    local still, failed = {}, nil
    for _, t in ipairs(left) do
      local st = t:status()
      if failed == nil and (st == "done" or st == "failed" or st == "cancelled") then
        local res = pack(t:result())
        if not res[1] then failed = res[2] end
      else
        still[#still + 1] = t
      end
    end
    left = still
    if failed ~= nil then
      cancel_and_drain(left)
      error(failed, 0)
    end
  end
  for i, t in ipairs(tasks) do
    local res = pack(t:result())
    results[i] = res[2]
  end
  return results
end

---@class runbook.async.MapOpts
---@field concurrency? integer how many calls run at once (default: all)

--- Calls fn(item, index) for every item, at most `concurrency` at a time,
--- and returns the results in the order of `list`.
---@param list any[]
---@param fn fun(item:any, index:integer):any
---@param opts? runbook.async.MapOpts
function M.map(list, fn, opts)
  args.check(1, "map", list, "table")
  args.check(2, "map", fn, "function")
  local n = #list
  local conc = opts and opts.concurrency or n
  args.expect(math.type(conc) == "integer" and conc >= 1, 3, "map", "concurrency must be an integer >= 1")
  local results, next_i = {}, 1
  local function worker()
    while next_i <= n do
      local i = next_i
      next_i = i + 1
      results[i] = fn(list[i], i)
    end
  end
  local workers = {}
  for w = 1, math.min(conc, n) do workers[w] = worker end
  if #workers > 0 then M.all(workers) end
  return results
end

--- Runs functions concurrently; the first to finish wins: its results are
--- returned (or its error raised) and the others are cancelled.
function M.race(list)
  local tasks = as_tasks(list, "race")
  if #tasks == 0 then args.error(1, "race", "empty list") end
  local ok, idx = pcall(wait_any, tasks)
  if not ok then
    cancel_and_drain(tasks)
    error(idx, 0)
  end
  local winner = tasks[idx]
  local others = {}
  for i, t in ipairs(tasks) do if i ~= idx then others[#others + 1] = t end end
  cancel_and_drain(others)
  local res = pack(winner:result())
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, res.n)
end

--- Calls fn(...) in a task and waits at most `secs` seconds for it. On
--- timeout the task is cancelled (its cleanup runs) and an error of kind
--- "timeout" is raised.
function M.timeout(secs, fn, ...)
  if type(secs) ~= "number" or secs < 0 then
    args.error(1, "timeout", "number >= 0 expected")
  end
  args.check(2, "timeout", fn, "function")
  local work = spawn(fn, ...)
  core.deadline(work, secs) -- stops it even if it never waits (a busy loop)
  local fired = false
  local guard = spawn(function()
    sleep(secs)
    fired = true
    work:cancel()
  end)
  local res = pack(pcall(work.wait, work))
  guard:cancel()
  if not res[1] and work:status() ~= "done" and work:status() ~= "failed"
     and work:status() ~= "cancelled" then
    -- we ourselves were cancelled while waiting
    cancel_and_drain({work})
    error(res[2], 0)
  end
  if res[1] then return unpack(res, 2, res.n) end
  if fired and is_cancel(res[2]) then
    error(errors.new("timeout", ("timed out after %gs"):format(secs), {seconds = secs}), 2)
  end
  error(res[2], 0)
end

---@class runbook.async.WaitOpts
---@field timeout? number seconds before giving up (default 60)
---@field interval? number seconds between polls (default 1)
---@field backoff? number factor applied to the interval after each poll (default 1)
---@field max_interval? number cap for the interval (default 60)
---@field desc? string what is awaited, for the error message

--- Polls pred() until it returns a truthy value, which is returned. pred
--- may return a second value, an observation, quoted in the timeout error.
function M.wait_until(pred, opts)
  args.check(1, "wait_until", pred, "function")
  opts = opts or {}
  local timeout = opts.timeout or 60
  local interval = opts.interval or 1
  local backoff = opts.backoff or 1
  local max_interval = opts.max_interval or 60
  args.expect(interval > 0, 2, "wait_until", "interval must be > 0")
  local start = time.monotonic()
  local polls, last = 0
  while true do
    local v, obs = pred()
    polls = polls + 1
    if v then return v, polls end
    last = obs
    local elapsed = time.monotonic() - start
    if elapsed >= timeout then
      local what = opts.desc or "condition"
      local msg = ("%s not met after %gs (%d polls)"):format(what, timeout, polls)
      if last ~= nil then msg = msg .. "; last observation: " .. tostring(last) end
      error(errors.new("timeout", msg, {polls = polls, last = last}), 2)
    end
    sleep(math.min(interval, timeout - elapsed))
    interval = math.min(interval * backoff, max_interval)
  end
end

return M

--! dry-run
-- runbook.async and runbook.time on the virtual clock.
local async = require "runbook.async"
local time = require "runbook.time"
local errors = require "runbook.error"
local t = require "runbook.testing"

function test_sleep_advances_virtual_clock_exactly()
  local t0 = time.monotonic()
  time.sleep(90)
  t.eq(time.monotonic() - t0, 90.0)
  t.truthy(time.is_virtual())
end

function test_all_runs_concurrently_and_keeps_order()
  local t0 = time.monotonic()
  local r = async.all{
    function() time.sleep(3); return "slow" end,
    function() time.sleep(1); return "fast" end,
  }
  t.eq(r, {"slow", "fast"})
  t.eq(time.monotonic() - t0, 3.0)   -- concurrent: the longest, not the sum
end

function test_all_cancels_siblings_on_first_failure()
  local cleaned = false
  local err = t.raises("boom", async.all, {
    function() time.sleep(1); error("boom") end,
    function()
      local _ <close> = setmetatable({}, {__close = function() cleaned = true end})
      time.sleep(100)
    end,
  })
  t.truthy(cleaned, "the sibling's to-be-closed cleanup ran")
  t.truthy(err.traceback, "the error carries the failing task's traceback")
  t.match(err.traceback, "test_async.lua")
end

-- many tasks finishing at one instant leave the wait together; of two
-- that fail at once the first in the list is raised, the rest cancelled
function test_all_of_many_tasks_finishing_together()
  local list = {}
  for i = 1, 500 do list[i] = function() time.sleep(i % 5); return i end end
  local r = async.all(list)
  t.eq(#r, 500); t.eq(r[1], 1); t.eq(r[250], 250); t.eq(r[500], 500)
  local late = false
  t.raises("first of two", async.all, {
    function() time.sleep(1); return 1 end,
    function() time.sleep(2); error("first of two") end,
    function() time.sleep(2); error("second of two") end,
    function() time.sleep(9); late = true end,
  })
  t.eq(late, false)
end

function test_map_respects_concurrency()
  local running, peak = 0, 0
  local r = async.map({1, 2, 3, 4, 5, 6}, function(x)
    running = running + 1
    peak = math.max(peak, running)
    time.sleep(1)
    running = running - 1
    return x * 10
  end, {concurrency = 2})
  t.eq(r, {10, 20, 30, 40, 50, 60})
  t.eq(peak, 2)
  t.raises("concurrency", async.map, {1}, function() end, {concurrency = 0})
end

function test_race_returns_first_and_cancels_rest()
  local loser_finished = false
  local v = async.race{
    function() time.sleep(5); loser_finished = true; return "late" end,
    function() time.sleep(2); return "early" end,
  }
  t.eq(v, "early")
  time.sleep(10)
  t.eq(loser_finished, false)
end

function test_timeout_raises_timeout_kind_and_cancels_work()
  local after = false
  local err = t.raises(async.timeout, 2, function() time.sleep(10); after = true end)
  t.truthy(errors.is(err, "timeout"))
  t.match(tostring(err), "timed out after 2s")
  time.sleep(20)
  t.eq(after, false)
  t.eq(async.timeout(5, function(a, b) return a + b end, 1, 2), 3)
end

function test_wait_until_polls_with_backoff_and_reports_last_observation()
  local polls = 0
  local t0 = time.monotonic()
  local v = async.wait_until(function()
    polls = polls + 1
    return polls == 4 and "ready", "poll " .. polls
  end, {interval = 1, backoff = 2})
  t.eq(v, "ready")
  t.eq(time.monotonic() - t0, 7.0)     -- waits 1 + 2 + 4
  local err = t.raises(async.wait_until, function() return false, "NotReady" end,
                       {timeout = 10, interval = 3, desc = "node k8s-1 Ready"})
  t.truthy(errors.is(err, "timeout"))
  t.match(tostring(err), "node k8s%-1 Ready not met after 10s")
  t.match(tostring(err), "last observation: NotReady")
end

function test_task_wait_propagates_error_with_traceback()
  local task = async.spawn(function() local x = nil; return x.field end)
  local err = t.raises("attempt to index", task.wait, task)
  t.match(err.traceback, "test_async.lua")
  t.eq(task:status(), "failed")
end

function test_cancel_stops_a_sleeping_task()
  local task = async.spawn(function() time.sleep(1000); return "woke" end)
  time.sleep(1)
  t.eq(task:status(), "waiting")
  t.truthy(task:cancel())
  local err = t.raises(task.wait, task)
  t.truthy(errors.is(err, "cancelled"))
  t.eq(task:status(), "cancelled")
  t.eq(task:cancel(), false)     -- cancelling a finished task does nothing
end

function test_cancel_before_start_never_runs()
  local ran = false
  local task = async.spawn(function() ran = true end)
  task:cancel()
  time.sleep(1)
  t.eq(ran, false)
end

function test_wait_in_nested_coroutine_is_a_clear_error()
  local co = coroutine.wrap(function() time.sleep(1) end)
  t.raises("nested coroutine", co)
  local task = async.spawn(time.sleep, 1)
  t.raises("nested coroutine", coroutine.wrap(function() return task:wait() end))
  task:wait()
end

function test_bad_arguments_name_the_argument()
  t.raises("bad argument #1 to '[%w.]*sleep' %(expected seconds from 0 to 1e9%)", time.sleep, -1)
  -- #30.7: bounded, not converted past what an integer holds (llround)
  t.raises("bad argument #1 to '[%w.]*sleep' %(expected seconds from 0 to 1e9%)", time.sleep, 1e300)
  t.raises("bad argument #1 to '[%w.]*sleep' %(expected seconds from 0 to 1e9%)", time.sleep, math.huge)
  t.raises("bad argument #1 to '[%w.]*sleep' %(number expected, got string%)", time.sleep, "x")
  t.raises("bad argument #1 to 'all'", async.all, 5)
  t.raises("bad argument #2 to 'timeout'", async.timeout, 1, 2)
end

function test_same_timeline_every_time()
  local log = {}
  local t0 = time.monotonic()
  async.all{
    function() for i = 1, 3 do time.sleep(1.5); log[#log + 1] = "a" .. (time.monotonic() - t0) end end,
    function() for i = 1, 3 do time.sleep(1.0); log[#log + 1] = "b" .. (time.monotonic() - t0) end end,
  }
  t.eq(table.concat(log, " "), "b1.0 a1.5 b2.0 a3.0 b3.0 a4.5")
  t.eq(time.iso(0), "1970-01-01T00:00:00Z")
end

-- max_interval caps the backoff: 1 s, then 10x capped at 5 s, so polls at
-- 0 1 6 11 16 21 26 30 (without the cap: 0 1 11 30)
function test_wait_until_max_interval_caps_the_backoff()
  local at, t0 = {}, time.monotonic()
  local err = t.raises(async.wait_until, function()
    at[#at + 1] = math.floor(time.monotonic() - t0 + 0.5)
    return false
  end, {timeout = 30, interval = 1, backoff = 10, max_interval = 5})
  t.eq(at, {0, 1, 6, 11, 16, 21, 26, 30})
  t.eq(err.polls, 8)
end

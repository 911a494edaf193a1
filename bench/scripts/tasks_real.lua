-- 10,000 tasks that each sleep 1 s on the real clock.
local async = require "runbook.async"
local time = require "runbook.time"
local t0 = time.monotonic()
local ts = {}
for i = 1, 10000 do ts[i] = async.spawn(time.sleep, 1) end
for i = 1, #ts do ts[i]:wait() end
local wall = time.monotonic() - t0
io.write(("tasks_real: 10000 tasks slept 1s, wall %.3fs\n"):format(wall))
io.write(("row|10,000 tasks sleeping 1 s|%.3f s|the floor|1.000 s|%.3fx\n"):format(wall, wall))

-- 10,000 tasks that each sleep 1 hour on the virtual clock (--dry-run).
local async = require "runbook.async"
local time = require "runbook.time"
local n0 = time.now()
local ts = {}
for i = 1, 10000 do ts[i] = async.spawn(time.sleep, 3600) end
for i = 1, #ts do ts[i]:wait() end
io.write(("tasks_virtual: time.now() advanced %.0fs\n"):format(time.now() - n0))

-- 1,000 runs of /bin/true, 32 at a time; prints wall seconds.
local async = require "runbook.async"
local exec = require "runbook.exec"
local time = require "runbook.time"
local n = tonumber(os.getenv("N") or "1000")
local list = {}
for i = 1, n do list[i] = i end
local t0 = time.monotonic()
async.map(list, function() exec.run({"/bin/true"}, {quiet = true}) end, {concurrency = 32})
io.write(("%.4f\n"):format(time.monotonic() - t0))

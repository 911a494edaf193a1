-- N GETs of a small body, 64 in flight; prints wall seconds.
local async = require "runbook.async"
local http = require "runbook.http"
local time = require "runbook.time"
local n = tonumber(os.getenv("N") or "10000")
local url = os.getenv("URL")
local list = {}
for i = 1, n do list[i] = i end
local t0 = time.monotonic()
local bad = 0
async.map(list, function() if http.get(url).status ~= 200 then bad = bad + 1 end end, {concurrency = 64})
assert(bad == 0, bad .. " failed")
io.write(("%.4f\n"):format(time.monotonic() - t0))

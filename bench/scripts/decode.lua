-- Best-of-N decode time of a YAML and a JSON file, printed as seconds.
local yaml = require "runbook.yaml"
local json = require "runbook.json"
local time = require "runbook.time"
local function slurp(p) local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s end
local y, j = slurp(os.getenv("BENCH_YAML")), slurp(os.getenv("BENCH_JSON"))
local runs = tonumber(os.getenv("RUNS") or "5")
local function best(fn, s)
  local b = math.huge
  for _ = 1, runs do
    collectgarbage()
    local t0 = time.monotonic()
    fn(s)
    b = math.min(b, time.monotonic() - t0)
  end
  return b
end
io.write(("%.4f %.4f\n"):format(best(yaml.decode, y), best(json.decode, j)))

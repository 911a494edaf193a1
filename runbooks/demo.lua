-- Demo: tasks, waits and a gate-like poll; rehearse it with --dry-run
-- (virtual clock: the 45 simulated minutes take milliseconds).
local async = require "runbook.async"
local time = require "runbook.time"
local events = require "runbook.events"

local function say(fmt, ...)
  events.emit{type = "log", level = "info", msg = fmt:format(...)}
end

local nodes = {"k8s-1", "k8s-2", "k8s-3"}

say("checking %d nodes at once", #nodes)
local uptimes = async.map(nodes, function(node, i)
  time.sleep(2 * i)                      -- a probe that takes a while
  say("%s answered after %ds", node, 2 * i)
  return 100 * i
end)
say("all nodes answered; uptimes %s", table.concat(uptimes, ", "))

for _, node in ipairs(nodes) do
  say("upgrading %s (simulated 15 minutes)", node)
  local booted_at = time.monotonic() + 15 * 60
  async.wait_until(function()
    local up = time.monotonic() >= booted_at
    return up, up and "up" or "rebooting"
  end, {timeout = 20 * 60, interval = 30, desc = node .. " back"})
  say("%s is back", node)
end

local ok, err = pcall(async.timeout, 5, function() time.sleep(60) end)
say("a wait bounded by a timeout: %s", ok and "finished" or tostring(err))
say("virtual time elapsed: %.0f minutes", time.monotonic() / 60)

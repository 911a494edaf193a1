--- runbook.log: leveled, structured log lines. Every line is an event
--- (type "log"), so the text view, JSON output and the log file all see it.
local events = require "runbook.events"

local M = {}

local function logger(level)
  return function(msg, fields)
    if type(msg) ~= "string" then msg = tostring(msg) end
    if fields ~= nil and type(fields) ~= "table" then
      error(("bad argument #2 to '%s' (table expected, got %s)"):format(level, type(fields)), 2)
    end
    events.emit{type = "log", level = level, msg = msg, fields = fields}
  end
end

M.debug = logger("debug")
M.info = logger("info")
M.warn = logger("warn")
M.error = logger("error")

return M

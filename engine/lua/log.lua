--- runbook.log: leveled, structured log lines. Every line is an event
--- (type "log"), so the text view, JSON output and the log file all see it.
local args = require "runbook.args"
local events = require "runbook.events"

local M = {}

local function logger(level)
  return function(msg, fields)
    if type(msg) ~= "string" then msg = tostring(msg) end
    args.check(2, level, fields, "?table")
    events.emit{type = "log", level = level, msg = msg, fields = fields}
  end
end

M.debug = logger("debug")
M.info = logger("info")
M.warn = logger("warn")
M.error = logger("error")

return M

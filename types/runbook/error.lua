---@meta runbook.error

--- An error object: prints as "kind: message" (just the message for kind "error").
---@class runbook.Error
---@field kind string error, cancelled, timeout, deadlock, yaml, json, spawn, exit, http, dns, connect, tls, http_status, fs, secret, net, usage, locked, step_failed, declined, fatal, dry_run
---@field message string
---@field traceback? string where it was raised (errors raised inside a task)
---@field line? integer yaml/json: the line of the problem
---@field column? integer yaml/json: its column
---@field exit? integer the exit code a run ends with (usage: 2, locked: 4)

local error = {}

---@param kind string
---@param message string
---@param fields? table copied into the error object
---@return runbook.Error
function error.new(kind, message, fields) end

--- Whether v is an error object (of that kind).
---@param v any
---@param kind? string
---@return boolean
function error.is(v, kind) end

return error

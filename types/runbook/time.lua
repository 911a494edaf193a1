---@meta runbook.time
local time = {}

--- Wall-clock epoch seconds; virtual in a dry-run (from 2026-01-01T00:00:00Z).
---@return number
function time.now() end

--- Seconds since the run started; virtual in a dry-run.
---@return number
function time.monotonic() end

--- Suspends the task (waits: inside a task only).
---@param seconds number >= 0, fractions allowed
function time.sleep(seconds) end

--- "2026-01-01T00:00:00Z" for epoch seconds t (default now()).
---@param t? number
---@return string
function time.iso(t) end

--- True on the virtual clock (--dry-run).
---@return boolean
function time.is_virtual() end

return time

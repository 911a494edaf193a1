---@meta runbook.log
local log = {}
---@param msg any
---@param fields? table shown as key=value (an object in JSON)
function log.debug(msg, fields) end
---@param msg any
---@param fields? table
function log.info(msg, fields) end
---@param msg any
---@param fields? table
function log.warn(msg, fields) end
---@param msg any
---@param fields? table
function log.error(msg, fields) end
return log

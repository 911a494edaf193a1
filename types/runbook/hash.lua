---@meta runbook.hash
local hash = {}
---@param data string
---@return string lowercase hex
function hash.sha256(data) end
return hash

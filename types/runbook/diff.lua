---@meta runbook.diff
local diff = {}
--- A unified diff ("" when equal); nil means the file does not exist.
---@param old string?
---@param new string?
---@param path? string
---@param context? integer default 3
---@return string
function diff.unified(old, new, path, context) end
return diff

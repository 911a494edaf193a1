---@meta runbook.hash
local hash = {}
---@param data string
---@return string lowercase hex
function hash.sha256(data) end

--- HMAC-SHA256 (RFC 2104) of data under key, lowercase hex (libcrypto's HMAC).
---@param key string
---@param data string
---@return string
function hash.hmac_sha256(key, data) end
return hash

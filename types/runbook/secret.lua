---@meta runbook.secret
local secret = {}

--- A value masked (as ***) in every sink from the moment it exists.
---@class runbook.Secret
local Secret = {}
--- The value, for exec env/stdin, an HTTP header or body, or a file that must hold it.
---@return string
function Secret:reveal() end
---@return string
function Secret:label() end

---@param value string non-empty
---@param label? string
---@return runbook.Secret
function secret.new(value, label) end

--- From an environment variable (error `secret` when unset or empty).
---@param name string
---@param label? string
---@return runbook.Secret
function secret.env(name, label) end

--- A file's content without trailing newlines.
---@param path string
---@param label? string
---@return runbook.Secret
function secret.file(path, label) end

---@param v any
---@return boolean
function secret.is(v) end

return secret

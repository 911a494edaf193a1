---@meta runbook.json
local json = {}

json.null = nil ---@type lightuserdata

--- One JSON value. Errors: json (fields line, column).
---@param text string
---@param opts? {name?: string}
---@return any
function json.decode(text, opts) end

--- Every value of a stream of concatenated values.
---@param text string
---@param opts? {name?: string}
---@return any[]
function json.decode_all(text, opts) end

---@param value any
---@param opts? {pretty?: boolean, sort_keys?: boolean, indent?: integer}
---@return string
function json.encode(value, opts) end

---@generic T: table
---@param t? T
---@return T
function json.array(t) end

---@generic T: table
---@param t? T
---@return T
function json.map(t) end

return json

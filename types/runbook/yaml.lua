---@meta runbook.yaml
local yaml = {}

---@class runbook.yaml.Opts
---@field name? string shown in errors (file:line:col)

--- The null value (the same as json.null).
yaml.null = nil ---@type lightuserdata

--- One document (nil for an empty stream). Errors: yaml (fields line, column).
---@param text string
---@param opts? runbook.yaml.Opts
---@return any
function yaml.decode(text, opts) end

---@param text string
---@param opts? runbook.yaml.Opts
---@return any[]
function yaml.decode_all(text, opts) end

---@param value any
---@param opts? {indent?: integer}
---@return string
function yaml.encode(value, opts) end

---@param list any[]
---@param opts? {indent?: integer}
---@return string
function yaml.encode_all(list, opts) end

--- The text with only the value at path changed (docs/bindings.md); UTF-8
--- text; a refusal names `opts.name:line:column` (also its `line`, `column`).
---@param text string
---@param path (string|integer)[] map keys and 1-based indexes
---@param value any
---@param opts? runbook.yaml.Opts
---@return string
function yaml.edit(text, path, value, opts) end

---@generic T: table
---@param t? T
---@return T
function yaml.array(t) end

---@generic T: table
---@param t? T
---@return T
function yaml.map(t) end

---@generic T: table
---@param t T
---@param keys string[]
---@return T
function yaml.order(t, keys) end

return yaml

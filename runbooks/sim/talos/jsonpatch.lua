--- RFC 6902 JSON patches as Talos applies them: github.com/evanphx/json-patch
--- v5.9.11+incompatible, its root package (the v4 API; patch.go), which
--- talosctl and talhelper reach through pkg/machinery/config/configpatcher
--- (json6902.go, siderolabs/talos v1.8.0 to v1.13.0). Its own leniencies are
--- kept: `replace` of a missing object key adds it, `test` of a missing key
--- against null passes, negative array indexes count from the end
--- (SupportNegativeIndices = true), `move` names the source key, not its path,
--- in its error. Errors read as patch.go words them, with the wrapped
--- sentinel ("missing value", "invalid index referenced", "test failed").
local yaml = require "runbook.yaml"

local M = {}

local MISSING, BADINDEX, TESTFAILED = "missing value", "invalid index referenced", "test failed"

local function is_list(v)
  if type(v) ~= "table" then return false end
  local mt = getmetatable(v)
  if mt and mt.__runbook_shape == "seq" then return true end
  if mt and mt.__runbook_shape == "map" then return false end
  return rawget(v, 1) ~= nil
end
M.is_list = is_list

local function is_map(v)
  return type(v) == "table" and v ~= yaml.null and not is_list(v)
end

--- A deep copy that keeps the yaml/json marks (key order, sequence shape).
local function copy(v)
  if type(v) ~= "table" or v == yaml.null then return v end
  local out = {}
  if is_list(v) then
    for i, x in ipairs(v) do out[i] = copy(x) end
    return yaml.array(out)
  end
  for k, x in pairs(v) do out[k] = copy(x) end
  local mt = getmetatable(v)
  if mt and mt[1] ~= nil then
    local keys = {}
    for i, k in ipairs(mt) do keys[i] = k end
    return yaml.order(out, keys)
  end
  return yaml.map(out)
end
M.copy = copy

--- JSON equality: numbers by value (1 equals 1.0, as Go's float64 decode
--- makes them), maps by keys, lists by order.
local function equal(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" or a == yaml.null or b == yaml.null then return false end
  if is_list(a) ~= is_list(b) then return false end
  if is_list(a) then
    if #a ~= #b then return false end
    for i = 1, #a do if not equal(a[i], b[i]) then return false end end
    return true
  end
  for k, v in pairs(a) do if not equal(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
M.equal = equal

local function decode_key(k)
  return (k:gsub("~1", "/"):gsub("~0", "~"))
end

-- strconv.Atoi: optional sign, decimal digits.
local function atoi(key)
  if type(key) ~= "string" or not key:match("^[+-]?%d+$") then return nil end
  return math.tointeger(tonumber(key))
end

-- partialArray index rules (negative counts from the end); nil, err when invalid.
local function array_index(ary, key, size)
  local idx = atoi(key)
  if not idx then return nil, string.format("strconv.Atoi: parsing %q: invalid syntax", key) end
  if idx < 0 then
    if idx < -size then return nil, string.format("Unable to access invalid index: %d: %s", idx, BADINDEX) end
    idx = idx + size
  end
  if ary and idx >= #ary then return nil, string.format("Unable to access invalid index: %d: %s", idx, BADINDEX) end
  return idx
end

local function get(con, key)
  if is_list(con) then
    local idx, err = array_index(con, key, #con)
    if not idx then return nil, err end
    return con[idx + 1]
  end
  return con[key]
end

-- findObject: the container holding the pointer's last token, and that token.
local function find_object(doc, path)
  if type(path) ~= "string" then return nil end
  local split = {}
  for part in (path .. "/"):gmatch("(.-)/") do split[#split + 1] = part end
  if #split < 2 then return nil end
  local con = doc
  for i = 2, #split - 1 do
    local nxt, err = get(con, decode_key(split[i]))
    if nxt == nil or err or nxt == yaml.null or type(nxt) ~= "table" then return nil end
    con = nxt
  end
  return con, decode_key(split[#split])
end

local function add(con, key, val)
  if not is_list(con) then con[key] = val; return nil end
  if key == "-" then con[#con + 1] = val; return nil end
  local idx = atoi(key)
  if not idx then
    return string.format("value was not a proper array index: '%s': strconv.Atoi: parsing %q: invalid syntax", key, key)
  end
  local size = #con + 1
  if idx >= size then return string.format("Unable to access invalid index: %d: %s", idx, BADINDEX) end
  if idx < 0 then
    if idx < -size then return string.format("Unable to access invalid index: %d: %s", idx, BADINDEX) end
    idx = idx + size
  end
  table.insert(con, idx + 1, val)
  return nil
end

local function remove(con, key)
  if not is_list(con) then
    if con[key] == nil then return string.format("Unable to remove nonexistent key: %s: %s", key, MISSING) end
    con[key] = nil
    return nil
  end
  local idx, err = array_index(con, key, #con)
  if not idx then return err end
  table.remove(con, idx + 1)
  return nil
end

local function str_field(op, name)
  local v = op[name]
  if v == nil or v == yaml.null then return nil, "missing" end
  if type(v) ~= "string" then
    return nil, string.format("json: cannot unmarshal %s into Go value of type string",
                              type(v) == "table" and (is_list(v) and "array" or "object") or type(v))
  end
  return v
end

local function path_of(op)
  local p, why = str_field(op, "path")
  if p then return p end
  return nil, why == "missing" and ("operation missing path field: " .. MISSING) or why
end

local function from_of(op)
  local p, why = str_field(op, "from")
  if p then return p end
  return nil, why == "missing" and ("operation, missing from field: " .. MISSING) or why
end

local function value_of(op)
  local v = op.value
  if v == nil then return yaml.null end
  return copy(v)
end

local ops = {}

function ops.add(doc, op)
  local path = path_of(op)
  if not path then return doc, "add operation failed to decode path: " .. MISSING end
  local con, key = find_object(doc, path)
  if not con then return doc, string.format("add operation does not apply: doc is missing path: \"%s\": %s", path, MISSING) end
  local err = add(con, key, value_of(op))
  if err then return doc, string.format("error in add for path: '%s': %s", path, err) end
  return doc
end

function ops.remove(doc, op)
  local path = path_of(op)
  if not path then return doc, "remove operation failed to decode path: " .. MISSING end
  local con, key = find_object(doc, path)
  if not con then
    return doc, string.format("remove operation does not apply: doc is missing path: \"%s\": %s", path, MISSING)
  end
  local err = remove(con, key)
  if err then return doc, string.format("error in remove for path: '%s': %s", path, err) end
  return doc
end

function ops.replace(doc, op)
  local path, perr = path_of(op)
  if not path then return doc, "replace operation failed to decode path: " .. perr end
  if path == "" then
    local v = value_of(op)
    if type(v) ~= "table" or v == yaml.null then
      return doc, "replace operation value must be object or array: %!w(<nil>)"
    end
    return v
  end
  local con, key = find_object(doc, path)
  if not con then return doc, string.format("replace operation does not apply: doc is missing path: %s: %s", path, MISSING) end
  local _, gerr = get(con, key)
  if gerr then return doc, string.format("replace operation does not apply: doc is missing key: %s: %s", path, MISSING) end
  if is_list(con) then con[array_index(con, key, #con) + 1] = value_of(op) else con[key] = value_of(op) end
  return doc
end

function ops.move(doc, op)
  local from, ferr = from_of(op)
  if not from then return doc, "move operation failed to decode from: " .. ferr end
  local con, key = find_object(doc, from)
  if not con then
    return doc, string.format("move operation does not apply: doc is missing from path: %s: %s", from, MISSING)
  end
  local val, gerr = get(con, key)
  if gerr then return doc, string.format("error in move for path: '%s': %s", key, gerr) end
  local rerr = remove(con, key)
  if rerr then return doc, string.format("error in move for path: '%s': %s", key, rerr) end
  local path, perr = path_of(op)
  if not path then return doc, "move operation failed to decode path: " .. perr end
  local dst, dkey = find_object(doc, path)
  if not dst then
    return doc, string.format("move operation does not apply: doc is missing destination path: %s: %s", path, MISSING)
  end
  local aerr = add(dst, dkey, val == nil and yaml.null or val)
  if aerr then return doc, string.format("error in move for path: '%s': %s", path, aerr) end
  return doc
end

function ops.test(doc, op)
  local path, perr = path_of(op)
  if not path then return doc, "test operation failed to decode path: " .. perr end
  local failed = string.format("testing value %s failed: %s", path, TESTFAILED)
  if path == "" then return doc, not equal(doc, value_of(op)) and failed or nil end
  local con, key = find_object(doc, path)
  if not con then return doc, string.format("test operation does not apply: is missing path: %s: %s", path, MISSING) end
  local val, gerr = get(con, key)
  if gerr then return doc, string.format("error in test for path: '%s': %s", path, gerr) end
  -- a missing key and a null value are both Go's nil lazyNode; so is a JSON
  -- `"value": null` (a YAML-written null marshals to "null" and would fail: unconfirmed)
  local absent = op.value == nil or op.value == yaml.null
  if val == nil or val == yaml.null then return doc, not absent and failed or nil end
  if absent then return doc, failed end
  return doc, not equal(val, op.value) and failed or nil
end

function ops.copy(doc, op)
  local from, ferr = from_of(op)
  if not from then return doc, "copy operation failed to decode from: " .. ferr end
  local con, key = find_object(doc, from)
  if not con then
    return doc, string.format("copy operation does not apply: doc is missing from path: %s: %s", from, MISSING)
  end
  local val, gerr = get(con, key)
  if gerr then return doc, string.format("error in copy for from: '%s': %s", from, gerr) end
  local path = path_of(op)
  if not path then return doc, "copy operation failed to decode path: " .. MISSING end
  local dst, dkey = find_object(doc, path)
  if not dst then
    return doc, string.format("copy operation does not apply: doc is missing destination path: %s: %s", path, MISSING)
  end
  local aerr = add(dst, dkey, val == nil and yaml.null or copy(val))
  if aerr then return doc, "error while adding value during copy: " .. aerr end
  return doc
end

--- Applies the operations in order to a copy of doc (a decoded map or list).
--- Returns the new document, or nil and patch.go's error for the first
--- operation that fails (nothing is half-applied: the input is untouched).
---@param doc table
---@param operations table list of {op=, path=, from=, value=}
---@return table|nil, string|nil
function M.apply(doc, operations)
  local cur = copy(doc)
  for _, op in ipairs(operations) do
    local kind = type(op) == "table" and type(op.op) == "string" and op.op or "unknown"
    local f = ops[kind]
    if not f then return nil, "Unexpected kind: " .. kind end
    local err
    cur, err = f(cur, op)
    if err then return nil, err end
  end
  return cur
end

M.is_map = is_map
return M

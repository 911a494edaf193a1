--- runbook.testing: small assertion helpers for `runbook test` files.
local M = {}

local fmt = string.format

local function show(v, seen, depth)
  local tv = type(v)
  if tv == "string" then return fmt("%q", v) end
  if tv ~= "table" then return tostring(v) end
  local mt = getmetatable(v)
  if mt and mt.__tostring then return tostring(v) end
  seen = seen or {}
  if seen[v] then return "<cycle>" end
  if (depth or 0) > 6 then return "{...}" end
  seen[v] = true
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then return a < b end
    return type(a) < type(b)
  end)
  local buf = {}
  for _, k in ipairs(keys) do
    local ks = type(k) == "string" and k:match("^[%a_][%w_]*$") and k or "[" .. show(k) .. "]"
    buf[#buf + 1] = ks .. " = " .. show(v[k], seen, (depth or 0) + 1)
  end
  seen[v] = nil
  return "{" .. table.concat(buf, ", ") .. "}"
end
M.show = show

-- The metatable that matters for equality: the marks runbook.yaml and
-- runbook.json put on decoded tables (shape, key order) do not.
local function own_metatable(t)
  local mt = getmetatable(t)
  if type(mt) == "table" and rawget(mt, "__runbook_shape") ~= nil then return nil end
  return mt
end

-- Numbers are equal when their values and their subtypes are: integer 1
-- and float 1.0 differ at every depth (a decoder that gives 1.0 where the
-- document says 1 is a bug a test must see), and NaN equals NaN.
local function deep_eq(a, b)
  if type(a) == "number" and type(b) == "number" then
    if math.type(a) ~= math.type(b) then return false end
    return a == b or (a ~= a and b ~= b)
  end
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  if own_metatable(a) ~= own_metatable(b) then return false end
  for k, v in pairs(a) do if not deep_eq(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
M.deep_eq = deep_eq

--- Fails unless actual deep-equals expected (integer 1 ~= float 1.0 here).
function M.eq(actual, expected, msg)
  if not deep_eq(actual, expected) then
    error(fmt("%sexpected %s, got %s", msg and (msg .. ": ") or "", show(expected), show(actual)), 2)
  end
end

function M.truthy(v, msg)
  if not v then error((msg or "expected a truthy value") .. ", got " .. show(v), 2) end
  return v
end

--- Fails unless fn(...) raises; returns the error. `pattern` (optional)
--- must match tostring(err).
function M.raises(pattern, fn, ...)
  if type(pattern) == "function" then return M.raises(nil, pattern, fn, ...) end
  local ok, err = pcall(fn, ...)
  if ok then error("expected an error" .. (pattern and (" matching " .. show(pattern)) or ""), 2) end
  if pattern and not tostring(err):find(pattern) then
    error(fmt("error %s does not match %s", show(tostring(err)), show(pattern)), 2)
  end
  return err
end

function M.near(a, b, eps, msg)
  if type(a) ~= "number" or math.abs(a - b) > (eps or 1e-9) then
    error(fmt("%sexpected %s within %s of %s", msg and (msg .. ": ") or "", show(a), tostring(eps), show(b)), 2)
  end
end

function M.match(s, pattern, msg)
  if type(s) ~= "string" or not s:find(pattern) then
    error(fmt("%s%s does not match %s", msg and (msg .. ": ") or "", show(s), show(pattern)), 2)
  end
end

return M

--- runbook.args: the one way the engine's Lua modules report a bad
--- argument, worded as Lua's own luaL_argerror/luaL_typeerror do:
---   bad argument #2 to 'step' (function expected, got nil)
--- The error is raised at the caller of the checked function (level 3 from
--- here), so that the message points at the runbook's line.
local M = {}

local fmt = string.format

--- Raises "bad argument #n to 'fname' (msg)" at the caller of fname.
---@param n integer
---@param fname string
---@param msg string
---@param level? integer stack level of fname's caller (default 3: the caller of the checking function)
function M.error(n, fname, msg, level)
  error(fmt("bad argument #%d to '%s' (%s)", n, fname, msg), level or 3)
end

--- Checks type(v) == want ("table", "function", ...); "?want" allows nil.
---@return any v
function M.check(n, fname, v, want)
  local optional = want:sub(1, 1) == "?"
  if optional then
    want = want:sub(2)
    if v == nil then return v end
  end
  if type(v) ~= want then
    M.error(n, fname, fmt("%s expected, got %s", want, v == nil and "no value" or type(v)), 4)
  end
  return v
end

--- Checks a non-empty string (a name).
---@return string v
function M.name(n, fname, v)
  if type(v) ~= "string" or v == "" then
    M.error(n, fname, fmt("non-empty string expected, got %s", type(v) == "string" and "an empty string" or type(v)), 4)
  end
  return v
end

--- Raises unless cond holds, with msg as the reason (luaL_argcheck).
function M.expect(cond, n, fname, msg)
  if not cond then M.error(n, fname, msg, 4) end
  return cond
end

return M

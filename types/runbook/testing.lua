---@meta runbook.testing
local testing = {}
--- Deep equality (ignores decoded tables' shape marks; 1 differs from 1.0).
---@param actual any
---@param expected any
---@param msg? string
function testing.eq(actual, expected, msg) end
---@param v any
---@param msg? string
function testing.truthy(v, msg) end
--- Calls fn(...) and returns the error it raises (matching pattern, when given).
---@param pattern string|function
---@param fn? function
---@return any err
function testing.raises(pattern, fn, ...) end
---@param a number
---@param b number
---@param eps? number
---@param msg? string
function testing.near(a, b, eps, msg) end
---@param s string
---@param pattern string
---@param msg? string
function testing.match(s, pattern, msg) end
--- A readable rendering of a value, for messages.
---@param v any
---@return string
function testing.show(v) end
--- Deep equality as eq compares, without raising.
---@param a any
---@param b any
---@return boolean
function testing.deep_eq(a, b) end
return testing

--- Every variable of a run checked before the first change (issue #29.4):
--- a runbook's first phase, "Inputs", hands its variables and the rules
--- here; every value that breaks its rule is named in one message, exit 2,
--- and nothing was read from or written to the cluster yet. A value
--- refused half-way (after the backups, the pins, a talconfig.yaml edit)
--- would leave a run that neither --resume nor --fresh finishes.
local errors = require "runbook.error"

local M = {}
local fmt = string.format

--- The rules, each a function of the value returning why it is bad, or nil.
M.rule = {}

function M.rule.positive(x)
  if x ~= x or x <= 0 or x == math.huge then return "a number of seconds above 0 expected" end
end

function M.rule.not_negative(x)
  if x < 0 then return "0 or more expected" end
end

--- "5" (workers) or "25%" (of the workers, 1..100)
function M.rule.count_or_percent(s)
  local n, pct = s:match("^%s*(%d+)(%%?)%s*$")
  n = tonumber(n)
  if not n or n < 1 or (pct == "%" and n > 100) then
    return "a count of workers (5) or a percentage of them (25%, 1 to 100) expected"
  end
end

function M.rule.url(s)
  if not s:match("^https?://[^%s/?#]+[^%s]*$") then return "an http:// or https:// URL expected" end
end

--- An IPv4 or IPv6 prefix, "10.43.0.0/16" or "fd7a:115c:a1e0::/48"
function M.rule.cidr(s)
  local addr, len = s:match("^([%x:.]+)/(%d+)$")
  len = tonumber(len)
  if not addr then return "a CIDR (address/length) expected" end
  if addr:find(":", 1, true) then
    if len > 128 then return "an IPv6 prefix length is 0..128" end
    return nil
  end
  local parts = {addr:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")}
  if #parts ~= 4 then return "an IPv4 address before the / expected" end
  for _, p in ipairs(parts) do if tonumber(p) > 255 then return "each part of an IPv4 address is 0..255" end end
  if len > 32 then return "an IPv4 prefix length is 0..32" end
end

--- A DNS name of two labels or more (the tailnet's suffix: tail1234.ts.net)
function M.rule.dns_name(s)
  if #s > 253 or not s:match("^[%w%-]+%.[%w%-%.]+$") or s:find("..", 1, true) or s:match("%.$") then
    return "a DNS name expected (tail1234.ts.net)"
  end
end

--- A Kubernetes namespace: an RFC 1123 label
function M.rule.dns_label(s)
  if #s > 63 or not s:match("^[a-z0-9]$") and not s:match("^[a-z0-9][a-z0-9%-]*[a-z0-9]$") then
    return "a DNS label expected (lower case letters, digits, '-', up to 63)"
  end
end

--- One line of text without control characters (it becomes an environment value)
function M.rule.one_line(s)
  if s:find("[%c]") then return "one line without control characters expected" end
end

--- A word without blanks (a device or node name)
function M.rule.word(s)
  if s == "" or s:find("[%s%c]") then return "a name without blanks expected" end
end

--- Each item of a list by another rule; an empty item is refused
---@param rule fun(x:any):string?
function M.rule.each(rule)
  return function(list)
    for _, item in ipairs(list) do
      if item == "" then return "an empty item" end
      local why = rule(item)
      if why then return fmt("'%s': %s", item, why) end
    end
  end
end

--- An existing regular file
function M.rule.file(s)
  local st = require("runbook.fs").stat(s)
  if not st then return "no such file" end
  if st.type ~= "file" then return "not a regular file" end
end

--- Checks every variable that has a rule and a value; refuses with every
--- problem at once (exit 2). Secret variables have no rule here: their
--- values are never shown.
---@param v table the run's variables (rb.vars)
---@param rules table name -> rule
function M.check(v, rules)
  local problems, names = {}, {}
  for name in pairs(rules) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local value = v[name]
    if value ~= nil then
      local why = rules[name](value)
      if why then
        local shown = type(value) == "table" and table.concat(value, ",") or tostring(value)
        problems[#problems + 1] = fmt("--var %s=%s: %s", name, shown, why)
      end
    end
  end
  if #problems > 0 then
    error(errors.new("usage", fmt("%s; nothing was changed", table.concat(problems, "; ")), {exit = 2}), 0)
  end
end

return M

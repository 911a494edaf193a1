--- runbook.vars: a runbook's variables, from --var K=V, --vars FILE.yaml
--- and (secrets) the environment or a file. The DSL's rb.vars is the way
--- in; this module does the resolving.
local args = require "runbook.args"
local core_fs = require "runbook.fs.core"
local errors = require "runbook.error"

local M = {}

local fmt = string.format

local function usage_error(msg)
  return errors.new("usage", msg, {exit = 2})
end

local TYPES = {string = true, number = true, integer = true, boolean = true, list = true, secret = true}

local function convert(name, spec, raw, source)
  local ty = spec.type or "string"
  if type(raw) ~= "string" then
    -- from a --vars YAML file: already typed
    if ty == "list" and type(raw) == "table" then return raw end
    if (ty == "number" and type(raw) == "number") or (ty == "integer" and math.type(raw) == "integer")
       or (ty == "boolean" and type(raw) == "boolean") then return raw end
    if ty == "string" and (type(raw) == "number") then return tostring(raw) end
    error(usage_error(fmt("variable %s (%s) must be a %s, got %s", name, source, ty, type(raw))), 0)
  end
  if ty == "string" then return raw
  elseif ty == "number" or ty == "integer" then
    local v = tonumber(raw)
    if v == nil or (ty == "integer" and math.type(v) ~= "integer") then
      error(usage_error(fmt("variable %s (%s) must be a%s %s, got '%s'", name, source, ty == "integer" and "n" or "", ty, raw)), 0)
    end
    return v
  elseif ty == "boolean" then
    local l = raw:lower()
    if l == "true" or l == "yes" or l == "1" then return true end
    if l == "false" or l == "no" or l == "0" then return false end
    error(usage_error(fmt("variable %s (%s) must be true or false, got '%s'", name, source, raw)), 0)
  elseif ty == "list" then
    local out = {}
    for item in raw:gmatch("[^,]+") do out[#out + 1] = item:match("^%s*(.-)%s*$") end
    return out
  end
end

--- Resolves the variables declared in specs (added to var_specs; their
--- values, secrets as their masked form, to var_values) and returns them. Each spec:
--- {type = "string"|"number"|"integer"|"boolean"|"list"|"secret",
---  default =, required =, desc =, choices = {...}, env = "NAME"}.
--- Values come from --var K=V and --vars FILE.yaml (the command line wins).
--- A secret comes from the environment variable `env` (default: the name
--- in upper case) or from the file named by --var <name>_file=PATH, never
--- from the command line itself. Declare them all in one call at the top:
--- an unknown or missing required variable stops the run (exit 2) there.
function M.resolve(specs, opts, var_specs, var_values)
  args.check(1, "vars", specs, "table")
  local secret = require "runbook.secret"
  for name, spec in pairs(specs) do
    if type(name) ~= "string" or type(spec) ~= "table" then args.error(1, "vars", "name = {spec} expected", 4) end
    if not TYPES[spec.type or "string"] then
      error(fmt("variable %s: unknown type '%s'", name, tostring(spec.type)), 4)
    end
    var_specs[name] = spec
  end
  -- the sources
  local from_file, file_name = {}, opts.vars_file
  if file_name then
    local ok, text = pcall(core_fs.read, file_name, {max = 16 * 1024 * 1024})
    if not ok then error(usage_error(tostring(text)), 0) end
    local ok2, v = pcall(require("runbook.yaml").decode, text, {name = file_name})
    if not ok2 then error(usage_error(tostring(v)), 0) end
    if v ~= nil and type(v) ~= "table" then error(usage_error(file_name .. ": expected a map of variables"), 0) end
    from_file = v or {}
  end
  local from_cli = {}
  for _, kv in ipairs(opts.vars or {}) do
    local k, val = kv:match("^([^=]+)=(.*)$")
    from_cli[k] = val
  end
  -- --limit and --exclude are the variables limit and exclude
  for _, k in ipairs{"limit", "exclude"} do
    if opts[k] then
      if not var_specs[k] then
        error(usage_error(fmt("--%s: this runbook has no variable '%s' to take it", k, k)), 0)
      end
      from_cli[k] = opts[k]
    end
  end
  -- unknown names
  local known = {}
  for name, spec in pairs(var_specs) do
    known[name] = true
    if spec.type == "secret" then known[name .. "_file"] = true end
  end
  for _, src in ipairs{{from_cli, "--var"}, {from_file, file_name, opts.file_has_others}} do
    for k in pairs(src[1]) do
      if not known[k] and src[3] then
        src[1][k] = nil          -- another runbook's variable, in a file shared with it
      elseif not known[k] then
        local names = {}
        for n in pairs(known) do names[#names + 1] = n end
        table.sort(names)
        error(usage_error(fmt("unknown variable '%s' (%s); this runbook declares: %s", k, src[2], table.concat(names, ", "))), 0)
      end
    end
  end
  local out = {}
  local names = {}
  for name in pairs(specs) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local spec = specs[name]
    local v
    if spec.type == "secret" then
      if from_cli[name] ~= nil or from_file[name] ~= nil then
        error(usage_error(fmt("variable %s is a secret: it cannot be given as a value (it would show in the process list or a file of variables); set %s in the environment or use --var %s_file=PATH",
          name, spec.env or name:upper(), name)), 0)
      end
      local file = from_cli[name .. "_file"] or from_file[name .. "_file"]
      local env = spec.env or name:upper()
      if file then
        local ok, s = pcall(secret.file, file, env)
        if not ok then error(usage_error(tostring(s)), 0) end
        v = s
      elseif os.getenv(env) and os.getenv(env) ~= "" then
        v = secret.env(env)
      end
      var_values[name] = v and tostring(v) or nil
    else
      local raw, source = from_cli[name], "--var"
      if raw == nil then raw, source = from_file[name], file_name end
      if raw ~= nil then v = convert(name, spec, raw, source)
      else v = spec.default end
      if v ~= nil and spec.choices then
        local okc = false
        for _, c in ipairs(spec.choices) do if c == v then okc = true end end
        if not okc then
          error(usage_error(fmt("variable %s must be one of %s, got '%s'", name, table.concat(spec.choices, ", "), tostring(v))), 0)
        end
      end
      var_values[name] = v
    end
    if v == nil and spec.required then
      local how = spec.type == "secret"
        and fmt("set %s in the environment or use --var %s_file=PATH", spec.env or name:upper(), name)
        or fmt("use --var %s=VALUE or --vars FILE.yaml", name)
      error(usage_error(fmt("missing required variable %s%s: %s", name, spec.desc and (" (" .. spec.desc .. ")") or "", how)), 0)
    end
    out[name] = v
  end
  return out
end

return M

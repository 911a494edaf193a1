--- runbook.fingerprint: what makes a run the same run on --resume.
---
--- The start record of a journal holds the runbook's name, the sha256 of
--- its file, a sha256 of the variables given (--var, --vars, --limit,
--- --exclude) and, per secret variable, a keyed hash of its value
--- (HMAC-SHA256 under a random key kept in the state directory, 0600): the
--- journal can tell that TS_AUTHKEY changed without holding anything that
--- would confirm a guessed key. A resume with another secret is refused,
--- naming it: the remaining nodes would otherwise get the old key from the
--- configs generated before the stop.
local core_fs = require "runbook.fs.core"
local hash = require "runbook.hash"

local M = {}

local KEY_BYTES = 32

--- The run's fingerprint {runbook, script_sha256, vars_sha256, vars_each}
--- (vars_each: a hash per variable name, for a refused resume to name them).
---@param runbook string the runbook's name
---@param script string its file
---@param opts table the command line (vars, vars_file, limit, exclude)
function M.of_run(runbook, script, opts)
  local ok, text = pcall(core_fs.read, script)
  local vars = {}
  for _, kv in ipairs(opts.vars or {}) do vars[#vars + 1] = kv end
  if opts.limit then vars[#vars + 1] = "limit=" .. opts.limit end
  if opts.exclude then vars[#vars + 1] = "exclude=" .. opts.exclude end
  table.sort(vars)
  local file = opts.vars_file and select(2, pcall(core_fs.read, opts.vars_file, {max = 16 * 1024 * 1024})) or ""
  -- and one hash per name, for a refused resume to name what differs
  local each = {}
  for _, kv in ipairs(vars) do
    local k = kv:match("^([^=]*)=")
    each[k] = hash.sha256(each[k] and (each[k] .. "\0" .. kv) or kv)
  end
  if file ~= "" then each["--vars"] = hash.sha256(tostring(file)) end
  -- what was given, kept in the start record (never a secret: those come
  -- from the environment or files) so that a bare --resume takes them again
  local cli = {}
  for _, kv in ipairs(opts.vars or {}) do cli[#cli + 1] = kv end
  local given = not opts.vars_file and {vars = cli, limit = opts.limit, exclude = opts.exclude} or nil
  return {runbook = runbook, script_sha256 = ok and hash.sha256(text) or nil,
          vars_sha256 = hash.sha256(table.concat(vars, "\0") .. "\0\0" .. tostring(file)), vars_each = each,
          given = given, none_given = #vars == 0 and not opts.vars_file or nil}
end

--- HMAC-SHA256 (RFC 2104) of msg under key, in hex (libcrypto's HMAC).
function M.hmac(key, msg)
  return hash.hmac_sha256(key, msg)
end

--- The state directory's key, made (random, 0600) when `create` and absent.
--- nil when absent and not to be made.
local function key_of(state_dir, create)
  local path = state_dir .. "/fingerprint.key"
  if core_fs.exists(path) then
    local key = core_fs.read(path, {max = 4096})
    if #key == KEY_BYTES then return key end
    if not create then return nil end
  end
  if not create then return nil end
  local f = assert(io.open("/dev/urandom", "rb"))
  local key = f:read(KEY_BYTES)
  f:close()
  assert(key and #key == KEY_BYTES, "/dev/urandom gave too few bytes")
  core_fs.write(path, key, {mode = tonumber("600", 8)})
  return key
end

--- name -> keyed hash of each secret variable's value ("absent" when it has
--- none), for the secrets declared in specs with their values in values
--- (secret objects, or nil).
---@param state_dir string
---@param specs table<string, table> the declared variables
---@param values table<string, any> their resolved values
---@param create boolean make the key when there is none (a new run)
---@return table<string,string>|nil fingerprints, nil when there is no key
function M.of_secrets(state_dir, specs, values, create)
  local key = key_of(state_dir, create)
  if not key then return nil end
  local out = {}
  for name, spec in pairs(specs) do
    if spec.type == "secret" then
      local v = values[name]
      out[name] = v ~= nil and M.hmac(key, name .. "\0" .. v:reveal()) or "absent"
    end
  end
  return out
end

--- The secret variables whose fingerprints differ between a journal's
--- start record (recorded) and this run (now), sorted; {} when none.
function M.secrets_differ(recorded, now)
  local names = {}
  for name, fp in pairs(now) do
    if recorded[name] ~= nil and recorded[name] ~= fp then names[#names + 1] = name end
  end
  table.sort(names)
  return names
end

return M

--- The scenario file: its schema, validation (file:line:col errors) and
--- loading. Format: docs/simulation.md.

local core_fs = require "runbook.fs.core"
local errors = require "runbook.error"
local yaml = require "runbook.yaml"

local fmt = string.format

local SCHEMA = {
  seed = "number", captured = "any", cluster = "table", factory = "table", tailnet = "table", talconfig = "string", faults = "list",
  appliedTalconfig = "string", talconfigFile = "string", ["cluster.endpoint"] = "string",
  ["cluster.name"] = "string", ["cluster.talosVersion"] = "string", ["cluster.kubernetesVersion"] = "string",
  ["cluster.talosctlVersion"] = "string", ["cluster.talhelperVersion"] = "string",
  ["cluster.serviceCIDR"] = "string", ["cluster.podCIDR"] = "string", ["cluster.nodes"] = "list",
  ["cluster.nodes.hostname"] = "string", ["cluster.nodes.ip"] = "string", ["cluster.nodes.ip6"] = "string", ["cluster.nodes.role"] = "string",
  ["cluster.nodes.image"] = "string", ["cluster.nodes.extensions"] = "list", ["cluster.nodes.bootSeconds"] = "list",
  ["cluster.nodes.tailscaleConfigured"] = "boolean", ["cluster.nodes.previousImage"] = "string",
  ["cluster.nodes.certSANs"] = "list", ["cluster.nodes.schematic"] = "any", ["cluster.nodes.config"] = "any",
  ["cluster.nodes.schematicID"] = "string",
  ["tailnet.adminState"] = "string", ["tailnet.acceptRoutes"] = "boolean", ["tailnet.devices.routes"] = "list",
  ["factory.versions"] = "list", ["factory.extensions"] = "list", ["factory.extensionsByVersion"] = "any",
  ["tailnet.name"] = "string", ["tailnet.autoApprovedRoutes"] = "list", ["tailnet.authKey"] = "table",
  ["tailnet.authKey.reusable"] = "boolean", ["tailnet.authKey.preauthorized"] = "boolean", ["tailnet.authKey.expired"] = "boolean",
  ["tailnet.devices"] = "list", ["tailnet.devices.hostname"] = "string", ["tailnet.devices.tags"] = "list",
  ["tailnet.devices.online"] = "boolean",
  ["tailnet.operator"] = "table", ["tailnet.operator.namespace"] = "string", ["tailnet.operator.deployment"] = "string",
  ["tailnet.operator.pods"] = "number", ["tailnet.operator.ready"] = "number",
  ["faults.type"] = "string", ["faults.node"] = "string", ["faults.seconds"] = "number", ["faults.status"] = "number",
  ["faults.times"] = "number", ["faults.after"] = "number", ["faults.hostname"] = "string",
  ["faults.extension"] = "string", ["faults.version"] = "string",
}

local FAULTS = {
  node_never_returns = "node", boot_fails = "node", image_lacks_extension = "node", ext_crashloop = "node",
  authkey_invalid = false, authkey_single_use = false, factory_error = false, factory_timeout = false,
  etcd_unhealthy = "node", talosctl_unreachable = "node", slow_boot = "node", not_ready_after_reboot = "node",
  sequence_fails_after_accept = "node", authkey_expired = false, admin_logged_out = false, route_already_served = false,
  node_ip_on_tailscale = "node", tailnet_derp_only = false, reply_lost = false, reply_held = false,
  factory_lacks_extension = false,
}

--- Position of the first "key:" at or after line `from` (1-based line, col).
local function locate(text, key, from)
  local lineno = 0
  for line in (text .. "\n"):gmatch("(.-)\n") do
    lineno = lineno + 1
    if lineno >= (from or 1) then
      local col = line:find("%f[%w_]" .. key:gsub("%p", "%%%0") .. "%s*:")
      if col then return lineno, col end
    end
  end
  return 1, 1
end

local function bad(file, text, key, msg)
  local line, col = locate(text, key)
  error(errors.new("scenario", fmt("%s:%d:%d: %s", file, line, col, msg), {exit = 2, retry = false}), 0)
end

local function validate(v, file, text, path)
  for k, val in pairs(v) do
    local p = path and (path .. "." .. k) or k
    local want = SCHEMA[p]
    if want == nil then bad(file, text, k, fmt("unknown key '%s'", p)) end
    local got = type(val)
    if want == "any" then  -- free-form below (a node's factory schematic)
      if got ~= "table" then bad(file, text, k, fmt("'%s' must be a map", p)) end
    elseif want == "list" then
      if got ~= "table" then bad(file, text, k, fmt("'%s' must be a list", p)) end
      for _, item in ipairs(val) do
        if type(item) == "table" then validate(item, file, text, p) end
      end
    elseif want ~= got then
      bad(file, text, k, fmt("'%s' must be a %s, got %s", p, want, got))
    elseif got == "table" then
      validate(val, file, text, p)
    end
  end
end

-- deterministic pseudo-random numbers (a 32-bit LCG) from the seed
local function rng(seed)
  local state = math.tointeger(seed) or 1
  return function(a, b)
    state = (state * 1103515245 + 12345) % 2147483648
    return a + state % (b - a + 1)
  end
end

local check

--- The scenario in `text` (named `path` in errors), checked.
local function load_text(text, path)
  local ok, v = pcall(yaml.decode, text, {name = path})
  if not ok then error(errors.new("scenario", tostring(v):gsub("^yaml: ", ""), {exit = 2, retry = false}), 0) end
  return check(v, path, text)
end

local function load_scenario(path)
  local okr, text = pcall(core_fs.read, path, {max = 16 * 1024 * 1024})
  if not okr then error(errors.new("scenario", tostring(text):gsub("^fs: ", ""), {exit = 2, retry = false}), 0) end
  return load_text(text, path)
end

function check(v, path, text)
  if type(v) ~= "table" then error(errors.new("scenario", path .. ": expected a map", {exit = 2, retry = false}), 0) end
  validate(v, path, text)
  if not v.cluster or not v.cluster.nodes or #v.cluster.nodes == 0 then bad(path, text, "cluster", "the cluster needs nodes") end
  local names = {}
  for _, n in ipairs(v.cluster.nodes) do
    if not n.hostname or not n.ip then bad(path, text, "nodes", "every node needs hostname and ip") end
    names[n.hostname] = true
  end
  for i, f in ipairs(v.faults or {}) do
    if FAULTS[f.type] == nil then
      local line = select(1, locate(text, "faults"))
      local l2, c2 = locate(text, "type", line)
      error(errors.new("scenario", fmt("%s:%d:%d: unknown fault '%s' (known: %s)", path, l2, c2, tostring(f.type),
        (function() local t = {} for k in pairs(FAULTS) do t[#t + 1] = k end table.sort(t) return table.concat(t, ", ") end)()),
        {exit = 2, retry = false}), 0)
    end
    if FAULTS[f.type] == "node" and not names[f.node or ""] then
      local line = select(1, locate(text, "faults"))
      local l2, c2 = locate(text, "node", line)
      error(errors.new("scenario", fmt("%s:%d:%d: fault %d (%s) names node '%s', which the cluster does not have",
        path, l2, c2, i, f.type, tostring(f.node)), {exit = 2, retry = false}), 0)
    end
  end
  return v
end

return {load_scenario = load_scenario, load_text = load_text, rng = rng}

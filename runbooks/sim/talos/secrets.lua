--- The secrets of a Talos machine config, and the placeholders that stand
--- for them in the simulated world. A capture keeps a node's whole config
--- with its secrets replaced; the world's generator writes the same
--- placeholders where Talos would write generated secrets; so a config
--- talhelper renders and the config a node runs compare equal where their
--- secrets would, and no diff, plan or file ever holds one.
---
--- Which fields hold secrets: siderolabs/talos
--- pkg/machinery/config/types/v1alpha1/v1alpha1_types.go (v1.8.0 to
--- v1.13.0): MachineConfig's MachineToken, MachineCA, MachineAcceptedCAs;
--- ClusterConfig's ClusterID, ClusterSecret, BootstrapToken (`token`),
--- ClusterAESCBCEncryptionSecret, ClusterSecretboxEncryptionSecret,
--- ClusterCA, ClusterAcceptedCAs, ClusterAggregatorCA,
--- ClusterServiceAccount, EtcdConfig's RootCA (`etcd.ca`); and, wherever they
--- appear, a WireGuard `privateKey` and a registry's `auth` credentials
--- (RegistryAuthConfig: username, password, auth, identityToken).
--- An ExtensionServiceConfig's environment may hold anything (the
--- Tailscale auth key): every value but the few known to be plain
--- settings is a secret.
local yaml = require "runbook.yaml"

local M = {}

-- the v1alpha1 document's secret subtrees, as paths
local PATHS = {
  "machine.token", "machine.ca", "machine.acceptedCAs",
  "cluster.id", "cluster.secret", "cluster.token", "cluster.aescbcEncryptionSecret",
  "cluster.secretboxEncryptionSecret", "cluster.ca", "cluster.acceptedCAs", "cluster.aggregatorCA",
  "cluster.serviceAccount", "cluster.etcd.ca",
}
local SECRET_PATH = {}
for _, p in ipairs(PATHS) do SECRET_PATH[p] = true end

-- keys that hold a secret wherever they are
local SECRET_KEY = {privateKey = true, password = true, identityToken = true, auth = true}

-- environment variables of an extension service that are settings, not
-- secrets (siderolabs/extensions network/tailscale; tailscale
-- cmd/containerboot): kept as they are
local PLAIN_ENV = {TS_HOSTNAME = true, TS_ROUTES = true, TS_AUTH_ONCE = true, TS_ACCEPT_DNS = true,
                   TS_USERSPACE = true, TS_STATE_DIR = true, TS_DEST_IP = true, TS_SOCKET = true}

--- The placeholder for the secret at `path` (a dotted path; list items
--- by index).
---@param path string
---@return string
function M.placeholder(path)
  -- the generator's own form, so a captured config and a generated one
  -- hold the same text where their secrets would be
  return require("sim.talos.generate").placeholder("SECRET", path)
end

--- Whether `s` is a placeholder.
function M.is_placeholder(s)
  return type(s) == "string" and s:match("^SECRET%(.*%)$") ~= nil
end

local function redact_tree(v, path)
  if v == "" or v == yaml.null then return v end          -- holds no secret (a worker's empty CA key)
  if type(v) ~= "table" then return M.placeholder(path) end
  for k, x in pairs(v) do v[k] = redact_tree(x, path .. "." .. tostring(k)) end
  return v
end

local function walk(v, path)
  if type(v) ~= "table" or v == yaml.null then return v end
  for k, x in pairs(v) do
    local p = path == "" and tostring(k) or (path .. "." .. tostring(k))
    if SECRET_PATH[p] or SECRET_KEY[k] then v[k] = redact_tree(x, p)
    else v[k] = walk(x, p) end
  end
  return v
end

local function redact_environment(d)
  if type(d.environment) ~= "table" or d.environment == yaml.null then return end
  for i, kv in ipairs(d.environment) do
    local name = type(kv) == "string" and kv:match("^([^=]*)=")
    if not name then
      d.environment[i] = M.placeholder(("ExtensionServiceConfig/%s/environment.%d"):format(tostring(d.name), i))
    elseif not PLAIN_ENV[name] then
      d.environment[i] = name .. "=" .. M.placeholder(("ExtensionServiceConfig/%s/%s"):format(tostring(d.name), name))
    end
  end
end

--- Replaces, in place, every secret of a config's documents by its
--- placeholder; returns the documents.
---@param docs table[] decoded documents
---@return table[]
function M.redact(docs)
  for _, d in ipairs(docs) do
    if type(d) == "table" and d ~= yaml.null then
      if d.kind == "ExtensionServiceConfig" then redact_environment(d)
      elseif d.version == "v1alpha1" and d.kind == nil then walk(d, "")
      else walk(d, (d.kind or "?") .. "/" .. tostring(d.name)) end
    end
  end
  return docs
end

--- A talconfig.yaml's text with each literal secret-looking value replaced
--- by its placeholder, by the rules above, read on the text (the file's
--- shape, comments and ${VAR} references kept): a `NAME=value` item
--- (an extensionServices environment) whose NAME is not a plain setting
--- and whose value is not a talhelper variable (`${NAME}`, `$NAME`); a
--- value of a key that holds a secret wherever it is (password, auth...);
--- and any `tskey-...` text. Returns the text and how many were replaced.
---@param text string
---@return string, integer
function M.redact_talconfig(text)
  local n = 0
  local function is_var(v) return v:match("^%${[%w_]+}$") or v:match("^%$[%a_][%w_]*$") end
  local out = {}
  for line in (text .. (text:sub(-1) == "\n" and "" or "\n")):gmatch("([^\n]*)\n") do
    local head, name, value, tail = line:match("^(%s*%-%s+[\"']?)([%a_][%w_]*)=(.-)([\"']?%s*)$")
    if head and value ~= "" and not PLAIN_ENV[name] and not is_var(value) and not M.is_placeholder(value) then
      line = head .. name .. "=" .. M.placeholder("talconfig/" .. name) .. tail
      n = n + 1
    else
      -- a key that holds a secret wherever it is, in block or flow style
      for key in pairs(SECRET_KEY) do
        line = line:gsub("(%f[%w]" .. key .. ":%s+)([\"']?)([^,{}%s\"'#%$][^,{}%s\"'#]*)", function(pre, q, v)
          if is_var(v) or M.is_placeholder(v) then return nil end
          n = n + 1
          return pre .. q .. M.placeholder("talconfig/" .. key)
        end)
      end
    end
    local replaced
    line, replaced = line:gsub("tskey%-[%w%-_]+", function() return M.placeholder("talconfig/tskey") end)
    n = n + replaced
    out[#out + 1] = line
  end
  local res = table.concat(out, "\n")
  if text:sub(-1) == "\n" then res = res .. "\n" end
  return res, n
end

return M

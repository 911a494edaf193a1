--- Machine configs in the simulated world. A node holds its config as
--- documents (`n.config`, what `talosctl read /system/state/config.yaml`
--- prints, decoded); `talosctl apply-config` replaces them, `talosctl
--- patch` merges into them, and `sync` derives from them the views the
--- rest of the world reads (certSANs, the install image, the address pins,
--- the ExtensionServiceConfigs). `talosctl apply-config --dry-run` diffs
--- the encoded documents as machined's generateDiff does ("No changes."
--- when equal). Sources: talhelper pkg/config/nodeconfigs.go (group and
--- node merge), pkg/talos/multidocs.go and extensionserviceconfig.go (one
--- document per extensionServices entry), pkg/generate/config.go (0600
--- files, the .gitignore).
local yaml = require "runbook.yaml"

local M = {}

local function list(v)
  if type(v) ~= "table" or v == yaml.null then return {} end
  return v
end
M.list = list

local function map(v)
  if type(v) ~= "table" or v == yaml.null then return nil end
  return v
end

local function add_all(dst, src)
  for _, x in ipairs(list(src)) do dst[#dst + 1] = x end
end

--- The documents of a config from a few fields (a node a scenario gives
--- without a talconfig.yaml to render): f = {type, cert_sans,
--- install_image, kubelet_valid, etcd_valid, esc = {name = {environment}}}.
function M.from_fields(f)
  local machine = {type = f.type}
  if #list(f.cert_sans) > 0 then machine.certSANs = f.cert_sans end
  machine.install = {image = f.install_image}
  if #list(f.kubelet_valid) > 0 then machine.kubelet = {nodeIP = {validSubnets = f.kubelet_valid}} end
  local v1 = {version = "v1alpha1", machine = yaml.order(machine, {"type", "certSANs", "install", "kubelet"})}
  if #list(f.etcd_valid) > 0 then v1.cluster = {etcd = {advertisedSubnets = f.etcd_valid}} end
  local docs = {yaml.order(v1, {"version", "machine", "cluster"})}
  local names = {}
  for name in pairs(f.esc or {}) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    docs[#docs + 1] = yaml.order({apiVersion = "v1alpha1", kind = "ExtensionServiceConfig", name = name,
                                  environment = f.esc[name].environment},
                                 {"apiVersion", "kind", "name", "environment"})
  end
  return docs
end

--- The v1alpha1 document of a config, or nil.
function M.v1alpha1(docs)
  for _, d in ipairs(docs) do
    if type(d) == "table" and d.version == "v1alpha1" and d.kind == nil then return d end
  end
  return nil
end

--- The fields the world reads, from a config's documents.
function M.fields_of(docs)
  local f = {cert_sans = {}, kubelet_valid = {}, etcd_valid = {}, esc = {}}
  for _, d in ipairs(docs) do
    if type(d) == "table" and d.kind == "ExtensionServiceConfig" and type(d.name) == "string" then
      local env = {}
      add_all(env, d.environment)
      f.esc[d.name] = {environment = env}
    end
  end
  local v1 = M.v1alpha1(docs)
  if v1 then
    local m, c = map(v1.machine) or {}, map(v1.cluster) or {}
    f.type = m.type
    add_all(f.cert_sans, m.certSANs)
    local inst = map(m.install)
    if inst and type(inst.image) == "string" then f.install_image = inst.image end
    local kubelet = map(m.kubelet)
    add_all(f.kubelet_valid, kubelet and map(kubelet.nodeIP) and kubelet.nodeIP.validSubnets)
    add_all(f.etcd_valid, map(c.etcd) and c.etcd.advertisedSubnets)
  end
  return f
end

--- Derives node n's views from its documents (after every change of
--- n.config: apply-config, patch, the world's own set-up).
function M.sync(n)
  local f = M.fields_of(n.config)
  n.cert_sans, n.kubelet_valid, n.etcd_valid, n.esc = f.cert_sans, f.kubelet_valid, f.etcd_valid, f.esc
  n.install_image = f.install_image
end

--- The text of a config, as Talos encodes it.
function M.render(docs)
  return yaml.encode_all(docs)
end

--- A strategic-merge patch onto a map (pkg/machinery/config/configpatcher:
--- maps merge key by key, lists append).
local function merge_into(dst, src)
  for k, v in pairs(src) do
    local have = dst[k]
    if type(v) == "table" and v ~= yaml.null and type(have) == "table" and have ~= yaml.null then
      if #v > 0 or next(v) == nil then add_all(have, v) else merge_into(have, v) end
    else
      dst[k] = v
    end
  end
end

--- Applies patch documents to a config's documents, as talosctl patch
--- does: a v1alpha1 partial merges into the v1alpha1 document, another
--- kind into the document of the same kind and name, or is added; a
--- document with `$patch: delete` removes the one it names. Changes docs
--- in place and returns it.
function M.patch(docs, patches)
  for _, p in ipairs(patches) do
    if type(p) == "table" and p ~= yaml.null then
      local target, at
      for i, d in ipairs(docs) do
        if (p.kind == nil and d.version == "v1alpha1" and d.kind == nil)
           or (p.kind ~= nil and d.kind == p.kind and d.name == p.name) then target, at = d, i end
      end
      if p["$patch"] == "delete" then
        if at then table.remove(docs, at) end
      elseif target then
        local body = {}
        for k, v in pairs(p) do if k ~= "version" and k ~= "apiVersion" and k ~= "kind" and k ~= "name" then body[k] = v end end
        merge_into(target, body)
      else
        docs[#docs + 1] = p
      end
    end
  end
  return docs
end

--- What `talosctl apply-config --dry-run` prints after "Config diff:\n\n"
--- for a change from `before` to `after` (texts): a unified diff between
--- "a" and "b" (gotextdiff.ToUnified), "No changes." when equal.
function M.diff(before, after)
  local d = require("runbook.diff").unified(before, after, "a")
  d = d:gsub("^%-%-%- [^\n]*\n%+%+%+ [^\n]*\n", "--- a\n+++ b\n")
  return d == "" and "No changes." or (d:gsub("\n$", ""))
end

return M

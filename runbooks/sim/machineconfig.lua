--- Machine configs in the simulated world: what `talhelper genconfig`
--- writes for a node, and what a node holds now, in one rendering, so that
--- `talosctl apply-config --dry-run` can diff the two as Talos does
--- (machined's generateDiff: a unified diff of the encoded documents,
--- "No changes." when equal). Only what the world models is rendered:
--- machine.type, certSANs, install.image, the kubelet's nodeIP
--- validSubnets, etcd's advertisedSubnets, and ExtensionServiceConfig
--- documents. Sources: talhelper pkg/config/nodeconfigs.go (group and
--- node merge), pkg/talos/multidocs.go and extensionserviceconfig.go (one
--- document per extensionServices entry), pkg/generate/config.go (0600
--- files, the .gitignore).
local yaml = require "runbook.yaml"

local function list(v)
  if type(v) ~= "table" or v == yaml.null then return {} end
  return v
end

local function add_all(dst, src)
  for _, x in ipairs(list(src)) do dst[#dst + 1] = x end
end

--- The documents of a node's config from the modelled fields.
local function documents(f)
  local machine = {type = f.type}
  if #f.cert_sans > 0 then machine.certSANs = f.cert_sans end
  machine.install = {image = f.install_image}
  if #f.kubelet_valid > 0 then machine.kubelet = {nodeIP = {validSubnets = f.kubelet_valid}} end
  local v1 = {version = "v1alpha1", machine = yaml.order(machine, {"type", "certSANs", "install", "kubelet"})}
  if #f.etcd_valid > 0 then v1.cluster = {etcd = {advertisedSubnets = f.etcd_valid}} end
  local docs = {yaml.order(v1, {"version", "machine", "cluster"})}
  local names = {}
  for name in pairs(f.esc) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    docs[#docs + 1] = yaml.order({apiVersion = "v1alpha1", kind = "ExtensionServiceConfig", name = name,
                                  environment = f.esc[name].environment},
                                 {"apiVersion", "kind", "name", "environment"})
  end
  return docs
end

--- The text of a config from its modelled fields.
local function render(f)
  return yaml.encode_all(documents(f))
end

--- What node n holds now.
local function node_fields(n)
  local esc = {}
  for name, d in pairs(n.esc) do esc[name] = {environment = d.environment} end
  return {type = n.role == "controlplane" and "controlplane" or "worker", cert_sans = n.cert_sans,
          install_image = n.install_image or n.image, kubelet_valid = n.kubelet_valid, etcd_valid = n.etcd_valid,
          esc = esc}
end

--- Reads the modelled fields back from a config's documents (a file
--- `talosctl apply-config` is given).
local function fields_of(docs, n)
  local f = {type = n.role == "controlplane" and "controlplane" or "worker", cert_sans = {}, kubelet_valid = {},
             etcd_valid = {}, esc = {}, install_image = n.install_image or n.image}
  for _, d in ipairs(docs) do
    if type(d) == "table" and d.kind == "ExtensionServiceConfig" then
      local env = {}
      add_all(env, d.environment)
      f.esc[d.name] = {environment = env}
    elseif type(d) == "table" and d.version == "v1alpha1" then
      local m, c = type(d.machine) == "table" and d.machine or {}, type(d.cluster) == "table" and d.cluster or {}
      add_all(f.cert_sans, m.certSANs)
      if type(m.install) == "table" and type(m.install.image) == "string" then f.install_image = m.install.image end
      add_all(f.kubelet_valid, type(m.kubelet) == "table" and type(m.kubelet.nodeIP) == "table" and m.kubelet.nodeIP.validSubnets)
      add_all(f.etcd_valid, type(c.etcd) == "table" and c.etcd.advertisedSubnets)
    end
  end
  return f
end

--- A talconfig patch (strategic merge): lists append, as the world's
--- `talosctl patch` does.
local function merge_patch(f, doc)
  if type(doc) ~= "table" then return end
  local m, c = type(doc.machine) == "table" and doc.machine or {}, type(doc.cluster) == "table" and doc.cluster or {}
  add_all(f.cert_sans, m.certSANs)
  add_all(f.kubelet_valid, type(m.kubelet) == "table" and type(m.kubelet.nodeIP) == "table" and m.kubelet.nodeIP.validSubnets)
  add_all(f.etcd_valid, type(c.etcd) == "table" and c.etcd.advertisedSubnets)
end

return {render = render, node_fields = node_fields, fields_of = fields_of, merge_patch = merge_patch, list = list}

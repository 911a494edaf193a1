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
local cp = require "sim.talos.configpatcher"
local enc = require "sim.talos.encode"

local M = {}

-- the Talos versions whose config rules the world models (sim/talos/schema)
local OLDEST, NEWEST = 8, 13

--- The version whose rules apply to a node of Talos `version`: its own,
--- held within the modelled v1.8 .. v1.13 (an older node is refused by
--- the runbooks' preflight; the world still answers, by v1.8's rules).
function M.version(version)
  local minor = tonumber(tostring(version):match("^v?1%.(%d+)")) or NEWEST
  return "v1." .. math.max(OLDEST, math.min(NEWEST, minor))
end

local function list(v)
  if type(v) ~= "table" or v == yaml.null then return {} end
  return v
end

local function map(v)
  if type(v) ~= "table" or v == yaml.null then return nil end
  return v
end

local function add_all(dst, src)
  for _, x in ipairs(list(src)) do dst[#dst + 1] = x end
end

--- The whole config Talos's generator writes for a node (sim/talos/
--- generate.lua; secrets as placeholders): info = {talos_version, role,
--- cluster_name, endpoint, kubernetes_version, install_image, pod_cidrs,
--- service_cidrs}.
function M.base(info)
  local gen = require "sim.talos.generate"
  local tag = tostring(info.talos_version)
  if M.version(tag) ~= tag:match("^(v?1%.%d+)") then tag = M.version(tag) .. ".0" end   -- held within the modelled
  return gen.documents({talos_version = tag, role = info.role,
    cluster_name = info.cluster_name, endpoint = info.endpoint,
    kubernetes_version = info.kubernetes_version, install_image = info.install_image,
    pod_cidrs = info.pod_cidrs, service_cidrs = info.service_cidrs})
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

-- A node's documents are replaced whole, never changed once rendered
-- (apply-config, patch), and are rendered again and again (read, patch,
-- each dry-run's diff): the text is kept per documents table and version.
local rendered = setmetatable({}, {__mode = "k"})

--- The text of a config, as Talos `version` encodes it (comments off:
--- what machined's generateDiff compares and `talosctl read` prints).
--- Documents once rendered must not be changed in place (give new ones).
function M.render(docs, version)
  local v = M.version(version)
  local kept = rendered[docs]
  if kept and kept.v == v then return kept.text end
  local text = enc.encode(docs, v)
  rendered[docs] = {v = v, text = text}
  return text
end

--- Applies patch texts to a config's documents as `talosctl patch` does
--- (configpatcher.LoadPatches, then Apply, by Talos `version`'s rules).
--- Returns the new documents, or nil and talosctl's error.
---@param docs table[] the config's documents
---@param texts table list of patch texts (or {text =, name =})
function M.patch_texts(docs, texts, version)
  local v = M.version(version)
  local ps, err = cp.load_all(texts, {version = v})
  if not ps then return nil, err end
  local body = M.render(docs, v)
  return cp.apply(yaml.decode_all(body), ps, {version = v, text = body,
    reencode = function(d) return yaml.decode_all(M.render(d, v)) end})
end

--- Applies decoded patch documents (a strategic merge patch) to a
--- config's documents; raises talosctl's error.
function M.patch(docs, patches, version)
  if #patches == 0 then return docs end
  local out, err = M.patch_texts(docs, {yaml.encode_all(patches)}, version)
  if not out then error(err, 0) end
  return out
end

--- A config's text checked as machined checks what apply-config sends
--- (strict decoding): the documents, or nil and the error.
function M.check(text, version, name)
  return cp.check(text, {version = M.version(version), name = name})
end

--- What `talosctl apply-config --dry-run` prints (on stderr) for a change
--- of a node's config from `before` to `after` (documents).
--- Up to v1.7 machined printed no blank line after "Config diff:" and a
--- go-cmp diff of the v1alpha1 struct (v1alpha1_server.go@v1.7.0 lines
--- 221-239: "Config diff:\n%s", "No changes." when cmp.Diff is empty):
--- the world prints that form, with v1.8's unified diff standing in for
--- go-cmp's body when the configs differ (go-cmp's text is not modelled).
function M.dry_run_text(before, after, version, mode)
  local v = M.version(version)
  local old_text, new_text = M.render(before, v), M.render(after, v)
  mode = mode or "Applied configuration without a reboot"
  if (tonumber(tostring(version):match("^v?1%.(%d+)")) or 99) <= 7 then
    return ("Dry run summary:\n%s (skipped in dry-run).\nConfig diff:\n%s\n"):format(mode, cp.diff(old_text, new_text, v))
  end
  return cp.dry_run_text(old_text, new_text, v, mode)
end

return M

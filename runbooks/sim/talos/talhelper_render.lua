--- What talhelper (budimanjojo/talhelper v3.0.0 .. v3.1.16) makes of a
--- talhelper directory: per node, the input it gives Talos's generator, the
--- patches it applies after it (its own and the talconfig's, in its
--- order), the installer image and the file name; and the output of
--- `gencommand upgrade`. Pure: files are read through opts.read and the
--- environment through opts.env, so the world's overlay can be used.
---
--- Sources (tag v3.1.16 unless said): pkg/config/loader.go
--- (LoadAndValidateFromFile: read, talenv files, envsubst of the whole
--- file, relative paths, unmarshal, group merge, validation),
--- pkg/substitute/envsubst.go, pathsubst.go, pkg/config/config.go (the
--- fields), nodeconfigs.go (the merge), validator.go, defaults.go (talos
--- version, installer template, machineSpec), outputfilename.go,
--- gitignore.go, pkg/talos/input.go (generate options), nodeconfig.go
--- (what it sets on the generated config), multidocs.go (documents added
--- as one strategic merge patch), pkg/generate/config.go (the order:
--- node patches, then global ones), pkg/patcher/patcher.go (file patches:
--- empty ones skipped, envsubst), pkg/generate/command.go (gencommand).
local yaml = require "runbook.yaml"
local envsubst = require "sim.talos.envsubst"
local V = require "sim.talos.talhelper_versions"

local M = {}
local fmt = string.format

M.DEFAULT_VERSION = V.DEFAULT

local function given(v) if v == yaml.null then return nil end return v end
local function is_list(v) return type(v) == "table" and v ~= yaml.null and (#v > 0 or next(v) == nil) end
local function nonzero(v)
  v = given(v)
  if v == nil or v == false or v == "" then return false end
  if type(v) == "table" then return next(v) ~= nil end
  return true
end

--- "dir/." and "a/../b" made plain, as filepath.Join/Clean do.
local function clean(p)
  local abs = p:sub(1, 1) == "/"
  local parts = {}
  for seg in p:gmatch("[^/]+") do
    if seg == ".." and #parts > 0 and parts[#parts] ~= ".." then parts[#parts] = nil
    elseif seg ~= "." and not (seg == ".." and abs) then parts[#parts + 1] = seg end
  end
  local s = table.concat(parts, "/")
  if abs then return "/" .. s end
  return s == "" and "." or s
end
M.clean = clean

local function join(dir, p)
  if p:sub(1, 1) == "/" then return clean(p) end
  return clean(dir .. "/" .. p)
end

local function dir_of(p) return p:match("^(.*)/[^/]*$") or "." end

-- {====== environment: talenv files over the process environment

M.ENV_FILES = {"talenv.yaml", "talenv.sops.yaml", "talenv.yml", "talenv.sops.yml"}

--- The env files talhelper loads (its --env-file default, names relative
--- to the working directory, not to talconfig.yaml: os.Stat(file)), each
--- {path, vars, names, sops}. A sops-encrypted file's names are read in
--- clear (sops keeps keys); its values cannot be decrypted here and are
--- "(sops)".
---@param read fun(path:string):string?
---@param cwd string
---@param files? string[] the --env-file list
function M.env_files(read, cwd, files)
  local out = {}
  for _, f in ipairs(files or M.ENV_FILES) do
    local p = join(cwd, f)
    local text = read(p)
    if text then
      local stripped = text:gsub("\n%-%-%-[^\n]*", "\n"):gsub("^%-%-%-[^\n]*", "")
      local vars, names = envsubst.parse_env_file(stripped)
      local sops = vars.sops ~= nil or text:match("\nsops:") ~= nil or text:match("^sops:") ~= nil
      if sops then      -- the file's top-level keys, but sops's own
        local kept = {}
        for _, k in ipairs(names) do
          if k ~= "sops" and ("\n" .. text):find("\n" .. k:gsub("%p", "%%%0") .. "%s*:") then kept[#kept + 1] = k end
        end
        names, vars = kept, {}
        for _, k in ipairs(kept) do vars[k] = "(sops)" end
      end
      out[#out + 1] = {path = p, file = f, vars = vars, names = names, sops = sops}
    end
  end
  return out
end

--- The environment talhelper substitutes from: the process environment,
--- overridden by every talenv file in order (LoadEnv: os.Setenv), so a
--- talenv value beats the one the caller exported.
local function env_with_files(env, files)
  local over, sealed = {}, {}
  for _, f in ipairs(files) do
    for _, k in ipairs(f.names) do over[k] = f.vars[k]; sealed[k] = f.sops or nil end
  end
  return function(name)
    -- a sops file's value cannot be decrypted here: the environment's
    -- value stands for it (what `sops exec-env FILE` exports is that very
    -- value), else it stays "(sops)"
    if sealed[name] and env(name) ~= nil then return env(name) end
    if over[name] ~= nil then return over[name] end
    return env(name)
  end, over
end

-- }======

-- {====== the merge of a node and its group (nodeconfigs.go)

--- The NodeConfigs fields (config.go): a node's value wins when it is not
--- Go's zero value, else the group's; patches, certSANs and
--- extraManifests are first joined (group patches before the node's,
--- node certSANs before the group's).
M.NODE_CONFIG_FIELDS = {"nodeLabels", "nodeAnnotations", "nodeTaints", "machineDisks", "machineFiles",
  "disableSearchDomain", "kernelModules", "nameservers", "networkInterfaces", "extraManifests", "certSANs",
  "patches", "talosImageURL", "noSchematicValidate", "schematic", "imageSchematic", "machineSpec",
  "ingressFirewall", "extensionServices", "volumes", "userVolumes", "filenameTmpl"}

--- Go's reflect IsZero of a field decoded by yaml.v3: nil, false, "", 0; a
--- list or map given (even empty: yaml.v3 decode.go makes it with
--- reflect.MakeSlice/MakeMap, non-nil) is not zero, a
--- pointer (schematic: {}) neither; a struct value (machineSpec) is zero
--- when every field is.
local function go_zero(v, struct)
  v = given(v)
  if v == nil or v == false or v == "" or v == 0 then return true end
  if type(v) == "table" and struct then
    for _, x in pairs(v) do if not go_zero(x, true) then return false end end
    return true
  end
  return false
end
M.go_zero = go_zero

local STRUCT_FIELDS = {machineSpec = true}

local function concat(a, b)
  local out = {}
  for _, x in ipairs(a or {}) do out[#out + 1] = x end
  for _, x in ipairs(b or {}) do out[#out + 1] = x end
  return out
end

--- The node's effective settings: `node` merged over `group`.
---@param node table a nodes[] entry
---@param group table? controlPlane: or worker:
---@param tv string talhelper version
function M.merge(node, group, tv)
  group = type(given(group)) == "table" and group or {}
  local merged = {}
  for k, v in pairs(node) do merged[k] = v end
  local lists = {}
  if nonzero(group.patches) and node.overridePatches ~= true then
    lists.patches = concat(given(group.patches), given(node.patches))
  end
  if nonzero(group.extraManifests) and node.overrideExtraManifests ~= true then
    lists.extraManifests = concat(given(node.extraManifests), given(group.extraManifests))
  end
  if V.at_least(tv, V.CERTSANS_APPEND) and nonzero(group.certSANs) and node.overrideMachineCertSANs ~= true then
    lists.certSANs = concat(given(node.certSANs), given(group.certSANs))
  end
  for _, f in ipairs(M.NODE_CONFIG_FIELDS) do
    local v = lists[f] or given(node[f])
    if go_zero(v, STRUCT_FIELDS[f]) then v = given(group[f]) end
    merged[f] = v
  end
  return merged
end

-- }======

-- {====== versions, images, names

--- Talos version as talhelper uses it: talosVersion with a "v", else the
--- LatestTalosVersion of that talhelper release.
function M.talos_version(c, tv)
  local v = given(c.talosVersion)
  if v == nil or v == "" then return V.latest_talos(tv) end
  v = tostring(v)
  return v:match("^v") and v or "v" .. v
end

--- Go text/template of the few forms talhelper's templates use:
--- {{.Field}}, {{ .Field }}, {{if .Field}}x{{end}}.
local function template(t, data)
  local s = t:gsub("{{%s*if%s+%.(%w+)%s*}}(.-){{%s*end%s*}}", function(k, body)
    if data[k] and data[k] ~= "" then return body end
    return ""
  end)
  return (s:gsub("{{%s*%.(%w+)%s*}}", function(k) return tostring(data[k] == nil and "" or data[k]) end))
end
M.template = template

local function machine_spec(n)
  local s = type(given(n.machineSpec)) == "table" and n.machineSpec or {}
  return {mode = nonzero(s.mode) and s.mode or "metal", arch = nonzero(s.arch) and s.arch or "amd64",
          secureboot = s.secureboot == true, use_uki = s.useUKI == true}
end

--- The installer image talhelper writes for a merged node (nodeconfig.go
--- installerURL, command.go): talosImageURL:version wins; else the
--- factory's image of the node's schematic: block (an empty one when none)
--- by the installer template of that talhelper version.
---@param n table merged node
---@param c table the config
---@param version string Talos version
---@param tv string talhelper version
---@param schematic_id fun(s:table):string
function M.installer(n, c, version, tv, schematic_id)
  if nonzero(n.talosImageURL) then return n.talosImageURL .. ":" .. version end
  local f = type(given(c.imageFactory)) == "table" and c.imageFactory or {}
  local spec = machine_spec(n)
  local tmpl = nonzero(f.installerURLTmpl) and f.installerURLTmpl or V.installer_template(tv)
  local sch = type(given(n.schematic)) == "table" and n.schematic or {}
  return template(tmpl, {RegistryURL = nonzero(f.registryURL) and f.registryURL or "factory.talos.dev",
    ID = schematic_id(sch), Version = version, Mode = spec.mode, Secureboot = spec.secureboot})
end

--- The file name of a node's config (outputfilename.go; filenameTmpl from
--- v3.0.24, <clusterName>-<hostname>.yaml always before).
function M.file_name(n, c, tv)
  local t = "{{ .ClusterName }}-{{ .Hostname }}.yaml"
  if V.at_least(tv, V.FILENAME_TMPL) and nonzero(n.filenameTmpl) then t = n.filenameTmpl end
  return template(t, {ClusterName = given(c.clusterName) or "", Hostname = given(n.hostname) or "",
                      IPAddress = given(n.ipAddress) or "",
                      Role = n.controlPlane == true and "controlplane" or "worker"})
end

--- A node's addresses (GetIPAddresses: ipAddress split on ",", trimmed).
function M.ips(n)
  local out = {}
  for ip in (tostring(given(n.ipAddress) or "") .. ","):gmatch("([^,]*),") do
    out[#out + 1] = ip:match("^%s*(.-)%s*$")
  end
  return out
end

-- }======

M.validate = require("sim.talos.talhelper_validate").validate

-- {====== patches

local function yaml_text(v) return yaml.encode(v) end

--- The patches talhelper itself makes of a merged node's fields, in the
--- order nodeconfig.go sets them on the generated config (before the
--- talconfig's patches). Fields set wholesale (replacing what Talos
--- generated: nodeLabels replaces the control plane's own label) are
--- JSON6902 `add` operations; lists the generator leaves empty are
--- strategic merge patches.
local function own_patches(n, ctx)
  local out, multidoc_net = {}, V.talos_at_least(ctx.talos_version, "v1.12.0")
  local function add(name, machine) out[#out + 1] = {name = "talhelper:" .. name, source = "talhelper",
    kind = "strategic", text = yaml_text({machine = machine})} end
  local function set(name, path, value) out[#out + 1] = {name = "talhelper:" .. name, source = "talhelper",
    kind = "json6902", text = yaml_text({{op = "add", path = path, value = value}})} end
  if not multidoc_net then
    if n.ignoreHostname ~= true then add("hostname", {network = {hostname = n.hostname}}) end
    if nonzero(n.nameservers) then add("nameservers", {network = {nameservers = n.nameservers}}) end
    if n.disableSearchDomain == true then add("disableSearchDomain", {network = {disableSearchDomain = true}}) end
    if nonzero(n.networkInterfaces) then add("networkInterfaces", {network = {interfaces = n.networkInterfaces}}) end
  end
  if nonzero(n.installDisk) then add("installDisk", {install = {disk = n.installDisk}}) end
  if given(n.installDiskSelector) ~= nil then
    add("installDiskSelector", {install = {diskSelector = n.installDiskSelector}})
  end
  if nonzero(n.machineDisks) then add("machineDisks", {disks = n.machineDisks}) end
  if nonzero(n.kernelModules) then set("kernelModules", "/machine/kernel", {modules = n.kernelModules}) end
  for _, k in ipairs({"nodeAnnotations", "nodeLabels", "nodeTaints"}) do
    if given(n[k]) ~= nil then set(k, "/machine/" .. k, yaml.map(n[k])) end
  end
  if nonzero(n.machineFiles) then add("machineFiles", {files = n.machineFiles}) end
  local sch = type(given(n.schematic)) == "table" and given(n.schematic) or {}
  local args = type(sch.customization) == "table" and given(sch.customization.extraKernelArgs)
  if nonzero(args) and not machine_spec(n).use_uki and not multidoc_net then
    add("extraKernelArgs", {install = {extraKernelArgs = args}})
  end
  if nonzero(n.certSANs) then add("certSANs", {certSANs = n.certSANs}) end
  add("installImage", {install = {image = ctx.installer}})
  return out
end

local function esc_docs(n)
  local docs = {}
  for _, e in ipairs(given(n.extensionServices) or {}) do
    local d = yaml.order({apiVersion = "v1alpha1", kind = "ExtensionServiceConfig", name = e.name,
      configFiles = given(e.configFiles), environment = given(e.environment)},
      {"apiVersion", "kind", "name", "configFiles", "environment"})
    docs[#docs + 1] = d
  end
  return docs
end

--- The documents multidocs.go adds (one strategic merge patch): resolver
--- and hostname configs (Talos v1.12+), the firewall, the
--- ExtensionServiceConfigs, volumes. Network link documents (v1.12+) are
--- not made (listed as unmodelled).
local function multidoc_patch(n, ctx)
  local docs, multidoc_net = {}, V.talos_at_least(ctx.talos_version, "v1.12.0")
  if multidoc_net and (nonzero(n.nameservers) or n.disableSearchDomain == true) then
    local ns = {}
    for _, a in ipairs(given(n.nameservers) or {}) do ns[#ns + 1] = {address = a} end
    docs[#docs + 1] = yaml.order({apiVersion = "v1alpha1", kind = "ResolverConfig", nameservers = ns,
      searchDomains = {disableDefault = n.disableSearchDomain == true}}, {"apiVersion", "kind", "nameservers"})
  end
  if multidoc_net then
    local h = n.ignoreHostname == true and {auto = "stable"} or {auto = "off", hostname = n.hostname}
    docs[#docs + 1] = yaml.order({apiVersion = "v1alpha1", kind = "HostnameConfig", auto = h.auto,
                                  hostname = h.hostname}, {"apiVersion", "kind", "auto", "hostname"})
  end
  local fw = given(n.ingressFirewall)
  if type(fw) == "table" then
    docs[#docs + 1] = yaml.order({apiVersion = "v1alpha1", kind = "NetworkDefaultActionConfig",
      ingress = given(fw.defaultAction) or ""}, {"apiVersion", "kind", "ingress"})
    for _, r in ipairs(given(fw.rules) or {}) do
      docs[#docs + 1] = yaml.order({apiVersion = "v1alpha1", kind = "NetworkRuleConfig", name = r.name,
        portSelector = r.portSelector, ingress = r.ingress}, {"apiVersion", "kind", "name", "portSelector", "ingress"})
    end
  end
  for _, d in ipairs(esc_docs(n)) do docs[#docs + 1] = d end
  for _, kv in ipairs({{"volumes", "VolumeConfig"}, {"userVolumes", "UserVolumeConfig"}}) do
    for _, vol in ipairs(given(n[kv[1]]) or {}) do
      local d = {apiVersion = "v1alpha1", kind = kv[2]}
      for k, x in pairs(vol) do d[k] = x end
      docs[#docs + 1] = yaml.order(d, {"apiVersion", "kind", "name"})
    end
  end
  if #docs == 0 then return nil end
  return {name = "talhelper:multidocs", source = "talhelper", kind = "strategic", text = yaml.encode_all(docs)}
end

--- One of the talconfig's patches as PatchesPatcher takes it: a file
--- (`@path`; empty ones skipped; envsubst'd) or inline text (substituted
--- with the whole file already). Go templates in patches ({{ }}) are
--- kept as written (unmodelled).
local function user_patch(p, source, ctx, k)
  if type(p) ~= "string" then
    return nil, "failed to parse config file: failed to unmarshal config file: yaml: unmarshal errors:\n"
      .. "  cannot unmarshal !!map into string (a patch must be a string: inline YAML text or @file)"
  end
  local file = p:match("^@(.*)$")
  if not file then
    local okd, d = pcall(yaml.decode, p)
    local kind = okd and type(d) == "table" and #d > 0 and "json6902" or "strategic"
    return {name = ("inline patch %d of the %s patches"):format(k, source), source = source, kind = kind, text = p}
  end
  local path = file:sub(1, 1) == "/" and file or join(ctx.cwd, file)
  local text = ctx.read(path)
  if text == nil then
    return nil, fmt("failed to generate talos config: open %s: no such file or directory", file)
  end
  if not text:find("%S") then return false end     -- isEmptyFile: skipped
  local out, err = envsubst.substitute_yaml(text, ctx.env)
  if not out then return nil, "failed to generate talos config: " .. err end
  local okd, d = pcall(yaml.decode_all, out, {name = file})
  local kind = okd and type(d[1]) == "table" and #d[1] > 0 and "json6902" or "strategic"
  return {name = file, source = source, kind = kind, text = out}
end

--- The node's patches in talhelper's order: its own, the multi-document
--- patch, the node's (group's first, then the node's own: both in
--- node.Patches), then the global ones (pkg/generate/config.go applies
--- c.Patches after node.Patches).
local function node_patches(n, c, ctx)
  local out = own_patches(n, ctx)
  local md = multidoc_patch(n, ctx)
  if md then out[#out + 1] = md end
  local function take(list, source)
    for k, p in ipairs(given(list) or {}) do
      local r, err = user_patch(p, source, ctx, k)
      if r == nil then return nil, err end
      if r then out[#out + 1] = r end
    end
    return true
  end
  local ok, err = take(n.patches, "node")
  if not ok then return nil, err end
  ok, err = take(c.patches, "global")
  if not ok then return nil, err end
  return out
end

-- }======

-- {====== load

--- The config text talhelper parses: the env files loaded, comments
--- stripped, ${VAR} substituted (noUnset, noEmpty), decoded; patch paths
--- made absolute beside the config (v3.0.7+; relative to the working
--- directory before).
local function load(path, opts)
  local tv = opts.talhelper_version or V.DEFAULT
  if not V.known(tv) then
    return nil, fmt("talhelper %s is not modelled (the simulated talhelper knows %s .. %s)", tostring(tv),
                    V.OLDEST, V.DEFAULT)
  end
  local cwd = opts.cwd or "."
  local abs = join(cwd, path)
  local text = opts.read(abs)
  if text == nil then
    if V.at_least(tv, "v3.0.3") then
      return nil, fmt("failed to parse config file: failed to read config file: %s doesn't exist. Refer to this docs "
        .. "for more information on how to create one: https://budimanjojo.github.io/talhelper/latest/guides/"
        .. "#example-talconfigyaml", path)
    end
    return nil, fmt("failed to parse config file: failed to read config file: open %s: no such file or directory", path)
  end
  local files = M.env_files(opts.read, cwd, opts.env_files)
  local env, from_files = env_with_files(opts.env or function() return nil end, files)
  local out, err = envsubst.substitute_yaml(text, env)
  if not out then return nil, "failed to parse config file: failed to substitute env: " .. err end
  local okd, c = pcall(yaml.decode, out, {name = path})
  if not okd then return nil, "failed to parse config file: failed to unmarshal config file: " .. tostring(c) end
  if type(c) ~= "table" then c = {} end
  local base = V.at_least(tv, "v3.0.7") and dir_of(abs) or nil     -- nil: paths stay as written
  return {c = c, env = env, env_files = files, from_files = from_files, tv = tv, base = base, cwd = cwd,
          abs = abs, text = out}
end

local function absolute_patches(list, base)
  if not base or not is_list(given(list)) then return list end
  local out = {}
  for i, p in ipairs(list) do
    local f = type(p) == "string" and p:match("^@%s*(.-)%s*$")
    out[i] = (f and f ~= "") and ("@" .. join(base, f)) or p
  end
  return out
end

local function gen_input(c, n, version)
  local function strs(v) return is_list(given(v)) and v or nil end
  -- defaults.go endpointisIPv6: netip.ParseAddr of the whole endpoint, so
  -- a URL (https://[fd00::1]:6443) is never IPv6 there: the IPv4 defaults
  -- (Talos constants.DefaultIPv4PodNet/ServiceNet, v1.11.0)
  local ep = tostring(given(c.endpoint) or "")
  local v6 = ep:find(":", 1, true) ~= nil and ep:match("^[%x:.]+$") ~= nil
  return {talos_version = version, kubernetes_version = (tostring(given(c.kubernetesVersion) or "")):gsub("^v", ""),
    cluster_name = given(c.clusterName), endpoint = given(c.endpoint),
    role = n.controlPlane == true and "controlplane" or "worker",
    install_image = "ghcr.io/siderolabs/installer:" .. version,
    pod_cidrs = strs(c.clusterPodNets) or {v6 and "fc00:db8:10::/56" or "10.244.0.0/16"},
    service_cidrs = strs(c.clusterSvcNets) or {v6 and "fc00:db8:20::/112" or "10.96.0.0/12"},
    dns_domain = nonzero(c.domain) and c.domain or nil,
    allow_scheduling_on_control_planes = c.allowSchedulingOnMasters == true or c.allowSchedulingOnControlPlanes == true,
    additional_machine_cert_sans = strs(c.additionalMachineCertSans),
    additional_sans = strs(c.additionalApiServerCertSans),
    cni = given(c.cniConfig), inline_manifests = given(c.inlineManifests)}
end

-- }======

--- Renders a talhelper directory.
---@param path string talconfig.yaml (relative to opts.cwd)
---@param opts table {env = fun(name):string?, cwd = dir, talhelper_version = "v3.1.16",
---  read = fun(path):string?, schematic_id = fun(schematic):string, env_files = {...}}
---@return table? plan, string? err talhelper's message (what follows log.Fatalf's time stamp)
function M.render(path, opts)
  local L, err = load(path, opts)
  if not L then return nil, err end
  local c, tv = L.c, L.tv
  c.patches = absolute_patches(c.patches, L.base)
  for _, g in ipairs({"controlPlane", "worker"}) do
    if type(given(c[g])) == "table" then c[g].patches = absolute_patches(c[g].patches, L.base) end
  end
  local version = M.talos_version(c, tv)
  local merged = {}
  for i, n in ipairs(type(given(c.nodes)) == "table" and c.nodes or {}) do
    if type(n) == "table" then
      n.patches = absolute_patches(n.patches, L.base)
      merged[i] = M.merge(n, n.controlPlane == true and c.controlPlane or c.worker, tv)
    end
  end
  local problems = M.validate(c, merged, version, tv)
  if problems then return nil, "failed to parse config file: please fix issues with your config file", problems end
  local sid = opts.schematic_id or require("factory").id
  local plan = {talhelper_version = tv, talos_version = version, cluster_name = c.clusterName,
    kubernetes_version = (tostring(given(c.kubernetesVersion) or "")):gsub("^v", ""), endpoint = c.endpoint,
    config = c, text = L.text, env_files = L.env_files, env_from_files = L.from_files, nodes = {}}
  for _, n in ipairs(merged) do
    local installer = M.installer(n, c, version, tv, sid)
    local ctx = {talos_version = version, installer = installer, read = opts.read, env = L.env, cwd = L.cwd}
    local node = {hostname = n.hostname, ip = M.ips(n)[1], ips = M.ips(n), control_plane = n.controlPlane == true,
      role = n.controlPlane == true and "controlplane" or "worker", file_name = M.file_name(n, c, tv),
      installer = installer, merged = n, gen_input = gen_input(c, n, version), config = c}
    plan.nodes[#plan.nodes + 1] = node
    node.ctx = ctx
  end
  return plan
end

--- The node's patches (they read files: done per node, when its config is
--- generated, as talhelper does, so a missing file fails genconfig and
--- not gencommand). Called as patches(node) or patches(plan, node).
---@param plan table
---@param node? table one of plan.nodes
---@return table? patches {{name, source, kind, text}}, string? err
function M.patches(plan, node)
  node = node or plan
  if node.patches then return node.patches end
  local p, err = node_patches(node.merged, node.config, node.ctx)
  node.patches = p
  return p, err
end

--- What `talhelper gencommand upgrade` prints (command.go
--- GenerateUpgradeCommand): per selected address, `talosctl upgrade
--- --talosconfig=OUT/talosconfig --nodes=IP --image=URL [extra flags];`.
---@param plan table
---@param out_dir string the -o value as given ("./clusterconfig")
---@param node? string -n: a hostname or one of a node's addresses
---@param extra? string[] --extra-flags
---@return string? stdout, string? err
function M.gencommand_upgrade(plan, out_dir, node, extra)
  local lines = {}
  for _, n in ipairs(plan.nodes) do
    local by_ip = false
    for _, ip in ipairs(n.ips) do if node and ip == node then by_ip = true end end
    local function line(ip)
      local flags = {"--talosconfig=" .. out_dir .. "/talosconfig", "--nodes=" .. ip, "--image=" .. n.installer}
      for _, f in ipairs(extra or {}) do flags[#flags + 1] = f end
      lines[#lines + 1] = "talosctl upgrade " .. table.concat(flags, " ") .. ";"
    end
    if by_ip then line(node)
    elseif node == nil or node == "" or node == n.hostname then
      for _, ip in ipairs(n.ips) do line(ip) end
    end
  end
  if #lines == 0 then
    return nil, fmt("failed to generate talosctl upgrade command: node with IP or hostname %s not found", node or "")
  end
  return table.concat(lines, "\n") .. "\n"
end

M.gitignore = require "gitignore"

-- The documents of one node's input and patches are the same whenever
-- they meet again (the world's start and the first genconfig render the
-- same talconfig.yaml for every node): kept by a key of the input and the
-- patches' texts, handed out as copies (callers change their documents).
local docs_memo = {}

local function key_of(v, out)
  local t = type(v)
  if t == "string" then out[#out + 1] = fmt("%q", v)
  elseif t == "number" or t == "boolean" then out[#out + 1] = t .. ":" .. tostring(v)
  elseif v == yaml.null then out[#out + 1] = "null"
  elseif t ~= "table" then return false
  else
    local mt = getmetatable(v)
    if mt ~= nil and mt.__runbook_shape == nil and mt[1] == nil then return false end
    out[#out + 1] = "{" .. tostring(mt and mt.__runbook_shape) .. ":"
    for _, k in ipairs(mt or {}) do out[#out + 1] = fmt("%q", tostring(k)) end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b)
      if type(a) ~= type(b) or type(a) == "boolean" then return tostring(a) < tostring(b) end
      return a < b
    end)
    for _, k in ipairs(keys) do
      if not key_of(k, out) or not key_of(v[k], out) then return false end
    end
    out[#out + 1] = "}"
  end
  return true
end

--- The memo's key of a node's documents, or nil when a value cannot be keyed.
local function docs_key(input, patches, version)
  local out = {version}
  if not key_of(input, out) then return nil end
  for _, p in ipairs(patches) do
    for _, f in ipairs{p.source or "", p.kind or "", p.name or "", p.text or ""} do
      if type(f) ~= "string" then return nil end
      out[#out + 1] = fmt("%q", f)
    end
  end
  return table.concat(out, "\0")
end

--- A deep copy keeping each table's metatable (the yaml marks) and which
--- tables are one and the same.
local function copy_docs(v, seen)
  if type(v) ~= "table" then return v end
  if seen[v] then return seen[v] end
  local out = {}
  seen[v] = out
  for k, x in pairs(v) do out[copy_docs(k, seen)] = copy_docs(x, seen) end
  return setmetatable(out, getmetatable(v))
end

local function render_docs(input, patches, v)
  local gen = require "sim.talos.generate"
  local cp = require "sim.talos.configpatcher"
  local jp = require "sim.talos.jsonpatch"
  local okg, docs = pcall(gen.documents, input)
  if not okg then return nil, tostring(docs) end
  for _, p in ipairs(patches) do
    if p.source == "talhelper" and p.kind == "json6902" then
      local ops = require("runbook.yaml").decode(p.text, {name = p.name})
      for i, d in ipairs(docs) do
        if type(d) == "table" and d.version == "v1alpha1" and d.kind == nil then
          local out, jerr = jp.apply(d, ops)
          if not out then return nil, "failure applying rfc6902 patches to talos machine config: " .. jerr end
          docs[i] = out
        end
      end
    else
      local loaded, lerr = cp.load(p.text, p.name, {version = v})
      if not loaded then return nil, lerr end
      local out, aerr = cp.apply(docs, {loaded}, {version = v})
      if not out then return nil, aerr end
      docs = out
    end
  end
  return docs
end

--- A node's whole config as talhelper writes it: Talos's generator for the
--- node's input (sim/talos/generate.lua), talhelper's own settings, then
--- the talconfig's patches in talhelper's order (sim/talos/configpatcher.lua,
--- by the rules of the Talos machinery talhelper vendors: v1.13's for
--- v3.1.x, unless `version` says otherwise). talhelper's own settings are
--- assignments to the v1alpha1 struct (pkg/talos/nodeconfig.go), not
--- patches: the JSON6902 operations standing for them apply to that
--- document alone, whatever else the config holds. Returns the documents,
--- or nil and talhelper's error.
---@param node table a node of render()'s plan
---@param version? string Talos machinery version of the patch rules
function M.docs_for(node, version)
  local patches, err = M.patches(node)
  if not patches then return nil, err end
  local v = version or "v1.13"
  local key = docs_key(node.gen_input, patches, v)
  local hit = key and docs_memo[key]
  if hit then return copy_docs(hit, {}) end
  local docs, derr = render_docs(node.gen_input, patches, v)
  if docs and key then docs_memo[key] = copy_docs(docs, {}) end
  return docs, derr
end

return M

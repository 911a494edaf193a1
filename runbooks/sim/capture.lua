--- `runbook world capture` and the first half of `runbook plan`: reads the
--- live cluster, read-only, into a scenario that rehearses like a
--- hand-written one (docs/simulation.md, "A capture of your cluster").
---
--- It starts from the scenario talconfig.yaml gives (sim/from_talconfig)
--- and replaces what the file cannot know with what the cluster says:
--- each node's Talos version, extensions and schematic, whether it already
--- has a tailscale ExtensionServiceConfig (a yes or no: no value of it is
--- kept), its certSANs and etcd's health; the Kubernetes version and the
--- operator's pods; the tailnet's name, state and devices (their routes
--- through the API when a key is given); the factory's content of every
--- schematic ID and the versions and extensions it offers. Every command is
--- a read (docs/simulation.md lists them); a read that fails is named in
--- the scenario's `captured.failed` and in a warning, and the capture goes on.
local ctx = ...   -- the shared context: capture starts from ctx.from_talconfig

local async = require "runbook.async"
local errors = require "runbook.error"
local json = require "runbook.json"
local sys = require "runbook.sys"
local time = require "runbook.time"
local yaml = require "runbook.yaml"

local factory = require "factory"
local kube = require "kube"
local talos = require "talos"
local tailscale = require "tailscale"

local fmt = string.format

local M = {}

-- the capture's own variables: the rollout's names for where things are
local SPECS = {
  talconfig = {type = "string", default = "talconfig.yaml"},
  talosconfig = {type = "string"},
  factory_url = {type = "string", default = factory.DEFAULT_URL},
  tailscale_api = {type = "string", default = "https://api.tailscale.com"},
  api_key = {type = "secret", env = "TS_API_KEY"},
}
M.SPECS = SPECS

--- The capture's variables. Strict (`world capture`): an unknown one is
--- exit 2. Not strict (`plan`): the runbook's other variables are its own.
local function variables(opts, strict)
  local o = {vars = {}}
  for _, kv in ipairs(opts.vars or {}) do
    local k = kv:match("^([^=]+)=") or kv
    if strict or SPECS[k] or SPECS[(k:gsub("_file$", ""))] then o.vars[#o.vars + 1] = kv end
  end
  -- the file is read either way: in `plan` it is the runbook's own, and
  -- holds the runbook's other variables too, which are left to it
  o.vars_file, o.file_has_others = opts.vars_file, not strict
  return require("runbook.vars").resolve(SPECS, o, {}, {})
end

--- The server's Tag of `talosctl version` ("Server:" section).
local function server_version(ip)
  local out = talos.run(ip, "version").stdout
  return out:match("Server:.-Tag:%s*(%S+)")
end

--- Reads one node; returns its facts, each read's failure in `failed`.
local function read_node(n, failed)
  local out = {}
  local function try(what, fn)
    local ok, err = pcall(fn)
    if not ok then failed[#failed + 1] = {read = fmt("%s on %s", what, n.hostname), error = tostring(errors.is(err) and err.message or err)} end
  end
  try("talosctl version", function() out.version = server_version(n.ip) end)
  try("talosctl get extensions", function() out.extensions, out.schematic_id = talos.extensions(n.ip) end)
  -- whether a tailscale service is configured: the environment (the auth
  -- key) is dropped here, only the yes or no is kept
  try("talosctl get extensionserviceconfigs", function()
    out.configured = talos.extension_service_configs(n.ip).tailscale ~= nil
  end)
  -- the machine config holds the cluster's secrets: they are replaced by
  -- placeholders in memory (sim/talos/secrets.lua), before anything is
  -- kept; the node's whole config is kept so that a rehearsal diffs what
  -- talhelper renders against what the node runs
  try("talosctl read /system/state/config.yaml", function()
    local docs = yaml.decode_all(talos.machine_config(n.ip), {name = "the machine config of " .. n.hostname})
    out.config = require("sim.talos.secrets").redact(docs)
  end)
  return out
end

--- The scenario's node from the file's node and the live facts.
local function merge_node(node, live, schematics, failed)
  -- talosctl names an extension by its short name (`tailscale`); the
  -- scenario by its image (`siderolabs/tailscale`): with the schematic
  -- known, the world takes the names from it; without, an official
  -- extension's image is assumed (siderolabs/<name>)
  if live.extensions then
    local full = {}
    for i, e in ipairs(live.extensions) do full[i] = e:find("/", 1, true) and e or ("siderolabs/" .. e) end
    node.extensions = json.array(full)
  end
  if live.configured then node.tailscaleConfigured = true end
  if live.config then
    node.config = live.config
    local m = type(live.config[1]) == "table" and live.config[1].machine
    for _, d in ipairs(live.config) do
      if type(d) == "table" and d.version == "v1alpha1" and d.kind == nil then m = d.machine end
    end
    local image = type(m) == "table" and type(m.install) == "table" and m.install.image
    if type(image) == "string" then node.image = image end
  end
  local id = live.schematic_id
  if not id then return end
  local s = schematics[id]
  if s and factory.id(s) ~= id then
    failed[#failed + 1] = {read = "the factory's schematic " .. id:sub(1, 12),
                           error = "its content does not hash to its ID: rehearsed as the ID with the node's extensions"}
    s = nil
  end
  if s then
    node.schematic, node.schematicID, node.extensions = s, nil, nil
  else
    node.schematicID, node.schematic = id, nil
    node.extensions = node.extensions or json.array({})
  end
end

--- The tailnet as this machine and the API see it.
local function read_tailnet(scen, v, failed, cluster_names)
  local ok, err = pcall(function()
    local _, st = tailscale.peers()
    local t = scen.tailnet
    t.name = (st.MagicDNSSuffix or ""):gsub("%.$", "")
    if t.name == "" then t.name = nil end
    t.adminState = st.BackendState
    -- this machine's RouteAll (`tailscale debug prefs`), when it can be read
    local accepts = tailscale.accepts_routes()
    if accepts ~= nil then t.acceptRoutes = accepts end
    local devs = {}
    for _, p in ipairs(tailscale.peers_of(st)) do
      -- the cluster's own nodes are the world's to model (tailscaleConfigured)
      if not cluster_names[p.name] then
        devs[#devs + 1] = {hostname = p.name, online = p.online, routes = #p.primary_routes > 0 and p.primary_routes or nil}
      end
    end
    t.devices = devs
  end)
  if not ok then failed[#failed + 1] = {read = "tailscale status --json", error = tostring(errors.is(err) and err.message or err)} end
  if not v.api_key then return end
  local ok2, err2 = pcall(function()
    local by = {}
    for _, d in ipairs(scen.tailnet.devices or {}) do by[d.hostname] = d end
    for _, d in ipairs(tailscale.devices(v.tailscale_api, v.api_key)) do
      local short = (d.name or ""):match("^([^.]+)")
      local mine = by[short]
      if mine then
        mine.tags = d.tags
        if d.advertisedRoutes and #d.advertisedRoutes > 0 then mine.routes = d.enabledRoutes end
      end
    end
  end)
  if not ok2 then failed[#failed + 1] = {read = "GET /api/v2/tailnet/-/devices", error = tostring(errors.is(err2) and err2.message or err2)} end
end

--- Captures the cluster; returns the scenario's YAML text and a summary
--- {nodes, reads_failed = {{read, error}}}.
---@param opts table sys.options()
---@param strict boolean refuse variables that are not the capture's
function M.capture(opts, strict)
  local v = variables(opts, strict)
  talos.talosconfig = v.talosconfig
  if not require("runbook.fs.core").stat(v.talconfig) then
    error(errors.new("usage", fmt("the capture starts from the cluster's talconfig.yaml: there is no %s here "
      .. "(run it in the talhelper directory, or give --var talconfig=PATH)", v.talconfig), {exit = 2}), 0)
  end
  local scen, _, _, tc = ctx.from_talconfig.scenario(v.talconfig)
  local failed = {}
  local live = async.map(tc.nodes, function(n) return read_node(n, failed) end, {concurrency = 8})
  -- the factory: the content of every ID, what it offers
  local schematics = {}
  for _, l in ipairs(live) do
    if l.schematic_id and schematics[l.schematic_id] == nil then
      local ok, s = pcall(factory.fetch, l.schematic_id, v.factory_url)
      if ok and s then schematics[l.schematic_id] = s
      else
        schematics[l.schematic_id] = false
        failed[#failed + 1] = {read = "GET /schematics/" .. l.schematic_id:sub(1, 12) .. "…",
                               error = ok and "the factory does not know it" or tostring(errors.is(s) and s.message or s)}
      end
    end
  end
  local names = {}
  for i, node in ipairs(scen.cluster.nodes) do
    merge_node(node, live[i], schematics, failed)
    names[tailscale.device_name(node.hostname)] = true
    if live[i].version then scen.cluster.talosVersion = live[i].version end
  end
  -- this machine's talosctl: the runbooks check it against the nodes'
  -- version and the version an upgrade goes to
  local okc, client = pcall(talos.client_version)
  if okc and client ~= scen.cluster.talosVersion then scen.cluster.talosctlVersion = client end
  local ok, vers = pcall(function()
    return require("runbook.http").get(v.factory_url .. "/versions", {timeout = 60, check = true}):json()
  end)
  if ok then scen.factory.versions = vers else failed[#failed + 1] = {read = "GET /versions", error = tostring(vers)} end
  local ok2, offered = pcall(factory.official_extensions, scen.cluster.talosVersion, v.factory_url)
  if ok2 then
    local list = {}
    for name in pairs(offered) do list[#list + 1] = name end
    table.sort(list)
    scen.factory.extensions = list
  else
    failed[#failed + 1] = {read = "GET /version/.../extensions/official", error = tostring(errors.is(offered) and offered.message or offered)}
  end
  -- a runbook that moves to another version (talos-upgrade.lua's
  -- --var version=) is rehearsed with what the factory offers for it
  for _, kv in ipairs(strict and {} or opts.vars or {}) do
    local want = kv:match("^version=(v?%d+%.%d+%.%d+)$")
    if want then
      want = want:sub(1, 1) == "v" and want or "v" .. want
      local ok3, other = pcall(factory.official_extensions, want, v.factory_url)
      if ok3 then
        local list = {}
        for name in pairs(other) do list[#list + 1] = name end
        table.sort(list)
        scen.factory.extensionsByVersion = {[want] = list, [scen.cluster.talosVersion] = scen.factory.extensions}
      end
    end
  end
  -- etcd, Kubernetes, the operator
  local cps = {}
  for _, n in ipairs(tc.nodes) do if n.control_plane then cps[#cps + 1] = n.ip end end
  -- a member that reports an error is the world's etcd_unhealthy fault
  local notes = {}
  local ok3, health = pcall(talos.etcd_health, cps)
  if not ok3 then failed[#failed + 1] = {read = "talosctl etcd status", error = tostring(errors.is(health) and health.message or health)}
  else
    for _, m in ipairs(health.members or {}) do
      for _, n in ipairs(tc.nodes) do
        if m.errors ~= "" and m.node == n.ip then scen.faults[#scen.faults + 1] = {type = "etcd_unhealthy", node = n.hostname} end
      end
    end
    for _, p in ipairs(health.problems or {}) do notes[#notes + 1] = "etcd: " .. p end
  end
  local ok4, knodes = pcall(kube.nodes)
  if ok4 then
    for _, k in ipairs(knodes) do
      if not k.ready then notes[#notes + 1] = fmt("Kubernetes: %s is not Ready (%s)", k.name, tostring(k.reason)) end
    end
  else failed[#failed + 1] = {read = "kubectl get nodes", error = tostring(errors.is(knodes) and knodes.message or knodes)} end
  local op = scen.tailnet.operator
  local ok5, pods = pcall(kube.pods, op.namespace)
  if ok5 then
    local ready = 0
    for _, p in ipairs(pods) do if p.ready then ready = ready + 1 end end
    op.pods = ready
  else failed[#failed + 1] = {read = "kubectl get pods -n " .. op.namespace, error = tostring(errors.is(pods) and pods.message or pods)} end
  read_tailnet(scen, v, failed, names)
  -- a literal key or password written into talconfig.yaml stays out of
  -- the scenario: the same rules as the configs' ExtensionServiceConfigs
  local redacted
  scen.talconfig, redacted = require("sim.talos.secrets").redact_talconfig(tc.text)
  scen.faults = json.array(scen.faults)      -- an empty list stays a list in YAML
  if scen.tailnet.devices then scen.tailnet.devices = json.array(scen.tailnet.devices) end
  scen.captured = {at = time.iso(), from = v.talconfig, failed = #failed > 0 and failed or nil,
                   notes = #notes > 0 and notes or nil,
                   unknown = {"the tailnet's autoApprovers (the ACL is not read): assumed to approve the service CIDR",
                              "the auth key's kind: assumed reusable and pre-authorized",
                              "how long the nodes take to reboot: 90 to 150 s"}}
  local text = "# captured by `runbook world capture`: a scenario (docs/simulation.md); no secret is kept\n"
    .. fmt("# talconfig.yaml: %s\n", redacted > 0
      and fmt("%d literal secret-looking value%s replaced by placeholders (environment items, password/auth/... keys, tskey-...)",
              redacted, redacted == 1 and "" or "s")
      or "no literal secret-looking value found (${VAR} references are kept)")
    .. yaml.encode(scen)
  return sys.mask(text), {nodes = #tc.nodes, failed = failed}
end

return M

--- A scenario built from the operator's own talconfig.yaml: what a dry-run
--- without --scenario rehearses. Read offline, as talhelper reads it (the
--- ${VAR} substitutions from the environment and talenv.yaml, the
--- controlPlane:/worker: group settings): the nodes, their addresses and
--- roles, the Talos and Kubernetes versions, the service and pod CIDRs and
--- each node's schematic. What the file cannot tell is said, not guessed
--- silently: the extensions behind a schematic ID in talosImageURL (the
--- factory is not asked offline), the tailnet, the nodes' live state.
local _ = ... -- the shared context (unused: this part reads only the file)

local factory = require "factory"
local talconfig = require "talconfig"
local yaml = require "runbook.yaml"

local fmt = string.format

local M = {}

-- the tailnet a talconfig.yaml does not name: a stand-in, said so
local STAND_IN_TAILNET = "tail0000.ts.net"

local function given(v)
  if v == yaml.null then return nil end
  return v
end

--- The node as the scenario has it, and any warning about it.
local function node_of(n, version, warnings)
  local out = {hostname = n.hostname, ip = n.ip, role = n.control_plane and "controlplane" or "worker"}
  if type(n.schematic) == "table" then
    -- a schematic: block: talhelper asks the factory for its ID; the world
    -- computes the same ID (factory.id, the canonical form)
    out.schematic = n.schematic
    out.extensions = factory.extensions(n.schematic)
    return out
  end
  local p = n.image_url and factory.parse_image(n.image_url)
  if p and p.factory then
    out.image = fmt("%s/%s/%s:%s", p.registry, p.kind, p.id, version)
    out.schematicID = p.id
    if p.id ~= factory.VANILLA_ID then
      warnings[#warnings + 1] = fmt("%s: talosImageURL names schematic %s…; what it holds is unknown offline, so it is "
        .. "rehearsed as holding no extension (give the node a schematic: block, or write a scenario "
        .. "with its extensions: docs/simulation.md)", n.hostname, p.id:sub(1, 12))
    end
  elseif p then
    out.image = (p.image or n.image_url) .. ":" .. version      -- ghcr.io/siderolabs/installer: the vanilla image
  end
  out.extensions = {}
  return out
end

--- The scenario (as a table) for the talconfig.yaml at `path`, a line
--- saying what is simulated, the warnings and the file as talconfig.read
--- gives it (the capture starts from it).
---@param path string
---@param opts? table the run's options: the extensions and version its variables name are offered
---@return table scenario, string about, string[] warnings, table talconfig
function M.scenario(path, opts)
  local tc = talconfig.read(path)
  local data = tc.data
  local version = tc.talos_version or "v1.10.6"
  local warnings = {}
  local nodes, official = {}, {[factory.TAILSCALE] = true}
  for _, n in ipairs(tc.nodes) do
    if not n.ip then
      error(require("runbook.error").new("scenario", fmt("%s: node %s has no ipAddress to rehearse with", path,
                                                         n.hostname), {exit = 2, retry = false}), 0)
    end
    local node = node_of(n, version, warnings)
    for _, e in ipairs(node.extensions) do official[e] = true end
    nodes[#nodes + 1] = node
  end
  -- what a runbook's variables name (extension.lua's extensions,
  -- talos-upgrade.lua's version): a talconfig.yaml cannot say whether the
  -- factory offers them, so the stand-in factory does, and talosctl is
  -- the new version's (talosctl goes first); the real run asks the
  -- factory and talosctl before any change
  local versions, client = {version}, nil
  for _, kv in ipairs(opts and opts.vars or {}) do
    local exts = kv:match("^extension=(.+)$")
    for e in (exts or ""):gmatch("[^,%s]+") do
      if not official[e] then
        official[e] = true
        warnings[#warnings + 1] = fmt("the stand-in factory offers %s for %s (the real run asks the factory)", e, version)
      end
    end
    local want = kv:match("^version=v?(%d+%.%d+%.%d+)$")
    if want and "v" .. want ~= version then
      versions[#versions + 1] = "v" .. want
      client = "v" .. want
      warnings[#warnings + 1] = fmt("the stand-in factory offers Talos v%s with every extension, and talosctl is v%s "
        .. "(the real run checks both)", want, want)
    end
  end
  local offered = {}
  for e in pairs(official) do offered[#offered + 1] = e end
  table.sort(offered)
  local pods = type(given(data.clusterPodNets)) == "table" and data.clusterPodNets[1] or nil
  if #tc.svc_cidrs > 1 then
    warnings[#warnings + 1] = fmt("clusterSvcNets has %d networks; the simulated cluster serves the first, %s",
                                  #tc.svc_cidrs, tc.svc_cidr)
  end
  warnings[#warnings + 1] = fmt("the tailnet is a stand-in (%s, the Tailscale operator running, an auth key that is "
    .. "reusable and pre-authorized): a talconfig.yaml does not say which tailnet the nodes join", STAND_IN_TAILNET)
  local scenario = {
    seed = 1,
    cluster = {name = tc.cluster_name, talosVersion = version, talosctlVersion = client,
               kubernetesVersion = given(data.kubernetesVersion) and tostring(data.kubernetesVersion) or nil,
               serviceCIDR = tc.svc_cidr, podCIDR = pods and tostring(pods) or nil, nodes = nodes},
    factory = {versions = versions, extensions = offered},
    tailnet = {name = STAND_IN_TAILNET, autoApprovedRoutes = tc.svc_cidrs,
               authKey = {reusable = true, preauthorized = true, expired = false},
               devices = {{hostname = "tailscale-operator", tags = {"tag:k8s-operator"}, online = true}},
               operator = {namespace = "tailscale", deployment = "operator", pods = 1}},
    faults = {},
    talconfigFile = path,          -- the nodes run what talhelper renders from it
  }
  local cps = 0
  for _, n in ipairs(nodes) do if n.role == "controlplane" then cps = cps + 1 end end
  local env = ""
  local dir = path:match("^(.*)/[^/]*$") or "."
  if require("runbook.fs").exists(dir .. "/talenv.yaml") then env = " and talenv.yaml" end
  local about = fmt("your cluster from %s%s: %d nodes (%d control plane), Talos %s, services %s", path, env, #nodes, cps,
                    version, table.concat(tc.svc_cidrs, ", "))
  return scenario, about, warnings, tc
end

--- The scenario as YAML text, what is simulated, the warnings.
---@param path string
---@param opts? table the run's options (M.scenario)
---@return string text, string about, string[] warnings
function M.build(path, opts)
  local scenario, about, warnings = M.scenario(path, opts)
  return yaml.encode(scenario), about, warnings
end

return M

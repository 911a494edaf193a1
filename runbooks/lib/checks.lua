--- checks: the read-only checks shared by rollout.lua (its validation
--- phase and its gates), validate.lua and recover.lua. Each returns
--- ok, observation so that it can serve as a gate check.
local async = require "runbook.async"
local http = require "runbook.http"
local kube = require "kube"
local talos = require "talos"
local tailscale = require "tailscale"
local talconfig = require "talconfig"

local M = {}
local fmt = string.format

--- Every Kubernetes node Ready (optionally only `names`).
function M.nodes_ready(names)
  local want = {}
  for _, n in ipairs(names or {}) do want[n] = true end
  local bad = {}
  for _, n in ipairs(kube.nodes()) do
    if (names == nil or want[n.name]) and not n.ready then bad[#bad + 1] = n.name .. " " .. tostring(n.reason) end
  end
  if #bad > 0 then return false, "not Ready: " .. table.concat(bad, ", ") end
  return true, "all Ready"
end

--- etcd healthy on every control-plane node address.
function M.etcd_healthy(ips)
  if #ips == 0 then return false, "no node is marked controlPlane: true in talconfig.yaml, so etcd cannot be checked" end
  local h = talos.etcd_health(ips)
  if h.ok then return true, "etcd healthy on " .. #ips .. " members" end
  return false, table.concat(h.problems, "; ")
end

--- The gate before any node changes: etcd healthy on the control-plane
--- nodes (of talconfig's `nodes`) and every Kubernetes node Ready.
function M.cluster_healthy(nodes)
  local ok, obs = M.etcd_healthy(talconfig.control_plane_ips(nodes))
  if not ok then return false, obs end
  return M.nodes_ready()
end

--- The node is online in the tailnet under exactly its hostname. A device
--- that registered as <name>-1 (the name was taken) is a fatal finding.
function M.node_in_tailnet(name, fatal)
  local peers = tailscale.peers()
  for _, p in ipairs(peers) do
    if p.name == name then
      if p.online then return true, fmt("%s online (%s)", p.dns_name, p.ips[1] or "?") end
      return false, p.dns_name .. " offline"
    end
  end
  for _, p in ipairs(peers) do
    if p.hostname == name and p.name ~= name then
      local msg = fmt("the node registered as %s, not %s: a device named %s already exists in the tailnet (delete the stale device, then re-key the node)",
                      p.name, name, name)
      if fatal then fatal(msg) end
      return false, msg
    end
  end
  return false, "no device named " .. name .. " yet"
end

--- The route is advertised by every node and served: exactly one primary
--- among the tailnet's routers.
function M.route_served(route, node_names)
  local peers = tailscale.peers()
  local primaries = {}
  for _, p in ipairs(peers) do
    for _, r in ipairs(p.primary_routes) do if r == route then primaries[#primaries + 1] = p.name end end
  end
  if #primaries == 0 then return false, route .. " has no primary router (not approved yet?)" end
  if #primaries > 1 then return false, route .. " has several primaries: " .. table.concat(primaries, ", ") end
  return true, fmt("%s served by %s", route, primaries[1])
end

--- Through the API (when a key is given): every node advertises the route
--- and has it enabled (approved).
function M.routes_approved(api, key, route, node_names)
  local devs = tailscale.devices(api, key)
  local by = {}
  for _, d in ipairs(devs) do by[(d.name or ""):match("^([^.]+)") or d.hostname] = d end
  local missing = {}
  for _, n in ipairs(node_names) do
    local d = by[n]
    local adv, en = false, false
    for _, r in ipairs(d and d.advertisedRoutes or {}) do if r == route then adv = true end end
    for _, r in ipairs(d and d.enabledRoutes or {}) do if r == route then en = true end end
    if not adv then missing[#missing + 1] = n .. " does not advertise it"
    elseif not en then missing[#missing + 1] = n .. " not approved" end
  end
  if #missing > 0 then return false, route .. ": " .. table.concat(missing, ", ") end
  return true, route .. " advertised and approved on every node"
end

--- The Kubernetes operator: its pods Ready and its device online.
function M.operator(ns, device)
  local pods = kube.pods(ns)
  local ready = 0
  for _, p in ipairs(pods) do if p.ready then ready = ready + 1 end end
  if #pods == 0 or ready < #pods then return false, fmt("operator pods Ready: %d/%d", ready, #pods) end
  local p = tailscale.peer(device)
  if not p then return false, "no operator device " .. device end
  if not p.online then return false, "operator device " .. device .. " offline" end
  return true, fmt("%d operator pod(s) Ready, %s online", ready, device)
end

--- Talos API reachable over the tailnet (talosctl version against the
--- node's tailnet name).
function M.talos_over_tailnet(dns_name)
  local ok, err = pcall(talos.run, dns_name, "version")
  if ok then return true, "talosctl answers on " .. dns_name end
  return false, tostring(err)
end

--- The Kubernetes API server reached through the subnet route, at its
--- service IP (the first address of the service CIDR), or at `url`.
--- Any HTTP answer counts (401 included): the route carried the request.
function M.api_through_route(service_cidr, url)
  if not url then
    local a, b, c, d = service_cidr:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)/")
    if not a then return false, "not an IPv4 CIDR: " .. service_cidr end
    url = fmt("https://%s.%s.%s.%d:443/version", a, b, c, tonumber(d) + 1)
  end
  local ok, r = pcall(http.get, url, {insecure = true, timeout = 10})
  if ok and r.status < 500 then return true, fmt("API server answered %d at %s", r.status, url) end
  return false, ok and ("HTTP " .. r.status) or tostring(r)
end

--- Every check of a finished rollout, run concurrently; returns a list of
--- {name, ok, observation}.
function M.all(cfg)
  local list = {}
  local function add(name, fn) list[#list + 1] = {name = name, fn = fn} end
  for _, n in ipairs(cfg.nodes) do
    add("tailnet: " .. n.hostname, function() return M.node_in_tailnet(n.hostname) end)
    add("talos over tailnet: " .. n.hostname, function() return M.talos_over_tailnet(n.hostname .. "." .. cfg.tailnet) end)
  end
  for _, r in ipairs(cfg.routes) do
    add("route served: " .. r, function() return M.route_served(r) end)
    if cfg.api_key then
      add("route approved: " .. r, function() return M.routes_approved(cfg.api, cfg.api_key, r, cfg.names) end)
    end
  end
  add("API server through the route", function() return M.api_through_route(cfg.svc_cidr, cfg.probe_url) end)
  add("Kubernetes operator", function() return M.operator(cfg.operator_ns, cfg.operator_device) end)
  add("Kubernetes nodes Ready", function() return M.nodes_ready() end)
  add("etcd healthy", function() return M.etcd_healthy(talconfig.control_plane_ips(cfg.nodes)) end)
  return async.map(list, function(c)
    local ok, v, obs = pcall(c.fn)
    if not ok then return {name = c.name, ok = false, observation = tostring(v)} end
    return {name = c.name, ok = v and true or false, observation = obs}
  end)
end

return M

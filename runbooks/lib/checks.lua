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

--- Every Kubernetes node Ready (one `kubectl get nodes`), or only the
--- nodes `names` (one `kubectl get node NAME` each).
---@param names? string[] node names
---@return boolean ok, string observation
function M.nodes_ready(names)
  local bad = {}
  if names then
    for _, name in ipairs(names) do
      local n = kube.node(name)
      if not n then bad[#bad + 1] = name .. " not registered"
      elseif not n.ready then bad[#bad + 1] = name .. " " .. tostring(n.reason) end
    end
  else
    for _, n in ipairs(kube.nodes_not_ready()) do bad[#bad + 1] = n.name .. " " .. tostring(n.reason) end
  end
  if #bad > 0 then return false, "not Ready: " .. table.concat(bad, ", ") end
  return true, names and (#names == 1 and "Ready" or "all " .. #names .. " Ready") or "all Ready"
end

--- etcd healthy on every control-plane node address.
---@param ips string[] control-plane addresses
---@return boolean ok, string observation
function M.etcd_healthy(ips)
  if #ips == 0 then return false, "no node is marked controlPlane: true in talconfig.yaml, so etcd cannot be checked" end
  local h = talos.etcd_health(ips)
  if h.ok then return true, "etcd healthy on " .. #ips .. " members" end
  return false, table.concat(h.problems, "; ")
end

--- The gate before any node changes: etcd healthy on the control-plane
--- nodes (of talconfig's `nodes`) and every Kubernetes node Ready.
---@param nodes table[] talconfig nodes {hostname, ip, role}
---@param cp_ips? string[] their control planes' addresses, when the caller has them (a rollout asks at every node)
---@return boolean ok, string observation
function M.cluster_healthy(nodes, cp_ips)
  local ok, obs = M.etcd_healthy(cp_ips or talconfig.control_plane_ips(nodes))
  if not ok then return false, obs end
  return M.nodes_ready()
end

--- The node is online in the tailnet under exactly its device name (its
--- hostname as Tailscale sanitises it: tailscale.device_name). A device
--- that registered as <name>-1 (the name was taken) is a fatal finding.
--- Without `peers`, one `tailscale ping -c 1 --until-direct=false NAME`
--- answers first (a pong through a DERP relay counts): it resolves NAME by the peers' DNS names only, never by their HostName
--- (cmd/tailscale/cli/ping.go tailscaleIPFromArg: a device that became
--- NAME-1 does not answer to NAME), and its cost does not grow with the
--- tailnet; only a node that does not answer has the whole `tailscale
--- status` read, to say why.
---@param name string the device name
---@param fatal? function fail the gate at once on a state waiting cannot fix
---@param peers? table[] tailscale.peers() read already (validation reads them once for every node)
---@return boolean ok, string observation
function M.node_in_tailnet(name, fatal, peers)
  local no_reply
  if not peers then
    local ok, ip, via = tailscale.ping(name)
    if ok then return true, fmt("%s answers tailscale ping (%s%s)", name, ip or "?", via and (", via " .. via) or "") end
    no_reply = ip
    peers = tailscale.peers()
  end
  for _, p in ipairs(peers) do
    if p.name == name then
      if p.online and not no_reply then return true, fmt("%s online (%s)", p.dns_name, p.ips[1] or "?") end
      if p.online then return false, fmt("%s is online but does not answer tailscale ping yet (%s)", p.dns_name, no_reply) end
      return false, p.dns_name .. " offline"
    end
  end
  for _, p in ipairs(peers) do
    if tailscale.device_name(p.hostname or "") == name and p.name ~= name then
      local msg = fmt("the node registered as %s, not %s: a device named %s already exists in the tailnet (delete the stale device, then re-key the node)",
                      p.name, name, name)
      if fatal then fatal(msg) end
      return false, msg
    end
  end
  return false, "no device named " .. name .. " yet"
end

--- The route served, and by whom. The admin machine's `tailscale status`
--- lists only the devices its ACL lets it see, and an older device
--- advertising the same route (a Connector of the operator) stays primary
--- (kb/1115), so a primary alone proves nothing about the nodes. With an
--- API key (`api = {url, key}`) every node must advertise the route and
--- have it approved; without one, only a node as primary passes.
---@param route string a CIDR
---@param node_names string[]
---@param api? {url:string, key:runbook.Secret} the Tailscale API, when a key is given
---@return boolean ok, string observation
function M.route_served(route, node_names, api)
  local is_node = {}
  for _, n in ipairs(node_names or {}) do is_node[n] = true end
  local primaries = {}
  for _, p in ipairs(tailscale.peers()) do
    for _, r in ipairs(p.primary_routes) do if r == route then primaries[#primaries + 1] = p.name end end
  end
  if #primaries > 1 then return false, route .. " has several primaries: " .. table.concat(primaries, ", ") end
  local primary = primaries[1]
  if api then
    local ok, obs = M.routes_approved(api.url, api.key, route, node_names)
    if not ok then return false, obs end
    if not primary then return false, route .. ": every node advertises it and is approved, but no device is primary yet" end
    if is_node[primary] then return true, fmt("%s served by %s; every node advertises it, approved", route, primary) end
    return true, fmt("%s served by %s (not a node: it is older, so it stays primary); every node advertises it, approved, and stands by",
                     route, primary)
  end
  if not primary then return false, route .. " has no primary router (not approved yet?)" end
  if is_node[primary] or not node_names then return true, fmt("%s served by %s", route, primary) end
  return false, fmt("%s is served by %s, not by a node: whether the nodes advertise it cannot be told from this machine; give TS_API_KEY to check each node",
                    route, primary)
end

--- Through the API: every node advertises the route and has it enabled
--- (approved). Routes are compared as sets.
---@param api string the Tailscale API base URL
---@param key runbook.Secret
---@param route string
---@param node_names string[]
---@return boolean ok, string observation
function M.routes_approved(api, key, route, node_names)
  local devs = tailscale.devices(api, key)
  local by = {}
  for _, d in ipairs(devs) do by[(d.name or ""):match("^([^.]+)") or d.hostname] = d end
  local missing = {}
  for _, n in ipairs(node_names) do
    local d = by[n]
    if not d then missing[#missing + 1] = n .. " has no device"
    elseif not tailscale.route_set(d.advertisedRoutes)[route] then missing[#missing + 1] = n .. " does not advertise it"
    elseif not tailscale.route_set(d.enabledRoutes)[route] then missing[#missing + 1] = n .. " not approved" end
  end
  if #missing > 0 then return false, route .. ": " .. table.concat(missing, ", ") end
  return true, route .. " advertised and approved on every node"
end

--- The Kubernetes operator: its pods Ready and its device online.
---@param ns string the operator's namespace
---@param device? string the operator's device name
---@return boolean ok, string observation
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

--- Talos API reachable over the tailnet: talosctl connects to the node's
--- tailnet name (-e), whose certificate must hold it (certSANs), and apid
--- there serves the node itself (-n its own address: apid would resolve a
--- MagicDNS -n with the node's resolver, which has no MagicDNS).
---@param dns_name string the node's tailnet name
---@param node_ip string
---@return boolean ok, string observation
function M.talos_over_tailnet(dns_name, node_ip)
  local ok, err = pcall(talos.run, {endpoint = dns_name, node = node_ip}, "version")
  if ok then return true, "talosctl answers over the tailnet at " .. dns_name end
  return false, tostring(err)
end

--- The Kubernetes API server reached through the subnet route, at its
--- service IP (the first address of the service CIDR), or at `url`.
--- Any HTTP answer counts (401 included): the route carried the request.
--- First, this machine must accept routes (tailscale.accepts_routes):
--- without that the probe can only time out, so the check says what to run.
---@param service_cidr string
---@param url? string the address probed through the route
---@return boolean ok, string observation
function M.api_through_route(service_cidr, url)
  if tailscale.accepts_routes() == false then return false, tailscale.ACCEPT_ROUTES_HINT end
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
---@param cfg table nodes, names, routes, svc_cidr, probe_url, tailnet, api, api_key, operator_ns, operator_device
---@return table[] checks {name, ok, observation}
function M.all(cfg)
  local list = {}
  local function add(name, fn) list[#list + 1] = {name = name, fn = fn} end
  -- one `tailscale status` for every node's check, not one each
  local peers_ok, peers = pcall(tailscale.peers)
  for _, n in ipairs(cfg.nodes) do
    local name = n.ts_name or tailscale.device_name(n.hostname)
    add("tailnet: " .. name, function()
      if not peers_ok then error(peers, 0) end
      return M.node_in_tailnet(name, nil, peers)
    end)
    add("talos over tailnet: " .. name, function() return M.talos_over_tailnet(name .. "." .. cfg.tailnet, n.ip) end)
  end
  for _, r in ipairs(cfg.routes) do
    add("route served: " .. r, function()
      return M.route_served(r, cfg.names, cfg.api_key and {url = cfg.api, key = cfg.api_key} or nil)
    end)
  end
  add("API server through the route", function() return M.api_through_route(cfg.svc_cidr, cfg.probe_url) end)
  add("Kubernetes operator", function() return M.operator(cfg.operator_ns, cfg.operator_device) end)
  add("Kubernetes nodes Ready", function() return M.nodes_ready() end)
  -- etcd on every member: cfg.all is the whole cluster when the run changed
  -- only some of it (--limit), cfg.nodes otherwise
  add("etcd healthy", function() return M.etcd_healthy(talconfig.control_plane_ips(cfg.all or cfg.nodes)) end)
  return async.map(list, function(c)
    local ok, v, obs = pcall(c.fn)
    if not ok then return {name = c.name, ok = false, observation = tostring(v)} end
    return {name = c.name, ok = v and true or false, observation = obs}
  end)
end

return M

--- kubectl and tailscale in the simulated world.
local ctx = ...

local json = require "runbook.json"
local jsonpath = ctx.jsonpath

local W = ctx.W
local M = ctx.M            -- the world module (its _ functions)
local fmt = string.format
local node_up = ctx.model.node_up
local pretty, result = ctx.output.pretty, ctx.output.result

-- A Node as the API server returns it (k8s.io/api/core/v1 types.go, the
-- fields the runbooks read): the control-plane role label only on control
-- planes (Talos labels them, machined's nodelabels controller), Ready from
-- the kubelet, "Unknown" once the node stops posting status. Built once
-- per state of the node, and each rendering of it kept, so that listing
-- 1,000 nodes renders again only the ones that changed.
local function node_object(n)
  local up = node_up(n) and not n.not_ready or false
  local ip = M._node_ip(n)
  local c = n.k8s_cache
  if c and c.up == up and c.down == n.down and c.unschedulable == n.unschedulable
     and c.talos_version == n.talos_version and c.ip == ip then
    return c
  end
  local labels = {["kubernetes.io/hostname"] = n.name, ["kubernetes.io/os"] = "linux"}
  if n.role == "controlplane" then labels["node-role.kubernetes.io/control-plane"] = "" end
  local obj = {apiVersion = "v1", kind = "Node", metadata = {name = n.name, labels = labels},
    spec = {unschedulable = n.unschedulable or nil},
    status = {conditions = {{type = "Ready", status = up and "True" or (n.down and "Unknown" or "False"),
                             reason = up and "KubeletReady" or "KubeletNotReady", message = up and "kubelet is posting ready status" or "node is not ready"}},
              nodeInfo = {osImage = fmt("Talos (%s)", n.talos_version), kubeletVersion = W.k8s_version},
              addresses = {{type = "InternalIP", address = ip}, {type = "Hostname", address = n.name}}}}
  n.k8s_cache = {up = up, down = n.down, unschedulable = n.unschedulable, talos_version = n.talos_version, ip = ip,
                 obj = obj, text = {}}
  return n.k8s_cache
end

--- The node's text in one output form: "json", or a compiled template.
local function node_text(n, form)
  local c = node_object(n)
  local t = c.text[form]
  if not t then
    t = form == "json" and json.encode(c.obj) or jsonpath.render(form, c.obj)
    c.text[form] = t
  end
  return t
end

--- The -o value of a kubectl argv ("-o X", "-oX", "-o=X", "--output X",
--- "--output=X"), and the other arguments.
local function output_of(argv)
  local rest, out = {}, nil
  local i = 2
  while i <= #argv do
    local a = argv[i]
    local v = a:match("^%-%-output=(.*)$") or a:match("^%-o=(.*)$") or (a ~= "-o" and a:match("^%-o(.+)$"))
    if v then out = v
    elseif a == "-o" or a == "--output" then out = argv[i + 1]; i = i + 1
    else rest[#rest + 1] = a end
    i = i + 1
  end
  return out, rest
end

local function not_found(kind, name)
  return result(1, "", fmt("Error from server (NotFound): %s %q not found\n", kind, tostring(name)))
end

-- Set in the environment, every node list kept below is checked against
-- one rendered afresh, and a difference is an error: the e2e tests of the
-- fleet run with it (docs/simulation.md).
local SELFCHECK = os.getenv("RUNBOOK_SIM_SELFCHECK") ~= nil

--- The whole-cluster list in one output form, its items joined by sep.
--- Kept between calls: a node's item is rendered again only when its
--- revision moved (M._node_changed) or a boot of it ended, so that a
--- gate asking for 1,000 nodes at every node of a rollout does not check
--- every node each time. With a fault in the scenario (faults depend on
--- the clock and on the tailnet) every node is checked, as before.
local function node_list(form, sep)
  local lists = W.k8s_lists
  if not lists then lists = {}; W.k8s_lists = lists end
  local L = lists[form]
  if not L then L = {lines = {}, revs = {}}; lists[form] = L end
  local lines, revs, changed = L.lines, L.revs, L.text == nil
  local every = W.faults[1] ~= nil
  -- no node changed since the last list, and none is booting (whose boot
  -- the clock may have ended): the list is the one kept
  if every or changed or L.gen ~= W.k8s_gen or W.booting > 0 then
    for i, n in ipairs(W.nodes) do
      if n.boot_until then node_up(n) end     -- a boot that is over ends now (its revision moves)
      local rev = n.k8s_rev or 0
      if every or revs[i] ~= rev then
        local t = node_text(n, form)
        if t ~= lines[i] then lines[i] = t; changed = true end
        revs[i] = rev
      end
    end
    for i = #W.nodes + 1, #lines do lines[i] = nil; changed = true end
    L.gen = W.k8s_gen
  end
  if changed then L.text = table.concat(lines, sep) end
  if SELFCHECK then
    for i, n in ipairs(W.nodes) do
      if node_text(n, form) ~= lines[i] then
        error(fmt("simulated world: the kept node list is stale for %s (a change to it did not go through _node_changed)", n.name), 0)
      end
    end
  end
  return L.text
end

local function get_nodes(argv)
  local out, rest = output_of(argv)
  local name = rest[3]
  if #rest > 3 then return nil end
  local form = out == "json" and "json"
  if out and out:match("^jsonpath=") then
    local t, err = jsonpath.compile(out:sub(10))
    if not t then return result(1, "", "error: simulated kubectl: " .. err .. "\n") end
    form = t
  end
  if not form then return result(1, "", "simulated kubectl answers get nodes with -o json or -o jsonpath= only\n") end
  if name then                         -- `get node NAME`, `get nodes NAME`
    local n = W.ix.node_by_name[name]
    if not n then return not_found("nodes", name) end
    return result(0, node_text(n, form) .. (form == "json" and "\n" or ""))
  end
  if form == "json" then
    -- a v1 List of the items (kubectl prints it indented; the whitespace
    -- is the only difference)
    return result(0, '{"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": ['
                     .. node_list("json", ", ") .. "]}\n")
  end
  local body = jsonpath.items_body(form)
  if not body then
    local list = {apiVersion = "v1", kind = "List", items = {}}
    for i, n in ipairs(W.nodes) do list.items[i] = node_object(n).obj end
    return result(0, jsonpath.render(form, list))
  end
  return result(0, node_list(body, ""))
end

local function kubectl(argv)
  local args = table.concat(argv, " ", 2)
  if argv[2] == "get" and (argv[3] == "nodes" or argv[3] == "node") then
    local r = get_nodes(argv)
    if r then return r end
  end
  if args:match("^get pods %-n %S+ %-o json") or args:match("^%-n %S+ get pods %-o json") then
    local ns = args:match("%-n (%S+)")
    local items = {}
    if ns == W.operator.namespace then
      for i = 1, W.operator.pods or 1 do
        items[#items + 1] = {metadata = {name = fmt("%s-5d8f7b9c4-%05d", W.operator.deployment, i), namespace = ns,
                                         labels = {app = W.operator.deployment}},
          status = {phase = "Running", conditions = {{type = "Ready", status = "True"}},
                    containerStatuses = {{name = W.operator.deployment, ready = true, restartCount = 0}}}}
      end
    end
    return result(0, pretty({apiVersion = "v1", kind = "List", items = json.array(items)}))
  end
  local verb, name = args:match("^(%S+) (%S+)")
  if verb == "cordon" or verb == "uncordon" or verb == "drain" then
    local n = W.ix.node_by_name[name]
    if not n then return not_found("nodes", name) end
    n.unschedulable = verb ~= "uncordon"
    M._node_changed(n)
    return result(0, fmt("node/%s %s\n", name, verb == "uncordon" and "uncordoned" or verb == "cordon" and "cordoned" or "drained"))
  end
  return result(1, "", fmt("error: simulated kubectl does not answer %q\n", args))
end

local function tailscale(argv)
  if argv[2] == "status" and argv[3] == "--json" then
    local peers = {}
    -- the primary for a route: the oldest online device advertising it
    local primary = {}
    for _, d in ipairs(W.devices) do
      if d.online then
        for _, r in ipairs(d.routes_enabled or {}) do if not primary[r] then primary[r] = d end end
      end
    end
    for i, d in ipairs(W.devices) do
      local prim = {}
      for r, pd in pairs(primary) do if pd == d then prim[#prim + 1] = r end end
      table.sort(prim)
      local p = {ID = d.nodeId, HostName = d.hostname, DNSName = d.hostname_final .. "." .. W.tailnet .. ".",
                 OS = "linux", TailscaleIPs = d.addresses, Online = d.online, Active = d.online,
                 Tags = d.tags, Created = d.created}
      if #prim > 0 then p.PrimaryRoutes = prim end
      peers[fmt("nodekey:%064x", i)] = p
    end
    -- ipn/ipnstate/ipnstate.go, printed by cmd/tailscale/cli/status.go
    -- with json.MarshalIndent and exit 0 in every backend state; Peer is a
    -- nil map (null) unless the backend runs with peers
    local state = W.admin_state
    if state ~= "Running" then
      local st = {Version = "1.82.0", TUN = true, BackendState = state, HaveNodeKey = state ~= "NeedsLogin",
                  AuthURL = "", TailscaleIPs = json.null,
                  Self = {ID = "", HostName = "admin-laptop", DNSName = "", OS = "linux", TailscaleIPs = json.null, Online = false},
                  Health = {state == "NeedsLogin" and "You are logged out." or "Tailscale is stopped."},
                  MagicDNSSuffix = "", CurrentTailnet = json.null, Peer = json.null, User = json.null}
      return result(0, json.encode(st, {pretty = true}))
    end
    local st = {Version = "1.82.0", BackendState = "Running", TailscaleIPs = {"100.64.0.2"},
                Self = {ID = "nSELF", HostName = "admin-laptop", DNSName = "admin-laptop." .. W.tailnet .. ".", Online = true,
                        TailscaleIPs = {"100.64.0.2"}},
                MagicDNSSuffix = W.tailnet, CurrentTailnet = {Name = W.tailnet, MagicDNSSuffix = W.tailnet, MagicDNSEnabled = true},
                Peer = next(peers) and peers or json.null}
    return result(0, json.encode(st, {pretty = true}))
  end
  if argv[2] == "ping" then
    -- cmd/tailscale/cli/ping.go (v1.82): an address as it is; a name
    -- matched against each peer's DNS name without the MagicDNS suffix
    -- (case-insensitive) or the whole DNS name, never its HostName
    local target = argv[#argv]
    local ix, suffix = W.ix, "." .. W.tailnet
    local d = ix.dev_by_addr[target] or ix.dev_by_name[target:lower()]
    if not d and target:sub(-#suffix - 1) == suffix .. "." then d = ix.dev_by_name[target:sub(1, -#suffix - 2)] end
    if d then
      if d.online then return result(0, fmt("pong from %s (%s) via DERP(fra) in 23ms\n", d.hostname_final, d.addresses[1])) end
      return result(1, "", "no reply\n")
    end
    return result(1, "", fmt("error looking up IP of %q: lookup %s: no such host\n", target, target))
  end
  return result(1, "", fmt("simulated tailscale does not answer %q\n", table.concat(argv, " ", 2)))
end

return {kubectl = kubectl, tailscale = tailscale}

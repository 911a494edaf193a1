--- kubectl and tailscale in the simulated world.
local ctx = ...

local json = require "runbook.json"

local W = ctx.W
local M = ctx.M            -- the world module (its _ functions)
local fmt = string.format
local node_up = ctx.model.node_up
local pretty, result = ctx.output.pretty, ctx.output.result

local function kubectl(argv)
  local args = table.concat(argv, " ", 2)
  if args:match("^get nodes") then
    if not args:find("-o json", 1, true) then return result(1, "", "simulated kubectl answers get with -o json only\n") end
    local items = {}
    for _, n in ipairs(W.nodes) do
      local up = node_up(n) and not n.not_ready
      items[#items + 1] = {metadata = {name = n.name, labels = {["node-role.kubernetes.io/control-plane"] = ""}},
        spec = {unschedulable = n.unschedulable or nil},
        status = {conditions = {{type = "Ready", status = up and "True" or (n.down and "Unknown" or "False"),
                                 reason = up and "KubeletReady" or "KubeletNotReady", message = up and "kubelet is posting ready status" or "node is not ready"}},
                  nodeInfo = {osImage = fmt("Talos (%s)", n.talos_version), kubeletVersion = W.k8s_version},
                  addresses = {{type = "InternalIP", address = M._node_ip(n)}, {type = "Hostname", address = n.name}}}}
    end
    return result(0, pretty({apiVersion = "v1", kind = "List", items = items}))
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
    for _, n in ipairs(W.nodes) do
      if n.name == name then
        n.unschedulable = verb ~= "uncordon"
        return result(0, fmt("node/%s %s\n", name, verb == "uncordon" and "uncordoned" or verb == "cordon" and "cordoned" or "drained"))
      end
    end
    return result(1, "", fmt("Error from server (NotFound): nodes %q not found\n", tostring(name)))
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
    local target = argv[#argv]
    for _, d in ipairs(W.devices) do
      if (d.hostname_final == target or d.addresses[1] == target or d.hostname_final .. "." .. W.tailnet == target) then
        if d.online then return result(0, fmt("pong from %s (%s) via DERP(fra) in 23ms\n", d.hostname_final, d.addresses[1])) end
        return result(1, "", "timeout waiting for ping reply\n")
      end
    end
    return result(1, "", fmt("error looking up IP of %q: no such host\n", target))
  end
  return result(1, "", fmt("simulated tailscale does not answer %q\n", table.concat(argv, " ", 2)))
end

return {kubectl = kubectl, tailscale = tailscale}

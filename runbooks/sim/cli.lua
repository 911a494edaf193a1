--- kubectl and tailscale in the simulated world.
local ctx = ...

local json = require "runbook.json"
local time = require "runbook.time"
local yaml_order = require("runbook.yaml").order
local jsonpath = ctx.jsonpath

local W = ctx.W
local M = ctx.M            -- the world module (its _ functions)
local fmt = string.format
local node_up = ctx.model.node_up
local pretty, result = ctx.output.pretty, ctx.output.result

--- The conditions the kubelet posts (pkg/kubelet/nodestatus/setters.go:
--- MemoryPressure, DiskPressure, PIDPressure, then Ready), each with the
--- time of the last post and of the last change of status. A node that
--- stopped posting (down) has every condition Unknown, as the node
--- lifecycle controller sets them ("NodeStatusUnknown"). `c` is the
--- node's last rendering: its Ready status keeps its transition time.
local PRESSURE = {
  {"MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"},
  {"DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"},
  {"PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"},
}

local function node_conditions(n, up, c)
  local stamp = time.iso()
  local born = c and c.born or stamp
  local since = c and c.up == up and c.down == n.down and c.since or stamp
  -- a node that stopped posting keeps its last heartbeat
  local beat = n.down and c and c.beat or stamp
  local out = {}
  for i, p in ipairs(PRESSURE) do
    out[i] = n.down and {type = p[1], status = "Unknown", reason = "NodeStatusUnknown", message = "Kubelet stopped posting node status.",
                         lastHeartbeatTime = beat, lastTransitionTime = since}
             or {type = p[1], status = "False", reason = p[2], message = p[3], lastHeartbeatTime = beat,
                 lastTransitionTime = c and not c.down and c.pressure_since or born}
  end
  out[4] = {type = "Ready", status = up and "True" or (n.down and "Unknown" or "False"),
            reason = up and "KubeletReady" or "KubeletNotReady", message = up and "kubelet is posting ready status" or "node is not ready",
            lastHeartbeatTime = beat, lastTransitionTime = since}
  return out, {born = born, since = since, beat = beat, pressure_since = out[1].lastTransitionTime}
end

--- A pod's conditions as the kubelet sets them (pkg/kubelet/status/
--- generate.go, kubelet_pods.go generateAPIPodStatus): PodReadyToStartContainers
--- (from Kubernetes v1.29, its feature gate on by default), Initialized,
--- Ready, ContainersReady, PodScheduled, each with lastProbeTime (null:
--- no probe sets it) and lastTransitionTime (when the status last changed,
--- kept per pod in W.pod_since); Ready and ContainersReady False carry
--- reason ContainersNotReady and the unready containers
--- (tests/corpus/kubectl/get-pod-json-running-not-ready-crashloop-kodekloud.txt).
local function pod_conditions(key, ready, container)
  W.pod_since = W.pod_since or {}
  local was = W.pod_since[key]
  if not was or was.ready ~= ready then was = {ready = ready, at = time.iso(), born = was and was.born or time.iso()} end
  W.pod_since[key] = was
  local function cond(type, ok, at)
    local c = {type = type, status = ok and "True" or "False", lastProbeTime = json.null, lastTransitionTime = at}
    if not ok then c.reason, c.message = "ContainersNotReady", fmt("containers with unready status: [%s]", container) end
    return c
  end
  local out = {}
  if (tonumber(tostring(W.k8s_version):match("^v?1%.(%d+)")) or 0) >= 29 then
    out[1] = cond("PodReadyToStartContainers", true, was.born)
  end
  out[#out + 1] = cond("Initialized", true, was.born)
  out[#out + 1] = cond("Ready", ready, was.at)
  out[#out + 1] = cond("ContainersReady", ready, was.at)
  out[#out + 1] = cond("PodScheduled", true, was.born)
  return out
end

-- A Node as the API server returns it (k8s.io/api/core/v1 types.go, the
-- fields the runbooks read): the control-plane role label only on control
-- planes (Talos labels them, machined's nodelabels controller), Ready from
-- the kubelet, "Unknown" once the node stops posting status. Built once
-- per state of the node, and each rendering of it kept, so that listing
-- 1,000 nodes renders again only the ones that changed.
local function node_object(n)
  local up = node_up(n) and not n.not_ready or false
  -- the kubelet's --node-ip: one address per family (NodeIPs "kubelet");
  -- a dual-stack node has an InternalIP of each, the first family first
  -- (kubelet pkg/kubelet/nodestatus/setters.go NodeAddress)
  local ips = M._node_ips(n)
  local ip = table.concat(ips, ",")
  local c = n.k8s_cache
  if c and c.up == up and c.down == n.down and c.unschedulable == n.unschedulable
     and c.talos_version == n.talos_version and c.ip == ip then
    return c
  end
  local labels = {["kubernetes.io/hostname"] = n.name, ["kubernetes.io/os"] = "linux"}
  if n.role == "controlplane" then labels["node-role.kubernetes.io/control-plane"] = "" end
  local conds, times = node_conditions(n, up, c)
  local obj = {apiVersion = "v1", kind = "Node", metadata = {name = n.name, labels = labels},
    spec = {unschedulable = n.unschedulable or nil},
    status = {conditions = conds,
              nodeInfo = {osImage = fmt("Talos (%s)", n.talos_version), kubeletVersion = W.k8s_version},
              addresses = {}}}
  for _, a in ipairs(ips) do obj.status.addresses[#obj.status.addresses + 1] = {type = "InternalIP", address = a} end
  obj.status.addresses[#obj.status.addresses + 1] = {type = "Hostname", address = n.name}
  n.k8s_cache = {up = up, down = n.down, unschedulable = n.unschedulable, talos_version = n.talos_version, ip = ip,
                 obj = obj, text = {}, born = times.born, since = times.since, beat = times.beat,
                 pressure_since = times.pressure_since}
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

-- kubectl's names for a resource (plural, singular, short) -> the API's
local RESOURCE_NAMES = {
  node = "nodes", nodes = "nodes", no = "nodes", pod = "pods", pods = "pods", po = "pods",
  service = "services", services = "services", svc = "services", namespace = "namespaces", namespaces = "namespaces",
  ns = "namespaces", configmap = "configmaps", configmaps = "configmaps", cm = "configmaps", secret = "secrets",
  secrets = "secrets", lease = "leases", leases = "leases", servicecidr = "servicecidrs", servicecidrs = "servicecidrs",
}
local GROUP_PATHS = {leases = "/apis/coordination.k8s.io/v1", servicecidrs = "/apis/networking.k8s.io/v1"}

--- `kubectl get RESOURCE [NAME] [-n NS | -A] -o json|jsonpath=...` through
--- the world's Kubernetes API (sim/kubeapi.lua), the same objects the
--- served world gives the real kubectl; nil for any other argv.
local function get_via_api(argv)
  local out, rest = output_of(argv)
  local ns, all, words = nil, false, {}
  local i = 1
  while i <= #rest do
    local a = rest[i]
    if a == "-n" or a == "--namespace" then ns = rest[i + 1]; i = i + 1
    elseif a:match("^%-%-namespace=") then ns = a:match("=(.*)$")
    elseif a == "-A" or a == "--all-namespaces" then all = true
    elseif a:sub(1, 1) == "-" then return nil
    else words[#words + 1] = a end
    i = i + 1
  end
  local res = RESOURCE_NAMES[words[2] or ""]
  if words[1] ~= "get" or not res or #words > 3 or not out then return nil end
  local form = out == "json" and "json"
  if out:match("^jsonpath=") then form = jsonpath.compile(out:sub(10)) end
  if not form then return nil end
  local r = ctx.kubeapi.RES[res]
  local path = (GROUP_PATHS[res] or "/api/v1")
    .. ((r.namespaced and not all) and "/namespaces/" .. (ns or "default") or "") .. "/" .. res .. (words[3] and "/" .. words[3] or "")
  local resp = ctx.kubewrite.handle({method = "GET", path = path, headers = {}})
  local obj = json.decode(resp.body)
  if resp.status ~= 200 then return result(1, "", fmt("Error from server (%s): %s\n", obj.reason, obj.message)) end
  if obj.items then obj.kind, obj.apiVersion, obj.metadata = "List", "v1", {resourceVersion = ""} end
  if form == "json" then return result(0, pretty(obj)) end
  return result(0, jsonpath.render(form, obj))
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
        local name = fmt("%s-5d8f7b9c4-%05d", W.operator.deployment, i)
        local ready = i <= (W.operator.ready or W.operator.pods or 1)
        items[#items + 1] = {metadata = {name = name, namespace = ns, labels = {app = W.operator.deployment}},
          status = {phase = "Running", conditions = pod_conditions(ns .. "/" .. name, ready, W.operator.deployment),
                    containerStatuses = {{name = W.operator.deployment, ready = ready, restartCount = 0}}}}
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
  local r = argv[2] == "get" and get_via_api(argv)
  if r then return r end
  return result(1, "", fmt("error: simulated kubectl does not answer %q\n", args))
end

-- {====== tailscale ping
-- cmd/tailscale/cli/ping.go, the same from v1.72.1 to v1.102.2 (the
-- versions siderolabs/extensions ships for Talos v1.8 to v1.13): Go flags
-- before the one argument; -c (default 10), --until-direct (default
-- true), --timeout (default 5s). Each ping that answers prints "pong from
-- NAME (IP) via PATH in T"; a direct pong ends the command (exit 0) while
-- --until-direct holds; after the last of -c pings, a run whose pongs all
-- came through DERP exits 1 with "direct connection not established"
-- (stderr, cmd/tailscale/tailscale.go prints the error) unless
-- --until-direct=false; a ping without answer prints `ping "IP" timed
-- out` after --timeout, and a run without any pong ends "no reply", exit 1.

--- The flags of `tailscale ping` and its one argument, or nil and the
--- usage error (the flag package stops at the first non-flag argument).
local function ping_args(argv)
  local a = {num = 10, until_direct = true, timeout = 5}
  local i = 3
  while argv[i] and argv[i]:match("^%-") do
    local name, val = argv[i]:match("^%-%-?([%w-]+)=(.*)$")
    name = name or argv[i]:match("^%-%-?([%w-]+)$")
    if name == "c" or name == "timeout" then
      if not val then i = i + 1; val = argv[i] end
      if name == "c" then a.num = tonumber(val) else a.timeout = tonumber((tostring(val):gsub("s$", ""))) end
    elseif name == "until-direct" then a.until_direct = val == nil or val == "true"
    elseif name ~= "verbose" then return nil, fmt("flag provided but not defined: -%s", tostring(name)) end
    i = i + 1
  end
  local rest = {table.unpack(argv, i)}
  if #rest ~= 1 or rest[1] == "" then return nil, "usage: tailscale ping <hostname-or-IP>" end
  a.target = rest[1]
  return a
end

--- The device `tailscale ping` resolves its argument to (tailscaleIPFromArg):
--- an address as it is; a name matched against each peer's DNS name
--- without the MagicDNS suffix (case-insensitive) or the whole DNS name,
--- never its HostName.
local function ping_device(target)
  local ix, suffix = W.ix, "." .. W.tailnet
  local d = ix.dev_by_addr[target] or ix.dev_by_name[target:lower()]
  if not d and target:sub(-#suffix - 1) == suffix .. "." then d = ix.dev_by_name[target:sub(1, -#suffix - 2)] end
  return d
end

-- isRunningOrStarting (cmd/tailscale/cli/status.go): printed on stdout, exit 1
local NOT_RUNNING = {Stopped = "Tailscale is stopped.", NeedsLogin = "Logged out.",
                     NeedsMachineAuth = "Machine is not yet approved by tailnet admin."}

local function ping(argv)
  if W.admin_state ~= "Running" and W.admin_state ~= "Starting" then
    return result(1, (NOT_RUNNING[W.admin_state] or ("unexpected state: " .. tostring(W.admin_state))) .. "\n")
  end
  local a, usage = ping_args(argv)
  if not a then return result(1, "", usage .. "\n") end
  if not a.num or a.num < 1 then
    return result(1, "", "simulated tailscale ping answers -c N with N >= 1 only (-c 0 pings for ever)\n")
  end
  local d = ping_device(a.target)
  if not d then
    -- the resolver's own words after the colon are unconfirmed
    return result(1, "", fmt("error looking up IP of %q: lookup %s: no such host\n", a.target, a.target))
  end
  local ip, out, any_pong = d.addresses[1], {}, false
  -- tailnet_derp_only: every pong comes through the DERP relay (no direct
  -- path: both ends behind hard NAT, or UDP blocked); with `times: N` only
  -- the first N pongs to the device do, while NAT traversal finds the
  -- direct path (tests/corpus/tailscale/ping-derp-then-direct-kb-1257.txt:
  -- four via DERP, then direct); without the fault the first pong is direct
  local f = ctx.model.fault("tailnet_derp_only", d.node)
  local n = 0
  while true do
    n = n + 1
    local derp = f ~= nil and (f.times == nil or (d.derp_pongs or 0) < f.times)
    if not d.online then
      time.sleep(a.timeout)
      out[#out + 1] = fmt("ping %q timed out", ip)
      if n == a.num then
        return result(any_pong and 0 or 1, table.concat(out, "\n") .. "\n", any_pong and "" or "no reply\n")
      end
    else
      any_pong = true
      if derp then d.derp_pongs = (d.derp_pongs or 0) + 1 end
      local node = d.node and W.ix.node_by_name[d.node]
      local via = derp and "DERP(fra)" or fmt("%s:41641", node and node.ip or "203.0.113.7")
      out[#out + 1] = fmt("pong from %s (%s) via %s in %dms", d.hostname_final, ip, via, derp and 23 or 2)
      if not derp and a.until_direct then return result(0, table.concat(out, "\n") .. "\n") end
      time.sleep(1)
      if n == a.num then
        if a.until_direct then return result(1, table.concat(out, "\n") .. "\n", "direct connection not established\n") end
        return result(0, table.concat(out, "\n") .. "\n")
      end
    end
  end
end

-- }======

--- `tailscale debug prefs`: ipn.Prefs as cmd/tailscale/cli/debug.go
--- runPrefs prints it (json.MarshalIndent with a tab), keys stripped by
--- the daemon (ipnlocal stripKeysFromPrefs). The LocalAPI serves it to any
--- local user (ipnserver actor.Permissions: read on a Unix socket). Its
--- fields as in ipn/prefs.go v1.92.0-v1.100.0 (Sync from v1.92.0,
--- AllowSingleHosts until v1.100; NoStatefulFiltering true as a Linux
--- machine's: tests/corpus/tailscale/debug-prefs-linux-routeall-false-notes.txt);
--- the values are this world's admin machine: RouteAll from tailnet.acceptRoutes.
local function debug_prefs()
  local zero = string.rep("0", 64)
  local p = yaml_order({ControlURL = "https://controlplane.tailscale.com", RouteAll = W.accept_routes,
    ExitNodeID = "", ExitNodeIP = "", InternalExitNodePrior = "", ExitNodeAllowLANAccess = false, CorpDNS = true,
    RunSSH = false, RunWebClient = false, WantRunning = W.admin_state == "Running", LoggedOut = W.admin_state == "NeedsLogin",
    ShieldsUp = false, AdvertiseTags = json.null, Hostname = "", NotepadURLs = false, AdvertiseRoutes = json.null,
    AdvertiseServices = json.null, Sync = json.null, NoSNAT = false, NoStatefulFiltering = true, NetfilterMode = 2,
    AutoUpdate = {Check = true, Apply = false},
    AppConnector = {Advertise = false}, PostureChecking = false, NetfilterKind = "", DriveShares = json.null,
    AllowSingleHosts = true,
    Config = {PrivateNodeKey = "privkey:" .. zero, OldPrivateNodeKey = "privkey:" .. zero,
              UserProfile = {ID = 0, LoginName = "", DisplayName = "", ProfilePicURL = "", Roles = json.array({})},
              NetworkLockKey = "nlpriv:" .. zero, NodeID = "nSELF"}},
    {"ControlURL", "RouteAll", "ExitNodeID", "ExitNodeIP", "InternalExitNodePrior", "ExitNodeAllowLANAccess", "CorpDNS",
     "RunSSH", "RunWebClient", "WantRunning", "LoggedOut", "ShieldsUp", "AdvertiseTags", "Hostname", "NotepadURLs",
     "AdvertiseRoutes", "AdvertiseServices", "Sync", "NoSNAT", "NoStatefulFiltering", "NetfilterMode", "AutoUpdate",
     "AppConnector", "PostureChecking",
     "NetfilterKind", "DriveShares", "AllowSingleHosts", "Config"})
  return result(0, json.encode(p, {pretty = true}) .. "\n")
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
    -- (Status at v1.82.0: HaveNodeKey is omitempty, CertDomains a nil
    -- slice on a machine without HTTPS certificates, ClientVersion a nil
    -- pointer unless control offers an update)
    local state = W.admin_state
    if state ~= "Running" then
      local st = {Version = "1.82.0", TUN = true, BackendState = state,
                  HaveNodeKey = state ~= "NeedsLogin" or nil,
                  AuthURL = "", TailscaleIPs = json.null,
                  Self = {ID = "", HostName = "admin-laptop", DNSName = "", OS = "linux", TailscaleIPs = json.null, Online = false},
                  Health = {state == "NeedsLogin" and "You are logged out." or "Tailscale is stopped."},
                  MagicDNSSuffix = "", CurrentTailnet = json.null, CertDomains = json.null, Peer = json.null,
                  User = json.null, ClientVersion = json.null}
      return result(0, json.encode(st, {pretty = true}))
    end
    -- Health: ipnlocal's status adds WarnAcceptRoutesOff when this machine
    -- does not accept routes and a peer has primary routes (ipn/ipnlocal/
    -- local.go, types/netmap AnyPeersAdvertiseRoutes, health/healthmsg at
    -- v1.84.2; the text every release from v1.72.1 to v1.102.2 prints);
    -- an empty list otherwise
    local health = json.array({})
    if not W.accept_routes and next(primary) then health = {"Some peers are advertising routes but --accept-routes is false"} end
    -- User: the profiles of this machine's and its peers' owners (one
    -- admin here; tailcfg.UserProfile)
    local st = {Version = "1.82.0", TUN = true, BackendState = "Running", HaveNodeKey = true, AuthURL = "",
                TailscaleIPs = {"100.64.0.2"}, Health = health,
                Self = {ID = "nSELF", HostName = "admin-laptop", DNSName = "admin-laptop." .. W.tailnet .. ".", Online = true,
                        TailscaleIPs = {"100.64.0.2"}, UserID = 1},
                MagicDNSSuffix = W.tailnet, CurrentTailnet = {Name = W.tailnet, MagicDNSSuffix = W.tailnet, MagicDNSEnabled = true},
                CertDomains = json.null, Peer = next(peers) and peers or json.null,
                User = {["1"] = {ID = 1, LoginName = "admin@example.com", DisplayName = "Admin"}}, ClientVersion = json.null}
    return result(0, json.encode(st, {pretty = true}))
  end
  if argv[2] == "ping" then return ping(argv) end
  if argv[2] == "debug" and argv[3] == "prefs" and argv[4] == nil then return debug_prefs() end
  return result(1, "", fmt("simulated tailscale does not answer %q\n", table.concat(argv, " ", 2)))
end

return {kubectl = kubectl, tailscale = tailscale, node_object = node_object, pod_conditions = pod_conditions}

--- The world's model of a node: A/B boot slots, boots, extensions,
--- ext-tailscale's start (containerboot), addresses, and which node a
--- talosctl target or endpoint reaches.
local ctx = ...

local time = require "runbook.time"
local factory = require "factory"
local tailscale_lib = require "tailscale"

local W = ctx.W
local M = ctx.M            -- the world module (its _ functions)
local fmt = string.format

local function now() return time.monotonic() end

local function fault(kind, node)
  if W.faults[1] == nil then return nil end      -- asked per node per call: most worlds have none
  for _, f in ipairs(W.faults) do
    if f.type == kind and (node == nil or f.node == nil or f.node == node) then return f end
  end
end

-- {====== indexes
-- Every lookup by address or name goes through these, so that a tool's
-- call costs the same at 1,000 nodes as at 3. W.nodes and W.devices stay
-- the ordered lists (a scan keeps the first match: so does the index);
-- every change to W.devices goes through add_device/remove_device.

local function index_device(d)
  local ix = W.ix
  if d.node and not ix.dev_by_node[d.node] then ix.dev_by_node[d.node] = d end
  if not ix.dev_by_name[d.hostname_final] then ix.dev_by_name[d.hostname_final] = d end
  if d.addresses[1] and not ix.dev_by_addr[d.addresses[1]] then ix.dev_by_addr[d.addresses[1]] = d end
  if not ix.dev_by_id[d.id] then ix.dev_by_id[d.id] = d end
end

local function reindex()
  local ix = {node_by_ip = {}, node_by_name = {}, dev_by_node = {}, dev_by_name = {}, dev_by_addr = {}, dev_by_id = {},
              control_planes = {}}     -- in W.nodes' order (a node's role never changes)
  W.ix = ix
  for _, n in ipairs(W.nodes) do
    if not ix.node_by_ip[n.ip] then ix.node_by_ip[n.ip] = n end
    if not ix.node_by_name[n.name] then ix.node_by_name[n.name] = n end
    if n.role == "controlplane" then ix.control_planes[#ix.control_planes + 1] = n end
  end
  for _, d in ipairs(W.devices) do index_device(d) end
end

local function add_device(d, first)
  if first then table.insert(W.devices, 1, d); reindex() return end
  W.devices[#W.devices + 1] = d
  index_device(d)
end

local function remove_device(i)
  table.remove(W.devices, i)
  reindex()
end

-- }======

local function schematic_of_extensions(exts)
  local s = {customization = {}}
  if #exts > 0 then s.customization.systemExtensions = {officialExtensions = exts} end
  return s
end

local function register_schematic(s)
  local id = factory.id(s)
  W.schematics[id] = factory.canonical(s)
  return id
end

--- The image a node boots: its active slot (A/B, as Talos's bootloader
--- keeps them: the upgrade writes the other slot and boots it once; a
--- good boot makes it the default, a failed boot falls back).
local function slot(n) return n.slots[n.active] end
local function other(n) return n.active == "A" and "B" or "A" end

--- A change to what the API server says of the node (Ready, cordoned):
--- the node lists kept by kubectl (cli.lua) render it again. Every write
--- of a field a Node is built from goes through here: boot_until (a
--- reboot, its end), down, not_ready, unschedulable.
function M._node_changed(n)
  n.k8s_rev = (n.k8s_rev or 0) + 1
  W.k8s_gen = (W.k8s_gen or 0) + 1        -- some node changed: the kept lists look
end

--- Brings a node's state up to date with the clock (finishes a boot).
local function settle(n)
  if n.boot_until and now() >= n.boot_until then
    M._node_changed(n)
    n.boot_until = nil
    W.booting = W.booting - 1
    if n.never_returns then n.down = true; return end
    n.booted_at = now()
    if n.boot_once then
      if fault("boot_fails", n.name) and n.boot_once == "upgrade" then
        n.fell_back = true            -- the previous (still default) slot boots again
      else
        n.active = other(n)           -- the new slot becomes the default
      end
      n.boot_once = nil
    end
    local s = slot(n)
    n.image, n.schematic, n.extensions = s.image, s.schematic, s.extensions
    -- the slot's Talos version: what its installer's tag says (an upgrade
    -- across versions boots the new one; a rollback the old)
    n.talos_version = s.talos_version or n.talos_version
    if fault("not_ready_after_reboot", n.name) then n.not_ready = true end
    M._start_tailscale(n)
  end
end

local function node_up(n)
  if n.boot_until then settle(n) end
  if n.down or n.boot_until then return false end
  local f = fault("talosctl_unreachable", n.name)
  if f and now() >= (f.after or 0) and now() < (f.after or 0) + (f.seconds or 60) then return false end
  return true
end

local function has_ext(n, name)
  for _, e in ipairs(n.extensions) do if e == name then return true end end
  return false
end

--- The environment containerboot sees. The ExtensionServiceConfig's list
--- is appended after the service's own (extension.go); with a duplicated
--- key the first entry wins here, as Go's os.Getenv keeps the first of
--- duplicates (syscall.copyenv). Whether containerd's WithEnv dedups them
--- first is unconfirmed: the runbooks never leave duplicates.
local function esc_env(n)
  local doc = n.esc.tailscale
  local env = {}
  for _, kv in ipairs(doc and doc.environment or {}) do
    local k, v = kv:match("^([^=]+)=(.*)$")
    if k and env[k] == nil then env[k] = v end
  end
  return env
end

local function ip_for(i) return fmt("100.64.0.%d", 10 + i) end

-- tailscale0's IPv6 address: every device gets one of fd7a:115c:a1e0::/48
-- besides its 100.64.0.0/10 one (tailscale net/tsaddr/tsaddr.go,
-- TailscaleULARange, v1.84.2); the world derives it from the same number
local function ip6_for(i) return fmt("fd7a:115c:a1e0::%x", 10 + i) end

local function truthy(v) return v == "true" or v == "1" end

--- ext-tailscale starting on a node: authenticates and registers a device.
--- containerboot (cmd/containerboot/main.go) runs `tailscale up --authkey`
--- at every start unless TS_AUTH_ONCE is true, in which case only when
--- tailscaled says NeedsLogin; the state on /var/lib/tailscale (kept
--- across upgrades) makes a node that joined once log in without a key.
function M._start_tailscale(n)
  n.ts_state, n.ts_error = nil, nil
  if not has_ext(n, "tailscale") and not has_ext(n, factory.TAILSCALE) then return end
  if not n.esc.tailscale then n.ts_state = "Waiting"; return end        -- waits for its config
  if fault("ext_crashloop", n.name) then n.ts_state = "Failed"; n.ts_error = "containerboot: exited with code 1"; return end
  local env = esc_env(n)
  local key = env.TS_AUTHKEY or ""
  local function key_refused()
    if key == "" or fault("authkey_invalid") or W.auth.expired then return "invalid key: API key does not exist" end
    if (not W.auth.reusable or fault("authkey_single_use")) and W.auth.used then return "invalid key: unable to validate API key" end
  end
  -- an existing device of this node (state kept on /var across upgrades)
  local d0 = W.ix.dev_by_node[n.name]
  if d0 then
    if not truthy(env.TS_AUTH_ONCE) then
      local why = key_refused()
      if why then
        n.ts_state = "Failed"; n.ts_error = "tailscale up: " .. why; return
      end
    end
    d0.online = true; d0.routes_adv = M._routes(env); n.ts_state = "Running"; return
  end
  local why = key_refused()
  if why then n.ts_state = "Failed"; n.ts_error = "tailscale up: " .. why; return end
  W.auth.used = true
  -- authkey_expired: the key stops working once a first device joined
  if fault("authkey_expired") then W.auth.expired = true end
  -- the device is named after the hostname as Tailscale sanitises it
  -- (util/dnsname.SanitizeHostname: "k8s-1.home.lan" -> "k8s-1-home"), with
  -- "-1", "-2" ... when the name is taken
  local want = env.TS_HOSTNAME or n.name
  local base = tailscale_lib.device_name(want)
  local name, k = base, 0
  while W.ix.dev_by_name[name] do k = k + 1; name = base .. "-" .. k end
  W.next_dev = W.next_dev + 1
  local d = {id = fmt("n%016d", W.next_dev), nodeId = fmt("nNODE%dCNTRL", W.next_dev), node = n.name,
             hostname = want, hostname_final = name, addresses = {ip_for(W.next_dev)}, address6 = ip6_for(W.next_dev), online = true,
             created = time.iso(), tags = {"tag:k8s"}, routes_adv = M._routes(env), routes_enabled = {}, os = "linux",
             authorized = W.auth.preauthorized ~= false, seq = W.next_dev}
  for _, r in ipairs(d.routes_adv) do
    for _, a in ipairs(W.auto_routes) do if a == r then d.routes_enabled[#d.routes_enabled + 1] = r end end
  end
  add_device(d)
  n.ts_state = "Running"
  M._node_ip_moved(n)
end

function M._routes(env)
  local out = {}
  for r in (env.TS_ROUTES or ""):gmatch("[^,%s]+") do out[#out + 1] = r end
  return out
end

local function device_of(n) return W.ix.dev_by_node[n.name] end

--- The address Talos picks as the kubelet's node IP: the first routed
--- address (internal/app/machined/pkg/controllers/k8s/nodeip.go, sorted by
--- address, pkg/machinery/... addressutil), tailscale0's included, unless
--- machine.kubelet.nodeIP.validSubnets leaves it out. 100.64.0.0/10 sorts
--- before 192.168.0.0/16 and after 10.0.0.0/8.
-- An IPv6 address as its 8 groups of 16 bits, or nil.
local function groups6(ip)
  if not ip:find(":", 1, true) or ip:find("[^%x:]") then return nil end
  local head, tail = ip:match("^(.-)::(.*)$")
  local function split(x)
    local out = {}
    for g in x:gmatch("[^:]+") do out[#out + 1] = tonumber(g, 16) end
    return out
  end
  if not head then
    local g = split(ip)
    return #g == 8 and g or nil
  end
  local h, t = split(head), split(tail)
  if #h + #t > 7 then return nil end
  for _ = 1, 8 - #h - #t do h[#h + 1] = 0 end
  for _, x in ipairs(t) do h[#h + 1] = x end
  return h
end

-- The sort key of an address as netip.Addr.Compare orders them (Talos's
-- ComparePrefixesLegacy and ComparePrefixNew alike for single addresses):
-- every IPv4 address before every IPv6 one, then by value.
local function ip_key(ip)
  local a, b, c, d = ip:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if a then return fmt("4%03d.%03d.%03d.%03d", a, b, c, d) end
  local g = groups6(ip)
  if not g then return ip end
  return "6" .. fmt(string.rep("%04x", 8), table.unpack(g))
end

local cidr_memo = {}

local function in_cidr6(ip, net, bits)
  local x, y = groups6(ip), groups6(net)
  if not x or not y then return false end
  for i = 1, 8 do
    local take = math.min(16, math.max(0, bits - (i - 1) * 16))
    if take == 0 then return true end
    local shift = 16 - take
    if x[i] >> shift ~= y[i] >> shift then return false end
  end
  return true
end

local function in_cidr_uncached(ip, cidr)
  local net6, bits6 = cidr:match("^([%x:]+)/(%d+)$")
  if net6 and net6:find(":", 1, true) then return in_cidr6(ip, net6, tonumber(bits6)) end
  local net, bits = cidr:match("^([%d%.]+)/(%d+)$")
  local function num(x)
    local a, b, c, d = x:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    if not a then return nil end
    return ((tonumber(a) * 256 + tonumber(b)) * 256 + tonumber(c)) * 256 + tonumber(d)
  end
  local x, y = num(ip), net and num(net)
  if not x or not y then return false end
  local shift = 32 - tonumber(bits)
  return x >> shift == y >> shift
end

-- asked for every node at every `kubectl get nodes`: the answer is kept
local function in_cidr(ip, cidr)
  if ip == nil or cidr == nil then return in_cidr_uncached(ip or "", cidr or "") end
  local m = cidr_memo[cidr]
  if not m then m = {}; cidr_memo[cidr] = m end
  local r = m[ip]
  if r == nil then r = in_cidr_uncached(ip, cidr); m[ip] = r end
  return r
end

-- The address filter of Talos (github.com/siderolabs/net v0.4.0
-- FilterIPs): the entries apply in order, each adding the addresses it
-- holds, a "!" entry removing them; a bare address is a /32 (/128). `excl`
-- are further "!" entries (NodeIPConfig's excludeSubnets). A prefix holds
-- addresses of its own family only: "::/0" holds no IPv4 address
-- (netip.Prefix.Contains).
local entry_memo = {}

local function entry_net(e)
  local m = entry_memo[e]
  if not m then
    local neg = e:sub(1, 1) == "!"
    local net = neg and e:sub(2) or e
    if not net:find("/", 1, true) then net = net .. (net:find(":", 1, true) and "/128" or "/32") end
    m = {net, neg}
    entry_memo[e] = m
  end
  return m[1], m[2]
end

-- whether the filter keeps the one address `a` (no table built: asked
-- for every node at every `kubectl get nodes`)
local function keeps(a, cidrs, excl)
  local kept = false
  for i = 1, #cidrs do
    local net, neg = entry_net(cidrs[i])
    if in_cidr(a, net) then kept = not neg end
  end
  for i = 1, excl and #excl or 0 do
    if in_cidr(a, (entry_net(excl[i]))) then kept = false end
  end
  return kept
end

local function filter_ips(addrs, cidrs, excl)
  local out = {}
  local function apply(e, force_neg)
    local net, neg = entry_net(e)
    neg = neg or force_neg
    for _, a in ipairs(addrs) do
      if in_cidr(a, net) then
        local at
        for i, x in ipairs(out) do if x == a then at = i end end
        if not neg and not at then out[#out + 1] = a elseif neg and at then table.remove(out, at) end
      end
    end
  end
  for _, e in ipairs(cidrs) do apply(e) end
  for _, e in ipairs(excl or {}) do apply(e, true) end
  return out
end

--- The list NodeIPConfig holds (controllers/k8s/nodeip_config.go, v1.7.0
--- .. v1.13.0): machine.kubelet.nodeIP.validSubnets, or, unset, one
--- "0.0.0.0/0" (or "::/0") per service CIDR; and excludeSubnets: the pod
--- and service CIDRs (and VIPs, which the world has none of).
function M._kubelet_subnets(n)
  if #n.kubelet_valid > 0 then return n.kubelet_valid, W.exclude_k8s end
  if not W.kubelet_default then
    local d = {}
    for _, c in ipairs(W.service_cidrs) do d[#d + 1] = c:find(":", 1, true) and "::/0" or "0.0.0.0/0" end
    W.kubelet_default = d
  end
  return W.kubelet_default, W.exclude_k8s
end

local function by_address(a, b) return ip_key(a) < ip_key(b) end

-- the node's routed addresses, sorted: its LAN address(es) (n.ip, and
-- n.ip6 on a dual-stack node), and tailscale0's 100.x and fd7a:... ones
-- only with the fault that puts them in the way; nil when the LAN IPv4
-- address is the only one
local function candidates(n)
  local d = n.ts_state == "Running" and fault("node_ip_on_tailscale", n.name) and device_of(n)
  local ts = d and d.online and d.addresses[1]
  if not ts and not n.ip6 then return nil end
  local addrs = {n.ip, n.ip6, ts, ts and d.address6}
  local out = {}
  for i = 1, 4 do if addrs[i] then out[#out + 1] = addrs[i] end end
  table.sort(out, by_address)
  return out
end

-- the kubelet's node IPs (controllers/k8s/nodeip.go, v1.11.0): of the
-- addresses the filter keeps, in order, the first IPv4 and the first IPv6
-- one; none kept leaves the old ones ("no suitable node IP found")
local function kubelet_ips(n)
  local valid, excl = M._kubelet_subnets(n)
  local addrs = candidates(n)
  if not addrs then return keeps(n.ip, valid, excl) and {n.ip} or nil end
  local out, seen = {}, {}
  for _, a in ipairs(filter_ips(addrs, valid, excl)) do
    local fam = a:find(":", 1, true) and 6 or 4
    if not seen[fam] then seen[fam] = true; out[#out + 1] = a end
  end
  return out[1] and out or nil
end

local function kubelet_ip(n)
  local ips = kubelet_ips(n)
  return ips and ips[1]
end

-- etcd's advertised address (controllers/etcd/spec.go, v1.11.0): with
-- advertisedSubnets unset, the first routed address "0.0.0.0/0", "::/0"
-- keeps (less VIPs); set, every current address they keep (the first
-- here: the world's check is whether tailscale0's comes first)
local ETCD_DEFAULT = {"0.0.0.0/0", "::/0"}

local function etcd_ip(n)
  local valid = #n.etcd_valid > 0 and n.etcd_valid or ETCD_DEFAULT
  local addrs = candidates(n)
  if not addrs then return keeps(n.ip, valid) and n.ip or nil end
  return filter_ips(addrs, valid)[1]
end

--- etcd's advertised addresses (EtcdSpec "etcd", controllers/etcd/spec.go,
--- v1.11.0): advertisedSubnets unset, the first address "0.0.0.0/0",
--- "::/0" keep; set, every address they keep, in address order; none kept
--- leaves the old spec (the LAN address here).
function M._etcd_addresses(n)
  if #n.etcd_valid == 0 then return {etcd_ip(n) or n.ip} end
  local kept = filter_ips(candidates(n) or {n.ip}, n.etcd_valid)
  table.sort(kept, by_address)
  return kept[1] and kept or {n.ip}
end

--- The kubelet's node IPs (NodeIPs "kubelet": at most one per family,
--- IPv4 first), the LAN addresses when the filter keeps none.
function M._node_ips(n) return kubelet_ips(n) or {n.ip, n.ip6} end

--- The node's routed addresses, sorted (NodeAddress "routed"):
--- tailscale0's too while its device is online.
function M._routed_addresses(n)
  local d = n.ts_state == "Running" and device_of(n)
  local addrs = {n.ip}
  if n.ip6 then addrs[#addrs + 1] = n.ip6 end
  if d and d.online and d.addresses[1] then addrs[#addrs + 1] = d.addresses[1] end
  if d and d.online and d.address6 then addrs[#addrs + 1] = d.address6 end
  table.sort(addrs, by_address)
  return addrs
end

function M._node_ip(n) return kubelet_ip(n) or n.ip end

--- A control-plane node whose etcd would advertise its tailnet address
--- (cluster.etcd.advertisedSubnets unset): the member's peer URL no
--- longer matches and etcd on it stops being healthy.
--- Known gap: advertisedSubnets that allow none of the node's addresses
--- mark the member unhealthy here too; Talos v1.11.0's etcd spec
--- controller (controllers/etcd/spec.go) then writes no spec at all (the
--- running member keeps its old one; after a reboot it has none to start
--- from: inferred, not read). Not modelled: the runbooks pin the node's
--- own address.
function M._node_ip_moved(n)
  if n.role == "controlplane" and etcd_ip(n) ~= n.ip then
    n.etcd_broken = "etcdserver: request timed out, possibly due to connection lost (advertised peer URL moved to tailscale0)"
  end
end

--- Which node a talosctl target names, as apid on `via` would dial it:
--- an address, or a name the node resolves itself (its own hostname is in
--- its /etc/hosts). A MagicDNS name resolves only with MagicDNS, which
--- the node does not use (TS_ACCEPT_DNS=false): dialing fails.
local function target_of(key, via)
  local ix = W.ix
  local n = ix.node_by_ip[key]
  if n then return n end
  if via and via.name == key then return via end
  local d = ix.dev_by_addr[key]
  if d and d.node and d.online then return ix.node_by_name[d.node] end
end

--- The node an endpoint reaches from the admin machine: a LAN address
--- directly, a tailnet name or address over the tailnet while the node's
--- device is online; `name_for_tls` is what its certificate must hold.
local function endpoint_node(e)
  local ix = W.ix
  if ix.node_by_ip[e] then return ix.node_by_ip[e] end
  local suffix = "." .. W.tailnet
  local d = e:sub(-#suffix) == suffix and ix.dev_by_name[e:sub(1, -#suffix - 1)] or ix.dev_by_addr[e]
  if d and d.node and d.online then return ix.node_by_name[d.node] end
end

local function cert_names(n)
  local names = {n.name, n.ip}
  for _, s in ipairs(n.cert_sans) do names[#names + 1] = s end
  local d = device_of(n)
  if d then names[#names + 1] = d.addresses[1] end     -- apid's certificate holds the node's addresses (unconfirmed for tailscale0's)
  return names
end

return {
  add_device = add_device, cert_names = cert_names, device_of = device_of, reindex = reindex, remove_device = remove_device, endpoint_node = endpoint_node, fault = fault,
  has_ext = has_ext, ip_for = ip_for, node_up = node_up, now = now, other = other,
  register_schematic = register_schematic, schematic_of_extensions = schematic_of_extensions,
  target_of = target_of
}

--- rollout_plan: what the Tailscale rollout (rollout.lua) reads and decides
--- before anything changes: the nodes of talconfig.yaml, the ones this run
--- changes, their new schematics and installers, the routes, the tailnet,
--- the certSANs and address pins each node needs, and the plan shown for
--- the one confirmation (docs/rollout.md, phases 1 and 2). Every function
--- takes the run's state `r` (rollout.lua: r.v its variables, r.cfg the
--- cluster, r.current what the nodes run, r.target the new schematics).
local rb = require "runbook"
local async = require "runbook.async"
local errors = require "runbook.error"
local log = require "runbook.log"

local factory = require "factory"
local rolling = require "rolling_upgrade"
local talconfig = require "talconfig"
local talos = require "talos"
local tailscale = require "tailscale"

local M = {}
local fmt = string.format

local function usage(msg) error(errors.new("usage", msg, {exit = 2}), 0) end

--- talconfig.yaml read into the nodes the rollout works with (each with
--- its tailnet device name: TS_HOSTNAME is the node's hostname, which
--- Tailscale sanitises, "k8s-1.home" -> "k8s-1-home").
---@param path string talconfig.yaml
---@param default_tv? string talhelper's own Talos version, when the file has none
---@return table cfg {nodes, svc_cidr, svc_cidrs, svc_cidr_explicit, svc_source, talos_version, cluster_name}
function M.read_cluster(path, default_tv)
  local c = talconfig.read(path)
  c.talos_version = c.talos_version or default_tv
  local nodes = {}
  for _, n in ipairs(c.nodes) do
    if not n.ip then error(fmt("node %s has no ipAddress in %s", n.hostname, path)) end
    nodes[#nodes + 1] = {hostname = n.hostname, ip = n.ip, index = n.index, image_url = n.image_url,
                         control_plane = n.control_plane, patches = n.patches, secureboot = n.secureboot,
                         ts_name = tailscale.device_name(n.hostname), group_key = n.group_key,
                         cert_sans = n.cert_sans, services = n.services, group_services = n.group_services,
                         schematic_at = n.schematic_at, patch_esc = talconfig.patch_findings(c, n.index).tailscale_esc}
  end
  return {nodes = nodes, svc_cidr = c.svc_cidr, svc_cidrs = c.svc_cidrs, svc_cidr_explicit = c.svc_cidr_explicit,
          svc_source = c.svc_source, talos_version = c.talos_version, cluster_name = c.cluster_name}
end

--- Each node's schematic and extensions: hostname -> {exts, schematic}.
---@param nodes table[]
---@return table
function M.read_extensions(nodes)
  local list = async.map(nodes, function(n)
    local exts, id = talos.extensions(n.ip)
    if not id then error(fmt("%s reports no schematic: it was not installed from the Image Factory", n.hostname)) end
    return {exts = exts, schematic = id}
  end)
  local out = {}
  for i, n in ipairs(nodes) do out[n.hostname] = list[i] end
  return out
end

--- Whether the node lists the tailscale extension (r.current).
function M.runs_tailscale(r, n)
  for _, e in ipairs(r.current[n.hostname].exts) do if e == "tailscale" then return true end end
  return false
end

--- The nodes this run changes (rolling_upgrade.select: --limit, --exclude,
--- a group's shared schematic: block): r.cfg.nodes becomes them,
--- r.cfg.all keeps every node (the gates check the whole cluster),
--- r.cfg.rolled_before the nodes an earlier run did (tailscale in their
--- extensions and their talconfig.yaml entry), r.cfg.planned this run's
--- nodes, failed ones too. Returns whether nothing is left to do.
---@return boolean nothing_to_do
function M.select(r)
  local cfg, v = r.cfg, r.v
  cfg.all = cfg.all or cfg.nodes
  local sel = rolling.select{all = cfg.all, limit = v.limit, exclude = v.exclude, file = v.talconfig,
    group_blocks = true, refuse_empty = true,
    done = function(n)
      return M.runs_tailscale(r, n) and talconfig.tailscale_service_of(n) ~= nil,
             "already runs tailscale and has its talconfig.yaml entry: done"
    end,
    say_done = function(n, why) return fmt("%s %s, left as it is", n.hostname, why) end,
    shares_ok = function(n) return M.runs_tailscale(r, n) end}
  cfg.rolled_before = {}     -- validated with the rest (issue #28.1)
  for _, s in ipairs(sel.skipped) do cfg.rolled_before[#cfg.rolled_before + 1] = s.node end
  cfg.nodes, cfg.planned = sel.nodes, sel.nodes
  if #sel.nodes == 0 then log.info("every node chosen already runs tailscale: nothing to do") end
  return #sel.nodes == 0
end

--- One new schematic per schematic the nodes run now (control planes on a
--- vanilla image, GPU workers on another): each keeps its extensions,
--- kernel args and overlay, and gets siderolabs/tailscale. A schematic:
--- block gets tailscale appended to its list (talhelper sends the block as
--- written: the ID of that order). Returns {pairs = {{current_id, id,
--- canonical, extensions, nodes}}, nodes = {hostname -> {current_id, id}}}.
function M.schematics(r)
  local pairs_, by_id, by_node = {}, {}, {}
  for _, n in ipairs(r.cfg.nodes) do
    local cur_id = r.current[n.hostname].schematic
    local append = n.schematic_at ~= nil
    local p = by_id[cur_id .. (append and "/block" or "")]
    if not p then
      local cur = factory.fetch(cur_id, r.v.factory_url)
      if not cur then error(fmt("the factory does not know %s's schematic %s", n.hostname, cur_id)) end
      local merged = factory.merge(cur, {extensions = {factory.TAILSCALE}}, {append = append})
      local dropped = factory.dropped(cur, merged)
      if #dropped > 0 then error("the new schematic would drop " .. table.concat(dropped, ", ")) end
      p = {current_id = cur_id, id = factory.id(merged), canonical = factory.canonical(merged),
           extensions = factory.extensions(merged), nodes = {}}
      by_id[cur_id .. (append and "/block" or "")] = p
      pairs_[#pairs_ + 1] = p
    end
    p.nodes[#p.nodes + 1] = n.hostname
    by_node[n.hostname] = {current_id = p.current_id, id = p.id}
  end
  -- the plan's fixed ID is the schematic with tailscale only
  for _, p in ipairs(pairs_) do
    if p.id ~= factory.TAILSCALE_ONLY_ID then
      local plan_drops = factory.dropped(factory.parse(p.canonical),
                                         {customization = {systemExtensions = {officialExtensions = {factory.TAILSCALE}}}})
      log.warn(fmt("the plan's schematic %s would drop %s from %s: using %s (their extensions plus tailscale) instead",
        factory.TAILSCALE_ONLY_ID:sub(1, 12), #plan_drops > 0 and table.concat(plan_drops, ", ") or "other customizations",
        table.concat(p.nodes, ", "), p.id:sub(1, 12)))
    end
  end
  return {pairs = pairs_, nodes = by_node}
end

--- The factory offers the Talos version and every extension of every new
--- schematic for it. Returns the number of extensions checked.
function M.check_factory_offers(r)
  local version, url = r.cfg.talos_version, r.v.factory_url
  local res = require("runbook.http").get(url .. "/versions", {timeout = 60, check = true})
  local known = false
  for _, ver in ipairs(res:json()) do if ver == version then known = true end end
  if not known then error(fmt("the factory does not offer Talos %s", version)) end
  local offered = factory.official_extensions(version, url)
  local n = 0
  for _, p in ipairs(r.target.pairs) do
    local missing = factory.unavailable(factory.parse(p.canonical), offered)
    if #missing > 0 then
      error(fmt("Talos %s has no official %s: the installer for %s could not be built", version,
                table.concat(missing, ", "), table.concat(p.nodes, ", ")))
    end
    n = n + #p.extensions
  end
  return n
end

--- Each node's installer (r.target.installers) and the report's rows.
function M.installers(r)
  r.target.installers = {}
  for _, n in ipairs(r.cfg.nodes) do
    r.target.installers[n.hostname] = factory.installer(n.image_url, r.target.nodes[n.hostname].id,
                                                        r.cfg.talos_version, n.secureboot)
  end
  local rows = {}
  for _, p in ipairs(r.target.pairs) do
    rows[p.current_id:sub(1, 12) .. " -> " .. p.id:sub(1, 12)] =
      fmt("%s (extensions: %s)", table.concat(p.nodes, ", "), table.concat(p.extensions, ", "))
  end
  return rows
end

--- Every service CIDR is a route (a dual-stack cluster has two), and
--- every route given is one of them; the cluster's own word first, when
--- it answers (talconfig.reconcile_service_cidrs decides). Returns the routes.
function M.check_routes(r)
  local cfg, v = r.cfg, r.v
  local res = talconfig.reconcile_service_cidrs(cfg, require("kube").service_cidrs_live(), v.talconfig)
  if res.note then log.info(res.note) end
  if res.warning then log.warn(res.warning) end
  cfg.svc_cidrs, cfg.svc_cidr, cfg.svc_source = res.cidrs, res.cidrs[1], res.source
  -- this machine reaches the service CIDR through the route only if it
  -- accepts routes (off by default on Linux, ipn/prefs.go): said now,
  -- not after every node was changed (the final check needs it)
  if tailscale.accepts_routes() == false then
    log.warn("the route check at the end will fail: " .. tailscale.ACCEPT_ROUTES_HINT)
  end
  local svc = {}
  for _, c in ipairs(cfg.svc_cidrs) do svc[c] = true end
  local routes = v.routes or cfg.svc_cidrs
  for _, route in ipairs(routes) do
    if not svc[route] then
      error(fmt("route %s is not one of the cluster's service CIDRs %s (%s); 10.43.0.0/16 is k3s's default, Talos's is "
        .. "10.96.0.0/12. Fix --var routes (or clusterSvcNets) before anything changes",
        route, table.concat(cfg.svc_cidrs, ", "), cfg.svc_source or "clusterSvcNets"))
    end
  end
  if v.routes and #v.routes < #cfg.svc_cidrs then
    log.warn(fmt("--var routes leaves out %d of the cluster's service CIDRs (%s): Services on the rest stay unreachable "
      .. "over the tailnet", #cfg.svc_cidrs - #v.routes, table.concat(cfg.svc_cidrs, ", ")))
  end
  return routes
end

--- A device of the tailnet named as the node's would be: its own (the node
--- runs tailscale already), one a keyless rollback left (the node takes it
--- back), or a stranger (refused: the node would register as <name>-1).
local function check_device_name(r, n, peers, left)
  for _, p in ipairs(peers) do
    if p.name == n.ts_name and M.runs_tailscale(r, n) then
      -- its state on /var/lib/tailscale survives the upgrade and keeps the name
      log.info(fmt("%s already runs tailscale: the device %s is its own and keeps its name", n.hostname, p.dns_name))
    elseif p.name == n.ts_name and tailscale.is_left_device(left[n.hostname], p) then
      log.info(fmt("%s's device %s (%s) was left by a rollback: the node takes it back", n.hostname, p.dns_name,
                   table.concat(p.ips, ", ")))
    elseif p.name == n.ts_name then
      error(fmt("the tailnet already has a device named %s (%s, %s): the node would register as %s-1. Delete the stale "
        .. "device in the admin console first", n.ts_name, p.dns_name, p.online and "online" or "offline", n.ts_name))
    end
  end
end

--- The tailnet's DNS suffix, each node's device name free and unique, the
--- operator's device online (a warning). Returns the suffix.
function M.check_tailnet(r)
  local v = r.v
  local peers, st = tailscale.peers()
  local suffix = v.tailnet or (st.MagicDNSSuffix or ""):gsub("%.$", "")
  if suffix == "" then error("cannot tell the tailnet's DNS suffix: pass --var tailnet=tailXXXX.ts.net") end
  local seen = {}
  local left = tailscale.devices_left(rb.state_dir)
  for _, n in ipairs(r.cfg.nodes) do
    if n.ts_name == "" then error(fmt("node %s's hostname gives no Tailscale device name", n.hostname)) end
    if seen[n.ts_name] then
      error(fmt("nodes %s and %s would both be named %s in the tailnet (Tailscale sanitises hostnames: util/dnsname); "
        .. "the second would become %s-1", seen[n.ts_name], n.hostname, n.ts_name, n.ts_name))
    end
    seen[n.ts_name] = n.hostname
    if n.ts_name ~= n.hostname then
      log.info(fmt("%s will be the device %s in the tailnet (Tailscale's sanitised form of the hostname)", n.hostname,
                   n.ts_name))
    end
    check_device_name(r, n, peers, left)
  end
  local op = false
  for _, p in ipairs(peers) do if p.name == v.operator_device then op = p.online end end
  if not op then log.warn("the Kubernetes operator's device " .. v.operator_device .. " is not online before the rollout") end
  return suffix
end

--- The auth key itself (with an API key): reusable, pre-authorized, not
--- expiring before the nodes log in.
function M.check_authkey(r)
  local v = r.v
  local info = tailscale.key_info(v.tailscale_api, v.api_key, r.authkey)
  local problems = tailscale.key_problems(info, #r.cfg.nodes, require("runbook.time").now())
  if #problems > 0 then
    error(fmt("the auth key %s will not do: %s. Create a reusable, pre-authorized, tagged key and set TS_AUTHKEY; "
      .. "nothing was changed", tostring(info.id), table.concat(problems, "; ")))
  end
  return {id = info.id, expires = info.expires}
end

-- {====== certSANs and address pins

--- The addresses to pin: ipAddress when it is an address; when it is a
--- name (talhelper takes one: kube.sdg.moe), what the node itself reports
--- as the kubelet's node IP (NodeIPs "kubelet", pkg/machinery/resources/
--- k8s/nodeip.go), before tailscale0 exists: never the name, which
--- validSubnets cannot hold. A dual-stack cluster (a service CIDR of each
--- family): Talos's default kubelet filter admits both families (one
--- "0.0.0.0/0"/"::/0" per service CIDR, nodeip_config.go) and the kubelet
--- keeps one address of each (nodeip.go, v1.11.0): the pins hold the
--- node's address of every family it reports (issue #28.5).
local function node_addresses(n, dual)
  if talconfig.is_ip(n.ip) and not dual then return {n.ip} end
  if talconfig.is_ip(n.ip) then
    local addrs = talconfig.pin_addresses(n.ip, talconfig.kubelet_addresses(talos.get(n.ip, "nodeips")))
    if #addrs > 1 then log.info(fmt("%s: dual-stack, the pins hold %s", n.hostname, table.concat(addrs, ", "))) end
    return addrs
  end
  local addrs = talconfig.kubelet_addresses(talos.get(n.ip, "nodeips"))
  if #addrs == 0 then
    error(fmt("%s's ipAddress %s is a name and the node reports no kubelet node IP address (talosctl get nodeips): "
      .. "the address pins cannot be chosen; set ipAddress to the node's address, or --var pin_node_ip=false",
      n.hostname, n.ip))
  end
  log.info(fmt("%s: ipAddress %s is a name; the pins use the address the node reports, %s", n.hostname, n.ip,
               table.concat(addrs, ", ")))
  return addrs
end

--- What one node gets, from what it has: the tailnet name in its certSANs
--- unless there, the kubelet and etcd pins unless pinned already
--- (pinned: the list lets no tailscale0 address, 100.64.0.0/10, through;
--- Talos's own default, "0.0.0.0/0" per service CIDR, lets every one).
local function pins_of(r, n, p)
  local fqdn, v = n.ts_name .. "." .. r.tailnet, r.v
  local has_san = false
  for _, d in ipairs(p.dns) do if d == fqdn then has_san = true end end
  local o = {cert_san = not has_san and fqdn or nil, addr = p.addrs[1]}
  local kubelet_free, etcd_free = talos.admits_tailnet(p.kubelet), p.etcd and talos.admits_tailnet(p.etcd)
  if v.pin_node_ip then
    if kubelet_free then o.pin_kubelet = talos.pin_entry(p.kubelet, p.addrs, p.kubelet_default)
    else log.info(fmt("%s: the kubelet node IP is pinned already (%s)", n.hostname, table.concat(p.kubelet, ", "))) end
    -- etcd: the one address it advertises today (with advertisedSubnets
    -- unset, the first routed address only: etcd/spec.go advertisedIPs[:1],
    -- v1.11.0); a second family would add a peer URL
    if etcd_free then o.pin_etcd = talos.pin_entry(p.etcd, {p.addrs[1]})
    elseif p.etcd then
      log.info(fmt("%s: etcd's advertised address is pinned already (%s)", n.hostname, table.concat(p.etcd, ", ")))
    end
  elseif kubelet_free then
    log.warn(fmt("%s: nothing keeps the kubelet node IP off tailscale0 (validSubnets %s); once it is up, Talos may pick "
      .. "its 100.x address", n.hostname, table.concat(p.kubelet, ", ")))
  end
  return o
end

--- Talos takes the first routed address as the kubelet's node IP and
--- etcd's advertised address (controllers/k8s/nodeip.go, etcd/spec.go),
--- tailscale0's 100.x included: both pinned to the LAN address unless the
--- node pins them already; apid's certificate must hold the tailnet name
--- for `talosctl -e <name>` to verify it. Returns hostname ->
--- {cert_san, addr, pin_kubelet, pin_etcd}.
function M.read_pins(r)
  local v, cfg = r.v, r.cfg
  local dual = talconfig.dual_stack(cfg.svc_cidrs)
  local list = async.map(cfg.nodes, function(n)
    local dns = talos.cert_sans(n.ip)
    local kubelet, etcd = talos.address_pins(n.ip)
    -- Talos's default list, unless the config writes that very list
    local default = talos.default_kubelet_subnets(cfg.svc_cidrs)
    if v.pin_node_ip and talos.same_list(kubelet, default) and #talos.kubelet_subnets_configured(n.ip) > 0 then
      default = nil
    end
    return {dns = dns, kubelet = kubelet, etcd = etcd, kubelet_default = default,
            addrs = (v.pin_node_ip or v.dest_ip) and node_addresses(n, dual) or {n.ip}}
  end)
  local out = {}
  for i, n in ipairs(cfg.nodes) do out[n.hostname] = pins_of(r, n, list[i]) end
  return out
end

-- }======

--- The plan's lines: the schematics, then per node what it gets.
---@return string[]
function M.plan_lines(r)
  local plan = {fmt("the plan for %d nodes, one at a time:", #r.cfg.nodes)}
  for _, pr in ipairs(r.target.pairs) do
    plan[#plan + 1] = fmt("  schematic %s -> %s: %s", pr.current_id:sub(1, 12), pr.id:sub(1, 12),
                          table.concat(pr.nodes, ", "))
  end
  for _, n in ipairs(r.cfg.nodes) do
    plan[#plan + 1] = fmt("  %s (%s): talosctl apply-config (tailscale as %s.%s, routes %s), then talosctl upgrade "
      .. "--image %s", n.hostname, n.ip, n.ts_name, r.tailnet, table.concat(r.routes, ","), r.target.installers[n.hostname])
  end
  return plan
end

--- The one confirmation: the whole plan, or, resumed after it was
--- confirmed (a pause, a stop), only what is left (issue #28.7).
function M.ask_to_apply(r)
  local left = {}
  for _, n in ipairs(r.cfg.nodes) do
    if not rb.is_done("upgrade/" .. n.hostname) then left[#left + 1] = n.hostname end
  end
  if rb.is_done("talconfig") then
    rb.confirm(fmt("Continue with the remaining %d node%s (%s)?", #left, #left == 1 and "" or "s", table.concat(left, ", ")))
  else
    rb.confirm(fmt("Apply this plan to %d nodes (files first, then %s)?", #r.cfg.nodes,
                   rolling.pace(r.cfg.nodes, r.v.batch, r.v.max_failures)))
  end
end

--- Every node that runs tailscale once this run ends: the earlier runs'
--- and this one's, in talconfig.yaml's order.
function M.all_rolled(cfg)
  local mine = {}
  for _, n in ipairs(cfg.rolled_before or {}) do mine[n.hostname] = true end
  for _, n in ipairs(cfg.nodes) do mine[n.hostname] = true end
  local out = {}
  for _, n in ipairs(cfg.all or cfg.nodes) do if mine[n.hostname] then out[#out + 1] = n end end
  return out
end

-- {====== the nodes, one by one (rolling_upgrade)

--- How the rollout names what a node runs in its gates and messages
--- (rolling_upgrade's words): by schematic, its batches shortened.
M.WORDS = {
  want = function() return "the new schematic" end,
  fell_back = function(e)
    return e.node.hostname .. " came back on its previous schematic: the new image failed to boot and Talos fell back"
  end,
  kept = function(e) return e.node.hostname .. " runs its previous schematic: no rollback (it would boot the other slot)" end,
  lacks = function(e)
    return e.node.hostname .. " booted the new schematic but lists no tailscale extension: the image lacks it"
  end,
  booted = function(_, seen) return "schematic " .. seen.schematic:sub(1, 12) .. " with tailscale" end,
  batch = function(names, b, nb)
    return fmt("batch %d/%d (%s)", b, nb, #names <= 3 and table.concat(names, ", ")
               or fmt("%s .. %s, %d nodes", names[1], names[#names], #names))
  end,
  confirm = function(batch, what)
    local e = batch[1]
    return #batch == 1 and fmt("Upgrade %s (%s) to schematic %s?", e.node.hostname, e.node.ip, e.want.schematic:sub(1, 12))
           or fmt("Upgrade %s?", what)
  end,
}

--- One node's change for rolling_upgrade.run: its generated config
--- (applied once its diff holds only this run's changes: certSANs, the
--- install image, the address pins and the ExtensionServiceConfig apply
--- at once, CanApplyImmediate; undone by removing the service), the
--- installer of its new schematic, and the gates after: tailscale listed,
--- ext-tailscale running, and the node online in the tailnet.
---@return rolling_upgrade.Entry
function M.entry(r, n)
  local tn, installer = r.target.nodes[n.hostname], r.target.installers[n.hostname]
  local file = r.generated[n.hostname] or fmt("%s/clusterconfig/%s-%s.yaml", r.cfg_dir, r.cfg.cluster_name, n.hostname)
  return {
    node = n, installer = installer, server = r.server_versions[n.ip],
    want = {schematic = tn.id}, previous = {schematic = tn.current_id},
    extensions = {"tailscale"}, services = {"ext-tailscale"},
    config = {file = file, whose = "this rollout did",
      -- landed already (a try cut short after apply-config): the node runs
      -- this very config, its tailscale ExtensionServiceConfig in it
      landed = function() return require("landed").rollout_config(n.ip, file) end,
      surprises = function(diff)
        return require("configdiff").rollout_surprises(diff, {fqdn = n.ts_name .. "." .. r.tailnet, image = installer})
      end,
      undo = function()
        talos.remove_extension_service_config(n.ip, "tailscale", fmt("%s/.tailscale-remove-%s.yaml", r.cfg_dir, n.hostname))
      end},
    gates = function()
      rb.gate(n.hostname .. " online in the tailnet as " .. n.ts_name, function()
        return require("checks").node_in_tailnet(n.ts_name, rb.fatal)
      end, {timeout = 300, interval = r.v.poll_interval})
    end,
  }
end

-- }======

M.usage = usage
return M

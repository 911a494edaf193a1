--- talosctl in the simulated world: flags, reachability through -e/-n,
--- and the subcommands the runbooks use, in the shapes of the version the
--- scenario names (cluster.talosctlVersion).
local ctx = ...

local json = require "runbook.json"
local time = require "runbook.time"
local yaml = require "runbook.yaml"
local factory = require "factory"

local W = ctx.W
local M = ctx.M            -- the world module (its _ functions)
local fmt = string.format
local path_of = ctx.path_of
local cert_names = ctx.model.cert_names
local device_of = ctx.model.device_of
local endpoint_node = ctx.model.endpoint_node
local fault = ctx.model.fault
local has_ext = ctx.model.has_ext
local node_up = ctx.model.node_up
local now = ctx.model.now
local other = ctx.model.other
local target_of = ctx.model.target_of
local resource, result, tabwriter = ctx.output.resource, ctx.output.result, ctx.output.tabwriter
local mc = ctx.machineconfig

local TALOSCTL_GLOBAL = {["-n"] = 1, ["--nodes"] = 1, ["-e"] = 1, ["--endpoints"] = 1, ["--talosconfig"] = 1, ["--context"] = 1}

local function parse_flags(argv, first, known)
  local flags, pos = {}, {}
  local i = first
  while i <= #argv do
    local a = argv[i]
    local name, val = a:match("^(%-%-?[%w%-]+)=(.*)$")
    if not name then name = a end
    if name:sub(1, 1) == "-" and #name > 1 then
      local takes = known[name] or TALOSCTL_GLOBAL[name]
      if takes == nil then return nil, fmt("Error: unknown flag: %s", name) end
      if takes == 1 and val == nil then i = i + 1; val = argv[i] end
      flags[name] = val or true
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  return flags, pos
end

local function target_nodes(flags)
  local list = {}
  for ip in tostring(flags["-n"] or flags["--nodes"] or ""):gmatch("[^,]+") do list[#list + 1] = ip end
  return list
end

--- The names apid's certificate holds, as Go's x509.HostnameError lists
--- them for `host` (crypto/x509/verify.go): the IP SANs for an address,
--- the DNS names otherwise, each sorted as CertSANSpec.Sort sorts them
--- (pkg/machinery/resources/secrets/cert_sans.go@v1.11.0). The addresses
--- include the loopback ones (talosctl/bootstrap-x509-valid-for-ips-v1.6.7-issue-8555.txt:
--- "10.0.0.4, 127.0.0.1, ::1"); addresses sort IPv4 first, by value.
local function ip_key(a)
  local o = {a:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")}
  if #o == 4 then return fmt("4%03d%03d%03d%03d", tonumber(o[1]), tonumber(o[2]), tonumber(o[3]), tonumber(o[4])) end
  return "6" .. a      -- IPv6 after IPv4 (the world's IPv6 addresses are ::1 and fd7a:...; not compared by value)
end

local function is_address(s) return s:match("^[%d.]+$") ~= nil or s:find(":", 1, true) ~= nil end

local function x509_valid_for(n, host)
  local list, seen = {}, {}
  local want_ip = is_address(host)
  local all = cert_names(n)
  if want_ip then all[#all + 1] = "127.0.0.1"; all[#all + 1] = "::1" end
  for _, nm in ipairs(all) do
    if is_address(nm) == want_ip and not seen[nm] then seen[nm] = true; list[#list + 1] = nm end
  end
  if want_ip then table.sort(list, function(a, b) return ip_key(a) < ip_key(b) end) else table.sort(list) end
  return table.concat(list, ", ")
end

local function unreachable(ip)
  return fmt("error: rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial tcp %s:50000: connect: connection refused\"\n", ip)
end

--- Connects as talosctl does: to the endpoint (-e, or the talosconfig's:
--- the control planes' LAN addresses here), whose apid dials the target
--- (-n) by the name given (internal/app/apid/pkg/director/director.go
--- forwards even to itself). Returns the target node, or nil and the
--- error text talosctl prints.
local function reach(flags, key)
  local e = flags["-e"] or flags["--endpoints"]
  e = e and e:match("^[^,]+")
  local via
  if e then
    via = endpoint_node(e)
    if not via or not node_up(via) then return nil, unreachable(e) end
    local ok = false
    for _, nm in ipairs(cert_names(via)) do if nm == e then ok = true end end
    if not ok then
      -- Go's x509.HostnameError, through grpc's transport
      return nil, fmt("error: rpc error: code = Unavailable desc = connection error: desc = \"transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate is valid for %s, not %s\"\n",
                      x509_valid_for(via, e), e)
    end
  else
    for _, m in ipairs(W.ix.control_planes) do if node_up(m) then via = m; break end end
    if not via then return nil, unreachable(W.nodes[1].ip) end
  end
  if key == nil then return via end
  local n = target_of(key, via)
  if not n then
    if not key:match("^[%d%.]+$") and not key:find(":", 1, true) then
      -- apid resolves the name with the node's resolver (unconfirmed: the
      -- exact resolver address in the message)
      return nil, fmt("error: rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial tcp: lookup %s on 127.0.0.53:53: no such host\"\n", key)
    end
    return nil, unreachable(key)
  end
  if not node_up(n) then return nil, unreachable(key) end
  return n
end

local T = {}

--- talosctl version (cmd/talosctl/cmd/talos/version.go@v1.11.0): the
--- client, then one "Server:" heading printed before the call, then per
--- node its NODE line and long version; a call that got no reply fails
--- "error getting version: ..." (talosctl/version-v1.9.1-three-nodes-hcloud-51.txt
--- shows three nodes under one heading).
function T.version(flags)
  local client = fmt("Client:\n\tTag:         %s\n\tSHA:         7e1e8a1b\n\tBuilt:       \n\tGo version:  go1.24.5\n\tOS/Arch:     linux/amd64\n", W.talosctl_version)
  if flags["--client"] then return result(0, client) end
  local out = {client, "Server:\n"}
  for _, ip in ipairs(target_nodes(flags)) do
    local n, why = reach(flags, ip)
    if not n then return result(1, table.concat(out), "error getting version: " .. why:gsub("^error: ", "")) end
    out[#out + 1] = fmt("\tNODE:        %s\n\tTag:         %s\n\tSHA:         7e1e8a1b\n\tBuilt:       \n\tGo version:  go1.24.5\n\tOS/Arch:     linux/amd64\n\tEnabled:     RBAC\n",
                        ip, n.talos_version)
  end
  return result(0, table.concat(out))
end

--- EtcdConfig "etcd" (pkg/machinery/resources/etcd/config.go; written by
--- controllers/etcd/config.go, v1.8.0 .. v1.13.0): advertiseValidSubnets
--- is cluster.etcd.advertisedSubnets as written (omitempty: absent when
--- unset; the default "0.0.0.0/0", "::/0" is spec.go's, not shown);
--- advertiseExcludeSubnets holds only the VIPs (none in the world), not
--- the Kubernetes exclusions; listenValidSubnets is listenSubnets, else
--- advertisedSubnets (v1alpha1_etcdconfig.go); extraArgs is a map of
--- strings up to v1.12, of {values} from v1.13 (empty either way).
local function etcd_config(ip, n)
  local spec = {advertiseExcludeSubnets = json.array({}), listenExcludeSubnets = json.array({}),
                image = "gcr.io/etcd-development/etcd:v3.5.21", extraArgs = {}}
  if #n.etcd_valid > 0 then spec.advertiseValidSubnets = json.array(n.etcd_valid); spec.listenValidSubnets = json.array(n.etcd_valid) end
  return resource(ip, "etcd", "EtcdConfigs.etcd.talos.dev", "etcd", 1, yaml.order(spec,
    {"advertiseValidSubnets", "advertiseExcludeSubnets", "listenValidSubnets", "listenExcludeSubnets", "image", "extraArgs"}))
end

local B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

--- The node identity (cluster.Identity "local", persisted on STATE): 32
--- random bytes, base62 (adapters/cluster/identity.go, v1.11.0); here
--- the sha256 of the node's name, so that a world is the same each time.
local function node_identity(n)
  if n.identity then return n.identity end
  local bytes = {}
  for h in require("runbook.hash").sha256(n.name):gmatch("%x%x") do bytes[#bytes + 1] = tonumber(h, 16) end
  local digits = {}
  while #bytes > 0 do          -- divide the big number by 62, digit by digit
    local rem, q = 0, {}
    for _, b in ipairs(bytes) do
      local cur = rem * 256 + b
      if #q > 0 or cur // 62 > 0 then q[#q + 1] = cur // 62 end
      rem = cur % 62
    end
    table.insert(digits, 1, B62:sub(rem + 1, rem + 1))
    bytes = q
  end
  n.identity = table.concat(digits)
  return n.identity
end

local routed_addresses = M._routed_addresses

--- Talos v1.7.7 and v1.8.0 .. v1.8.3 mark a service without a health
--- check unhealthy ("service not running") whenever it is not running,
--- and nothing clears it once it runs (system/service_runner.go; fixed
--- in v1.8.4 by 3a1727ee1): an extension service shows healthy false,
--- unknown false, HEALTH `Fail`.
local function ext_health_fails(n)
  local minor, patch = n.talos_version:match("^v1%.(%d+)%.(%d+)")
  minor, patch = tonumber(minor), tonumber(patch)
  return (minor == 7 and patch == 7) or (minor == 8 and patch <= 3)
end

--- talosctl's warning when a node runs an older Talos than the client
--- (helpers.ClientVersionCheck, v1.8.0 .. v1.13.0: get, patch, reboot,
--- upgrade print it on stderr; semver without the "v").
local function version_warning(ip, n)
  local function num(tag)
    local a, b, c = tag:match("^v?(%d+)%.(%d+)%.(%d+)")
    return a and (tonumber(a) * 1000000 + tonumber(b) * 1000 + tonumber(c)) or 0
  end
  if num(n.talos_version) >= num(W.talosctl_version) then return "" end
  return fmt("%s: server version %s is older than client version %s", ip, n.talos_version:gsub("^v", ""),
             (W.talosctl_version:gsub("^v", "")))
end

local function version_warnings(list)
  local w = {}
  for _, x in ipairs(list) do if x ~= "" then w[#w + 1] = x end end
  return #w > 0 and ("WARNING: " .. table.concat(w, ", ") .. "\n") or ""
end

--- The extension services a node runs besides ext-tailscale (modelled
--- apart, with its config): ext-<service> for each service its other
--- extensions ship (lib/extensions.lua, from siderolabs/extensions),
--- running once the node is up. An extension that reads an
--- ExtensionServiceConfig is not modelled waiting for it.
local function ext_services(n)
  local out = {}
  for _, e in ipairs(n.extensions) do
    if e ~= "siderolabs/tailscale" then
      for _, id in ipairs(require("extensions").services(e)) do out[#out + 1] = id end
    end
  end
  return out
end

local function get_resource(flags, pos)
  local what = pos[2]
  if flags["-o"] ~= "json" and flags["--output"] ~= "json" then
    return result(1, "", "simulated talosctl answers 'get' with -o json only\n")
  end
  local out, warns = {}, {}
  for _, ip in ipairs(target_nodes(flags)) do
    local n, why = reach(flags, ip)
    if not n then return result(1, table.concat(out), why) end
    warns[#warns + 1] = version_warning(ip, n)
    if what == "extensions" or what == "extensionstatuses" then
      for i, e in ipairs(n.extensions) do
        local short = e:match("/(.+)$") or e
        out[#out + 1] = resource(ip, "runtime", "ExtensionStatuses.runtime.talos.dev", tostring(i - 1), 1,
          {image = short .. ".sqsh", metadata = {name = short, version = short == "tailscale" and "1.82.0" or "1.0.0",
           author = "Sidero Labs", description = "", compatibility = {talos = {version = ">= v1.5.0"}}}})
      end
      out[#out + 1] = resource(ip, "runtime", "ExtensionStatuses.runtime.talos.dev", tostring(#n.extensions), 1,
        {image = "", metadata = {name = "schematic", version = n.schematic, author = "Image Factory", description = ""}})
    elseif what == "extensionserviceconfigs" then
      local names = {}
      for k in pairs(n.esc) do names[#names + 1] = k end
      table.sort(names)
      for _, k in ipairs(names) do
        out[#out + 1] = resource(ip, "runtime", "ExtensionServiceConfigs.runtime.talos.dev", k, 1,
          {environment = n.esc[k].environment})   -- `files` is omitempty (extension_services_config.go)
      end
    elseif what == "members" then
      -- controllers/cluster/member.go (v1.11.0): one Member per discovered
      -- affiliate, workers included, ID the node's name; nodeId is the
      -- node identity (cluster.Identity), addresses its routed addresses;
      -- controlPlane only on control planes (omitempty). A rebooting node
      -- stays listed (its affiliate outlives the reboot: unconfirmed how long)
      for _, m in ipairs(W.nodes) do
        local spec = {nodeId = node_identity(m), addresses = routed_addresses(m), hostname = m.name,
                      machineType = m.role, operatingSystem = fmt("Talos (%s)", m.talos_version)}
        if m.role == "controlplane" then spec.controlPlane = {apiServerPort = 6443} end
        out[#out + 1] = resource(ip, "cluster", "Members.cluster.talos.dev", m.name, 1,
          yaml.order(spec, {"nodeId", "addresses", "hostname", "machineType", "operatingSystem", "controlPlane"}))
      end
    elseif what == "services" or what == "service" or what == "svc" then
      -- internal/app/machined/pkg/controllers/v1alpha1/service.go: the
      -- resource exists only while a service is Running (any other state
      -- destroys it); Unknown is `Healthy == nil` (health/status.go), and
      -- extension services have no health check, so ext-* is always
      -- running: true, healthy: false, unknown: true
      local etcd_ok = not fault("etcd_unhealthy", n.name) and not n.etcd_broken
      local svcs = {{"apid", true, false}, {"kubelet", true, false}}
      if n.role == "controlplane" then table.insert(svcs, 2, {"etcd", etcd_ok, false}) end
      if n.ts_state == "Running" then svcs[#svcs + 1] = {"ext-tailscale", false, not ext_health_fails(n)} end
      for _, id in ipairs(ext_services(n)) do svcs[#svcs + 1] = {id, false, true} end
      for _, sv in ipairs(svcs) do
        out[#out + 1] = resource(ip, "runtime", "Services.v1alpha1.talos.dev", sv[1], 1,
          yaml.order({running = true, healthy = sv[2], unknown = sv[3]}, {"running", "healthy", "unknown"}))
      end
    elseif what == "certsans" or what == "certsan" then
      -- pkg/machinery/resources/secrets/cert_sans.go: ID "api" is apid's
      -- certificate (certSANs, addresses, hostname), "k8s" the API server's
      local dns = {n.name}
      for _, san in ipairs(n.cert_sans) do dns[#dns + 1] = san end
      out[#out + 1] = resource(ip, "secrets", "CertSANs.secrets.talos.dev", "api", 1,
        yaml.order({ips = {n.ip, n.ip6}, dnsNames = dns, fqdn = n.name}, {"ips", "dnsNames", "fqdn"}))
    elseif what == "nodeipconfigs" or what == "nodeipconfig" then
      -- pkg/machinery/resources/k8s/nodeip_config.go, ID "kubelet": what
      -- controllers/k8s/nodeip_config.go computes (v1.7.0 .. v1.13.0):
      -- validSubnets as configured or, unset, "0.0.0.0/0" per service CIDR
      local valid, excl = M._kubelet_subnets(n)
      out[#out + 1] = resource(ip, "k8s", "NodeIPConfigs.kubernetes.talos.dev", "kubelet", 1,
        yaml.order({validSubnets = json.array(valid), excludeSubnets = json.array(excl)}, {"validSubnets", "excludeSubnets"}))
    elseif what == "nodeips" or what == "nodeip" then
      out[#out + 1] = resource(ip, "k8s", "NodeIPs.kubernetes.talos.dev", "kubelet", 1, {addresses = M._node_ips(n)})
    elseif what == "etcdconfigs" or what == "etcdconfig" then
      if n.role == "controlplane" then out[#out + 1] = etcd_config(ip, n) end
    elseif what == "nodeaddresses" or what == "nodeaddress" then
      -- pkg/machinery/resources/network/node_address.go (v1.11.0): the
      -- node's addresses as prefixes, in the sort order (sortAlgorithm v1,
      -- the default: node_address_sort_algorithm.go); the world has no pod
      -- addresses, so the -no-k8s IDs hold the same. Prefix lengths: the
      -- LAN's assumed /24 and /64, tailscale0's /32 and /128
      local d = n.ts_state == "Running" and device_of(n)
      local tail = {}
      if d and d.online then tail[d.addresses[1] or ""] = true; tail[d.address6 or ""] = true end
      local prefixes = {}
      for _, a in ipairs(routed_addresses(n)) do
        local bits = a:find(":", 1, true) and (tail[a] and 128 or 64) or (tail[a] and 32 or 24)
        prefixes[#prefixes + 1] = a .. "/" .. bits
      end
      local ids = {{"current", prefixes}, {"current-no-k8s", prefixes}, {"default", {prefixes[1]}},
                   {"routed", prefixes}, {"routed-no-k8s", prefixes}}
      for _, x in ipairs(ids) do
        out[#out + 1] = resource(ip, "network", "NodeAddresses.net.talos.dev", x[1], 1,
          yaml.order({addresses = x[2], sortAlgorithm = "v1"}, {"addresses", "sortAlgorithm"}))
      end
    elseif what == "etcdspecs" or what == "etcdspec" then
      -- pkg/machinery/resources/etcd/spec.go, ID "etcd" (control planes):
      -- what controllers/etcd/spec.go computes (v1.11.0); listen on the
      -- unspecified address of the first IPv6 routed address's family
      -- (listenSubnets unset)
      if n.role == "controlplane" then
        local any = n.ip6 and "::" or "0.0.0.0"
        out[#out + 1] = resource(ip, "etcd", "EtcdSpecs.etcd.talos.dev", "etcd", 1, yaml.order({name = n.name,
          advertisedAddresses = M._etcd_addresses(n), listenPeerAddresses = {any}, listenClientAddresses = {any},
          image = "gcr.io/etcd-development/etcd:v3.5.21", extraArgs = json.map({})},
          {"name", "advertisedAddresses", "listenPeerAddresses", "listenClientAddresses", "image", "extraArgs"}))
      end
    else
      return result(1, "", fmt("error: resource type %q is not registered\n", what))
    end
  end
  return result(0, table.concat(out), version_warnings(warns))
end

function T.get(flags, pos) return get_resource(flags, pos) end

function T.service(flags, pos)
  local id = pos[2]
  local ip = target_nodes(flags)[1]
  local n, why = reach(flags, ip)
  if not n then return result(1, "", why) end
  if pos[3] == "restart" then
    if id ~= "ext-tailscale" or not n.ts_state then return result(1, "", fmt("error: service %q is not registered on any nodes\n", id)) end
    M._start_tailscale(n)
    return result(0, fmt("NODE            RESPONSE\n%-15s Service %q restarted\n", ip, id))
  end
  -- the detail view (cmd/talosctl/cmd/talos/service.go): HEALTH is `?`
  -- for a service without a health check, as every extension service is
  local state, health, event
  local health_msg = ""
  if id == "ext-tailscale" then
    if not n.ts_state then return result(1, "", fmt("error: service %q is not registered on any nodes\n", id)) end
    state, health = n.ts_state, "?"
    if ext_health_fails(n) then health, health_msg = "Fail", "LAST HEALTH MESSAGE   service not running\n" end
    event = n.ts_state == "Running" and "Started task ext-tailscale (PID 2104) for container ext-tailscale"
      or n.ts_state == "Waiting" and "Waiting for extension service config"        -- wording unconfirmed
      or ("Failed to run service: " .. (n.ts_error and not n.ts_error:match("^tailscale up: ") and n.ts_error or "exit code 1"))
  elseif id:match("^ext%-") then
    local runs = false
    for _, x in ipairs(ext_services(n)) do if x == id then runs = true end end
    if not runs then return result(1, "", fmt("error: service %q is not registered on any nodes\n", id)) end
    state, health, event = "Running", "?", fmt("Started task %s (PID 2210) for container %s", id, id)
  else
    state, health, event = "Running", "OK", "Health check successful"
  end
  -- formatters.RenderServicesInfo (v1.8.0): a tabwriter table of NAME
  -- VALUE rows, LAST HEALTH MESSAGE only when there is one
  local rows = {{"NODE", ip}, {"ID", id}, {"STATE", state}, {"HEALTH", health}}
  if health_msg ~= "" then rows[#rows + 1] = {"LAST HEALTH MESSAGE", "service not running"} end
  rows[#rows + 1] = {"EVENTS", fmt("[%s]: %s (1m0s ago)", state, event)}
  return result(0, tabwriter(rows))
end

function T.logs(flags, pos)
  local ip = target_nodes(flags)[1]
  local n, why = reach(flags, ip)
  if not n then return result(1, "", why) end
  if pos[2] ~= "ext-tailscale" then return result(0, "") end
  if not n.ts_state then return result(1, "", "error: rpc error: code = NotFound desc = log \"ext-tailscale\" was not registered\n") end
  -- containerboot logs through Go's log package with the prefix "boot: "
  -- (cmd/containerboot/main.go run, tailscaled.go, commit de9ec7ee); the
  -- `tailscale up` it runs writes its own stderr between its lines
  -- ("backend error: ..."), and a failed `up` ends the service with the
  -- error wrapped twice and the command's exit status, not its message
  -- (tests/corpus/tailscale/containerboot-*.txt)
  local stamp = os.date("!%Y/%m/%d %H:%M:%S", math.floor(time.now()))
  local lines = {fmt("%s: boot: %s Starting tailscaled", ip, stamp)}
  local function boot(msg) lines[#lines + 1] = fmt("%s: boot: %s %s", ip, stamp, msg) end
  if n.ts_state == "Running" then boot("Startup complete, waiting for shutdown signal")
  elseif n.ts_error and n.ts_error:match("^tailscale up: ") then
    boot("Running 'tailscale up'")
    lines[#lines + 1] = fmt("%s: backend error: %s", ip, n.ts_error:match("^tailscale up: (.*)$"))
    boot("Sending SIGTERM to tailscaled")
    boot("failed to auth tailscale: failed to auth tailscale: tailscale up failed: exit status 1")
  else lines[#lines + 1] = fmt("%s: containerboot: %s", ip, n.ts_error or "waiting for ExtensionServiceConfig") end
  return result(0, table.concat(lines, "\n") .. "\n")
end

function T.etcd(flags, pos)
  if pos[2] == "snapshot" then
    local ip = target_nodes(flags)[1]
    local n, why = reach(flags, ip)
    if not n then return result(1, "", why) end
    if not pos[3] then return result(1, "", "Error: accepts 1 arg(s), received 0\n") end
    -- cmd/talosctl/cmd/talos/etcd.go (v1.10): one node only; the file is
    -- the bbolt database with its sha256 appended (size % 512 == 32),
    -- written 0600 through a .part file; then the size and etcd's status
    if #target_nodes(flags) > 1 then
      -- helpers.FailIfMultiNodes' error, printed by cmd/talosctl/cmd/root.go
      -- Execute as it is, then (it holds "command") a blank line and the
      -- usage; the global flags cobra lists after these are left out here
      return result(1, "", "command \"etcd snapshot\" is not supported with multiple nodes\n\nUsage:\n"
        .. "  talosctl etcd snapshot <path> [flags]\n\nFlags:\n  -h, --help   help for snapshot\n")
    end
    if n.role ~= "controlplane" then
      return result(1, "", "error reading file: rpc error: code = Unknown desc = etcd is not running on this node\n")
    end
    local db = string.rep(fmt("simulated etcd database of %s, %s\0\n", n.name, W.k8s_version), 4096)   -- bbolt pages hold NULs
    db = db .. string.rep("\0", (512 - #db % 512) % 512)
    local digest = require("runbook.hash").sha256(db):gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)
    local data = db .. digest
    require("runbook.fs").write(path_of(pos[3]), data, {mode = tonumber("600", 8)})
    return result(0, fmt("etcd snapshot saved to %q (%d bytes)\nsnapshot info: hash %08x, revision %d, total keys %d, total size %d\n",
      pos[3], #data, #db % 0x7fffffff, 123456, 2048, #db))
  end
  if pos[2] ~= "status" then return result(1, "", fmt("Error: unknown command %q for \"talosctl etcd\"\n", tostring(pos[2]))) end
  -- cmd/talosctl/cmd/talos/etcd.go: NODE only when the reply names a node
  -- (always through -n), PROTOCOL and STORAGE from talosctl v1.11.0; the
  -- members that answered are printed, the others are one WARNING on
  -- stderr, and talosctl exits 0
  local header = {"MEMBER", "DB SIZE", "IN USE", "LEADER", "RAFT INDEX", "RAFT TERM", "RAFT APPLIED INDEX", "LEARNER"}
  if W.talosctl_minor >= 11 then header[#header + 1] = "PROTOCOL"; header[#header + 1] = "STORAGE" end
  header[#header + 1] = "ERRORS"
  local targets = target_nodes(flags)
  if #targets > 0 then table.insert(header, 1, "NODE") end
  local leader
  for _, m in ipairs(W.ix.control_planes) do
    if node_up(m) then leader = leader or fmt("%016x", m.member_id) end
  end
  local rows, errs = {header}, {}
  for i, ip in ipairs(targets) do
    local n, why = reach(flags, ip)
    if not n then
      errs[#errs + 1] = fmt("\t* %s: %s", ip, (why:gsub("^error: ", ""):gsub("\n$", "")))
    elseif n.role ~= "controlplane" then
      errs[#errs + 1] = fmt("\t* %s: rpc error: code = FailedPrecondition desc = etcd is not running on this node", ip)
    else
      local bad_member = fault("etcd_unhealthy", n.name) or n.etcd_broken
      local row = {ip, fmt("%016x", n.member_id), "24 MB", "12 MB (50.00%)", leader or "0000000000000000",
                   tostring(100000 + i), "7", tostring(100000 + i), "false"}
      if W.talosctl_minor >= 11 then row[#row + 1] = "3.6.4"; row[#row + 1] = "3.6.0" end
      row[#row + 1] = bad_member and (n.etcd_broken or "etcdserver: unhealthy cluster") or ""
      rows[#rows + 1] = row
    end
  end
  local stderr = ""
  if #errs > 0 then
    stderr = fmt("WARNING: %d error%s occurred:\n%s\n\n", #errs, #errs == 1 and "" or "s", table.concat(errs, "\n"))
  end
  return result(0, #rows > 1 and tabwriter(rows) or "", stderr)
end

local function read_patch(arg)
  if not arg then return nil, "Error: required flag(s) \"patch\" not set" end
  local text = arg
  if arg:sub(1, 1) == "@" then
    local ok, t = pcall(require("runbook.fs").read, path_of(arg:sub(2)))
    if not ok then return nil, fmt("error reading patch: %s", tostring(t)) end
    text = t
  end
  return text
end

--- Applies patch documents to the node's config (machineconfig.patch:
--- pkg/machinery/config/configpatcher's rules), then starts or stops
--- ext-tailscale as its config came or went.
local function config_changed(n)
  mc.sync(n)
  if has_ext(n, factory.TAILSCALE) or has_ext(n, "tailscale") then
    if n.esc.tailscale and n.ts_state ~= "Running" then M._start_tailscale(n)
    elseif not n.esc.tailscale and n.ts_state then n.ts_state = "Waiting"
      local d = device_of(n); if d then d.online = false end
    end
  end
end

--- talosctl read PATH (cmd/talosctl/cmd/talos/read.go: the file copied to
--- stdout). The machine config lives at /system/state/config.yaml
--- (constants.StateMountPoint + ConfigFilename); other files are not modelled.
function T.read(flags, pos)
  local ip = target_nodes(flags)[1]
  local n, why = reach(flags, ip)
  if not n then return result(1, "", why) end
  if pos[2] ~= "/system/state/config.yaml" then
    return result(1, "", fmt("error reading file: rpc error: code = Unknown desc = open %s: no such file or directory\n", tostring(pos[2])))
  end
  return result(0, mc.render(n.config, n.talos_version))
end

--- talosctl patch machineconfig -p PATCH (cmd/talosctl/cmd/talos/patch.go):
--- talosctl reads the node's config, patches it client-side
--- (configpatcher.LoadPatches, Apply) and applies the result; "patched
--- ... at the node IP" and the mode go to stderr; an unchanged config is
--- "Apply was skipped: no changes detected."; a patch error is printed bare,
--- exit 1.
function T.patch(flags, pos)
  if pos[2] ~= "machineconfig" and pos[2] ~= "mc" then return result(1, "", "Error: unknown resource for patch\n") end
  local text, err = read_patch(flags["-p"] or flags["--patch"])
  if not text then return result(1, "", err .. "\n") end
  local out = {}
  for _, ip in ipairs(target_nodes(flags)) do
    local n, why = reach(flags, ip)
    if not n then return result(1, "", why) end
    local docs, perr = mc.patch_texts(n.config, {{text = text, name = flags["-p"] or flags["--patch"]}}, n.talos_version)
    if not docs then return result(1, "", table.concat(out) .. perr .. "\n") end
    if mc.render(docs, n.talos_version) == mc.render(n.config, n.talos_version) then
      out[#out + 1] = "Apply was skipped: no changes detected.\n"
    else
      n.config = docs
      config_changed(n)
      M._node_ip_moved(n)
      out[#out + 1] = fmt("patched MachineConfigs.config.talos.dev/v1alpha1 at the node %s\nApplied configuration without a reboot\n", ip)
    end
  end
  return result(0, "", table.concat(out))
end

--- talosctl apply-config -f FILE [--dry-run]: the whole machine config.
--- machined's ApplyConfiguration (v1alpha1_server.go): the config is
--- loaded strictly (an unknown field or a config without its v1alpha1
--- document is InvalidArgument); with --dry-run it answers "Dry run
--- summary:", the mode, and "Config diff:" with generateDiff's unified diff
--- of the encoded documents ("No changes." when equal: sim/talos/
--- configpatcher.lua dry_run_text, per version); talosctl prints it on
--- stderr (helpers.PrintApplyResults). The changes the world models
--- (certSANs, install image, address pins, an ExtensionServiceConfig) all
--- apply without a reboot (CanApplyImmediate).
function T.apply_config(flags)
  local file = flags["-f"] or flags["--file"]
  if not file then return result(1, "", "Error: required flag(s) \"file\" not set\n") end
  local okr, text = pcall(require("runbook.fs").read, path_of(file))
  if not okr then return result(1, "", fmt("error: open %s: no such file or directory\n", file)) end
  local okd, parsed = pcall(yaml.decode_all, text, {name = file})
  if not okd then return result(1, "", "error: " .. tostring(parsed) .. "\n") end
  local has_v1 = false
  for _, d in ipairs(parsed) do if type(d) == "table" and d.version == "v1alpha1" then has_v1 = true end end
  if not has_v1 then
    return result(1, "", "error applying new configuration: rpc error: code = InvalidArgument desc = the applied machine configuration doesn't contain v1alpha1 config, did you mean to patch the machine config instead?\n")
  end
  local out = {}
  for _, ip in ipairs(target_nodes(flags)) do
    local n, why = reach(flags, ip)
    if not n then return result(1, "", why) end
    local docs, cerr = mc.check(text, n.talos_version, file)     -- a copy of its own for each node
    if not docs then
      return result(1, "", "error applying new configuration: rpc error: code = InvalidArgument desc = " .. cerr .. "\n")
    end
    if flags["--dry-run"] then
      out[#out + 1] = mc.dry_run_text(n.config, docs, n.talos_version)
    else
      n.config = docs
      n.applied = (n.applied or 0) + 1
      config_changed(n)         -- starts or stops ext-tailscale as its config came or went
      M._node_ip_moved(n)
      out[#out + 1] = "Applied configuration without a reboot\n"
    end
  end
  return result(0, "", table.concat(out))
end
T["apply-config"] = T.apply_config

--- machined's etcd check before an upgrade (v1alpha1_server.go@v1.11.0
--- line 518 wraps internal/pkg/etcd/etcd.go ValidateForUpgrade's error in
--- "error validating etcd for upgrade: "): nil, or the gRPC code and
--- message. A member that does not answer ValidateQuorum's read fails
--- with its context's deadline, a status error the wrapping keeps
--- (DeadlineExceeded, as talosctl/upgrade-etcd-unhealthy-error-hcloud-183.txt
--- shows); a member not started is a plain error (Unknown).
local function healthy_quorum(except)
  local pre = "error validating etcd for upgrade: "
  for _, m in ipairs(W.ix.control_planes) do
    if m ~= except then
      if not node_up(m) then
        return false, "Unknown", pre .. fmt("etcd member %016x is not started, all members must be running to perform an upgrade", m.member_id)
      end
      if fault("etcd_unhealthy", m.name) or m.etcd_broken then
        return false, "DeadlineExceeded", pre .. fmt("etcd member %016x is not healthy; all members must be healthy to perform an upgrade: context deadline exceeded", m.member_id)
      end
    end
  end
  return true
end

local function reboot(n, seconds)
  local f = fault("slow_boot", n.name)
  M._node_changed(n)
  if not n.boot_until then W.booting = W.booting + 1 end   -- nodes whose boot ends with the clock
  n.boot_until = now() + (f and (f.seconds or 1200) or seconds or W.rand(n.boot[1], n.boot[2]))
  if fault("node_never_returns", n.name) and n.boot_once == "upgrade" then n.never_returns = true end
  local d = device_of(n)
  if d then d.online = false end
  n.ts_state = nil
end

--- talosctl waiting for a node to come back (action.NewTracker: the
--- node's MachineReady event after its boot ID changed), on the virtual
--- clock: until the node is up, talosctl's own --timeout (default 30m,
--- track.go), or the caller's exec timeout, which kills it (SIGTERM).
local function wait_back(n, ip, flags, opts, stderr)
  local own = tonumber(tostring(flags["--timeout"] or "30m"):match("^(%d+)s$"))
              or (tonumber(tostring(flags["--timeout"] or "30m"):match("^(%d+)m$")) or 30) * 60
  -- the caller's timeout counts from the spawn (world.exec), as exec.run's
  -- own cut does, which this answer (with what talosctl printed) precedes
  local spent = W.exec_started and (time.monotonic() - W.exec_started) or 0
  local kill = opts and opts.timeout and opts.timeout > 0 and math.max(0, opts.timeout - spent) or math.huge
  local left = n.never_returns and math.huge or math.max(0, (n.boot_until or now()) - now()) + 1
  -- tracker.go@v1.11.0 runReporter: to a terminal the reporter redraws
  -- "watching nodes: [...]" and each node's last update; to a pipe (the
  -- runbooks' captures: the world's default) each update is one line,
  -- `"node": message` (action/node.go's messages)
  local function report(msg)
    if W.terminal then return fmt("    * %s: %s\n", ip, msg) end
    return fmt("%q: %s\n", ip, msg)
  end
  if W.terminal then
    stderr = stderr .. fmt("watching nodes: [%s]\n", ip)
  else
    W.actor_ids = (W.actor_ids or 0) + 1
    stderr = stderr .. report("waiting for actor ID")
         .. report(fmt("actor ID: %08x-0000-4000-8000-%012x", W.actor_ids, W.actor_ids))
         .. report("unavailable, retrying...")
  end
  if left > own and own < kill then
    time.sleep(own)
    return result(1, "", stderr .. report("timeout waiting for the node to be ready"), own)   -- wording unconfirmed
  elseif left > kill then
    time.sleep(kill)
    return {code = nil, signal = 15, stdout = "", stderr = stderr, duration = spent + kill, timed_out = true,
            stdout_dropped = 0, stderr_dropped = 0, pid = 0}
  end
  time.sleep(left)
  node_up(n)                     -- the boot ends with the clock
  return result(0, "", stderr .. report("post check passed"), left)
end

--- Whether talosctl waits (cmd/talosctl/cmd/talos/upgrade.go, reboot.go):
--- --wait defaults to true (track.go) and --debug sets it; from v1.13.0
--- --drain sets it too (upgrade: --drain defaults to true; reboot: false).
local function waits(flags, drain_default)
  local wait = flags["--wait"] ~= "false"
  if flags["--debug"] then wait = true end
  if W.talosctl_minor >= 13 then
    local drain = flags["--drain"]
    if drain == nil then drain = drain_default else drain = drain ~= "false" end
    if drain then wait = true end
  elseif flags["--drain"] ~= nil or flags["--drain-timeout"] ~= nil or flags["--legacy"] ~= nil then
    return nil, "Error: unknown flag: --" .. (flags["--drain"] ~= nil and "drain" or flags["--legacy"] ~= nil and "legacy" or "drain-timeout")
  end
  return wait
end

--- The node refused the upgrade call (cmd/talosctl/cmd/talos/upgrade.go@v1.11.0):
--- with --wait=false talosctl fails "error performing upgrade: <err>";
--- waiting, the tracker reports the error as the node's last update
--- (action/node.go; the pipe form: talosctl/upgrade-etcd-unhealthy-error-hcloud-183.txt)
--- and prints it no more (common.SuppressErrors).
local function refused(ip, wait, warn, err)
  if not wait then return result(1, "", warn .. fmt("error performing upgrade: %s\n", err)) end
  if W.terminal then return result(1, "", warn .. fmt("watching nodes: [%s]\n    * %s: %s\n", ip, ip, err)) end
  return result(1, "", warn .. fmt("%q: waiting for actor ID\n%q: %s\n", ip, ip, err))
end

--- Go's time.Now().String(), as talosctl prints STARTED
--- (cmd/talosctl/cmd/talos/upgrade.go@v1.12.0 lines 111-125): the wall
--- time in UTC with its nanoseconds, trailing zeros trimmed
--- ("2006-01-02 15:04:05.999999999 -0700 MST"), then the monotonic reading
--- since the process started, "m=+10.050399758" (time.go Time.String).
local function go_now()
  local t = time.now()
  local sec = math.floor(t)
  local frac = fmt("%09d", math.floor((t - sec) * 1e9)):gsub("0+$", "")
  return fmt("%s%s +0000 UTC m=+%.9f", os.date("!%Y-%m-%d %H:%M:%S", sec), frac ~= "" and "." .. frac or "",
             time.monotonic())
end

function T.upgrade(flags, _, opts)
  local img = flags["-i"] or flags["--image"]
  local warn = ""
  local wait, ferr = waits(flags, true)
  if wait == nil then return result(1, "", ferr .. "\n") end
  -- cmd/talosctl/cmd/talos/upgrade.go: --preserve is a flag up to v1.7,
  -- hidden (still accepted) from v1.8, deprecated from v1.13 (cobra prints
  -- the notice on stderr); it was never removed
  if (flags["-p"] or flags["--preserve"]) and W.talosctl_minor >= 13 then
    warn = "Flag --preserve has been deprecated, legacy flag for MachineService.Upgrade fallback, to be removed in Talos 1.18\n"
  end
  local ip = target_nodes(flags)[1]
  local n, why = reach(flags, ip)
  if not n then return result(1, "", warn .. why) end
  -- from v1.13.0 a client asks for LifecycleService.Upgrade on a node of
  -- v1.13 or newer and falls back to the legacy API on an older one
  local new_api = W.talosctl_minor >= 13 and not flags["--legacy"] and (tonumber(n.talos_version:match("^v1%.(%d+)")) or 0) >= 13
  -- upgrade.go@v1.13.0 upgradeViaLifecycleService: --legacy warns (cli.Warning);
  -- a node outside ">1.13.0-alpha.2 <2.0.0" makes the reporter print its
  -- notice (stderr, one plain line on a pipe) before the legacy upgrade
  if W.talosctl_minor >= 13 and not new_api then
    warn = warn .. (flags["--legacy"]
      and "WARNING: Forcing use of legacy upgrade method. This flag is deprecated and will be removed in Talos 1.18.\n"
      or "New upgrade API is not available, falling back to legacy\n")
  end
  warn = warn .. (new_api and "" or version_warnings{version_warning(ip, n)})
  if n.role == "controlplane" and not flags["-f"] and not flags["--force"] then
    local ok, code, qwhy = healthy_quorum(n)
    if not ok then return refused(ip, wait, warn, fmt("rpc error: code = %s desc = %s", code, qwhy)) end
  end
  local p = img and factory.parse_image(img)
  if not p or not p.factory or not W.schematics[p.id] then
    return refused(ip, wait, warn, fmt("rpc error: code = Unknown desc = error validating installer image %q: failed to resolve image", tostring(img)))
  end
  local exts
  local lacking = fault("image_lacks_extension", n.name)
  if not lacking then
    exts = factory.extensions(factory.parse(W.schematics[p.id]))
  elseif lacking.extension then
    -- the image lacks this one extension of its schematic (a version of
    -- the extension not built for that Talos release)
    exts = {}
    for _, e in ipairs(factory.extensions(factory.parse(W.schematics[p.id]))) do
      if e ~= lacking.extension then exts[#exts + 1] = e end
    end
  else exts = n.extensions end
  n.upgrades = (n.upgrades or 0) + 1
  if new_api then
    -- the image is pulled and installed before talosctl asks for the
    -- reboot (upgradeInternal streams the progress; its lines are
    -- unconfirmed here): a minute on the virtual clock
    time.sleep(60)
    warn = warn .. fmt("%s: upgrade completed\n", ip)
  end
  -- sequence_fails_after_accept: the request is acknowledged, then the
  -- upgrade sequence fails before the new slot is written (an image pull,
  -- a disk error): the node stays up on its current image
  if not fault("sequence_fails_after_accept", n.name) then
    -- the installer's tag is the Talos version it installs (the factory
    -- builds installer/<schematic>:<version>); an untagged one keeps the node's
    n.slots[other(n)] = {image = img, schematic = p.id, extensions = exts,
                         talos_version = p.tag and p.tag:match("^v%d+%.%d+%.%d+$") and p.tag or n.talos_version}
    n.boot_once = "upgrade"
    reboot(n)
  end
  if wait then return wait_back(n, ip, flags, opts, warn) end
  if new_api then return result(0, "", warn) end
  return result(0, fmt("NODE            ACK                        STARTED\n%-15s Upgrade request received   %s\n", ip, go_now()), warn)
end

function T.health(flags)
  local nodes = {}
  for _, n in ipairs(W.nodes) do nodes[#nodes + 1] = fmt("%q", n.ip) end
  local lines = {fmt("discovered nodes: [%s]", table.concat(nodes, " "))}
  local checks = {
    {"etcd to be healthy", function()
      for _, n in ipairs(W.nodes) do
        if n.role == "controlplane" and (not node_up(n) or fault("etcd_unhealthy", n.name)) then
          return fmt("etcd member %s is not healthy", n.ip)
        end
      end
    end},
    {"apid to be ready", function()
      for _, n in ipairs(W.nodes) do if not node_up(n) then return fmt("%s: connection refused", n.ip) end end
    end},
    {"all k8s nodes to report ready", function()
      for _, n in ipairs(W.nodes) do
        if not node_up(n) or n.not_ready then return fmt("node %q status is not available yet", n.name) end
      end
    end},
  }
  -- pkg/cluster/check/reporter.go@v1.11.0 conditionToUpdate: on a pipe a
  -- check reports "waiting for <check>: ..." when it starts, then its
  -- error or "OK"
  for _, c in ipairs(checks) do
    lines[#lines + 1] = fmt("waiting for %s: ...", c[1])
    local err = c[2]()
    lines[#lines + 1] = fmt("waiting for %s: %s", c[1], err or "OK")
    if err then
      lines[#lines + 1] = fmt("healthcheck error: rpc error: code = DeadlineExceeded desc = %s", err)
      return result(1, "", table.concat(lines, "\n") .. "\n")
    end
  end
  return result(0, "", table.concat(lines, "\n") .. "\n")      -- talosctl health writes to stderr
end

--- internal/app/machined/.../bootloader/grub/revert.go: rollback flips
--- the default boot entry to the other slot, whatever it holds, and
--- reboots; with nothing in the other slot it fails.
function T.rollback(flags)
  local ip = target_nodes(flags)[1]
  local n, why = reach(flags, ip)
  if not n then return result(1, "", "error executing rollback: " .. why) end
  if not n.slots[other(n)] then
    return result(1, "", fmt("error executing rollback: 1 error occurred:\n\t* %s: rpc error: code = Unknown desc = cannot rollback to \"\", label does not exist\n\n", ip))
  end
  n.active = other(n)
  n.boot_once = nil
  n.rollbacks = (n.rollbacks or 0) + 1
  reboot(n)
  return result(0, "")
end

--- talosctl reboot (reboot.go, v1.8.0 .. v1.13.0): waits for the node to
--- come back unless --wait=false (then nothing is printed).
function T.reboot(flags, _, opts)
  local wait, ferr = waits(flags, false)
  if wait == nil then return result(1, "", ferr .. "\n") end
  local ip = target_nodes(flags)[1]
  local n, why = reach(flags, ip)
  if not n then return result(1, "", why) end
  local warn = version_warnings{version_warning(ip, n)}
  reboot(n)
  if wait then return wait_back(n, ip, flags, opts, warn) end
  return result(0, "", warn)
end

local TALOSCTL_FLAGS = {
  version = {["--client"] = 0, ["--short"] = 0},
  get = {["-o"] = 1, ["--output"] = 1, ["--namespace"] = 1},
  service = {},
  etcd = {},
  patch = {["-p"] = 1, ["--patch"] = 1, ["--mode"] = 1},
  logs = {["--tail"] = 1, ["-f"] = 0, ["--follow"] = 0, ["-k"] = 0},
  upgrade = {["-i"] = 1, ["--image"] = 1, ["--wait"] = 1, ["-f"] = 0, ["--force"] = 0, ["-p"] = 0, ["--preserve"] = 0, ["-s"] = 0,
             ["--stage"] = 0, ["--timeout"] = 1, ["-m"] = 1, ["--reboot-mode"] = 1, ["--debug"] = 0,
             ["--drain"] = 0, ["--drain-timeout"] = 1, ["--legacy"] = 0},     -- the last three: v1.13 (checked in waits)
  rollback = {},
  read = {},
  reboot = {["--wait"] = 1, ["-m"] = 1, ["--mode"] = 1, ["--timeout"] = 1, ["--debug"] = 0, ["--drain"] = 0,
            ["--drain-timeout"] = 1},
  health = {["--control-plane-nodes"] = 1, ["--worker-nodes"] = 1, ["--wait-timeout"] = 1, ["--server"] = 1},
  ["apply-config"] = {["-f"] = 1, ["--file"] = 1, ["-m"] = 1, ["--mode"] = 1, ["--dry-run"] = 0},
}

local function talosctl(argv, opts)
  local sub
  local i = 2
  while i <= #argv do
    local a = argv[i]
    if TALOSCTL_GLOBAL[a] then i = i + 2
    elseif a:match("^%-%-[%w%-]+=") then i = i + 1
    else sub = a; break end
  end
  if not sub then return result(1, "", "Error: a subcommand is required\n") end
  if not T[sub] then return result(1, "", fmt("Error: unknown command %q for \"talosctl\"\nRun 'talosctl --help' for usage.\n", sub)) end
  local flags, pos = parse_flags(argv, 2, TALOSCTL_FLAGS[sub] or {})
  if not flags then return result(1, "", pos .. "\n") end
  return T[sub](flags, pos, opts)
end

return {talosctl = talosctl}

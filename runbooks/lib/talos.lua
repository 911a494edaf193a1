--- talos: typed wrappers over talosctl. JSON where talosctl has it
--- (get ... -o json prints a stream of objects), a parsed table otherwise.
local exec = require "runbook.exec"
local json = require "runbook.json"
local errors = require "runbook.error"

local M = {}
local fmt = string.format
M.talosconfig = nil       -- set to pass --talosconfig to every call

--- A target is a node address (the talosconfig's endpoint forwards to
--- it) or {endpoint = E, node = N}: connect to E (a tailnet name, say),
--- whose apid forwards to N.
local function argv(node, ...)
  local a = {"talosctl"}
  if M.talosconfig then a[#a + 1] = "--talosconfig=" .. M.talosconfig end
  if type(node) == "table" then
    a[#a + 1] = "-e"; a[#a + 1] = node.endpoint
    a[#a + 1] = "-n"; a[#a + 1] = node.node
  elseif node then a[#a + 1] = "-n"; a[#a + 1] = node end
  for _, x in ipairs{...} do a[#a + 1] = x end
  return a
end

--- Runs talosctl; raises a `talos` error with its stderr on failure.
---@param node string|table an address, or {endpoint=, node=}
---@return runbook.exec.Result
function M.run(node, ...)
  local r = exec.run(argv(node, ...), {timeout = 120})
  if r.code ~= 0 then
    local msg = (r.stderr ~= "" and r.stderr or r.stdout):gsub("%s+$", "")
    error(errors.new("talos", msg, {node = type(node) == "table" and node.endpoint or node, result = r}), 2)
  end
  return r
end

--- The resources of `talosctl get <type> -o json`.
---@param node string
---@param rtype string
---@return table[] resources
function M.get(node, rtype)
  return json.decode_all(M.run(node, "get", rtype, "-o", "json").stdout, {name = "talosctl get " .. rtype})
end

--- The extensions a node runs: names (without the schematic pseudo
--- extension) and the node's schematic ID.
---@param node string
---@return string[] names, string schematic ID
function M.extensions(node)
  local names, schematic = {}, nil
  for _, r in ipairs(M.get(node, "extensions")) do
    local md = r.spec and r.spec.metadata or {}
    if md.name == "schematic" then schematic = md.version
    elseif md.name then names[#names + 1] = md.name end
  end
  return names, schematic
end

--- name -> environment list of the node's ExtensionServiceConfigs.
---@param node string
---@return table<string, string[]>
function M.extension_service_configs(node)
  local out = {}
  for _, r in ipairs(M.get(node, "extensionserviceconfigs")) do
    -- the resource's fields are `files` and `environment`
    -- (pkg/machinery/resources/runtime/extension_services_config.go)
    out[r.metadata.id] = r.spec and r.spec.environment or {}
  end
  return out
end

--- {running, healthy, unknown} of a running service, or nil when the
--- node lists no such running service. Talos keeps the `services`
--- resource only while a service runs (controllers/v1alpha1/service.go);
--- `unknown` is true for a service without a health check, as every
--- extension service is (so ext-tailscale is never `healthy`).
--- Extension services have no health check at any version
--- (system/services/extension.go), but Talos v1.7.7 and v1.8.0 .. v1.8.3
--- mark one unhealthy ("service not running") while it starts and never
--- clear it (service_runner.go; fixed in v1.8.4, 3a1727ee1): an ext-*
--- service's health is read as unknown whatever it says.
---@param node string
---@param id string
---@return table? {running:boolean, healthy:boolean, unknown:boolean}
function M.service(node, id)
  for _, r in ipairs(M.get(node, "services")) do
    if r.metadata.id == id then
      return M.service_state(id, r.spec.running == true, r.spec.healthy == true, r.spec.unknown == true)
    end
  end
  return nil
end

--- What a service's three flags mean, the rule above for an ext-* one
--- applied: {running, healthy, unknown}.
---@param id string
---@param running boolean
---@param healthy boolean
---@param unknown boolean
---@return table
function M.service_state(id, running, healthy, unknown)
  local s = {running = running, healthy = healthy, unknown = unknown}
  if id:match("^ext%-") and not s.healthy then s.unknown = true end
  return s
end

--- A service is up when it runs and its health check, if it has one, does
--- not report it failed (healthy false with unknown false).
---@param s table? from service()
---@return boolean
function M.service_up(s)
  return s ~= nil and s.running and (s.healthy or s.unknown)
end

--- `talosctl service ID`: {state, health, events = {"[State]: msg (t ago)", ...}}
--- or nil when the service is not registered.
---@param node string
---@param id string
---@return table? {state, health, events}
function M.service_detail(node, id)
  local r = exec.run(argv(node, "service", id), {timeout = 60})
  if r.code ~= 0 then
    if r.stderr:find("is not registered", 1, true) then return nil end
    error(errors.new("talos", (r.stderr:gsub("%s+$", "")), {node = node}), 2)
  end
  local d = {events = {}}
  local in_events = false
  for line in r.stdout:gmatch("[^\n]+") do
    local k, v = line:match("^(%u[%u ]-)%s%s+(.*)$")
    if k == "EVENTS" then in_events = true; d.events[#d.events + 1] = v
    elseif k and k ~= "" then in_events = false; d[k:lower():gsub(" ", "_")] = v
    elseif in_events then d.events[#d.events + 1] = line:match("^%s*(.-)%s*$") end
  end
  return d
end

--- The last `n` lines of a service's log (`talosctl logs` prefixes each
--- with the node), or nil and the error.
---@param node string
---@param id string
---@param n integer
---@return string? lines, any err
function M.logs(node, id, n)
  local r = exec.run(argv(node, "logs", id, "--tail", tostring(n or 20)), {timeout = 60})
  if r.code ~= 0 then return nil, (r.stderr:gsub("%s+$", "")) end
  return r.stdout
end

--- The DNS names in apid's certificate (resource CertSANs, ID "api",
--- pkg/machinery/resources/secrets/cert_sans.go).
---@param node string
---@return string[]
function M.cert_sans(node)
  for _, r in ipairs(M.get(node, "certsans")) do
    if r.metadata.id == "api" then return r.spec.dnsNames or {}, r.spec.ips or {} end
  end
  return {}, {}
end

--- The subnets that choose the kubelet's node IP (NodeIPConfig "kubelet")
--- and etcd's advertised address (EtcdConfig "etcd", control planes only;
--- nil on a worker). NodeIPConfig's list is never empty: with
--- machine.kubelet.nodeIP.validSubnets unset, Talos fills one "0.0.0.0/0"
--- or "::/0" per service CIDR (controllers/k8s/nodeip_config.go, v1.7.0 ..
--- v1.13.0). EtcdConfig's list is cluster.etcd.advertisedSubnets as
--- written, absent when unset (omitempty; controllers/etcd/config.go).
---@param node string
---@return string[] kubelet, string[]? etcd
function M.address_pins(node)
  local kubelet, etcd = {}, nil
  for _, r in ipairs(M.get(node, "nodeipconfigs")) do
    if r.metadata.id == "kubelet" then kubelet = r.spec.validSubnets or {} end
  end
  for _, r in ipairs(M.get(node, "etcdconfigs")) do
    if r.metadata.id == "etcd" then etcd = r.spec.advertiseValidSubnets or {} end
  end
  return kubelet, etcd
end

-- {====== address filters (github.com/siderolabs/net v0.4.0 FilterIPs)

-- An IPv4 prefix as {net = integer, bits = integer}, or nil (IPv6, bad).
-- A bare address is a /32, as ParseSubnetOrAddress takes it.
local function prefix4(s)
  local a, b, c, d, bits = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)/?(%d*)$")
  if not a then return nil end
  bits = bits == "" and 32 or tonumber(bits)
  local n = ((tonumber(a) * 256 + tonumber(b)) * 256 + tonumber(c)) * 256 + tonumber(d)
  return {net = bits == 0 and 0 or (n >> (32 - bits)) << (32 - bits), bits = bits}
end

-- Whether prefix p holds every address of q.
local function covers(p, q)
  return p.bits <= q.bits and (p.bits == 0 or (q.net >> (32 - p.bits)) == (p.net >> (32 - p.bits)))
end

M.TAILNET = "100.64.0.0/10"   -- Tailscale's CGNAT range (tailscale0's addresses)
M.TAILNET6 = "fd7a:115c:a1e0::/48"   -- its IPv6 range (tailscale net/tsaddr/tsaddr.go TailscaleULARange, v1.84.2)

-- Whether the list lets an address of fd7a:115c:a1e0::/48 through, applied
-- as admits_tailnet applies it to the IPv4 range.
local function admits_tailnet6(list)
  local contains = require("talconfig").cidr_contains
  local net = M.TAILNET6:match("^[^/]+")
  local admitted = false
  for _, e in ipairs(list) do
    local neg = e:sub(1, 1) == "!"
    local p = neg and e:sub(2) or e
    if p:find(":", 1, true) then
      if not p:find("/", 1, true) then p = p .. "/128" end
      local bits = tonumber(p:match("/(%d+)$"))
      local holds_all = bits <= 48 and contains(p, net)
      if not neg and (holds_all or contains(M.TAILNET6, (p:match("^[^/]+")))) then admitted = true
      elseif neg and holds_all then admitted = false end
    end
  end
  return admitted
end

--- Whether a Talos address filter lets an address of 100.64.0.0/10 (a
--- tailscale0 address) through. The list is applied in order as
--- FilterIPs does: an entry adds the addresses it holds, a "!" entry
--- removes them; an empty list means "not pinned" (every address).
--- An entry inside 100.64.0.0/10 lets some through; a "!" entry inside it
--- removes only some, so it does not pin either.
--- IPv6 entries are judged the same way against fd7a:115c:a1e0::/48.
---@param list string[]
---@return boolean
function M.admits_tailnet(list)
  if #list == 0 then return true end
  if admits_tailnet6(list) then return true end
  local ts = prefix4(M.TAILNET)
  local admitted = false          -- some tailnet address would be chosen
  for _, e in ipairs(list) do
    local neg = e:sub(1, 1) == "!"
    local p = prefix4(neg and e:sub(2) or e)
    if p then
      if not neg and (covers(p, ts) or covers(ts, p)) then admitted = true
      elseif neg and covers(p, ts) then admitted = false end
    end
  end
  return admitted
end

--- Whether two lists hold the same strings in the same order.
---@param a string[]
---@param b string[]
---@return boolean
function M.same_list(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

--- The entry that pins a node to its own address, given the list the
--- node reports. A strategic-merge patch appends to the list
--- (configpatcher; validSubnets and advertisedSubnets have no
--- merge:"replace"): where nothing was configured (the kubelet's list is
--- Talos's default, etcd's is empty) the node's own address is the pin;
--- a list the cluster configured keeps its entries and gets
--- "!100.64.0.0/10" appended (and "!fd7a:115c:a1e0::/48" when it holds an
--- IPv6 entry), which removes tailscale0's addresses from it.
---@param list string[] what address_pins reported
---@param addrs string|string[] the node's LAN address(es)
---@param defaults? string[] the list Talos fills in when nothing is configured (nil: the config wrote it)
---@return string[] the entries to append
function M.pin_entry(list, addrs, defaults)
  if type(addrs) == "string" then addrs = {addrs} end
  local default = #list == 0 or (defaults ~= nil and M.same_list(list, defaults))
  if not default then
    -- a list that admits IPv6 addresses gets tailscale0's IPv6 range removed too
    for _, e in ipairs(list) do
      if e:sub(1, 1) ~= "!" and e:find(":", 1, true) then return {"!" .. M.TAILNET, "!" .. M.TAILNET6} end
    end
    return {"!" .. M.TAILNET}
  end
  local out = {}
  for _, a in ipairs(addrs) do out[#out + 1] = a .. (a:find(":", 1, true) and "/128" or "/32") end
  return out
end

--- machine.kubelet.nodeIP.validSubnets as the node's config writes it
--- ({} when unset), read from its machine config (which holds the
--- cluster's secrets: only this list is kept). NodeIPConfig cannot tell
--- Talos's default from the same list written in the config.
---@param node string
---@return string[]
function M.kubelet_subnets_configured(node)
  local ok, doc = pcall(require("runbook.yaml").decode_all, M.machine_config(node), {name = "machine config"})
  if not ok then error(errors.new("talos", "cannot read the machine config of " .. node .. ": " .. tostring(doc)), 2) end
  for _, d in ipairs(doc) do
    local m = type(d) == "table" and d.version == "v1alpha1" and d.machine
    local ip = type(m) == "table" and type(m.kubelet) == "table" and m.kubelet.nodeIP
    if type(ip) == "table" and type(ip.validSubnets) == "table" then return ip.validSubnets end
  end
  return {}
end

--- The list NodeIPConfig holds when machine.kubelet.nodeIP.validSubnets is
--- unset: "0.0.0.0/0" or "::/0" per service CIDR, in their order
--- (ipSubnetsFromServiceCIDRs, controllers/k8s/nodeip_config.go).
---@param service_cidrs string[]
---@return string[]
function M.default_kubelet_subnets(service_cidrs)
  local out = {}
  for _, c in ipairs(service_cidrs) do out[#out + 1] = c:find(":", 1, true) and "::/0" or "0.0.0.0/0" end
  return out
end

-- }======

-- {====== versions

--- The Talos minors this project supports (docs/rollout.md, "Versions"):
--- v1.7 and older print apply-config's dry-run diff as a go-cmp dump and
--- wipe EPHEMERAL (/var/lib/tailscale) on an upgrade without --preserve;
--- `$patch: delete` needs a v1.8 client (configpatcher, v1.8.0).
M.MIN_MINOR, M.MAX_MINOR = 8, 13

--- major, minor, patch of a tag ("v1.10.6", "1.13.0-beta.1"), or nil.
---@param tag string
---@return integer? major, integer? minor, integer? patch
function M.parse_version(tag)
  local a, b, c = tostring(tag):match("^v?(%d+)%.(%d+)%.?(%d*)")
  if not a then return nil end
  return tonumber(a), tonumber(b), tonumber(c) or 0
end

local client_cache

--- The talosctl client's version tag ("v1.10.6") and minor number, read
--- once (`talosctl version --client`).
---@return string version, integer minor
function M.client_version()
  if client_cache then return client_cache[1], client_cache[2] end
  local r = exec.run({"talosctl", "version", "--client"}, {timeout = 30})
  local tag = r.stdout:match("Tag:%s*(v[%w%.%-]+)")
  if r.code ~= 0 or not tag then
    error(errors.new("talos", "cannot read the talosctl client version: " .. (r.stderr ~= "" and r.stderr or r.stdout)), 2)
  end
  local _, minor = M.parse_version(tag)
  client_cache = {tag, minor}
  return tag, minor
end

--- Forgets the client version read (a test changes the world's talosctl).
function M.forget_client_version() client_cache = nil end

--- `talosctl version` of the client and of each node: {client = tag,
--- servers = {ip = tag}, unreachable = {ip = why}}. talosctl prints the
--- nodes that answered and fails for the others (cmd/talosctl/cmd/talos/version.go).
---@param nodes string[]
---@return table
function M.versions(nodes)
  local r = exec.run(argv(table.concat(nodes, ","), "version"), {timeout = 60})
  local out = {client = r.stdout:match("Client:%s+Tag:%s*(%S+)"), servers = {}, unreachable = {}}
  local node
  for line in r.stdout:gmatch("[^\n]+") do
    if line:match("^Server:") then node = nil
    elseif line:match("^%s+NODE:") then node = line:match("NODE:%s*(%S+)")
    elseif node and line:match("^%s+Tag:") then out.servers[node] = line:match("Tag:%s*(%S+)"); node = nil end
  end
  for _, n in ipairs(nodes) do
    if not out.servers[n] then out.unreachable[n] = (r.stderr:gsub("%s+$", "")) end
  end
  return out
end

--- What is wrong with these versions, in an operator's words (empty when
--- nothing): a Talos or talosctl minor outside v1.8 .. v1.13, and a
--- client more than one minor newer, or older, than a node. Talos's own
--- guidance is that talosctl match the cluster's version (upgrading-talos.md,
--- talosctl.md, v1.11); talosctl warns when a node is older than it
--- (helpers.ClientVersionCheck) and upgrades are tested between adjacent
--- minors: one minor newer is allowed (talosctl is upgraded first).
---@param client string talosctl's tag
---@param servers table<string, string> node -> Talos tag
---@return string[] problems
function M.version_problems(client, servers)
  local problems, old = {}, false
  local range = fmt("the supported v1.%d .. v1.%d", M.MIN_MINOR, M.MAX_MINOR)
  local function minor_of(tag)
    local major, minor = M.parse_version(tag)
    if major == 1 and minor >= M.MIN_MINOR and minor <= M.MAX_MINOR then return minor end
    if major == nil or (major == 1 and minor < M.MIN_MINOR) or major < 1 then old = true end
  end
  local cm = minor_of(client)
  if not cm then problems[#problems + 1] = fmt("talosctl %s is outside %s", tostring(client), range) end
  local by_tag, tags = {}, {}
  for node, tag in pairs(servers) do
    if not by_tag[tag] then by_tag[tag] = {}; tags[#tags + 1] = tag end
    table.insert(by_tag[tag], node)
  end
  table.sort(tags)
  for _, tag in ipairs(tags) do
    local nodes = by_tag[tag]
    table.sort(nodes)
    local sm = minor_of(tag)
    if not sm then
      problems[#problems + 1] = fmt("Talos %s on %s is outside %s", tag, table.concat(nodes, ", "), range)
    elseif cm and (cm < sm or cm > sm + 1) then
      problems[#problems + 1] = fmt("talosctl %s does not fit Talos %s on %s: use talosctl v1.%d.x (the cluster's minor) or v1.%d.x",
        client, tag, table.concat(nodes, ", "), sm, sm + 1)
    end
  end
  if old then
    problems[#problems + 1] = "Talos v1.7 and older wipe EPHEMERAL (/var/lib/tailscale) on an upgrade and print another dry-run diff"
  end
  return problems
end

-- }======

-- {====== talosctl etcd status

-- The columns of `talosctl etcd status`, as cmd/talosctl/cmd/talos/etcd.go
-- prints them: up to v1.10 `MEMBER ... LEARNER ERRORS`; from v1.11.0
-- `... LEARNER PROTOCOL STORAGE ERRORS`. NODE comes first only when the
-- reply carries a node name (talosctl -n), and it may be a hostname or an
-- IPv6 address. Header names have spaces (`DB SIZE`), and so do values
-- (`24 MB`, `12 MB (50.00%)`): the table is a tabwriter table (padding 3),
-- so every row's cells start where the header's names start.
local ETCD_COLUMNS = {"NODE", "MEMBER", "DB SIZE", "IN USE", "LEADER", "RAFT INDEX", "RAFT TERM",
                      "RAFT APPLIED INDEX", "LEARNER", "PROTOCOL", "STORAGE", "ERRORS"}
local ETCD_KEYS = {NODE = "node", MEMBER = "member", ["DB SIZE"] = "db_size", ["IN USE"] = "in_use",
                   LEADER = "leader", ["RAFT INDEX"] = "raft_index", ["RAFT TERM"] = "raft_term",
                   ["RAFT APPLIED INDEX"] = "raft_applied_index", LEARNER = "learner",
                   PROTOCOL = "protocol", STORAGE = "storage", ERRORS = "errors"}

-- The header's columns with their start offsets, or nil when `line` is
-- not an etcd status header.
local function etcd_header(line)
  if not line:find("%f[%w]MEMBER%f[%s]") or not line:find("%f[%w]LEADER%f[%s]") or not line:find("%f[%w]ERRORS%s*$") then
    return nil
  end
  local cols, pos = {}, line:find("%S")
  while pos do
    local matched
    for _, name in ipairs(ETCD_COLUMNS) do
      if line:sub(pos, pos + #name - 1) == name and (line:sub(pos + #name, pos + #name) == "" or line:sub(pos + #name):match("^%s")) then
        if not matched or #name > #matched then matched = name end
      end
    end
    if not matched then return nil, ("unknown column at %q"):format(line:sub(pos):match("^%S+")) end
    cols[#cols + 1] = {name = matched, start = pos}
    pos = line:find("%S", pos + #matched)
  end
  return cols
end

--- Parses `talosctl etcd status` output (any version from v1.8; the
--- columns are found by the header, not by position). Returns one table
--- per member: {node (nil without a NODE column), member, db_size, in_use,
--- leader (boolean: this member is the leader), leader_id, raft_index,
--- raft_term, raft_applied_index, learner (boolean), protocol, storage,
--- errors (string, "" when none)}. Lines outside the table (a prompt, a
--- WARNING) are skipped; a table it cannot read raises an error naming the
--- line.
---@param text string
---@return table[] members {member, db_size, leader, errors}
function M.parse_etcd_status(text)
  local members, cols = {}, nil
  local n = 0
  for line in (text .. "\n"):gmatch("(.-)\r?\n") do
    n = n + 1
    local h, herr = etcd_header(line)
    if h then
      cols = h
    elseif herr then
      error(errors.new("talos", ("talosctl etcd status, line %d: %s"):format(n, herr)), 2)
    elseif cols and line:match("%S") then
      local row = {}
      for i, c in ipairs(cols) do
        local stop = cols[i + 1] and cols[i + 1].start - 1 or #line
        row[ETCD_KEYS[c.name]] = line:sub(c.start, stop):match("^%s*(.-)%s*$")
      end
      -- a row has a 16-hex member ID where the header says MEMBER
      if row.member and row.member:match("^%x+$") and #row.member == 16 then
        if row.learner ~= "true" and row.learner ~= "false" then
          error(errors.new("talos", ("talosctl etcd status, line %d: LEARNER is %q, not true or false"):format(n, tostring(row.learner))), 2)
        end
        if not (row.leader or ""):match("^%x+$") then
          error(errors.new("talos", ("talosctl etcd status, line %d: LEADER is %q, not a member ID"):format(n, tostring(row.leader))), 2)
        end
        row.learner = row.learner == "true"
        row.leader_id = row.leader
        row.leader = row.leader_id == row.member
        row.errors = row.errors or ""
        if row.node == "" then row.node = nil end
        members[#members + 1] = row
      end           -- any other line (a WARNING, a prompt) is not a row

    end
  end
  return members
end

--- etcd health across nodes: {ok = bool, problems = {...}, members} from
--- `talosctl etcd status`. talosctl prints the members that answered and
--- a WARNING on stderr for the others, and exits 0 (etcd.go: cli.Warning
--- on a partial reply): a node without a row is a problem too.
---@param nodes string[]
---@return boolean ok, string observation
function M.etcd_health(nodes)
  local r = exec.run(argv(table.concat(nodes, ","), "etcd", "status"), {timeout = 60})
  local problems = {}
  local ok, members = pcall(M.parse_etcd_status, r.stdout)
  if not ok then return {ok = false, problems = {tostring(members)}, members = {}} end
  local seen = {}
  for _, m in ipairs(members) do
    seen[m.node or ""] = true
    if m.errors ~= "" then problems[#problems + 1] = (m.node or m.member) .. ": " .. m.errors end
  end
  for line in r.stderr:gmatch("[^\n]+") do
    line = line:gsub("^%s*%*?%s*", "")
    if line ~= "" and not line:match("^WARNING: %d+ errors? occurred:$") then problems[#problems + 1] = line end
  end
  for _, n in ipairs(nodes) do
    if not seen[n] and #problems == 0 then problems[#problems + 1] = n .. ": no etcd status" end
  end
  if r.code ~= 0 and #problems == 0 then problems[#problems + 1] = "talosctl etcd status exited " .. r.code end
  return {ok = #problems == 0, problems = problems, members = members}
end

-- }======

--- Why an upgrade was refused, in an operator's words (Talos's own etcd
--- safety checks), or nil.
---@param stderr string
---@return string
function M.explain_upgrade_error(stderr)
  if stderr:find("is not healthy; all members must be healthy", 1, true) then
    return "Talos refused: an etcd member is unhealthy (all must be healthy before a control-plane upgrade)"
  elseif stderr:find("is not started, all members must be running", 1, true) then
    return "Talos refused: an etcd member is not running"
  elseif stderr:find("insufficient to maintain quorum", 1, true) then
    return "Talos refused: upgrading would lose etcd quorum"
  elseif stderr:find("error validating installer image", 1, true) and stderr:find(": not found", 1, true) then
    return "the registry has no such installer image (its schematic ID, Talos version or installer path, "
      .. "installer or metal-installer, is not one the registry serves)"
  elseif stderr:find("unknown flag", 1, true) then
    return "talosctl does not know a flag this runbook passed: " .. stderr:match("unknown flag: (%S+)")
  end
end

--- The configuration diff of `talosctl apply-config --dry-run` (printed on
--- stderr): what follows "Config diff:", and its form: "none" ("No
--- changes."), "unified" (from v1.8: a blank line, then "--- a", "+++ b" and
--- hunks over every document, pkg/machinery/config/configdiff) or "go-cmp"
--- (up to v1.7: a go-cmp diff of the v1alpha1 document right after the
--- line, v1alpha1_server.go at v1.7.0). nil when the text holds no diff.
---@param text string
---@return string? diff, string? form
function M.dry_run_diff(text)
  local rest = text:match("^Config diff:\n(.*)$") or text:match("\nConfig diff:\n(.*)$")
  if not rest then return nil end
  rest = rest:gsub("^\n", ""):gsub("%s+$", "")
  if rest == "No changes." then return rest, "none" end
  return rest, rest:match("^%-%-%- a\n%+%+%+ b\n") and "unified" or "go-cmp"
end


--- What applying `file` to the node would change: the text of
--- `talosctl apply-config --file FILE --dry-run` after "Config diff:"
--- (the form configdiff.unexpected reads), "No changes." when nothing.
---@param node string
---@param file string a machine config (talhelper genconfig's)
---@return string diff
function M.config_diff(node, file)
  local d = M.run(node, "apply-config", "--file", file, "--dry-run")
  return ((d.stderr .. d.stdout):match("Config diff:\n\n(.*)$")) or ((d.stderr .. d.stdout):match("Config diff:\n(.*)$")) or ""
end

--- How to run `talosctl upgrade` for this client and node
--- (cmd/talosctl/cmd/talos/upgrade.go): the flags and the exec timeout.
--- Up to v1.12 `--wait=false` returns once the node took the request (it
--- cordons and drains itself: the Upgrade sequence, v1alpha1_sequencer.go).
--- From v1.13.0 `--drain` defaults to true and sets wait back to true, so
--- `--wait=false` alone is ignored. Against a node older than v1.13 the
--- client falls back to the legacy API, and `--drain=false --wait=false`
--- keeps the old behaviour (the node still drains itself). Against a
--- v1.13 node the new API installs first and then reboots, which drains
--- nothing: talosctl drains the node (up to 5 minutes, DefaultDrainTimeout)
--- and waits until it is back (`--timeout` the boot timeout), so the exec
--- timeout covers the image pull and install (10 minutes here,
--- unconfirmed: it depends on the link), the drain and the boot.
---@param client_minor integer
---@param server_minor integer
---@param boot_timeout integer seconds a node may take to come back
---@return string[] flags, integer timeout seconds, boolean waits
function M.upgrade_flags(client_minor, server_minor, boot_timeout)
  if client_minor < 13 then return {"--wait=false"}, 300, false end
  if server_minor < 13 then return {"--drain=false", "--wait=false"}, 300, false end
  return {"--timeout=" .. math.floor(boot_timeout) .. "s"}, 600 + 300 + math.floor(boot_timeout), true
end

--- Upgrades a node: returns once the node took the request, or, with a
--- v1.13 client and node (upgrade_flags), once it is back.
---@param node string
---@param image string
---@param opts? {server?: string, boot_timeout?: integer} the node's Talos tag (read when not given)
---@return boolean waited whether talosctl waited for the node to come back
function M.upgrade(node, image, opts)
  opts = opts or {}
  local _, cminor = M.client_version()
  local server = opts.server
  if not server and cminor >= 13 then
    server = M.versions({node}).servers[node]
    if not server then error(errors.new("talos", fmt("cannot read the Talos version of %s", node), {node = node}), 2) end
  end
  local _, sminor = M.parse_version(server or "v1.0.0")
  local flags, timeout, waits = M.upgrade_flags(cminor, sminor, opts.boot_timeout or 900)
  local r = exec.run(argv(node, "upgrade", "--image", image, table.unpack(flags)), {timeout = timeout})
  if r.code ~= 0 then
    local why = M.explain_upgrade_error(r.stderr)
    error(errors.new("talos", (why and (why .. ": ") or "") .. r.stderr:gsub("%s+$", ""), {node = node}), 2)
  end
  return waits
end

--- Asks the node to reboot and returns: `talosctl reboot` waits for the
--- node to come back by default at every version (--wait defaults to
--- true, up to 30 minutes; reboot.go, track.go v1.8.0 .. v1.13.0), which
--- no exec timeout here covers. `--drain` (v1.13) defaults to false.
---@param node string
function M.reboot(node)
  M.run(node, "reboot", "--wait=false")
end

---@param node string
function M.rollback(node)
  M.run(node, "rollback")
end

--- Applies a machine-config patch file.
---@param node string
---@param file string
function M.patch(node, file)
  M.run(node, "patch", "machineconfig", "--patch", "@" .. file)
end

--- Removes the node's ExtensionServiceConfig `name` with a `$patch: delete`
--- document, written to `file` (0600) for talosctl and removed afterwards.
---@param node string
---@param name string
---@param file string
function M.remove_extension_service_config(node, name, file)
  local fs = require "runbook.fs"
  -- talosctl patches client-side (patch.go: configpatcher.Apply), and
  -- `$patch: delete` came with configpatcher in v1.8.0
  local tag, minor = M.client_version()
  if minor < 8 then
    error(errors.new("talos", fmt("talosctl %s cannot remove the ExtensionServiceConfig %s: `$patch: delete` needs talosctl v1.8 or newer",
      tag, name), {node = node}), 2)
  end
  fs.write(file, ("apiVersion: v1alpha1\nkind: ExtensionServiceConfig\nname: %s\n$patch: delete\n"):format(name),
           {mode = tonumber("600", 8)})
  local ok, err = pcall(M.patch, node, file)
  fs.remove(file)
  if not ok then error(err, 0) end
end

--- Gives the node exactly the ExtensionServiceConfig `name` with the
--- environment `env`, from the patch `file`. A strategic-merge patch
--- appends list fields (pkg/machinery/config/configpatcher), so patching
--- an existing config would keep its old entries (an old auth key
--- first): an existing document is deleted first, then the new one is
--- added, and the node's result is checked.
---@param node string
---@param name string
---@param file string
---@param env string[]
---@return integer environment entries
function M.set_extension_service_config(node, name, file, env)
  local current = M.extension_service_configs(node)
  if current[name] then M.remove_extension_service_config(node, name, file .. ".remove") end
  M.patch(node, file)
  local got = M.extension_service_configs(node)[name]
  if not got then error(errors.new("talos", ("the node lists no ExtensionServiceConfig %s after the patch"):format(name), {node = node}), 2) end
  -- captured output has every secret masked: a secret's entry (the auth
  -- key) is compared by its key, the others by their whole text
  local same = #got == #env
  for i = 1, math.min(#got, #env) do
    local gk, wk = got[i]:match("^[^=]*"), env[i]:match("^[^=]*")
    if gk ~= wk or (got[i] ~= env[i] and not got[i]:find("***", 1, true)) then same = false end
  end
  if not same then
    local keys = {}
    for _, kv in ipairs(got) do keys[#keys + 1] = kv:match("^[^=]*") end
    error(errors.new("talos", ("the node's ExtensionServiceConfig %s has %d entries (%s), not the %d written"):format(
      name, #got, table.concat(keys, ", "), #env), {node = node}), 2)
  end
  return #got
end

--- An etcd snapshot of one control-plane node, saved to `file` (0600)
--- and checked: the size talosctl reports is the file's, and the file ends
--- in the sha256 of the rest, as etcd's snapshot format has it (the check
--- talosctl makes before it renames the file: etcd.go, v3_snapshot.go).
---@param node string|table
---@param file string
---@return table {file, size, hash, revision}
function M.etcd_snapshot(node, file)
  local r = M.run(node, "etcd", "snapshot", file)
  local size = tonumber(r.stdout:match("%((%d+) bytes%)"))
  local hash, revision = r.stdout:match("snapshot info: hash (%x+), revision (%d+)")
  if not size or not hash then
    error(errors.new("talos", "talosctl etcd snapshot printed no size and hash: " .. r.stdout:gsub("%s+$", "")), 0)
  end
  local fs = require "runbook.fs"
  local data = fs.read(file)
  local ok, why = M.check_etcd_snapshot(data, size)
  if not ok then
    -- a refused snapshot must not keep the name of a good one (a restore
    -- would pick it up): kept for a look under a name that says so
    local refused = file .. ".refused"
    fs.write(refused, data, {mode = tonumber("600", 8)})
    fs.remove(file)
    error(errors.new("talos", ("%s: %s; kept as %s"):format(file, why, refused)), 0)
  end
  return {file = file, size = size, hash = hash, revision = tonumber(revision)}
end

--- Whether `data` is a whole etcd snapshot of `size` bytes: the bbolt
--- database with the sha256 of it appended (size % 512 == 32).
---@param data string
---@param size integer the size talosctl reported
---@return boolean ok, string? why
function M.check_etcd_snapshot(data, size)
  if #data ~= size then return false, ("holds %d bytes, talosctl reported %d"):format(#data, size) end
  if #data % 512 ~= 32 then return false, "its size is not a database plus a sha256 (size % 512 ~= 32)" end
  local want = require("runbook.hash").sha256(data:sub(1, -33))
  local got = data:sub(-32):gsub(".", function(c) return ("%02x"):format(c:byte()) end)
  if got ~= want then return false, "its trailing sha256 does not match the database (a partial or damaged snapshot)" end
  return true
end

--- The node's current machine configuration (/system/state/config.yaml):
--- it holds the cluster's secrets.
---@param node string|table
---@return string
function M.machine_config(node)
  return M.run(node, "read", "/system/state/config.yaml").stdout
end

--- The Talos versions of the nodes and of talosctl, read once before
--- anything else: outside v1.8 .. v1.13, or a talosctl that does not fit
--- the cluster's minor, stops the run (exit 2) before any change
--- (version_problems; docs/rollout.md, "Versions"). Returns ip -> version.
---@param nodes table[] {ip}
---@return table<string, string>
function M.check_versions(nodes)
  local ips = {}
  for _, n in ipairs(nodes) do ips[#ips + 1] = n.ip end
  local vers = M.versions(ips)
  local problems = M.version_problems(vers.client or "unknown", vers.servers)
  for ip, why in pairs(vers.unreachable) do
    problems[#problems + 1] = string.format("cannot read the Talos version of %s: %s", ip, why)
  end
  if #problems > 0 then
    error(require("runbook.error").new("usage", "the versions do not fit: " .. table.concat(problems, "; ")
      .. ". Nothing was changed (docs/rollout.md, Versions)", {exit = 2}), 0)
  end
  local seen, list = {}, {}
  for _, ip in ipairs(ips) do seen[vers.servers[ip]] = true end
  for tag in pairs(seen) do list[#list + 1] = tag end
  table.sort(list)
  require("runbook.log").info(string.format("talosctl %s, the nodes on Talos %s", vers.client, table.concat(list, ", ")))
  return vers.servers
end

--- A service's gate, with the evidence when it does not run: its state and
--- first event, and when it failed or finished its last log lines.
--- Extension services have no health check: Talos reports them running,
--- healthy false, unknown true (health/status.go).
---@param node string
---@param id string "ext-tailscale"
---@return boolean ok, string observation
function M.service_observation(node, id)
  local s = M.service(node, id)
  if M.service_up(s) then return true, s.unknown and "running (Talos has no health check for it)" or "running, healthy" end
  if s and s.running then return false, "running, but its health check fails" end
  local d = M.service_detail(node, id)
  if not d then return false, id .. " is not registered" end
  local obs = string.format("%s: %s", tostring(d.state), d.events[1] or "no event")
  if d.state == "Failed" or d.state == "Finished" then
    local logs = M.logs(node, id, 5)
    if logs then
      local last = {}
      for line in logs:gmatch("[^\n]+") do last[#last + 1] = line end
      obs = obs .. "; last log lines: " .. table.concat(last, " | ", math.max(1, #last - 2))
    end
  end
  return false, obs
end

return M

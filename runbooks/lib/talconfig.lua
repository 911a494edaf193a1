--- talconfig: talhelper's talconfig.yaml. Reads it, and changes it with
--- yaml.edit so that only the lines that must change do. talhelper
--- (budimanjojo/talhelper) merges node and group settings all-or-nothing;
--- an empty clusterSvcNets means Talos's default 10.96.0.0/12 (Talos's
--- pkg/machinery/constants). Sources: docs/rollout.md.
local fs = require "runbook.fs"
local yaml = require "runbook.yaml"
local errors = require "runbook.error"

local M = {}

M.DEFAULT_SVC_CIDR = "10.96.0.0/12"          -- Talos: constants.DefaultIPv4ServiceNet
M.DEFAULT_SVC_CIDR_V6 = "fc00:db8:20::/112"   -- Talos: constants.DefaultIPv6ServiceNet

local function fail(msg)
  error(errors.new("talconfig", msg, {exit = 2, retry = false}), 0)
end

--- The variables talhelper would substitute: the process environment first,
--- then talenv.yaml beside talconfig.yaml (a plain KEY: value map).
--- talhelper also reads talenv.sops.yaml, which is encrypted: this cannot,
--- so the message says how to export it instead. Which source wins in
--- talhelper when both set a name is unconfirmed; the talhelper cross-check
--- in the rollout (gencommand) catches any disagreement.
---@param path string talconfig.yaml (talenv.yaml beside it)
---@return fun(name:string):string?
function M.env_lookup(path)
  local dir = path:match("^(.*)/[^/]*$") or "."
  local file, loaded = dir .. "/talenv.yaml", nil
  return function(name)
    local v = os.getenv(name)
    if v then return v end
    if loaded == nil then
      loaded = false
      if fs.exists(file) then
        local ok, t = pcall(yaml.decode, fs.read(file), {name = file})
        if not ok then error(t, 0) end
        if type(t) == "table" then loaded = t end
      end
    end
    if not loaded then return nil end
    v = loaded[name]
    if v == nil or type(v) == "table" or v == yaml.null then return nil end
    return tostring(v)
  end, (fs.exists(dir .. "/talenv.sops.yaml") and dir .. "/talenv.sops.yaml" or nil)
end

--- Expands ${NAME}, ${NAME:-default}, ${NAME-default} and $NAME in a value
--- read from talconfig.yaml, as talhelper does before it parses the file;
--- `$$` is a literal `$`. An unset variable without a default is an error
--- naming the field.
---@param s string?
---@param lookup fun(name:string):string?
---@param where string for errors
---@param sops? boolean
---@return string?
function M.expand(s, lookup, where, sops)
  if type(s) ~= "string" or not s:find("$", 1, true) then return s end
  local out, i = {}, 1
  while true do
    local j = s:find("$", i, true)
    if not j then out[#out + 1] = s:sub(i); break end
    out[#out + 1] = s:sub(i, j - 1)
    local name, op, def, stop
    if s:sub(j + 1, j + 1) == "$" then
      out[#out + 1] = "$"; i = j + 2; goto continue
    end
    name, op, def, stop = s:match("^{([%a_][%w_]*)(:?%-?)([^}]*)}()", j + 1)
    if not name then
      name, stop = s:match("^([%a_][%w_]*)()", j + 1)
      op, def = "", ""
    end
    if not name then fail(("%s: '%s' has a '$' that is not a variable"):format(where, s)) end
    if not ((op == "" and def == "") or op == ":-" or op == "-") then
      fail(("%s: '%s': only ${NAME}, ${NAME:-default} and ${NAME-default} are understood"):format(where, s))
    end
    do
      local v = lookup(name)
      if (v == nil or (v == "" and op == ":-")) and op ~= "" then v = def end
      if v == nil then
        fail(("%s is '%s' and %s is not set: export it, or put it in talenv.yaml beside talconfig.yaml%s")
             :format(where, s, name, sops and (" (" .. sops .. " is encrypted: run under `sops exec-env "
                                               .. sops .. " 'runbook run ...'`)") or ""))
      end
      out[#out + 1] = v
    end
    i = stop
    ::continue::
  end
  return table.concat(out)
end

--- Reads and checks the file: {path, text, data, nodes = {{hostname, ip,
--- index, control_plane, image_url, patches, schematic, secureboot}}, svc_cidr,
--- talos_version}. A node's image_url and schematic fall back to its group's
--- (controlPlane: or worker:), as talhelper merges them.
--- The values used (hostname, ipAddress, talosImageURL, talosVersion,
--- clusterSvcNets, clusterName) have talhelper's ${VAR} substitutions expanded; the text
--- and data are as written.
---@param path string
---@return table {text, doc, nodes, talos_version, svc_cidr, ...}
function M.read(path)
  local text = fs.read(path)
  local docs = yaml.decode_all(text, {name = path})
  local data = docs[1]
  if type(data) ~= "table" then error(errors.new("talconfig", path .. ": not a talhelper config (a map)", {exit = 2, retry = false}), 0) end
  if data.sops ~= nil then
    -- editing an encrypted file as text breaks its MAC: `sops -d` refuses it afterwards
    error(errors.new("talconfig", path .. ": the file is SOPS-encrypted (it has a sops: block); the rollout edits "
      .. "talconfig.yaml and would break its MAC. Keep talconfig.yaml in clear and its secrets in talenv.sops.yaml, "
      .. "as talhelper documents, or decrypt it (sops -d -i " .. path .. "), run the rollout, and encrypt it again "
      .. "(sops -e -i " .. path .. "). Nothing was changed.", {exit = 2, retry = false}), 0)
  end
  if type(data.nodes) ~= "table" or #data.nodes == 0 then
    error(errors.new("talconfig", path .. ": no nodes", {exit = 2, retry = false}), 0)
  end
  local lookup, sops = M.env_lookup(path)
  local function x(v, where) return M.expand(v, lookup, path .. ": " .. where, sops) end
  local function given(v) if v == yaml.null then return nil end return v end
  -- talhelper's group settings (controlPlane:, worker:) apply to a node that
  -- does not set the field itself: all or nothing, no deep merge
  local groups = {cp = type(data.controlPlane) == "table" and data.controlPlane or {},
                  worker = type(data.worker) == "table" and data.worker or {}}
  local nodes = {}
  for i, n in ipairs(data.nodes) do
    if type(n) ~= "table" or type(n.hostname) ~= "string" then
      error(errors.new("talconfig", ("%s: nodes[%d] has no hostname"):format(path, i), {exit = 2, retry = false}), 0)
    end
    local where = ("nodes[%d]."):format(i)
    local addr = x(n.ipAddress, where .. "ipAddress")
    local ip = type(addr) == "string" and addr:match("^%s*([^,%s]+)") or nil
    local group = n.controlPlane == true and groups.cp or groups.worker
    local url_where = given(n.talosImageURL) and where .. "talosImageURL"
                      or (n.controlPlane == true and "controlPlane" or "worker") .. ".talosImageURL"
    local group_key = n.controlPlane == true and "controlPlane" or "worker"
    nodes[#nodes + 1] = {hostname = x(n.hostname, where .. "hostname"), ip = ip, index = i, url_where = url_where,
                         control_plane = n.controlPlane == true, group_key = group_key,
                         cert_sans = given(n.certSANs), services = given(n.extensionServices),
                         group_services = given(group.extensionServices),
                         schematic_at = given(n.schematic) and "node" or given(group.schematic) and "group" or nil,
                         image_url = x(given(n.talosImageURL) or given(group.talosImageURL), url_where),
                         patches = given(n.patches), schematic = given(n.schematic) or given(group.schematic),
                         secureboot = type(given(n.machineSpec) or given(group.machineSpec)) == "table"
                                      and (given(n.machineSpec) or given(group.machineSpec)).secureboot == true}
  end
  local svcs = {}
  for i, net in ipairs(type(data.clusterSvcNets) == "table" and data.clusterSvcNets or {}) do
    svcs[#svcs + 1] = x(net, ("clusterSvcNets[%d]"):format(i))
  end
  local explicit, source = #svcs > 0, "clusterSvcNets"
  if not explicit then
    svcs, source = M.service_subnets_from_patches({path = path, data = data, nodes = nodes}, x)
    explicit = #svcs > 0
  end
  if not explicit then
    source = "Talos's default: clusterSvcNets is empty"
    -- Talos's defaults (pkg/machinery/config/generate/generate.go): the
    -- IPv6 service net when the endpoint's host is an IPv6 address
    local host = tostring(x(data.endpoint, "endpoint") or ""):match("^%a+://%[([^%]]+)%]") or ""
    svcs[1] = host:find(":", 1, true) and M.DEFAULT_SVC_CIDR_V6 or M.DEFAULT_SVC_CIDR
  end
  local tv = data.talosVersion and x(tostring(data.talosVersion), "talosVersion") or nil
  -- clusterName names the files genconfig writes (<clusterName>-<hostname>.yaml)
  local cluster_name = data.clusterName ~= nil and x(tostring(data.clusterName), "clusterName") or "cluster"
  if tv and not tv:match("^v") then tv = "v" .. tv end      -- talhelper adds the v
  return {path = path, text = text, data = data, nodes = nodes, svc_cidr = svcs[1], svc_cidrs = svcs,
          svc_cidr_explicit = explicit, svc_source = source, talos_version = tv, cluster_name = cluster_name}
end

--- A stable name of the cluster a talconfig.yaml describes: its
--- clusterName and endpoint, the two things talhelper hands Talos's
--- generator for the cluster's identity (talhelper v3.1.16
--- pkg/talos/input.go: generate.NewInput(c.ClusterName, c.Endpoint, ...)),
--- written into every node's config as cluster.clusterName and
--- cluster.controlPlane.endpoint. Two clones of one GitOps repository give
--- the same name (a directory path would not); two clusters keeping
--- talhelper's default name differ by endpoint. The lock every runbook
--- changing the cluster takes (rb.cluster) is on this name.
---@param cfg table read()'s result
---@return string
function M.cluster_key(cfg)
  return string.format("talos:%s@%s", cfg.cluster_name, tostring(cfg.data and cfg.data.endpoint or "?"))
end

--- The tailscale entry of a node's (or its group's) extensionServices, or nil.
---@param node table a node of read()
---@return table? entry, string? where "node" or the group's key
function M.tailscale_service_of(node)
  for _, e in ipairs(type(node.services) == "table" and node.services or {}) do
    if type(e) == "table" and e.name == "tailscale" then return e, "node" end
  end
  if node.services == nil then
    for _, e in ipairs(type(node.group_services) == "table" and node.group_services or {}) do
      if type(e) == "table" and e.name == "tailscale" then return e, node.group_key end
    end
  end
end

--- The extensionServices entry of the Tailscale service, written the
--- talhelper way: the key as the variable ${TS_AUTHKEY}, which talhelper
--- substitutes from the environment or talenv(.sops).yaml when it
--- generates the configs, so that talconfig.yaml never holds it.
---@param o table hostname, routes, dest_ip, auth_once, accept_dns, extra_args
---@return table entry {name, environment}
function M.tailscale_service(o)
  local env = M.tailscale_env{authkey = {reveal = function() return "${TS_AUTHKEY}" end}, hostname = o.hostname,
                              routes = o.routes, dest_ip = o.dest_ip, auth_once = o.auth_once,
                              accept_dns = o.accept_dns, extra_args = o.extra_args}
  return yaml.order({name = "tailscale", environment = yaml.array(env)}, {"name", "environment"})
end

--- An editor of talconfig.yaml's text: it gathers the edits and applies
--- them in one yaml.edit, which parses the file about once for all of them
--- (a fleet's talconfig.yaml gets four edits per node: one parse each
--- would grow with the square of the fleet). Every other byte, comments
--- included, stays as it was.
---@class talconfig.Editor
local Editor = {}
Editor.__index = Editor

---@param text string the talconfig.yaml text
---@param name? string the file's name, for errors (file:line:col); default "talconfig.yaml"
---@return talconfig.Editor
function M.editor(text, name)
  return setmetatable({text = text, edits = {}, added = {}, name = name or "talconfig.yaml"}, Editor)
end

---@private
function Editor:add(path, value)
  self.edits[#self.edits + 1] = {path, value}
  return self
end

-- yaml.edit replaces and appends, never deletes: a removal replaces the
-- place with a marker scalar, and the marker's line (with its key's line
-- when a whole key goes) is cut from the edited text; the result is
-- checked to read as the marked text with the marked places gone.
local DELETE = "__runbook_delete__"

-- A value as text, map keys sorted and marked places left out: the two
-- texts compared are equal when the values are.
local function canon(v, buf)
  if type(v) ~= "table" then buf[#buf + 1] = type(v) .. ":" .. tostring(v); return buf end
  if #v > 0 or (getmetatable(v) or {}).__runbook_shape == "seq" then
    buf[#buf + 1] = "["
    for _, x in ipairs(v) do if x ~= DELETE then canon(x, buf); buf[#buf + 1] = "," end end
    buf[#buf + 1] = "]"
    return buf
  end
  local keys = {}
  for k, x in pairs(v) do if x ~= DELETE then keys[#keys + 1] = k end end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  buf[#buf + 1] = "{"
  for _, k in ipairs(keys) do buf[#buf + 1] = tostring(k) .. "="; canon(v[k], buf); buf[#buf + 1] = "," end
  buf[#buf + 1] = "}"
  return buf
end

local function cut_marks(text, name)
  local lines, out = {}, {}
  for l in (text:sub(-1) == "\n" and text or text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
  for _, l in ipairs(lines) do
    -- an item, or a key with its value on its line: the line goes; a
    -- block value: its key's line goes with it
    local whole = l:match("^%s*%- " .. DELETE .. "%s*$") or l:match("^%s*[^%s#][^#]-:%s+" .. DELETE .. "%s*$")
    if l:match("^%s*" .. DELETE .. "%s*$") then
      out[#out] = nil
    elseif not whole then
      out[#out + 1] = l
    end
  end
  local cut = table.concat(out, "\n") .. (text:sub(-1) == "\n" and "\n" or "")
  if cut:find(DELETE, 1, true) then error(errors.new("talconfig", name .. ": a removal could not be cut from the text", {exit = 2}), 0) end
  return cut
end

--- The text with every edit gathered so far.
---@return string
function Editor:apply()
  if #self.edits == 0 then return self.text end
  local edited = yaml.edit(self.text, self.edits, nil, {name = self.name})
  if not self.deletes then return edited end
  local cut = cut_marks(edited, self.name)
  local want = table.concat(canon(yaml.decode(edited, {name = self.name}), {}))
  if table.concat(canon(yaml.decode(cut, {name = self.name}) or {}, {})) ~= want then
    error(errors.new("talconfig", self.name .. ": a removal would change more than the entry removed; edit the file by hand",
                     {exit = 2}), 0)
  end
  return cut
end

--- Removes the place at path (a map key, or a sequence item) and nothing
--- else: its lines go (comments on other lines stay).
---@param path (string|integer)[]
function Editor:remove(path)
  self.deletes = true
  return self:add(path, DELETE)
end

--- Sets talosVersion (the Talos version talhelper generates for and puts
--- on the installers it writes), keeping its quotes and comment.
---@param version string "v1.11.5"
function Editor:set_talos_version(version)
  return self:add({"talosVersion"}, version)
end

--- Removes an official extension from the schematic: block a node takes
--- (its own, or its group's), once per block; the list itself goes when
--- it held only that one (and systemExtensions, customization with it when
--- they hold nothing else).
---@param node table a node of read()
---@param ext string "siderolabs/iscsi-tools"
function Editor:remove_schematic_extension(node, ext)
  local base = node.schematic_at == "node" and {"nodes", node.index, "schematic"} or {node.group_key, "schematic"}
  local key = table.concat(base, "\0") .. "\0-" .. ext
  if self.added[key] then return self end
  self.added[key] = true
  self.doc = self.doc or yaml.decode(self.text, {name = self.name})
  local sch = self.doc
  for _, k in ipairs(base) do sch = type(sch) == "table" and sch[k] or nil end
  local cust = type(sch) == "table" and sch.customization
  local se = type(cust) == "table" and cust.systemExtensions
  local list = type(se) == "table" and se.officialExtensions
  local function path(...)
    local p = {}
    for _, k in ipairs(base) do p[#p + 1] = k end
    for _, k in ipairs{...} do p[#p + 1] = k end
    return p
  end
  local bkey = table.concat(base, "\0")
  self.removed = self.removed or {}
  for i, e in ipairs(type(list) == "table" and list or {}) do
    if e == ext then
      self.removed[bkey] = (self.removed[bkey] or 0) + 1
      if #list > self.removed[bkey] then
        return self:remove(path("customization", "systemExtensions", "officialExtensions", i))
      end
      local function count(t) local c = 0 for _ in pairs(t) do c = c + 1 end return c end
      if count(se) > 1 then return self:remove(path("customization", "systemExtensions", "officialExtensions")) end
      if count(cust) > 1 then return self:remove(path("customization", "systemExtensions")) end
      return self:remove(path("customization"))
    end
  end
  return self
end

--- Removes the entry named `name` from a node's own extensionServices
--- (the key goes with its last entry). An entry its group gives is not
--- the node's to remove: nil and why.
---@param node table a node of read()
---@param name string the service's name ("nut-client")
---@return talconfig.Editor? self, string? why
function Editor:remove_extension_service(node, name)
  for i, e in ipairs(type(node.services) == "table" and node.services or {}) do
    if type(e) == "table" and e.name == name then
      if #node.services == 1 then return self:remove({"nodes", node.index, "extensionServices"}) end
      return self:remove({"nodes", node.index, "extensionServices", i})
    end
  end
  if node.services == nil then
    for _, e in ipairs(type(node.group_services) == "table" and node.group_services or {}) do
      if type(e) == "table" and e.name == name then
        return nil, ("the %s entry is %s's extensionServices, every member's: remove it there by hand"):format(name, node.group_key)
      end
    end
  end
  return self
end

--- A node's extensionServices entry named `name` (its own, else its group's), or nil.
---@param node table a node of read()
---@param name string
---@return table? entry, string? where "node" or the group's key
function M.service_of(node, name)
  for _, e in ipairs(type(node.services) == "table" and node.services or {}) do
    if type(e) == "table" and e.name == name then return e, "node" end
  end
  if node.services == nil then
    for _, e in ipairs(type(node.group_services) == "table" and node.group_services or {}) do
      if type(e) == "table" and e.name == name then return e, node.group_key end
    end
  end
end

--- Sets nodes[i].talosImageURL (without tag, as talhelper expects).
---@param i integer node index (1-based)
---@param url string
function Editor:set_image(i, url)
  return self:add({"nodes", i, "talosImageURL"}, url)
end

--- Adds a patch reference ("@./patches/x.yaml") to nodes[i].patches.
--- A node with patches of its own keeps them (talhelper appends group
--- patches before node patches).
---@param i integer node index
---@param ref string "@./patches/x.yaml"
---@param existing? string[] the node's patches
function Editor:add_patch(i, ref, existing)
  for _, p in ipairs(existing or {}) do
    if p == ref then return self end
  end
  -- one new item after the last (or a new patches: list): the other items,
  -- their quotes and the comments between them stay as they are
  return self:add({"nodes", i, "patches", #(existing or {}) + 1}, ref)
end

--- Appends a SAN to nodes[i].certSANs (talhelper adds a node's certSANs
--- to its group's: nodeconfigs.go), unless it is there already.
---@param i integer node index
---@param san string
---@param existing? string[] the node's certSANs
function Editor:add_cert_san(i, san, existing)
  for _, x in ipairs(existing or {}) do if x == san then return self end end
  return self:add({"nodes", i, "certSANs", #(existing or {}) + 1}, san)
end

--- Adds the entry to a node's extensionServices. talhelper takes a node's
--- list instead of its group's, never both (nodeconfigs.go): a node that
--- inherits its group's list gets a list of its own holding the group's
--- entries and this one.
---@param node table a node of read()
---@param entry table
function Editor:add_extension_service(node, entry)
  if type(node.services) == "table" then
    return self:add({"nodes", node.index, "extensionServices", #node.services + 1}, entry)
  end
  if type(node.group_services) == "table" and #node.group_services > 0 then
    local list = {}
    for _, e in ipairs(node.group_services) do list[#list + 1] = e end
    list[#list + 1] = entry
    return self:add({"nodes", node.index, "extensionServices"}, yaml.array(list))
  end
  return self:add({"nodes", node.index, "extensionServices", 1}, entry)
end

--- Adds an official extension to the schematic: block a node takes (its
--- own, or its group's), creating the lists the block lacks; once per block.
---@param node table a node of read()
---@param ext string "siderolabs/tailscale"
function Editor:add_schematic_extension(node, ext)
  local base = node.schematic_at == "node" and {"nodes", node.index, "schematic"} or {node.group_key, "schematic"}
  local key = table.concat(base, "\0") .. "\0" .. ext
  if self.added[key] then return self end
  self.added[key] = true
  local function path(...)
    local p = {}
    for _, k in ipairs(base) do p[#p + 1] = k end
    for _, k in ipairs{...} do p[#p + 1] = k end
    return p
  end
  self.doc = self.doc or yaml.decode(self.text, {name = self.name})     -- once per editor, not once per node
  local sch = self.doc
  for _, k in ipairs(base) do sch = type(sch) == "table" and sch[k] or nil end
  local cust = type(sch) == "table" and sch.customization
  local se = type(cust) == "table" and cust.systemExtensions
  local list = type(se) == "table" and se.officialExtensions
  if type(list) == "table" then
    for _, e in ipairs(list) do if e == ext then return self end end
    return self:add(path("customization", "systemExtensions", "officialExtensions", #list + 1), ext)
  end
  if type(se) == "table" then return self:add(path("customization", "systemExtensions", "officialExtensions", 1), ext) end
  if type(cust) == "table" then
    return self:add(path("customization", "systemExtensions"), {officialExtensions = yaml.array({ext})})
  end
  return self:add(path("customization"), {systemExtensions = {officialExtensions = yaml.array({ext})}})
end

-- The same edits one at a time, on a text: M.set_image(text, ...) is
-- M.editor(text):set_image(...):apply().
for _, name in ipairs{"set_image", "add_patch", "add_cert_san", "add_extension_service", "add_schematic_extension"} do
  M[name] = function(text, ...)
    local e = M.editor(text)
    e[name](e, ...)
    return e:apply()
  end
end

--- The LAN addresses of the control-plane nodes (etcd members): etcd
--- checks must not ask workers, which run no etcd.
---@param nodes table[]
---@return string[]
function M.control_plane_ips(nodes)
  local out = {}
  for _, n in ipairs(nodes) do if n.control_plane and n.ip then out[#out + 1] = n.ip end end
  return out
end

--- The ExtensionServiceConfig environment of a node: the auth key (a
--- secret, revealed here only), its hostname, the routes, and TS_DEST_IP
--- when `dest_ip` is given.
--- The extension's environment for containerboot (tailscale/tailscale
--- cmd/containerboot/settings.go). TS_AUTH_ONCE=true: `tailscale up
--- --authkey` runs only when tailscaled needs a login, not at every start
--- (its default false would re-send a key that may have expired since).
--- TS_ACCEPT_DNS=false: MagicDNS stays out of the node's resolver (the
--- default already, written down so that no TS_EXTRA_ARGS surprise turns
--- it on). TS_EXTRA_ARGS goes to `tailscale up` (tags, --login-server).
---@param o table hostname, authkey, routes, extra_args, auth_once, accept_dns
---@return string[] KEY=VALUE entries
function M.tailscale_env(o)
  local env = {"TS_AUTHKEY=" .. o.authkey:reveal(), "TS_HOSTNAME=" .. o.hostname,
               "TS_ROUTES=" .. table.concat(o.routes, ","),
               "TS_AUTH_ONCE=" .. tostring(o.auth_once ~= false),
               "TS_ACCEPT_DNS=" .. tostring(o.accept_dns == true)}
  if o.dest_ip then env[#env + 1] = "TS_DEST_IP=" .. o.dest_ip end
  if o.extra_args and o.extra_args ~= "" then env[#env + 1] = "TS_EXTRA_ARGS=" .. o.extra_args end
  return env
end

--- The machine-config part of a node's patch: the tailnet name in apid's
--- certSANs (so that `talosctl -e <name>` verifies), and, unless `pin` is
--- nil, the kubelet node IP and etcd's advertised address pinned to the
--- node's LAN subnet (Talos would otherwise pick tailscale0's 100.x
--- address when it sorts first: controllers/k8s/nodeip.go, etcd/spec.go).
--- All three apply without a reboot (CanApplyImmediate, v1alpha1_runtime.go).
---@param o {cert_san?:string, pin_kubelet?:string|string[], pin_etcd?:string|string[]}
---@return table? a machine config document
function M.machine_patch(o)
  local machine = yaml.order({}, {})
  local doc = yaml.order({machine = machine}, {"machine", "cluster"})
  if o.cert_san then machine.certSANs = {o.cert_san} end
  local function list(x) return type(x) == "table" and x or {x} end
  if o.pin_kubelet then machine.kubelet = {nodeIP = {validSubnets = list(o.pin_kubelet)}} end
  if o.pin_etcd then doc.cluster = {etcd = {advertisedSubnets = list(o.pin_etcd)}} end
  if next(machine) == nil and not doc.cluster then return nil end
  if next(machine) == nil then doc.machine = nil end
  return yaml.encode(doc)
end

--- The ExtensionServiceConfig document for the tailscale extension.
--- The auth key is a secret: the document is written to a 0600 file.
---@param env string[]
---@param machine_doc? table
---@return string the YAML of the patch
function M.extension_service_config(env, machine_doc)
  local list = {}
  for _, kv in ipairs(env) do list[#list + 1] = kv end
  local esc = yaml.encode(yaml.order({apiVersion = "v1alpha1", kind = "ExtensionServiceConfig", name = "tailscale",
                                      environment = list}, {"apiVersion", "kind", "name", "environment"}))
  if machine_doc then return machine_doc .. "---\n" .. esc end
  return esc
end

-- {====== patches: what talhelper merges into a node's config beyond the node's fields

--- Whether s is an IP address literal (IPv4 dotted quad or IPv6), not a name.
---@param s string?
---@return boolean
function M.is_ip(s)
  if type(s) ~= "string" then return false end
  if s:find(":", 1, true) then return s:match("^[%x:%.]+$") ~= nil end
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return false end
  for _, x in ipairs{a, b, c, d} do if tonumber(x) > 255 then return false end end
  return true
end

-- The 16 bytes (IPv4: 4) of an address, or nil.
local function ip_bytes(s)
  if not M.is_ip(s) then return nil end
  if not s:find(":", 1, true) then
    local out = {}
    for x in s:gmatch("%d+") do out[#out + 1] = tonumber(x) end
    return out
  end
  local head, tail = s:match("^(.-)::(.*)$")
  local function groups(part)
    local g = {}
    for x in part:gmatch("[^:]+") do
      if x:find(".", 1, true) then                       -- ::ffff:1.2.3.4
        local b = ip_bytes(x)
        if not b then return nil end
        g[#g + 1] = b[1] * 256 + b[2]; g[#g + 1] = b[3] * 256 + b[4]
      else g[#g + 1] = tonumber(x, 16) end
    end
    return g
  end
  local h, t = groups(head or s), groups(tail or "")
  if not h or not t then return nil end
  local fill = 8 - #h - #t
  if (head and fill < 1) or (not head and fill ~= 0) then return nil end
  local all = {}
  for _, x in ipairs(h) do all[#all + 1] = x end
  for _ = 1, fill do all[#all + 1] = 0 end
  for _, x in ipairs(t) do all[#all + 1] = x end
  local out = {}
  for _, x in ipairs(all) do out[#out + 1] = x // 256; out[#out + 1] = x % 256 end
  return out
end

--- Whether the address ip lies in cidr ("10.96.0.0/12", "fd00::/108").
---@param cidr string
---@param ip string
---@return boolean
function M.cidr_contains(cidr, ip)
  local net, bits = tostring(cidr):match("^([^/]+)/(%d+)$")
  local a, b = ip_bytes(net), ip_bytes(ip)
  if not a or not b or #a ~= #b then return false end
  bits = tonumber(bits)
  for i = 1, #a do
    local take = math.max(0, math.min(8, bits - (i - 1) * 8))
    local mask = 256 - 2 ^ (8 - take)
    if (a[i] & math.tointeger(mask)) ~= (b[i] & math.tointeger(mask)) then return false end
  end
  return true
end

-- The decoded documents of one patch entry of talhelper's patches: lists
-- ("@./file.yaml", read beside talconfig.yaml, or inline YAML: a strategic
-- merge document, or a JSON6902 list of operations). nil when a file is
-- missing or the text is not YAML (talhelper genconfig reports those).
local function patch_docs(dir, entry, where)
  local text, name = entry, where
  if type(entry) == "table" then return {entry} end
  if type(entry) ~= "string" then return {} end
  local file = entry:match("^@(.+)$")
  if file then
    local full = file:sub(1, 1) == "/" and file or (dir .. "/" .. file:gsub("^%./", ""))
    if not fs.exists(full) then return nil end
    text, name = fs.read(full), where .. " (" .. entry .. ")"
  end
  -- talhelper renders Go templates in patches ({{ ... }}) before it parses
  -- them (pkg/patcher/patcher.go, v3.1.16): one that is not YAML until then
  -- is skipped here; talhelper reports a patch that is really broken
  local ok, docs = pcall(yaml.decode_all, text, {name = name})
  if not ok then return nil end
  return docs, name
end

--- Every patch document talhelper applies to node i, in its order
--- (pkg/generate/config.go, v3.1.16): the group's patches then the node's
--- (pkg/config/nodeconfigs.go: the group's come first unless the node sets
--- overridePatches), then the global patches.
---@param c table read()
---@param i integer node index
---@return table[] {where = "nodes[1].patches[2] (@./patches/x.yaml)", doc = table}
function M.patches_of(c, i)
  local data, out = c.data, {}
  local n = data.nodes[i]
  local gkey = n.controlPlane == true and "controlPlane" or "worker"
  local group = type(data[gkey]) == "table" and data[gkey] or {}
  local lists = {}
  if n.overridePatches ~= true then lists[#lists + 1] = {gkey .. ".patches", group.patches} end
  lists[#lists + 1] = {("nodes[%d].patches"):format(i), n.patches}
  lists[#lists + 1] = {"patches", data.patches}
  local dir = c.path:match("^(.*)/[^/]*$") or "."
  for _, l in ipairs(lists) do
    for k, entry in ipairs(type(l[2]) == "table" and l[2] or {}) do
      local where = ("%s[%d]"):format(l[1], k)
      local docs, name = patch_docs(dir, entry, where)
      for _, d in ipairs(docs or {}) do out[#out + 1] = {where = name or where, doc = d} end
    end
  end
  return out
end

-- A value a patch sets at a path: a strategic merge document's, or a
-- JSON6902 add/replace operation's (on the path or a parent of it).
local function patch_value(doc, keys)
  if type(doc) ~= "table" then return nil end
  if doc[1] ~= nil then                                  -- JSON6902: a list of operations
    local found
    for _, op in ipairs(doc) do
      if type(op) == "table" and (op.op == "add" or op.op == "replace") and type(op.path) == "string" then
        local v, rest = op.value, op.path
        for j, k in ipairs(keys) do
          if rest == "" then v = type(v) == "table" and v[k] or nil
          else
            local head, tail = rest:match("^/([^/]*)(.*)$")
            if head ~= k then v = nil; break end
            rest = tail
          end
          if j == #keys and rest ~= "" then v = nil end
        end
        if v ~= nil then found = v end
      end
    end
    return found
  end
  local v = doc
  for _, k in ipairs(keys) do
    if type(v) ~= "table" then return nil end
    v = v[k]
  end
  return v
end

--- What the patches of node i set that the rollout must know: the install
--- image (machine.install.image), the service subnets
--- (cluster.network.serviceSubnets, merge:"replace" in Talos's v1alpha1
--- types: the last patch applied wins), and an ExtensionServiceConfig named
--- tailscale. Each with the patch it comes from.
---@param c table read()
---@param i integer node index
---@return table {install_image = {value, where}?, service_subnets = {value, where}?, tailscale_esc = where?}
function M.patch_findings(c, i)
  local out = {}
  for _, p in ipairs(M.patches_of(c, i)) do
    local img = patch_value(p.doc, {"machine", "install", "image"})
    if type(img) == "string" then out.install_image = {value = img, where = p.where} end
    local subnets = patch_value(p.doc, {"cluster", "network", "serviceSubnets"})
    if type(subnets) == "table" and #subnets > 0 then out.service_subnets = {value = subnets, where = p.where} end
    if type(p.doc) == "table" and p.doc.kind == "ExtensionServiceConfig" and p.doc.name == "tailscale" then
      out.tailscale_esc = out.tailscale_esc or p.where
    end
    if type(p.doc) == "table" and p.doc[1] ~= nil then out.json6902 = out.json6902 or p.where end
  end
  return out
end

--- Refuses (exit 2, before anything changes) a node a JSON6902 patch
--- (a list of `op:` operations) applies to. talhelper adds the node's
--- extensionServices as documents of their own before it applies the
--- patches (budimanjojo/talhelper pkg/generate/config.go, AddMultiDocs then
--- PatchesPatcher, v3.1.16), and Talos refuses a JSON6902 patch on a
--- config of more than one document ("JSON6902 patches are not supported
--- for multi-document machine configuration", siderolabs/talos
--- pkg/machinery/config/configpatcher/json6902.go, v1.8.0 to v1.13.0):
--- with the tailscale entry added, genconfig would fail for that node.
---@param c table read()
function M.check_patches(c)
  for _, n in ipairs(c.nodes) do
    local f = M.patch_findings(c, n.index)
    if f.json6902 then
      fail(("%s: %s gets the JSON6902 patch %s; once the rollout adds its tailscale extensionServices entry, talhelper "
        .. "writes the config as several documents and Talos refuses JSON6902 patches on those (\"JSON6902 patches "
        .. "are not supported for multi-document machine configuration\"). Rewrite that patch as a strategic merge "
        .. "patch (a partial machine config), then run again. Nothing was changed."):format(c.path, n.hostname,
        f.json6902))
    end
  end
end

--- The service subnets the patches set, when clusterSvcNets is empty:
--- a control plane's first (its API server's --service-cluster-ip-range
--- is what Services get), else any node's; each value with talhelper's
--- ${VAR} expansion.
---@param c table {path, data, nodes} of read()
---@param x fun(v:string, where:string):string expands ${VAR}
---@return string[] cidrs (empty when no patch sets them), string? source
function M.service_subnets_from_patches(c, x)
  local order = {}
  for _, n in ipairs(c.nodes) do if n.control_plane then order[#order + 1] = n end end
  for _, n in ipairs(c.nodes) do if not n.control_plane then order[#order + 1] = n end end
  for _, n in ipairs(order) do
    local f = M.patch_findings(c, n.index).service_subnets
    if f then
      local out = {}
      for k, v in ipairs(f.value) do out[#out + 1] = x(tostring(v), ("%s serviceSubnets[%d]"):format(f.where, k)) end
      return out, "cluster.network.serviceSubnets in " .. f.where
    end
  end
  return {}, nil
end

--- The kubelet's node IP addresses from `talosctl get nodeips -o json`
--- (resource NodeIPs.kubernetes.talos.dev, ID "kubelet": spec.addresses,
--- netip.Addr values; pkg/machinery/resources/k8s/nodeip.go, v1.11.0):
--- the address to pin a node to when its ipAddress is a name. Only
--- addresses are kept: a name can never be a subnet.
---@param resources table[] decoded resources
---@return string[] addresses
function M.kubelet_addresses(resources)
  local out = {}
  for _, r in ipairs(resources or {}) do
    if type(r) == "table" and type(r.metadata) == "table" and r.metadata.id == "kubelet" and type(r.spec) == "table" then
      for _, a in ipairs(type(r.spec.addresses) == "table" and r.spec.addresses or {}) do
        if M.is_ip(a) then out[#out + 1] = a end
      end
    end
  end
  return out
end

--- Whether the service CIDRs span both address families (a dual-stack
--- cluster).
---@param cidrs string[]?
---@return boolean
function M.dual_stack(cidrs)
  local v4, v6 = false, false
  for _, c in ipairs(cidrs or {}) do
    if tostring(c):find(":", 1, true) then v6 = true else v4 = true end
  end
  return v4 and v6
end

--- The addresses a node's pins hold: its ipAddress first, then, for each
--- other address family, the first address of that family the kubelet
--- reports (NodeIPs "kubelet": at most one IPv4 and one IPv6, nodeip.go).
--- Single addresses, not prefixes: the kubelet takes the first address its
--- filter keeps, in address order, so a prefix would let another address
--- of the node in it (a second or temporary IPv6 address) win; a node
--- whose address changes needs the prefix written by hand (docs/rollout.md).
---@param ip string the node's ipAddress
---@param reported string[] the kubelet's node IPs
---@return string[]
function M.pin_addresses(ip, reported)
  local function family(a) return a:find(":", 1, true) and 6 or 4 end
  local out, seen = {ip}, {[family(ip)] = true}
  for _, a in ipairs(reported or {}) do
    if M.is_ip(a) and not seen[family(a)] then
      seen[family(a)] = true
      out[#out + 1] = a
    end
  end
  return out
end

--- The Talos version of the installer images `talhelper gencommand upgrade`
--- prints (`--image=factory.talos.dev/installer/<id>:v1.13.8;`), or nil.
---@param stdout string
---@return string?
function M.version_of_gencommand(stdout)
  return tostring(stdout):match("%-%-image=[^;%s]-:(v%d+%.%d+%.%d+[%w%.%-]*);")
end

--- The service CIDRs once the live cluster had its word (rollout.lua asks
--- kubectl). `live.cidrs`: the default ServiceCIDR object `kubernetes`,
--- which kube-apiserver creates from its --service-cluster-ip-range
--- (networking.k8s.io/v1, GA in Kubernetes 1.33; kubernetes
--- pkg/controlplane/controller/defaultservicecidr): when the file names no
--- CIDR (Talos's default assumed) they replace the default, with a warning;
--- when the file names others, exit 2. Else `live.ips`: the `kubernetes`
--- Service's cluster IPs must each lie in one of the CIDRs. An IP does not
--- tell its network's prefix (10.96.0.1 is in 10.96.0.0/12 and in
--- 10.96.0.0/16 alike), so no CIDR is derived from it: one outside them is
--- exit 2, naming both. No answer: the file decides, and a note says so.
---@param c table read() (svc_cidrs, svc_cidr_explicit, svc_source)
---@param live {cidrs?:string[], ips?:string[]}
---@param path string talconfig.yaml, for messages
---@return table {cidrs, source, warning?, note?}
function M.reconcile_service_cidrs(c, live, path)
  local source = c.svc_source or (c.svc_cidr_explicit and "clusterSvcNets" or "Talos's default")
  local function stop(msg)
    fail(msg .. (". Set clusterSvcNets in %s to the cluster's service CIDRs (kube-apiserver's "
      .. "--service-cluster-ip-range). Nothing was changed"):format(path))
  end
  local cidrs = live.cidrs
  if cidrs and #cidrs > 0 then
    local seen = {}
    for _, x in ipairs(cidrs) do seen[x] = true end
    local same = #cidrs == #c.svc_cidrs
    for _, x in ipairs(c.svc_cidrs) do same = same and seen[x] == true end
    if same then return {cidrs = c.svc_cidrs, source = source} end
    if c.svc_cidr_explicit then
      stop(("the cluster's service CIDRs are %s (its ServiceCIDR kubernetes); %s says %s"):format(
        table.concat(cidrs, ", "), source, table.concat(c.svc_cidrs, ", ")))
    end
    return {cidrs = cidrs, source = "the cluster's ServiceCIDR kubernetes",
            warning = ("%s names no service CIDR (%s assumed); the cluster's ServiceCIDR kubernetes says %s: "
              .. "routing that"):format(path, table.concat(c.svc_cidrs, ", "), table.concat(cidrs, ", "))}
  end
  if not live.ips or #live.ips == 0 then
    return {cidrs = c.svc_cidrs, source = source,
            note = "the cluster's service CIDRs could not be read (kubectl): they come from " .. source .. " alone"}
  end
  for _, ip in ipairs(live.ips) do
    local inside = false
    for _, x in ipairs(c.svc_cidrs) do inside = inside or M.cidr_contains(x, ip) end
    if not inside then
      stop(("the cluster's kubernetes Service has the IP %s, outside the service CIDRs %s (%s): the route would not "
        .. "reach it, and an IP does not tell its prefix"):format(ip, table.concat(c.svc_cidrs, ", "), source))
    end
  end
  return {cidrs = c.svc_cidrs, source = source}
end

--- Refuses (exit 2, before anything changes) a node whose installer is not
--- an Image Factory one: a talosImageURL of another registry image
--- (docker.io/qjoly/talos), or an install image a patch sets. The rollout
--- builds the new installer at the factory from the node's schematic: it
--- would replace such an image with a factory one without a word.
--- ghcr.io/siderolabs/installer (Talos's own default, the vanilla
--- schematic) is the one non-factory image the factory replaces as is.
---@param c table read()
---@param parse_image fun(ref:string):table factory.parse_image
function M.check_installers(c, parse_image)
  for _, n in ipairs(c.nodes) do
    local url = n.image_url
    local p = url and parse_image(url)
    if p and not p.factory and p.image ~= "ghcr.io/siderolabs/installer" then
      fail(("%s: %s (%s) installs %s, which is not an Image Factory installer: the rollout builds the new installer "
        .. "at the factory (factory.talos.dev/installer/<schematic>) and would replace yours. Add siderolabs/tailscale "
        .. "to your own image and roll it out yourself, or point talosImageURL at a factory installer of the "
        .. "node's schematic first. Nothing was changed."):format(c.path, n.url_where or ("nodes[" .. n.index .. "]"),
        n.hostname, url))
    end
    local f = M.patch_findings(c, n.index)
    if f.install_image then
      fail(("%s: %s's install image is set by the patch %s (machine.install.image: %s), which overrides the "
        .. "talosImageURL the rollout writes: its upgrade would not be what talhelper generates. Remove "
        .. "machine.install.image from the patch (talhelper sets it from talosImageURL or schematic:), then run "
        .. "again. Nothing was changed."):format(c.path, n.hostname, f.install_image.where, f.install_image.value))
    end
  end
end

-- }======

return M

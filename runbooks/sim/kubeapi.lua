--- The simulated cluster's Kubernetes API (REST, JSON), as the real
--- `kubectl` and client-go meet it: discovery, nodes and pods derived from
--- the world, the `kubernetes` Service, namespaces, and ConfigMaps,
--- Secrets and Leases stored with resourceVersions, preconditions and
--- watches. `runbook world serve` answers it on its loopback port for a
--- request with the world's bearer token (engine/lua/serve.lua); the API
--- conventions modelled, and where each comes from, are in
--- docs/simulation.md ("The Kubernetes API").
local ctx = ...

local hash = require "runbook.hash"
local json = require "runbook.json"
local time = require "runbook.time"

local W = ctx.W
local fmt = string.format
local tables = ctx.kubetable

local M = {}

local WRITE = {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
local READ = {"get", "list", "watch"}

-- The resources served: group, kind, scope, short names, verbs. derived:
-- built from the world at each read (nodes, pods); the others are stored.
-- servicecidrs: networking.k8s.io/v1 from Kubernetes v1.33 (GA there,
-- kubernetes/kubernetes CHANGELOG-1.33; beta and off by default before).
local RES = {
  namespaces = {group = "", kind = "Namespace", singular = "namespace", namespaced = false, short = {"ns"}, verbs = WRITE},
  nodes = {group = "", kind = "Node", singular = "node", namespaced = false, short = {"no"}, verbs = {"get", "list", "patch", "watch"},
           derived = true},
  pods = {group = "", kind = "Pod", singular = "pod", namespaced = true, short = {"po"}, verbs = READ, derived = true},
  services = {group = "", kind = "Service", singular = "service", namespaced = true, short = {"svc"}, verbs = READ},
  configmaps = {group = "", kind = "ConfigMap", singular = "configmap", namespaced = true, short = {"cm"}, verbs = WRITE},
  secrets = {group = "", kind = "Secret", singular = "secret", namespaced = true, short = {}, verbs = WRITE},
  leases = {group = "coordination.k8s.io", kind = "Lease", singular = "lease", namespaced = true, short = {}, verbs = WRITE},
  servicecidrs = {group = "networking.k8s.io", kind = "ServiceCIDR", singular = "servicecidr", namespaced = false, short = {},
                  verbs = READ, since = 33},
}
for name, r in pairs(RES) do r.name = name end
local GROUPS = {{name = "coordination.k8s.io", version = "v1"}, {name = "networking.k8s.io", version = "v1", since = 33}}
local LOG_MAX = 10000     -- watch events kept; an older resourceVersion is "too old" (410)

local function minor() return tonumber(tostring(W.k8s_version):match("^v?%d+%.(%d+)")) or 33 end
local function served(r) return r and (not r.since or minor() >= r.since) end

local function api_version(r) return r.group == "" and "v1" or r.group .. "/v1" end
local function qualified(name, r) return r.group == "" and name or name .. "." .. r.group end

local function response(status, obj, headers)
  local h = {["content-type"] = "application/json"}
  for k, v in pairs(headers or {}) do h[k] = v end
  return {status = status, headers = h, body = json.encode(obj) .. "\n"}
end

-- {====== Status objects: k8s.io/apimachinery pkg/api/errors/errors.go
local REASONS = {[400] = "BadRequest", [404] = "NotFound", [405] = "MethodNotAllowed", [409] = "Conflict",
                 [410] = "Expired", [415] = "UnsupportedMediaType", [422] = "Invalid"}

local function status_obj(code, reason, message, details)
  return {kind = "Status", apiVersion = "v1", metadata = json.map({}), status = code < 400 and "Success" or "Failure",
          message = message, reason = reason, details = details, code = code}
end

local function failure(code, message, details, reason)
  return response(code, status_obj(code, reason or REASONS[code], message, details))
end

local function details(r, name)
  return {name = name, group = r.group ~= "" and r.group or nil, kind = r.name}
end

local function not_found(r, name) return failure(404, fmt("%s %q not found", qualified(r.name, r), name), details(r, name)) end

-- NewConflict with the registry's OptimisticLockErrorMsg
-- (k8s.io/apiserver pkg/registry/generic/registry/store.go)
local function conflict(r, name, why)
  return failure(409, fmt("Operation cannot be fulfilled on %s %q: %s", qualified(r.name, r), name,
    why or "the object has been modified; please apply your changes to the latest version and try again"), details(r, name))
end
-- }======

-- {====== the store
local function store()
  local S = W.kube
  if S then return S end
  S = {rv = 1, items = {}, log = {}, log_first = 1, derived = {}, uids = 0, born = time.now() - 3 * 86400}
  for name in pairs(RES) do S.items[name] = {} end
  W.kube = S
  M._seed(S)
  return S
end

local function next_rv(S)
  S.rv = S.rv + 1
  return tostring(S.rv)
end

local function uid_for(S, key)
  S.uids = S.uids + 1
  local h = hash.sha256(key .. "#" .. S.uids)
  return fmt("%s-%s-%s-%s-%s", h:sub(1, 8), h:sub(9, 12), h:sub(13, 16), h:sub(17, 20), h:sub(21, 32))
end

local function key_of(ns, name) return (ns or "") .. "/" .. name end

local function copy(v)
  if type(v) ~= "table" or v == json.null then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  return setmetatable(out, getmetatable(v))
end

local function record(S, rname, etype, obj)
  local log = S.log
  log[#log + 1] = {rv = tonumber(obj.metadata.resourceVersion), res = rname, type = etype, obj = copy(obj)}
  if #log - S.log_first + 1 > LOG_MAX then
    log[S.log_first] = nil
    S.log_first = S.log_first + 1
  end
end

--- Stores a new object (metadata completed) and records its ADDED event.
local function put_new(S, rname, obj, created)
  local r = RES[rname]
  local md = obj.metadata
  md.uid = uid_for(S, rname .. key_of(md.namespace, md.name))
  md.creationTimestamp = time.iso(created or time.now())
  md.resourceVersion = next_rv(S)
  obj.apiVersion, obj.kind = api_version(r), r.kind
  S.items[rname][key_of(md.namespace, md.name)] = obj
  record(S, rname, "ADDED", obj)
  return obj
end

function M._seed(S)
  local born = S.born
  for _, ns in ipairs{"default", "kube-system", "kube-public", "kube-node-lease", W.operator and W.operator.namespace} do
    if not S.items.namespaces[key_of(nil, ns)] then
      put_new(S, "namespaces", {metadata = {name = ns, labels = {["kubernetes.io/metadata.name"] = ns}},
        spec = {finalizers = {"kubernetes"}}, status = {phase = "Active"}}, born)
    end
  end
  -- the first address of the service CIDR is the kubernetes Service's
  -- (pkg/controlplane/services.go ServiceIPRange), the tenth CoreDNS's
  -- (Talos's default DNS service IP: the 10th address)
  local base = W.service_cidr:match("^([%d%.]+)")
  local a, b, c, d = base:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  local function ip(n) return fmt("%s.%s.%s.%d", a, b, c, tonumber(d) + n) end
  put_new(S, "services", {metadata = {name = "kubernetes", namespace = "default",
    labels = {component = "apiserver", provider = "kubernetes"}},
    spec = {type = "ClusterIP", clusterIP = ip(1), clusterIPs = {ip(1)}, ipFamilies = {"IPv4"}, ipFamilyPolicy = "SingleStack",
            ports = {{name = "https", port = 443, protocol = "TCP", targetPort = 6443}}, sessionAffinity = "None"},
    status = {loadBalancer = json.map({})}}, born)
  put_new(S, "services", {metadata = {name = "kube-dns", namespace = "kube-system",
    labels = {["k8s-app"] = "kube-dns", ["kubernetes.io/name"] = "CoreDNS"}},
    spec = {type = "ClusterIP", clusterIP = ip(10), clusterIPs = {ip(10)}, selector = {["k8s-app"] = "kube-dns"},
            ports = {{name = "dns", port = 53, protocol = "UDP", targetPort = 53}, {name = "dns-tcp", port = 53, protocol = "TCP", targetPort = 53},
                     {name = "metrics", port = 9153, protocol = "TCP", targetPort = 9153}}, sessionAffinity = "None"},
    status = {loadBalancer = json.map({})}}, born)
  put_new(S, "servicecidrs", {metadata = {name = "kubernetes"}, spec = {cidrs = W.service_cidrs},
    status = {conditions = {{type = "Ready", status = "True", reason = "", message = "Kubernetes Service CIDR is ready",
                             lastTransitionTime = time.iso(born)}}}}, born)
end
-- }======

-- {====== derived objects: nodes and pods
local function node_objects()
  local out = {}
  for _, n in ipairs(W.nodes) do
    local o = copy(ctx.cli.node_object(n).obj)
    o.metadata.labels["kubernetes.io/arch"] = "amd64"
    o.metadata.labels["beta.kubernetes.io/os"] = "linux"
    o.status.nodeInfo.kernelVersion = "6.12.0-talos"
    o.status.nodeInfo.containerRuntimeVersion = "containerd://2.0.0"
    o.status.nodeInfo.operatingSystem, o.status.nodeInfo.architecture = "linux", "amd64"
    out[#out + 1] = o
  end
  return out
end

local function pod(ns, name, node, labels, ready, container)
  return {apiVersion = "v1", kind = "Pod", metadata = {name = name, namespace = ns, labels = labels},
    spec = {nodeName = node and node.name, containers = {{name = container, image = container}}},
    status = {phase = "Running", podIP = node and ctx.M._node_ip(node) or nil, hostIP = node and ctx.M._node_ip(node) or nil,
              conditions = ctx.cli.pod_conditions(ns .. "/" .. name, ready, container),
              containerStatuses = {{name = container, ready = ready, restartCount = 0, started = ready, image = container}}}}
end

local function short_id(s, n) return hash.sha256(s):gsub("[^%l]", ""):sub(1, n) end

local function pod_objects()
  local out = {}
  local cp_ready = {}
  for _, n in ipairs(W.nodes) do
    local ready = ctx.model.node_up(n) and not n.not_ready or false
    if n.role == "controlplane" then
      cp_ready[#cp_ready + 1] = n
      for _, c in ipairs{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} do
        out[#out + 1] = pod("kube-system", c .. "-" .. n.name, n, {component = c, tier = "control-plane"}, ready, c)
      end
    end
    out[#out + 1] = pod("kube-system", "kube-proxy-" .. short_id("kube-proxy" .. n.name, 5), n, {["k8s-app"] = "kube-proxy"}, ready, "kube-proxy")
    out[#out + 1] = pod("kube-system", "kube-flannel-" .. short_id("flannel" .. n.name, 5), n, {["k8s-app"] = "flannel"}, ready, "kube-flannel")
  end
  for i = 1, 2 do
    local n = cp_ready[(i - 1) % math.max(#cp_ready, 1) + 1]
    out[#out + 1] = pod("kube-system", "coredns-78f679c54d-" .. short_id("coredns" .. i, 5), n, {["k8s-app"] = "kube-dns"},
                        true, "coredns")
  end
  local op = W.operator
  for i = 1, op.pods or 1 do
    -- the same names as the kubectl of a dry-run (sim/cli.lua)
    out[#out + 1] = pod(op.namespace, fmt("%s-5d8f7b9c4-%05d", op.deployment, i), nil, {app = op.deployment},
                        i <= (op.ready or op.pods or 1), op.deployment)
  end
  return out
end

--- The derived objects of rname, each with a uid, a creationTimestamp
--- and a resourceVersion that moves when the object changes.
local function derived(S, rname)
  local objs = rname == "nodes" and node_objects() or pod_objects()
  local seen = S.derived[rname] or {}
  S.derived[rname] = seen
  for _, o in ipairs(objs) do
    local k = key_of(o.metadata.namespace, o.metadata.name)
    local text = json.encode(o)
    local d = seen[k]
    if not d then
      d = {uid = uid_for(S, rname .. k), created = time.iso(S.born)}
      seen[k] = d
    end
    if d.text ~= text then d.text, d.rv = text, next_rv(S) end
    o.metadata.uid, o.metadata.creationTimestamp, o.metadata.resourceVersion = d.uid, d.created, d.rv
  end
  -- a list comes in the store's key order: namespace, then name
  table.sort(objs, function(a, b)
    return key_of(a.metadata.namespace, a.metadata.name) < key_of(b.metadata.namespace, b.metadata.name)
  end)
  return objs
end
-- }======

-- {====== selectors: labelSelector (=, ==, !=, exists, !exists) and
-- fieldSelector (metadata.name, metadata.namespace; pods: spec.nodeName,
-- status.phase), as k8s.io/apimachinery pkg/labels and pkg/fields parse them
local function parse_selector(text, fields)
  local reqs = {}
  for part in (text or ""):gmatch("[^,]+") do
    part = part:match("^%s*(.-)%s*$")
    local k, op, v = part:match("^([^!=]+)(!?==?)(.*)$")
    if k then reqs[#reqs + 1] = {k = k:match("^(.-)%s*$"), op = op == "!=" and "ne" or "eq", v = v:match("^%s*(.*)$")}
    elseif fields then return nil, fmt("invalid selector: %q; can't understand %q", text, part)
    elseif part:sub(1, 1) == "!" then reqs[#reqs + 1] = {k = part:sub(2), op = "absent"}
    elseif part:match("^[%w%.%-_/]+$") then reqs[#reqs + 1] = {k = part, op = "present"}
    else return nil, fmt("unable to parse requirement: %q", part) end
  end
  return reqs
end

local FIELDS = {["metadata.name"] = function(o) return o.metadata.name end,
                ["metadata.namespace"] = function(o) return o.metadata.namespace or "" end}
local POD_FIELDS = {["spec.nodeName"] = function(o) return o.spec.nodeName or "" end,
                    ["status.phase"] = function(o) return o.status.phase or "" end}

local function matches(o, labels, fields)
  local have = o.metadata.labels or {}
  for _, q in ipairs(labels) do
    local v = have[q.k]
    if (q.op == "eq" and v ~= q.v) or (q.op == "ne" and v == q.v) or (q.op == "present" and v == nil)
       or (q.op == "absent" and v ~= nil) then return false end
  end
  for _, q in ipairs(fields) do
    local v = (FIELDS[q.k] or POD_FIELDS[q.k])(o)
    if (q.op == "eq") ~= (v == q.v) then return false end
  end
  return true
end
-- }======

local function url_decode(s)
  return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function parse_query(q)
  local out = {}
  for kv in (q or ""):gmatch("[^&]+") do
    local k, v = kv:match("^([^=]*)=?(.*)$")
    out[url_decode(k)] = url_decode(v)
  end
  return out
end

-- {====== discovery: /version, /api, /apis, /api/v1, /apis/G/V
-- (k8s.io/apimachinery pkg/apis/meta/v1 types.go: APIVersions,
-- APIGroupList, APIGroup, APIResourceList)
local function resource_list(group)
  local list = {}
  for name, r in pairs(RES) do
    if r.group == group and served(r) then
      list[#list + 1] = {name = name, singularName = r.singular, namespaced = r.namespaced, kind = r.kind,
                         verbs = r.verbs, shortNames = #r.short > 0 and r.short or nil}
    end
  end
  table.sort(list, function(a, b) return a.name < b.name end)
  return {kind = "APIResourceList", apiVersion = "v1", groupVersion = group == "" and "v1" or group .. "/v1", resources = list}
end

local function group_obj(g)
  local gv = {groupVersion = g.name .. "/" .. g.version, version = g.version}
  return {name = g.name, versions = {gv}, preferredVersion = gv}
end

local function discovery(path)
  if path == "/version" then
    local major, mnr = tostring(W.k8s_version):match("^v?(%d+)%.(%d+)")
    return response(200, {major = major, minor = mnr, gitVersion = W.k8s_version, gitCommit = "0000000000000000000000000000000000000000",
      gitTreeState = "clean", buildDate = "2025-01-01T00:00:00Z", goVersion = "go1.24.0", compiler = "gc", platform = "linux/amd64"})
  elseif path == "/api" then
    return response(200, {kind = "APIVersions", versions = {"v1"},
      serverAddressByClientCIDRs = {{clientCIDR = "0.0.0.0/0", serverAddress = (W.nodes[1] and W.nodes[1].ip or "127.0.0.1") .. ":6443"}}})
  elseif path == "/apis" then
    local groups = {}
    for _, g in ipairs(GROUPS) do if served(g) then groups[#groups + 1] = group_obj(g) end end
    return response(200, {kind = "APIGroupList", apiVersion = "v1", groups = groups})
  elseif path == "/api/v1" then
    return response(200, resource_list(""))
  end
  for _, g in ipairs(GROUPS) do
    if served(g) then
      if path == "/apis/" .. g.name then return response(200, (function()
        local o = group_obj(g); o.kind, o.apiVersion = "APIGroup", "v1"; return o end)()) end
      if path == "/apis/" .. g.name .. "/" .. g.version then return response(200, resource_list(g.name)) end
    end
  end
end
-- }======

--- The request's resource: {r, ns, name} from /api/v1/... or
--- /apis/GROUP/v1/..., or nil.
local function route(path)
  local group, rest = "", path:match("^/api/v1/(.+)$")
  if not rest then group, rest = path:match("^/apis/([^/]+)/v1/(.+)$") end
  if not rest then return nil end
  local segs = {}
  for s in rest:gmatch("[^/]+") do segs[#segs + 1] = s end
  local ns
  if segs[1] == "namespaces" and #segs >= 3 then ns = segs[2]; table.remove(segs, 1); table.remove(segs, 1) end
  if #segs > 2 then return nil end
  local r = RES[segs[1]]
  if not served(r) or r.group ~= (group or "") then return nil end
  if ns and not r.namespaced then return nil end
  return {r = r, ns = ns, name = segs[2]}
end

--- Every object of the request's resource (one namespace, or all).
local function objects(S, t)
  local r = t.r
  if r.derived then
    local out = {}
    for _, o in ipairs(derived(S, r.name)) do
      if not t.ns or o.metadata.namespace == t.ns then out[#out + 1] = o end
    end
    return out
  end
  local out = {}
  for _, o in pairs(S.items[r.name]) do
    if not t.ns or o.metadata.namespace == t.ns then out[#out + 1] = o end
  end
  table.sort(out, function(a, b)
    local ka, kb = key_of(a.metadata.namespace, a.metadata.name), key_of(b.metadata.namespace, b.metadata.name)
    return ka < kb
  end)
  return out
end

local function find(S, t)
  for _, o in ipairs(objects(S, t)) do
    if o.metadata.name == t.name then return o end
  end
end

local function wants_table(headers)
  return (headers.accept or ""):find("as=Table", 1, true) ~= nil
end

local function selectors(t, q)
  local labels, lerr = parse_selector(q.labelSelector)
  if not labels then return nil, failure(400, lerr) end
  local fields, ferr = parse_selector(q.fieldSelector, true)
  if not fields then return nil, failure(400, ferr) end
  for _, f in ipairs(fields) do
    if not FIELDS[f.k] and not (t.r.name == "pods" and POD_FIELDS[f.k]) then
      return nil, failure(400, fmt("field label not supported: %s", f.k))
    end
  end
  return {labels = labels, fields = fields}
end

local function get(S, t, q, headers)
  local sel, bad = selectors(t, q)
  if not sel then return bad end
  if t.name then
    local o = find(S, t)
    if not o then return not_found(t.r, t.name) end
    if wants_table(headers) then return response(200, tables.table(t.r.name, {o}, o.metadata.resourceVersion, q.includeObject)) end
    return response(200, o)
  end
  local items = {}
  for _, o in ipairs(objects(S, t)) do
    if matches(o, sel.labels, sel.fields) then items[#items + 1] = o end
  end
  local rv = tostring(S.rv)
  if wants_table(headers) then return response(200, tables.table(t.r.name, items, rv, q.includeObject)) end
  return response(200, {kind = t.r.kind .. "List", apiVersion = api_version(t.r), metadata = {resourceVersion = rv},
                        items = json.array(items)})
end

M.store, M.route, M.selectors, M.objects, M.matches, M.find = store, route, selectors, objects, matches, find
M.response, M.failure, M.not_found, M.conflict, M.details, M.status_obj = response, failure, not_found, conflict, details, status_obj
M.put_new, M.next_rv, M.record, M.copy, M.key_of, M.RES, M.api_version = put_new, next_rv, record, copy, key_of, RES, api_version
M.get, M.parse_query, M.discovery, M.wants_table, M.derived = get, parse_query, discovery, wants_table, derived

return M

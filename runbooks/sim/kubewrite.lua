--- The simulated Kubernetes API's writes and watches (create, update,
--- patch, delete; `?watch=true`), over sim/kubeapi.lua's store, and the
--- request's dispatch. What each verb does follows the apiserver's
--- generic registry (k8s.io/apiserver pkg/registry/generic/registry/store.go:
--- Create, Update with the resourceVersion as precondition, Delete with
--- DeleteOptions.preconditions) and apimachinery's error constructors.
local ctx = ...

local json = require "runbook.json"
local time = require "runbook.time"

local api = ctx.kubeapi
local tables = ctx.kubetable
local fmt = string.format

local M = {}

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(s)
  return ((s:gsub(".", function(c)
    local b, bits = c:byte(), ""
    for i = 8, 1, -1 do bits = bits .. ((b >> (i - 1)) & 1) end
    return bits
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local n = tonumber(x, 2)
    return B64:sub(n + 1, n + 1)
  end) .. ({"", "==", "="})[#s % 3 + 1])
end
M.base64 = base64

--- A Secret's stringData written into data, base64, and dropped (the
--- apiserver does this on every write: pkg/apis/core/v1 conversion).
local function fold_string_data(rname, obj)
  if rname ~= "secrets" or type(obj.stringData) ~= "table" then return end
  obj.data = obj.data or json.map({})
  for k, v in pairs(obj.stringData) do obj.data[k] = base64(tostring(v)) end
  obj.stringData = nil
end

local function decode_body(body, headers)
  if ((headers or {})["content-type"] or ""):find("protobuf", 1, true) then
    local obj, why = ctx.kubeproto.decode(body or "")
    if not obj then return nil, api.failure(415, "the body of the request was in an unknown format: " .. why) end
    obj.metadata = obj.metadata or {}
    return obj
  end
  local ok, obj = pcall(json.decode, body or "", {name = "request body"})
  if not ok or type(obj) ~= "table" then return nil, api.failure(400, "the request body is not a JSON object: " .. tostring(obj)) end
  if type(obj.metadata) ~= "table" then obj.metadata = {} end
  return obj
end

local function namespace_exists(S, ns)
  return S.items.namespaces[api.key_of(nil, ns)] ~= nil
end

local function create(S, t, q, body, headers)
  local obj, bad = decode_body(body, headers)
  if not obj then return bad end
  local r, md = t.r, obj.metadata
  if t.ns then
    if (md.namespace or "") ~= "" and md.namespace ~= t.ns then
      return api.failure(400, "the namespace of the provided object does not match the namespace sent on the request")
    end
    if not namespace_exists(S, t.ns) then return api.not_found(api.RES.namespaces, t.ns) end
    md.namespace = t.ns
  end
  if (md.name or "") == "" and (md.generateName or "") ~= "" then
    md.name = md.generateName .. require("runbook.hash").sha256(tostring(time.now()) .. S.rv):gsub("[^%l%d]", ""):sub(1, 5)
  end
  if (md.name or "") == "" then
    return api.failure(422, fmt("%s %q is invalid: metadata.name: Required value: name or generateName is required", r.kind, ""),
                       {kind = r.kind, group = r.group ~= "" and r.group or nil})
  end
  if api.find(S, {r = r, ns = t.ns, name = md.name}) then
    return api.failure(409, fmt("%s %q already exists", r.group == "" and r.name or r.name .. "." .. r.group, md.name),
                       api.details(r, md.name), "AlreadyExists")
  end
  fold_string_data(r.name, obj)
  md.resourceVersion, md.uid, md.creationTimestamp = nil, nil, nil
  if r.name == "namespaces" then
    md.labels = md.labels or {}
    md.labels["kubernetes.io/metadata.name"] = md.name
    obj.spec, obj.status = {finalizers = {"kubernetes"}}, {phase = "Active"}
  end
  if q.dryRun == "All" then return api.response(201, obj) end
  return api.response(201, api.put_new(S, r.name, obj))
end

--- Replaces the stored object by `obj` (its name checked), unless the
--- resourceVersion obj carries is not the stored one (409 Conflict).
local function replace(S, t, old, obj, dry)
  local r, md = t.r, obj.metadata
  if md.name and md.name ~= t.name then
    return api.failure(400, fmt("the name of the object (%s) does not match the name on the URL (%s)", md.name, t.name))
  end
  if t.ns and (md.namespace or "") ~= "" and md.namespace ~= t.ns then
    return api.failure(400, "the namespace of the provided object does not match the namespace sent on the request")
  end
  local want = md.resourceVersion
  if want and want ~= "" and want ~= old.metadata.resourceVersion then return api.conflict(r, t.name) end
  fold_string_data(r.name, obj)
  md.name, md.namespace, md.uid, md.creationTimestamp = t.name, old.metadata.namespace, old.metadata.uid, old.metadata.creationTimestamp
  obj.apiVersion, obj.kind = api.api_version(r), r.kind
  if r.name == "namespaces" then obj.status = old.status end
  if dry then md.resourceVersion = old.metadata.resourceVersion; return api.response(200, obj) end
  md.resourceVersion = api.next_rv(S)
  S.items[r.name][api.key_of(old.metadata.namespace, t.name)] = obj
  api.record(S, r.name, "MODIFIED", obj)
  return api.response(200, obj)
end

local function update(S, t, q, body, headers)
  local obj, bad = decode_body(body, headers)
  if not obj then return bad end
  local old = api.find(S, t)
  if not old then return api.not_found(t.r, t.name) end
  return replace(S, t, old, obj, q.dryRun == "All")
end

--- RFC 7386 JSON merge patch: null removes, an object merges, anything
--- else replaces. A strategic merge patch is applied the same way, its
--- "$" directives dropped: the stored kinds have no list with a patch
--- strategy but metadata's (documented as a simplification).
local function is_array(v) return #v > 0 or json.encode(v) == "[]" end

local function merge(target, patch)
  if type(patch) ~= "table" or patch == json.null or is_array(patch) then return patch end
  if type(target) ~= "table" or target == json.null or is_array(target) then target = {} end
  for k, v in pairs(patch) do
    if v == json.null then target[k] = nil
    elseif type(k) ~= "string" or k:sub(1, 1) ~= "$" then target[k] = merge(target[k], v) end
  end
  return target
end
M.merge = merge

local function patch(S, t, q, body, headers)
  local ctype = (headers["content-type"] or ""):match("^[^;]*")
  if ctype ~= "application/merge-patch+json" and ctype ~= "application/strategic-merge-patch+json" then
    return api.failure(415, fmt("the body of the request was in an unknown format - accepted media types include: "
      .. "application/merge-patch+json, application/strategic-merge-patch+json (the simulated API; got %q)", ctype))
  end
  local old = api.find(S, t)
  if not old then return api.not_found(t.r, t.name) end
  local ok, p = pcall(json.decode, body or "", {name = "patch"})
  if not ok or type(p) ~= "table" then return api.failure(400, "the patch is not a JSON object: " .. tostring(p)) end
  local obj = merge(api.copy(old), p)
  if type(obj.metadata) ~= "table" then obj.metadata = {} end
  -- a resourceVersion in the patch is a precondition (the patched object's
  -- own, compared at the update); absent, the stored one holds
  obj.metadata.resourceVersion = obj.metadata.resourceVersion or old.metadata.resourceVersion
  return replace(S, t, old, obj, q.dryRun == "All")
end

--- A node's patch: only spec.unschedulable (what `kubectl cordon` and
--- `uncordon` send), written into the world's node; the rest of a node
--- is the world's to say.
local function patch_node(S, t, body)
  local n = ctx.W.ix.node_by_name[t.name]
  if not n then return api.not_found(t.r, t.name) end
  local ok, p = pcall(json.decode, body or "", {name = "patch"})
  if not ok or type(p) ~= "table" then return api.failure(400, "the patch is not a JSON object: " .. tostring(p)) end
  for k, v in pairs(p) do
    if k ~= "spec" or type(v) ~= "table" or next(v) ~= "unschedulable" or next(v, "unschedulable") ~= nil then
      return api.failure(422, fmt("Node %q is invalid: the simulated API changes only spec.unschedulable of a node", t.name),
                         {name = t.name, kind = "Node"}, "Invalid")
    end
  end
  n.unschedulable = p.spec.unschedulable == true or nil
  ctx.M._node_changed(n)
  return api.response(200, api.find(S, t))
end

local function delete(S, t, q, body)
  local old = api.find(S, t)
  if not old then return api.not_found(t.r, t.name) end
  local opts = {}
  if body and body:match("%S") then
    local ok, o = pcall(json.decode, body, {name = "DeleteOptions"})
    if ok and type(o) == "table" then opts = o end
  end
  local pre = type(opts.preconditions) == "table" and opts.preconditions or {}
  local md = old.metadata
  -- k8s.io/apiserver pkg/storage/interfaces.go Preconditions.Check
  if pre.uid and pre.uid ~= md.uid then
    return api.conflict(t.r, t.name, fmt("precondition failed: UID in precondition: %s, UID in object meta: %s", pre.uid, md.uid))
  end
  if pre.resourceVersion and pre.resourceVersion ~= md.resourceVersion then
    return api.conflict(t.r, t.name, fmt("Precondition failed: ResourceVersion in precondition: %s, ResourceVersion in object meta: %s",
                                         pre.resourceVersion, md.resourceVersion))
  end
  local done = api.status_obj(200, nil, nil, {name = t.name, group = t.r.group ~= "" and t.r.group or nil, kind = t.r.name, uid = md.uid})
  done.reason, done.message, done.code = nil, nil, nil
  if q.dryRun == "All" then return api.response(200, done) end
  S.items[t.r.name][api.key_of(md.namespace, t.name)] = nil
  local gone = api.copy(old)
  gone.metadata.resourceVersion = api.next_rv(S)
  api.record(S, t.r.name, "DELETED", gone)
  if t.r.name == "namespaces" then
    -- the namespace controller's work, at once (no Terminating phase here)
    for rname, items in pairs(S.items) do
      for k, o in pairs(items) do
        if o.metadata.namespace == t.name then
          items[k] = nil
          local g = api.copy(o)
          g.metadata.resourceVersion = api.next_rv(S)
          api.record(S, rname, "DELETED", g)
        end
      end
    end
  end
  return api.response(200, done)
end

-- {====== watch
--- A watch of t from q.resourceVersion: a function that returns the
--- event lines ({"type":..,"object":..}) since its last call, or nil and
--- a last line when the watch must end (a resourceVersion too old).
local function watcher(S, t, q, headers, sel)
  local as_table = api.wants_table(headers)
  local from = tonumber(q.resourceVersion)
  local function line(etype, o)
    local obj = as_table and tables.table(t.r.name, {o}, o.metadata.resourceVersion, q.includeObject) or o
    return json.encode({type = etype, object = obj}) .. "\n"
  end
  local function wanted(o)
    return (not t.ns or o.metadata.namespace == t.ns) and (not t.name or o.metadata.name == t.name)
           and api.matches(o, sel.labels, sel.fields)
  end
  local pending = {}
  if not from or from == 0 then
    -- "Get State and Start at Most Recent": the current objects as ADDED
    for _, o in ipairs(api.objects(S, t)) do if wanted(o) then pending[#pending + 1] = line("ADDED", o) end end
    from = S.rv
  end
  -- a resourceVersion older than the log kept is "too old" for every
  -- resource, derived ones too: one revision counter, as etcd's
  -- (tests/corpus/kubeapi/watch-expired-410-kubectl-get-raw-v1.36.1.txt: pods)
  local first = S.log[S.log_first]
  if first and from < first.rv - 1 then
    local st = api.status_obj(410, "Expired", fmt("too old resource version: %d (%d)", from, first.rv - 1))
    return function() return nil, json.encode({type = "ERROR", object = st}) .. "\n" end
  end
  if t.r.derived then
    local seen = {}
    for _, o in ipairs(api.objects(S, t)) do
      local rv = tonumber(o.metadata.resourceVersion)
      if rv <= from then seen[api.key_of(o.metadata.namespace, o.metadata.name)] = rv end
    end
    return function()
      local out, now = pending, {}
      pending = {}
      for _, o in ipairs(api.objects(S, t)) do
        local k, rv = api.key_of(o.metadata.namespace, o.metadata.name), tonumber(o.metadata.resourceVersion)
        now[k] = true
        if wanted(o) and seen[k] ~= rv then out[#out + 1] = line(seen[k] and "MODIFIED" or "ADDED", o) end
        seen[k] = rv
      end
      for k in pairs(seen) do if not now[k] then seen[k] = nil end end
      return out
    end
  end
  local pos = S.log_first
  return function()
    local out = pending
    pending = {}
    local log = S.log
    if pos < S.log_first then pos = S.log_first end
    while log[pos] do
      local e = log[pos]
      pos = pos + 1
      if e.rv > from and e.res == t.r.name and wanted(e.obj) then out[#out + 1] = line(e.type, e.obj) end
    end
    return out
  end
end
-- }======

--- One request to the API: {method, path (with its query), headers, body}
--- -> {status, headers, body}, or for a watch {status = 200, headers,
--- watch = function() -> lines or nil, last line; timeout = seconds?}.
function M.handle(req)
  local path, query = req.path:match("^([^?]*)%??(.*)$")
  local headers = req.headers or {}
  local q = api.parse_query(query)
  local method = req.method
  if method == "GET" then
    local d = api.discovery(path)
    if d then return d end
  end
  local t = api.route(path)
  if not t then
    return api.failure(404, "the server could not find the requested resource", nil, "NotFound")
  end
  local S = api.store()
  local r = t.r
  local verb = method == "GET" and (q.watch == "true" or q.watch == "1") and "watch"
    or method == "GET" and (t.name and "get" or "list") or method == "POST" and not t.name and "create"
    or method == "PUT" and t.name and "update" or method == "PATCH" and t.name and "patch" or method == "DELETE" and t.name and "delete"
  local allowed = false
  for _, v in ipairs(r.verbs) do if v == verb then allowed = true end end
  if not allowed then
    return api.failure(405, fmt("the server does not allow this method on the requested resource"), api.details(r, t.name or ""))
  end
  if verb == "watch" then
    local sel, bad = api.selectors(t, q)
    if not sel then return bad end
    return {status = 200, headers = {["content-type"] = "application/json", ["transfer-encoding"] = "chunked"},
            watch = watcher(S, t, q, headers, sel), timeout = tonumber(q.timeoutSeconds)}
  elseif verb == "get" or verb == "list" then return api.get(S, t, q, headers)
  elseif verb == "create" then return create(S, t, q, req.body, headers)
  elseif verb == "update" then return update(S, t, q, req.body, headers)
  elseif verb == "patch" and r.name == "nodes" then return patch_node(S, t, req.body)
  elseif verb == "patch" then return patch(S, t, q, req.body, headers)
  end
  return delete(S, t, q, req.body)
end

return M

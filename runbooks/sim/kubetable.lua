--- The server-side Table (meta.k8s.io/v1) of the simulated Kubernetes API:
--- what `kubectl get` prints, asked for with
--- `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`. The columns and
--- cells are those of kubernetes/kubernetes `pkg/printers/internalversion/printers.go`
--- (nodes, pods, namespaces, services, configmaps, secrets, leases,
--- servicecidrs); the ages as `k8s.io/apimachinery/pkg/util/duration`'s
--- `HumanDuration` writes them.


local json = require "runbook.json"
local time = require "runbook.time"

local fmt = string.format
local M = {}

--- Seconds since the epoch of an RFC 3339 UTC time ("2026-01-02T03:04:05Z").
function M.epoch(iso)
  local y, mo, d, h, mi, s = tostring(iso):match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)")
  if not y then return nil end
  y, mo = tonumber(y), tonumber(mo)
  -- days from the civil date (proleptic Gregorian), then seconds
  if mo <= 2 then y = y - 1 end
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (mo > 2 and mo - 3 or mo + 9) + 2) // 5 + tonumber(d) - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(s)
end

--- apimachinery pkg/util/duration/duration.go HumanDuration, whole seconds.
function M.human_duration(secs)
  secs = math.floor(secs)
  if secs < -1 then return "<invalid>" elseif secs < 0 then return "0s" elseif secs < 120 then return secs .. "s" end
  local minutes = secs // 60
  if minutes < 10 then
    local s = secs % 60
    return s == 0 and fmt("%dm", minutes) or fmt("%dm%ds", minutes, s)
  elseif minutes < 180 then return fmt("%dm", minutes) end
  local hours = secs // 3600
  if hours < 8 then
    local m = minutes % 60
    return m == 0 and fmt("%dh", hours) or fmt("%dh%dm", hours, m)
  elseif hours < 48 then return fmt("%dh", hours)
  elseif hours < 24 * 8 then
    local h = hours % 24
    return h == 0 and fmt("%dd", hours // 24) or fmt("%dd%dh", hours // 24, h)
  elseif hours < 24 * 365 * 2 then return fmt("%dd", hours // 24)
  elseif hours < 24 * 365 * 8 then
    local dy = (hours // 24) % 365
    return dy == 0 and fmt("%dy", hours // 24 // 365) or fmt("%dy%dd", hours // 24 // 365, dy)
  end
  return fmt("%dy", hours // 24 // 365)
end

local function age(obj)
  local t = M.epoch(obj.metadata and obj.metadata.creationTimestamp)
  return t and M.human_duration(time.now() - t) or "<unknown>"
end

local function count(t)
  local n = 0
  for _ in pairs(t or {}) do n = n + 1 end
  return n
end

local function col(name, priority, format)
  return {name = name, type = name == "Restarts" and "integer" or "string", format = format or "", description = "", priority = priority or 0}
end

local function node_status(o)
  local s = "Unknown"
  for _, c in ipairs(o.status and o.status.conditions or {}) do
    if c.type == "Ready" then s = c.status == "True" and "Ready" or "NotReady" end
  end
  if o.spec and o.spec.unschedulable then s = s .. ",SchedulingDisabled" end
  return s
end

local function node_roles(o)
  local roles = {}
  for k in pairs(o.metadata.labels or {}) do
    local r = k:match("^node%-role%.kubernetes%.io/(.+)$")
    if r then roles[#roles + 1] = r end
  end
  table.sort(roles)
  return #roles > 0 and table.concat(roles, ",") or "<none>"
end

local function address(o, kind)
  for _, a in ipairs(o.status and o.status.addresses or {}) do
    if a.type == kind then return a.address end
  end
  return "<none>"
end

local function pod_ready(o)
  local n, ready = 0, 0
  for _, c in ipairs(o.status and o.status.containerStatuses or {}) do
    n = n + 1
    if c.ready then ready = ready + 1 end
  end
  return fmt("%d/%d", ready, n)
end

local function restarts(o)
  local n = 0
  for _, c in ipairs(o.status and o.status.containerStatuses or {}) do n = n + (c.restartCount or 0) end
  return n
end

local function ports(o)
  local out = {}
  for _, p in ipairs(o.spec and o.spec.ports or {}) do out[#out + 1] = fmt("%d/%s", p.port, p.protocol or "TCP") end
  return #out > 0 and table.concat(out, ",") or "<none>"
end

local function selector(o)
  local out = {}
  for k, v in pairs(o.spec and o.spec.selector or {}) do out[#out + 1] = k .. "=" .. v end
  table.sort(out)
  return #out > 0 and table.concat(out, ",") or "<none>"
end

-- resource -> {columns, cells(obj)}
local PRINTERS = {
  nodes = {{col("Name", 0, "name"), col("Status"), col("Roles"), col("Age"), col("Version"), col("Internal-IP", 1),
            col("External-IP", 1), col("OS-Image", 1), col("Kernel-Version", 1), col("Container-Runtime", 1)},
    function(o)
      local i = o.status.nodeInfo or {}
      return {o.metadata.name, node_status(o), node_roles(o), age(o), i.kubeletVersion or "", address(o, "InternalIP"),
              address(o, "ExternalIP"), i.osImage or "<unknown>", i.kernelVersion or "<unknown>", i.containerRuntimeVersion or "<unknown>"}
    end},
  pods = {{col("Name", 0, "name"), col("Ready"), col("Status"), col("Restarts"), col("Age"), col("IP", 1), col("Node", 1),
           col("Nominated Node", 1), col("Readiness Gates", 1)},
    function(o)
      return {o.metadata.name, pod_ready(o), o.status.phase or "Unknown", restarts(o), age(o), o.status.podIP or "<none>",
              o.spec and o.spec.nodeName or "<none>", "<none>", "<none>"}
    end},
  namespaces = {{col("Name", 0, "name"), col("Status"), col("Age")},
    function(o) return {o.metadata.name, o.status and o.status.phase or "Active", age(o)} end},
  services = {{col("Name", 0, "name"), col("Type"), col("Cluster-IP"), col("External-IP"), col("Port(s)"), col("Age"), col("Selector", 1)},
    function(o)
      return {o.metadata.name, o.spec.type or "ClusterIP", o.spec.clusterIP or "<none>", "<none>", ports(o), age(o), selector(o)}
    end},
  configmaps = {{col("Name", 0, "name"), col("Data"), col("Age")},
    function(o) return {o.metadata.name, count(o.data) + count(o.binaryData), age(o)} end},
  secrets = {{col("Name", 0, "name"), col("Type"), col("Data"), col("Age")},
    function(o) return {o.metadata.name, o.type or "Opaque", count(o.data), age(o)} end},
  leases = {{col("Name", 0, "name"), col("Holder"), col("Age")},
    function(o) return {o.metadata.name, o.spec and o.spec.holderIdentity or "", age(o)} end},
  servicecidrs = {{col("Name", 0, "name"), col("CIDRs"), col("Age")},
    function(o) return {o.metadata.name, table.concat(o.spec and o.spec.cidrs or {}, ","), age(o)} end},
}

--- The object's metadata as a row carries it (includeObject=Metadata, the default).
local function partial(o)
  return {kind = "PartialObjectMetadata", apiVersion = "meta.k8s.io/v1", metadata = o.metadata}
end

--- A Table of `objs` (a list) of `resource`, at resourceVersion `rv`.
---@param include string? "None", "Metadata" (default) or "Object"
function M.table(resource, objs, rv, include)
  local p = PRINTERS[resource]
  local rows = {}
  for i, o in ipairs(objs) do
    local row = {cells = json.array(p[2](o))}
    if include == "Object" then row.object = o elseif include ~= "None" then row.object = partial(o) end
    rows[i] = row
  end
  return {kind = "Table", apiVersion = "meta.k8s.io/v1", metadata = {resourceVersion = rv}, columnDefinitions = p[1],
          rows = json.array(rows)}
end

return M

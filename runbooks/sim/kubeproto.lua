--- Request bodies in Kubernetes' protobuf encoding, for the kinds the
--- simulated API stores (ConfigMap, Secret, Namespace, Lease): kubectl's
--- typed generators (`kubectl create configmap|secret|namespace`, v1.33)
--- send them so. The envelope is k8s.io/apimachinery
--- `pkg/runtime/serializer/protobuf/protobuf.go` (the prefix "k8s\0", then a
--- `runtime.Unknown`: typeMeta = 1 {apiVersion = 1, kind = 2}, raw = 2), the
--- fields those of `pkg/apis/meta/v1/generated.proto` (ObjectMeta) and
--- kubernetes/api `core/v1/generated.proto`, `coordination/v1/generated.proto`
--- (read at eed236ce and 10b39a39b). Decoded to the table the JSON form
--- gives; a field not listed here is skipped.
local ctx = ...

local time = require "runbook.time"

local M = {}
local fmt = string.format

local META = {[1] = {"name", "string"}, [2] = {"generateName", "string"}, [3] = {"namespace", "string"},
              [5] = {"uid", "string"}, [6] = {"resourceVersion", "string"}, [11] = {"labels", "map"},
              [12] = {"annotations", "map"}, [14] = {"finalizers", "strings"}}
local KINDS = {
  ConfigMap = {[1] = {"metadata", META}, [2] = {"data", "map"}, [3] = {"binaryData", "mapbytes"}, [4] = {"immutable", "bool"}},
  Secret = {[1] = {"metadata", META}, [2] = {"data", "mapbytes"}, [3] = {"type", "string"}, [4] = {"stringData", "map"},
            [5] = {"immutable", "bool"}},
  Namespace = {[1] = {"metadata", META}, [2] = {"spec", {[1] = {"finalizers", "strings"}}}},
  Lease = {[1] = {"metadata", META}, [2] = {"spec", {[1] = {"holderIdentity", "string"}, [2] = {"leaseDurationSeconds", "int"},
            [3] = {"acquireTime", "microtime"}, [4] = {"renewTime", "microtime"}, [5] = {"leaseTransitions", "int"},
            [6] = {"strategy", "string"}, [7] = {"preferredHolder", "string"}}}},
}

local function varint(s, pos)
  local v, shift = 0, 0
  while true do
    local b = s:byte(pos)
    if not b then error("truncated varint", 0) end
    v = v | ((b & 0x7f) << shift)
    pos = pos + 1
    if b < 0x80 then return v, pos end
    shift = shift + 7
    if shift > 63 then error("varint too long", 0) end
  end
end

--- The fields of a message: calls each(field number, wire type, value)
--- with a varint's number or a length-delimited field's bytes.
local function fields(s, each)
  local pos = 1
  while pos <= #s do
    local key
    key, pos = varint(s, pos)
    local num, wt = key >> 3, key & 7
    if wt == 0 then
      local v
      v, pos = varint(s, pos)
      each(num, wt, v)
    elseif wt == 2 then
      local len
      len, pos = varint(s, pos)
      if pos + len - 1 > #s then error("truncated field", 0) end
      each(num, wt, s:sub(pos, pos + len - 1))
      pos = pos + len
    elseif wt == 1 then pos = pos + 8
    elseif wt == 5 then pos = pos + 4
    else error(fmt("wire type %d not supported", wt), 0) end
  end
end

local function micro_time(bytes)
  local secs, nanos = 0, 0
  fields(bytes, function(n, _, v) if n == 1 then secs = v elseif n == 2 then nanos = v end end)
  return time.iso(secs):gsub("Z$", fmt(".%06dZ", nanos // 1000))
end

local decode

local function value(kind, wt, v)
  if type(kind) == "table" then return decode(v, kind) end
  if kind == "string" then return v
  elseif kind == "int" then return v
  elseif kind == "bool" then return v ~= 0
  elseif kind == "microtime" then return micro_time(v) end
  local k, x = "", ""            -- a map entry: key = 1, value = 2
  fields(v, function(n, _, e) if n == 1 then k = e elseif n == 2 then x = e end end)
  if kind == "mapbytes" then x = ctx.kubewrite.base64(x) end
  return k, x
end

decode = function(s, schema)
  local out = {}
  fields(s, function(n, wt, v)
    local f = schema[n]
    if not f then return end
    local name, kind = f[1], f[2]
    if kind == "map" or kind == "mapbytes" then
      local k, x = value(kind, wt, v)
      out[name] = out[name] or {}
      out[name][k] = x
    elseif kind == "strings" then
      out[name] = out[name] or {}
      out[name][#out[name] + 1] = v
    elseif v ~= "" or kind ~= "string" then out[name] = value(kind, wt, v) end   -- "" is JSON's omitted field
  end)
  return out
end

--- The object a protobuf body holds, or nil and why.
function M.decode(body)
  if body:sub(1, 4) ~= "k8s\0" then return nil, "not Kubernetes protobuf (no k8s\\0 prefix)" end
  local ok, obj = pcall(function()
    local api_version, kind, raw
    fields(body:sub(5), function(n, _, v)
      if n == 1 then
        fields(v, function(m, _, x) if m == 1 then api_version = x elseif m == 2 then kind = x end end)
      elseif n == 2 then raw = v end
    end)
    local schema = KINDS[kind or ""]
    if not schema or not raw then error(fmt("the simulated API decodes no protobuf %s", tostring(kind)), 0) end
    local o = decode(raw, schema)
    o.apiVersion, o.kind = api_version, kind
    return o
  end)
  if not ok then return nil, tostring(obj) end
  return obj
end

return M

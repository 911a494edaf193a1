--- Talos machine config documents as Talos's encoder writes them with
--- comments disabled (pkg/machinery/config/encoder Encode: with
--- CommentsDisabled it is plain `yaml.Marshal` of each document, gopkg.in/yaml.v3
--- up to v1.11, go.yaml.in/yaml/v4 from v1.12; container.EncodeBytes joins the
--- documents with "---\n"). This is the text machined's generateDiff diffs
--- (configdiff.DiffToString encodes both sides with CommentsDisabled) and what
--- Talos's own stability tests pin (pkg/machinery/config/types/v1alpha1/
--- testdata/stability/v1.N/base-*.yaml).
---
--- `normalize` gives each document the shape the Go encoder would print after
--- decoding it into its structs: keys in struct declaration order (from the
--- per-version schema, runbooks/sim/talos/schema/v1_NN.lua), omitempty fields
--- dropped when empty (yaml.v3 isZero: nil pointer, empty list/map/string, 0,
--- false, a non-pointer struct whose fields are all zero), fields without
--- omitempty kept with their zero value (`certSANs: []`, `service: {}`, `key: ""`),
--- Go maps sorted as yaml.v3 sorts keys. The talos:"omitonlyifnil" tag only
--- counts when comments are on (encoder.toYamlNode); with comments off yaml.v3
--- ignores it, so `extraManifests: []` is dropped, as the stability files show.
--- Keys the schema does not know stay, after the known ones, sorted: Talos
--- would refuse such a document (strict decoding), the world keeps it visible.
local yaml = require "runbook.yaml"
local yamlv3 = require "sim.talos.yamlv3"

local M = {}

local schemas = {}

--- The schema of Talos minor version `version` ("v1.11", "v1.11.3", "1.11"),
--- loaded once and cached.
function M.schema(version)
  local minor = tostring(version):match("^v?1%.(%d+)")
  if not minor then error("talos encode: not a Talos version: " .. tostring(version), 2) end
  local s = schemas[minor]
  if s == nil then
    local ok, mod = pcall(require, "sim.talos.schema.v1_" .. minor)
    if not ok then error("talos encode: no schema for Talos v1." .. minor .. " (supported: v1.8 .. v1.13)", 2) end
    s = mod
    schemas[minor] = s
  end
  return s
end

local function is_null(v) return v == nil or v == yaml.null end

local function nkeys(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

local function is_digit(c) return c and c:match("%d") ~= nil end
local function is_letter(c) return c and c:match("%a") ~= nil end

-- yaml.v3's keyList.Less for two string keys (encode.go): letters compare
-- as runes, runs of digits compare as numbers.
local function digits_at(s, i, n)
  local j = i
  while j <= #s and is_digit(s:sub(j, j)) do
    n = n * 10 + tonumber(s:sub(j, j))
    j = j + 1
  end
  return n, j
end

-- A run of digits that continues a non-zero one counts from 1 (yaml.v3).
local function lead(a, b, i)
  if a:sub(i, i) ~= "0" and b:sub(i, i) ~= "0" then return 0 end
  local j = i - 1
  while j >= 1 and is_digit(a:sub(j, j)) do
    if a:sub(j, j) ~= "0" then return 1 end
    j = j - 1
  end
  return 0
end

local function key_less(a, b)
  local digits = false
  for i = 1, math.min(#a, #b) do
    local ca, cb = a:sub(i, i), b:sub(i, i)
    if ca ~= cb then
      local al, bl = is_letter(ca), is_letter(cb)
      if al and bl then return ca < cb end
      if al or bl then
        if digits then return al end
        return bl
      end
      local n0 = lead(a, b, i)
      local an, ai = digits_at(a, i, n0)
      local bn, bi = digits_at(b, i, n0)
      if an ~= bn then return an < bn end
      if ai ~= bi then return ai < bi end
      return ca < cb
    end
    digits = is_digit(ca)
  end
  return #a < #b
end
--- key_less(a, b): whether map key a comes before b in yaml.v3's order.
M.key_less = key_less

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(x, y)
    if type(x) ~= type(y) then return type(x) == "number" end
    if type(x) == "string" then return key_less(x, y) end
    return x < y
  end)
  return keys
end
--- sorted_keys(t): the keys of t in yaml.v3's map order.
M.sorted_keys = sorted_keys

local normalize_value

-- A Go map or an `any`: keys sorted as yaml.v3 does.
local function normalize_map(s, v, elem)
  local out, keys = {}, sorted_keys(v)
  for _, k in ipairs(keys) do out[k] = normalize_value(s, v[k], elem) end
  if #keys == 0 then return yaml.map({}) end
  return yaml.order(out, keys)
end

local function normalize_list(s, v, elem)
  local out = yaml.array({})
  for i, x in ipairs(v) do out[i] = normalize_value(s, x, elem) end
  return out
end

local function is_list(v)
  local mt = getmetatable(v)
  if mt and mt.__runbook_shape == "seq" then return true end
  return #v > 0 and nkeys(v) == #v
end

-- A value of unknown or `any` type: maps sorted, lists kept.
local function normalize_any(s, v)
  if type(v) ~= "table" then return v end
  if is_list(v) then return normalize_list(s, v, "any") end
  return normalize_map(s, v, "any")
end

local normalize_struct

-- yaml.v3 isZero: nil, "", 0, false, an empty list or map, a struct
-- whose fields are all zero. A non-nil pointer is never zero; below the
-- top, a normalized struct is checked field by field (an empty struct
-- reached through a pointer then counts as zero: unconfirmed corner).
local function deep_zero(v)
  if is_null(v) then return true end
  local tv = type(v)
  if tv == "string" then return v == "" end
  if tv == "number" then return v == 0 end
  if tv == "boolean" then return v == false end
  if tv == "table" then
    for _, x in pairs(v) do
      if not deep_zero(x) then return false end
    end
    return true
  end
  return false
end

local function is_zero(v, gotype, kind)
  if gotype:sub(1, 1) == "*" then return is_null(v) end
  if type(v) == "table" and (kind == "list" or kind == "map") then return next(v) == nil end
  return deep_zero(v)
end

-- The Go zero value of a field left out of the document, as yaml.v3 prints it.
local function zero_of(s, f)
  local t = f.type
  if t:sub(1, 1) == "*" then return yaml.null end
  if f.kind == "list" then return yaml.array({}) end
  if f.kind == "map" then return yaml.map({}) end
  local def = s.types[f.kind]
  if def and def.kind == "struct" and not def.marshal then return normalize_struct(s, {}, f.kind) end
  if def and def.kind == "named" then
    if def.ofkind == "list" then return yaml.array({}) end
    if def.ofkind == "map" then return yaml.map({}) end
  end
  if t == "string" or (def and def.of == "string") then return "" end
  if t == "bool" then return false end
  if t:match("^u?int%d*$") or t:match("^float") then return 0 end
  return yaml.null
end

function normalize_value(s, v, kind, elem)
  if is_null(v) or type(v) ~= "table" then return v end
  if kind == "list" then return normalize_list(s, v, elem) end
  if kind == "map" then return normalize_map(s, v, elem) end
  local def = s.types[kind]
  if def == nil or kind == "any" then return normalize_any(s, v) end
  if def.kind == "named" then
    if def.ofkind == "list" then return normalize_list(s, v, def.elem) end
    if def.ofkind == "map" then return normalize_map(s, v, def.elem) end
    return normalize_any(s, v)
  end
  if is_list(v) and def.kind == "struct" and nkeys(def.fields) == 0 then return normalize_any(s, v) end
  return normalize_struct(s, v, kind)
end

-- Fields of struct `kind` with inline ones flattened, in declaration order.
local flat_cache = setmetatable({}, {__mode = "k"})
local function flat_fields(s, kind)
  local per = flat_cache[s]
  if not per then per = {} flat_cache[s] = per end
  if per[kind] then return per[kind] end
  local out = {}
  for _, f in ipairs(s.types[kind].fields) do
    if f.inline and s.types[f.kind] and s.types[f.kind].kind == "struct" and f.kind ~= "v1alpha1.Endpoint" then
      for _, g in ipairs(flat_fields(s, f.kind)) do out[#out + 1] = g end
    elseif f.yaml and not f.skip then
      out[#out + 1] = f
    end
  end
  per[kind] = out
  return out
end

function normalize_struct(s, v, kind)
  local out, keys, known = {}, {}, {}
  for _, f in ipairs(flat_fields(s, kind)) do
    known[f.yaml] = true
    local x = v[f.yaml]
    if x ~= nil then x = normalize_value(s, x, f.kind, f.elem) end
    if not (f.omitempty and is_zero(x, f.type, f.kind)) then
      if x == nil then x = zero_of(s, f) end
      out[f.yaml] = x
      keys[#keys + 1] = f.yaml
    end
  end
  -- keys of an inline map (v1alpha1.Unstructured's Object) or unknown ones:
  -- after the fields, sorted as yaml.v3 sorts a map
  local rest = {}
  for k, x in pairs(v) do
    if not known[k] then rest[k] = x end
  end
  for _, k in ipairs(sorted_keys(rest)) do
    out[k] = normalize_any(s, v[k])
    keys[#keys + 1] = k
  end
  if #keys == 0 then return yaml.map({}) end
  return yaml.order(out, keys)
end

--- The Go struct a document decodes into: "v1alpha1.Config" for the
--- v1alpha1 document, else by its kind and apiVersion; nil if unknown.
function M.document_type(doc, version)
  local s = M.schema(version)
  if type(doc) ~= "table" then return nil end
  if doc.kind == nil and doc.version == "v1alpha1" then return s.documents.v1alpha1 end
  return s.documents[tostring(doc.kind) .. "/" .. tostring(doc.apiVersion)]
end

--- Each document in Go struct order for Talos `version`, as the encoder
--- would print it after decoding (see the module comment). Documents of an
--- unknown kind keep their own order. Returns a new list; `docs` is not changed.
function M.normalize(docs, version)
  local s = M.schema(version)
  local out = {}
  for i, doc in ipairs(docs) do
    local kind = M.document_type(doc, version)
    if kind then out[i] = normalize_struct(s, doc, kind) else out[i] = doc end
  end
  return out
end

--- The text of `docs` (normalized first) as Talos `version` encodes them
--- with comments disabled: each document as Go's yaml.Marshal writes it
--- (gopkg.in/yaml.v3 up to v1.11, go.yaml.in/yaml/v4 from v1.12; the emitter
--- is sim/talos/yamlv3.lua), joined by "---\n" (container.EncodeBytes).
--- Byte for byte Talos's text: tests/lua/test_talos_generate.lua compares it
--- with Talos's stability files. opts: {normalized = true} to skip normalize.
function M.encode(docs, version, opts)
  opts = opts or {}
  local norm = opts.normalized and docs or M.normalize(docs, version)
  local minor = tonumber(tostring(version):match("^v?1%.(%d+)"))
  return yamlv3.marshal_all(norm, {v4 = minor ~= nil and minor >= 12})
end

--- Whether M.encode's text is byte for byte Talos's: it is, since it has
--- its own emitter (kept for callers that asked).
function M.exact() return true end

return M

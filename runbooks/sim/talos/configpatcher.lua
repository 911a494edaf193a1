--- Talos machine-config patches as talosctl (`patch machineconfig`,
--- `apply-config --config-patch`) and talhelper apply them: siderolabs/talos
--- pkg/machinery/config/configpatcher (load.go LoadPatch/LoadPatches,
--- apply.go, strategic.go, json6902.go), pkg/machinery/config/merge/merge.go,
--- pkg/machinery/config/configloader/internal/decoder (decoder.go, delete.go,
--- selector.go) and the types' own Merge methods, read at v1.8.0, v1.10.0,
--- v1.11.0, v1.12.0 and v1.13.0. docs/simulation.md "Patches and the dry-run diff"
--- lists the rules; the differences between versions are marked `v >= N`
--- below (N the minor version).
---
--- Documents are decoded YAML tables (runbook.yaml decode_all); key order is
--- kept where it exists and new keys are appended, but the order is not
--- Talos's (it re-encodes in struct order: the encoder's job).
local yaml = require "runbook.yaml"
local json = require "runbook.json"
local jp = require "sim.talos.jsonpatch"
local td = require "sim.talos.textdiff"

local M = {}

local null, copy, is_list, is_map, equal = yaml.null, jp.copy, jp.is_list, jp.is_map, jp.equal
local fmt = string.format
local CLEAR = {}            -- a merge result that removes the key (ByteSize.Merge with a zero right side)

--- The minor version of "v1.11.0", "1.11", 11 (default 11).
local function minor(version)
  if type(version) == "number" then return version end
  local m = type(version) == "string" and version:match("^v?1%.(%d+)")
  return m and tonumber(m) or 11
end
M.minor = minor

local function ordered_keys(t)
  local keys, seen = {}, {}
  local mt = getmetatable(t)
  if mt then
    for _, k in ipairs(mt) do
      if t[k] ~= nil and not seen[k] then keys[#keys + 1] = k; seen[k] = true end
    end
  end
  local rest = {}
  for k in pairs(t) do if not seen[k] then rest[#rest + 1] = k end end
  table.sort(rest, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(rest) do keys[#keys + 1] = k end
  return keys
end
M.ordered_keys = ordered_keys

--- Sets t[k] = v keeping t's key order (a new key goes last).
local function set_key(t, k, v)
  local mt = getmetatable(t)
  if t[k] == nil and v ~= nil and mt and mt[1] ~= nil then
    local keys = ordered_keys(t)
    keys[#keys + 1] = k
    t[k] = v
    yaml.order(t, keys)
    return
  end
  t[k] = v
end

-- {========================================================================
-- Types: the gen helper's schema (runbooks/sim/talos/schema/v1_NN.lua), or a
-- small built-in one holding only the fields whose merge is special.
-- =========================================================================

local function fallback_schema(v)
  local args = v >= 13 and {kind = "v1alpha1.Args", type = "Args"} or {kind = "map", elem = "string", type = "map"}
  local function f(y, kind, extra)
    local t = {yaml = y, kind = kind, type = "*" .. kind}
    for k, x in pairs(extra or {}) do t[k] = x end
    return t
  end
  local function xargs() return {yaml = "extraArgs", kind = args.kind, elem = args.elem, type = args.type} end
  local S = {partial = true, documents = {
    v1alpha1 = "v1alpha1.Config",
    ["ExtensionServiceConfig/v1alpha1"] = "extensions.ServiceConfigV1Alpha1",
    ["NetworkRuleConfig/v1alpha1"] = "network.RuleConfigV1Alpha1",
  }, types = {
    ["v1alpha1.Config"] = {kind = "struct", fields = {f("machine", "v1alpha1.MachineConfig"),
                                                      f("cluster", "v1alpha1.ClusterConfig")}},
    ["v1alpha1.MachineConfig"] = {kind = "struct", fields = {f("network", "v1alpha1.NetworkConfig"),
      f("kubelet", "v1alpha1.KubeletConfig"),
      {yaml = "nodeLabels", kind = "map", elem = "string", type = "map"},
      {yaml = "nodeAnnotations", kind = "map", elem = "string", type = "map"}}},
    ["v1alpha1.KubeletConfig"] = {kind = "struct", fields = {xargs()}},
    ["v1alpha1.NetworkConfig"] = {kind = "struct", fields = {
      {yaml = "interfaces", kind = "v1alpha1.NetworkDeviceList", type = "NetworkDeviceList"}}},
    ["v1alpha1.NetworkDeviceList"] = {kind = "named", ofkind = "list", elem = "v1alpha1.Device"},
    ["v1alpha1.Device"] = {kind = "struct", fields = {{yaml = "vlans", kind = "v1alpha1.VlanList", type = "VlanList"}}},
    ["v1alpha1.VlanList"] = {kind = "named", ofkind = "list", elem = "v1alpha1.Vlan"},
    ["v1alpha1.ClusterConfig"] = {kind = "struct", fields = {f("network", "v1alpha1.ClusterNetworkConfig"),
      f("apiServer", "v1alpha1.APIServerConfig"), f("controllerManager", "v1alpha1.ControllerManagerConfig"),
      f("scheduler", "v1alpha1.SchedulerConfig"), f("proxy", "v1alpha1.ProxyConfig"), f("etcd", "v1alpha1.EtcdConfig")}},
    ["v1alpha1.ClusterNetworkConfig"] = {kind = "struct", fields = {
      {yaml = "podSubnets", kind = "list", elem = "string", type = "[]string", replace = true},
      {yaml = "serviceSubnets", kind = "list", elem = "string", type = "[]string", replace = true}}},
    ["v1alpha1.APIServerConfig"] = {kind = "struct", fields = {xargs(),
      {yaml = "auditPolicy", kind = "v1alpha1.Unstructured", type = "Unstructured", replace = true},
      {yaml = "admissionControl", kind = "v1alpha1.AdmissionPluginConfigList", type = "AdmissionPluginConfigList"}}},
    ["v1alpha1.AdmissionPluginConfigList"] = {kind = "named", ofkind = "list", elem = "v1alpha1.AdmissionPluginConfig"},
    ["v1alpha1.Unstructured"] = {kind = "struct", fields = {{kind = "map", elem = "any", type = "map", inline = true}}},
    ["v1alpha1.ControllerManagerConfig"] = {kind = "struct", fields = {xargs()}},
    ["v1alpha1.SchedulerConfig"] = {kind = "struct", fields = {xargs()}},
    ["v1alpha1.ProxyConfig"] = {kind = "struct", fields = {xargs()}},
    ["v1alpha1.EtcdConfig"] = {kind = "struct", fields = {xargs()}},
    ["v1alpha1.Args"] = {kind = "named", ofkind = "map", elem = "v1alpha1.ArgValue"},
    ["extensions.ServiceConfigV1Alpha1"] = {kind = "struct", fields = {
      {yaml = "configFiles", kind = "extensions.ConfigFileList", type = "ConfigFileList"},
      {yaml = "environment", kind = "list", elem = "string", type = "[]string"}}},
    ["extensions.ConfigFileList"] = {kind = "named", ofkind = "list", elem = "extensions.ConfigFile"},
    ["network.RuleConfigV1Alpha1"] = {kind = "struct", fields = {
      {yaml = "portSelector", kind = "network.RulePortSelector", type = "RulePortSelector"},
      {yaml = "ingress", kind = "network.IngressConfig", type = "IngressConfig", replace = true}}},
    ["network.RulePortSelector"] = {kind = "struct", fields = {
      {yaml = "ports", kind = "network.PortRanges", type = "PortRanges", replace = true}}},
  }}
  return S
end

local schema_cache = {}

--- The schema for minor version v: opts.schema, else the gen helper's
--- sim.talos.schema.v1_NN when present, else the built-in partial one.
local function schema_for(opts, v)
  if type(opts.schema) == "table" then return opts.schema end
  if schema_cache[v] == nil then
    local ok, s = pcall(require, "sim.talos.schema.v1_" .. v)
    schema_cache[v] = ok and type(s) == "table" and s or fallback_schema(v)
  end
  return schema_cache[v]
end
M.schema_for = function(version, opts) return schema_for(opts or {}, minor(version)) end

--- A type descriptor: {kind = "struct"|"list"|"map"|"any"|"scalar", name =, t =, elem =}.
local function tdesc(S, name)
  if name == nil or name == "any" then return {kind = "any"} end
  local t = S.types[name]
  if not t and S.partial and name:find(".", 1, true) then return nil end   -- a type the built-in schema leaves out
  if not t then return {kind = "scalar", name = name} end
  if t.kind == "struct" then
    if t.marshal then return {kind = "scalar", name = name} end
    return {kind = "struct", name = name, t = t}
  end
  if t.ofkind == "list" or t.ofkind == "map" then return {kind = t.ofkind, name = name, elem = t.elem} end
  return {kind = "scalar", name = name}
end

local function field_desc(S, f)
  local d
  if f.kind == "list" or f.kind == "map" then d = {kind = f.kind, elem = f.elem} else d = tdesc(S, f.kind) end
  return d, {replace = f.replace, ptr = type(f.type) == "string" and f.type:sub(1, 1) == "*"}
end

-- The struct field named key (yaml name), looking into inline structs; an
-- inline map (v1alpha1.Unstructured) holds any key when inline_maps is set.
local function find_field(S, t, key, inline_maps)
  for _, f in ipairs(t.fields or {}) do
    if f.yaml == key then return f end
    if f.inline then
      if f.kind == "map" then
        if inline_maps then return {kind = "any", type = "any", in_map = true} end
      else
        local it = S.types[f.kind]
        local found = it and it.kind == "struct" and find_field(S, it, key, inline_maps)
        if found then return found end
      end
    end
  end
  return nil
end

--- The descriptor and field facts of key inside d (nil d: unknown).
local function child(S, d, key, for_delete, v)
  if not d then return nil, {} end
  if d.kind == "struct" then
    local f = find_field(S, d.t, key, not for_delete or v >= 13)
    if not f then return nil, {unknown = not S.partial} end
    if f.in_map then return {kind = "any"}, {in_map = true} end
    return field_desc(S, f)
  elseif d.kind == "map" then
    return tdesc(S, d.elem), {in_map = true}
  elseif d.kind == "any" then
    return {kind = "any"}, {in_map = true}
  end
  return nil, {}
end

local function elem_of(S, d)
  if d and (d.kind == "list" or d.kind == "map") then return tdesc(S, d.elem) end
  if d and d.kind == "any" then return {kind = "any"} end
  return nil
end

-- }========================================================================

-- {========================================================================
-- Merge (pkg/machinery/config/merge/merge.go and the Merge methods)
-- =========================================================================

local merge_value

local function merge_map_into(S, v, lm, rm, d)
  for _, k in ipairs(ordered_keys(rm)) do
    local cd, fi = child(S, d, k, false, v)
    local nv = merge_value(S, v, lm[k], rm[k], cd, fi)
    if nv == CLEAR then lm[k] = nil elseif nv ~= nil then set_key(lm, k, nv) end
  end
  -- ByteSize.Merge runs for every field of a merged struct, so a size the
  -- patch leaves out is cleared (block/byte_size.go, v >= 10)
  if d and d.kind == "struct" then
    for _, f in ipairs(d.t.fields or {}) do
      if f.yaml and rm[f.yaml] == nil and lm[f.yaml] ~= nil and not (type(f.type) == "string" and f.type:sub(1, 1) == "*")
         and ((f.kind == "block.ByteSize" and v >= 10) or (f.kind == "block.PercentageSize" and v >= 13)) then
        lm[f.yaml] = nil
      end
    end
  end
  return lm
end

-- A list whose items are matched by match(existing, item): matched ones are
-- merged (or replaced when replace_item), others appended.
local function keyed_list(match, replace_item)
  return function(S, v, lv, rv, d)
    if not is_list(rv) or #rv == 0 then return lv end
    if not is_list(lv) then lv = yaml.array({}) end
    local ed = elem_of(S, d)
    for _, item in ipairs(rv) do
      local at
      for i, ex in ipairs(lv) do if is_map(ex) and is_map(item) and match(ex, item) then at = i; break end end
      if not at then lv[#lv + 1] = copy(item)
      elseif replace_item then lv[at] = copy(item)
      else merge_value(S, v, lv[at], item, ed, {}) end
    end
    return lv
  end
end

local function same_field(name, zero)
  return function(ex, item)
    local a, b = ex[name], item[name]
    if a == nil or a == null then a = zero end
    if b == nil or b == null then b = zero end
    return a == b
  end
end

-- NetworkDeviceList.mergeDevice: by `interface`, else by a deviceSelector
-- equal field by field (Go compares the struct; its `physical` *bool by
-- pointer, so two selectors setting it never match: not modelled).
local function same_device(ex, item)
  if type(item.interface) == "string" and item.interface ~= "" then return ex.interface == item.interface end
  if is_map(item.deviceSelector) then return is_map(ex.deviceSelector) and equal(ex.deviceSelector, item.deviceSelector) end
  return false
end

local function args_merge(_, _, lv, rv)
  if not is_map(rv) or next(rv) == nil then return lv end     -- Args.Merge: maps.Copy, no recursion
  if not is_map(lv) then lv = yaml.map({}) end
  for _, k in ipairs(ordered_keys(rv)) do set_key(lv, k, copy(rv[k])) end
  return lv
end

local function size_merge(_, _, _, rv)
  if rv == nil or rv == null then return CLEAR end
  return copy(rv)
end

-- type name -> {since = minor, fn}; sources: v1alpha1_types.go, extensions/service_config.go,
-- block/byte_size.go, block/percentage_size.go, security/image_verification.go
local MERGERS = {
  ["v1alpha1.NetworkDeviceList"] = {since = 0, fn = keyed_list(same_device)},
  ["v1alpha1.VlanList"] = {since = 0, fn = keyed_list(same_field("vlanId", 0))},
  ["v1alpha1.AdmissionPluginConfigList"] = {since = 0, fn = keyed_list(same_field("name", ""))},
  ["extensions.ConfigFileList"] = {since = 0, fn = keyed_list(same_field("mountPath", ""))},
  ["block.ByteSize"] = {since = 10, fn = size_merge},
  ["block.PercentageSize"] = {since = 13, fn = size_merge},
  ["v1alpha1.Args"] = {since = 13, fn = args_merge},
  ["security.ImageVerificationRules"] = {since = 13, fn = keyed_list(same_field("image", ""), true)},
}

local function is_zero_scalar(x)
  return x == "" or (type(x) == "number" and x == 0)
end

merge_value = function(S, v, lv, rv, d, fi)
  fi = fi or {}
  local m = d and d.name and MERGERS[d.name]
  if m and v >= m.since then return m.fn(S, v, lv, rv, d) end
  if rv == nil or rv == null then return lv end                     -- nil pointer, slice, map: skipped
  if fi.in_map and (lv == nil or lv == null) then return copy(rv) end  -- a new map key is set, zero or not
  if is_map(rv) then
    if not is_map(lv) then return copy(rv) end
    if fi.replace then return next(rv) == nil and lv or copy(rv) end  -- merge:"replace" struct, unless zero
    return merge_map_into(S, v, lv, rv, d)
  end
  if is_list(rv) then
    if fi.replace or not is_list(lv) then return copy(rv) end         -- merge:"replace" (an empty list too)
    for _, x in ipairs(rv) do lv[#lv + 1] = copy(x) end                -- slices append
    return lv
  end
  if type(rv) == "boolean" then return rv end                          -- "boolean false is always merged"
  if is_zero_scalar(rv) and fi.ptr and (lv == nil or lv == null) then return rv end  -- a nil pointer takes the right one
  if is_zero_scalar(rv) and not (fi.ptr and v >= 12) then return lv end -- zero values skipped (v1.12: not through a pointer)
  return rv
end

-- }========================================================================

-- {========================================================================
-- Loading (load.go LoadPatch; configloader with WithAllowPatchDelete)
-- =========================================================================

local function join(path) return table.concat(path, ".") end

local function push(path, x)
  local p = {}
  for i, s in ipairs(path) do p[i] = s end
  p[#p + 1] = x
  return p
end

local function scalar_text(x)
  if type(x) == "string" then return x end
  if type(x) == "number" or type(x) == "boolean" then return tostring(x) end
  return ""
end

-- makeSelector: the document's apiVersion/kind/name; errors as delete.go words them.
local function make_selector(path, root, key, value)
  local required = #path == 0
  local api, kind = scalar_text(root.apiVersion), scalar_text(root.kind)
  if required and root.apiVersion == nil then error({msg = "missing apiVersion in document for which $patch: delete is used"}) end
  if required and root.kind == nil then error({msg = "missing kind in document for which $patch: delete is used"}) end
  if kind == "" and api == "" then kind = "v1alpha1"
  elseif kind == "" or api == "" then error({msg = "kind and apiVersion must be both set for path " .. join(path)}) end
  local name = scalar_text(root.name)
  return {selector = true, path = path, api_version = api, kind = kind, key = key, value = value,
          name = name ~= "" and name or nil}
end

local function sequence_selector(path, root, node)
  for _, k in ipairs(ordered_keys(node)) do
    if not (k == "$patch" and node[k] == "delete") then
      return make_selector(path, root, tostring(k), scalar_text(node[k]))
    end
  end
  error({msg = "no key:val found in sequence node for path " .. join(path)})
end

local process

local function process_map(node, parent_kind, path, yield)
  for _, k in ipairs(ordered_keys(node)) do
    local val = node[k]
    if k == "$patch" and val == "delete" then
      if parent_kind ~= "seq" then
        for _, p in ipairs(path) do
          if p:sub(1, 1) == "[" then error({msg = "cannot delete an inner key in '" .. join(path) .. "'"}) end
        end
      end
      yield(path, parent_kind, node)
      return true
    end
    if process(val, "map", push(path, tostring(k)), yield) then
      node[k] = nil
      if next(node) == nil then return true end
    end
  end
  return false
end

-- processNode: true when node is to be removed from its parent.
process = function(node, parent_kind, path, yield)
  if is_map(node) then return process_map(node, parent_kind, path, yield) end
  if is_list(node) then
    local i = 1
    while i <= #node do
      if process(node[i], "seq", push(path, "[" .. (i - 1) .. "]"), yield) then
        table.remove(node, i)
        if #node == 0 then return true end
      else
        i = i + 1
      end
    end
  end
  return false
end

-- isEmptyDoc: only version/kind/name scalars left (apiVersion does not count).
local function empty_doc(doc)
  if not is_map(doc) then return false end
  for k, x in pairs(doc) do
    if type(x) == "table" or (k ~= "version" and k ~= "kind" and k ~= "name") then return false end
  end
  return true
end

-- AppendDeletesTo for one document: its selectors (in the order met) and
-- whether the document itself is left.
local function take_deletes(doc)
  local sels = {}
  local function yield(path, parent_kind, node)
    if parent_kind == "seq" then sels[#sels + 1] = sequence_selector(path, doc, node)
    else sels[#sels + 1] = make_selector(path, doc, "", "") end
  end
  local ok, res = pcall(function()
    if process(doc, "doc", {}, yield) then return false end
    return not empty_doc(doc)
  end)
  if not ok then
    if type(res) == "table" and res.msg then return nil, nil, res.msg end
    error(res, 0)
  end
  return sels, res
end

local DEPRECATED_V1 = {machine = true, cluster = true, debug = true, persist = true}

-- decode(): which document type; the keys are read in order, the last one wins.
local function doc_type(doc)
  local version, kind = "", ""
  for _, k in ipairs(ordered_keys(doc)) do
    if k == "kind" then kind = scalar_text(doc[k])
    elseif k == "apiVersion" then version = scalar_text(doc[k])
    elseif DEPRECATED_V1[k] then version = "v1alpha1" end
  end
  return version, kind
end

--- documentID of strategic.go: apiVersion/kind[/name]; the v1alpha1 config is "/v1alpha1".
local function doc_id(doc)
  local version, kind = doc_type(doc)
  if kind == "" and version == "v1alpha1" then return "/v1alpha1" end
  local id = scalar_text(doc.apiVersion) .. "/" .. kind
  local name = scalar_text(doc.name)
  if doc.name ~= nil then id = id .. "/" .. name end
  return id
end
M.doc_id = doc_id

local function selector_id(sel)
  return sel.api_version .. "/" .. sel.kind .. (sel.name and ("/" .. sel.name) or "")
end

-- The first line of each document of text, and of its content (for v1.13's messages).
local function doc_lines(text)
  local starts, n, pending = {}, 0, nil
  for line in (text .. "\n"):gmatch("(.-)\r?\n") do
    n = n + 1
    if line:match("^%-%-%-") then pending = n
    elseif not line:match("^%s*#") and line:match("%S") and not line:match("^%.%.%.") then
      if pending ~= false then starts[#starts + 1] = {doc = pending or n, content = n}; pending = false end
    end
    if line:match("^%-%-%-") then pending = n end
  end
  return starts
end

local function type_name(S, version, kind)
  if kind == "" and version == "v1alpha1" then return S.documents.v1alpha1 end
  return S.documents[kind .. "/" .. version]
end

-- Strict decoding (KnownFields): the unknown keys of a document, as yaml.v3 lists them.
local function unknown_fields(S, d, node, out)
  if not d or not is_map(node) then
    if d and d.kind == "list" and is_list(node) then
      for _, x in ipairs(node) do unknown_fields(S, elem_of(S, d), x, out) end
    end
    return out
  end
  if d.kind ~= "struct" then return out end
  for _, k in ipairs(ordered_keys(node)) do
    local f = find_field(S, d.t, k, true)
    if not f then out[#out + 1] = {key = tostring(k), type = d.name}
    else unknown_fields(S, select(1, field_desc(S, f)), node[k], out) end
  end
  return out
end

-- With the built-in partial schema only `$patch` keys other than deletes are
-- refused (strict decoding knows no such field); the type is named where known.
local function stray_patch_keys(S, d, node, out)
  if is_list(node) then
    for _, x in ipairs(node) do stray_patch_keys(S, elem_of(S, d), x, out) end
  elseif is_map(node) then
    for _, k in ipairs(ordered_keys(node)) do
      if k == "$patch" then out[#out + 1] = {key = k, type = d and d.name or "(a type the built-in schema lacks)"}
      else stray_patch_keys(S, (child(S, d, k, false, 99)), node[k], out) end
    end
  end
  return out
end

local function key_line(text, from, key)
  local n = 0
  for line in (text .. "\n"):gmatch("(.-)\r?\n") do
    n = n + 1
    if n >= from then
      local k = line:match("^%s*%-?%s*([^:#%s][^:]-)%s*:")
      if k and (k == key or k == '"' .. key .. '"' or k == "'" .. key .. "'") then return n end
    end
  end
  return from
end

local function decode_doc(S, v, doc, text, lines)
  local version, kind = doc_type(doc)
  local err
  if kind == "" and version ~= "v1alpha1" then err = "missing kind"
  elseif v >= 13 and kind ~= "" and version == "" then err = "missing apiVersion"
  elseif not S.partial and not type_name(S, version, kind) then
    err = fmt("%q %q: not registered", kind == "" and "v1alpha1" or kind, version)
  end
  if not err then
    local tn = type_name(S, version, kind)
    local bad = S.partial and stray_patch_keys(S, tn and tdesc(S, tn), doc, {}) or unknown_fields(S, tdesc(S, tn), doc, {})
    if #bad > 0 then
      local parts = {}
      for _, b in ipairs(bad) do
        parts[#parts + 1] = fmt("  line %d: field %s not found in type %s", key_line(text, lines.content, b.key), b.key, b.type)
      end
      err = fmt("error decoding %s to *%s: yaml: unmarshal errors:\n%s", kind, tn or "?", table.concat(parts, "\n"))
    end
  end
  if err and v >= 13 then
    err = fmt("error decoding document %s/%s/%s (line %d): %s", scalar_text(doc.apiVersion),
              kind ~= "" and kind or "v1alpha1", scalar_text(doc.name), lines.content, err)
  end
  return err
end

local function bad_document(v, lines)
  if v >= 13 then return fmt("expected a YAML document at line %d", lines.content) end
  return "recovered: expected a mapping node"
end

-- One document of a strategic patch: its selectors then what is left of it.
-- What decoding itself changes: ClusterInlineManifests.UnmarshalYAML trims
-- "\t\n\v\f\r" (not spaces) off the front of each manifest's contents.
local function decode_hooks(doc)
  local c = is_map(doc) and doc.cluster
  local list = is_map(c) and c.inlineManifests
  if not is_list(list) then return end
  for _, m in ipairs(list) do
    if is_map(m) and type(m.contents) == "string" then m.contents = m.contents:gsub("^[\t\n\v\f\r]+", "") end
  end
end
M.decode_hooks = decode_hooks

local function load_doc(S, v, doc, text, lines, items, known)
  if doc == null and v >= 13 then return nil end
  if not is_map(doc) then return bad_document(v, lines) end
  local sels, keep, derr = take_deletes(doc)
  if derr then
    return v >= 13 and fmt("error processing patch delete statements at line %d: %s", lines.doc, derr) or derr
  end
  for _, s in ipairs(sels) do items[#items + 1] = s end
  if not keep then return nil end
  local _, kind = doc_type(doc)
  local id = fmt("%s/%s/%s", scalar_text(doc.apiVersion), kind ~= "" and kind or "v1alpha1", scalar_text(doc.name))
  if known[id] then
    return fmt("duplicate document %s is not allowed", id) .. (v >= 13 and fmt(" (line %d)", lines.content) or "")
  end
  known[id] = true
  local err = decode_doc(S, v, doc, text, lines)
  if err then return err end
  decode_hooks(doc)
  items[#items + 1] = {doc = doc}
  return nil
end

local function load_strategic(S, v, text, name)
  local ok, docs = pcall(yaml.decode_all, text, {name = name})
  if not ok then return nil, "decode error: " .. tostring(docs), nil end
  local items, known, lines = {}, {}, doc_lines(text)
  for i, doc in ipairs(docs) do
    local err = load_doc(S, v, doc, text, lines[i] or {doc = 1, content = 1}, items, known)
    if err then return nil, err, docs end
  end
  if #items == 0 then return nil, "config not found", docs end
  return {type = "strategic", items = items}, nil, docs
end

local function json_ops(list)
  if not is_list(list) and not (type(list) == "table" and next(list) == nil) then return nil end
  for _, op in ipairs(list) do if not is_map(op) then return nil end end
  return list
end

--- Loads one patch as configpatcher.LoadPatch does: a strategic merge patch
--- when the configloader takes it (with `$patch: delete`), else an RFC 6902
--- patch written as JSON, else as a YAML list; the error is the JSON one when
--- the text starts with "[", the strategic one otherwise.
--- An empty text is an empty JSON patch (yaml.Unmarshal of nothing succeeds).
---@param text string
---@param name string|nil file name for messages
---@param opts table|nil {version = "v1.11.0", schema = table}
---@return table|nil patch {type = "strategic", items} or {type = "json6902", ops}
---@return string|nil err
function M.load(text, name, opts)
  opts = opts or {}
  local v = minor(opts.version)
  local S = schema_for(opts, v)
  local p, serr, docs = load_strategic(S, v, text, name or "patch")
  if p then return p end
  local okj, js = pcall(json.decode, text, {name = name})
  if okj and json_ops(js) then return {type = "json6902", ops = js} end
  local first = docs and docs[1]
  if docs and (#docs == 0 or first == null) then return {type = "json6902", ops = {}} end
  if docs and json_ops(first) then return {type = "json6902", ops = first} end
  if text:match("^%s*%[") then
    return nil, okj and "json: cannot unmarshal into Go value of type jsonpatch.Patch" or (tostring(js):gsub("^[^:]*:%d+:%d+: ", ""))
  end
  return nil, serr
end

--- LoadPatches: several patch texts; consecutive JSON patches become one.
---@param list table list of {text = , name = } (or strings)
function M.load_all(list, opts)
  local out = {}
  for _, e in ipairs(list) do
    local text, name = type(e) == "table" and e.text or e, type(e) == "table" and e.name or nil
    local p, err = M.load(text, name, opts)
    if not p then return nil, err end
    local last = out[#out]
    if p.type == "json6902" and last and last.type == "json6902" then
      for _, op in ipairs(p.ops) do last.ops[#last.ops + 1] = op end
    else
      out[#out + 1] = p.type == "json6902" and {type = "json6902", ops = {table.unpack(p.ops)}} or p
    end
  end
  return out
end

-- }========================================================================

-- {========================================================================
-- Applying (apply.go, strategic.go, selector.go)
-- =========================================================================

local function lookup_failed(v)
  if v >= 13 then return "lookup failed" end
  -- before v1.13 deleteForPath dereferenced the nil pointer and panicked (fixed with
  -- testdata/patchdeletemissing); talosctl dies with this panic (unconfirmed: exact output)
  return "panic: reflect: call of reflect.Value.Type on zero Value"
end

-- deleteStructFrom: the first struct item whose field `key` prints as value.
local function delete_from_slice(S, v, list, d, search, rest, key, value)
  if rest then return "searching for complex paths in slices is not supported" end
  if search == "" then return "searching for '' in a slice is not supported" end
  if search:sub(1, 1) ~= "[" then return "searching for non-integer keys in slices is not supported" end
  local ed = elem_of(S, d)
  if ed and ed.kind ~= "struct" then return "lookup failed" end   -- maps and interfaces are skipped
  for i, item in ipairs(list) do
    if is_map(item) then
      local ok = type(item[key]) == "string" and item[key] == value
      local f = ok and ed and find_field(S, ed.t, key, false)
      if f then
        local tn = f.kind or ""
        ok = tn == "string" or (S.types[tn] and S.types[tn].of == "string")
             or (v >= 13 and tn:match("^netip%.") ~= nil)    -- a fmt.Stringer is compared as text since v1.13
      elseif ok and ed then
        ok = S.partial                                        -- no such field: never matches
      end
      if ok then table.remove(list, i); return nil end
    end
  end
  return "lookup failed"
end

local function delete_path(S, v, node, d, path, i, key, value)
  local search, last = path[i], i == #path
  if is_list(node) then return delete_from_slice(S, v, node, d, search, not last, key, value) end
  if not is_map(node) then return lookup_failed(v) end
  local cd, fi = child(S, d, search, true, v)
  if d and d.kind == "struct" and not cd then
    if not S.partial then return "lookup failed" end
    d = nil                                     -- a field the built-in schema leaves out: as with no schema
  end
  local isstruct = d and d.kind == "struct" and not fi.in_map
  if node[search] == nil then
    if not isstruct and not (d == nil and last) then return "lookup failed" end   -- map keys must exist
    if last then return nil end                                                    -- struct field: already zero
    if fi.ptr or not cd or cd.kind == "any" then return lookup_failed(v) end       -- a nil pointer or interface
    if cd.kind ~= "struct" then return "lookup failed" end                         -- a nil slice or map
    return delete_path(S, v, yaml.map({}), cd, path, i + 1, key, value)
  end
  if last then node[search] = nil; return nil end
  return delete_path(S, v, node[search], cd, path, i + 1, key, value)
end

local function doc_desc(S, doc)
  local version, kind = doc_type(doc)
  local tn = type_name(S, version, kind)
  return tn and tdesc(S, tn) or nil
end

-- selector.ApplyTo / namedSelector.ApplyTo: nil, "zero" (document removed) or nil, err.
local function apply_selector(S, v, sel, doc)
  if #sel.path == 0 then return "zero" end
  local err = delete_path(S, v, doc, doc_desc(S, doc), sel.path, 1, sel.key, sel.value)
  if not err then return nil end
  if err:match("^panic: ") then return nil, err end
  local inner = fmt("failed to delete path '%s': %s", join(sel.path), err)
  local api, kind = scalar_text(doc.apiVersion), select(2, doc_type(doc))
  if kind == "" then kind = "v1alpha1" end
  if sel.name then return nil, fmt("named patch delete: document %s/%s: %s", api, kind, inner) end
  return nil, fmt("patch delete: path '%s' in document '%s/%s': %s", join(sel.path), api, kind, inner)
end

local function strategic(S, v, left, items)
  local index = {}
  for _, d in ipairs(left) do index[doc_id(d)] = d end
  for _, it in ipairs(items) do
    local id = it.selector and selector_id(it) or doc_id(it.doc)
    local ld = index[id]
    if ld and it.selector then
      local res, err = apply_selector(S, v, it, ld)
      if err then return nil, err end
      if res == "zero" then
        index[id] = nil
        for i, d in ipairs(left) do if d == ld then table.remove(left, i); break end end
      end
    elseif ld then
      merge_value(S, v, ld, it.doc, doc_desc(S, it.doc), {})
    elseif not it.selector then
      -- a selector naming no document is appended to the container as is (strategic.go); it
      -- encodes to nothing the world shows (unconfirmed), so it is dropped here
      left[#left + 1] = copy(it.doc)
    end
  end
  return left
end

-- configloader.NewFromBytes without patch deletes, on decoded documents (text, when
-- known, only gives the line numbers).
local function check_docs(S, v, docs, text)
  local lines, known, out = text and doc_lines(text) or {}, {}, {}
  for i, doc in ipairs(docs) do
    local ln = lines[i] or {doc = 1, content = 1}
    if not (doc == null and v >= 13) then
      if not is_map(doc) then return nil, bad_document(v, ln) end
      local _, kind = doc_type(doc)
      local id = fmt("%s/%s/%s", scalar_text(doc.apiVersion), kind ~= "" and kind or "v1alpha1", scalar_text(doc.name))
      if known[id] then return nil, fmt("duplicate document %s is not allowed", id) end
      known[id] = true
      local err = decode_doc(S, v, doc, text or "", ln)
      if err then return nil, err end
      decode_hooks(doc)
      out[#out + 1] = doc
    end
  end
  if #out == 0 then return nil, "config not found" end
  return out
end

--- Applies patches to a config's documents as configpatcher.Apply does.
--- JSON 6902 patches need a config of exactly one document; strategic merge
--- patches merge each document onto the one with the same apiVersion/kind/
--- name, apply `$patch: delete` selectors, and append new documents.
---@param docs table list of decoded documents (not changed)
---@param patches table a patch from load, or a list of them
---@param opts table|nil {version = "v1.11.0", schema = table, text = the config's text (for line
--- numbers), reencode = function(docs) -> docs (Talos's encoding, before a JSON patch that follows a
--- strategic one)}
---@return table|nil docs the patched documents
---@return string|nil err Talos's error text
function M.apply(docs, patches, opts)
  opts = opts or {}
  local v = minor(opts.version)
  local S = schema_for(opts, v)
  if patches.type then patches = {patches} end
  local cur, prev = {}, nil
  for i, d in ipairs(docs) do cur[i] = copy(d); decode_hooks(cur[i]) end
  for _, p in ipairs(patches) do
    if p.type == "json6902" then
      -- after a strategic patch Talos hands JSON patches the re-encoded config (configOrBytes.Bytes):
      -- opts.reencode (the encoder's decode(encode(docs))) adds the zero fields it writes
      if prev == "strategic" and opts.reencode then cur = opts.reencode(cur) end
      if #cur ~= 1 then return nil, "JSON6902 patches are not supported for multi-document machine configuration" end
      local out, err = jp.apply(cur[1], p.ops)
      if not out then return nil, "failure applying rfc6902 patches to talos machine config: " .. err end
      cur = {out}
    else
      local err
      if prev ~= "strategic" then
        -- bytes become a config again (configOrBytes.Config: configloader.NewFromBytes, strict); line
        -- numbers are those of opts.text for the input, else 1 (unconfirmed)
        cur, err = check_docs(S, v, cur, prev == nil and opts.text or nil)
        if not cur then return nil, err end
      end
      cur, err = strategic(S, v, cur, p.items)
      if not cur then return nil, err end
    end
    prev = p.type
  end
  return cur
end

--- configloader.NewFromBytes without patch deletes: what machined does with
--- the config `apply-config` sends (its error goes back as InvalidArgument).
--- Returns the documents, or nil and the error.
---@param text string
---@param opts table|nil {version =, schema =, name =}
function M.check(text, opts)
  opts = opts or {}
  local v = minor(opts.version)
  local ok, docs = pcall(yaml.decode_all, text, {name = opts.name or "config"})
  if not ok then return nil, "decode error: " .. tostring(docs) end
  return check_docs(schema_for(opts, v), v, docs, text)
end

--- Convenience: a config's text patched by patch texts (each {text =, name =}
--- or a string), as talosctl and talhelper do with `WithBytes` and
--- `LoadPatches`. Returns the documents, or nil and the error.
function M.apply_texts(config_text, patch_texts, opts)
  local ok, docs = pcall(yaml.decode_all, config_text, {name = opts and opts.name or "config"})
  if not ok then return nil, "decode error: " .. tostring(docs) end
  local ps, err = M.load_all(patch_texts, opts)
  if not ps then return nil, err end
  local o = {text = config_text}
  for k, x in pairs(opts or {}) do o[k] = x end
  return M.apply(docs, ps, o)
end

-- }========================================================================

--- The text `talosctl apply-config --dry-run` prints after "Config diff:\n\n"
--- for two encoded configs (machined generateDiff), "No changes." when equal.
--- v1.8-v1.9 print gotextdiff without " @@" closing hunk headers (the cyan.Printf
--- bug fixed in v1.10.0), v1.10-v1.12 gotextdiff, v1.13 neticdk/go-stdlib myers.
---@param old_text string the config the node runs, encoded
---@param new_text string the config given, encoded
---@param version string|number Talos version of the node
---@return string
function M.diff(old_text, new_text, version)
  local d = td.config_diff(old_text, new_text, minor(version))
  return d == "" and "No changes." or d
end

--- The whole ModeDetails of a dry run, as talosctl prints it on stderr
--- (helpers.PrintApplyResults: fmt.Fprintln, so one more "\n").
---@param mode_details string e.g. "Applied configuration without a reboot"
function M.dry_run_text(old_text, new_text, version, mode_details)
  local v = minor(version)
  if v <= 7 then
    error("Talos v1.7 printed go-cmp's diff of the v1alpha1 document (\"Config diff:\\n\" then cmp.Diff): not modelled", 2)
  end
  return fmt("Dry run summary:\n%s (skipped in dry-run).\nConfig diff:\n\n%s\n", mode_details,
             M.diff(old_text, new_text, v))
end

return M

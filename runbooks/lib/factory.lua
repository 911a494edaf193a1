--- factory: Talos Image Factory schematics. Reproduces the factory's
--- canonical YAML and schematic ID exactly (sha256 of the canonical bytes),
--- merges extensions into a node's current schematic, and talks to the
--- factory's HTTP API (siderolabs/image-factory: POST /schematics,
--- GET /schematics/<id>, /versions, /version/<v>/extensions/official).
local hash = require "runbook.hash"
local http = require "runbook.http"
local yaml = require "runbook.yaml"
local errors = require "runbook.error"

local M = {}

M.VANILLA_ID = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"
M.TAILSCALE_ONLY_ID = "4a0d65c669d46663f377e7161e50cfd570c401f26fd9e7bda34a0216b6f1922b"
M.TAILSCALE = "siderolabs/tailscale"
M.DEFAULT_URL = "https://factory.talos.dev"

local fmt = string.format

-- {====== canonical YAML, as go-yaml (4-space indent) marshals the struct

-- Field order is the struct's (pkg/schematic/schematic.go), which the
-- factory calls part of the stable serialization.
local FIELDS = {
  schematic = {"owner", "overlay", "customization"},
  overlay = {"image", "name", "options"},
  customization = {"embeddedMachineConfiguration", "extraKernelArgs", "meta", "systemExtensions",
                   "bootloader", "secureboot", "diskImage"},
  systemExtensions = {"officialExtensions"},
  secureboot = {"enrollKeys", "includeWellKnownCertificates"},
  diskImage = {"sectorSize"},
  meta = {"key", "value"},
}

local function known(kind, t, path)
  local allowed = {}
  for _, f in ipairs(FIELDS[kind]) do allowed[f] = true end
  for k in pairs(t) do
    if not allowed[k] then
      error(errors.new("schematic", fmt("unknown field %s%s (the factory rejects unknown fields)", path, tostring(k)), {exit = 2, retry = false}), 0)
    end
  end
end

local YAML11 = {y = 1, Y = 1, yes = 1, Yes = 1, YES = 1, n = 1, N = 1, no = 1, No = 1, NO = 1,
                on = 1, On = 1, ON = 1, off = 1, Off = 1, OFF = 1}

--- A string as go-yaml writes it: double-quoted when it would read back as
--- another type, a literal block when multi-line, single-quoted when plain
--- style cannot hold it, else plain.
local function scalar(s, indent)
  if s:find("\n") then
    local chomp = s:sub(-1) == "\n" and "" or "-"
    local body = s:gsub("\n$", "")
    local pad = (" "):rep(indent)
    return "|" .. chomp .. "\n" .. pad .. body:gsub("\n", "\n" .. pad), true
  end
  local ok, v = pcall(yaml.decode, "v: " .. s)
  local reads_other = not ok or type(v) ~= "table" or v.v ~= s or YAML11[s] or s:match("^[-+]?[%d_]+:[%d:_.]*$")
  if s == "" or reads_other and (ok and type(v) == "table" and v.v ~= s) then
    return '"' .. s:gsub('[\\"]', "\\%0") .. '"'
  end
  if not ok or s:match("^[%-?:,%[%]{}#&*!|>'\"%%@`]") or s:match("^%s") or s:match("%s$")
     or s:find(": ", 1, true) or s:find(" #", 1, true) or s:sub(-1) == ":" then
    return "'" .. s:gsub("'", "''") .. "'"
  end
  return s
end

local function list_of_strings(buf, key, list, ind)
  if #list == 0 then return end
  buf[#buf + 1] = fmt("%s%s:", (" "):rep(ind), key)
  for _, item in ipairs(list) do
    if type(item) ~= "string" then
      error(errors.new("schematic", fmt("%s items must be strings", key), {exit = 2, retry = false}), 0)
    end
    buf[#buf + 1] = fmt("%s- %s", (" "):rep(ind + 4), scalar(item, ind + 6))
  end
end

--- The canonical YAML of a schematic table (fields as in the factory's
--- YAML: customization.systemExtensions.officialExtensions, overlay.image,
--- ...). Nothing is sorted or deduplicated here: the factory's API does
--- neither (use merge() for that).
---@param s table a schematic
---@return string the YAML the factory hashes
function M.canonical(s)
  if type(s) ~= "table" then error("bad argument #1 to 'canonical' (table expected)", 2) end
  known("schematic", s, "")
  local b = {}
  if s.owner ~= nil and s.owner ~= "" then b[#b + 1] = "owner: " .. scalar(tostring(s.owner), 4) end
  local ov = s.overlay
  if ov ~= nil and next(ov) ~= nil then
    known("overlay", ov, "overlay.")
    b[#b + 1] = "overlay:"
    if ov.image and ov.image ~= "" then b[#b + 1] = "    image: " .. scalar(ov.image, 8) end
    if ov.name and ov.name ~= "" then b[#b + 1] = "    name: " .. scalar(ov.name, 8) end
    if ov.options and next(ov.options) then
      -- a map: go-yaml sorts map keys
      b[#b + 1] = "    options:"
      local keys = {}
      for k in pairs(ov.options) do keys[#keys + 1] = k end
      table.sort(keys)
      for _, k in ipairs(keys) do
        local v = ov.options[k]
        b[#b + 1] = fmt("        %s: %s", scalar(k, 12), type(v) == "string" and scalar(v, 12) or tostring(v))
      end
    end
  end
  local c = s.customization or {}
  known("customization", c, "customization.")
  local cb = {}
  if c.embeddedMachineConfiguration and c.embeddedMachineConfiguration ~= "" then
    cb[#cb + 1] = "    embeddedMachineConfiguration: " .. scalar(c.embeddedMachineConfiguration, 8)
  end
  list_of_strings(cb, "extraKernelArgs", c.extraKernelArgs or {}, 4)
  if c.meta and #c.meta > 0 then
    cb[#cb + 1] = "    meta:"
    for _, m in ipairs(c.meta) do
      known("meta", m, "customization.meta[].")
      local key = math.tointeger(tonumber(m.key))
      if key == nil or key < 0 or key > 255 then
        error(errors.new("schematic", "meta key must be an integer 0..255 (uint8)", {exit = 2, retry = false}), 0)
      end
      cb[#cb + 1] = fmt("        - key: %d", key)
      cb[#cb + 1] = "          value: " .. scalar(tostring(m.value or ""), 12)
    end
  end
  local se = c.systemExtensions
  if se and se.officialExtensions and #se.officialExtensions > 0 then
    known("systemExtensions", se, "customization.systemExtensions.")
    cb[#cb + 1] = "    systemExtensions:"
    list_of_strings(cb, "officialExtensions", se.officialExtensions, 8)
  end
  if c.bootloader and c.bootloader ~= "" and c.bootloader ~= "auto" then
    cb[#cb + 1] = "    bootloader: " .. scalar(c.bootloader, 8)
  end
  local sb = c.secureboot
  if sb and (sb.enrollKeys or sb.includeWellKnownCertificates) then
    known("secureboot", sb, "customization.secureboot.")
    cb[#cb + 1] = "    secureboot:"
    if sb.enrollKeys and sb.enrollKeys ~= "" then cb[#cb + 1] = "        enrollKeys: " .. scalar(tostring(sb.enrollKeys), 12) end
    if sb.includeWellKnownCertificates then cb[#cb + 1] = "        includeWellKnownCertificates: true" end
  end
  local di = c.diskImage
  if di and di.sectorSize and di.sectorSize ~= 0 then
    known("diskImage", di, "customization.diskImage.")
    cb[#cb + 1] = fmt("    diskImage:\n        sectorSize: %d", di.sectorSize)
  end
  if #cb == 0 then b[#b + 1] = "customization: {}"   -- no omitempty on customization
  else
    b[#b + 1] = "customization:"
    for _, l in ipairs(cb) do b[#b + 1] = l end
  end
  return table.concat(b, "\n") .. "\n"
end

--- The schematic ID: sha256 of the canonical YAML.
---@param s table a schematic
---@return string its ID (sha256 of the canonical form)
function M.id(s)
  return hash.sha256(M.canonical(s))
end

--- Parses a schematic's YAML (as GET /schematics/<id> returns it).
---@param text string schematic YAML
---@param name? string for errors
---@return table schematic
function M.parse(text, name)
  local v = yaml.decode(text, {name = name or "schematic"})
  if v == nil then return {customization = {}} end
  if type(v) ~= "table" then error(errors.new("schematic", (name or "schematic") .. ": not a map", {exit = 2, retry = false}), 0) end
  M.canonical(v)    -- validates the fields
  return v
end

--- The official extensions of a schematic, as a list.
---@param s table a schematic
---@return string[] its official extensions
function M.extensions(s)
  local c = s.customization or {}
  local se = c.systemExtensions or {}
  local out = {}
  for i, e in ipairs(se.officialExtensions or {}) do out[i] = e end
  return out
end

--- A copy of `current` with `add.extensions` added to its official
--- extensions, sorted and deduplicated as the factory's web UI does (so the
--- ID matches what users get from the UI). Everything else is kept.
--- opts.append: added at the end, the current order kept: what a
--- talconfig.yaml schematic: block holds once the rollout appended to its
--- list, and so what talhelper sends the factory (the ID depends on order).
---@param current table the schematic the nodes run
---@param add {extensions:string[]}
---@param opts? {append?: boolean}
---@return table the merged schematic
function M.merge(current, add, opts)
  local copy = yaml.decode(yaml.encode(current or {})) or {}
  copy.customization = copy.customization or {}
  if copy.customization == yaml.null then copy.customization = {} end
  local set, list = {}, {}
  for _, e in ipairs(M.extensions(copy)) do if not set[e] then set[e] = true; list[#list + 1] = e end end
  for _, e in ipairs(add and add.extensions or {}) do if not set[e] then set[e] = true; list[#list + 1] = e end end
  if not (opts and opts.append) then table.sort(list) end
  copy.customization.systemExtensions = {officialExtensions = list}
  return copy
end

--- Extensions of `current` that `target` lacks (what an upgrade would drop).
---@param current table
---@param target table
---@return string[] what target would drop of current
function M.dropped(current, target)
  local have = {}
  for _, e in ipairs(M.extensions(target)) do have[e] = true end
  local out = {}
  for _, e in ipairs(M.extensions(current)) do if not have[e] then out[#out + 1] = e end end
  return out
end

-- {====== the factory's API

--- POST /schematics; returns the ID, after checking that the factory's ID
--- is the one computed here.
---@param s table a schematic
---@param base? string the factory URL
---@return string the ID the factory answered
function M.create(s, base)
  base = base or M.DEFAULT_URL
  local body = M.canonical(s)
  local local_id = hash.sha256(body)
  local r = http.post(base .. "/schematics", {body = body, headers = {["Content-Type"] = "application/yaml"},
                                              timeout = 60})
  if r.status ~= 201 and r.status ~= 200 then
    error(errors.new("factory", fmt("POST %s/schematics returned %d: %s", base, r.status, (r.body or ""):sub(1, 200)),
                     {status = r.status}), 0)
  end
  local id = r:json().id
  if id ~= local_id then
    error(errors.new("factory", fmt("the factory returned schematic %s, but the schematic hashes to %s here: stopping rather than installing an image nobody reviewed",
                                    tostring(id), local_id)), 0)
  end
  return id
end

--- GET /schematics/<id> -> schematic table (nil when the factory says 404).
---@param id string
---@param base? string the factory URL
---@return table? schematic nil when the factory does not know it
function M.fetch(id, base)
  base = base or M.DEFAULT_URL
  local r = http.get(base .. "/schematics/" .. id, {timeout = 60})
  if r.status == 404 then return nil end
  if r.status ~= 200 then
    error(errors.new("factory", fmt("GET %s/schematics/%s returned %d", base, id, r.status), {status = r.status}), 0)
  end
  return M.parse(r.body, "schematic " .. id)
end

--- The names of the official extensions the factory offers for a version.
---@param version string a Talos version
---@param base? string
---@return string[]
function M.official_extensions(version, base)
  base = base or M.DEFAULT_URL
  local r = http.get(fmt("%s/version/%s/extensions/official", base, version), {timeout = 60})
  if r.status ~= 200 then
    error(errors.new("factory", fmt("GET %s/version/%s/extensions/official returned %d", base, version, r.status),
                     {status = r.status}), 0)
  end
  local out = {}
  for _, e in ipairs(r:json()) do out[e.name] = e end
  return out
end

--- Extensions of s that the version does not offer (the factory accepts
--- them at POST time and fails only when an image is built).
---@param s table a schematic
---@param offered string[]
---@return string[] its extensions the factory does not offer
function M.unavailable(s, offered)
  local out = {}
  for _, e in ipairs(M.extensions(s)) do if not offered[e] then out[#out + 1] = e end end
  return out
end

-- {====== installer image references

--- Splits an installer image reference: registry/path form, schematic ID
--- and tag. Returns {registry, kind ("installer", "metal-installer", ...),
--- id, tag} for factory references, or {image, tag} for others.
---@param ref string an installer image reference
---@return table? {host, kind, id, version, secureboot}
function M.parse_image(ref)
  -- the registry may carry a path (a mirror: registry.lan/factory/installer/<id>)
  local reg, kind, id, tag = ref:match("^(.+)/([%w%-]*installer[%w%-]*)/(%x+):?([^/]*)$")
  if reg then return {registry = reg, kind = kind, id = id, tag = tag ~= "" and tag or nil, factory = true} end
  local image, t = ref:match("^(.-):([^:/]+)$")
  return {image = image or ref, tag = t, factory = false}
end

--- The installer reference for schematic `id` and Talos `version`, in the
--- form `current` uses (its registry, and installer/, metal-installer/,
--- installer-secureboot/...); without a factory image to follow
--- (none, or ghcr.io/siderolabs/installer), factory.talos.dev/installer, or
--- installer-secureboot for a node whose machineSpec says secureboot.
---@param current string? the node's image URL (its host and kind are kept)
---@param id string schematic ID
---@param version? string Talos version (nil: no tag)
---@param secureboot? boolean
---@return string the installer image
function M.installer(current, id, version, secureboot)
  local p = current and M.parse_image(current) or {factory = false}
  local reg = p.factory and p.registry or "factory.talos.dev"
  local kind = p.factory and p.kind or (secureboot and "installer-secureboot" or "installer")
  local ref = fmt("%s/%s/%s", reg, kind, id)
  if version then ref = ref .. ":" .. version end
  return ref
end

return M

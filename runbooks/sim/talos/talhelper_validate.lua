--- talhelper's refusals of a talconfig.yaml (budimanjojo/talhelper v3.1.16
--- pkg/config/validator.go, validate.go), the ones the world models:
--- required fields, the Talos version's minor, node hostnames, addresses,
--- talosImageURL without a tag, nameservers, machineSpec.bootMethod.
--- Not modelled (accepted here): the Kubernetes/Talos compatibility, the
--- endpoint URI, schematic extensions against the official list, labels,
--- taints, network interfaces, firewall rules, machine files and disks.
local yaml = require "runbook.yaml"
local V = require "sim.talos.talhelper_versions"

local M = {}
local fmt = string.format

local function given(v) if v == yaml.null then return nil end return v end
local function empty(v) v = given(v); return v == nil or v == "" or (type(v) == "table" and next(v) == nil) end

local function is_ipv4(s)
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return false end
  for _, x in ipairs({a, b, c, d}) do if tonumber(x) > 255 or (#x > 1 and x:sub(1, 1) == "0") then return false end end
  return true
end
local function is_ip(s) return is_ipv4(s) or (s:find(":", 1, true) ~= nil and s:match("^[%x:.]+$") ~= nil) end
local function is_hostname(s)
  if #s < 1 or #s > 255 then return false end
  for label in (s .. "."):gmatch("([^.]*)%.") do
    if not (label:match("^[%w]$") or label:match("^[%w][%w%-]*[%w]$")) or #label > 63 then return false end
  end
  return true
end
local function is_domain(s)
  if s == "" then return false end
  for label in (s:gsub("[._]$", "") .. "."):gmatch("([^.]*)%.") do
    if not label:match("^[%w_][%w_%-]*$") or #label > 63 then return false end
  end
  return true
end

local function supported_talos(v, tv)
  local p = V.parse(v)
  return p ~= nil and p[1] == 1 and p[2] >= 2 and p[2] <= V.supported_minor(tv)
end

local function check_cluster(c, version, tv, add)
  for _, f in ipairs({"clusterName", "kubernetesVersion", "endpoint", "nodes"}) do
    if empty(c[f]) then add(f, fmt("%q is required to be not empty", f)) end
  end
  if not empty(c.talosVersion) and not supported_talos(version, tv) then
    add("talosVersion", fmt("%q is not a supported Talos version", version))
  end
end

local function check_node(n, i, add)
  local at = function(f) return fmt("nodes[%d].%s", i - 1, f) end
  if empty(n.hostname) then add(at("hostname"), fmt("%q is required to be not empty", at("hostname"))) end
  if empty(n.ipAddress) then add(at("ipAddress"), fmt("%q is required to be not empty", at("ipAddress"))) end
  if empty(n.installDisk) and given(n.installDiskSelector) == nil then
    add(at("installDisk"), fmt("%q is required to be not empty", at("installDisk")))
  end
  if not empty(n.ipAddress) then
    for ip in (tostring(n.ipAddress) .. ","):gmatch("([^,]*),") do
      ip = ip:match("^%s*(.-)%s*$")
      if not (is_domain(ip) or is_ip(ip)) then
        add(at("ipAddress"), fmt("%q is not a valid domain or IP address", ip))
      end
    end
  end
  if not empty(n.hostname) and not is_hostname(tostring(n.hostname)) then
    add(at("hostname"), fmt("%q is not a valid hostname", tostring(n.hostname)))
  end
  local url = given(n.talosImageURL)
  local tagged = type(url) == "string" and (url:match(":[%w][%w_.%-]*$") or url:find("@", 1, true))
  if tagged then
    add(at("talosImageURL"), "should not contains version or digest")
  end
  for _, ns in ipairs(type(given(n.nameservers)) == "table" and n.nameservers or {}) do
    if not is_ip(tostring(ns)) then
      local list = "[" .. table.concat(n.nameservers, " ") .. "]"      -- Go's %q of a []string
      add(at("nameservers"), fmt("%q is not a valid list of IP addresses", list))
      break
    end
  end
  local spec = type(given(n.machineSpec)) == "table" and n.machineSpec or {}
  local bm = given(spec.bootMethod)
  if bm and bm ~= "" and bm ~= "iso" and bm ~= "disk-image" and bm ~= "pxe" then
    add(at("machineSpec"), "`bootMethod` should be one of iso, disk-image, pxe")
  end
end

--- The problems talhelper reports, or nil: {fields = {{field, {messages}}},
--- stdout = what it prints before it stops}.
---@param c table the decoded config
---@param merged table[] the nodes merged with their groups
---@param version string the Talos version (with "v")
---@param tv string the talhelper release
function M.validate(c, merged, version, tv)
  local fields, by = {}, {}
  local function add(field, msg)
    if not by[field] then by[field] = {}; fields[#fields + 1] = {field = field, messages = by[field]} end
    by[field][#by[field] + 1] = "  * " .. msg
  end
  check_cluster(c, version, tv, add)
  for i, n in ipairs(merged) do check_node(n, i, add) end
  if #fields == 0 then return nil end
  local out = {"There are issues with your Talhelper config file:"}
  for _, f in ipairs(fields) do
    out[#out + 1] = fmt("field: %q", f.field)
    for _, m in ipairs(f.messages) do out[#out + 1] = m end
  end
  return {fields = fields, stdout = table.concat(out, "\n") .. "\n"}
end

return M

--- The HTTP services of the simulated world: the Image Factory and the
--- Tailscale API.
local ctx = ...

local errors = require "runbook.error"
local json = require "runbook.json"
local time = require "runbook.time"
local yaml = require "runbook.yaml"
local factory = require "factory"

local W = ctx.W
local fmt = string.format
local fault, register_schematic = ctx.model.fault, ctx.model.register_schematic

local function response(status, body, ctype)
  return {status = status, headers = {["content-type"] = ctype or "application/json"}, body = body or "", url = ""}
end

local function factory_api(method, path, body)
  local f = fault("factory_error")
  if f and (f.times == nil or (W.factory_errors or 0) < f.times) then
    W.factory_errors = (W.factory_errors or 0) + 1
    return response(f.status or 503, "service unavailable\n", "text/plain")
  end
  if fault("factory_timeout") then
    time.sleep(60)
    error(errors.new("timeout", "factory.talos.dev: Operation timed out after 60000 milliseconds"), 0)
  end
  if method == "POST" and path == "/schematics" then
    local ok, s = pcall(factory.parse, body or "", "request")
    if not ok then return response(400, tostring(s) .. "\n", "text/plain") end
    local id = register_schematic(s)
    return response(201, json.encode(yaml.order({id = id, schematic = W.schematics[id]}, {"id", "schematic"})) .. "\n")
  end
  local id = path:match("^/schematics/(%x+)$")
  if method == "GET" and id then
    if W.schematics[id] then return response(200, W.schematics[id], "application/yaml") end
    return response(404, "schematic not found\n", "text/plain")
  end
  if method == "GET" and path == "/versions" then return response(200, json.encode(W.versions) .. "\n") end
  local v = path:match("^/version/v?([%d%.]+)/extensions/official$")
  if method == "GET" and v then
    -- the factory lists, per Talos version, the extensions built for that
    -- version (GET /version/{v}/extensions/official; how it reads them off
    -- the extensions image of that version is not modelled); an extension
    -- may be missing for a version (dropped, or not built yet): scenario
    -- factory.extensionsByVersion, or the fault factory_lacks_extension
    local tag = "v" .. v
    local list = W.official_by_version and W.official_by_version[tag] or W.official
    local out = {}
    for _, name in ipairs(list) do
      local lacks = false
      for _, x in ipairs(W.faults) do
        if x.type == "factory_lacks_extension" and x.extension == name and (x.version == nil or x.version == tag) then lacks = true end
      end
      if lacks then goto next end
      out[#out + 1] = yaml.order({name = name, ref = fmt("ghcr.io/%s:1.0.0", name), digest = "sha256:" .. require("runbook.hash").sha256(name),
                                  author = "Sidero Labs", description = name}, {"name", "ref", "digest", "author", "description"})
      ::next::
    end
    return response(200, json.encode(out) .. "\n")
  end
  return response(404, "not found\n", "text/plain")
end

local function device_json(d, all)
  local v = yaml.order({addresses = d.addresses, id = d.id, nodeId = d.nodeId, name = d.hostname_final .. "." .. W.tailnet,
    hostname = d.hostname, os = d.os, tags = d.tags, created = d.created, lastSeen = time.iso(), authorized = d.authorized,
    connectedToControl = d.online},
    {"addresses", "id", "nodeId", "name", "hostname", "os", "tags", "created", "lastSeen", "authorized", "connectedToControl"})
  if all then
    v.advertisedRoutes = json.array(d.routes_adv or {})
    v.enabledRoutes = json.array(d.routes_enabled or {})
  end
  return v
end

local function tailscale_api(method, path, body)
  local q = path:match("%?(.*)$") or ""
  path = path:gsub("%?.*$", "")
  if method == "GET" and path:match("^/api/v2/tailnet/[^/]+/devices$") then
    local out = {}
    for _, d in ipairs(W.devices) do out[#out + 1] = device_json(d, q:find("fields=all", 1, true)) end
    return response(200, json.encode({devices = json.array(out)}))
  end
  if path:match("^/api/v2/tailnet/[^/]+/keys$") then
    if method == "POST" then
      local req = json.decode(body or "{}")
      W.next_key = (W.next_key or 0) + 1
      local create = req.capabilities and req.capabilities.devices and req.capabilities.devices.create or {}
      local k = {id = fmt("k%dCNTRL", W.next_key), key = fmt("tskey-auth-k%dCNTRL-simulated%04d", W.next_key, W.next_key),
                 created = time.iso(), expires = time.iso(time.now() + (req.expirySeconds or 7776000)),
                 capabilities = {devices = {create = create}}}
      W.keys = W.keys or {}
      W.keys[#W.keys + 1] = k
      return response(200, json.encode(k))
    end
    local list = {}
    for _, k in ipairs(W.keys or {}) do list[#list + 1] = {id = k.id} end
    return response(200, json.encode({keys = json.array(list)}))
  end
  -- GET /api/v2/tailnet/{tailnet}/keys/{id} (client/tailscale/keys.go:
  -- Key{id, created, expires, capabilities.devices.create{reusable,
  -- ephemeral, preauthorized, tags}}): the scenario's auth key
  local kid = path:match("^/api/v2/tailnet/[^/]+/keys/([%w]+)$")
  if kid and method == "GET" then
    if fault("authkey_invalid") then return response(404, json.encode({message = "key not found"})) end
    local a = W.auth
    local expired = a.expired or fault("authkey_expired") and W.auth.used
    local create = {reusable = a.reusable ~= false and not fault("authkey_single_use"), ephemeral = a.ephemeral == true,
                    preauthorized = a.preauthorized ~= false, tags = json.array(a.tags or {"tag:k8s"})}
    return response(200, json.encode({id = kid, created = "2026-01-01T00:00:00Z",
      expires = expired and "2025-12-01T00:00:00Z" or time.iso(time.now() + 86400 * 60),
      capabilities = {devices = {create = create}}}))
  end
  -- DELETE /api/v2/device/{id} (client/tailscale/devices.go DeleteDevice,
  -- v1.102.3: success is 200; the body the server sends is unconfirmed,
  -- the client does not read it)
  local del = path:match("^/api/v2/device/([%w]+)$")
  if del and method == "DELETE" then
    for i, d in ipairs(W.devices) do
      if d.id == del then
        ctx.model.remove_device(i)
        return response(200, "")
      end
    end
    return response(404, json.encode({message = "device not found"}))
  end
  local id = path:match("^/api/v2/device/([%w]+)/routes$")
  if id then
    local d = W.ix.dev_by_id[id]
    if d then
      if method == "POST" then
        local req = json.decode(body or "{}")
        d.routes_enabled = req.routes or {}
      end
      return response(200, json.encode({advertisedRoutes = json.array(d.routes_adv), enabledRoutes = json.array(d.routes_enabled)}))
    end
    return response(404, json.encode({message = "device not found"}))
  end
  return response(404, json.encode({message = "not found"}))
end

return {factory_api = factory_api, response = response, tailscale_api = tailscale_api}

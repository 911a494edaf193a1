--- talconfig: talhelper's talconfig.yaml. Reads it, and changes it with
--- yaml.edit so that only the lines that must change do. Facts:
--- shared/TALOS-TAILSCALE.md §4 (talhelper merges node and group settings
--- all-or-nothing; empty clusterSvcNets means Talos's 10.96.0.0/12).
local fs = require "runbook.fs"
local yaml = require "runbook.yaml"
local errors = require "runbook.error"

local M = {}

M.DEFAULT_SVC_CIDR = "10.96.0.0/12"     -- Talos's DefaultIPv4ServiceCIDR

--- Reads and checks the file: {path, text, data, nodes = {{hostname, ip,
--- index, control_plane, image_url, patches}}, svc_cidr, talos_version}.
function M.read(path)
  local text = fs.read(path)
  local docs = yaml.decode_all(text, {name = path})
  local data = docs[1]
  if type(data) ~= "table" then error(errors.new("talconfig", path .. ": not a talhelper config (a map)", {exit = 2}), 0) end
  if type(data.nodes) ~= "table" or #data.nodes == 0 then
    error(errors.new("talconfig", path .. ": no nodes", {exit = 2}), 0)
  end
  local nodes = {}
  for i, n in ipairs(data.nodes) do
    if type(n) ~= "table" or type(n.hostname) ~= "string" then
      error(errors.new("talconfig", ("%s: nodes[%d] has no hostname"):format(path, i), {exit = 2}), 0)
    end
    local ip = type(n.ipAddress) == "string" and n.ipAddress:match("^%s*([^,%s]+)") or nil
    nodes[#nodes + 1] = {hostname = n.hostname, ip = ip, index = i, control_plane = n.controlPlane == true,
                         image_url = n.talosImageURL, patches = n.patches, schematic = n.schematic}
  end
  local svc = type(data.clusterSvcNets) == "table" and data.clusterSvcNets[1] or nil
  local tv = data.talosVersion and tostring(data.talosVersion) or nil
  if tv and not tv:match("^v") then tv = "v" .. tv end      -- talhelper adds the v
  return {path = path, text = text, data = data, nodes = nodes, svc_cidr = svc or M.DEFAULT_SVC_CIDR,
          svc_cidr_explicit = svc ~= nil, talos_version = tv}
end

--- Sets nodes[i].talosImageURL (without tag, as talhelper expects).
function M.set_image(text, i, url)
  return yaml.edit(text, {"nodes", i, "talosImageURL"}, url)
end

--- Adds a patch reference ("@./patches/x.yaml") to nodes[i].patches.
--- A node with patches of its own keeps them (talhelper appends group
--- patches before node patches).
function M.add_patch(text, i, ref, existing)
  local list = {}
  for _, p in ipairs(existing or {}) do
    if p == ref then return text end
    list[#list + 1] = p
  end
  list[#list + 1] = ref
  return yaml.edit(text, {"nodes", i, "patches"}, yaml.array(list))
end

--- The LAN addresses of the control-plane nodes (etcd members): etcd
--- checks must not ask workers, which run no etcd.
function M.control_plane_ips(nodes)
  local out = {}
  for _, n in ipairs(nodes) do if n.control_plane and n.ip then out[#out + 1] = n.ip end end
  return out
end

--- The ExtensionServiceConfig environment of a node: the auth key (a
--- secret, revealed here only), its hostname, the routes, and TS_DEST_IP
--- when `dest_ip` is given.
function M.tailscale_env(o)
  local env = {"TS_AUTHKEY=" .. o.authkey:reveal(), "TS_HOSTNAME=" .. o.hostname,
               "TS_ROUTES=" .. table.concat(o.routes, ",")}
  if o.dest_ip then env[#env + 1] = "TS_DEST_IP=" .. o.dest_ip end
  return env
end

--- The ExtensionServiceConfig document for the tailscale extension.
--- The auth key is a secret: the document is written to a 0600 file.
function M.extension_service_config(env)
  local list = {}
  for _, kv in ipairs(env) do list[#list + 1] = kv end
  return yaml.encode(yaml.order({apiVersion = "v1alpha1", kind = "ExtensionServiceConfig", name = "tailscale",
                                 environment = list}, {"apiVersion", "kind", "name", "environment"}))
end

return M

--- tailscale: the local tailscale CLI (status --json) and the Tailscale
--- API v2. Facts: shared/TALOS-TAILSCALE.md §5.
local exec = require "runbook.exec"
local http = require "runbook.http"
local json = require "runbook.json"
local errors = require "runbook.error"

local M = {}

--- The peers this machine sees: {hostname, name (first DNS label, e.g.
--- "k8s-1-1" when the name was taken), dns_name, ips, online, primary_routes}.
function M.peers()
  local r = exec.run({"tailscale", "status", "--json"}, {timeout = 30})
  if r.code ~= 0 then error(errors.new("tailscale", "tailscale status: " .. r.stderr:gsub("%s+$", "")), 2) end
  local st = json.decode(r.stdout, {name = "tailscale status --json"})
  local out = {}
  for _, p in pairs(st.Peer or {}) do
    local dns = p.DNSName or ""
    out[#out + 1] = {hostname = p.HostName, name = dns:match("^([^.]+)") or p.HostName, dns_name = dns:gsub("%.$", ""),
                     ips = p.TailscaleIPs or {}, online = p.Online == true, primary_routes = p.PrimaryRoutes or {}}
  end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out, st
end

--- The peer registered under exactly `name`, or nil.
function M.peer(name)
  for _, p in ipairs(M.peers()) do if p.name == name then return p end end
end

--- API v2: the tailnet's devices with routes (fields=all).
function M.devices(api, key, tailnet)
  local r = http.get(("%s/api/v2/tailnet/%s/devices?fields=all"):format(api, tailnet or "-"), {bearer = key, timeout = 30})
  if r.status ~= 200 then error(errors.new("tailscale", ("devices: HTTP %d: %s"):format(r.status, r.body:sub(1, 200))), 2) end
  return r:json().devices or {}
end

--- API v2: enables `routes` on a device (replaces its enabled set).
function M.approve_routes(api, key, device_id, routes)
  local r = http.post(("%s/api/v2/device/%s/routes"):format(api, device_id), {bearer = key, json = {routes = routes}, timeout = 30})
  if r.status ~= 200 then error(errors.new("tailscale", ("approve routes: HTTP %d: %s"):format(r.status, r.body:sub(1, 200))), 2) end
  return r:json()
end

return M

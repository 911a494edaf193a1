--- recovery: diagnosis and repair actions for emergencies, shared by
--- recover.lua and the operators' own recovery scripts (docs/access-and-
--- recovery.md shows one). Diagnosis is read-only; actions change things
--- and are meant to run behind rb.confirm.
local async = require "runbook.async"
local fs = require "runbook.fs"
local talos = require "talos"
local talconfig = require "talconfig"

local M = {}
local fmt = string.format

local function try(fn, ...)
  local ok, a, b = pcall(fn, ...)
  if ok then return true, a, b end
  return false, tostring(a)
end

--- Diagnoses one node over one path: a LAN address, or {endpoint =
--- tailnet name, node = LAN address} (talosctl -e over the tailnet; the
--- node's apid serves its own address, docs/access-and-recovery.md):
--- {path, reachable, version, services = {name -> running}, extensions,
---  schematic, tailscale = "running"|"not running"|"absent"|"unknown", logs, error}
---@param path string|table a talosctl target (address, or {endpoint, node})
---@return table findings
function M.diagnose_path(path)
  local d = {path = path}
  local ok, r = try(talos.run, path, "version")
  d.reachable = ok
  if not ok then d.error = r; return d end
  d.version = r.stdout:match("Server:.-Tag:%s*(%S+)")
  local okx, exts, id = try(talos.extensions, path)
  if okx then d.extensions, d.schematic = exts, id end
  local oks, svc = try(talos.service, path, "ext-tailscale")
  -- Talos lists only running services; extension services have no health
  -- check. Not running: "absent" when the node's extensions lack tailscale
  local installed = not okx
  for _, e in ipairs(okx and exts or {}) do if e == "tailscale" then installed = true end end
  d.tailscale = not oks and "unknown" or svc ~= nil and "running" or installed and "not running" or "absent"
  local okl, logs = try(talos.run, path, "logs", "ext-tailscale", "--tail", "20")
  d.logs = okl and logs.stdout or nil
  return d
end

--- Diagnoses every node over both paths at once. nodes: {{hostname, ip}}.
---@param nodes table[] talconfig nodes
---@param tailnet? string the tailnet name
---@return table[] a finding per node
function M.diagnose(nodes, tailnet)
  local jobs = {}
  for _, n in ipairs(nodes) do
    jobs[#jobs + 1] = {node = n.hostname, path = n.ip, kind = "LAN"}
    if tailnet then
      jobs[#jobs + 1] = {node = n.hostname, path = {endpoint = n.hostname .. "." .. tailnet, node = n.ip}, kind = "tailnet"}
    end
  end
  local results = async.map(jobs, function(j)
    local d = M.diagnose_path(j.path)
    d.node, d.kind = j.node, j.kind
    return d
  end)
  local etcd = talos.etcd_health(talconfig.control_plane_ips(nodes))
  return results, etcd
end

--- A path's name for people: the address, or the tailnet endpoint.
---@param path string
---@return string
function M.path_name(path) return type(path) == "table" and path.endpoint or path end

--- One line per finding, for the log and the report.
---@param results table[] from diagnose
---@param etcd? table
---@return string
function M.summarize(results, etcd)
  local lines = {}
  for _, d in ipairs(results) do
    if d.reachable then
      lines[#lines + 1] = fmt("%s via %s (%s): reachable, Talos %s, schematic %s, ext-tailscale %s",
        d.node, d.kind, M.path_name(d.path), tostring(d.version), tostring(d.schematic):sub(1, 12), d.tailscale)
      -- the evidence: a service that is not running says why in its log
      if d.tailscale ~= "running" and d.logs and d.logs:find("%S") then
        local last = {}
        for l in d.logs:gmatch("[^\n]+") do last[#last + 1] = l end
        lines[#lines] = lines[#lines] .. "; its last log lines:\n    "
                        .. table.concat(last, "\n    ", math.max(1, #last - 4))
      end
    else
      lines[#lines + 1] = fmt("%s via %s (%s): UNREACHABLE: %s", d.node, d.kind, M.path_name(d.path), (d.error or ""):sub(1, 160))
    end
  end
  lines[#lines + 1] = etcd.ok and "etcd: healthy" or ("etcd: " .. table.concat(etcd.problems, "; "))
  return lines
end

--- Takes an etcd snapshot of a control-plane node into `dir` (0700), as
--- `etcd-<name>-<UTC time>.snapshot`: written 0600 by talosctl (etcd.go,
--- v1.11.0), checked (size and trailing sha256) by talos.etcd_snapshot.
---@param node string its address
---@param dir string
---@param name? string its hostname, for the file name
---@return table {file, size, hash, revision}
function M.etcd_snapshot(node, dir, name)
  fs.mkdir_p(dir, tonumber("700", 8))
  local file = fmt("%s/etcd-%s-%s.snapshot", dir, name or node, os.date("!%Y%m%dT%H%M%SZ", math.floor(require("runbook.time").now())))
  return talos.etcd_snapshot(node, file)
end

---@param node string
function M.restart_tailscale(node)
  talos.run(node, "service", "ext-tailscale", "restart")
end

--- Re-keys ext-tailscale: a new ExtensionServiceConfig with the new key
--- (written 0600 to `file`), applied to the node.
---@param node string
---@param hostname string
---@param authkey runbook.Secret
---@param routes string[]
---@param file string the patch file (0600)
---@return integer the environment entries written
function M.rekey(node, hostname, authkey, routes, file)
  local env = talconfig.tailscale_env{authkey = authkey, hostname = hostname, routes = routes}
  fs.write(file, talconfig.extension_service_config(env), {mode = tonumber("600", 8)})
  -- delete-then-add: a patch over the old config would append, keeping the old key first
  talos.set_extension_service_config(node, "tailscale", file, env)
  M.restart_tailscale(node)
end

---@param node string
function M.rollback(node) talos.rollback(node) end

---@param node string
function M.reboot(node) talos.run(node, "reboot") end

return M

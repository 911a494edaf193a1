--- recovery: diagnosis and repair actions for emergencies, shared by
--- recover.lua and the operators' own recovery scripts (docs/access-and-
--- recovery.md shows one). Diagnosis is read-only; actions change things
--- and are meant to run behind rb.confirm.
local async = require "runbook.async"
local fs = require "runbook.fs"
local talos = require "talos"
local talconfig = require "talconfig"
local tailscale = require "tailscale"

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

--- A node's name in the tailnet: its hostname as Tailscale makes a device
--- name of it (tailscale.device_name: "k8s-1.home" is "k8s-1-home"),
--- under the tailnet's DNS suffix. The rollout puts this name in the
--- node's certSANs.
---@param hostname string
---@param tailnet string the tailnet's DNS suffix
---@return string
function M.tailnet_name(hostname, tailnet)
  return tailscale.device_name(hostname) .. "." .. tailnet
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
      jobs[#jobs + 1] = {node = n.hostname, path = {endpoint = M.tailnet_name(n.hostname, tailnet), node = n.ip}, kind = "tailnet"}
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

--- What a node runs against what an upgrade meant it to run: "new" (the
--- schematic `want.id` it was upgraded to), "old" (`want.current_id`, the
--- one it ran before: Talos fell back to it, or it was rolled back),
--- "other", or "unreachable" (id nil). `talosctl rollback` flips the boot
--- entry to the other A/B slot whatever the node runs (talos
--- internal/app/machined/pkg/runtime/v1alpha1/bootloader/grub/revert.go):
--- only "new" is safe to roll back. The rollout's undo and recover.lua's
--- rollback both decide by it.
---@param id? string the node's schematic ID now
---@param want {id:string, current_id?:string}
---@return string state
function M.boot_state(id, want)
  if id == nil then return "unreachable" end
  if id == want.id then return "new" end
  if want.current_id and id == want.current_id then return "old" end
  return "other"
end

--- Asks the node which schematic it runs (talos.extensions) and decides by
--- boot_state; with opts.timeout it waits that long for the node to answer
--- (it may be mid-boot).
---@param node string|table a talosctl target
---@param want {id:string, current_id?:string}
---@param opts? {timeout?:number, interval?:number, desc?:string}
---@return string state, string? id
function M.node_boot_state(node, want, opts)
  opts = opts or {}
  local ok, _, id
  local function ask()
    ok, _, id = pcall(talos.extensions, node)
    return ok, ok and "reachable" or "unreachable"
  end
  if opts.timeout then
    pcall(async.wait_until, ask, {timeout = opts.timeout, interval = opts.interval, desc = opts.desc})
  else
    ask()
  end
  if not ok then return "unreachable" end
  return M.boot_state(id, want), id
end

--- The schematics a node should be on: {id = the one it was upgraded to,
--- current_id = the one before, from = where this was read}. From the
--- rollout's journal when it upgraded the node (its "schematic" step, per
--- node or, in journals of earlier versions, one for all); else the
--- node's install image in talconfig.yaml (a factory installer's ID; then
--- the previous one is unknown). nil and why when neither says.
---@param node table a talconfig node {hostname, image_url, schematic}
---@param journal? string the rollout's journal file
---@return table? want, string? why
function M.expected_schematics(node, journal)
  if journal and fs.exists(journal) then
    local rj = require "runbook.journal"
    local steps = rj.steps(rj.read(journal))
    local s = steps.schematic and steps.schematic.result
    if type(s) == "table" and steps["upgrade/" .. node.hostname] then
      local per = type(s.nodes) == "table" and s.nodes[node.hostname] or s
      if per.id then return {id = per.id, current_id = per.current_id, from = "the rollout journal " .. journal} end
    end
  end
  local factory = require "factory"
  if type(node.schematic) == "table" then
    return {id = factory.id(node.schematic), from = "talconfig.yaml's schematic: block"}
  end
  local p = node.image_url and factory.parse_image(node.image_url)
  if p and p.factory then return {id = p.id, from = "talconfig.yaml's talosImageURL"} end
  return nil, node.image_url and ("talconfig.yaml's talosImageURL " .. node.image_url .. " is not an Image Factory installer")
              or "talconfig.yaml names no install image"
end

--- Why `talosctl rollback` must not run on a node in `state` (nil when it
--- may: it runs the schematic it was upgraded to).
---@param name string the node's hostname
---@param state string from boot_state
---@param id? string its schematic now
---@param want table from expected_schematics
---@return string? why
function M.rollback_refusal(name, state, id, want)
  local short = function(x) return tostring(x):sub(1, 12) end
  if state == "new" then return nil end
  if state == "old" then
    return fmt("%s already runs its previous schematic %s (Talos fell back from the new image, or it was rolled back): "
      .. "`talosctl rollback` would boot the other slot, the new image %s, again; nothing was done. To leave the new "
      .. "image for good, run rollback.lua", name, short(id), short(want.id))
  end
  if state == "unreachable" then
    return fmt("%s does not answer: which image it runs is unknown, and `talosctl rollback` boots the other slot whatever "
      .. "it runs; nothing was done (diagnose with recover.lua, or reboot it)", name)
  end
  return fmt("%s runs schematic %s, not %s (named by %s)%s: Talos may have fallen back already, and `talosctl rollback` would "
    .. "boot the other slot; nothing was done", name, short(id), short(want.id), want.from,
    want.current_id and fmt(" nor its previous %s", short(want.current_id)) or "")
end

---@param node string
function M.rollback(node) talos.rollback(node) end

--- Reboots a node and returns once talosctl handed the request over:
--- `talosctl reboot` waits for the node to come back at every version
--- from v1.8 unless told not to (cmd/talosctl/cmd/talos/reboot.go), which
--- outlasts the exec timeout of a slow boot; talos.reboot passes
--- --wait=false and the runbook gates on the node itself.
---@param node string
function M.reboot(node) talos.reboot(node) end

return M

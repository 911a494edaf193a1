--- talos: typed wrappers over talosctl. JSON where talosctl has it
--- (get ... -o json prints a stream of objects), a parsed table otherwise.
local exec = require "runbook.exec"
local json = require "runbook.json"
local errors = require "runbook.error"

local M = {}
M.talosconfig = nil       -- set to pass --talosconfig to every call

local function argv(node, ...)
  local a = {"talosctl"}
  if M.talosconfig then a[#a + 1] = "--talosconfig=" .. M.talosconfig end
  if node then a[#a + 1] = "-n"; a[#a + 1] = node end
  for _, x in ipairs{...} do a[#a + 1] = x end
  return a
end

--- Runs talosctl; raises a `talos` error with its stderr on failure.
function M.run(node, ...)
  local r = exec.run(argv(node, ...), {timeout = 120})
  if r.code ~= 0 then
    local msg = (r.stderr ~= "" and r.stderr or r.stdout):gsub("%s+$", "")
    error(errors.new("talos", msg, {node = node, result = r}), 2)
  end
  return r
end

--- The resources of `talosctl get <type> -o json`.
function M.get(node, rtype)
  return json.decode_all(M.run(node, "get", rtype, "-o", "json").stdout, {name = "talosctl get " .. rtype})
end

--- The extensions a node runs: names (without the schematic pseudo
--- extension) and the node's schematic ID.
function M.extensions(node)
  local names, schematic = {}, nil
  for _, r in ipairs(M.get(node, "extensions")) do
    local md = r.spec and r.spec.metadata or {}
    if md.name == "schematic" then schematic = md.version
    elseif md.name then names[#names + 1] = md.name end
  end
  return names, schematic
end

--- name -> environment list of the node's ExtensionServiceConfigs.
function M.extension_service_configs(node)
  local out = {}
  for _, r in ipairs(M.get(node, "extensionserviceconfigs")) do
    out[r.metadata.id] = r.spec and r.spec.environment or {}
  end
  return out
end

--- {running, healthy} of a service (nil when the node has no such service).
function M.service(node, id)
  for _, r in ipairs(M.get(node, "services")) do
    if r.metadata.id == id then return {running = r.spec.running, healthy = r.spec.healthy} end
  end
  return nil
end

--- The talosctl client's version tag ("v1.10.6") and minor number.
function M.client_version()
  local r = exec.run({"talosctl", "version", "--client"}, {timeout = 30})
  local tag = r.stdout:match("Tag:%s*(v[%d%.]+)")
  if r.code ~= 0 or not tag then
    error(errors.new("talos", "cannot read the talosctl client version: " .. (r.stderr ~= "" and r.stderr or r.stdout)), 2)
  end
  return tag, tonumber(tag:match("^v%d+%.(%d+)"))
end

--- etcd health across nodes: {ok = bool, problems = {...}} from
--- `talosctl etcd status` (its ERRORS column and unreachable members).
function M.etcd_health(nodes)
  local r = exec.run(argv(table.concat(nodes, ","), "etcd", "status"), {timeout = 60})
  local problems = {}
  local seen = {}
  for line in r.stdout:gmatch("[^\n]+") do
    local ip, rest = line:match("^(%d+%.%d+%.%d+%.%d+)%s+(.*)$")
    if ip then
      seen[ip] = true
      local err = rest:match("false%s+(.+)$")
      if err and err:match("%S") then problems[#problems + 1] = ip .. ": " .. err end
    end
  end
  for line in r.stderr:gmatch("[^\n]+") do problems[#problems + 1] = line end
  for _, n in ipairs(nodes) do
    if not seen[n] and #problems == 0 then problems[#problems + 1] = n .. ": no etcd status" end
  end
  return {ok = #problems == 0, problems = problems}
end

--- Why an upgrade was refused, in an operator's words (Talos's own etcd
--- safety checks), or nil.
function M.explain_upgrade_error(stderr)
  if stderr:find("is not healthy; all members must be healthy", 1, true) then
    return "Talos refused: an etcd member is unhealthy (all must be healthy before a control-plane upgrade)"
  elseif stderr:find("is not started, all members must be running", 1, true) then
    return "Talos refused: an etcd member is not running"
  elseif stderr:find("insufficient to maintain quorum", 1, true) then
    return "Talos refused: upgrading would lose etcd quorum"
  elseif stderr:find("unknown flag", 1, true) then
    return "talosctl does not know a flag this runbook passed: " .. stderr:match("unknown flag: (%S+)")
  end
end

--- Starts an upgrade without waiting (the runbook gates on the node itself).
function M.upgrade(node, image)
  local r = exec.run(argv(node, "upgrade", "--image", image, "--wait=false"), {timeout = 300})
  if r.code ~= 0 then
    local why = M.explain_upgrade_error(r.stderr)
    error(errors.new("talos", (why and (why .. ": ") or "") .. r.stderr:gsub("%s+$", ""), {node = node}), 2)
  end
end

function M.rollback(node)
  M.run(node, "rollback")
end

--- Applies a machine-config patch file.
function M.patch(node, file)
  M.run(node, "patch", "machineconfig", "--patch", "@" .. file)
end

--- Removes the node's ExtensionServiceConfig `name` with a `$patch: delete`
--- document, written to `file` (0600) for talosctl and removed afterwards.
function M.remove_extension_service_config(node, name, file)
  local fs = require "runbook.fs"
  fs.write(file, ("apiVersion: v1alpha1\nkind: ExtensionServiceConfig\nname: %s\n$patch: delete\n"):format(name),
           {mode = tonumber("600", 8)})
  local ok, err = pcall(M.patch, node, file)
  fs.remove(file)
  if not ok then error(err, 0) end
end

return M

--- Whether a change already landed, judged by the end state it was to
--- make, not by what it would change. The journal runs a step again after
--- a kill, a timeout or a lost reply that came after the change itself
--- (at least once); each mutating step asks here first, and a change that
--- stands is done (docs/reliability.md, "Every change safe to repeat").
local talos = require "talos"
local recovery = require "recovery"

local M = {}

--- The node already runs the config a dry-run apply of `file` was asked
--- about: `talosctl apply-config --dry-run` says "No changes."
--- (machined's generateDiff: the file is the config the node runs).
---@param ip string
---@param file string the generated config
---@return boolean runs, string diff the dry-run's diff otherwise
function M.runs_config(ip, file)
  local d = talos.run(ip, "apply-config", "--file", file, "--dry-run")
  local diff = talos.dry_run_diff(d.stderr .. d.stdout) or ""
  return diff == "No changes.", (d.stderr .. d.stdout):match("Config diff:\n\n(.*)$") or ""
end

--- The rollout's config stands on the node: the dry-run of the generated
--- config says "No changes." and the node runs an ExtensionServiceConfig
--- named tailscale (the change the step makes); an identical config
--- without it is the generated config lacking the change, which stays a
--- surprise for the caller.
---@param ip string
---@param file string
---@return boolean landed, string diff
function M.rollout_config(ip, file)
  local same, diff = M.runs_config(ip, file)
  return same and talos.extension_service_configs(ip).tailscale ~= nil, diff
end

--- What a node boots, for an upgrade (or an upgrade back) to `want`:
--- "done" when it runs want, "todo" when it runs `from`, else what it is
--- ("other: <id>" or "unreachable") after waiting up to `timeout` for a
--- node that may be rebooting into it.
---@param ip string
---@param want string the schematic ID the upgrade installs
---@param from string the schematic ID it replaces
---@param o {timeout:number, interval:number, desc:string}
---@return string state, string? id
function M.upgrade_state(ip, want, from, o)
  local state, id = recovery.node_boot_state(ip, {id = want, current_id = from}, o)
  if state == "new" then return "done", id end
  if state == "old" then return "todo", id end
  return state, id
end

--- talconfig.yaml already holds this run's edit (a kill between its
--- write and the journal's record of it): every node the run changes has
--- its tailscale entry in extensionServices, which the run refuses to
--- start with (its pending check). Returns whether, and the newest backup
--- of it under <state_dir>/backups (statedir.backup: the original).
---@param path string talconfig.yaml
---@param nodes table[] the nodes the run changes ({hostname})
---@param state_dir string the runbooks' state directory (rb.state_dir)
---@return boolean, string? backup
function M.talconfig_edited(path, nodes, state_dir)
  local talconfig = require "talconfig"
  local fs = require "runbook.fs"
  local ok, tc = pcall(talconfig.read, path)
  if not ok then return false end
  local by_name = {}
  for _, n in ipairs(tc.nodes) do by_name[n.hostname] = n end
  for _, n in ipairs(nodes) do
    local now = by_name[n.hostname]
    if not (now and talconfig.tailscale_service_of(now)) then return false end
  end
  -- its backup: the newest of that name under <state_dir>/backups
  -- (statedir.backup, written just before the edit)
  local base = path:match("([^/]*)$")
  local dir = (state_dir or ".runbook") .. "/backups"
  local newest
  for _, f in ipairs(fs.exists(dir) and fs.list(dir) or {}) do
    if f:sub(1, #base + 1) == base .. "." and f:match("%d%d%d%d%d%d%d%dT%d%d%d%d%d%dZ") and (not newest or f > newest) then
      newest = f
    end
  end
  return true, newest and (dir .. "/" .. newest) or nil
end

return M

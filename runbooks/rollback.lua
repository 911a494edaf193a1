-- Returns the cluster to its state before rollout.lua: images, talconfig.yaml, no Tailscale config.
--
-- Works from the journal of a finished or stopped rollout (in the state
-- dir, or in the shared store with --store, from any machine): the schematic
-- the nodes ran before, which nodes were upgraded, and
-- the talconfig.yaml backup. One node at a time, with the rollout's gates.
local rb = require "runbook"
local exec = require "runbook.exec"
local fs = require "runbook.fs"
local rb_journal = require "runbook.journal"
local log = require "runbook.log"
local checks = require "checks"
local factory = require "factory"
local talconfig = require "talconfig"
local talos = require "talos"
local errors = require "runbook.error"

local fmt = string.format

local v = rb.vars{
  talconfig = {type = "string", default = "talconfig.yaml"},
  rollout_journal = {type = "string", desc = "journal of the rollout (default: <state dir>/rollout.journal)"},
  boot_timeout = {type = "number", default = 900},
  poll_interval = {type = "number", default = 10, desc = "seconds between the checks of a gate"},
  api_key = {type = "secret", env = "TS_API_KEY", desc = "Tailscale API key, to delete the nodes' devices (optional)"},
  authkey = {type = "secret", env = "TS_AUTHKEY",
             desc = "only when the restored talconfig.yaml keeps a node's tailscale entry (a node no kept journal records): talhelper substitutes ${TS_AUTHKEY}"},
  tailscale_api = {type = "string", default = "https://api.tailscale.com"},
}
require("statedir").ignore(rb.state_dir, rb.dry_run)   -- git ignores what the runbooks keep (issue #28.6)
-- against `runbook world serve`: its URLs from RUNBOOK_WORLD_URL, never from argv (issue #28.8)
require("served").apply(v, {"tailscale_api"},
                         {tailscale_api = "https://api.tailscale.com"})

local cfg = talconfig.read(v.talconfig)
-- one mutator per cluster (issue #29.3): refused (exit 4, naming the
-- holder) while a rollout or a repair of this cluster runs
rb.cluster(talconfig.cluster_key(cfg))

-- every variable, before anything is read or changed (issue #29.4)
rb.phase("Inputs", function()
  local r = require("inputs").rule
  require("inputs").check(v, {talconfig = r.file, rollout_journal = r.file, boot_timeout = r.positive,
    poll_interval = r.positive, tailscale_api = r.url})
end)

-- what the rollout recorded: every run of it still in effect (issue #28.2:
-- a canary with --limit, then the rest, is undone whole), or the one
-- journal --var rollout_journal names
local journal = v.rollout_journal or (rb.state_dir .. "/rollout.journal")
-- the rollout's steps are found by their keys (rollout.lua gives them:
-- "schematic", "talconfig", "upgrade/<node>"), never by their display names
local rec = {upgraded = {}}
local history = require "history"
local runs, unread = {}, {}
if not v.rollout_journal then runs, unread = history.series(rb.state_dir) end
for _, u in ipairs(unread) do log.warn("a rollout journal that cannot be read is left out: " .. u) end
if #runs > 0 then
  local by_node, order = history.upgrades(runs)
  for i = #order, 1, -1 do rec.upgraded[#rec.upgraded + 1] = order[i] end   -- oldest first, as one journal lists them
  rec.schematic = runs[1].schematic
  local backup = history.first_backup(runs)
  rec.talconfig = backup and {backup = backup} or nil
  function rec.previous(name)
    local id = by_node[name] and by_node[name].previous
    if not id then error(fmt("no rollout journal says which schematic %s ran before", name)) end
    return id
  end
  -- and the one the newest run that upgraded it installed
  function rec.upgraded_to(name)
    return by_node[name] and by_node[name].new
  end
  local list = {}
  for _, run in ipairs(runs) do
    list[#list + 1] = fmt("%s (%s)", run.path, #run.upgraded > 0 and table.concat(run.upgraded, ", ") or "no node upgraded")
  end
  log.info(fmt("undoing %d run(s) of the rollout, newest first: %s", #runs, table.concat(list, "; ")))
  rb.report("Rollout runs undone", list)
elseif not v.rollout_journal and history.last_rollback(rb.state_dir) > 0 then
  error(errors.new("usage", "every run of the rollout was rolled back already (the last finished rollback is newer than "
    .. "every rollout journal): nothing to roll back", {exit = 2}), 0)
else
  if not v.rollout_journal and rb.store() then
    -- a shared store holds the rollout's journals (history.series read
    -- them): the state directory of this machine is not where they are
    error(errors.new("usage", fmt("no rollout journal of this cluster in %s: nothing to roll back (or pass --var rollout_journal=PATH)",
      rb.store()), {exit = 2}), 0)
  end
  if not fs.exists(journal) then
    error(errors.new("usage", fmt("no rollout journal at %s: nothing to roll back (or pass --var rollout_journal=PATH)", journal), {exit = 2}), 0)
  end
  local steps, order = rb_journal.steps(rb_journal.read(journal))
  rec.schematic = steps.schematic and steps.schematic.result
  rec.talconfig = steps.talconfig and steps.talconfig.result
  for _, key in ipairs(order) do
    local node = key:match("^upgrade/(.+)$")
    if node then rec.upgraded[#rec.upgraded + 1] = node end
  end
  if not rec.schematic then
    error(errors.new("usage", journal .. " has no computed schematic (step key 'schematic'): the rollout changed nothing", {exit = 2}), 0)
  end
  -- the schematic each node ran before: per node (one per schematic the
  -- cluster ran), or one for all in journals of earlier versions
  function rec.previous(name)
    local per = type(rec.schematic.nodes) == "table" and rec.schematic.nodes[name]
    local id = per and per.current_id or rec.schematic.current_id
    if not id then error(fmt("the rollout journal does not say which schematic %s ran before", name)) end
    return id
  end
  -- and the one the rollout installed
  function rec.upgraded_to(name)
    local per = type(rec.schematic.nodes) == "table" and rec.schematic.nodes[name]
    return per and per.id or rec.schematic.id
  end
end

local cfg_dir = v.talconfig:match("^(.*)/[^/]*$") or "."
local cp_ips = talconfig.control_plane_ips(cfg.nodes)
local by_name = {}
for _, n in ipairs(cfg.nodes) do by_name[n.hostname] = n end

rb.phase("Nodes", function()
  -- newest first: the last node upgraded goes back first
  for i = #rec.upgraded, 1, -1 do
    local n = by_name[rec.upgraded[i]]
    if not n then error(fmt("node %s of the journal is not in %s", rec.upgraded[i], v.talconfig)) end
    rb.gate("cluster healthy before " .. n.hostname, function() return checks.cluster_healthy(cfg.nodes) end,
            {timeout = 600, interval = v.poll_interval})
    local previous = rec.previous(n.hostname)
    rb.confirm(fmt("Roll %s back to schematic %s?", n.hostname, previous:sub(1, 12)))
    rb.step("remove the Tailscale config of " .. n.hostname, function()
      -- gone already (a rollback run again, --fresh or --resume): nothing to remove
      if not talos.extension_service_configs(n.ip).tailscale then return "none" end
      talos.remove_extension_service_config(n.ip, "tailscale",
        fmt("%s/.tailscale-remove-%s.yaml", v.talconfig:match("^(.*)/[^/]*$") or ".", n.hostname))
    end)
    rb.step("install the previous image on " .. n.hostname, function()
      -- an upgrade to the old installer works whatever the A/B slots hold
      local image = factory.installer(n.image_url, previous, cfg.talos_version, n.secureboot)
      -- a node that runs its previous schematic already (undone by the
      -- rollout itself, by a rollback run before, or a try cut short after
      -- talosctl upgrade) is never rebooted: done, not again
      local state, id = require("landed").upgrade_state(n.ip, previous, rec.upgraded_to(n.hostname),
        {timeout = v.boot_timeout, interval = v.poll_interval, desc = n.hostname .. " reachable"})
      if state == "done" then
        log.info(n.hostname .. " already runs the previous schematic (an earlier try installed it): not again")
        return image
      elseif state ~= "todo" then
        error(fmt("%s is %s: not upgraded; diagnose with recover.lua", n.hostname,
                  state == "other" and ("on schematic " .. tostring(id):sub(1, 12)) or state))
      end
      talos.upgrade(n.ip, image, {boot_timeout = v.boot_timeout})
      return image
    end)
    rb.gate(n.hostname .. " runs the previous schematic", function()
      local ok, _, id = pcall(talos.extensions, n.ip)
      if not ok then return false, "rebooting" end
      return id == previous, "schematic " .. tostring(id):sub(1, 12)
    end, {timeout = v.boot_timeout, interval = v.poll_interval})
    rb.gate(n.hostname .. " Ready", function() return checks.nodes_ready({n.hostname}) end, {timeout = 600, interval = v.poll_interval})
    rb.gate("etcd healthy after " .. n.hostname, function() return checks.etcd_healthy(cp_ips) end, {timeout = 600, interval = v.poll_interval})
    rb.commit()
  end
end)

-- what this rollback could not undo: a node that still runs the tailscale
-- extension though no journal kept records its upgrade (a journal gone, a
-- node rolled by hand), said and reported, not touched (issue #28.2)
do
  local undone = {}
  for _, name in ipairs(rec.upgraded) do undone[name] = true end
  local left = {}
  for _, n in ipairs(cfg.nodes) do
    local ok, exts = pcall(talos.extensions, n.ip)
    local has = false
    for _, e in ipairs(ok and exts or {}) do if e == "tailscale" then has = true end end
    if has and not undone[n.hostname] then left[#left + 1] = n.hostname end
  end
  if #left > 0 then
    log.warn(fmt("not undone: %s run%s the tailscale extension, but no rollout journal kept in %s records %s upgrade; "
      .. "roll %s back with recover.lua --var action=rollback --var node=NAME", table.concat(left, ", "),
      #left == 1 and "s" or "", rb.state_dir, #left == 1 and "its" or "their", #left == 1 and "it" or "them"))
    rb.report("Not undone", left)
  end
end

--- The lines of an apply-config --dry-run diff that undoing the rollout
--- does not explain (configdiff.rollback_surprises: the tailnet name taken
--- from certSANs, the address pins and the tailscale
--- ExtensionServiceConfig removed, the previous install image back).
local reverted_surprises = require("configdiff").rollback_surprises

local regenerated

rb.phase("Files", function()
  if rec.talconfig and rec.talconfig.backup then
    rb.step("restore " .. v.talconfig, function()
      local text = fs.read(rec.talconfig.backup)
      require("statedir").backup(rb.state_dir, v.talconfig, rb.dry_run)   -- under .runbook/, not beside it
      fs.write(v.talconfig, text)
      return rec.talconfig.backup
    end)
  else
    log.warn("the journal has no talconfig.yaml backup: restore it from version control")
  end
  rb.step("remove the Tailscale patch files", function()
    -- safe to repeat: a file already gone is skipped
    local dir = cfg_dir .. "/patches"
    local removed = {}
    -- a file the restored talconfig.yaml still references stays: its node
    -- was rolled by a run no journal kept, and is not undone (issue #28.2)
    local restored = fs.read(v.talconfig)
    for _, n in ipairs(cfg.nodes) do
      -- the address pins; and the key-bearing patch of rollouts before the talhelper-native path
      for _, f in ipairs{fmt("%s/tailscale-pins-%s.yaml", dir, n.hostname), fmt("%s/tailscale-%s.yaml", dir, n.hostname)} do
        local name = f:match("([^/]*)$")
        if fs.exists(f) and not restored:find("patches/" .. name, 1, true) then fs.remove(f); removed[#removed + 1] = f end
      end
    end
    return removed
  end)
  -- the generated configs hold the auth key: generate them again from the
  -- restored talconfig.yaml (without talhelper: remove the nodes' files)
  regenerated = rb.step("regenerate the machine configs without the auth key", function()
    local out = cfg_dir .. "/clusterconfig"
    if not fs.exists(out) then return "none" end
    if rb.dry_run or exec.which("talhelper") then
      local r = exec.run({"talhelper", "genconfig", "-c", v.talconfig, "-o", out},
                         {timeout = 300, env = v.authkey and {TS_AUTHKEY = v.authkey} or nil})
      if r.code ~= 0 and not v.authkey and fs.read(v.talconfig):find("${TS_AUTHKEY}", 1, true) then
        error(fmt("talhelper genconfig needs TS_AUTHKEY: the restored %s keeps a tailscale entry (a node no kept journal "
          .. "records, left as it runs); set TS_AUTHKEY and run rollback.lua --resume", v.talconfig))
      end
      if r.code ~= 0 then error("talhelper genconfig failed: " .. r.stderr:gsub("%s+$", "")) end
      return "regenerated"
    end
    for _, n in ipairs(cfg.nodes) do
      local f = fmt("%s/%s-%s.yaml", out, cfg.cluster_name, n.hostname)
      if fs.exists(f) then fs.remove(f) end
    end
    log.warn("talhelper is not on PATH: the generated configs were removed; run talhelper genconfig again")
    return "removed"
  end)
  -- the nodes still hold the rollout's machine config: the tailnet name in
  -- certSANs, the new install image, the address pins (`talosctl upgrade`
  -- and the config's removal leave them). The restored talconfig.yaml's
  -- config, applied, makes each node what the file says again, so that the
  -- next rollout finds nothing pending; no reboot (CanApplyImmediate)
  if regenerated ~= "regenerated" then
    log.warn("the nodes keep the rollout's certSANs, install image and address pins until talhelper's configs are applied")
    return
  end
  local tailscale = require "tailscale"
  for i = #rec.upgraded, 1, -1 do
    local n = by_name[rec.upgraded[i]]
    rb.step("apply the restored config to " .. n.hostname, function()
      local file = fmt("%s/clusterconfig/%s-%s.yaml", cfg_dir, cfg.cluster_name, n.hostname)
      -- landed already (a try cut short after apply-config): done
      local same, diff = require("landed").runs_config(n.ip, file)
      if same then return file end
      local unexpected = reverted_surprises(diff, tailscale.device_name(n.hostname))
      if #unexpected > 0 then
        error(fmt("the restored config of %s changes more than the rollout did; nothing was applied to it:\n%s",
                  n.hostname, require("configdiff").show(unexpected)))
      end
      talos.run(n.ip, "apply-config", "--file", file)
      return file
    end)
  end
end)

-- the nodes' devices stay in the tailnet, offline, under the nodes' names:
-- a later rollout would register the nodes as <name>-1 and refuses to
-- start while they are there
rb.phase("Tailnet", function()
  local tailscale = require "tailscale"
  local names = {}
  for _, n in ipairs(cfg.nodes) do names[tailscale.device_name(n.hostname)] = true end
  if not v.api_key then
    -- each node keeps its Tailscale state on /var/lib/tailscale (neither
    -- the config's removal nor the previous image touches /var): a later
    -- rollout logs it back in as the same device (TS_STATE_DIR=/var/lib/
    -- tailscale, bound from the host: siderolabs/extensions v1.11.6
    -- network/tailscale/tailscale.yaml). What is left is written
    -- down, the addresses that tell the device apart from another of the
    -- same name, for that rollout to recognise (docs/rollout.md)
    local left = rb.step("name the nodes' devices left in the tailnet", function()
      local out = {}
      local ok, peers = pcall(tailscale.peers)
      for _, n in ipairs(cfg.nodes) do
        local name = tailscale.device_name(n.hostname)
        local entry = {node = n.hostname, device = name, ips = {}}
        for _, p in ipairs(ok and peers or {}) do if p.name == name then entry.ips = p.ips end end
        -- only a device that exists (a node that never joined, or a rollout
        -- cut short before it, has none)
        if #entry.ips > 0 then out[#out + 1] = entry end
      end
      tailscale.record_devices_left(rb.state_dir, out)
      return out
    end)
    local list = {}
    for _, d in ipairs(left) do list[#list + 1] = d.device end
    if #list == 0 then
      log.info("no device of the nodes is in the tailnet: nothing left there")
      return
    end
    log.warn(fmt("the nodes' devices (%s) stay in the tailnet, offline: the next rollout takes them back (each node kept "
      .. "its Tailscale state); to remove them, delete them in the admin console or run again with TS_API_KEY set",
      table.concat(list, ", ")))
    return
  end
  rb.step("delete the nodes' devices from the tailnet", function()
    -- safe to repeat: only the devices listed now are deleted
    local deleted = {}
    for _, d in ipairs(tailscale.devices(v.tailscale_api, v.api_key)) do
      local short = (d.name or ""):match("^([^.]+)")
      if short and names[short] then
        tailscale.delete_device(v.tailscale_api, v.api_key, d.id)
        deleted[#deleted + 1] = short
      end
    end
    return deleted
  end)
end)

rb.phase("Documentation", function()
  local sheet = cfg_dir .. "/TAILSCALE-ACCESS.md"
  if fs.exists(sheet) then
    rb.step("remove the access sheet", function() fs.remove(sheet) return sheet end)
  end
  -- what is left behind on purpose: the rollout's backups (machine configs
  -- and etcd snapshot, 0600, git-ignored), for a restore by hand
  local state = rb.state_dir
  local kept = {}
  for _, f in ipairs(fs.exists(state .. "/backups") and fs.list(state .. "/backups") or {}) do
    if f:match("^rollout%-") then kept[#kept + 1] = state .. "/backups/" .. f end
  end
  table.sort(kept)
  if #kept > 0 then
    log.info("kept: the rollout's backups (machine configs and etcd snapshots, 0600) in " .. table.concat(kept, ", ")
             .. "; remove them once they are no longer needed")
    rb.report("Backups left", kept)
  end
end)

-- Emergency diagnosis of every node over LAN and tailnet, then repair actions behind confirmations.
--
-- Without --var action=... it only diagnoses (read-only). Actions:
-- restart (ext-tailscale), rekey (new auth key), snapshot (etcd),
-- rollback (Talos, to the previous image), reboot. Destructive actions
-- (rollback, reboot) take an etcd snapshot first. A rollback first asks
-- the node which schematic it runs and refuses (exit 1) unless it is the
-- one it was upgraded to (recovery.boot_state, as the rollout's undo).
local rb = require "runbook"
local log = require "runbook.log"
local recovery = require "recovery"
local talconfig = require "talconfig"
local tailscale = require "tailscale"

local fmt = string.format

local v = rb.vars{
  talconfig = {type = "string", default = "talconfig.yaml"},
  tailnet = {type = "string", desc = "tailnet DNS suffix (default: from tailscale status, if it answers)"},
  action = {type = "string", default = "none", choices = {"none", "restart", "rekey", "snapshot", "rollback", "reboot"}},
  node = {type = "string", desc = "the node the action applies to (hostname)"},
  authkey = {type = "secret", env = "TS_AUTHKEY", desc = "new auth key, for action=rekey"},
  snapshot_dir = {type = "string", default = ".runbook/snapshots"},
  rollout_journal = {type = "string", desc = "the rollout's journal, for action=rollback (default: <state dir>/rollout.journal)"},
}
require("statedir").ignore(rb.state_dir, rb.dry_run)   -- git ignores what the runbooks keep (issue #28.6)

local cfg = talconfig.read(v.talconfig)
-- one mutator per cluster (issue #29.3): a repair takes the cluster's lock,
-- a diagnosis (action=none) none
rb.cluster(talconfig.cluster_key(cfg), {read_only = v.action == "none"})
local target
if v.action ~= "none" then
  for _, n in ipairs(cfg.nodes) do if n.hostname == v.node then target = n end end
  if not target then
    error(require("runbook.error").new("usage", "action " .. v.action .. " needs --var node=<hostname of a node in " .. v.talconfig .. ">", {exit = 2}), 0)
  end
  if v.action == "rekey" and not v.authkey then
    error(require("runbook.error").new("usage", "action rekey needs the new key in TS_AUTHKEY or --var authkey_file=PATH", {exit = 2}), 0)
  end
end

local findings
rb.phase("Diagnose", function()
  local suffix = v.tailnet
  if not suffix then
    local ok, _, st = pcall(tailscale.peers)
    suffix = ok and st.MagicDNSSuffix and st.MagicDNSSuffix:gsub("%.$", "") or nil
    if not ok then log.warn("tailscale status does not answer: diagnosing over the LAN only") end
  end
  local results, etcd = recovery.diagnose(cfg.nodes, suffix)
  findings = recovery.summarize(results, etcd)
  for _, l in ipairs(findings) do log.info(l) end
  rb.report("Findings", table.concat(findings, "\n\n"))
end)

if v.action == "none" then return end

rb.phase("Repair " .. target.hostname, function()
  local healthy_cp
  for _, n in ipairs(cfg.nodes) do
    if n.control_plane and n.hostname ~= target.hostname then healthy_cp = healthy_cp or n end
  end
  -- action=snapshot: the snapshot of the node asked for (it must run
  -- etcd); before a rollback or reboot: from another control plane, the
  -- one being repaired may not answer
  if v.action == "snapshot" then
    if not target.control_plane then
      error(require("runbook.error").new("usage", target.hostname .. " is a worker: it runs no etcd to snapshot", {exit = 2}), 0)
    end
    rb.step("etcd snapshot of " .. target.hostname, function()
      return recovery.etcd_snapshot(target.ip, v.snapshot_dir, target.hostname)
    end)
    return
  elseif v.action == "rollback" then
    -- `talosctl rollback` boots the other A/B slot whatever the node runs:
    -- after Talos's own fallback that is the image that failed
    rb.step("which schematic " .. target.hostname .. " runs", function()
      -- the rollout's journal: in the shared store when the run uses one
      -- (another machine's rollout), else in the state directory
      local want, why = not v.rollout_journal and rb.store() and require("history").upgraded_to(rb.state_dir, target.hostname)
      if not want then
        want, why = recovery.expected_schematics(target, v.rollout_journal or (not rb.store() and (rb.state_dir .. "/rollout.journal") or nil))
      end
      if not want then
        error(require("runbook.error").new("refused", fmt("%s: not rolled back, the image it should run is unknown: %s",
          target.hostname, why), {exit = 1}), 0)
      end
      local state, id = recovery.node_boot_state(target.ip, want)
      local refusal = recovery.rollback_refusal(target.hostname, state, id, want)
      if refusal then error(require("runbook.error").new("refused", refusal, {exit = 1}), 0) end
      return {node = target.hostname, state = state, schematic = id, from = want.from}
    end, {read_only = true})
  end
  if v.action == "rollback" or v.action == "reboot" then
    local from = healthy_cp or target
    rb.step(string.format("etcd snapshot from %s before the %s", from.hostname, v.action), function()
      return recovery.etcd_snapshot(from.ip, v.snapshot_dir, from.hostname)
    end)
  end
  rb.confirm(string.format("%s on %s (%s)?", v.action, target.hostname, target.ip))
  rb.step(v.action .. " " .. target.hostname, function()
    if v.action == "restart" then recovery.restart_tailscale(target.ip)
    elseif v.action == "rekey" then
      -- the patch holds the new key: a private directory, removed at once,
      -- never the talhelper directory (git would pick it up there)
      local fs = require "runbook.fs"
      local dir = rb.dry_run and "/tmp/runbook-rekey.rehearsal" or fs.tmpdir("runbook-rekey")
      local file = string.format("%s/tailscale-%s.yaml", dir, target.hostname)
      local ok, err = pcall(recovery.rekey, target.ip, target.hostname, v.authkey, cfg.svc_cidrs, file)
      if fs.exists(file) then fs.remove(file) end
      if fs.exists(file .. ".remove") then fs.remove(file .. ".remove") end
      fs.remove(dir)
      if not ok then error(err, 0) end
    elseif v.action == "rollback" then recovery.rollback(target.ip)
    elseif v.action == "reboot" then recovery.reboot(target.ip) end
    return target.hostname
  end)
end)

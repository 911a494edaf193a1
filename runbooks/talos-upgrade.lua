-- Upgrades every node to a new Talos version (--var version=vX.Y.Z), each keeping its schematic and extensions.
--
-- Phases (docs/talos-upgrade.md): 1 Checks, 2 Files, 3 Nodes (the shared
-- procedure, lib/rolling_upgrade.lua). Kubernetes is not upgraded: that is
-- `talosctl upgrade-k8s`, out of scope. Rehearse with --dry-run.
local rb = require "runbook"
local http = require "runbook.http"
local fs = require "runbook.fs"
local log = require "runbook.log"
local errors = require "runbook.error"

local checks = require "checks"
local extensions = require "extensions"
local factory = require "factory"
local rolling = require "rolling_upgrade"
local talconfig = require "talconfig"
local talos = require "talos"

local fmt = string.format

local v = rb.vars{
  version = {type = "string", desc = "the Talos version every node goes to (vX.Y.Z)"},
  talconfig = {type = "string", default = "talconfig.yaml", desc = "talhelper's config file"},
  talosconfig = {type = "string", desc = "talosconfig for talosctl (default: talosctl's own)"},
  factory_url = {type = "string", default = factory.DEFAULT_URL},
  limit = {type = "list", desc = "upgrade only these nodes (--limit); the gates still check the whole cluster"},
  exclude = {type = "list", desc = "leave these nodes out (--exclude)"},
  batch = {type = "string", default = "1", desc = "workers at once: a count (5) or a percentage (25%); control planes one at a time"},
  max_failures = {type = "integer", default = 0, desc = "workers that may fail, each undone, before the run stops"},
  pause_after_first = {type = "boolean", default = false, desc = "stop (exit 0) once the first node passed every gate; --resume goes on"},
  confirm_each = {type = "boolean", default = false, desc = "also ask before each node (the plan is always confirmed once)"},
  boot_timeout = {type = "number", default = 900, desc = "seconds a node may take to come back"},
  poll_interval = {type = "number", default = 10, desc = "seconds between the checks of a gate"},
}

local function usage(msg) error(errors.new("usage", msg .. ". Nothing was changed", {exit = 2}), 0) end

talos.talosconfig = v.talosconfig
local target = v.version
if not target then usage("--var version=vX.Y.Z is missing: the Talos version to upgrade to") end
if not target:match("^v?%d+%.%d+%.%d+$") then usage(fmt("--var version=%s: a release tag vX.Y.Z expected", target)) end
if target:sub(1, 1) ~= "v" then target = "v" .. target end
local _, tminor, tpatch = talos.parse_version(target)
rolling.lock_cluster(v.talconfig)

--- Whether Talos supports going from `from` to the target in one upgrade:
--- "this migration is only tested between adjacent minor releases", the
--- recommended path being the latest patch of every minor in between
--- (website/content/v1.11/talos-guides/upgrading-talos.md, "Supported
--- Upgrade Paths", siderolabs/talos v1.11.0; the same text v1.8 .. v1.13).
--- A downgrade is refused too (this runbook does not go back: rollback is
--- the undo). Returns nil, or why not.
local function jump_problem(from)
  local _, fminor, fpatch = talos.parse_version(from)
  if not fminor then return fmt("cannot read the version %s", tostring(from)) end
  if fminor > tminor or (fminor == tminor and fpatch > tpatch) then
    return fmt("%s is newer than %s: this runbook does not downgrade", from, target)
  end
  if tminor > fminor + 1 then
    return fmt("%s to %s skips v1.%d: Talos tests upgrades between adjacent minors only (upgrading-talos.md, "
      .. "\"Supported Upgrade Paths\"): go to the latest v1.%d.x first", from, target, fminor + 1, fminor + 1)
  end
end

local cfg, current, server_versions, plan

--- Warnings for nodes that go to the next minor from a patch older than
--- the latest of their minor the factory offers.
local function latest_patch_skipped(offered)
  local out, said = {}, {}
  for _, n in ipairs(cfg.nodes) do
    local from = server_versions[n.ip]
    local _, fminor, fpatch = talos.parse_version(from)
    if fminor and fminor < tminor and not said[from] then
      local best = fpatch
      for _, ver in ipairs(offered) do
        local _, m, p = talos.parse_version(ver)
        if m == fminor and tostring(ver):match("^v%d+%.%d+%.%d+$") and p > best then best = p end
      end
      if best > fpatch then
        said[from] = true
        out[#out + 1] = fmt("nodes on %s skip v1.%d.%d, the latest patch of their minor: Talos recommends upgrading to it "
          .. "first (upgrading-talos.md, \"Supported Upgrade Paths\")", from, fminor, best)
      end
    end
  end
  return out
end

-- {====== 1. Checks: nothing changes before every one passed

rb.phase("Checks", function()
  local pre = talconfig.read(v.talconfig)
  rolling.protect_env(pre.text)
  talconfig.check_installers(pre, factory.parse_image)
  rb.gate("cluster healthy before anything changes", function() return checks.cluster_healthy(pre.nodes) end,
          {timeout = 300, interval = v.poll_interval})
  cfg = pre
  local ips = {}
  for _, n in ipairs(cfg.nodes) do ips[#ips + 1] = n.ip end
  local vers = talos.versions(ips)
  server_versions = vers.servers
  local problems = {}
  if tminor < talos.MIN_MINOR or tminor > talos.MAX_MINOR then
    problems[#problems + 1] = fmt("%s is outside the supported v1.%d .. v1.%d", target, talos.MIN_MINOR, talos.MAX_MINOR)
  end
  -- talosctl is upgraded first: Talos asks that it match the cluster, and
  -- a client older than its nodes is not supported (talos.version_problems)
  local _, cminor = talos.parse_version(vers.client or "")
  if cminor and cminor < tminor then
    problems[#problems + 1] = fmt("talosctl is %s, older than %s: upgrade talosctl to %s first", vers.client, target, target)
  end
  for _, n in ipairs(cfg.nodes) do
    local tag = vers.servers[n.ip]
    if not tag then problems[#problems + 1] = fmt("cannot read the Talos version of %s", n.hostname)
    elseif tag ~= target then
      local why = jump_problem(tag)
      if why then problems[#problems + 1] = n.hostname .. ": " .. why end
    end
  end
  if #problems > 0 then usage("the upgrade is refused: " .. table.concat(problems, "; ")) end

  current = rb.step("read each node's extensions", function() return rolling.read_nodes(cfg.nodes) end, {read_only = true})

  local sel = rolling.select{all = cfg.nodes, limit = v.limit, exclude = v.exclude, file = v.talconfig,
    done = function(n)
      if server_versions[n.ip] == target then return true, "already on Talos " .. target end
      return false
    end}
  cfg.all, cfg.nodes = cfg.nodes, sel.nodes
  if #cfg.nodes == 0 then log.info("every node chosen already runs Talos " .. target .. ": nothing to do") return end

  -- the factory builds installer/<schematic>:<version> only for a version
  -- it offers, and an extension only where that version has it
  plan = rb.step("check the factory has every extension for " .. target, function()
    local r = http.get(v.factory_url .. "/versions", {timeout = 60, check = true})
    local known = false
    for _, ver in ipairs(r:json()) do if ver == target then known = true end end
    if not known then error(fmt("the Image Factory does not offer Talos %s", target), 0) end
    -- the recommended path goes through the latest patch of the current
    -- minor first (upgrading-talos.md): said, not enforced
    for _, from in ipairs(latest_patch_skipped(r:json())) do log.warn(from) end
    local offered = factory.official_extensions(target, v.factory_url)
    local out, seen = {}, {}
    for _, n in ipairs(cfg.nodes) do
      local cur = current[n.hostname]
      local s = seen[cur.schematic]
      if not s then
        s = factory.fetch(cur.schematic, v.factory_url)
        if not s then error(fmt("the factory does not know %s's schematic %s", n.hostname, cur.schematic), 0) end
        seen[cur.schematic] = s
      end
      local missing = factory.unavailable(s, offered)
      if #missing > 0 then
        error(fmt("Talos %s has no official %s at the factory: %s's installer would lack it. Nothing was changed",
                  target, table.concat(missing, ", "), n.hostname), 0)
      end
      -- every extension the node runs must be in the schematic it keeps:
      -- a plain installer silently drops the others
      local in_schematic = {}
      for _, e in ipairs(factory.extensions(s)) do in_schematic[e:match("([^/]+)$")] = true end
      for _, e in ipairs(cur.extensions) do
        if not in_schematic[e] then
          error(fmt("%s runs the extension %s, which its schematic %s lacks: the installer would drop it. Nothing was changed",
                    n.hostname, e, cur.schematic:sub(1, 12)), 0)
        end
      end
      local services = {}
      for _, e in ipairs(factory.extensions(s)) do
        for _, id in ipairs(extensions.services(e)) do services[#services + 1] = id end
      end
      out[n.hostname] = {schematic = cur.schematic, installer = factory.installer(n.image_url, cur.schematic, target, n.secureboot),
                         extensions = factory.extensions(s), services = services, from = server_versions[n.ip]}
    end
    return out
  end, {read_only = true, retries = 3, backoff = 5})

  rb.step("check that nothing else is pending in " .. v.talconfig, function()
    return rolling.nothing_pending{talconfig = v.talconfig, nodes = cfg.all, cluster_name = cfg.cluster_name}
  end, {read_only = true})
end)

-- }======

-- {====== 2. Files: talosVersion, the talhelper way

local edited, backups
rb.phase("Files", function()
  if not plan or #cfg.nodes == 0 then return end
  edited = edited or talconfig.editor(fs.read(v.talconfig), v.talconfig):set_talos_version(target):apply()
  local lines = {fmt("the plan: %d nodes to Talos %s, each keeping its schematic (Kubernetes is not upgraded):", #cfg.nodes, target)}
  for _, n in ipairs(cfg.nodes) do
    local p = plan[n.hostname]
    lines[#lines + 1] = fmt("  %s (%s): %s -> %s, talosctl upgrade --image %s (extensions: %s)", n.hostname, n.ip, p.from,
      target, p.installer, #p.extensions > 0 and table.concat(p.extensions, ", ") or "none")
  end
  if not rb.is_done("talconfig") then
    local d = require("runbook.diff").unified(fs.read(v.talconfig), edited, v.talconfig)
    lines[#lines + 1] = fmt("  %s:\n%s", v.talconfig, (d:gsub("\n$", "")))
  end
  log.info(table.concat(lines, "\n"))
  rb.confirm(fmt("Upgrade %d nodes to Talos %s (files first, then %s)?", #cfg.nodes, target,
                 rolling.pace(cfg.nodes, v.batch, v.max_failures)))
  backups = rb.step("back up the machine configs", function() return rolling.backup(cfg.all, "talos-upgrade") end,
                    {key = "backups"})
  rb.report("Backups", {directory = backups.dir})
  rb.step("update " .. v.talconfig, function()
    return {backup = fs.write(v.talconfig, edited, {backup = true})}
  end, {key = "talconfig"})
end)

-- }======

-- {====== 3. Nodes

local failed = {}
rb.phase("Nodes", function()
  if not plan or #cfg.nodes == 0 then return end
  local files = rb.step("generate the machine configs (talhelper genconfig)", function()
    return rolling.generate(v.talconfig, cfg.nodes, cfg.cluster_name)
  end)
  local entries = {}
  for _, n in ipairs(cfg.nodes) do
    local p = plan[n.hostname]
    -- the generated config differs from the node's in its install image
    -- only (talhelper writes talosVersion's tag on it); applied first, so
    -- that the node's config names the installer it runs
    entries[#entries + 1] = {
      node = n, installer = p.installer, extensions = p.extensions, services = p.services,
      want = {schematic = p.schematic, version = target}, previous = {schematic = p.schematic, version = p.from},
      config = {file = files[n.hostname], expect = {image = p.installer},
                -- undone: the config the node ran before, from the backup
                undo = function() talos.run(n.ip, "apply-config", "--file", backups.configs[n.hostname]) end},
    }
  end
  failed = rolling.run{entries = entries, all = cfg.all, cp_ips = talconfig.control_plane_ips(cfg.all), batch = v.batch,
                       max_failures = v.max_failures, pause_after_first = v.pause_after_first, confirm_each = v.confirm_each,
                       boot_timeout = v.boot_timeout, poll_interval = v.poll_interval}
  local rows = {}
  for _, n in ipairs(cfg.nodes) do rows[n.hostname] = fmt("%s -> %s, schematic %s", plan[n.hostname].from, target,
                                                          plan[n.hostname].schematic:sub(1, 12)) end
  rb.report("Upgraded", rows)
end)

-- }======

rolling.fail_partial(failed, v.max_failures, "runs Talos " .. target)

--- rolling_upgrade: the node-by-node procedure every Talos operation of
--- this project runs (docs/rolling-upgrade.md). A plan gives, per node,
--- the config to apply (checked by its --dry-run diff), the installer to
--- upgrade to, what the node must run afterwards and what it ran before;
--- run() takes the control planes one at a time, then the workers in
--- batches within a failure budget, with the cluster gate before each
--- node or batch, the gates after, and the undo decision table (ask the
--- node what it runs) after a failure. select() and batch_size() are the
--- --limit/--exclude and --var batch rules; nothing_pending() the check
--- that talconfig.yaml holds nothing the nodes do not run yet.
local rb = require "runbook"
local async = require "runbook.async"
local errors = require "runbook.error"
local exec = require "runbook.exec"
local fs = require "runbook.fs"
local log = require "runbook.log"

local checks = require "checks"
local configdiff = require "configdiff"
local talhelper = require "talhelper"
local talos = require "talos"

local M = {}
local fmt = string.format

local function usage(msg) error(errors.new("usage", msg, {exit = 2}), 0) end

local function names_of(nodes)
  local out = {}
  for _, n in ipairs(nodes) do out[#out + 1] = n.hostname end
  return out
end

---@class rolling_upgrade.SelectOpts
---@field all table[] every node of talconfig.yaml (hostname, ip, control_plane, group_key, schematic_at)
---@field limit? string[] --limit
---@field exclude? string[] --exclude
---@field file string talconfig.yaml's name, for messages
---@field done fun(n:table):(boolean, string?) whether the node has the change already (and why)
---@field group_blocks? boolean a schematic: block of a group is shared: refuse to change part of a group
---@field shares_ok? fun(n:table):boolean a group member this run may leave out (default: done)
---@field refuse_empty? boolean --limit/--exclude that choose no node at all are refused (exit 2)
---@field say_done? fun(n:table, why:string):string the log line for a node left as it is

--- Takes the cluster's lock (one mutator per cluster, issue #29.3: the
--- same lock as rollout, rollback and recover's repairs), named by
--- talconfig.yaml's clusterName and endpoint; before the first phase.
---@param path string talconfig.yaml
function M.lock_cluster(path)
  local talconfig = require "talconfig"
  local ok, c = pcall(talconfig.read, path)
  require("runbook").cluster(ok and talconfig.cluster_key(c) or ("talconfig " .. path))
end

--- A choice that leaves no node is a mistake, not "nothing to do".
local function refuse_empty(o, wanted, left_out)
  for _, n in ipairs(o.all) do
    if (not wanted or wanted[n.hostname]) and not left_out[n.hostname] then return end
  end
  usage(fmt("%s%s choose no node of %s; nothing was changed",
            o.limit and ("--limit " .. (#o.limit > 0 and table.concat(o.limit, ",") or "(no name)")) or "",
            o.exclude and (" --exclude " .. table.concat(o.exclude, ",")) or "", o.file))
end

--- The nodes a run changes: every node, or those of --limit less
--- --exclude, less the nodes already done (a second run, or one after a
--- limited run, goes on with the rest). An unknown name is refused
--- (exit 2). Returns {nodes, all, skipped = {{hostname, why, node}}}.
---@param o rolling_upgrade.SelectOpts
---@return table
function M.select(o)
  local known = {}
  for _, n in ipairs(o.all) do known[n.hostname] = n end
  for _, pair in ipairs{{o.limit, "--limit"}, {o.exclude, "--exclude"}} do
    for _, name in ipairs(pair[1] or {}) do
      if not known[name] then
        usage(fmt("%s names %s, which %s does not have (its nodes: %s)", pair[2], name, o.file,
                  table.concat(names_of(o.all), ", ")))
      end
    end
  end
  local wanted, left_out = nil, {}
  if o.limit then wanted = {} for _, name in ipairs(o.limit) do wanted[name] = true end end
  for _, name in ipairs(o.exclude or {}) do left_out[name] = true end
  if o.refuse_empty then refuse_empty(o, wanted, left_out) end
  local out = {nodes = {}, all = o.all, skipped = {}}
  for _, n in ipairs(o.all) do
    local done, why = o.done(n)
    if done then
      out.skipped[#out.skipped + 1] = {hostname = n.hostname, why = why or "done", node = n}
      log.info(o.say_done and o.say_done(n, why) or fmt("%s: %s; left as it is", n.hostname, why or "done already"))
    elseif (not wanted or wanted[n.hostname]) and not left_out[n.hostname] then
      out.nodes[#out.nodes + 1] = n
    end
  end
  if o.group_blocks then
    local chosen = {}
    for _, n in ipairs(out.nodes) do chosen[n.hostname] = true end
    for _, n in ipairs(out.nodes) do
      for _, other in ipairs(n.schematic_at == "group" and o.all or {}) do
        if other.group_key == n.group_key and other.schematic_at == "group" and not chosen[other.hostname]
           and not (o.shares_ok or o.done)(other) then
          usage(fmt("%s's schematic is the %s: group's, which %s shares and this run leaves out: limit to the whole "
                    .. "group, or give %s a schematic: block of its own", n.hostname, n.group_key, other.hostname, n.hostname))
        end
      end
    end
  end
  if #out.nodes < #o.all and #out.nodes > 0 then
    log.info(fmt("this run changes %d of %d nodes: %s", #out.nodes, #o.all, table.concat(names_of(out.nodes), ", ")))
  end
  return out
end

--- The workers changed at once: a count ("5") or a percentage of the
--- workers ("25%"), at least 1; anything else is refused (exit 2).
---@param spec string --var batch
---@param workers integer
---@return integer
function M.batch_size(spec, workers)
  local s = tostring(spec):match("^%s*(.-)%s*$")
  local pct, count = s:match("^(%d+)%%$"), s:match("^%d+$")
  local size = pct and math.ceil(tonumber(pct) * workers / 100) or count and tonumber(s)
  if not size or (pct and (tonumber(pct) < 1 or tonumber(pct) > 100)) or (count and size < 1) then
    usage(fmt("--var batch=%s: a count of workers (5) or a percentage of them (25%%) expected", tostring(spec)))
  end
  return math.max(1, math.min(size, math.max(workers, 1)))
end

--- The pace in words, for the one confirmation.
---@param nodes table[]
---@param spec string
---@param max_failures integer
---@return string
function M.pace(nodes, spec, max_failures)
  local w = 0
  for _, n in ipairs(nodes) do if not n.control_plane then w = w + 1 end end
  local size = M.batch_size(spec, w)
  if size == 1 then return "one node at a time" end
  return fmt("control planes one at a time, workers %d at a time, up to %d failed", size, max_failures)
end

---@class rolling_upgrade.PendingOpts
---@field talconfig string
---@field nodes table[] every node (nothing may be pending anywhere)
---@field cluster_name string
---@field env? table environment for talhelper (a secret it substitutes)
---@field dir? string where to generate (default a private temporary directory; removed afterwards)
---@field inspect? fun(n:table, file:string) a further check of each node's generated file (raises)
---@field note? string what the masked diffs may hide, for the refusal

--- Before anything changes: what talconfig.yaml says now must be what
--- every node runs. talhelper genconfig into a private directory (gone
--- afterwards: the configs hold the cluster's secrets), then each node's
--- apply-config --dry-run diff must be "No changes."; else refused with
--- the diffs, environment values masked.
---@param o rolling_upgrade.PendingOpts
---@return integer nodes checked
function M.nothing_pending(o)
  if not (rb.dry_run or exec.which("talhelper")) then
    usage("talhelper is not on PATH: the runbook generates the nodes' configs with it (talhelper genconfig)")
  end
  local dir = rb.dry_run and "/tmp/runbook-genconfig.rehearsal" or o.dir or fs.tmpdir("runbook-genconfig")
  local pending = {}
  local ok, err = pcall(function()
    local r = exec.run({"talhelper", "genconfig", "-c", o.talconfig, "-o", dir}, {timeout = 300, env = o.env})
    if r.code ~= 0 then error("talhelper genconfig failed: " .. (r.stdout .. r.stderr):gsub("%s+$", ""), 0) end
    local written = talhelper.generated_files(r.stdout)
    for _, n in ipairs(o.nodes) do
      local file = written[n.hostname] or fmt("%s/%s-%s.yaml", dir, o.cluster_name, n.hostname)
      if o.inspect then o.inspect(n, file) end
      local diff = talos.config_diff(n.ip, file)
      if not diff:match("^No changes%.") then pending[#pending + 1] = n.hostname .. ":\n" .. configdiff.mask(diff) end
    end
  end)
  if fs.exists(dir) then
    for _, f in ipairs(fs.list(dir)) do fs.remove(dir .. "/" .. f) end
    fs.remove(dir)
  end
  if not ok then error(err, 0) end
  if #pending > 0 then
    error(fmt("%s holds changes the nodes do not run yet; apply or revert them first (talhelper genconfig, then talosctl "
      .. "apply-config), nothing was changed (environment values %s):\n%s", o.talconfig, o.note or "masked",
      table.concat(pending, "\n")), 0)
  end
  return #o.nodes
end

--- talhelper genconfig into DIR/clusterconfig, as the operator runs it;
--- each node's file must be one git ignores (it holds the cluster's
--- secrets). Returns hostname -> file.
---@param talconfig string
---@param nodes table[]
---@param cluster_name string
---@param env? table
---@return table<string, string>
function M.generate(talconfig, nodes, cluster_name, env)
  local dir = (talconfig:match("^(.*)/[^/]*$") or ".") .. "/clusterconfig"
  local r = exec.run({"talhelper", "genconfig", "-c", talconfig, "-o", dir}, {timeout = 300, env = env})
  if r.code ~= 0 then error("talhelper genconfig failed: " .. (r.stdout .. r.stderr):gsub("%s+$", ""), 0) end
  local written, out = talhelper.generated_files(r.stdout), {}
  for _, n in ipairs(nodes) do
    local path = written[n.hostname] or fmt("%s/%s-%s.yaml", dir, cluster_name, n.hostname)
    local d, name = path:match("^(.*)/([^/]*)$")
    local ignored, how = talhelper.ignored(d, name, not rb.dry_run)
    if not ignored then
      error(fmt("git would not ignore %s (%s), which holds the cluster's secrets: add it to %s/.gitignore first", path, how, d), 0)
    end
    out[n.hostname] = path
  end
  return out
end

--- Each node's machine config (0600) in a private directory of the state
--- dir that git ignores, before any node changes (safe to repeat: a new
--- directory each time, none overwritten); with etcd_from, an etcd
--- snapshot of that member too, checked (docs/access-and-recovery.md).
--- Returns {dir, configs, etcd?}.
---@param nodes table[]
---@param tag string the directory's prefix ("extension", "talos-upgrade", "rollout")
---@param etcd_from? string a control plane's address
---@return table
function M.backup(nodes, tag, etcd_from)
  local state = rb.state_dir
  local dir = fmt("%s/backups/%s-%s", state, tag, (require("runbook.time").iso():gsub("[-:]", "")))
  fs.mkdir_p(dir, tonumber("700", 8))
  fs.write(state .. "/backups/.gitignore", etcd_from and "# machine configs and etcd snapshots hold the cluster's secrets\n*\n"
           or "# machine configs hold the cluster's secrets\n*\n")
  local out = {dir = dir, configs = {}}
  for _, n in ipairs(nodes) do
    local file = fmt("%s/%s.machineconfig.yaml", dir, n.hostname)
    fs.write(file, talos.machine_config(n.ip), {mode = tonumber("600", 8)})
    out.configs[n.hostname] = file
  end
  if etcd_from then out.etcd = talos.etcd_snapshot(etcd_from, dir .. "/etcd.snapshot") end
  return out
end

--- The backups as report rows (rb.report).
---@param b table from backup()
---@return table
function M.backup_rows(b)
  local rows = {directory = b.dir}
  for name, f in pairs(b.configs) do rows["machine config of " .. name] = f end
  if b.etcd then
    rows["etcd snapshot"] = fmt("%s (%d bytes, hash %s, revision %d)", b.etcd.file, b.etcd.size, b.etcd.hash, b.etcd.revision)
  end
  return rows
end

--- The nodes' schematics and extensions, read once: hostname ->
--- {schematic, extensions}. A node without a schematic was not installed
--- from the Image Factory: refused.
---@param nodes table[]
---@return table
function M.read_nodes(nodes)
  local list = async.map(nodes, function(n)
    local exts, id = talos.extensions(n.ip)
    if not id then error(fmt("%s reports no schematic: it was not installed from the Image Factory", n.hostname), 0) end
    return {schematic = id, extensions = exts}
  end)
  local out = {}
  for i, n in ipairs(nodes) do out[n.hostname] = list[i] end
  return out
end

--- The environment variables talconfig.yaml names (${VAR}) that look like
--- secrets (KEY, TOKEN, SECRET, PASS in the name: TS_AUTHKEY) become
--- secrets of this run when they are set: talhelper substitutes them into
--- the configs this run generates and diffs, and no output may show them.
---@param text string talconfig.yaml
---@return string[] the names registered
function M.protect_env(text)
  local out, seen = {}, {}
  for name in tostring(text):gmatch("%${([%a_][%w_]*)") do
    local up = name:upper()
    if not seen[name] and (up:find("KEY", 1, true) or up:find("TOKEN", 1, true) or up:find("SECRET", 1, true)
                           or up:find("PASS", 1, true)) and (os.getenv(name) or "") ~= "" then
      seen[name] = true
      require("runbook.secret").env(name)
      out[#out + 1] = name
    end
  end
  return out
end

-- {====== the decision table

--- What a node runs now, against what the plan wants of it: "new" (the
--- wanted schematic and version), "old" (the previous ones), "other", or
--- "unreachable". Returns the state and what the node said.
---@param n table {ip}
---@param want {schematic:string, version?:string}
---@param previous {schematic:string, version?:string}
---@param schematic_only? boolean the version is not asked (a run that never changes it)
---@return string state, table? seen {schematic, version, extensions}
function M.node_state(n, want, previous, schematic_only)
  local ok, exts, id = pcall(talos.extensions, n.ip)
  if not ok then return "unreachable" end
  local vok, vers = false, nil
  if not schematic_only then vok, vers = pcall(talos.versions, {n.ip}) end
  local version = vok and vers.servers[n.ip] or nil
  local seen = {schematic = id, version = version, extensions = exts}
  local function is(x) return id == x.schematic and (x.version == nil or version == x.version) end
  if is(want) then return "new", seen end
  if is(previous) then return "old", seen end
  return "other", seen
end

local function describe(x)
  return fmt("schematic %s%s", tostring(x.schematic):sub(1, 12), x.version and (" on Talos " .. x.version) or "")
end

--- How the gates and messages name things; a run may say it its own way
--- (o.words: the rollout names schematics, not images). Each takes the
--- entry (or the batch) and gives the text.
local WORDS = {
  want = function(e) return describe(e.want) end,   -- "<node> runs <want>"
  fell_back = function(e)
    return e.node.hostname .. " came back on its previous image: the new one failed to boot and Talos fell back"
  end,
  kept = function(e) return e.node.hostname .. " runs its previous image: no rollback (it would boot the other slot)" end,
  lacks = function(e, missing)
    return fmt("%s booted %s but lists no %s: the image lacks it", e.node.hostname, describe(e.want),
               table.concat(missing, ", "))
  end,
  booted = function(_, seen) return describe(seen) .. fmt(" with %d extensions", #seen.extensions) end,
  batch = function(names, b, nb) return fmt("batch %d/%d (%s)", b, nb, table.concat(names, ", ")) end,
  confirm = function(batch, what) return fmt("Upgrade %s to %s?", what, describe(batch[1].want)) end,
}

local function words(o)
  local out = {}
  for k, f in pairs(WORDS) do out[k] = (o.words or {})[k] or f end
  return out
end

--- What the node runs, asked until it answers (at most the boot timeout:
--- it may be mid-boot).
local function ask_waiting(e, o)
  local state, seen
  pcall(async.wait_until, function()
    state, seen = M.node_state(e.node, e.want, e.previous, o.schematic_only)
    return state ~= "unreachable", state
  end, {timeout = o.boot_timeout, interval = o.poll_interval, desc = e.node.hostname .. " reachable"})
  return state, seen
end

--- The undo of a node's upgrade (docs/rolling-upgrade.md, "Undo"): ask
--- the node, waiting up to the boot timeout for it to answer. new: roll
--- back (`talosctl rollback` boots the other A/B slot, whatever it holds:
--- bootloader/grub/revert.go, so only a node on the new image is rolled
--- back), wait for the previous image, Ready; old: nothing; other or
--- unreachable: refuse, naming what it runs (recover.lua diagnoses).
local function undo_upgrade(e, o)
  local n = e.node
  local state, seen = ask_waiting(e, o)
  if state == "new" then
    talos.rollback(n.ip)
    async.wait_until(function()
      local s = M.node_state(n, e.want, e.previous, o.schematic_only)
      return s == "old", s
    end, {timeout = o.boot_timeout, interval = o.poll_interval, desc = n.hostname .. " back on " .. describe(e.previous)})
    checks.nodes_ready({n.hostname})
  elseif state == "old" then
    log.info(o.say.kept(e))
  elseif state == "other" then
    error(fmt("%s runs %s, neither the previous %s nor the new %s: not rolled back; diagnose with recover.lua",
              n.hostname, describe(seen), describe(e.previous), describe(e.want)), 0)
  else
    error(fmt("%s is still unreachable after %d s: what it runs is unknown, so it was not rolled back; diagnose with "
              .. "recover.lua", n.hostname, o.boot_timeout), 0)
  end
end

-- }======

-- {====== one node

local function configure(e, o)
  local n = e.node
  local c = e.config
  rb.step("configure " .. n.hostname, function()
    -- landed already (a try cut short after apply-config): not applied again
    local landed, diff = false, nil
    if c.landed then landed, diff = c.landed(e) end
    if landed then
      log.info(n.hostname .. " already runs the generated config (an earlier try applied it): not applied again")
      return {node = n.hostname, file = c.file, already = true}
    end
    diff = diff or talos.config_diff(n.ip, c.file)
    local unexpected = c.surprises and c.surprises(diff) or configdiff.unexpected(diff, c.expect)
    if #unexpected > 0 then
      error(fmt("the config generated for %s changes more than %s; nothing was applied to it:\n%s",
                n.hostname, c.whose or "this run does", configdiff.show(unexpected)))
    end
    talos.run(n.ip, "apply-config", "--file", e.config.file)
    return {node = n.hostname, file = e.config.file}
  end, {undo = e.config.undo and function() e.config.undo(e) end})
end

local function upgrade(e, o)
  local n = e.node
  rb.step("upgrade " .. n.hostname, function()
    -- a run cut short while this step ran runs it again on --resume: a
    -- node already on the new image, or booting into it, is not upgraded twice
    if rb.resumed() then
      local state, seen = ask_waiting(e, o)
      if state == "new" then
        log.info(n.hostname .. " already runs " .. o.say.want(e) .. ": not upgraded again")
        return {node = n.hostname, image = e.installer, already = true}
      elseif state ~= "old" then
        error(fmt("%s is %s: not upgraded; diagnose with recover.lua", n.hostname,
                  state == "other" and ("on " .. describe(seen)) or "unreachable"))
      end
    end
    talos.upgrade(n.ip, e.installer, {server = e.server or e.previous.version, boot_timeout = o.boot_timeout})
    return {node = n.hostname, image = e.installer}
  end, {key = "upgrade/" .. n.hostname, undo = function() undo_upgrade(e, o) end})
end

local function gates_after(e, o)
  local n = e.node
  local went_down = false
  rb.gate(n.hostname .. " runs " .. o.say.want(e), function()
    local state, seen = M.node_state(n, e.want, e.previous, o.schematic_only)
    if state == "unreachable" then went_down = true; return false, "rebooting (Talos API unreachable)" end
    if state == "old" and went_down then rb.fatal(o.say.fell_back(e)) end
    if state ~= "new" then return false, describe(seen) .. (went_down and "" or " (reboot not started yet)") end
    local have = {}
    for _, x in ipairs(seen.extensions) do have[x] = true end
    local missing = {}
    for _, x in ipairs(e.extensions or {}) do
      if not have[x:match("([^/]+)$")] then missing[#missing + 1] = x end
    end
    if #missing > 0 then rb.fatal(o.say.lacks(e, missing)) end
    return true, o.say.booted(e, seen)
  end, {timeout = o.boot_timeout, interval = o.poll_interval})
  -- extension services have no health check: Talos reports them running,
  -- healthy false, unknown true (health/status.go)
  for _, id in ipairs(e.services or {}) do
    rb.gate(n.hostname .. " " .. id .. " running", function()
      if o.service_check then return o.service_check(n, id) end
      local s = talos.service(n.ip, id)
      if talos.service_up(s) then return true, "running" end
      local d = talos.service_detail(n.ip, id)
      return false, d and fmt("%s: %s", tostring(d.state), d.events[1] or "no event") or (id .. " is not registered")
    end, {timeout = 300, interval = o.poll_interval})
  end
  for _, id in ipairs(e.services_gone or {}) do
    rb.gate(n.hostname .. " " .. id .. " gone", function()
      local s = talos.service(n.ip, id)
      return s == nil, s and "still running" or "not registered"
    end, {timeout = 300, interval = o.poll_interval})
  end
  rb.gate(n.hostname .. " Ready in Kubernetes", function() return checks.nodes_ready({n.hostname}) end,
          {timeout = 600, interval = o.poll_interval})
  if #o.cp_ips > 0 then
    rb.gate("etcd healthy after " .. n.hostname, function() return checks.etcd_healthy(o.cp_ips) end,
            {timeout = 600, interval = o.poll_interval})
  end
  if e.gates then e.gates(e) end
end

-- }======

---@class rolling_upgrade.Entry
---@field node table {hostname, ip, control_plane}
---@field installer string the image `talosctl upgrade --image` gets
---@field want {schematic:string, version?:string} what the node runs afterwards
---@field previous {schematic:string, version?:string} what it runs now
---@field extensions? string[] extensions it must list afterwards
---@field services? string[] services that must run afterwards (ext-<name>)
---@field services_gone? string[] services that must be gone afterwards
---@field server? string the Talos version `talosctl upgrade` is told the node runs (default previous.version)
---@field config? rolling_upgrade.Config applied first
---@field gates? fun(e:rolling_upgrade.Entry) more gates after the node's own

---@class rolling_upgrade.Config
---@field file string the generated machine config
---@field expect? configdiff.Expect the diff lines this run makes (or surprises)
---@field surprises? fun(diff:string):string[] the diff lines that are not this run's own
---@field whose? string "changes more than <whose>" in the refusal (default "this run does")
---@field landed? fun(e:rolling_upgrade.Entry):(boolean, string?) the node runs this config already (and the diff)
---@field undo? fun(e:rolling_upgrade.Entry)

---@class rolling_upgrade.Opts
---@field entries rolling_upgrade.Entry[] in talconfig.yaml's order
---@field all table[] every node: the cluster gate checks them all
---@field cp_ips string[] etcd members
---@field batch? string --var batch (default "1")
---@field max_failures? integer default 0
---@field pause_after_first? boolean stop (exit 0) after the first node or batch passed
---@field confirm_each? boolean ask before each node or batch
---@field boot_timeout number
---@field poll_interval number
---@field schematic_only? boolean what a node runs is its schematic (the Talos version is never asked)
---@field service_check? fun(n:table, id:string):(boolean, string) a service's gate (default: Talos says it runs)
---@field words? table how the gates and messages name things (WORDS' keys)

--- Runs the plan: control planes one at a time, first (etcd keeps its
--- quorum), then the workers `batch` at a time with up to max_failures
--- of them failed (each undone alone). Before each node or batch the
--- whole cluster must be healthy; a node that passed every gate is
--- committed (a later failure leaves it). Returns the failed workers
--- ({{name, error, undone}}; the run stops on more, or on any control plane).
---@param o rolling_upgrade.Opts
---@return table[] failed
function M.run(o)
  local max_failures = o.max_failures or 0
  if max_failures < 0 then usage("--var max_failures must be 0 or more") end
  local cps, workers = {}, {}
  for _, e in ipairs(o.entries) do
    if e.node.control_plane then cps[#cps + 1] = e else workers[#workers + 1] = e end
  end
  local size = M.batch_size(o.batch or "1", #workers)
  o = setmetatable({say = words(o)}, {__index = o})    -- the caller's table stays as it was
  local first, failed = true, {}
  local function before(batch, b, nb)
    local names = {}
    for _, e in ipairs(batch) do names[#names + 1] = e.node.hostname end
    local what = #batch == 1 and names[1] or o.say.batch(names, b, nb)
    rb.gate("cluster healthy before " .. what, function() return checks.cluster_healthy(o.all, o.cp_ips) end,
            {timeout = 600, interval = o.poll_interval})
    local todo = false
    for _, e in ipairs(batch) do if not rb.is_done("upgrade/" .. e.node.hostname) then todo = true end end
    if o.confirm_each and todo then rb.confirm(o.say.confirm(batch, what)) end
    batch.changed = todo
  end
  local function after(batch)
    if o.pause_after_first and first and batch.changed and #o.entries > #batch then
      rb.pause(fmt("%s, the first %s, passed every gate (%d more to go); look at it, then resume",
                   #batch == 1 and batch[1].node.hostname or fmt("%d nodes", #batch), #batch == 1 and "node" or "batch",
                   #o.entries - #batch))
    end
    first = false
  end
  local function one(e)
    if e.config then configure(e, o) end
    upgrade(e, o)
    gates_after(e, o)
    rb.commit()           -- passed every gate: a later failure leaves it as it is
  end
  local rolls = {{name = "control planes", entries = cps, batch = 1, max_failures = 0},
                 {name = "workers", entries = workers, batch = size, max_failures = max_failures}}
  for _, r in ipairs(rolls) do
    if #r.entries > 0 then
      local res = rb.rolling(r.name, r.entries, one, {batch = r.batch, max_failures = r.max_failures,
        name = function(e) return e.node.hostname end, before = before, after = after})
      for _, f in ipairs(res.failed) do failed[#failed + 1] = f end
    end
  end
  return failed
end

--- Ends a run whose workers failed within max_failures: exit 1, naming them.
---@param failed table[] from run()
---@param max_failures integer
---@param rest string what every other node now runs, for the message
---@param verb? string what --resume does to the failed ones (default "does")
function M.fail_partial(failed, max_failures, rest, verb)
  if #failed == 0 then return end
  local names, why, undone = {}, {}, {}
  for _, f in ipairs(failed) do
    names[#names + 1] = f.name
    why[#why + 1] = fmt("%s (%s)", f.name, f.error)
    for _, id in ipairs(f.undone) do undone[#undone + 1] = id end
  end
  error(errors.new("partial", fmt("%d node(s) failed and were undone, within max_failures=%d: %s; every other node %s; "
    .. "fix the cause, then --resume %s the failed ones", #failed, max_failures, table.concat(why, "; "), rest, verb or "does"),
    {exit = 1, stop = true, failed_items = names, undone = undone}), 0)
end

return M

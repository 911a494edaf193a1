--- rollout_dir: the talhelper directory as the Tailscale rollout edits it
--- (rollout.lua, phase 2; docs/rollout.md "Configuration"), the talhelper
--- way: siderolabs/tailscale added to each node's schematic: block (or its
--- talosImageURL), the tailnet name in its certSANs, the service in
--- extensionServices with the key as ${TS_AUTHKEY}, and the address pins
--- in a patch file (no secret in it). Every check that can refuse runs on
--- a scratch copy first; after a stop the directory is made to say what
--- the nodes run (settle). new(r) takes the run's state (rollout.lua).
local rb = require "runbook"
local exec = require "runbook.exec"
local fs = require "runbook.fs"
local log = require "runbook.log"

local configdiff = require "configdiff"
local drift = require "drift"
local factory = require "factory"
local preflight = require "preflight"
local statedir = require "statedir"
local talconfig = require "talconfig"
local talhelper = require "talhelper"
local talos = require "talos"

local M = {}
M.__index = M
local fmt = string.format

---@param r table the run: v, cfg, target, pins, routes, tailnet, authkey, cfg_dir
function M.new(r)
  return setmetatable({r = r, v = r.v, cfg_dir = r.cfg_dir, written = false}, M)
end

local function pins_file(n) return fmt("patches/tailscale-pins-%s.yaml", n.hostname) end

function M:env() return {TS_AUTHKEY = self.r.authkey} end

--- talhelper genconfig of `talconfig` into `out` (the key in its
--- environment: a node done by an earlier run has ${TS_AUTHKEY} in the
--- file, and talhelper substitutes the whole file, noUnset). Returns
--- hostname -> file (a filenameTmpl changes the names).
function M:genconfig(file, out, opts)
  opts = opts or {}
  local r = exec.run({"talhelper", "genconfig", "-c", file, "-o", out}, {timeout = 300, cwd = opts.cwd, env = self:env()})
  if r.code ~= 0 then error((opts.what or "talhelper genconfig failed: ") .. (r.stdout .. r.stderr):gsub("%s+$", ""), 0) end
  return talhelper.generated_files(r.stdout)
end

--- The generated file of a node: as genconfig said, else talhelper's default name.
function M:file_of(written, out, n)
  return written[n.hostname] or fmt("%s/%s-%s.yaml", out, self.r.cfg.cluster_name, n.hostname)
end

--- The pin patch of a node (nil: nothing to pin).
function M:pin_doc(n)
  local p = self.r.pins[n.hostname]
  return talconfig.machine_patch{pin_kubelet = p.pin_kubelet, pin_etcd = p.pin_etcd}
end

--- talconfig.yaml with the entries of the nodes in `only` (a set of
--- hostnames; nil: every node this run changes) added to the text this
--- run found (base_text); with none, that text itself, byte for byte.
function M:text(only)
  local r, cfg = self.r, self.r.cfg
  self.base_text = self.base_text or fs.read(self.v.talconfig)
  local ed = talconfig.editor(self.base_text, self.v.talconfig)   -- every edit, then one yaml.edit
  local nodes = {}
  for _, n in ipairs(cfg.planned or cfg.nodes) do if not only or only[n.hostname] then nodes[#nodes + 1] = n end end
  if #nodes == 0 then return self.base_text end
  for _, n in ipairs(nodes) do
    if n.schematic_at then
      ed:add_schematic_extension(n, factory.TAILSCALE)   -- a group's block once, whichever node comes first
    else   -- talhelper wants the URL without the tag
      ed:set_image(n.index, factory.installer(n.image_url, r.target.nodes[n.hostname].id, nil, n.secureboot))
    end
    local p = r.pins[n.hostname]
    if p.pin_kubelet or p.pin_etcd then ed:add_patch(n.index, "@./" .. pins_file(n), n.patches) end
    if p.cert_san then ed:add_cert_san(n.index, p.cert_san, n.cert_sans) end
    ed:add_extension_service(n, talconfig.tailscale_service{
      hostname = n.hostname, routes = r.routes, dest_ip = self.v.dest_ip and p.addr or nil, auth_once = self.v.auth_once,
      accept_dns = self.v.accept_dns, extra_args = self.v.extra_args})
  end
  return ed:apply()
end

--- The edited talconfig.yaml, every node's entries in (computed once).
function M:edited()
  self.edited_text = self.edited_text or self:text(nil)
  return self.edited_text
end

--- The address pins of the nodes in `only` (nil: every node) written,
--- the others' removed: what text(only) references. Returns the files.
function M:write_pins(only)
  local files = {}
  for _, n in ipairs(self.r.cfg.planned or self.r.cfg.nodes) do
    local doc, path = self:pin_doc(n), self.cfg_dir .. "/" .. pins_file(n)
    if doc and (not only or only[n.hostname]) then
      fs.mkdir_p(self.cfg_dir .. "/patches")
      fs.write(path, doc)    -- addresses only: nothing secret
      files[#files + 1] = pins_file(n)
    elseif doc and fs.exists(path) then
      fs.remove(path)
    end
  end
  return files
end

-- {====== before anything changes

--- Whatever put it there: a tailscale ExtensionServiceConfig the rendered
--- config already holds.
local function renders_tailscale_esc(file)
  local ok, docs = pcall(function() return require("runbook.yaml").decode_all(fs.read(file), {name = file}) end)
  for _, d in ipairs(ok and docs or {}) do
    if type(d) == "table" and d.kind == "ExtensionServiceConfig" and d.name == "tailscale" then return true end
  end
  return false
end

--- No chosen node has a tailscale entry, patch or ExtensionServiceConfig already.
function M:check_no_tailscale_yet()
  for _, n in ipairs(self.r.cfg.nodes) do
    local entry, where = talconfig.tailscale_service_of(n)
    if entry then
      error(fmt("%s already has a tailscale entry in extensionServices (%s): it is not added twice; remove it, or "
        .. "finish that rollout by hand", n.hostname, where == "node" and ("nodes[" .. n.index .. "]") or where))
    end
    if n.patch_esc then
      error(fmt("%s already gets an ExtensionServiceConfig named tailscale from the patch %s: the rollout does not "
        .. "add a second (Talos would refuse two of one name); remove it from the patch and run again, or finish that "
        .. "setup by hand", n.hostname, n.patch_esc))
    end
    if talos.extension_service_configs(n.ip).tailscale then
      error(fmt("%s already runs an ExtensionServiceConfig named tailscale: it is not added twice (recover.lua can "
        .. "re-key it)", n.hostname))
    end
  end
end

--- What talconfig.yaml says now must be what every node runs
--- (rolling_upgrade.nothing_pending: each node's apply-config --dry-run
--- diff "No changes.", environment values masked: a finished node's diff
--- holds its key, an old one after a rotation, which no secret
--- registration knows), generated with the key (a node done by an
--- earlier run has ${TS_AUTHKEY} in the file) into a scratch directory of
--- the state dir. Returns the number of nodes this run changes.
function M:check_nothing_pending()
  local cfg, v = self.r.cfg, self.v
  self:check_no_tailscale_yet()
  local chosen = {}
  for _, n in ipairs(cfg.nodes) do chosen[n.hostname] = true end
  require("rolling_upgrade").nothing_pending{talconfig = v.talconfig, nodes = cfg.all, cluster_name = cfg.cluster_name,
    env = self:env(), dir = not rb.dry_run and require("scratch").dir(rb.state_dir, "genconfig") or nil,
    note = "are shown masked: an auth key may differ behind ***",
    inspect = function(n, file)
      if chosen[n.hostname] and renders_tailscale_esc(file) then
        error(fmt("the config talhelper generates for %s already holds an ExtensionServiceConfig named tailscale "
          .. "(from a patch or a template of %s): the rollout does not add a second; remove it and run again",
          n.hostname, v.talconfig), 0)
      end
    end}
  return #cfg.nodes
end

--- Git must ignore each generated file (git check-ignore in a git work
--- tree, else the .gitignore's patterns as talhelper matches them; issue
--- #27.12): checked in the scratch copy `dir` where the directory lacks it.
local function check_ignored_in_scratch(self, written, out, dir, src)
  for _, n in ipairs(self.r.cfg.nodes) do
    local sub, name = self:file_of(written, out, n):match("^(.*)/([^/]*)$")
    local real = (src == "." and "" or src .. "/") .. sub
    local ignored, how
    if fs.exists(real) then ignored, how = talhelper.ignored(real, name, not rb.dry_run)
    else ignored, how = talhelper.ignored(dir .. "/" .. sub, name, false) end
    if not ignored then
      error(fmt("git would not ignore %s/%s (%s), which would hold the auth key: add it to %s/.gitignore (or let "
        .. "talhelper write the .gitignore)", real, name, how, real), 0)
    end
  end
end

--- talhelper's installers (the installer kind, secure boot) and each
--- node's apply-config --dry-run holding only this run's changes, in the
--- scratch copy. Returns the problems.
local function check_installers_in_scratch(self, written, out, dir, rel)
  local r = self.r
  local g = exec.run({"talhelper", "gencommand", "upgrade", "-c", rel}, {timeout = 120, cwd = dir, env = self:env()})
  if g.code ~= 0 then error("talhelper gencommand upgrade of the edited file fails: " .. g.stderr, 0) end
  local image_of, bad = talhelper.installer_images(g.stdout), {}
  for _, n in ipairs(r.cfg.nodes) do
    local img, want = image_of[n.ip], r.target.installers[n.hostname]
    if not (img and talhelper.same_installer(img, want)) then
      bad[#bad + 1] = fmt("talhelper would install %s on %s, this run %s (talhelper takes a node's talosImageURL "
        .. "over its schematic: block)", tostring(img), n.hostname, want)
    else
      local unexpected = configdiff.rollout_surprises(talos.config_diff(n.ip, dir .. "/" .. self:file_of(written, out, n)),
                                                      {fqdn = n.ts_name .. "." .. r.tailnet, image = img})
      if #unexpected > 0 then
        bad[#bad + 1] = fmt("the config generated for %s would change more than this rollout:\n%s", n.hostname,
                            configdiff.show(unexpected))
      end
    end
  end
  return bad
end

--- Every check that can refuse, on a scratch copy of the directory with
--- the edited talconfig.yaml and the pin files: talhelper genconfig (a
--- ${VAR} only a patch uses, a JSON6902 patch, a schema error), git
--- ignoring each generated file, talhelper's installers and each node's
--- diff. Nothing of the operator's directory is written (issue #28.3).
function M:check_on_scratch(text)
  local v = self.v
  local rel = v.talconfig:sub(1, 1) ~= "/" and v.talconfig or v.talconfig:match("([^/]*)$")
  local src = v.talconfig:sub(1, 1) ~= "/" and "." or self.cfg_dir
  local rel_dir = rel:match("^(.*)/[^/]*$") or "."
  return preflight.with_scratch_copy(src, function(dir)
    fs.write(dir .. "/" .. rel, text, {mode = tonumber("600", 8)})
    for _, n in ipairs(self.r.cfg.nodes) do
      local doc = self:pin_doc(n)
      if doc then
        fs.mkdir_p(dir .. "/" .. rel_dir .. "/patches")
        fs.write(dir .. "/" .. rel_dir .. "/" .. pins_file(n), doc)
      end
    end
    local out = rel_dir .. "/clusterconfig"
    local written = self:genconfig(rel, out, {cwd = dir, what = fmt("talhelper genconfig of the edited %s fails: ", v.talconfig)})
    check_ignored_in_scratch(self, written, out, dir, src)
    local bad = check_installers_in_scratch(self, written, out, dir, rel)
    if #bad > 0 then error(table.concat(bad, "; "), 0) end
    return #self.r.cfg.nodes
  end, rb.dry_run, rb.state_dir)
end

-- }======

-- {====== the writes

--- The pins of this run's nodes (the step "write the address pins"),
--- with their hashes as the run leaves them, for a resume (drift.lua).
function M:write_pin_files()
  local files = {}
  for _, n in ipairs(self.r.cfg.nodes) do
    local doc = self:pin_doc(n)
    if doc then
      fs.mkdir_p(self.cfg_dir .. "/patches")
      fs.write(self.cfg_dir .. "/" .. pins_file(n), doc)    -- addresses only: nothing secret
      files[#files + 1] = pins_file(n)
    end
  end
  local written = {}
  for _, f in ipairs(files) do written[#written + 1] = self.cfg_dir .. "/" .. f end
  return {files = files, sha256 = drift.hashes(written)}
end

--- talconfig.yaml edited (the step "update talconfig.yaml"), its backup
--- under the state dir, which git ignores (issue #28.6); landed already
--- (killed between the write and its record): done.
function M:update()
  local v = self.v
  local landed, earlier = require("landed").talconfig_edited(v.talconfig, self.r.cfg.nodes, rb.state_dir)
  if landed then return {backup = earlier, sha256 = drift.hash(v.talconfig)} end
  local backup = statedir.backup(rb.state_dir, v.talconfig, rb.dry_run)
  fs.write(v.talconfig, self:edited())
  return {backup = backup, sha256 = drift.hash(v.talconfig)}
end

--- Resumed: the files this run wrote are still as it left them, or as
--- settle() left them at the stop (its record), or the operator said
--- --accept-drift; before anything else changes.
function M:check_drift(upd, pins_written)
  local recorded = {[self.v.talconfig] = upd.sha256}
  for path, h in pairs(type(pins_written) == "table" and pins_written.sha256 or {}) do recorded[path] = h end
  for path, h in pairs(statedir.settled(rb.state_dir)) do recorded[path] = h end
  drift.check(recorded, {[self.v.talconfig] = upd.backup})
end

--- Resumed: a stop left talconfig.yaml with the entries of the nodes that
--- run them only (settle); the remaining nodes' entries go back in
--- before their turn, from the text the first run found (its backup).
function M:restore_entries(upd)
  local v = self.v
  self.base_text = fs.read(upd.backup)
  local full = self:text(nil)
  if fs.read(v.talconfig) ~= full then
    -- what stands is kept under the state dir first: an edit made since
    -- the stop (passed with --accept-drift) is replaced, not lost
    local kept = statedir.backup(rb.state_dir, v.talconfig, rb.dry_run)
    local settled = statedir.settled(rb.state_dir)
    if next(settled) and drift.hash(v.talconfig) ~= settled[v.talconfig] then
      log.warn(fmt("%s changed since the stop; it is rebuilt from the first run's backup with the rollout's entries, "
        .. "and the changed file is kept as %s: carry the change over by hand", v.talconfig, kept))
    end
    fs.write(v.talconfig, full)
    self:write_pins(nil)
    self:genconfig(v.talconfig, self.cfg_dir .. "/clusterconfig")
    log.info(fmt("%s: the entries of the nodes still to roll are back in (the stop had taken them out)", v.talconfig))
  end
  statedir.settled(rb.state_dir, false)
end

--- talhelper substitutes ${TS_AUTHKEY} from its environment: the key
--- reaches only the generated files (0600), which must be ones git
--- ignores (checked). Returns {dir, files}.
function M:generate()
  local cfg, out = self.r.cfg, self.cfg_dir .. "/clusterconfig"
  local written = self:genconfig(self.v.talconfig, out)
  for _, n in ipairs(cfg.nodes) do
    local path = self:file_of(written, out, n)
    local dir, name = path:match("^(.*)/([^/]*)$")
    local ignored, how = talhelper.ignored(dir, name, not rb.dry_run)
    if not ignored then
      error(fmt("git would not ignore %s (%s), which holds the auth key: add it to %s/.gitignore (or let talhelper "
        .. "write the .gitignore) before going on", path, how, dir))
    end
  end
  return {dir = out, files = written}
end

--- What talhelper itself installs from the edited file must be what this
--- run installs. It may write the image in another form of the same
--- factory image (metal-installer/ since v3.0.24, -secureboot): the same
--- schematic and tag agree, and talhelper's form is the one installed
--- (issue #27.4). Returns hostname -> image.
function M:installers_agree()
  local r = exec.run({"talhelper", "gencommand", "upgrade", "-c", self.v.talconfig}, {timeout = 120, env = self:env()})
  if r.code ~= 0 then error("talhelper gencommand upgrade failed: " .. r.stderr) end
  local image_of, out = talhelper.installer_images(r.stdout), {}
  for _, n in ipairs(self.r.cfg.nodes) do
    local img, want = image_of[n.ip], self.r.target.installers[n.hostname]
    if not (img and talhelper.same_installer(img, want)) then
      error(fmt("talhelper would install %s on %s, this run %s", tostring(img), n.hostname, want))
    end
    out[n.hostname] = img
  end
  return out
end

-- }======

-- {====== after a stop

--- A node undone keeps the rest of the config it was given (certSANs,
--- pins, install image; the undo took the service away): the file's
--- config goes back on it when the diff is the rollout's own and no more.
local function reapply_undone(self, written, keep)
  local v = self.v
  for _, n in ipairs(self.r.cfg.planned or self.r.cfg.nodes) do
    if not keep[n.hostname] then
      local file = self:file_of(written, self.cfg_dir .. "/clusterconfig", n)
      local diff = talos.config_diff(n.ip, file)
      if not diff:match("^No changes%.") and diff ~= "" then
        if #configdiff.rollback_surprises(diff, n.ts_name) > 0 then
          log.warn(fmt("%s runs a config that differs from %s by more than the rollout: left as it is", n.hostname,
                       v.talconfig))
        else
          talos.run(n.ip, "apply-config", "--file", file)
          log.info(fmt("%s: the config %s says applied again (the rollout's certSANs, pins and image taken back)",
                       n.hostname, v.talconfig))
        end
      end
    end
  end
end

--- After a stop (a failure, a pause, an interrupt, max_failures spent),
--- talconfig.yaml says what each node runs (issue #28.4): the nodes whose
--- machine config holds the tailscale ExtensionServiceConfig (configured,
--- not undone: read from the node) keep their entries and pin files, the
--- others lose theirs, and the configs are generated again, so that
--- `talhelper genconfig` and `talosctl apply-config` on every node change
--- nothing. A node that does not answer keeps its entry (said).
function M:settle()
  if not (self.written and self.base_text) then return end
  local v, cfg = self.v, self.r.cfg
  local keep, kept, unknown = {}, {}, {}
  for _, n in ipairs(cfg.planned or cfg.nodes) do
    local ok, escs = pcall(talos.extension_service_configs, n.ip)
    if not ok then keep[n.hostname] = true; unknown[#unknown + 1] = n.hostname
    elseif escs.tailscale then keep[n.hostname] = true end
    if keep[n.hostname] then kept[#kept + 1] = n.hostname end
  end
  local ok, err = pcall(function()
    local text = self:text(keep)
    if fs.read(v.talconfig) == text then return end
    fs.write(v.talconfig, text)
    self:write_pins(keep)
    -- what the stop left, for a resume's drift check (issue #29.5)
    local left = {v.talconfig}
    for _, n in ipairs(cfg.planned or cfg.nodes) do left[#left + 1] = self.cfg_dir .. "/" .. pins_file(n) end
    statedir.settled(rb.state_dir, drift.hashes(left))
    reapply_undone(self, self:genconfig(v.talconfig, self.cfg_dir .. "/clusterconfig", {what = "talhelper genconfig: "}),
                   keep)
  end)
  if not ok then
    log.warn(fmt("after the stop, %s could not be made to say what the nodes run (%s): run talhelper genconfig "
      .. "before any apply-config", v.talconfig, tostring(err)))
    return
  end
  log.info(fmt("%s now holds the tailscale entries of %s only (what the nodes run)%s", v.talconfig,
    #kept > 0 and table.concat(kept, ", ") or "no node",
    #unknown > 0 and fmt("; %s did not answer and keep theirs", table.concat(unknown, ", ")) or ""))
end

-- }======

return M

-- Adds official Talos system extensions to every node (--var extension=siderolabs/NAME), or removes them (action=remove).
--
-- Phases (docs/extension.md): 1 Checks, 2 Image Factory, 3 Files, 4 Nodes
-- (the shared procedure, lib/rolling_upgrade.lua), 5 Tailnet (removing
-- tailscale only). Rehearse with --dry-run.
local rb = require "runbook"
local http = require "runbook.http"
local fs = require "runbook.fs"
local log = require "runbook.log"
local errors = require "runbook.error"
local yaml = require "runbook.yaml"

local checks = require "checks"
local configdiff = require "configdiff"
local extensions = require "extensions"
local factory = require "factory"
local rolling = require "rolling_upgrade"
local talconfig = require "talconfig"
local talos = require "talos"

local fmt = string.format

local v = rb.vars{
  extension = {type = "list", desc = "the official extensions, siderolabs/NAME (several: comma-separated)"},
  action = {type = "string", default = "add", desc = "add, or remove"},
  config = {type = "string", desc = "YAML file with the extension's ExtensionServiceConfig (environment, configFiles; secrets as ${VAR})"},
  talconfig = {type = "string", default = "talconfig.yaml", desc = "talhelper's config file"},
  talosconfig = {type = "string", desc = "talosconfig for talosctl (default: talosctl's own)"},
  factory_url = {type = "string", default = factory.DEFAULT_URL},
  api_key = {type = "secret", env = "TS_API_KEY", desc = "Tailscale API key: removing tailscale also deletes the nodes' devices"},
  tailscale_api = {type = "string", default = "https://api.tailscale.com"},
  limit = {type = "list", desc = "change only these nodes (--limit); the gates still check the whole cluster"},
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
local adding = v.action == "add"
if v.action ~= "add" and v.action ~= "remove" then usage(fmt("--var action=%s: add or remove expected", v.action)) end
if not v.extension or #v.extension == 0 then usage("--var extension=siderolabs/NAME is missing") end
for _, e in ipairs(v.extension) do
  local short, why = extensions.short(e)
  if not short then usage(why) end
  if adding and e == factory.TAILSCALE then
    usage("tailscale is added by rollout.lua, which also sets its routes, auth key, certSANs and address pins")
  end
end
rolling.lock_cluster(v.talconfig)

--- The ExtensionServiceConfig to add (talhelper's extensionServices entry:
--- name, configFiles, environment), read from --var config; an extension
--- whose README asks for one and gets none is refused.
-- removing tailscale: talconfig.yaml holds TS_AUTHKEY=${TS_AUTHKEY} until
-- the edit, and talhelper substitutes every variable of the file
-- (noUnset): the key must be in the environment, a secret from here on
local talhelper_env
for _, e in ipairs(v.extension) do
  if e == factory.TAILSCALE and not adding then
    local ok, key = pcall(require("runbook.secret").env, "TS_AUTHKEY")
    if not ok then
      usage("removing tailscale needs TS_AUTHKEY in the environment: talhelper substitutes ${TS_AUTHKEY} of talconfig.yaml "
            .. "when it generates the configs the run checks")
    end
    talhelper_env = {TS_AUTHKEY = key}
  end
end

local service_entry
if adding then
  for _, e in ipairs(v.extension) do
    if extensions.needs_config(e) and not v.config then
      usage(fmt("%s reads an ExtensionServiceConfig (its README): give it with --var config=FILE (or --var config=none "
                .. "to add it without one)", e))
    end
  end
  if v.config and v.config ~= "none" then
    if #v.extension > 1 then usage("--var config goes with one extension at a time") end
    local text = fs.read(v.config)
    local doc = yaml.decode(text, {name = v.config})
    -- the variables it names are secrets from here on: talhelper puts
    -- their values in the generated configs, and every diff and message
    -- this run shows has them masked
    for name in text:gmatch("%${([%a_][%w_]*)}") do
      if os.getenv(name) and os.getenv(name) ~= "" then require("runbook.secret").env(name) end
    end
    if type(doc) ~= "table" or (doc.environment == nil and doc.configFiles == nil) then
      usage(v.config .. ": an ExtensionServiceConfig's environment: and/or configFiles: expected")
    end
    local svc = extensions.services(v.extension[1])[1]
    local name = doc.name or (svc and svc:gsub("^ext%-", ""))
    if not name then usage(v.extension[1] .. " runs no service: it takes no ExtensionServiceConfig") end
    -- secrets stay variables that talhelper substitutes (${VAR}, from the
    -- environment or talenv.yaml): talconfig.yaml never holds them
    for _, kv in ipairs(doc.environment or {}) do
      if tostring(kv):match("KEY=.+") and not tostring(kv):match("=%${[%w_]+}$") then
        usage(fmt("%s: %s looks like a secret written in clear: write it as ${VAR} (talhelper substitutes it)",
                  v.config, tostring(kv):match("^([^=]+)=")))
      end
    end
    service_entry = yaml.order({name = name, configFiles = doc.configFiles, environment = doc.environment},
                               {"name", "configFiles", "environment"})
  end
end

local cfg, current, target
local function runs(n, e)
  for _, x in ipairs(current[n.hostname].extensions) do if x == e:match("([^/]+)$") then return true end end
  return false
end

-- {====== 1. Checks

rb.phase("Checks", function()
  local pre = talconfig.read(v.talconfig)
  rolling.protect_env(pre.text)
  talconfig.check_installers(pre, factory.parse_image)
  if not pre.talos_version then usage(v.talconfig .. " has no talosVersion: set it to the version the nodes run") end
  rb.gate("cluster healthy before anything changes", function() return checks.cluster_healthy(pre.nodes) end,
          {timeout = 300, interval = v.poll_interval})
  cfg = pre
  current = rb.step("read each node's extensions", function() return rolling.read_nodes(cfg.nodes) end, {read_only = true})
  local sel = rolling.select{all = cfg.nodes, limit = v.limit, exclude = v.exclude, file = v.talconfig, group_blocks = true,
    done = function(n)
      for _, e in ipairs(v.extension) do
        if runs(n, e) ~= adding then return false end
      end
      return true, adding and "runs every extension asked for already" or "runs none of the extensions asked to remove"
    end}
  cfg.all, cfg.nodes = cfg.nodes, sel.nodes
  if #cfg.nodes == 0 then log.info("nothing to do on the nodes chosen") return end
  rb.step("check that nothing else is pending in " .. v.talconfig, function()
    return rolling.nothing_pending{talconfig = v.talconfig, nodes = cfg.all, cluster_name = cfg.cluster_name,
                                   env = talhelper_env}
  end, {read_only = true})
end)

-- }======

-- {====== 2. Image Factory: one new schematic per schematic the nodes run

rb.phase("Image Factory", function()
  if #cfg.nodes == 0 then return end
  target = rb.step("compute the schematics", function()
    local by_key, list, by_node = {}, {}, {}
    for _, n in ipairs(cfg.nodes) do
      local cur_id = current[n.hostname].schematic
      local key = cur_id .. (n.schematic_at and "/block" or "")
      local p = by_key[key]
      if not p then
        local cur = factory.fetch(cur_id, v.factory_url)
        if not cur then error(fmt("the factory does not know %s's schematic %s", n.hostname, cur_id), 0) end
        local new
        if adding then
          new = factory.merge(cur, {extensions = v.extension}, {append = n.schematic_at ~= nil})
        else
          local gone, keep = {}, {}
          for _, e in ipairs(v.extension) do gone[e] = true end
          for _, e in ipairs(factory.extensions(cur)) do if not gone[e] then keep[#keep + 1] = e end end
          new = yaml.decode(yaml.encode(cur)) or {}
          new.customization = new.customization ~= yaml.null and new.customization or {}
          new.customization.systemExtensions = #keep > 0 and {officialExtensions = keep} or nil
          if next(new.customization) == nil then new.customization = {} end
        end
        p = {current_id = cur_id, id = factory.id(new), canonical = factory.canonical(new), extensions = factory.extensions(new),
             nodes = {}}
        by_key[key] = p
        list[#list + 1] = p
      end
      p.nodes[#p.nodes + 1] = n.hostname
      by_node[n.hostname] = {current_id = p.current_id, id = p.id, extensions = p.extensions}
    end
    return {pairs = list, nodes = by_node}
  end, {retries = 3, backoff = 5, read_only = true, key = "schematic"})

  rb.step("check the factory offers every extension for " .. cfg.talos_version, function()
    local r = http.get(v.factory_url .. "/versions", {timeout = 60, check = true})
    local known = false
    for _, ver in ipairs(r:json()) do if ver == cfg.talos_version then known = true end end
    if not known then error(fmt("the factory does not offer Talos %s", cfg.talos_version), 0) end
    local offered = factory.official_extensions(cfg.talos_version, v.factory_url)
    for _, p in ipairs(target.pairs) do
      local missing = factory.unavailable(factory.parse(p.canonical), offered)
      if #missing > 0 then
        error(fmt("Talos %s has no official %s at the factory: the installer for %s could not be built. Nothing was changed",
                  cfg.talos_version, table.concat(missing, ", "), table.concat(p.nodes, ", ")), 0)
      end
    end
    return #target.pairs
  end, {read_only = true})

  rb.step("create the schematics", function()
    local ids = {}
    for _, p in ipairs(target.pairs) do ids[#ids + 1] = factory.create(factory.parse(p.canonical), v.factory_url) end
    return ids
  end, {retries = 3, backoff = 5, read_only = true})
end)

-- }======

-- {====== 3. Files: talconfig.yaml the talhelper way

local edited, backups
local function edit()
  if edited then return edited end
  local ed = talconfig.editor(fs.read(v.talconfig), v.talconfig)
  for _, n in ipairs(cfg.nodes) do
    if n.schematic_at then
      for _, e in ipairs(v.extension) do
        if adding then ed:add_schematic_extension(n, e) else ed:remove_schematic_extension(n, e) end
      end
    else
      ed:set_image(n.index, factory.installer(n.image_url, target.nodes[n.hostname].id, nil, n.secureboot))
    end
    if service_entry then ed:add_extension_service(n, service_entry) end
    if not adding then
      for _, e in ipairs(v.extension) do
        for _, svc in ipairs(extensions.services(e)) do
          local _, why = ed:remove_extension_service(n, (svc:gsub("^ext%-", "")))
          if why then error(errors.new("usage", n.hostname .. ": " .. why, {exit = 2}), 0) end
        end
        -- tailscale: the tailnet name the rollout put in certSANs goes too
        if e == factory.TAILSCALE then
          local ts = require("tailscale").device_name(n.hostname)
          for i, san in ipairs(type(n.cert_sans) == "table" and n.cert_sans or {}) do
            if san:sub(1, #ts + 1) == ts .. "." then
              ed:remove(#n.cert_sans == 1 and {"nodes", n.index, "certSANs"} or {"nodes", n.index, "certSANs", i})
            end
          end
        end
      end
    end
  end
  edited = ed:apply()
  return edited
end

rb.phase("Files", function()
  if #cfg.nodes == 0 then return end
  local lines = {fmt("the plan: %s %s %s %d nodes:", adding and "add" or "remove", table.concat(v.extension, ", "),
                     adding and "to" or "from", #cfg.nodes)}
  for _, p in ipairs(target.pairs) do
    lines[#lines + 1] = fmt("  schematic %s -> %s: %s", p.current_id:sub(1, 12), p.id:sub(1, 12), table.concat(p.nodes, ", "))
  end
  if not rb.is_done("talconfig") then
    rb.step("edit " .. v.talconfig, function() return #edit() end, {read_only = true})
    local d = configdiff.mask_keys(require("runbook.diff").unified(fs.read(v.talconfig), edit(), v.talconfig))
    lines[#lines + 1] = fmt("  %s:\n%s", v.talconfig, (d:gsub("\n$", "")))
  end
  log.info(table.concat(lines, "\n"))
  rb.confirm(fmt("%s %s on %d nodes (files first, then %s)?", adding and "Add" or "Remove", table.concat(v.extension, ", "),
                 #cfg.nodes, rolling.pace(cfg.nodes, v.batch, v.max_failures)))
  backups = rb.step("back up the machine configs", function() return rolling.backup(cfg.all, "extension") end, {key = "backups"})
  rb.report("Backups", {directory = backups.dir})
  rb.step("update " .. v.talconfig, function() return {backup = fs.write(v.talconfig, edit(), {backup = true})} end,
          {key = "talconfig"})
end)

-- }======

-- {====== 4. Nodes

--- What each node's generated config may change: the install image, the
--- ExtensionServiceConfig added or removed, and (removing tailscale) the
--- tailnet name in certSANs with the rollout's ESC.
local function expect_of(n, installer)
  local x = {image = installer}
  if service_entry then
    x.added, x.added_like = configdiff.esc_lines(service_entry)
  end
  if not adding then
    x.removed, x.removed_like = {}, {}
    for _, e in ipairs(v.extension) do
      for _, svc in ipairs(extensions.services(e)) do
        local exact, like = configdiff.esc_lines({name = svc:gsub("^ext%-", "")})
        for _, l in ipairs(exact) do x.removed[#x.removed + 1] = l end
        for _, l in ipairs(like) do x.removed_like[#x.removed_like + 1] = l end
      end
      if e == factory.TAILSCALE then
        x.removed[#x.removed + 1] = "certSANs:"
        x.removed_like[#x.removed_like + 1] = "^%- " .. require("tailscale").device_name(n.hostname):gsub("%p", "%%%0") .. "%."
        x.sans = "removed"
      end
    end
  end
  return x
end

local failed = {}
rb.phase("Nodes", function()
  if #cfg.nodes == 0 then return end
  local files = rb.step("generate the machine configs (talhelper genconfig)", function()
    return rolling.generate(v.talconfig, cfg.nodes, cfg.cluster_name, talhelper_env)
  end)
  local entries = {}
  for _, n in ipairs(cfg.nodes) do
    local t = target.nodes[n.hostname]
    local installer = factory.installer(n.image_url, t.id, cfg.talos_version, n.secureboot)
    local services, gone = {}, {}
    for _, e in ipairs(v.extension) do
      for _, id in ipairs(e ~= factory.TAILSCALE and extensions.services(e) or {}) do
        if adding then services[#services + 1] = id else gone[#gone + 1] = id end
      end
      if not adding and e == factory.TAILSCALE then gone[#gone + 1] = "ext-tailscale" end
    end
    entries[#entries + 1] = {
      node = n, installer = installer, extensions = t.extensions, services = services, services_gone = gone,
      want = {schematic = t.id}, previous = {schematic = t.current_id},
      config = {file = files[n.hostname], expect = expect_of(n, installer),
                undo = function() talos.run(n.ip, "apply-config", "--file", backups.configs[n.hostname]) end},
    }
  end
  failed = rolling.run{entries = entries, all = cfg.all, cp_ips = talconfig.control_plane_ips(cfg.all), batch = v.batch,
                       max_failures = v.max_failures, pause_after_first = v.pause_after_first, confirm_each = v.confirm_each,
                       boot_timeout = v.boot_timeout, poll_interval = v.poll_interval}
end)

-- }======

-- {====== 5. Tailnet: removing tailscale, the nodes' devices go too

rb.phase("Tailnet", function()
  local removing_ts = false
  for _, e in ipairs(v.extension) do if e == factory.TAILSCALE and not adding then removing_ts = true end end
  if not removing_ts or #cfg.nodes == 0 then return end
  if not v.api_key then
    log.warn("no TS_API_KEY: the nodes' devices stay in the tailnet, offline; delete them in the admin console")
    return
  end
  local tailscale = require "tailscale"
  local names = {}
  for _, n in ipairs(cfg.nodes) do names[tailscale.device_name(n.hostname)] = true end
  rb.step("delete the nodes' devices from the tailnet", function()
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

-- }======

rolling.fail_partial(failed, v.max_failures, adding and "runs the extensions" or "runs without them")

--- talhelper in the simulated world (gencommand upgrade, genconfig), from
--- the talhelper directory on disk, rendered by sim.talos.talhelper_render
--- as budimanjojo/talhelper renders it (the release: the scenario's
--- cluster.talhelperVersion, else the latest modelled). Machine config
--- files hold what runbooks/sim/machineconfig.lua models, fed from the
--- plan; the whole plan (generator input and patches per node) is what
--- M.plan returns, for a full rendering.
local ctx = ...

local fs = require "runbook.fs"
local time = require "runbook.time"
local yaml = require "runbook.yaml"
local render = require "sim.talos.talhelper_render"
local V = require "sim.talos.talhelper_versions"

local W = ctx.W
local fmt = string.format
local path_of = ctx.path_of
local result = ctx.output.result
local mc = ctx.machineconfig

--- Go's log.Fatal: the message after the time stamp, exit 1.
local function fatal(msg, stdout)
  return result(1, stdout or "", fmt("%s %s\n", os.date("!%Y/%m/%d %H:%M:%S", math.floor(time.now())), msg))
end

--- The process environment talhelper starts with: the runbook's exec env
--- (secrets revealed: talhelper substitutes them into the files) over the
--- engine's own, unless clear_env.
local function process_env(opts)
  local env = opts and opts.env or {}
  local clear = opts and opts.clear_env
  return function(name)
    local v = env[name]
    if v ~= nil then
      if type(v) == "userdata" and v.reveal then return v:reveal() end
      return tostring(v)
    end
    if clear then return nil end
    return os.getenv(name)
  end
end

local function reader(p)
  local ok, text = pcall(fs.read, path_of(p))     -- path_of raises outside the served directory
  if not ok and tostring(text):find("outside the served directory", 1, true) then error(text, 0) end
  if ok then return text end
  return nil
end

--- The rendering of a talhelper directory as the world's talhelper sees it.
---@param cfgfile string -c
---@param opts table? exec options (env, clear_env, cwd)
---@param env_files? string[] -e
---@return table? plan, string? err, table? problems
local function plan(cfgfile, opts, env_files)
  return render.render(cfgfile, {env = process_env(opts), cwd = W.cwd or ".", read = reader, env_files = env_files,
                                 talhelper_version = W.talhelper_version or V.DEFAULT,
                                 schematic_id = require("factory").id})
end

-- {====== arguments

local BOOL = {["--offline-mode"] = true, ["--no-gitignore"] = true, ["--dry-run"] = true, ["--debug"] = true,
              ["-d"] = true, ["--disable-nodes-section"] = true}
local VALUE = {["-c"] = "config", ["--config-file"] = "config", ["-o"] = "out", ["--out-dir"] = "out",
               ["-e"] = "env_file", ["--env-file"] = "env_file", ["--extra-flags"] = "extra",
               ["-s"] = "secret_file", ["--secret-file"] = "secret_file", ["-m"] = "mode", ["--talos-mode"] = "mode",
               ["--crt-ttl"] = "ttl"}

--- cobra's reading of the arguments: {sub, what, config, out, node, env_file (list), extra (list), flags}.
local function parse(argv)
  local a = {sub = argv[2], config = "talconfig.yaml", out = "./clusterconfig", flags = {}, args = {}}
  local i = 3
  while i <= #argv do
    local arg = argv[i]
    local name, val = arg:match("^(%-%-[%w-]+)=(.*)$")
    name = name or arg
    if name == "-n" or name == "--node" then
      if a.sub == "genconfig" then a.flags["--dry-run"] = true; i = i + 1
      else a.node = val or argv[i + 1]; i = i + (val and 1 or 2) end
    elseif VALUE[name] then
      local v = val or argv[i + 1]
      i = i + (val and 1 or 2)
      local k = VALUE[name]
      if k == "env_file" or k == "extra" or k == "secret_file" then
        a[k] = a[k] or {}
        for part in (v .. ","):gmatch("([^,]*),") do a[k][#a[k] + 1] = part end
      else a[k] = v end
    elseif BOOL[name] then a.flags[name] = true; i = i + 1
    elseif arg:sub(1, 1) == "-" then return nil, "unknown flag: " .. name
    else a.args[#a.args + 1] = arg; i = i + 1 end
  end
  a.what = a.args[1]
  return a
end

-- }======

-- {====== genconfig

local function talosconfig_text(p)
  local eps, all = {}, {}
  for _, n in ipairs(p.nodes) do
    for _, ip in ipairs(n.ips) do
      all[#all + 1] = ip
      if n.control_plane then eps[#eps + 1] = ip end
    end
  end
  local name = tostring(p.cluster_name)
  local contexts = {[name] = {endpoints = yaml.array(eps), nodes = yaml.array(all)}}
  return yaml.encode(yaml.order({context = name, contexts = contexts}, {"context", "contexts"}))
end

local function secrets_warning(a)
  local files = a.secret_file or {"talsecret.yaml", "talsecret.sops.yaml", "talsecret.yml", "talsecret.sops.yml"}
  for _, f in ipairs(files) do
    if reader(f) then return "" end
  end
  return "WARNING: secrets file is not found, new secrets will be generated everytime you run this command\n"
end

local function write_node(out, p, node, lines, dry)
  local docs, err = render.docs_for(node)
  if not docs then return nil, err end
  local text = mc.render(docs, p.talos_version)
  local file = out .. "/" .. node.file_name
  if dry then
    local before = reader(file) or ""
    local d = require("runbook.diff").unified(before, text, file)
    lines[#lines + 1] = d ~= "" and d:gsub("\n$", "") or fmt("no changes found on %s", file)
    return true
  end
  fs.mkdir_p(path_of(out), tonumber("700", 8))
  fs.write(path_of(file), text, {mode = tonumber("600", 8)})
  lines[#lines + 1] = fmt("generated config for %s in %s", node.hostname, file)
  return true
end

local function genconfig(a, opts)
  local p, err, problems = plan(a.config, opts, a.env_file)
  if not p then return fatal(err, problems and problems.stdout) end
  local lines, dry = {}, a.flags["--dry-run"]
  local warn = secrets_warning(a)
  for _, node in ipairs(p.nodes) do
    local ok, werr = write_node(a.out, p, node, lines, dry)
    if not ok then return fatal(werr, warn .. table.concat(lines, "\n") .. (#lines > 0 and "\n" or "")) end
  end
  if not dry then
    fs.write(path_of(a.out .. "/talosconfig"), talosconfig_text(p), {mode = tonumber("600", 8)})
    lines[#lines + 1] = fmt("generated client config in %s/talosconfig", a.out)
    if not a.flags["--no-gitignore"] then
      local names = {}
      for _, node in ipairs(p.nodes) do names[#names + 1] = node.file_name end
      names[#names + 1] = "talosconfig"
      local gi = path_of(a.out .. "/.gitignore")
      local before = reader(a.out .. "/.gitignore")
      local after = render.gitignore.append(before, names)
      -- talhelper opens it O_APPEND|O_CREATE with 0o644 (pkg/config/gitignore.go, v3.1.16)
      if after ~= before then fs.write(gi, after, before == nil and {mode = tonumber("644", 8)} or nil) end
      lines[#lines + 1] = fmt("generated .gitignore file in %s/.gitignore", a.out)
    end
  end
  return result(0, warn .. table.concat(lines, "\n") .. "\n")
end

-- }======

local function gencommand_upgrade(a, opts)
  local tv = W.talhelper_version or V.DEFAULT
  if a.flags["--offline-mode"] and not V.at_least(tv, V.OFFLINE_FLAG) then
    return fatal("unknown flag: --offline-mode")
  end
  local p, err, problems = plan(a.config, opts, a.env_file)
  if not p then return fatal(err, problems and problems.stdout) end
  local out, gerr = render.gencommand_upgrade(p, a.out, a.node, a.extra)
  if not out then return fatal(gerr) end
  return result(0, out)
end

--- `gencommand apply` (pkg/generate/command.go GenerateApplyCommand).
local function gencommand_apply(a, opts)
  local p, err, problems = plan(a.config, opts, a.env_file)
  if not p then return fatal(err, problems and problems.stdout) end
  local lines = {}
  for _, n in ipairs(p.nodes) do
    local ips = {}
    for _, ip in ipairs(n.ips) do if a.node == ip then ips = {ip} end end
    if #ips == 0 and (a.node == nil or a.node == "" or a.node == n.hostname) then ips = n.ips end
    for _, ip in ipairs(ips) do
      local flags = {"--talosconfig=" .. a.out .. "/talosconfig", "--nodes=" .. ip,
                     "--file=" .. a.out .. "/" .. n.file_name}
      for _, f in ipairs(a.extra or {}) do flags[#flags + 1] = f end
      lines[#lines + 1] = "talosctl apply-config " .. table.concat(flags, " ") .. ";"
    end
  end
  if #lines == 0 then
    return fatal(fmt("failed to generate talosctl apply command: node with IP or hostname %s not found", a.node or ""))
  end
  return result(0, table.concat(lines, "\n") .. "\n")
end

local function talhelper(argv, opts)
  local a, perr = parse(argv)
  if not a then return fatal(perr) end
  if a.sub == "gencommand" and a.what == "upgrade" then return gencommand_upgrade(a, opts)
  elseif a.sub == "gencommand" and a.what == "apply" then return gencommand_apply(a, opts)
  elseif a.sub == "genconfig" then return genconfig(a, opts) end
  return fatal(fmt("unknown command %q for \"talhelper\"", tostring(a.sub)))
end

return {talhelper = talhelper, plan = plan}

--- talhelper in the simulated world (gencommand, genconfig), from the
--- talconfig.yaml on disk.
local ctx = ...

local yaml = require "runbook.yaml"
local factory = require "factory"
local talconfig = require "talconfig"

local W = ctx.W
local fmt = string.format
local path_of = ctx.path_of
local result = ctx.output.result

local mc = ctx.machineconfig

--- The environment a command sees for ${VAR}: what the runbook passed in
--- opts.env (secrets revealed: talhelper substitutes them into the
--- generated files), then the process's, then talenv.yaml.
local function lookup_with(opts, base)
  local env = opts and opts.env or {}
  return function(name)
    local v = env[name]
    if v ~= nil then
      if type(v) == "userdata" and v.reveal then return v:reveal() end
      return tostring(v)
    end
    return base(name)
  end
end

--- The files `talhelper genconfig` writes: one machine config per node
--- (0600, in a 0700 directory) and a .gitignore that lists them and
--- talosconfig (pkg/generate/config.go, pkg/config/gitignore.go).
local function genconfig(c, out, dir, lookup, version, installer)
  local fs = require "runbook.fs"
  local function given(v) if v == yaml.null then return nil end return v end
  local groups = {cp = type(c.controlPlane) == "table" and c.controlPlane or {},
                  worker = type(c.worker) == "table" and c.worker or {}}
  local lines, names = {}, {}
  fs.mkdir_p(out, tonumber("700", 8))
  for ni, n in ipairs(c.nodes or {}) do
    local group = n.controlPlane == true and groups.cp or groups.worker
    local f = {type = n.controlPlane == true and "controlplane" or "worker", cert_sans = {}, kubelet_valid = {},
               etcd_valid = {}, esc = {}, install_image = installer(n)}
    -- certSANs: the node's, then its group's (nodeconfigs.go appends)
    for _, x in ipairs(mc.list(given(n.certSANs))) do f.cert_sans[#f.cert_sans + 1] = talconfig.expand(x, lookup, "certSANs") end
    for _, x in ipairs(mc.list(given(group.certSANs))) do f.cert_sans[#f.cert_sans + 1] = talconfig.expand(x, lookup, "certSANs") end
    -- patches: global, then the group's, then the node's
    local refs, pdocs = {}, {}
    local sources = {c.patches, group.patches, n.patches}     -- may hold nils: no ipairs
    for k = 1, 3 do
      for _, r in ipairs(mc.list(given(sources[k]))) do refs[#refs + 1] = r end
    end
    for _, r in ipairs(refs) do
      local file = type(r) == "string" and r:match("^@(.+)$")
      if file then
        local pathf = path_of(file:sub(1, 1) == "/" and file or (dir .. "/" .. file:gsub("^%./", "")))
        local ok, text = pcall(fs.read, pathf)
        if not ok then error(fmt("failed to read patch file %s: open %s: no such file or directory", file, file), 0) end
        for _, d in ipairs(yaml.decode_all(text, {name = file})) do pdocs[#pdocs + 1] = d end
      end
    end
    -- extensionServices: the node's list, else its group's (all or nothing)
    local services = given(n.extensionServices) or given(group.extensionServices)
    for _, e in ipairs(mc.list(services)) do
      local env = {}
      for k, kv in ipairs(mc.list(e.environment)) do
        env[#env + 1] = talconfig.expand(kv, lookup, fmt("nodes[%d].extensionServices.environment[%d]", ni, k))
      end
      f.esc[e.name] = {environment = env}
    end
    local name = fmt("%s-%s.yaml", c.clusterName or "cluster", n.hostname)
    fs.write(out .. "/" .. name, mc.render(mc.patch(mc.from_fields(f), pdocs)), {mode = tonumber("600", 8)})
    names[#names + 1] = name
    lines[#lines + 1] = fmt("generated config for %s in %s/%s", n.hostname, out, name)
  end
  fs.write(out .. "/talosconfig", "context: " .. tostring(c.clusterName) .. "\n", {mode = tonumber("600", 8)})
  names[#names + 1] = "talosconfig"
  local gi = out .. "/.gitignore"
  local have = fs.exists(gi) and fs.read(gi) or ""
  local listed, add = {}, {}
  for line in have:gmatch("([^\n]*)\n") do listed[line] = true end   -- a line is listed once it ends
  for _, nm in ipairs(names) do
    if not listed[nm] then listed[nm] = true; add[#add + 1] = nm .. "\n" end
  end
  have = have .. table.concat(add)
  -- talhelper opens it O_APPEND|O_CREATE with 0o644 (pkg/config/gitignore.go, v3.1.16)
  fs.write(gi, have, {mode = tonumber("644", 8)})
  lines[#lines + 1] = fmt("generated client config in %s/talosconfig", out)
  lines[#lines + 1] = fmt("generated .gitignore file in %s/.gitignore", out)
  return table.concat(lines, "\n") .. "\n"
end

local function talhelper(argv, opts)
  local sub = argv[2]
  local cfgfile, out, node = "talconfig.yaml", "./clusterconfig", nil
  local i = 3
  local what
  while i <= #argv do
    local a = argv[i]
    if a == "-c" or a == "--config-file" then cfgfile = argv[i + 1]; i = i + 2
    elseif a == "-o" or a == "--out-dir" then out = argv[i + 1]; i = i + 2
    elseif a == "-n" or a == "--node" then node = argv[i + 1]; i = i + 2
    elseif a:sub(1, 1) == "-" and a ~= "--offline-mode" and a ~= "--no-gitignore" then
      return result(1, "", fmt("Error: unknown flag: %s\n", a))
    elseif a:sub(1, 1) ~= "-" then what = what or a; i = i + 1
    else i = i + 1 end
  end
  local ok, text = pcall(require("runbook.fs").read, path_of(cfgfile))
  if not ok then return result(1, "", fmt("failed to read config file: open %s: no such file or directory\n", cfgfile)) end
  local okd, c = pcall(yaml.decode, text, {name = cfgfile})
  if not okd then return result(1, "", tostring(c) .. "\n") end
  -- talhelper substitutes ${VAR} from the environment and talenv.yaml in
  -- the whole file before it parses it (pkg/config/loader.go, v3.1.16):
  -- the values used here get the same expansion (clusterName names the
  -- generated files)
  local lookup = lookup_with(opts, talconfig.env_lookup(path_of(cfgfile)))
  local oke, experr = pcall(function()
    c.clusterName = talconfig.expand(c.clusterName, lookup, "clusterName")
    c.talosVersion = talconfig.expand(c.talosVersion, lookup, "talosVersion")
    for ni, n in ipairs(c.nodes or {}) do
      for _, k in ipairs({"hostname", "ipAddress", "talosImageURL"}) do
        n[k] = talconfig.expand(n[k], lookup, fmt("nodes[%d].%s", ni, k))
      end
    end
  end)
  if not oke then return result(1, "", fmt("failed to substitute env: %s\n", tostring(experr))) end
  local version = tostring(c.talosVersion or W.talos_version)
  if not version:match("^v") then version = "v" .. version end
  local function installer(n)
    local group = (n.controlPlane == true and c.controlPlane or c.worker) or {}
    if type(group) ~= "table" then group = {} end
    local url = n.talosImageURL or group.talosImageURL or nil
    if url == yaml.null then url = nil end
    if url then return url .. ":" .. version end
    -- a schematic: block: talhelper asks the factory for its ID
    -- (installerURLTmpl: {{.RegistryURL}}/installer/{{.ID}}:{{.Version}})
    local sch = n.schematic or group.schematic
    if type(sch) == "table" and sch ~= yaml.null then
      return "factory.talos.dev/installer/" .. factory.id(sch) .. ":" .. version
    end
    return "factory.talos.dev/metal-installer/" .. factory.VANILLA_ID .. ":" .. version
  end
  if sub == "gencommand" and what == "upgrade" then
    local lines, found = {}, node == nil
    for _, n in ipairs(c.nodes or {}) do
      if node == nil or node == n.hostname or node == n.ipAddress then
        found = true
        lines[#lines + 1] = fmt("talosctl upgrade --talosconfig=%s/talosconfig --nodes=%s --image=%s;", out, n.ipAddress, installer(n))
      end
    end
    if not found then return result(1, "", fmt("node with IP or hostname %s not found\n", node)) end
    return result(0, table.concat(lines, "\n") .. "\n")
  elseif sub == "genconfig" then
    local dir = path_of(cfgfile):match("^(.*)/[^/]*$") or "."
    local okg, text_or_err = pcall(genconfig, c, path_of(out), dir, lookup, version, installer)
    if not okg then return result(1, "", tostring(text_or_err) .. "\n") end
    return result(0, text_or_err)
  end
  return result(1, "", fmt("Error: unknown command %q for \"talhelper\"\n", tostring(sub)))
end

return {talhelper = talhelper}

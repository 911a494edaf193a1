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

local function talhelper(argv)
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
  -- talhelper substitutes ${VAR} from the environment and talenv.yaml
  -- before it reads the file: the values used here get the same expansion
  local lookup = talconfig.env_lookup(path_of(cfgfile))
  local oke, experr = pcall(function()
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
    local url = n.talosImageURL or (type(group) == "table" and group.talosImageURL) or nil
    if url == yaml.null then url = nil end
    if url then return url .. ":" .. version end
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
    local lines = {}
    for _, n in ipairs(c.nodes or {}) do
      local file = fmt("%s/%s-%s.yaml", out, c.clusterName or "cluster", n.hostname)
      lines[#lines + 1] = fmt("generated config for %s in %s", n.hostname, file)
    end
    lines[#lines + 1] = fmt("generated client config in %s/talosconfig", out)
    return result(0, table.concat(lines, "\n") .. "\n")
  end
  return result(1, "", fmt("Error: unknown command %q for \"talhelper\"\n", tostring(sub)))
end

return {talhelper = talhelper}

--- talhelper: what the runbooks need to know of how budimanjojo/talhelper
--- (v3.0.x .. v3.1.16) behaves around the files it reads and writes:
--- the talenv files it loads over its environment, the file names
--- genconfig reports, and whether git ignores a generated file.
local exec = require "runbook.exec"
local fs = require "runbook.fs"
local gitignore = require "gitignore"

local M = {}
local fmt = string.format

--- The env files talhelper loads by default (cmd/genconfig.go and
--- cmd/gencommand.go, --env-file), relative to its working directory.
M.ENV_FILES = {"talenv.yaml", "talenv.sops.yaml", "talenv.yml", "talenv.sops.yml"}

--- The variable names a talenv file defines: its top-level `NAME:` /
--- `NAME=` / `export NAME=` lines (godotenv reads the file after talhelper
--- strips `---` lines; a sops-encrypted file keeps its keys in clear).
---@param text string
---@return string[]
function M.env_names(text)
  local names, seen = {}, {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    local k = line:match("^export%s+([%a_][%w_.]*)%s*[=:]") or line:match("^([%a_][%w_.]*)%s*[=:]")
    if k and k ~= "sops" and not seen[k] then seen[k] = true; names[#names + 1] = k end
  end
  return names
end

--- The talenv files in `dir` (talhelper's working directory) that define
--- one of `names`: {{file, name}} in file order. talhelper loads them
--- over its environment (pkg/substitute/envsubst.go LoadEnvFromFiles:
--- os.Setenv), so their value wins over the one a runbook passes.
---@param dir string
---@param names string[] the variables the run sets (TS_AUTHKEY)
---@return table[]
function M.env_conflicts(dir, names)
  local want, out = {}, {}
  for _, n in ipairs(names) do want[n] = true end
  for _, f in ipairs(M.ENV_FILES) do
    local path = dir == "." and f or (dir .. "/" .. f)
    if fs.exists(path) then
      for _, k in ipairs(M.env_names(fs.read(path))) do
        if want[k] then out[#out + 1] = {file = path, name = k} end
      end
    end
  end
  return out
end

--- The files `talhelper genconfig` wrote, from its output ("generated
--- config for HOST in PATH", pkg/generate/config.go): hostname -> path.
--- A node's filenameTmpl (v3.0.24+) changes the name; this reads it back.
---@param stdout string
---@return table
function M.generated_files(stdout)
  local out = {}
  for host, path in stdout:gmatch("generated config for (%S+) in ([^\n]+)") do out[host] = path end
  return out
end

--- Whether git would ignore `file` (in directory `dir`): `git check-ignore`
--- when `dir` is in a git work tree and git may be run (use_git), else the
--- patterns of `dir`/.gitignore as talhelper matches them
--- (sabhiram/go-gitignore, runbooks/lib/gitignore.lua).
---@param dir string the directory holding the file and its .gitignore
---@param name string the file's name in dir
---@param use_git boolean false in a rehearsal (the simulated world has no git)
---@return boolean ignored, string how ("git check-ignore" or ".gitignore patterns")
function M.ignored(dir, name, use_git)
  if use_git and exec.which("git") then
    local inside = exec.run({"git", "-C", dir, "rev-parse", "--is-inside-work-tree"}, {timeout = 30})
    if inside.code == 0 and inside.stdout:match("^true") then
      local r = exec.run({"git", "-C", dir, "check-ignore", "-q", "--", name}, {timeout = 30})
      if r.code == 0 or r.code == 1 then return r.code == 0, "git check-ignore" end
      error(fmt("git check-ignore %s failed: %s", name, (r.stderr:gsub("%s+$", ""))), 0)
    end
  end
  local gi = dir .. "/.gitignore"
  return fs.exists(gi) and gitignore.matches(fs.read(gi), name) or false, ".gitignore patterns"
end

--- The installer images of two references are the same for an upgrade
--- (issue #27.4): equal, or both Image Factory images of the same
--- registry, schematic ID, tag, platform and secure boot, whatever the
--- form: talhelper before v3.0.24 writes installer/<id> and
--- installer-secureboot/<id>, later releases <mode>-installer/<id>
--- (metal-installer/, metal-installer-secureboot/), the factory serves
--- both (pkg/config/defaults.go InstallerURLTmpl).
---@param a string
---@param b string
---@return boolean
function M.same_installer(a, b)
  if a == b then return true end
  local factory = require "factory"
  local pa, pb = factory.parse_image(a or ""), factory.parse_image(b or "")
  if not (pa.factory and pb.factory) then return false end
  local function norm(kind)
    local mode, sb = kind:match("^(.-)%-?installer(%-?%a*)$")
    return (mode == "" and "metal" or mode) .. (sb or "")
  end
  return pa.registry == pb.registry and pa.id == pb.id and pa.tag == pb.tag and norm(pa.kind) == norm(pb.kind)
end

--- The installer talhelper gives each node: `talhelper gencommand upgrade`'s
--- output, ip -> image (the first --image per node; extra flags may follow).
---@param stdout string
---@return table<string, string>
function M.installer_images(stdout)
  local image_of = {}
  for ip, img in stdout:gmatch("%-%-nodes=(%S+) %-%-image=([^%s;]+)") do
    if image_of[ip] == nil then image_of[ip] = img end
  end
  return image_of
end

--- The Talos version talhelper generates for when talconfig.yaml has no
--- talosVersion: its own default (LatestTalosVersion, pkg/config/
--- defaults.go: v1.13.8 in talhelper v3.1.16, v1.10.5 in v3.0.30, ...: it
--- moves with each release), read off the tag talhelper itself puts on the
--- installers (gencommand upgrade), with a warning. A default other than
--- what the nodes run (servers: ip -> version) is refused (exit 2).
---@param talconfig string
---@param servers table<string, string>
---@return string
function M.default_version(talconfig, servers)
  local ok, r = pcall(exec.run, {"talhelper", "gencommand", "upgrade", "-c", talconfig}, {timeout = 120})
  local tv = ok and r.code == 0 and require("talconfig").version_of_gencommand(r.stdout) or nil
  if not tv then
    error(fmt("%s has no talosVersion and talhelper did not say which version it generates for (%s): set talosVersion "
      .. "to the version the nodes run", talconfig, ok and (r.stderr:gsub("%s+$", "")) or tostring(r)))
  end
  local others = {}
  for ip, tag in pairs(servers) do
    if tag ~= tv then others[#others + 1] = fmt("%s on %s", ip, tag) end
  end
  table.sort(others)
  if #others > 0 then
    error(require("runbook.error").new("usage", fmt("%s has no talosVersion: talhelper generates for its own default, "
      .. "%s, but %s; the installers would upgrade Talos too. Set talosVersion to the version the nodes run and run "
      .. "again. Nothing was changed", talconfig, tv, table.concat(others, ", ")), {exit = 2}), 0)
  end
  require("runbook.log").warn(fmt("%s has no talosVersion: talhelper generates for its own default, %s (it changes "
    .. "with each talhelper release), so the installers get that tag; set talosVersion to pin it to the version the "
    .. "nodes run", talconfig, tv))
  return tv
end

return M

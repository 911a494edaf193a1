--- What changed between talhelper releases v3.0.0 .. v3.1.16 in what the
--- simulated talhelper renders (budimanjojo/talhelper, each tag's file
--- named below, compared tag by tag).
local M = {}

M.DEFAULT = "v3.1.16"      -- the latest release modelled
M.OLDEST = "v3.0.0"

--- {release, LatestTalosVersion} where it changed (pkg/config/defaults.go):
--- the Talos version used when talconfig.yaml has no talosVersion.
M.LATEST_TALOS = {
  {"v3.0.0", "v1.7.4"}, {"v3.0.1", "v1.7.5"}, {"v3.0.5", "v1.7.6"}, {"v3.0.6", "v1.8.0"}, {"v3.0.7", "v1.8.1"},
  {"v3.0.8", "v1.8.2"}, {"v3.0.10", "v1.8.3"}, {"v3.0.11", "v1.8.4"}, {"v3.0.13", "v1.9.0"}, {"v3.0.14", "v1.9.1"},
  {"v3.0.15", "v1.9.2"}, {"v3.0.17", "v1.9.3"}, {"v3.0.19", "v1.9.4"}, {"v3.0.21", "v1.9.5"}, {"v3.0.22", "v1.10.0"},
  {"v3.0.24", "v1.10.1"}, {"v3.0.25", "v1.10.2"}, {"v3.0.28", "v1.10.3"}, {"v3.0.29", "v1.10.4"},
  {"v3.0.30", "v1.10.5"}, {"v3.0.32", "v1.10.6"}, {"v3.0.33", "v1.10.7"}, {"v3.0.34", "v1.11.0"},
  {"v3.0.35", "v1.11.1"}, {"v3.0.36", "v1.11.2"}, {"v3.0.38", "v1.11.3"}, {"v3.0.39", "v1.11.5"},
  {"v3.0.42", "v1.11.6"}, {"v3.0.44", "v1.12.0"}, {"v3.1.0", "v1.12.1"}, {"v3.1.3", "v1.12.2"}, {"v3.1.4", "v1.12.3"},
  {"v3.1.5", "v1.12.4"}, {"v3.1.6", "v1.12.5"}, {"v3.1.7", "v1.12.6"}, {"v3.1.8", "v1.12.7"}, {"v3.1.9", "v1.13.0"},
  {"v3.1.10", "v1.13.2"}, {"v3.1.11", "v1.13.4"}, {"v3.1.12", "v1.13.5"}, {"v3.1.13", "v1.13.6"},
  {"v3.1.14", "v1.13.7"}, {"v3.1.16", "v1.13.8"},
}

--- {release, newest Talos minor accepted} (pkg/config/validator.go
--- checkSupportedTalosVersion's supportedMajorMinor; v1.2 is the oldest).
M.SUPPORTED_MINOR = {{"v3.0.0", 8}, {"v3.0.9", 9}, {"v3.0.15", 10}, {"v3.0.23", 11}, {"v3.0.35", 12}, {"v3.1.10", 14}}

-- the installer template gained {{.Mode}}- (pkg/config/defaults.go)
M.MODE_INSTALLER = "v3.0.24"
-- filenameTmpl (pkg/config/outputfilename.go, new in v3.0.24)
M.FILENAME_TMPL = "v3.0.24"
-- a group's certSANs appended to the node's (pkg/config/nodeconfigs.go)
M.CERTSANS_APPEND = "v3.0.20"
-- gencommand upgrade --offline-mode (cmd/gencommand_upgrade.go)
M.OFFLINE_FLAG = "v3.0.22"

--- {major, minor, patch} of "v3.1.16" / "1.11.0", or nil.
function M.parse(v)
  local a, b, c = tostring(v or ""):match("^v?(%d+)%.(%d+)%.?(%d*)")
  if not a then return nil end
  return {tonumber(a), tonumber(b), tonumber(c) or 0}
end

local function cmp(a, b)
  local x, y = M.parse(a), M.parse(b)
  for i = 1, 3 do if x[i] ~= y[i] then return x[i] < y[i] and -1 or 1 end end
  return 0
end
M.cmp = cmp

--- true when talhelper release tv is `since` or later.
function M.at_least(tv, since) return cmp(tv, since) >= 0 end

--- true when Talos version v is `since` or later (a bad version: false).
function M.talos_at_least(v, since)
  if not M.parse(v) then return false end
  return cmp(v, since) >= 0
end

local function last_at_or_before(list, tv)
  local out = list[1][2]
  for _, e in ipairs(list) do if cmp(e[1], tv) <= 0 then out = e[2] end end
  return out
end

--- The Talos version of a talhelper release when talosVersion is not set.
function M.latest_talos(tv) return last_at_or_before(M.LATEST_TALOS, tv) end

--- The newest Talos minor (1.x) release tv accepts.
function M.supported_minor(tv) return last_at_or_before(M.SUPPORTED_MINOR, tv) end

--- The default installerURLTmpl of release tv.
function M.installer_template(tv)
  if M.at_least(tv, M.MODE_INSTALLER) then
    return "{{.RegistryURL}}/{{.Mode}}-installer{{if .Secureboot}}-secureboot{{end}}/{{.ID}}:{{.Version}}"
  end
  return "{{.RegistryURL}}/installer{{if .Secureboot}}-secureboot{{end}}/{{.ID}}:{{.Version}}"
end

--- The installer image release tv writes for schematic `id` on a metal
--- node (the default template, factory.talos.dev).
---@param tv? string talhelper release (nil: the latest modelled)
---@param id string schematic ID
---@param version string Talos version
---@param secureboot? boolean
function M.factory_installer(tv, id, version, secureboot)
  local t = M.installer_template(tv or M.DEFAULT)
  t = t:gsub("{{if %.Secureboot}}%-secureboot{{end}}", secureboot and "-secureboot" or "")
  return (t:gsub("{{%.(%w+)}}", {RegistryURL = "factory.talos.dev", Mode = "metal", ID = id, Version = version}))
end

--- Whether tv is a modelled release ("v3.0.0" .. "v3.1.16").
function M.known(tv)
  return M.parse(tv) ~= nil and cmp(tv, M.OLDEST) >= 0 and cmp(tv, M.DEFAULT) <= 0
end

return M

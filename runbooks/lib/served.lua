--- served: the runbooks against `runbook world serve` without the world's
--- token on any command line (issue #28.8). The served directory's `env`
--- file (engine/lua/serve.lua) exports RUNBOOK_WORLD_URL, the URL with the
--- token; argv is public (ps, /proc/*/cmdline), the environment is not.
--- The token is registered as a secret, so every output masks it.
local secret = require "runbook.secret"

local M = {}

--- The served world's service URLs from RUNBOOK_WORLD_URL, or nil when it
--- is not set: {factory_url, tailscale_api, api_probe_url}.
---@return table?
function M.urls()
  local url = os.getenv("RUNBOOK_WORLD_URL")
  if not url or url == "" then return nil end
  url = url:gsub("%s+$", ""):gsub("/+$", "")
  local token = url:match("^https?://[^/]+/([^/]+)$")
  if token then secret.new(token, "the served world's token") end   -- masked from here on
  return {factory_url = url .. "/factory", tailscale_api = url .. "/tailscale", api_probe_url = url .. "/svc/version"}
end

--- Sets the service variables the operator left at their defaults to the
--- served world's, when RUNBOOK_WORLD_URL names one.
---@param v table the runbook's variables
---@param names string[] the variables to fill (factory_url, tailscale_api, api_probe_url)
---@param defaults table name -> its default value (absent: none)
function M.apply(v, names, defaults)
  local urls = M.urls()
  if not urls then return end
  for _, name in ipairs(names) do
    if urls[name] and v[name] == defaults[name] then v[name] = urls[name] end
  end
end

return M

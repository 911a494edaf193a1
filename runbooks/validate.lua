-- Validates Tailscale access to a Talos cluster (read-only): tailnet names, routes, operator.
local rb = require "runbook"
local log = require "runbook.log"
local checks = require "checks"
local talconfig = require "talconfig"
local tailscale = require "tailscale"

local v = rb.vars{
  talconfig = {type = "string", default = "talconfig.yaml", desc = "talhelper's config file"},
  routes = {type = "list", desc = "routes that must be served (default: the cluster's service CIDR)"},
  tailnet = {type = "string", desc = "tailnet DNS suffix (default: from tailscale status)"},
  api_key = {type = "secret", env = "TS_API_KEY", desc = "Tailscale API key, to check route approval (optional)"},
  tailscale_api = {type = "string", default = "https://api.tailscale.com"},
  operator_namespace = {type = "string", default = "tailscale"},
  operator_device = {type = "string", default = "tailscale-operator"},
  api_probe_url = {type = "string", desc = "URL that reaches the API server through the route (default: https://<kubernetes service IP>:443/version)"},
}
require("statedir").ignore(rb.state_dir, rb.dry_run)   -- git ignores what the runbooks keep (issue #28.6)
-- against `runbook world serve`: its URLs from RUNBOOK_WORLD_URL, never from argv (issue #28.8)
require("served").apply(v, {"tailscale_api", "api_probe_url"},
                         {tailscale_api = "https://api.tailscale.com"})

-- read-only: no lock, no journal (issue #29.3), so it runs beside a rollout
rb.cluster("validate", {read_only = true})

rb.phase("Validation", function()
  local cfg = talconfig.read(v.talconfig)
  local _, st = tailscale.peers()
  local suffix = v.tailnet or (st.MagicDNSSuffix or ""):gsub("%.$", "")
  local names = {}
  for _, n in ipairs(cfg.nodes) do names[#names + 1] = tailscale.device_name(n.hostname) end
  local results = checks.all{nodes = cfg.nodes, names = names, routes = v.routes or {cfg.svc_cidr},
                             svc_cidr = cfg.svc_cidr, probe_url = v.api_probe_url, tailnet = suffix, api = v.tailscale_api, api_key = v.api_key,
                             operator_ns = v.operator_namespace, operator_device = v.operator_device}
  local bad, rows = {}, {}
  for _, c in ipairs(results) do
    log.info(string.format("%s %s: %s", c.ok and "✓" or "✗", c.name, c.observation))
    rows[c.name] = (c.ok and "ok: " or "FAILED: ") .. c.observation
    if not c.ok then bad[#bad + 1] = c.name end
  end
  rb.report("Checks", rows)
  if #bad > 0 then
    error(require("runbook.error").new("validation", #bad .. " check(s) failed: " .. table.concat(bad, ", "), {exit = 1}), 0)
  end
end)

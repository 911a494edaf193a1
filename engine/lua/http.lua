--- runbook.http: HTTP(S) requests on libcurl, many at once on one loop.
--- Transport failures raise (kinds dns, connect, tls, timeout, http);
--- statuses, 5xx included, come back as data. In a dry-run the request
--- goes to the simulated world.
local args = require "runbook.args"
local core = require "runbook.http.core"
local errors = require "runbook.error"
local events = require "runbook.events"
local json = require "runbook.json"
local sys = require "runbook.sys"

local M = {}

local dry_run = sys.options().dry_run

local Response = {}
Response.__index = Response

--- The body decoded as JSON (raises a json error naming the URL).
function Response:json()
  return json.decode(self.body, {name = self.url})
end

--- True for a 2xx status.
function Response:ok()
  return self.status >= 200 and self.status < 300
end

---@class runbook.http.Request
---@field url string http:// or https://
---@field method? string default GET
---@field headers? table<string,string|userdata>
---@field body? string|userdata
---@field json? any encoded as the body, with Content-Type: application/json
---@field timeout? number seconds for the whole transfer (default 60)
---@field connect_timeout? number seconds (default 10)
---@field insecure? boolean skip TLS verification (logs a warning)
---@field cacert? string CA bundle file to verify against
---@field cert? string client certificate file (PEM), for mutual TLS
---@field key? string the client certificate's private key file (PEM)
---@field bearer? string|userdata token for Authorization: Bearer
---@field follow? boolean follow redirects (default false)
---@field max_body? integer bytes of response body kept, counted decoded (default 8 MiB; more: error kind too_large)
---@field check? boolean raise an `http_status` error unless the status is 2xx
---@field stop_at? string end the transfer, as a success (`stopped = true`), once the body holds this text (a watch's first event)

local secret_mod = require "runbook.secret"

local function origin(url)
  local scheme, host = url:match("^(%a+)://([^/?#]+)")
  if not scheme then return nil end
  host = host:gsub("^.*@", ""):lower()
  if not host:find(":%d+$") then host = host .. (scheme:lower() == "https" and ":443" or ":80") end
  return scheme:lower() .. "://" .. host
end

--- The Location of a redirect, resolved against the URL it came from.
local function resolve(base, loc)
  if loc:match("^%a+://") then return loc end
  local o = base:match("^(%a+://[^/?#]+)")
  if loc:sub(1, 2) == "//" then return base:match("^(%a+:)") .. loc end
  if loc:sub(1, 1) == "/" then return o .. loc end
  return (base:match("^(.*/)") or (o .. "/")) .. loc
end

--- A header value that is a secret, or a string holding one's text
--- ("Key " .. s:reveal()): either must not reach another origin.
local function secret_value(v)
  return secret_mod.is(v) or type(v) == "string" and sys.mask(v) ~= v
end

local function holds_secret(req)
  if req.bearer ~= nil then return true end
  for _, v in pairs(req.headers or {}) do if secret_value(v) then return true end end
  return false
end

local request_once

--- Redirects followed here, not by libcurl, when a header holds a secret:
--- libcurl drops only Authorization and cookies on a redirect to another
--- host, and would send a custom header holding a secret there. On a
--- change of origin (scheme, host, port) the bearer and every header
--- holding a secret are dropped; 303, and 301/302 after a POST, become a
--- GET without a body, as browsers and libcurl do.
local function follow_guarded(opts)
  local cur = {}
  for k, v in pairs(opts) do cur[k] = v end
  cur.follow = false
  local from = origin(cur.url)
  for _ = 1, 10 do
    local res = request_once(cur)
    local loc = res.headers and res.headers.location
    if not (res.status >= 300 and res.status < 400 and res.status ~= 304 and loc) then return res end
    local nxt = {}
    for k, v in pairs(cur) do nxt[k] = v end
    nxt.url = resolve(cur.url, loc)
    if res.status == 303 or ((res.status == 301 or res.status == 302) and cur.method == "POST") then
      nxt.method, nxt.body = "GET", nil
    end
    if origin(nxt.url) ~= from then
      nxt.bearer = nil
      local h = {}
      for k, v in pairs(cur.headers or {}) do if not secret_value(v) then h[k] = v end end
      nxt.headers = h
    end
    cur = nxt
  end
  error(errors.new("http", ("%s: more than 10 redirects (a redirect loop?)"):format(opts.url), {url = opts.url}), 3)
end

function M.request(req)
  args.check(1, "request", req, "table")
  local opts = {}
  for k, v in pairs(req) do opts[k] = v end
  if opts.json ~= nil then
    opts.body = json.encode(opts.json)
    opts.json = nil
    local h = {}
    for k, v in pairs(opts.headers or {}) do h[k] = v end
    local has_ct = false
    for k in pairs(h) do if k:lower() == "content-type" then has_ct = true end end
    if not has_ct then h["Content-Type"] = "application/json" end
    opts.headers = h
  end
  local method = (opts.method or "GET"):upper()
  opts.method = method
  if opts.insecure and opts.url:lower():match("^https://") then  -- plain http has no TLS to skip
    events.emit{type = "log", level = "warn", msg = ("TLS verification is off for %s"):format(opts.url)}
  end
  events.emit{type = "http", method = method, url = opts.url, level = "debug",
              text = ("%s %s"):format(method, opts.url)}
  local res
  if opts.follow and not dry_run and holds_secret(opts) then res = follow_guarded(opts)
  else res = request_once(opts) end
  -- a secret the server reflects is masked like any other output
  res.body = sys.mask(res.body or "")
  for k, v in pairs(res.headers or {}) do res.headers[k] = sys.mask(v) end
  setmetatable(res, Response)
  events.emit{type = "http_done", method = method, url = opts.url, status = res.status, level = "debug",
              text = ("  %d %s"):format(res.status, opts.url)}
  if opts.check and not res:ok() then
    error(errors.new("http_status", ("%s %s returned %d: %s"):format(method, opts.url, res.status,
                     (res.body or ""):sub(1, 300)), {status = res.status, response = res}), 2)
  end
  return res
end

request_once = function(opts)
  if dry_run then
    local world = package.loaded["runbook.world"]
    if not world then
      error(errors.new("dry_run", ("dry-run: no simulated world to answer %s %s"):format(opts.method, tostring(opts.url))), 3)
    end
    return world.http(opts)
  end
  return core.request(opts)
end

local function with_method(method)
  return function(url, opts)
    local req = {}
    for k, v in pairs(opts or {}) do req[k] = v end
    req.url, req.method = url, method
    return M.request(req)
  end
end

M.get = with_method("GET")
M.post = with_method("POST")
M.put = with_method("PUT")
M.delete = with_method("DELETE")
M.head = with_method("HEAD")

return M

--- runbook.serve: `runbook world serve` and `runbook world call`. Serves
--- a simulated world (the shipped runbooks' sim/world.lua) on 127.0.0.1 so
--- that a real run, with real processes and sockets, can be tested end to
--- end. The world declares what it serves (world.serving()): a shim in
--- DIR/bin for each of its programs forwards argv to the server, and each
--- route maps a path prefix to the base URL it stands for. Real clock.
--- Nothing here knows a tool or a host by name.
local async = require "runbook.async"
local core_fs = require "runbook.fs.core"
local errors = require "runbook.error"
local http = require "runbook.http"
local json = require "runbook.json"
local net = require "runbook.net"
local serve_api = require "runbook.serve_api"
local sys = require "runbook.sys"

local M = {}
local fmt = string.format

--- The world and a line saying what it simulates: --scenario's, else
--- what the world rehearses by default here (a dry-run's choice: the
--- talconfig.yaml of the working directory, else its sample), else the
--- shipped scenarios/default.yaml.
local function load_world(scenario)
  local dir = sys.runbooks_dir()
  if not dir then error(errors.new("usage", "cannot find the shipped runbooks (sim/world.lua)", {exit = 2}), 0) end
  local world = dofile(dir .. "/sim/world.lua")
  local about, warnings = nil, {}
  if scenario and world.scenario_path then scenario, about = world.scenario_path(scenario)
  elseif not scenario and world.default_scenario then scenario, about, warnings = world.default_scenario(sys.options())
  elseif not scenario then scenario = dir .. "/scenarios/default.yaml" end
  world.load(scenario)
  for _, w in ipairs(warnings or {}) do sys.write("stderr", "warning: " .. w .. "\n") end
  return world, about or ("the scenario " .. tostring(scenario))
end

--- A word for sh, whatever it holds: 'it'\''s'.
local function sh_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

--- The shims carry no URL: it holds the token, and argv is public (ps).
--- They name the 0600 file that holds it (`world call @FILE`).
local function write_files(dir, url, world, serving, tls)
  core_fs.mkdir_p(dir .. "/bin")
  local self = sys.exe()
  local url_file = dir .. "/world.url"
  for _, name in ipairs(serving.programs) do
    core_fs.write(dir .. "/bin/" .. name,
      fmt("#!/bin/sh\n# %s of the simulated world served by runbook (URL in %s)\nexec %s world call %s %s \"$@\"\n",
          name, url_file, sh_quote(self), sh_quote("@" .. url_file), sh_quote(name)),
      {mode = tonumber("755", 8)})
  end
  for name, content in pairs(world.files()) do
    if content then core_fs.write(dir .. "/" .. name, content) end
  end
  local api_env = ""
  if serving.api then
    local server = tls and fmt("https://127.0.0.1:%d", tls.srv:port()) or url:match("^(http://[^/]+)")
    api_env = serve_api.write_files(dir, server, url:match("([^/]+)$"), serving.api, tls and tls.ca)
  end
  core_fs.write(dir .. "/env", fmt("export PATH=%s:\"$PATH\"\nexport RUNBOOK_WORLD_URL=%s\n%s",
                                   sh_quote(dir .. "/bin"), sh_quote(url), api_env), {mode = tonumber("600", 8)})
  -- last: a script that waits for world.url finds every other file in place
  core_fs.write(url_file, url .. "\n", {mode = tonumber("600", 8)})
end

--- @args relative to the caller's directory become absolute for the world
local function absolute(argv, cwd)
  local out = {}
  for i, a in ipairs(argv) do
    if type(a) == "string" and a:sub(1, 1) == "@" and a:sub(2, 2) ~= "/" then a = "@" .. cwd .. "/" .. a:sub(2) end
    out[i] = a
  end
  return out
end

--- Who may drive the world: a request that names the token as the first
--- segment of its path, addressed to this server by its loopback name,
--- and not sent by a web page (no Origin; /exec only as JSON, which a
--- page cannot send to another origin without a preflight, never answered).
local function refusal(req, token, port)
  local host = req.headers.host
  if host ~= "127.0.0.1:" .. port and host ~= "localhost:" .. port then
    return 421, "wrong Host: this server answers only as 127.0.0.1:" .. port
  end
  if req.headers.origin then return 403, "requests from web pages (an Origin header) are refused" end
  if serve_api.bears(req, token) then return nil end
  if req.path:sub(1, #token + 2) ~= "/" .. token .. "/" then
    return 403, "missing or wrong token (the URL is in world.url of the served directory)"
  end
  if req.path == "/" .. token .. "/exec" and not (req.headers["content-type"] or ""):match("^application/json") then
    return 415, "POST /exec takes application/json"
  end
end

local function handle(world, req, conn, token, port)
  local code, why = refusal(req, token, port)
  if code then
    conn:respond(code, {["Content-Type"] = "text/plain"}, why .. "\n")
    return
  end
  local api = world.serving().api
  if api and serve_api.bears(req, token) and req.path:sub(1, #token + 2) ~= "/" .. token .. "/" then
    return serve_api.handle(api, req, conn)
  end
  local path = req.path:sub(#token + 2)
  local ok, status, body, ctype = pcall(function()
    if req.method == "POST" and path == "/exec" then
      local call = json.decode(req.body, {name = "exec request"})
      local r = world.exec(absolute(call.argv, call.cwd or "."), {cwd = call.cwd, env = call.env})
      return 200, json.encode({code = r.code or 1, stdout = r.stdout, stderr = r.stderr}), "application/json"
    end
    if req.method == "GET" and path == "/state" then
      return 200, json.encode(world.snapshot()), "application/json"
    end
    local host, rest
    for _, route in ipairs(world.serving().routes) do
      if path:sub(1, #route.prefix) == route.prefix then
        host, rest = route.base, path:sub(#route.prefix)
        break
      end
    end
    if not host then return 404, "not found\n", "text/plain" end
    local r = world.http({method = req.method, url = host .. rest, body = req.body, headers = req.headers})
    return r.status, r.body, r.headers and r.headers["content-type"] or "text/plain"
  end)
  if not ok then
    conn:respond(502, {["Content-Type"] = "text/plain"}, tostring(status) .. "\n")
  else
    conn:respond(status, {["Content-Type"] = ctype}, body)
  end
end

--- 128 bits from the kernel, as hex.
local function random_token()
  local f = assert(io.open("/dev/urandom", "rb"))
  local bytes = f:read(16)
  f:close()
  return (bytes:gsub(".", function(c) return fmt("%02x", c:byte()) end))
end

local function absolute_dir(dir)
  if dir:sub(1, 1) == "/" then return dir end
  return (os.getenv("PWD") or ".") .. "/" .. dir
end

--- Serves until interrupted.
function M.serve(scenario, dir)
  local world, about = load_world(scenario)
  sys.write("stderr", "simulating " .. about .. "\n")
  core_fs.mkdir_p(dir, tonumber("700", 8))
  if world.confine then world.confine(absolute_dir(dir)) end
  local srv = net.listen("127.0.0.1", 0)
  local token = random_token()
  local url = fmt("http://127.0.0.1:%d/%s", srv:port(), token)
  -- the API's HTTPS port, for a client that sends its token only over TLS
  local tls
  if world.serving().api then
    local tsrv, ca = serve_api.listen_tls(dir)
    if tsrv then tls = {srv = tsrv, ca = ca}
    else sys.write("stderr", "warning: the Kubernetes API is served over plain HTTP only: " .. ca .. "\n") end
  end
  write_files(dir, url, world, world.serving(), tls)
  if tls then
    async.spawn(function()
      while true do
        local req, conn = tls.srv:accept()
        async.spawn(handle, world, req, conn, token, tls.srv:port())
      end
    end)
  end
  sys.write("stderr", fmt("serving the simulated world on 127.0.0.1:%d (URL with its token in %s/world.url); shims in %s/bin (source %s/env)\n",
                          srv:port(), dir, dir, dir))
  while true do
    local req, conn = srv:accept()
    async.spawn(handle, world, req, conn, token, srv:port())
  end
end

--- A shim's call: forwards argv to the served world, prints its output,
--- returns its exit code.
--- The caller's environment (a program reads it: talhelper substitutes
--- ${VAR} from it), from /proc/self/environ; sent to the world on
--- loopback only.
local function environment()
  local f = io.open("/proc/self/environ", "rb")
  local env = {}
  if not f then return env end
  for kv in f:read("a"):gmatch("[^%z]+") do
    local k, v = kv:match("^([^=]+)=(.*)$")
    if k then env[k] = v end
  end
  f:close()
  return env
end

--- URL, or @FILE: the URL is the first line of FILE (what the shims pass).
local function url_of(arg)
  if arg:sub(1, 1) ~= "@" then return arg end
  local f, err = io.open(arg:sub(2), "r")
  if not f then error(errors.new("usage", "cannot read the world's URL: " .. tostring(err), {exit = 2}), 0) end
  local line = f:read("l") or ""
  f:close()
  return line
end

function M.call(url, argv)
  url = url_of(url)
  local cwd = os.getenv("PWD") or "."
  local ok, r = pcall(http.post, url .. "/exec", {json = {argv = argv, cwd = cwd, env = environment()}, timeout = 600})
  if not ok then
    io.stderr:write(fmt("%s: the simulated world at %s does not answer: %s\n", argv[1], url, tostring(r)))
    return 1
  end
  if r.status ~= 200 then
    io.stderr:write(fmt("%s: %s", argv[1], r.body))
    return 1
  end
  local res = r:json()
  io.stdout:write(res.stdout)
  io.stderr:write(res.stderr)
  return math.tointeger(res.code) or 1
end

return M

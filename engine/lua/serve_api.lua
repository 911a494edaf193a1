--- runbook.serve_api: the API a served world answers to a real client
--- (serving().api: the simulated cluster's Kubernetes API for the real
--- kubectl). Its requests carry the world's token as a bearer token
--- (`Authorization: Bearer`), never in the URL: the client reads it from
--- the 0600 file written here (a kubeconfig), so it is on no command line.
--- A response may be a stream (a watch): its lines are sent as they come,
--- chunked, until the client goes, the world ends it, or its timeout.
local async = require "runbook.async"
local core_fs = require "runbook.fs.core"
local exec = require "runbook.exec"
local net = require "runbook.net"
local time = require "runbook.time"

local M = {}
local fmt = string.format

local POLL = 0.1    -- seconds between two looks at a watch's new events

--- Whether req bears the token.
function M.bears(req, token)
  local auth = req.headers.authorization
  return auth ~= nil and auth == "Bearer " .. token
end

local function sh_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

--- Whether the file is a shim or wrapper a served world wrote (this one's
--- or another's still on PATH): its second line says so.
local function ours(path)
  local f = io.open(path, "rb")
  if not f then return false end
  local head = f:read(256) or ""
  f:close()
  return head:match("^#![^\n]*\n# [^\n]*served by runbook") ~= nil
end

--- The real program of that name on PATH: no shim or wrapper of a served
--- world (DIR/bin, the bin of any other served world, a directory beside a
--- world.url, or a wrapper of an older world's left first on PATH).
local function real_program(name, bindir)
  for d in (os.getenv("PATH") or ""):gmatch("[^:]+") do
    local p = d .. "/" .. name
    if d ~= bindir and not core_fs.exists(d .. "/../world.url") and core_fs.exists(p) and not ours(p) then return p end
  end
end

--- A TLS listener on 127.0.0.1 for clients that send their credentials
--- only over HTTPS (kubectl: client-go's clientcmd merges a kubeconfig's
--- user into the config only when the server's scheme is https). Its key
--- and a self-signed certificate for IP 127.0.0.1 are made by the openssl
--- command into DIR (0700; the key rewritten 0600). Returns the server and
--- the certificate (PEM), or nil and why.
function M.listen_tls(dir)
  local crt, key = dir .. "/tls.crt", dir .. "/tls.key"
  local ok, r = pcall(exec.run, {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
    "-nodes", "-keyout", key, "-out", crt, "-days", "30", "-subj", "/CN=runbook simulated world",
    "-addext", "subjectAltName=IP:127.0.0.1"}, {timeout = 30})
  if not ok or r.code ~= 0 then
    return nil, "openssl req failed: " .. (ok and r.stderr:gsub("%s+$", "") or tostring(r))
  end
  core_fs.write(key, core_fs.read(key), {mode = tonumber("600", 8)})
  local lok, srv = pcall(net.listen, "127.0.0.1", 0, {tls = {cert = crt, key = key}})
  if not lok then return nil, tostring(srv) end
  return srv, core_fs.read(crt)
end

--- Writes the API's file (0600: it holds the token) for `server` (with
--- the TLS certificate `ca` when it is HTTPS) and, when the real program
--- is installed, DIR/bin/PROGRAM running it with that file (in place of
--- the forwarding shim). Returns the line for DIR/env.
function M.write_files(dir, server, token, api, ca)
  local file = dir .. "/" .. api.file
  core_fs.write(file, api.config(server, token, ca), {mode = tonumber("600", 8)})
  local real = real_program(api.program, dir .. "/bin")
  if real then
    core_fs.write(dir .. "/bin/" .. api.program,
      fmt("#!/bin/sh\n# the real %s, pointed at the simulated world served by runbook (%s)\n%s=%s exec %s \"$@\"\n",
          api.program, file, api.env, sh_quote(file), sh_quote(real)),
      {mode = tonumber("755", 8)})
  end
  return fmt("export %s=%s\n", api.env, sh_quote(file))
end

local function stream(conn, r)
  local deadline = r.timeout and time.monotonic() + r.timeout
  conn:stream(r.status, r.headers)
  while true do
    local lines, last = r.watch()
    if not lines then
      conn:send(last)
      break
    end
    for _, line in ipairs(lines) do
      if not conn:send(line) then return end
    end
    if deadline and time.monotonic() >= deadline then break end
    if conn:gone() then return end
    async.sleep(POLL)
  end
  conn:finish()
end

--- Answers req through the world's api.handle.
function M.handle(api, req, conn)
  local ok, r = pcall(api.handle, req)
  if not ok then
    conn:respond(500, {["Content-Type"] = "text/plain"}, tostring(r) .. "\n")
  elseif r.watch then
    local sok, err = pcall(stream, conn, r)
    if not sok then io.stderr:write("watch ended: ", tostring(err), "\n") end
  else
    conn:respond(r.status, {["Content-Type"] = r.headers and r.headers["content-type"] or "application/json"}, r.body)
  end
end

return M

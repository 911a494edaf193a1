-- runbook.net: the loopback HTTP server behind `runbook world serve`.
local net = require "runbook.net"
local http = require "runbook.http"
local async = require "runbook.async"
local errors = require "runbook.error"
local t = require "runbook.testing"

function test_round_trip_and_headers()
  local srv = net.listen("127.0.0.1", 0)
  t.truthy(srv:port() > 0)
  local serving = async.spawn(function()
    for _ = 1, 3 do
      local req, conn = srv:accept()
      async.spawn(function()
        conn:respond(201, {["X-Echo"] = req.headers["x-in"] or "-"}, req.method .. " " .. req.path .. " " .. req.body)
      end)
    end
  end)
  local url = ("http://127.0.0.1:%d"):format(srv:port())
  local r = http.post(url .. "/a?b=1", {body = "hello", headers = {["X-In"] = "42"}})
  t.eq(r.status, 201)
  t.eq(r.body, "POST /a?b=1 hello")
  t.eq(r.headers["x-echo"], "42")
  local all = async.map({1, 2}, function(i) return http.get(url .. "/" .. i).body end)
  t.eq(all, {"GET /1 ", "GET /2 "})
  serving:wait()
  srv:close()
end

function test_only_loopback()
  t.raises("only loopback", net.listen, "0.0.0.0", 0)
  t.raises("only loopback", net.listen, "192.168.1.1", 0)
end

function test_close_wakes_a_waiting_accept()
  local srv = net.listen("127.0.0.1", 0)
  local waiter = async.spawn(function() return srv:accept() end)
  async.sleep(0.01)
  srv:close()
  local err = t.raises(waiter.wait, waiter)
  t.truthy(errors.is(err, "closed"))
  t.raises("closed server", srv.accept, srv)
end

function test_listen_on_a_taken_port_is_a_net_error()
  local a = net.listen("127.0.0.1", 0)
  local err = t.raises(net.listen, "127.0.0.1", a:port())
  t.eq(err.kind, "net")
  t.match(tostring(err), "EADDRINUSE")
  a:close()
end

-- a chunked response sent as it comes (a watch): the head, chunks, the end;
-- send reports a client that has gone
function test_streamed_response()
  local srv = net.listen("127.0.0.1", 0)
  local serving = async.spawn(function()
    local _, conn = srv:accept()
    conn:stream(200, {["Content-Type"] = "application/json", ["Content-Length"] = "99"})
    t.eq(conn:send('{"type":"ADDED"}\n'), true)
    t.eq(conn:send(""), true)                  -- an empty chunk would end the body: skipped
    async.sleep(0.05)
    t.eq(conn:gone(), false)
    t.eq(conn:send('{"type":"DELETED"}\n'), true)
    conn:finish()
    t.raises("closed connection", conn.send, conn, "x")
  end)
  local r = http.get(("http://127.0.0.1:%d/w"):format(srv:port()))
  t.eq(r.status, 200)
  t.eq(r.body, '{"type":"ADDED"}\n{"type":"DELETED"}\n')
  t.eq(r.headers["transfer-encoding"], "chunked")
  t.eq(r.headers["content-length"], nil)
  serving:wait()
  srv:close()
end

function test_streamed_response_notices_the_client_leaving()
  local srv = net.listen("127.0.0.1", 0)
  local serving = async.spawn(function()
    local _, conn = srv:accept()
    conn:stream(200, {})
    t.eq(conn:send("first\n"), true)
    -- the client times out and closes; sends fail from then on
    local n = 0
    while not conn:gone() and n < 100 do async.sleep(0.02); n = n + 1 end
    t.eq(conn:gone(), true)
    t.eq(conn:send("after\n"), false)
    conn:finish()
  end)
  local err = t.raises("", http.get, ("http://127.0.0.1:%d/w"):format(srv:port()), {timeout = 0.3})
  t.eq(errors.is(err) and err.kind, "timeout")
  serving:wait()
  srv:close()
end

-- HTTPS (opts.tls): a certificate made by the openssl command, a request
-- through libcurl over TLS, a whole response and a streamed one
function test_tls_listener()
  local exec = require "runbook.exec"
  local fs = require "runbook.fs"
  local dir = fs.tmpdir("rb-net-tls")
  local r = exec.run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                      "-keyout", dir .. "/k.pem", "-out", dir .. "/c.pem", "-days", "1", "-subj", "/CN=test",
                      "-addext", "subjectAltName=IP:127.0.0.1"}, {timeout = 30})
  t.eq(r.code, 0, r.stderr)
  local srv = net.listen("127.0.0.1", 0, {tls = {cert = dir .. "/c.pem", key = dir .. "/k.pem"}})
  local serving = async.spawn(function()
    local req, conn = srv:accept()
    conn:respond(200, {["X-Path"] = req.path}, "secret " .. req.body)
    local _, c2 = srv:accept()
    c2:stream(200, {})
    c2:send("one\n")
    c2:send("two\n")
    c2:finish()
  end)
  local url = ("https://127.0.0.1:%d"):format(srv:port())
  local res = http.post(url .. "/x", {body = "hello", insecure = true})
  t.eq({res.status, res.body, res.headers["x-path"]}, {200, "secret hello", "/x"})
  t.eq(http.get(url .. "/w", {insecure = true}).body, "one\ntwo\n")
  serving:wait()
  srv:close()
  -- plain HTTP to the TLS port is no request: the connection is closed
  local srv2 = net.listen("127.0.0.1", 0, {tls = {cert = dir .. "/c.pem", key = dir .. "/k.pem"}})
  t.raises("", http.get, ("http://127.0.0.1:%d/"):format(srv2:port()), {timeout = 5})
  srv2:close()
  t.raises("TLS", net.listen, "127.0.0.1", 0, {tls = {cert = dir .. "/nope.pem", key = dir .. "/k.pem"}})
  for _, f in ipairs{"k.pem", "c.pem"} do fs.remove(dir .. "/" .. f) end
  fs.remove(dir)
end

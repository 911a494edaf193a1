-- runbook.http: real transfers to a server this test starts on 127.0.0.1.
local http = require "runbook.http"
local async = require "runbook.async"
local exec = require "runbook.exec"
local fs = require "runbook.fs"
local time = require "runbook.time"
local errors = require "runbook.error"
local support = require "support"
local t = require "runbook.testing"

local port, stop

local function url(path) return ("http://127.0.0.1:%d%s"):format(port, path) end

local function with_server(fn)
  return function()
    port, stop = support.httpd()
    local ok, err = pcall(fn)
    stop()
    if not ok then error(err, 0) end
  end
end

test_get_status_headers_body = with_server(function()
  local r = http.get(url("/echo?x=1"))
  t.eq(r.status, 200)
  t.eq(r.headers["content-type"], "application/json")
  t.eq(r.headers["x-test"], "a, b")           -- repeated headers joined
  local j = r:json()
  t.eq(j.method, "GET")
  t.eq(j.path, "/echo?x=1")
  t.truthy(r:ok())
end)

test_error_statuses_are_results = with_server(function()
  local r = http.get(url("/status/503"))
  t.eq(r.status, 503)
  t.eq(r.body, "status body\n")
  t.eq(r:ok(), false)
  local err = t.raises(http.get, url("/status/404"), {check = true})
  t.eq(err.kind, "http_status")
  t.eq(err.status, 404)
end)

test_methods_headers_json_body_bearer = with_server(function()
  local r = http.post(url("/echo"), {json = {a = 1, list = {1, 2}}, headers = {["X-One"] = "1"}, bearer = "tok"})
  local j = r:json()
  t.eq(j.method, "POST")
  t.eq(j.headers["content-type"], "application/json")
  t.eq(j.headers["x-one"], "1")
  t.eq(j.headers["authorization"], "Bearer tok")
  t.eq(require("runbook.json").decode(j.body), {a = 1, list = {1, 2}})
  for _, m in ipairs{"PUT", "DELETE", "PATCH"} do
    t.eq(http.request{url = url("/echo"), method = m, body = "b"}:json().method, m)
  end
  t.eq(http.head(url("/echo")).body, "")
end)

test_connection_refused_raises_connect_kind = function()
  -- a port nobody listens on: bind one, learn its number, close it
  local p, stop_srv = support.httpd()
  stop_srv()
  local err = t.raises(http.get, ("http://127.0.0.1:%d/"):format(p))
  t.eq(err.kind, "connect")
  t.match(err.url, "127%.0%.0%.1")
end

test_timeout_raises_timeout_kind = with_server(function()
  local err = t.raises(http.get, url("/slow?ms=3000"), {timeout = 0.3})
  t.eq(err.kind, "timeout")
end)

test_cancel_stops_the_transfer = with_server(function()
  local task = async.spawn(http.get, url("/slow?ms=3000"))
  time.sleep(0.2)
  task:cancel()
  local err = t.raises(task.wait, task)
  t.truthy(errors.is(err, "cancelled"))
  t.eq(http.get(url("/echo")).status, 200)   -- the multi handle still works
end)

test_many_transfers_share_the_loop = with_server(function()
  -- the server answers each request only once all ten are in flight: one
  -- after another, the first would wait out the server's cap ("alone")
  local bodies = async.map({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, function()
    return http.get(url("/barrier?n=10&tag=share"), {timeout = 30}).body
  end)
  t.eq(table.concat(bodies), string.rep("all\n", 10))
end)

test_large_body = with_server(function()
  t.eq(#http.get(url("/bytes?n=3000000")).body, 3000000)
end)

test_bad_arguments = function()
  t.raises("bad argument #1 to 'request'", http.request, "http://x")
  t.raises("url must start with http", http.get, "ftp://127.0.0.1/")
  t.raises("headers must be a table", http.get, "http://127.0.0.1:1/", {headers = 5})
  t.raises("timeouts must be > 0", http.get, "http://127.0.0.1:1/", {timeout = 0})
  t.raises("at most 1e9 seconds", http.get, "http://127.0.0.1:1/", {timeout = 1e300})      -- #30.7: (long)(t*1000)
  t.raises("at most 1e9 seconds", http.get, "http://127.0.0.1:1/", {connect_timeout = math.huge})
end

-- #17 items 12, 13: bounded bodies, header injection, clear transport errors
test_max_body_counts_decoded_bytes_and_is_its_own_kind = with_server(function()
  t.eq(#http.get(url("/bytes?n=1000"), {max_body = 1000}).body, 1000)
  local e = t.raises(http.get, url("/bytes?n=1001"), {max_body = 1000})
  t.eq(e.kind, "too_large")
  t.truthy(tostring(e):find("over max_body (1000 bytes", 1, true), tostring(e))
  -- 64 MiB of zeros in about 64 KiB of gzip: stopped at the default 8 MiB
  e = t.raises(http.get, url("/gzip?n=" .. 64 * 1024 * 1024))
  t.eq(e.kind, "too_large")
  t.eq(#http.get(url("/gzip?n=5000")).body, 5000)             -- decoded, within the bound
  t.raises("max_body must be", http.get, url("/bytes"), {max_body = -1})
end)

test_header_injection_is_refused = function()
  t.raises("header 'X%-A' holds a line break", http.get, "http://127.0.0.1:1/", {headers = {["X-A"] = "v\r\nX-Evil: 1"}})
  t.raises("holds a line break", http.get, "http://127.0.0.1:1/", {headers = {["X-A"] = "v\nX-Evil: 1"}})
  t.raises("is not an HTTP token", http.get, "http://127.0.0.1:1/", {headers = {["X-A: b\r\nX-Evil"] = "1"}})
  t.raises("is not an HTTP token", http.get, "http://127.0.0.1:1/", {headers = {[""] = "1"}})
  local secret = require "runbook.secret"
  t.raises("holds a line break", http.get, "http://127.0.0.1:1/", {headers = {["X-K"] = secret.new("a\r\nb: c", "k")}})
end

-- After a redirect the headers are those of the last response only: the
-- 302's Location, Date and Content-Length: 0 must not be joined with the
-- final response's (write_header in bindings/http.c starts a new block at
-- each status line).
test_headers_after_a_redirect_are_the_last_responses = with_server(function()
  local r = http.get(url("/redirect?to=/echo"), {follow = true})
  t.eq(r.status, 200)
  t.match(r.url, "/echo$")
  t.eq(r.headers.location, nil, "the redirect's Location is not kept")
  t.eq(r.headers["content-length"], tostring(#r.body), "one Content-Length, the final one's")
  t.eq(r.headers["x-test"], "a, b")
  t.eq(r.headers["content-type"], "application/json")
  t.truthy(not tostring(r.headers.date):find(",.*,.*,"), "one Date, not two joined: " .. tostring(r.headers.date))
end)

test_a_redirect_loop_says_so = with_server(function()
  local e = t.raises(http.get, url("/loop"), {follow = true})
  t.truthy(tostring(e):find("redirect loop", 1, true), tostring(e))
  local secret = require "runbook.secret"     -- followed by http.lua itself when a header holds a secret
  e = t.raises(http.get, url("/loop"), {follow = true, headers = {["X-K"] = secret.new("loop-secret-1", "k")}})
  t.truthy(tostring(e):find("redirect loop", 1, true), tostring(e))
end)

function test_tls_verification_rejects_self_signed_and_cacert_accepts()
  local dir = fs.tmpdir("tls")
  local cert, key = dir .. "/cert.pem", dir .. "/key.pem"
  exec.run({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
            "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"},
           {check = true, quiet = true})
  local p, stop_tls = support.httpd({"--tls", cert, key})
  local ok, err = pcall(function()
    local u = ("https://127.0.0.1:%d/echo"):format(p)
    local e = t.raises(http.get, u)
    t.eq(e.kind, "tls")
    t.eq(http.get(u, {cacert = cert}).status, 200)
    t.eq(http.get(u, {insecure = true}).status, 200)
    -- plain http:// to the TLS port: said plainly, not "select/poll returned error"
    e = t.raises(http.get, ("http://127.0.0.1:%d/echo"):format(p), {timeout = 5})
    t.truthy(tostring(e):find("is it a TLS port? use https://", 1, true), tostring(e) .. " curl " .. tostring(e.curl_code))
  end)
  stop_tls()
  for _, f in ipairs{cert, key} do os.remove(f) end
  os.remove(dir)
  if not ok then error(err, 0) end
end

-- a header holding a secret goes to the origin it was meant for only:
-- redirected to another host (localhost is another origin than 127.0.0.1
-- for this rule, though the same machine), it is dropped; the bearer too
test_secret_headers_do_not_follow_a_redirect_to_another_origin = with_server(function()
  local secret = require "runbook.secret"
  local k = secret.new("canary-header-value-0123", "hdr")
  local other = ("http://localhost:%d/echo"):format(port)
  local r = http.get(url("/redirect?to=" .. other), {follow = true, headers = {["X-Api-Key"] = k, ["X-Plain"] = "p"},
                                                     bearer = secret.new("canary-bearer-4567", "b")})
  t.eq(r.status, 200)
  local seen = r:json().headers
  t.eq(seen["x-api-key"], nil)
  t.eq(seen["authorization"], nil)
  t.eq(seen["x-plain"], "p")
  -- #30.23: a string built around a secret's text is a secret header too
  r = http.get(url("/redirect?to=" .. other), {follow = true, headers = {["X-Key"] = "Key " .. k:reveal(), ["X-Plain"] = "p"}})
  seen = r:json().headers
  t.eq(seen["x-key"], nil)
  t.eq(seen["x-plain"], "p")
  -- the same origin keeps them
  r = http.get(url("/redirect?to=/echo"), {follow = true, headers = {["X-Api-Key"] = k}})
  t.eq(r:json().headers["x-api-key"], "***")     -- sent (the echo is masked on its way back)
  -- 303 after a POST becomes a GET without the body
  r = http.post(url("/redirect?code=303&to=/echo"), {follow = true, body = "x", headers = {["X-Api-Key"] = k}})
  t.eq(r:json().method, "GET")
end)

-- #30.23: a secret's YAML-escaped form (libyaml's double-quoted scalar:
-- \x01, \L, \N, \U0001F600...) is masked like its JSON form
function test_a_secret_printed_by_yaml_encode_is_masked()
  local secret = require "runbook.secret"
  local sys = require "runbook.sys"
  local yaml = require "runbook.yaml"
  for _, v in ipairs{"tok\1en-\u{2028}-\u{85}-end", "a\7b\27c\0d-key", "emoji-\u{1F600}-\u{7F}-x"} do
    local s = secret.new(v, "y")
    local text = yaml.encode({k = s:reveal()})
    t.truthy(text:find("\\"), "libyaml escaped it: " .. text)
    t.eq(sys.mask(text), 'k: "***"\n')
  end
end

-- #30.24: headers libcurl refuses are named as such (kind too_large), not
-- as "is it a TLS port?" (60,000 headers) or "Out of memory" (one 10 MiB
-- header)
test_headers_libcurl_refuses_are_named = with_server(function()
  local e = t.raises(http.get, url("/headers?n=60000"), {timeout = 60})
  t.eq(e.kind, "too_large")
  t.match(e.message, "the response headers are larger than libcurl accepts")
  t.truthy(not e.message:find("TLS port", 1, true), e.message)
  e = t.raises(http.get, url("/headers?one=1&n=" .. 10 * 1024 * 1024), {timeout = 60})
  t.eq(e.kind, "too_large")
  t.match(e.message, "one header over its 100 KiB")
  t.eq(http.get(url("/headers?n=200")).status, 200)
end)

-- stop_at: a streamed reply that never ends (an etcd or Kubernetes watch)
-- comes back as soon as its body holds the text, as a success; without
-- it the same transfer runs into its timeout
function test_stop_at_ends_a_stream_at_its_first_event()
  local net = require "runbook.net"
  local srv = net.listen("127.0.0.1", 0)
  local serving = async.spawn(function()
    for _ = 1, 2 do
      local _, conn = srv:accept()
      conn:stream(200, {["Content-Type"] = "application/json"})
      conn:send('{"result":{"created":true}}\n')
      time.sleep(0.2)
      conn:send('{"result":{"events":[{"type":"DELETE"}]}}\n')
      time.sleep(3)
      conn:finish()
    end
  end)
  local u = ("http://127.0.0.1:%d/v3/watch"):format(srv:port())
  local r = http.request{url = u, method = "POST", body = "{}", stop_at = '"events"', timeout = 2}
  t.eq(r.status, 200)
  t.eq(r.stopped, true)
  t.truthy(r.body:find('"DELETE"', 1, true))
  local err = t.raises(http.request, {url = u, method = "POST", body = "{}", timeout = 1})
  t.eq(err.kind, "timeout")
  t.raises(http.request, {url = u, stop_at = ""})
  serving:cancel()
  srv:close()
end

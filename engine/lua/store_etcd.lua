--- runbook.store_etcd: the lock and the journal in etcd v3, through its
--- JSON gateway (grpc-gateway over HTTP/1.1: POST /v3/<service>/<method>
--- with a JSON body; keys and values base64, 64-bit numbers as strings),
--- on runbook.http's libcurl and runbook.json's jansson; no gRPC.
---
---   etcd://HOST:PORT[,HOST:PORT...]/PREFIX[?ttl=SECS&user=NAME]
---   etcds://...?cacert=FILE&cert=FILE&key=FILE        TLS (mutual with cert/key)
---
--- Keys under PREFIX, per lock key (a cluster) slugged by runbook.store:
---   PREFIX/<slug>/lock                    the holder (JSON), on the run's lease
---   PREFIX/<slug>/runs/<runbook>          the current journal's run id
---   PREFIX/<slug>/journal/<runbook>/<run id>/<seq>   one record each
---
--- The protocol (issue #31; docs/reliability.md):
--- - acquire: lease/grant TTL, then kv/txn "create_revision(lock) = 0 ->
---   put lock with the lease"; the lock's create revision is the run's
---   fencing token. A failed txn (no `succeeded` in its reply) names the
---   holder from its range.
--- - every journal put, and the check before every step, is a kv/txn whose
---   compare is "create_revision(lock) = token": a run whose lease expired
---   (the key is gone: 0) or was taken over (another revision) writes
---   nothing and stops, exit 4 "lock lost to HOLDER".
--- - lease/keepalive from a task every TTL/4; a reply without TTL means the
---   lease expired (etcd 3.4 answers 200 so). When no renewal succeeded for
---   the margin (TTL * 2/3, on the local monotonic clock, counted from when
---   the last good renewal was sent), the lock is lost and the run is
---   cancelled where it waits.
--- - release: lease/revoke (the lock key goes with it).
--- Endpoints are tried in order; one that fails at the transport is skipped
--- for the next (a member down, a leader killed).
local async = require "runbook.async"
local core_http = require "runbook.http.core"
local errors = require "runbook.error"
local events = require "runbook.events"
local json = require "runbook.json"
local secret = require "runbook.secret"
local store = require "runbook.store"
local time = require "runbook.time"

local M = {}

local fmt = string.format

-- {====== base64 (RFC 4648), as the gateway encodes bytes fields

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local B64_INDEX = {}
for i = 1, 64 do B64_INDEX[B64:byte(i)] = i - 1 end

local function b64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = (a << 16) | ((b or 0) << 8) | (c or 0)
    out[#out + 1] = B64:sub((n >> 18) + 1, (n >> 18) + 1) .. B64:sub(((n >> 12) & 63) + 1, ((n >> 12) & 63) + 1)
      .. (b and B64:sub(((n >> 6) & 63) + 1, ((n >> 6) & 63) + 1) or "=")
      .. (c and B64:sub((n & 63) + 1, (n & 63) + 1) or "=")
  end
  return table.concat(out)
end
M.b64 = b64

local function unb64(s)
  local out, bits, n = {}, 0, 0
  for i = 1, #s do
    local v = B64_INDEX[s:byte(i)]
    if v then
      bits, n = (bits << 6) | v, n + 6
      if n >= 8 then
        n = n - 8
        out[#out + 1] = string.char((bits >> n) & 255)
      end
    end
  end
  return table.concat(out)
end
M.unb64 = unb64

--- The end of the range of every key starting with `p`.
local function prefix_end(p)
  local last = p:byte(#p)
  return p:sub(1, -2) .. string.char(last + 1)
end

-- }======

-- {====== the client

local Client = {}
Client.__index = Client

local function usage(msg) return errors.new("usage", msg, {exit = 2}) end

--- Parses an etcd store URL into a client.
local function parse(url)
  local scheme, hosts, rest = url:match("^(etcds?)://([^/?#]+)(.*)$")
  if not scheme then error(usage(fmt("--store %s: expected etcd://HOST:PORT[,HOST:PORT]/PREFIX", url)), 0) end
  local path, query = rest:match("^([^?]*)%??(.*)$")
  local prefix = path:gsub("^/+", ""):gsub("/+$", "")
  if prefix == "" then error(usage(fmt("--store %s: a PREFIX is needed (etcd://HOST:PORT/PREFIX), so runs share a namespace on purpose", url)), 0) end
  local c = setmetatable({url = url, prefix = prefix, endpoints = {}, ttl = 20, tls = {}}, Client)
  for hp in hosts:gmatch("[^,]+") do
    if not hp:match("^[%w.%-%[%]:]+:%d+$") then error(usage(fmt("--store %s: endpoint '%s' is not HOST:PORT", url, hp)), 0) end
    c.endpoints[#c.endpoints + 1] = (scheme == "etcds" and "https://" or "http://") .. hp
  end
  for k, v in query:gmatch("([^&=]+)=([^&]*)") do
    if k == "ttl" then
      c.ttl = math.tointeger(tonumber(v))
      if not c.ttl or c.ttl < 2 or c.ttl > 3600 then error(usage(fmt("--store %s: ttl must be whole seconds, 2 to 3600", url)), 0) end
    elseif k == "cacert" or k == "cert" or k == "key" then c.tls[k] = v
    elseif k == "user" then c.user = v
    else error(usage(fmt("--store %s: unknown option '%s' (known: ttl, user, cacert, cert, key)", url, k)), 0) end
  end
  if next(c.tls) and scheme ~= "etcds" then error(usage(fmt("--store %s: cacert/cert/key need etcds://", url)), 0) end
  c.period = c.ttl / 4                 -- renewal period
  c.margin = c.ttl * 2 / 3             -- lost when no renewal succeeded for this long
  c.timeout = math.max(1, c.ttl / 4)   -- one request
  return c
end

--- One POST to the gateway, trying each endpoint from the last that
--- answered. Returns the status and the decoded reply; raises an `etcd`
--- error when no endpoint answers.
function Client:post(path, body, timeout)
  local n, last = #self.endpoints, nil
  timeout = timeout or self.timeout
  self.cur = self.cur or 1
  for i = 0, n - 1 do
    local idx = (self.cur - 1 + i) % n + 1
    local headers = {["Content-Type"] = "application/json"}
    if self.token then headers.Authorization = self.token end
    local ok, res = pcall(core_http.request, {
      url = self.endpoints[idx] .. path, method = "POST", body = json.encode(body), headers = headers,
      timeout = timeout, connect_timeout = math.min(1, timeout),
      cacert = self.tls.cacert, cert = self.tls.cert, key = self.tls.key, max_body = 64 * 1024 * 1024,
    })
    if ok and res.status < 500 then
      self.cur = idx
      local dok, reply = pcall(json.decode, res.body ~= "" and res.body or "{}", {name = self.endpoints[idx] .. path})
      if not dok then reply = {error = tostring(reply)} end
      return res.status, reply
    end
    last = ok and fmt("%s%s: HTTP %d %s", self.endpoints[idx], path, res.status, (res.body or ""):sub(1, 200))
                 or tostring(res)
  end
  error(errors.new("etcd", fmt("no etcd endpoint of %s answers (%s)", self.url, last)), 0)
end

--- post() that raises unless the status is 200.
--- post(), logging in again once when the token expired (etcd's simple
--- tokens live 5 minutes by default: --auth-token-ttl) and the URL names a user.
local post_once = Client.post
function Client:post(path, body, timeout)
  local st, reply = post_once(self, path, body, timeout)
  if st == 401 and self.user and path ~= "/v3/auth/authenticate" then
    self:auth()
    st, reply = post_once(self, path, body, timeout)
  end
  return st, reply
end

function Client:call(path, body)
  local st, reply = self:post(path, body)
  if st ~= 200 then
    error(errors.new("etcd", fmt("%s%s: %d %s", self.url, path, st, reply.message or reply.error or "")), 0)
  end
  return reply
end

--- Authenticates when the URL names a user: the password comes from
--- RUNBOOK_ETCD_PASSWORD (never argv); the token goes in Authorization
--- and is registered as a secret, so no output shows it.
function Client:auth()
  if not self.user then return end
  local pw = os.getenv("RUNBOOK_ETCD_PASSWORD")
  if not pw then error(usage(fmt("--store %s names user %s: set RUNBOOK_ETCD_PASSWORD", self.url, self.user)), 0) end
  self.token = nil             -- an expired token would be refused with the request
  local reply = self:call("/v3/auth/authenticate", {name = self.user, password = pw})
  self.token = secret.new(reply.token, "etcd token")
end

function Client:range(key, o)
  local body = {key = b64(key)}
  if o and o.prefix then body.range_end = b64(prefix_end(key)) end
  local reply = self:call("/v3/kv/range", body)
  local out = {}
  for _, kv in ipairs(reply.kvs or {}) do
    out[#out + 1] = {key = unb64(kv.key), value = unb64(kv.value or ""), create_revision = kv.create_revision,
                     lease = kv.lease}
  end
  return out
end

-- }======

-- {====== the lock

local Lock = {}
Lock.__index = Lock

local function holder_text(kv)
  if not kv then return "nobody now: its lease expired" end
  local ok, h = pcall(json.decode, kv.value)
  if ok and type(h) == "table" and h.text then return h.text end
  return "an unreadable holder record"
end

--- The compare of every fenced txn: the lock is still the one this run
--- created (create_revision = token; 0 once its lease expired).
function Lock:fence()
  return {key = b64(self.key), target = "CREATE", create_revision = self.token}
end

--- Marks the lock lost (once) and cancels the run's main task where it
--- waits; the DSL turns that into the lock_lost stop (no undo, exit 4).
function Lock:lose(why, holder)
  if self.failed then return self.failed end
  if not holder then       -- who holds it now, when the store answers
    local ok, kvs = pcall(self.c.range, self.c, self.key)
    holder = ok and holder_text(kvs[1]) or "nobody known (the store does not answer)"
  end
  if self.failed then return self.failed end
  self.failed = store.lost_error(fmt(" to %s (%s)", holder, why))
  events.emit{type = "lock_lost", level = "error", text = tostring(self.failed.message)}
  if self.main and self.main ~= async.current() and self.main:status() ~= "done" then self.main:cancel() end
  return self.failed
end

function Lock:lost()
  if not self.failed and time.monotonic() - self.renewed > self.c.margin then
    -- the store did not answer in time: no lookup of the holder (it would
    -- wait again), the run stops at once
    local why = fmt("no renewal of its lease for %.1fs, over the margin of %gs of a %ds lease",
                    time.monotonic() - self.renewed, self.c.margin, self.c.ttl)
    -- who holds it now, asked briefly: a store that does not answer is
    -- the likely cause, and the run must stop now, not a timeout later
    local ok, st, reply = pcall(self.c.post, self.c, "/v3/kv/range", {key = b64(self.key)}, 0.5)
    local kv = ok and st == 200 and reply.kvs and reply.kvs[1]
    self:lose(why, not (ok and st == 200) and "nobody known (the store does not answer in time)"
                   or holder_text(kv and {value = unb64(kv.value or "")}))
  end
  return self.failed
end

--- Seconds left before the margin is spent.
function Lock:left()
  return self.c.margin - (time.monotonic() - self.renewed)
end

--- A fenced txn: `ops` run only while the lock is this run's. Retries
--- transport failures until the margin is spent (then the lock is lost).
function Lock:txn(ops)
  while true do
    if self:lost() then error(self.failed, 0) end
    local ok, st, reply = pcall(self.c.post, self.c, "/v3/kv/txn", {
      compare = {self:fence()}, success = ops,
      failure = {{request_range = {key = b64(self.key)}}}})
    if ok and st == 200 then
      if reply.succeeded then return reply end
      local r = reply.responses and reply.responses[1] and reply.responses[1].response_range
      local kv = r and r.kvs and r.kvs[1]
      error(self:lose("the store refused a write fenced on it", holder_text(kv and {value = unb64(kv.value or "")})), 0)
    end
    if ok then error(errors.new("etcd", fmt("%s: txn answered %d: %s", self.c.url, st, reply.message or reply.error or "")), 0) end
    time.sleep(0.2)            -- no endpoint answered: again, within the margin
  end
end

--- Before every step: the lock is still this run's, checked in etcd.
function Lock:check()
  self:txn(nil)
end

--- Renews the lease every period until released; a reply without TTL
--- means it expired (etcd 3.4 answers 200 so), transport failures count
--- against the margin.
function Lock:keepalive()
  while not self.released and not self.failed do
    -- every period, and never past the margin: a renewal that hangs is
    -- cut at the margin, and the loss found then, not a request later
    time.sleep(math.max(0.05, math.min(self.c.period, self:left())))
    if self.released or self.failed or self:lost() then break end
    local sent = time.monotonic()
    local ok, st, reply = pcall(self.c.post, self.c, "/v3/lease/keepalive", {ID = self.lease},
                                math.max(0.2, math.min(self.c.timeout, self:left())))
    local res = ok and st == 200 and reply.result
    if res and res.TTL and tonumber(res.TTL) > 0 then
      self.renewed = sent
    elseif res then
      self:lose(fmt("its lease %s is gone: expired or revoked", self.lease))
    else
      self:lost()
    end
  end
end

function Lock:release()
  if self.released then return end
  self.released = true
  if self.task and self.task ~= async.current() then self.task:cancel() end
  -- revoking deletes the lock key with it; a lease that expired answers 404
  pcall(self.c.post, self.c, "/v3/lease/revoke", {ID = self.lease})
end

-- }======

-- {====== the journal

local Log = {}
Log.__index = Log

function Log:where()
  return fmt("%s/%s", self.c.url:gsub("%?.*$", ""), self.base_key:sub(#self.c.prefix + 2))
end

--- The current run id, and its records' keys and values.
function Log:load()
  local ptr = self.c:range(self.ptr_key)[1]
  self.run = ptr and ptr.value or nil
  self.kvs = {}
  if self.run and self.run ~= "" then self.kvs = self.c:range(self.base_key .. self.run .. "/", {prefix = true}) end
  self.seq = #self.kvs
end

function Log:exists()
  self:load()
  return #self.kvs > 0
end

function Log:read()
  local recs = {}
  for i, kv in ipairs(self.kvs) do
    local ok, rec = pcall(json.decode, kv.value)
    if not ok or type(rec) ~= "table" or type(rec.type) ~= "string" then
      error(usage(fmt("%s: record %d (%s) is corrupt; start over with --fresh", self:where(), i, kv.key)), 0)
    end
    recs[#recs + 1] = rec
  end
  local last = recs[#recs]
  return recs, last ~= nil and last.type == "finish" and (last.ok == true or last.changed == false), nil
end

function Log:drop_torn() end   -- an etcd put is whole or absent

--- A new run id for the next record: the old records stay, under their
--- run id, as the archive.
function Log:archive()
  local old = self.run
  self.run, self.seq = nil, 0
  return fmt("%s (run %s)", self:where(), old)
end

function Log:append(line)
  local ops = {}
  if not self.run or self.run == "" then
    self.run = fmt("%s-%d", time.iso():gsub("[-:]", ""), require("runbook.sys").pid())
    ops[#ops + 1] = {request_put = {key = b64(self.ptr_key), value = b64(self.run)}}
  end
  self.seq = self.seq + 1
  ops[#ops + 1] = {request_put = {key = b64(fmt("%s%s/%010d", self.base_key, self.run, self.seq)), value = b64(line)}}
  self.lock:txn(ops)
end

-- }======

local Store = {}
Store.__index = Store

function Store:acquire(key, holder)
  local c = self.c
  c:auth()
  local slug = store.slug(key)
  local lock_key = fmt("%s/%s/lock", c.prefix, slug)
  local grant = c:call("/v3/lease/grant", {TTL = c.ttl})
  local sent = time.monotonic()
  local rec = {}
  for k, v in pairs(holder) do rec[k] = v end
  rec.lease, rec.ttl = grant.ID, c.ttl
  local reply = c:call("/v3/kv/txn", {
    compare = {{key = b64(lock_key), target = "CREATE", create_revision = "0"}},
    success = {{request_put = {key = b64(lock_key), value = b64(json.encode(rec)), lease = grant.ID}}},
    failure = {{request_range = {key = b64(lock_key)}}}})
  if not reply.succeeded then
    pcall(c.post, c, "/v3/lease/revoke", {ID = grant.ID})
    local r = reply.responses and reply.responses[1] and reply.responses[1].response_range
    local kv = r and r.kvs and r.kvs[1]
    local err = store.held_error(holder.what, holder_text(kv and {value = unb64(kv.value or "")}))
    err.revision = reply.header and reply.header.revision     -- the waiter watches from after it
    error(err, 0)
  end
  local lock = setmetatable({c = c, key = lock_key, slug = slug, token = reply.header.revision, lease = grant.ID,
                             renewed = sent, main = async.current()}, Lock)
  lock.task = async.spawn(function() lock:keepalive() end)
  return lock
end

--- The lock waiter (--wait-lock): a watch on the lock key from the
--- revision the failed acquire saw (so no change in between is missed),
--- streamed by the gateway (POST /v3/watch, one JSON message a line: first
--- `created`, then each change with its `events`), ended at the first
--- event (http stop_at) or after `left` seconds. A lease that expires or
--- is revoked deletes the key: a DELETE event. Errors only delay the next
--- try a little; the caller keeps the deadline.
function Store:await(key, seen, left)
  local c = self.c
  local rev = tonumber(seen and seen.revision) or 0
  local req = {key = b64(fmt("%s/%s/lock", c.prefix, store.slug(key)))}
  if rev > 0 then req.start_revision = tostring(rev + 1) end
  local headers = {["Content-Type"] = "application/json"}
  if c.token then headers.Authorization = c.token end
  local ok, res = pcall(core_http.request, {
    url = c.endpoints[c.cur or 1] .. "/v3/watch", method = "POST", body = json.encode({create_request = req}),
    headers = headers, timeout = left, connect_timeout = math.min(1, left), stop_at = '"events"',
    cacert = c.tls.cacert, cert = c.tls.cert, key = c.tls.key})
  if not (ok and res.stopped) then
    -- the window ended without a change (a timeout), or this endpoint is
    -- down: the next one on the next try
    if not (ok or errors.is(res, "timeout")) then c.cur = (c.cur or 1) % #c.endpoints + 1 end
    time.sleep(math.min(0.2, math.max(0, left)))
  end
end

function Store:journal(lock, base)
  local c = self.c
  return setmetatable({c = c, lock = lock, ptr_key = fmt("%s/%s/runs/%s", c.prefix, lock.slug, base),
                       base_key = fmt("%s/%s/journal/%s/", c.prefix, lock.slug, base), seq = 0}, Log)
end

--- Every journal of `base` under the lock key, newest first: the current
--- run id (PREFIX/<slug>/runs/<base>), then the archived ones (run ids
--- start with their UTC time, so they sort by it).
function Store:journals(key, base)
  local c = self.c
  c:auth()
  local slug = store.slug(key)
  local ptr = c:range(fmt("%s/%s/runs/%s", c.prefix, slug, base))[1]
  local root = fmt("%s/%s/journal/%s/", c.prefix, slug, base)
  local by_run, ids = {}, {}
  for _, kv in ipairs(c:range(root, {prefix = true})) do
    local run = kv.key:sub(#root + 1):match("^([^/]+)/")
    if run then
      if not by_run[run] then by_run[run] = {}; ids[#ids + 1] = run end
      local rec = by_run[run]
      rec[#rec + 1] = kv.value
    end
  end
  table.sort(ids, function(a, b) return a > b end)
  local current = ptr and ptr.value
  if current and by_run[current] then
    for i, id in ipairs(ids) do if id == current then table.remove(ids, i) break end end
    table.insert(ids, 1, current)
  end
  local base_where = c.url:gsub("%?.*$", "")
  local out = {}
  for _, id in ipairs(ids) do
    local recs, bad = {}, nil
    for i, text in ipairs(by_run[id]) do
      local ok, rec = pcall(json.decode, text)
      if ok and type(rec) == "table" and type(rec.type) == "string" then recs[#recs + 1] = rec
      else bad = bad or fmt("record %d is corrupt", i) end
    end
    local where = fmt("%s/%s/journal/%s/%s", base_where, slug, base, id)
    out[#out + 1] = bad and {where = where, why = bad} or {where = where, records = recs, finished = store.finished(recs)}
  end
  return out
end

--- What `runbook status` shows: every lock and every current journal
--- under the prefix.
function Store:list()
  local c = self.c
  c:auth()
  local locks, runs = {}, {}
  for _, kv in ipairs(c:range(c.prefix .. "/", {prefix = true})) do
    local rest = kv.key:sub(#c.prefix + 2)
    local slug, kind, tail = rest:match("^([^/]+)/([^/]+)/?(.*)$")
    if kind == "lock" then
      local ok, h = pcall(json.decode, kv.value)
      h = ok and type(h) == "table" and h or {}
      local ok2, _, t = pcall(c.post, c, "/v3/lease/timetolive", {ID = kv.lease})
      if ok2 and type(t) == "table" and t.TTL and t.grantedTTL then
        h.last_renewal = fmt("%ds ago", math.max(0, tonumber(t.grantedTTL) - tonumber(t.TTL)))
        h.expires = fmt("in %ss", t.TTL)
      end
      locks[slug] = h
    elseif kind == "runs" then
      runs[#runs + 1] = {slug = slug, runbook = tail, run = kv.value}
    end
  end
  for _, r in ipairs(runs) do
    r.records = {}
    for _, kv in ipairs(c:range(fmt("%s/%s/journal/%s/%s/", c.prefix, r.slug, r.runbook, r.run), {prefix = true})) do
      local ok, rec = pcall(json.decode, kv.value)
      r.records[#r.records + 1] = ok and rec or {type = "corrupt"}
    end
  end
  return locks, runs
end

function M.open(url)
  return setmetatable({c = parse(url), kind = "etcd", url = url}, Store)
end

M.parse = parse

return M

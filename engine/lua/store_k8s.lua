--- runbook.store_k8s: the lock in a coordination.k8s.io/v1 Lease and the
--- journal in a ConfigMap beside it, through the current kubeconfig
--- ($KUBECONFIG, else ~/.kube/config: its current context's server, CA,
--- token or client certificate), with runbook.http and runbook.json.
---
---   k8s://NAMESPACE/NAME[?ttl=SECS]
---
--- Per lock key (a cluster): the Lease NAME-<key> and the ConfigMap
--- NAME-<key>-<runbook> (names made DNS-1123 labels: lower case, a digest
--- when cut).
---
--- The protocol (docs/reliability.md): a Lease with holderIdentity,
--- leaseDurationSeconds, acquireTime, renewTime, leaseTransitions. Absent:
--- created (a 409 AlreadyExists: another run was first). Held by another:
--- taken over only after a full duration in which its resourceVersion did
--- not change (no renewal observed; clocks are never compared), with a PUT
--- carrying the observed resourceVersion (409: someone else moved first).
--- Renewed every TTL/4 by a PUT with the last resourceVersion this run
--- wrote: a 409 means another run took it (lost at once); no answer for
--- TTL*2/3 on the monotonic clock: lost. Kubernetes has no transaction over
--- two objects, so the journal is fenced by its own resourceVersion: a new
--- holder first claims the ConfigMap (a write naming it, which bumps the
--- resourceVersion), and every append is a PUT with the resourceVersion of
--- this run's last write: an old holder's append after a claim gets 409 and
--- stops the run (exit 4). Release deletes the Lease with a precondition on
--- its resourceVersion.
local async = require "runbook.async"
local core_fs = require "runbook.fs.core"
local core_http = require "runbook.http.core"
local errors = require "runbook.error"
local events = require "runbook.events"
local hash = require "runbook.hash"
local json = require "runbook.json"
local secret = require "runbook.secret"
local store = require "runbook.store"
local time = require "runbook.time"
local yaml = require "runbook.yaml"

local M = {}

local fmt = string.format

local function usage(msg) return errors.new("usage", msg, {exit = 2}) end

--- A DNS-1123 label: lower case, [a-z0-9-], at most 63, a digest when cut.
local function dns_name(s)
  local n = s:lower():gsub("[^a-z0-9-]+", "-"):gsub("^-+", ""):gsub("-+$", "")
  if #n <= 63 and n ~= "" and n == s then return n end
  return (n:sub(1, 50):gsub("-+$", "")) .. "-" .. hash.sha256(s):sub(1, 12)
end
M.dns_name = dns_name

local function micro_time() return (time.iso():gsub("Z$", ".000000Z")) end

-- {====== the client: the current kubeconfig

local Client = {}
Client.__index = Client

local function b64_to_file(data, what)
  local text = require("runbook.store_etcd").unb64(data)
  local dir = core_fs.tmpdir()
  local path = dir .. "/" .. what
  core_fs.write(path, text, {mode = tonumber("600", 8)})
  return path
end

local function named(list, name)
  for _, e in ipairs(list or {}) do if e.name == name then return e end end
end

--- Reads the kubeconfig's current context: server, CA, credentials.
local function kubeconfig()
  local path = os.getenv("KUBECONFIG")
  path = path and path:match("^[^:]+") or ((os.getenv("HOME") or "") .. "/.kube/config")
  local ok, text = pcall(core_fs.read, path, {max = 4 * 1024 * 1024})
  if not ok then error(usage(fmt("the k8s store needs a kubeconfig: %s", tostring(text))), 0) end
  local dok, cfg = pcall(yaml.decode, text, {name = path})
  if not dok or type(cfg) ~= "table" then error(usage(fmt("%s: not a kubeconfig (%s)", path, tostring(cfg))), 0) end
  local ctx = named(cfg.contexts, cfg["current-context"])
  if not ctx then error(usage(fmt("%s: no current context", path)), 0) end
  local cluster = named(cfg.clusters, ctx.context.cluster)
  local user = named(cfg.users, ctx.context.user) or {user = {}}
  if not cluster then error(usage(fmt("%s: context %s names no cluster", path, tostring(ctx.name))), 0) end
  local c, u = cluster.cluster, user.user or {}
  local k = {server = c.server:gsub("/+$", ""), insecure = c["insecure-skip-tls-verify"] == true}
  if c["certificate-authority-data"] then k.cacert = b64_to_file(c["certificate-authority-data"], "ca.crt")
  elseif c["certificate-authority"] then k.cacert = c["certificate-authority"] end
  if u.token then k.token = secret.new(u.token, "kubeconfig token")
  elseif u.tokenFile then k.token = secret.file(u.tokenFile, "kubeconfig token") end
  if u["client-certificate-data"] then k.cert = b64_to_file(u["client-certificate-data"], "client.crt")
  elseif u["client-certificate"] then k.cert = u["client-certificate"] end
  if u["client-key-data"] then
    -- registered as a secret: masked should it ever reach an output
    secret.new(require("runbook.store_etcd").unb64(u["client-key-data"]), "kubeconfig client key")
    k.key = b64_to_file(u["client-key-data"], "client.key")
  elseif u["client-key"] then k.key = u["client-key"] end
  return k
end

local function parse(url)
  local ns, name, query = url:match("^k8s://([^/?]+)/([^/?]+)%??(.*)$")
  if not ns then error(usage(fmt("--store %s: expected k8s://NAMESPACE/NAME", url)), 0) end
  local c = setmetatable({url = url, ns = ns, name = name, ttl = 20}, Client)
  for key, v in query:gmatch("([^&=]+)=([^&]*)") do
    if key == "ttl" then
      c.ttl = math.tointeger(tonumber(v))
      if not c.ttl or c.ttl < 2 or c.ttl > 3600 then error(usage(fmt("--store %s: ttl must be whole seconds, 2 to 3600", url)), 0) end
    else error(usage(fmt("--store %s: unknown option '%s' (known: ttl)", url, key)), 0) end
  end
  c.period, c.margin, c.timeout = c.ttl / 4, c.ttl * 2 / 3, math.max(1, c.ttl / 4)
  return c
end
M.parse = parse

--- One request; returns status and decoded body; raises a `k8s` error
--- when the server does not answer.
function Client:req(method, path, body, timeout, stop_at)
  self.k = self.k or kubeconfig()
  local headers = {Accept = "application/json"}
  if body then headers["Content-Type"] = "application/json" end
  local ok, res = pcall(core_http.request, {
    url = self.k.server .. path, method = method, body = body and json.encode(body) or nil, headers = headers,
    bearer = self.k.token, cacert = self.k.cacert, cert = self.k.cert, key = self.k.key, insecure = self.k.insecure,
    timeout = timeout or self.timeout, connect_timeout = math.min(1, timeout or self.timeout), stop_at = stop_at})
  if not ok then error(errors.new("k8s", fmt("the Kubernetes API %s does not answer (%s)", self.k.server, tostring(res))), 0) end
  local dok, reply = pcall(json.decode, res.body ~= "" and res.body or "{}")
  return res.status, dok and reply or {message = res.body}
end

function Client:lease_path(n) return fmt("/apis/coordination.k8s.io/v1/namespaces/%s/leases%s", self.ns, n and ("/" .. n) or "") end
function Client:cm_path(n) return fmt("/api/v1/namespaces/%s/configmaps%s", self.ns, n and ("/" .. n) or "") end

-- }======

-- {====== the lock

local Lock = {}
Lock.__index = Lock

local function holder_of(lease)
  local a = lease and lease.metadata and lease.metadata.annotations or {}
  local ok, h = pcall(json.decode, a["runbook.dev/holder"] or "")
  if ok and type(h) == "table" and h.text then return h.text end
  return lease and lease.spec and lease.spec.holderIdentity ~= "" and lease.spec.holderIdentity or "nobody now"
end

function Lock:lose(why, holder)
  if self.failed then return self.failed end
  if not holder then
    local ok, st, lease = pcall(self.c.req, self.c, "GET", self.c:lease_path(self.lease_name), nil, 0.5)
    holder = ok and (st == 200 and holder_of(lease) or st == 404 and "nobody now") or "nobody known (the API does not answer)"
  end
  if self.failed then return self.failed end
  self.failed = store.lost_error(fmt(" to %s (%s)", holder, why))
  events.emit{type = "lock_lost", level = "error", text = tostring(self.failed.message)}
  if self.main and self.main ~= async.current() and self.main:status() ~= "done" then self.main:cancel() end
  return self.failed
end

function Lock:left() return self.c.margin - (time.monotonic() - self.renewed) end

function Lock:lost()
  if not self.failed and self:left() < 0 then
    self:lose(fmt("no renewal of its Lease for %.1fs, over the margin of %gs of a %ds lease",
                  time.monotonic() - self.renewed, self.c.margin, self.c.ttl))
  end
  return self.failed
end

--- PUT of the Lease with the last resourceVersion this run wrote.
function Lock:renew(timeout)
  local l = self.lease
  l.spec.renewTime = micro_time()
  return self.c:req("PUT", self.c:lease_path(self.lease_name), l, timeout)
end

function Lock:keepalive()
  while not self.released and not self.failed do
    time.sleep(math.max(0.05, math.min(self.c.period, self:left())))
    if self.released or self.failed or self:lost() then break end
    local sent = time.monotonic()
    local ok, st, reply = pcall(self.renew, self, math.max(0.2, math.min(self.c.timeout, self:left())))
    if ok and st == 200 then
      self.lease, self.renewed = reply, sent
    elseif ok and (st == 409 or st == 404) then
      self:lose(st == 409 and "its Lease was written by another (409 Conflict)" or "its Lease was deleted (404)")
    else
      self:lost()
    end
  end
end

--- Before every step: the journal's ConfigMap is still at this run's last
--- write (a claim by another holder changes it), and the lease is not lost.
function Lock:check()
  if self:lost() then error(self.failed, 0) end
  for _, log in pairs(self.logs) do log:verify() end
end

function Lock:release()
  if self.released then return end
  self.released = true
  if self.task and self.task ~= async.current() then self.task:cancel() end
  if self.failed then return end
  local path = self.c:lease_path(self.lease_name)
  local function delete(rv)
    local ok, st = pcall(self.c.req, self.c, "DELETE", path, {kind = "DeleteOptions", apiVersion = "v1", preconditions = {resourceVersion = rv}})
    return ok and st
  end
  if delete(self.lease.metadata.resourceVersion) == 409 then
    -- the renewal cancelled above may have landed without its reply: the
    -- Lease moved on, still this run's when it names this run as holder
    -- with the same acquireTime
    local ok, st, cur = pcall(self.c.req, self.c, "GET", path)
    if ok and st == 200 and cur.spec and cur.spec.holderIdentity == self.lease.spec.holderIdentity
       and cur.spec.acquireTime == self.lease.spec.acquireTime then
      delete(cur.metadata.resourceVersion)
    end
  end
end

-- }======

-- {====== the journal: one ConfigMap per runbook, a record per key

local Log = {}
Log.__index = Log

function Log:where() return fmt("k8s://%s/configmaps/%s", self.c.ns, self.name) end

--- Claims the ConfigMap for this run (creating it when absent): the write
--- changes its resourceVersion, so an older holder's next append fails.
function Log:claim()
  local st, cm = self.c:req("GET", self.c:cm_path(self.name))
  local h = json.encode({text = self.lock.holder_text, lease = self.lock.lease.metadata.resourceVersion})
  if st == 404 then
    st, cm = self.c:req("POST", self.c:cm_path(), {apiVersion = "v1", kind = "ConfigMap",
      metadata = {name = self.name, namespace = self.c.ns, annotations = {["runbook.dev/holder"] = h}}, data = {_ = "runbook journal"}})
  elseif st == 200 then
    cm.metadata.annotations = cm.metadata.annotations or {}
    cm.metadata.annotations["runbook.dev/holder"] = h
    st, cm = self.c:req("PUT", self.c:cm_path(self.name), cm)
  end
  if st ~= 200 and st ~= 201 then error(self.lock:lose(fmt("claiming the journal %s answered %d: %s", self.name, st, cm.message or ""))) end
  self.cm = cm
end

function Log:records()
  local keys = {}
  for k in pairs(self.cm.data or {}) do if k:match("^r%d+$") then keys[#keys + 1] = k end end
  table.sort(keys)
  return keys
end

function Log:exists()
  if not self.cm then self:claim() end
  return #self:records() > 0
end

function Log:read()
  local recs = {}
  for _, k in ipairs(self:records()) do
    local ok, rec = pcall(json.decode, self.cm.data[k])
    if not ok or type(rec) ~= "table" then error(usage(fmt("%s: record %s is corrupt; start over with --fresh", self:where(), k)), 0) end
    recs[#recs + 1] = rec
  end
  self.seq = #recs
  local last = recs[#recs]
  return recs, last ~= nil and last.type == "finish" and (last.ok == true or last.changed == false), nil
end

function Log:drop_torn() end

--- The records move to an archive key prefix in the same write.
function Log:archive()
  local stamp = time.iso():gsub("[-:]", "")
  local data = {_ = "runbook journal"}
  for k, v in pairs(self.cm.data or {}) do
    if k:match("^r%d+$") then data["a" .. stamp .. "." .. k] = v elseif k ~= "_" then data[k] = v end
  end
  self:put(data)
  self.seq = 0
  return fmt("%s (keys a%s.*)", self:where(), stamp)
end

--- A PUT with the resourceVersion of this run's last write: 409 means
--- another holder claimed the journal.
function Log:put(data)
  if self.lock:lost() then error(self.lock.failed, 0) end
  local cm = {apiVersion = "v1", kind = "ConfigMap", metadata = self.cm.metadata, data = data}
  while true do
    local ok, st, reply = pcall(self.c.req, self.c, "PUT", self.c:cm_path(self.name), cm)
    if ok and st == 200 then self.cm = reply; return end
    if ok and (st == 409 or st == 404) then
      error(self.lock:lose(fmt("the journal %s was written by another run (%d)", self.name, st)), 0)
    end
    if ok then error(errors.new("k8s", fmt("%s: PUT answered %d: %s", self:where(), st, reply.message or "")), 0) end
    if self.lock:lost() then error(self.lock.failed, 0) end
    time.sleep(0.2)
  end
end

function Log:append(line)
  local data = {}
  for k, v in pairs(self.cm.data or {}) do data[k] = v end
  self.seq = self.seq + 1
  data[fmt("r%08d", self.seq)] = line
  self:put(data)
end

--- The ConfigMap still carries this run's last write.
function Log:verify()
  local ok, st, cm = pcall(self.c.req, self.c, "GET", self.c:cm_path(self.name))
  if ok and st == 200 and cm.metadata.resourceVersion ~= self.cm.metadata.resourceVersion then
    error(self.lock:lose(fmt("the journal %s was claimed by another run", self.name)), 0)
  end
end

-- }======

local Store = {}
Store.__index = Store

--- The error of a Lease another run holds, with the resourceVersion the
--- waiter watches from (runbook.store.acquire).
local function held_by(holder, lease, rv)
  local err = store.held_error(holder.what, holder_of(lease))
  err.revision = rv or type(lease) == "table" and lease.metadata and lease.metadata.resourceVersion or nil
  return err
end

--- Takes the Lease: created when absent; taken over when released, or
--- when a full duration passed without its resourceVersion changing.
function Store:acquire(key, holder)
  local c = self.c
  local lname = dns_name(c.name .. "-" .. key)
  local ann = {["runbook.dev/holder"] = json.encode(holder)}
  local me = fmt("%s@%s/%d", holder.user or "?", holder.host or "?", holder.pid or 0)
  local now = micro_time()
  local st, lease = c:req("GET", c:lease_path(lname))
  if st == 404 then
    st, lease = c:req("POST", c:lease_path(), {apiVersion = "coordination.k8s.io/v1", kind = "Lease",
      metadata = {name = lname, namespace = c.ns, annotations = ann},
      spec = {holderIdentity = me, leaseDurationSeconds = c.ttl, acquireTime = now, renewTime = now, leaseTransitions = 0}})
    if st == 409 then st, lease = c:req("GET", c:lease_path(lname)); error(held_by(holder, lease), 0) end
  elseif st == 200 then
    local held = lease.spec and lease.spec.holderIdentity and lease.spec.holderIdentity ~= ""
    if held then
      -- take over only after a full duration without an observed renewal
      local rv, t0 = lease.metadata.resourceVersion, time.monotonic()
      local dur = tonumber(lease.spec.leaseDurationSeconds) or c.ttl
      while time.monotonic() - t0 < dur do
        time.sleep(math.min(1, dur / 4))
        local s2, l2 = c:req("GET", c:lease_path(lname))
        if s2 ~= 200 or l2.metadata.resourceVersion ~= rv then error(held_by(holder, l2, rv), 0) end
      end
    end
    lease.metadata.annotations = ann
    lease.spec.holderIdentity, lease.spec.leaseDurationSeconds = me, c.ttl
    lease.spec.acquireTime, lease.spec.renewTime = now, now
    lease.spec.leaseTransitions = (tonumber(lease.spec.leaseTransitions) or 0) + 1
    st, lease = c:req("PUT", c:lease_path(lname), lease)
    if st == 409 then st, lease = c:req("GET", c:lease_path(lname)); error(held_by(holder, lease), 0) end
  end
  if st ~= 200 and st ~= 201 then
    error(errors.new("k8s", fmt("%s: the Lease %s answered %d: %s", c.url, lname, st, lease.message or "")), 0)
  end
  local lock = setmetatable({c = c, lease_name = lname, lease = lease, key = key, holder_text = holder.text,
                             renewed = time.monotonic(), main = async.current(), logs = {}}, Lock)
  lock.task = async.spawn(function() lock:keepalive() end)
  return lock
end

--- The lock waiter (--wait-lock): a watch on the Lease (list?watch=1 with
--- a fieldSelector on its name, from the resourceVersion the failed
--- acquire observed, timeoutSeconds so the server ends it), ended at the
--- first event (http stop_at): a renewal (MODIFIED), a release (DELETED).
--- The next acquire then takes a deleted Lease at once, or one whose
--- holder stopped renewing after a full duration (acquire's own rule).
function Store:await(key, seen, left)
  local c = self.c
  local secs = math.max(1, math.floor(math.min(left, c.ttl)))
  local path = fmt("%s?watch=1&fieldSelector=metadata.name%%3D%s&timeoutSeconds=%d%s", c:lease_path(),
                   dns_name(c.name .. "-" .. key), secs, seen and seen.revision and ("&resourceVersion=" .. seen.revision) or "")
  local ok, st = pcall(c.req, c, "GET", path, nil, secs + 2, '"type"')
  if not ok or st ~= 200 then time.sleep(math.min(0.5, math.max(0, left))) end
end

function Store:journal(lock, base)
  local log = setmetatable({c = self.c, lock = lock, name = dns_name(lock.lease_name .. "-" .. base), seq = 0}, Log)
  lock.logs[base] = log
  return log
end

--- What `runbook status` shows: the Leases and journal ConfigMaps of this
--- store (their names start with NAME-, and runbook wrote them: the
--- holder annotation, the journal's marker key), each Lease's holder and
--- renewal, each journal's current records.
function Store:list()
  local c = self.c
  local prefix = c.name:lower() .. "-"
  local function items(path, what)
    local st, l = c:req("GET", path)
    if st ~= 200 then error(errors.new("k8s", fmt("%s: listing %s answered %d: %s", c.url, what, st, l.message or "")), 0) end
    local out = {}
    for _, o in ipairs(l.items or {}) do
      if o.metadata.name:sub(1, #prefix) == prefix then out[#out + 1] = o end
    end
    table.sort(out, function(a, b) return a.metadata.name < b.metadata.name end)
    return out
  end
  local locks, runs = {}, {}
  for _, lease in ipairs(items(c:lease_path(), "leases")) do
    local a = lease.metadata.annotations or {}
    local ok, h = pcall(json.decode, a["runbook.dev/holder"] or "")
    if ok and type(h) == "table" and (lease.spec or {}).holderIdentity ~= "" then
      h.last_renewal = lease.spec.renewTime and ("at " .. lease.spec.renewTime) or "never"
      h.expires = fmt("after %ss without one", tostring(lease.spec.leaseDurationSeconds or "?"))
      locks[lease.metadata.name] = h
    end
  end
  for _, cm in ipairs(items(c:cm_path(), "configmaps")) do
    if (cm.data or {})._ == "runbook journal" then
      local keys = {}
      for k in pairs(cm.data) do if k:match("^r%d+$") then keys[#keys + 1] = k end end
      table.sort(keys)
      local recs = {}
      for _, k in ipairs(keys) do
        local ok, rec = pcall(json.decode, cm.data[k])
        recs[#recs + 1] = ok and type(rec) == "table" and rec or {type = "corrupt"}
      end
      local rb_name = recs[1] and type(recs[1].runbook) == "string" and recs[1].runbook:gsub("%.lua$", "") or cm.metadata.name
      runs[#runs + 1] = {runbook = rb_name, where = fmt("k8s://%s/configmaps/%s", c.ns, cm.metadata.name), records = recs}
    end
  end
  return locks, runs
end

--- Every journal of `base` in its ConfigMap, newest first: the current
--- records (keys rNNNNNNNN), then the archived runs (keys a<UTC time>.rNNNNNNNN).
function Store:journals(key, base)
  local c = self.c
  local name = dns_name(dns_name(c.name .. "-" .. key) .. "-" .. base)
  local st, cm = c:req("GET", c:cm_path(name))
  if st == 404 then return {} end
  if st ~= 200 then error(errors.new("k8s", fmt("%s: the ConfigMap %s answered %d: %s", c.url, name, st, cm.message or "")), 0) end
  local groups, ids = {}, {}
  for k, v in pairs(cm.data or {}) do
    local run, seq = k:match("^a([^.]+)%.r(%d+)$")
    if not run and k:match("^r%d+$") then run, seq = "", k:sub(2) end
    if run then
      if not groups[run] then groups[run] = {}; ids[#ids + 1] = run end
      local g = groups[run]
      g[#g + 1] = {seq = tonumber(seq), text = v}
    end
  end
  -- the current run ("") first, then the archived newest first
  table.sort(ids, function(a, b) return a == "" or b ~= "" and a > b end)
  local out = {}
  for _, id in ipairs(ids) do
    local g = groups[id]
    table.sort(g, function(a, b) return a.seq < b.seq end)
    local recs, bad = {}, nil
    for _, r in ipairs(g) do
      local ok, rec = pcall(json.decode, r.text)
      if ok and type(rec) == "table" and type(rec.type) == "string" then recs[#recs + 1] = rec
      else bad = bad or fmt("record %d is corrupt", r.seq) end
    end
    local where = fmt("k8s://%s/configmaps/%s%s", c.ns, name, id ~= "" and (" (keys a" .. id .. ".*)") or "")
    out[#out + 1] = bad and {where = where, why = bad} or {where = where, records = recs, finished = store.finished(recs)}
  end
  return out
end

function M.open(url)
  return setmetatable({c = parse(url), kind = "k8s", url = url}, Store)
end

return M

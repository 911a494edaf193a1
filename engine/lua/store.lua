--- runbook.store: where a run's lock and journal live.
---
--- A store gives a run two things: a lock on a key (the cluster a runbook
--- changes, or the runbook's own name when it declares no cluster) and a
--- journal per runbook under that key. The journal module (runbook.journal)
--- speaks to a store only through these methods:
---
---   store:acquire(key, holder) -> lock       raises exit 4 naming the holder
---   store:await(key, err, left)              returns when the lock may be free (err: acquire's), at most left s
---   lock:check()                             raises exit 4 once the lock is lost
---   lock:lost() -> err?                      the error, once lost
---   lock:release()
---   store:journal(lock, base) -> log
---   log:where() -> text                      for messages
---   log:exists() -> boolean
---   log:read() -> recs, finished, torn_at    (runbook.journal.read's contract)
---   log:drop_torn(at)
---   log:archive() -> where it went
---   log:append(line)                          fenced: checks the lock in the same operation
---   store:journals(key, base) -> list          every journal of a runbook, newest first (the current one, then
---                                              the archived): {where, records, finished} or {where, why}
---
--- Backends: the local state directory (the default, below) and etcd v3
--- (runbook.store_etcd, `--store etcd://...`).
local core_fs = require "runbook.fs.core"
local errors = require "runbook.error"
local hash = require "runbook.hash"
local time = require "runbook.time"

local M = {}

local fmt = string.format

--- A name for a lock key that is safe as a file name or an etcd key part:
--- the key itself when it is short and plain, else its plain characters
--- and a digest (two keys never share a name).
---@param key string
---@return string
function M.slug(key)
  if #key <= 64 and key:match("^[%w._-]+$") then return key end
  local plain = key:gsub("[^%w._-]+", "_"):sub(1, 48)
  return plain .. "-" .. hash.sha256(key):sub(1, 12)
end

--- The error a run meets when another run holds the lock.
function M.held_error(what, holder)
  return errors.new("locked", fmt("another run of %s holds the lock (%s); wait for it or stop it", what, holder), {exit = 4})
end

--- The error of a run that lost its lock: it stops before acting further,
--- undoing nothing (stop = true), exit 4.
function M.lost_error(why)
  return errors.new("lock_lost", fmt("lock lost%s; stopped before acting further, nothing undone "
                                     .. "(the run that holds it now, or a later --resume, continues)", why),
                    {exit = 4, stop = true})
end

-- {====== the local store: the state directory

local Local = {}
Local.__index = Local

local LocalLock = {}
LocalLock.__index = LocalLock

--- The lock is an exclusive flock on <state dir>/<slug>.lockdir and on the
--- lock file in it, held on open descriptors for the whole run (the
--- kernel drops it when the process dies, so a stale lock is simply taken
--- over). A second run finds it by path, so the holder re-checks before
--- every step and every journal append that the path still names the
--- descriptors it holds: a lock deleted, moved or replaced stops the run.
function Local:acquire(key, holder)
  local slug = M.slug(key)
  core_fs.mkdir_p(self.dir)
  core_fs.mkdir_p(self.dir .. "/" .. slug .. ".lockdir", tonumber("700", 8))
  local path = self.dir .. "/" .. slug .. ".lockdir/lock"
  local fd_lock, who = core_fs.lock(path, holder.text .. "\n")
  if not fd_lock then
    error(M.held_error(holder.what, (who or ""):gsub("%s+$", "")), 0)
  end
  return setmetatable({fd = fd_lock, path = path}, LocalLock)
end

--- The state directory has nothing to watch: a look every half second.
function Local:await(_, _, left)
  time.sleep(math.min(left, 0.5))
end

function LocalLock:check()
  if self.failed then error(self.failed, 0) end
  local ok, why = self.fd:check()
  if not ok then
    self.failed = M.lost_error(": " .. why)
    error(self.failed, 0)
  end
end

function LocalLock:lost()
  if self.failed then return self.failed end
  local ok, why = self.fd:check()
  if not ok then self.failed = M.lost_error(": " .. why) end
  return self.failed
end

function LocalLock:release()
  self.fd:release()
end

local LocalLog = {}
LocalLog.__index = LocalLog

function Local:journal(lock, base)
  return setmetatable({path = self.dir .. "/" .. base .. ".journal", lock = lock}, LocalLog)
end

function LocalLog:where() return self.path end

function LocalLog:exists()
  local st = core_fs.exists(self.path) and core_fs.stat(self.path)
  if st and st.type == "file" and st.size == 0 then
    os.remove(self.path)          -- an empty journal records nothing: not an unfinished run
    return false
  end
  return core_fs.exists(self.path)
end

function LocalLog:read()
  return require("runbook.journal").read(self.path)
end

function LocalLog:drop_torn(at)
  core_fs.write(self.path, core_fs.read(self.path):sub(1, at - 1))
end

function LocalLog:archive()
  local stamp = time.iso():gsub("[-:]", "")
  local dest = self.path .. "." .. stamp
  local n = 1
  while core_fs.exists(dest) do dest = fmt("%s.%s.%d", self.path, stamp, n); n = n + 1 end
  assert(os.rename(self.path, dest))
  return dest
end

function LocalLog:append(line)
  if self.lock then self.lock:check() end
  core_fs.append(self.path, line)
end

--- The state directory's journals of `base`: <base>.journal, then the
--- archived <base>.journal.<UTC time> newest first (the key is not part of
--- a local journal's name).
function Local:journals(_, base)
  local out = {}
  local ok, names = pcall(core_fs.list, self.dir)
  if not ok then return out end
  local archived, prefix = {}, base .. ".journal."
  for _, name in ipairs(names) do
    if name:sub(1, #prefix) == prefix then archived[#archived + 1] = name end
  end
  table.sort(archived, function(a, b) return a > b end)
  if core_fs.exists(self.dir .. "/" .. base .. ".journal") then table.insert(archived, 1, base .. ".journal") end
  for _, name in ipairs(archived) do
    local path = self.dir .. "/" .. name
    local rok, recs, finished = pcall(require("runbook.journal").read, path)
    out[#out + 1] = rok and {where = path, records = recs, finished = finished}
                    or {where = path, why = tostring(type(recs) == "table" and recs.message or recs)}
  end
  return out
end

--- Whether a journal's records end as a finished run (runbook.journal.read's rule).
function M.finished(recs)
  local last = recs[#recs]
  return last ~= nil and last.type == "finish" and (last.ok == true or last.changed == false)
end

-- }======

--- Who holds a lock, for the lock itself and for messages.
---@param o {runbook:string, key:string, cluster:boolean, vars_sha256?:string}
function M.holder(o)
  local user = os.getenv("USER") or os.getenv("LOGNAME") or "?"
  local host = os.getenv("HOSTNAME")
  if not host then
    local f = io.open("/proc/sys/kernel/hostname", "r")
    host = f and f:read("l") or "?"
    if f then f:close() end
  end
  local pid = require("runbook.sys").pid()
  local h = {user = user, host = host, pid = pid, runbook = o.runbook, key = o.key, vars_sha256 = o.vars_sha256,
             started = time.iso()}
  h.text = fmt("pid %d, started %s, %s, %s@%s", pid, h.started, o.runbook, user, host)
  h.what = o.cluster and ("cluster " .. o.key) or o.runbook
  return h
end

--- Takes the lock; when another run holds it and `wait` (--wait-lock
--- seconds) is given, waits for it instead of failing at once: each
--- backend's await(key, err, left) returns when the lock changed (a watch
--- in etcd and Kubernetes; a look every half second in the state
--- directory) or when `left` is spent, and the lock is tried again, until
--- the deadline (then the held error, exit 4, saying how long it waited).
--- Returns the lock and whether it waited.
---@param st table a store from open()
---@param key string
---@param holder table from holder()
---@param wait? number seconds
function M.acquire(st, key, holder, wait)
  local deadline = wait and time.monotonic() + wait
  local said = false
  while true do
    local ok, lock = pcall(st.acquire, st, key, holder)
    if ok then return lock, said end
    if not (deadline and errors.is(lock, "locked")) then error(lock, 0) end
    local left = deadline - time.monotonic()
    if left <= 0 then
      lock.message = fmt("%s (waited %gs, --wait-lock)", lock.message, wait)
      error(lock, 0)
    end
    if not said then
      said = true
      require("runbook.events").emit{type = "log", level = "info",
        msg = fmt("waiting up to %gs for the lock: %s", wait, lock.message)}
    end
    st:await(key, lock, left)
  end
end

--- Opens the store a URL names (nil or "": the state directory).
---@param url string?
---@param o {state_dir:string}
function M.open(url, o)
  if url == nil or url == "" then
    return setmetatable({dir = o.state_dir, kind = "local", url = o.state_dir}, Local)
  end
  if url:match("^etcds?://") then return require("runbook.store_etcd").open(url, o) end
  if url:match("^k8s://") then return require("runbook.store_k8s").open(url, o) end
  error(errors.new("usage", fmt("--store %s: not a store this runbook knows (etcd://HOST:PORT/PREFIX, etcds://..., k8s://NAMESPACE/NAME)", url),
                   {exit = 2}), 0)
end

return M

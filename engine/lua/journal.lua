--- runbook.journal: the record that makes a run resumable, and the lock
--- that keeps two mutating runs of one cluster apart, both kept by a store
--- (runbook.store: the state directory, or etcd). One JSON object per
--- record; in the state directory, one per line in <state dir>/<runbook>.journal:
---   {"type":"start", "runbook":..., "pid":...}
---   {"type":"begin", "id":..., "key":...}     a step's body starts (shared store: every step; state dir: the first and gated ones)
---   {"type":"step", "id":..., "key":..., "name":..., "phase":..., "result":...}
---   {"type":"undo", "id":..., "key":..., "ok":...}
---   {"type":"resume", "pid":...}
---   {"type":"finish", "ok":..., "exit":...}
--- Every record is masked as a whole before it reaches the disk.
---
--- The reader (read, steps) is for any script: rollback.lua finds the
--- rollout's steps by their keys with it.
local core_fs = require "runbook.fs.core"
local errors = require "runbook.error"
local json = require "runbook.json"
local sys = require "runbook.sys"
local time = require "runbook.time"

local M = {}

local fmt = string.format

local function usage_error(msg)
  return errors.new("usage", msg, {exit = 2})
end

--- The key a record is found by: its step key, or (journals written
--- before keys existed) its identity.
---@param rec table
---@return string?
function M.key_of(rec)
  return rec.key or rec.id
end

--- Reads a journal. A torn last line (a kill mid-write) is dropped; a
--- corrupt record anywhere else is refused (exit 2), naming the line.
---@param path string
---@return table[] records, boolean finished true when the last record is a successful finish, or one of a run that changed nothing, integer? torn_at the byte where a torn last record starts
local NEEDS = {step = {"id"}, undo = {"id"}, begin = {"id"}, finish = {}, start = {}, resume = {}}

function M.read(path)
  local st = core_fs.stat(path)
  if st and st.type == "directory" then
    error(usage_error(fmt("%s is a directory, not a journal; move it away or use --fresh", path)), 0)
  end
  if st and st.type ~= "file" then
    error(usage_error(fmt("%s is not a regular file (a device, FIFO or socket), not a journal; move it away or use --fresh", path)), 0)
  end
  local okr, text = pcall(core_fs.read, path, {max = 256 * 1024 * 1024})
  if not okr then error(usage_error(fmt("%s; move it away or use --fresh", tostring(text))), 0) end
  local recs, lineno, pos, torn_at = {}, 0, 1, nil
  while pos <= #text do
    local line_start = pos
    local nl = text:find("\n", pos, true)
    local line = text:sub(pos, (nl or #text + 1) - 1)
    pos = (nl or #text) + 1
    lineno = lineno + 1
    if line ~= "" then
      local ok, rec = pcall(json.decode, line, {name = path})
      if ok and type(rec) == "table" then
        if type(rec.type) ~= "string" then
          error(usage_error(fmt("%s:%d: journal record without a type; move the file away or use --fresh", path, lineno)), 0)
        end
        for _, field in ipairs(NEEDS[rec.type] or {}) do
          if rec[field] == nil then
            error(usage_error(fmt("%s:%d: journal %s record without its %s; move the file away or use --fresh",
              path, lineno, rec.type, field)), 0)
          end
        end
        recs[#recs + 1] = rec
      elseif not nl then
        -- the last line has no newline: a record torn by a kill or a full
        -- disk mid-write; its step was not recorded, so it runs again
        torn_at = line_start
      else
        error(usage_error(fmt("%s:%d: corrupt journal record; move the file away or use --fresh", path, lineno)), 0)
      end
    end
  end
  local last = recs[#recs]
  -- finished: successfully, or stopped having changed nothing
  return recs, last ~= nil and last.type == "finish" and (last.ok == true or last.changed == false), torn_at
end

--- The steps a journal records as done and not undone since, by key, and
--- their keys in the order they finished.
---@param recs table[] records from read()
---@return table<string, table> by_key, string[] order
function M.steps(recs)
  local by_key, order = {}, {}
  for _, r in ipairs(recs) do
    local k = M.key_of(r)
    if r.type == "step" and k then
      if by_key[k] == nil then order[#order + 1] = k end
      by_key[k] = r
    elseif r.type == "undo" and k then
      by_key[k] = nil      -- undone (or its undo failed): not done any more either way
    end
  end
  local live = {}
  for _, k in ipairs(order) do if by_key[k] then live[#live + 1] = k end end
  return by_key, live
end

--- The steps a run was inside when its journal ends without their end:
--- a `begin` record with no `step` record of its key after it and no
--- `finish` (a holder killed, or fenced out, mid-step), and those a
--- `finish` names as still cut short (`cut`). By step key.
---@param recs table[] records from read()
---@return table<string, table>
function M.interrupted(recs)
  local open = {}
  for _, r in ipairs(recs) do
    local k = M.key_of(r)
    if r.type == "begin" and k then open[k] = r
    elseif r.type == "step" and k then open[k] = nil
    elseif r.type == "finish" then
      -- a holder that wrote its finish ended its steps itself, but for
      -- those it found cut short by an earlier one and did not regate
      open = {}
      for _, ck in ipairs(type(r.cut) == "table" and r.cut or {}) do open[ck] = {key = ck} end
    end
  end
  return open
end

--- What differs between a journal's start record and this run's
--- fingerprint {runbook, script_sha256, vars_sha256}, or nil. Journals
--- written before fingerprints carry none and are not compared.
function M.differs(start, fp)
  if start.runbook and fp.runbook and start.runbook ~= fp.runbook then
    return fmt("it was started by %s, this is %s", start.runbook, fp.runbook)
  end
  if start.vars_sha256 and start.vars_sha256 ~= fp.vars_sha256 then
    -- which: by the hash per name (journals of earlier versions have none)
    local names, was, now = {}, type(start.vars_each) == "table" and start.vars_each, fp.vars_each or {}
    for k, h in pairs(was or {}) do if now[k] ~= h then names[#names + 1] = k end end
    for k in pairs(was and now or {}) do if was[k] == nil then names[#names + 1] = k end end
    table.sort(names)
    if #names > 0 then
      return fmt("it was started with other variables (%s differ%s)", table.concat(names, ", "), #names == 1 and "s" or "")
    end
    return "it was started with other variables (--var / --vars differ)"
  end
end

--- A change of the runbook's file since the journal began: not refused
--- ("fix the cause, then --resume" may mean fixing the runbook, and steps
--- are found by their keys), but said.
function M.script_changed(start, fp)
  return start.script_sha256 ~= nil and fp.script_sha256 ~= nil and start.script_sha256 ~= fp.script_sha256
end

local Journal = {}
Journal.__index = Journal

--- Appends a record. The start record waits for the first real record: a
--- run that stops before its first step changed nothing and leaves no
--- journal behind (so nothing to resume).
function Journal:write(rec)
  rec.time = time.now()
  if self.path == nil then return end
  if rec.type == "start" then
    self.pending = rec
    return
  end
  if self.pending then
    local st = self.pending
    self.pending = nil
    self.log:append(sys.mask(json.encode(sys.mask_value(st))) .. "\n")
  end
  self.log:append(sys.mask(json.encode(sys.mask_value(rec))) .. "\n")
end

--- Raises the lock_lost error (exit 4, nothing undone) unless this run
--- still holds its lock: called before every step's body.
function Journal:check()
  if self.lock then self.lock:check() end
end

--- The lock_lost error once the lock is lost, else nil.
function Journal:lost()
  return self.lock and self.lock:lost() or nil
end

--- Whether nothing has been recorded yet in this run.
function Journal:is_empty()
  return self.pending ~= nil or self.path == nil
end

function Journal:release()
  if self.lock then self.lock:release() end
  self.lock = nil
  if self.log then self.log.lock = nil end
end

---@class runbook.journal.OpenOpts
---@field state_dir string
---@field base string the runbook's file name without .lua
---@field name string the runbook's file name, for messages
---@field dry_run? boolean no lock, no journal
---@field resume? boolean continue an unfinished run
---@field fresh? boolean archive an unfinished run's journal and start over
---@field on_archive? fun(path:string) told where an archived journal went
---@field fingerprint? table {runbook, script_sha256, vars_sha256}: recorded at the start, compared on --resume
---@field read_only? boolean the runbook changes nothing here: no lock, no journal
---@field lock_key? string the cluster's key (rb.cluster); default: the runbook's name
---@field store? table a store (runbook.store.open); default: the state directory
---@field wait_lock? number seconds to wait for a held lock (--wait-lock); then an unfinished journal is resumed

--- Takes the lock and opens the journal. Refusals carry their exit codes
--- (2: journal, 4: lock). The journal's resume table maps a step key to
--- its record when continuing a run.
---@param o runbook.journal.OpenOpts
function M.open(o)
  local J = setmetatable({resume = {}, resumed = false, warnings = {}}, Journal)
  if o.dry_run then
    if o.resume then error(usage_error("--resume does not apply to a dry-run (nothing was changed)"), 0) end
    return J
  end
  if o.read_only then
    -- a read-only runbook changes nothing: no lock, no journal
    if o.resume then error(usage_error(fmt("--resume does not apply to %s here: it changes nothing", o.name)), 0) end
    return J
  end
  -- the lock and the journal live in a store (runbook.store): the state
  -- directory by default, or a shared one (--store); the lock is the
  -- cluster's when the runbook names it (rb.cluster), else the runbook's
  local store = o.store or require("runbook.store").open(nil, {state_dir = o.state_dir})
  local stores = require("runbook.store")
  J.lock = stores.acquire(store, o.lock_key or o.base, o.holder or stores.holder{
    runbook = o.name, key = o.lock_key or o.base, cluster = o.lock_key ~= nil,
    vars_sha256 = o.fingerprint and o.fingerprint.vars_sha256}, o.wait_lock)
  J.log = store:journal(J.lock, o.base)
  J.shared = store.kind ~= "local"    -- a takeover may find the last holder alive: runbook.lua's regate
  local path = J.log:where()
  J.path = path
  if J.log:exists() then
    local recs, finished, torn_at = J.log:read()
    if torn_at then
      -- cut the fragment off, so that the records appended from now on
      -- start on a line of their own
      J.log:drop_torn(torn_at)
      J.warnings[#J.warnings + 1] = fmt("%s: a torn last record was dropped (the run was killed, or the disk was full, while writing it)", path)
    end
    if o.fresh then
      local to = J.log:archive()
      if o.on_archive then o.on_archive(to) end
    elseif o.resume or o.wait_lock and not finished then
      -- --wait-lock takes the lock a holder left: a takeover is a resume
      if not o.resume then J.warnings[#J.warnings + 1] = fmt("--wait-lock: resuming the unfinished run in %s", path) end
      local start = recs[1]
      if start and start.type == "start" and o.fingerprint then
        local what = M.differs(start, o.fingerprint)
        if what and o.fingerprint.none_given and type(start.given) == "table" and start.runbook == o.fingerprint.runbook then
          -- a bare --resume takes the variables the run was started with
          J.adopted, what = start.given, nil
          J.warnings[#J.warnings + 1] = "resumed with the variables the run was started with"
        end
        if what then
          J:release()
          error(usage_error(fmt("the journal in %s is of another run: %s. Resume with what it was started with, or start over with --fresh",
            path, what)), 0)
        end
        if M.script_changed(start, o.fingerprint) then
          J.warnings[#J.warnings + 1] = o.name .. " changed since the run being resumed began: its finished steps are skipped by their keys"
        end
      end
      if finished then
        J:release()
        error(usage_error(fmt("the last run of %s finished; there is nothing to resume (run without --resume to start again)", o.name)), 0)
      end
      J.resume = M.steps(recs)
      J.interrupted = M.interrupted(recs)
      J.resumed = true
      J.started = start      -- its start record: the secrets' fingerprints are compared once they are known
      J:write{type = "resume", pid = sys.pid()}
      return J
    elseif finished then
      J.log:archive()                 -- a finished run's journal is kept as its record
    else
      J:release()
      error(usage_error(fmt("an unfinished run of %s is recorded in %s: continue it with --resume, or archive it and start over with --fresh",
        o.name, path)), 0)
    end
  elseif o.resume then
    J:release()
    error(usage_error(fmt("no journal of %s in %s: there is nothing to resume", o.name, o.state_dir)), 0)
  end
  local rec = {type = "start", runbook = o.name, pid = sys.pid()}
  for k, val in pairs(o.fingerprint or {}) do rec[k] = val end
  J:write(rec)
  return J
end

return M

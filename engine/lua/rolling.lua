--- runbook.rolling: rb.rolling, items changed a batch at a time, each
--- item a lane with an undo stack of its own (engine/lua/runbook.lua
--- installs it as rb.rolling with the DSL's state, K).
local args = require "runbook.args"
local async = require "runbook.async"
local errors = require "runbook.error"
local events = require "runbook.events"
local time = require "runbook.time"

local fmt = string.format

return function(K)
  local S, lane, lane_of, start, check_opts = K.S, K.lane, K.lane_of, K.start, K.check_opts
  local is_stop, plain_message, run_undos, duration, mono = K.is_stop, K.plain_message, K.run_undos, K.duration, K.mono

  ---@class runbook.RollingOpts
  ---@field batch? integer items changed at once (default 1: one at a time)
  ---@field max_failures? integer items that may fail, each undone, before the run stops (default 0)
  ---@field name? fun(item:any):string the item's name in events and the plan (default tostring)
  ---@field before? fun(batch:any[], b:integer, n:integer) runs before batch b of n (a gate on the whole, a confirmation)
  ---@field after? fun(batch:any[], b:integer, n:integer) runs once every item of batch b finished (a pause)

  local function append(dst, src)
    for _, x in ipairs(src) do dst[#dst + 1] = x end
    return dst
  end

  local ROLLING_OPTS = {batch = "number", max_failures = "number", name = "function", before = "function", after = "function"}

  --- Runs fn(item) for every item, `batch` items at a time, concurrently
  --- within a batch; the next batch starts once the whole batch ended. Each
  --- item is a lane with an undo stack of its own: an item that fails undoes
  --- its own steps and the others go on. An item that finished hands its
  --- undos to the run's stack when its batch ends (rb.commit in the lane
  --- accepts them instead). Once more than max_failures items failed, the
  --- rolling fails after the batch in flight has ended, as a step does in
  --- sequence: the run's stack is undone (the finished items and the steps
  --- before, back to the last rb.commit). An interrupt or a lost lock
  --- stops the lanes where they are and undoes nothing (--resume goes on).
  --- Returns {done = {items}, failed = {{item, name, error, undone}}};
  --- resume skips an item's finished steps by their keys, as everywhere.
  ---@param name string
  ---@param items any[]
  ---@param fn fun(item:any, index:integer)
  ---@param o? runbook.RollingOpts
  local function rolling(name, items, fn, o)
    args.name(1, "rolling", name)
    args.check(2, "rolling", items, "table")
    args.check(3, "rolling", fn, "function")
    o = args.check(4, "rolling", o, "?table") or {}
    check_opts("rolling", name, o, ROLLING_OPTS)
    local size, budget = o.batch or 1, o.max_failures or 0
    args.expect(math.type(size) == "integer" and size >= 1, 4, "rolling", "batch must be an integer >= 1")
    args.expect(math.type(budget) == "integer" and budget >= 0, 4, "rolling", "max_failures must be an integer >= 0")
    if lane() then error(fmt("rolling '%s' inside another rolling: they do not nest", name), 2) end
    start()
    local label = o.name or tostring
    local nb = (#items + size - 1) // size
    local out = {done = {}, failed = {}}
    for b = 1, nb do
      local batch, names, lanes, tasks = {}, {}, {}, {}
      for i = (b - 1) * size + 1, math.min(b * size, #items) do batch[#batch + 1] = items[i] end
      for i, it in ipairs(batch) do names[i] = tostring(label(it)) end
      local rec = {rolling = name, phase = S.phase, batch = b, of = nb, items = names, started = time.now(), t0 = mono()}
      S.batches[#S.batches + 1] = rec
      events.emit{type = "batch", rolling = name, batch = b, batches = nb, items = names,
                  text = fmt("▸ %s: batch %d/%d: %s", name, b, nb, table.concat(names, ", "))}
      if o.before then o.before(batch, b, nb) end
      for i, it in ipairs(batch) do
        lanes[i] = {name = names[i], undo = {}}
        tasks[i] = async.spawn_named(names[i], function()
          lane_of[async.current()] = lanes[i]
          fn(it, (b - 1) * size + i)
        end)
      end
      -- every lane runs to its end: one failure does not cancel the others
      local left = {}
      for i = 1, #tasks do left[i] = tasks[i] end
      while #left > 0 do
        local ok, idx = pcall(async.wait_any, left)
        if not ok then                -- interrupted: the lanes stop where they are
          for _, t in ipairs(tasks) do t:cancel() end
          for _, t in ipairs(tasks) do pcall(t.wait, t) end
          error(idx, 0)
        end
        table.remove(left, idx)
      end
      local stop
      for i, t in ipairs(tasks) do
        local ok, err = t:result()
        if ok then
          out.done[#out.done + 1] = batch[i]
          for _, u in ipairs(lanes[i].undo) do S.undo[#S.undo + 1] = u end   -- a later failure undoes it as in sequence
        elseif errors.is(err, "step_failed") then
          out.failed[#out.failed + 1] = {item = batch[i], name = names[i], error = err.message, undone = err.undone or {},
                                         undo_failed = err.undo_failed or {}, cause = err}
        elseif is_stop(err) or errors.is(err, "cancelled") then
          stop = stop or err          -- a refusal, a pause, a journal that cannot be written
        else                          -- an error between the item's steps: undo what it did
          local msg = plain_message(err)
          events.emit{type = "step_failed", step = names[i], level = "error", error = msg,
                      text = fmt("✗ %s %s failed: %s", name, names[i], msg)}
          local done, failed = run_undos(lanes[i].undo)
          out.failed[#out.failed + 1] = {item = batch[i], name = names[i], error = msg, undone = done, undo_failed = failed,
                                         cause = errors.new("step_failed", fmt("%s '%s' failed: %s", name, names[i], msg),
                                                            {exit = 1, step = names[i], what = name, undone = done,
                                                             undo_failed = failed})}
        end
      end
      rec.elapsed = mono() - rec.t0
      rec.failed = #out.failed
      if stop then error(stop, 0) end
      events.emit{type = "batch_done", rolling = name, batch = b, batches = nb, elapsed = rec.elapsed, failed = #out.failed,
                  text = fmt("▸ %s: batch %d/%d ended in %s (%d failed so far, max_failures %d)", name, b, nb,
                             duration(rec.elapsed), #out.failed, budget)}
      if #out.failed > budget then
        -- the rolling failed: as a failed step in sequence, it undoes what
        -- no rb.commit accepted, newest first (the finished items, the
        -- steps before the rolling); each failed item undid itself already
        local more, more_failed = run_undos()
        local f = out.failed
        local err
        if #f == 1 then     -- as in sequence: the failure itself
          err = f[1].cause
          err.undone, err.undo_failed = append({}, err.undone or {}), append({}, err.undo_failed or {})
        else
          local undone, ufailed, which, names_failed = {}, {}, {}, {}
          for _, x in ipairs(f) do
            which[#which + 1] = fmt("%s (%s)", x.name, x.error)
            names_failed[#names_failed + 1] = x.name
            append(undone, x.undone)
            append(ufailed, x.undo_failed)
          end
          err = errors.new("step_failed", fmt("%s: %d items failed, more than max_failures=%d; each was undone: %s",
                           name, #f, budget, table.concat(which, "; ")),
                           {exit = 1, step = f[1].cause.step, what = "rolling", undone = undone, undo_failed = ufailed,
                            failed_items = names_failed})
        end
        append(err.undone, more)
        append(err.undo_failed, more_failed)
        S.failed = err
        error(err, 0)
      end
      for _, x in ipairs(out.failed) do
        if not x.reported then
          x.reported = true
          events.emit{type = "log", level = "warn", msg = fmt("%s failed and was undone; the rollout goes on (%d of max_failures %d)",
                                                          x.name, #out.failed, budget)}
        end
      end
      if o.after then o.after(batch, b, nb) end
    end
    return out
  end

  return rolling
end

--- runbook.finish: the end of a run: the journal's last record, the
--- report, the summary and the outcome event (engine/lua/runbook.lua
--- installs it as rb._finish, which the driver calls, with the DSL's
--- state, K). Also keeps the commands and HTTP calls for the report.
local core_fs = require "runbook.fs.core"
local errors = require "runbook.error"
local events = require "runbook.events"
local json = require "runbook.json"
local report = require "runbook.report"
local sys = require "runbook.sys"
local time = require "runbook.time"

local fmt = string.format

return function(K)
  local S, M, opts, runbook_name, state_dir, base = K.S, K.M, K.opts, K.runbook_name, K.state_dir, K.base
  local is_stop, run_undos, journal_write, duration, mono = K.is_stop, K.run_undos, K.journal_write, K.duration, K.mono

  -- Each command's line goes into a short table folded into one string every
  -- 256 lines: a list that grows by one at every call, tens of thousands
  -- long in a fleet's rollout, would be traversed whole by each of the
  -- generational collector's minor cycles (an old table written to is
  -- re-marked entirely), a cost that grows with the run (docs/benchmarks.md)
  local function add_command(line)
    local tail = S.command_tail
    tail[#tail + 1] = line
    if #tail == 256 then
      S.commands[#S.commands + 1] = table.concat(tail, "\n")
      S.command_tail = {}
    end
  end

  events.listen(function(ev)
    if ev.type == "exec" then
      add_command(fmt("[%s] $ %s", time.iso(ev.time):sub(12, 19), require("runbook.exec").show_argv(ev.argv)))
    elseif ev.type == "http" then
      add_command(fmt("[%s] %s %s", time.iso(ev.time):sub(12, 19), ev.method, ev.url))
    end
  end)

  --- Called by the driver when the runbook returns or raises. Writes the
  --- journal's last record and the report, prints the summary, and returns
  --- the error to raise (nil when the run succeeded).
  --- The steps done in this run, not read-only, not undone.
  local function in_effect(undone)
    local gone, out = {}, {}
    for _, u in ipairs(undone or {}) do gone[u] = true end
    for _, u in ipairs(S.undone) do gone[u] = true end     -- a failed item of rb.rolling, undone while the run went on
    for _, st in ipairs(S.steps) do
      if st.status == "done" and st.id and not st.read_only and not gone[st.id] then out[#out + 1] = st.id end
    end
    return out
  end

  --- The last event of a run: its outcome as data, for whoever reads the
  --- JSON stream (docs/events.md).
  local function emit_outcome(ok, err, interrupted, report_path, paused)
    local e = type(err) == "table" and err or {}
    local failed = S.failed
    local exit = ok and 0 or interrupted and 3 or (math.tointeger(e.exit) or 1)
    if paused then
      events.emit{type = "outcome", ok = true, exit = 0, paused = true, reason = e.message, dry_run = M.dry_run,
                  in_effect = json.array(in_effect({})), report = report_path}
      return
    end
    local undone = e.undone or {}
    events.emit{type = "outcome", ok = ok, exit = exit, dry_run = M.dry_run, interrupted = interrupted or nil,
                interrupted_at = interrupted and S.interrupted_at or nil, where = interrupted and S.interrupted_where or nil,
                failed = not ok and not interrupted and failed and failed.step or nil,
                failed_kind = not ok and not interrupted and failed and failed.what or nil,
                error = not ok and not interrupted and (e.message or tostring(err)) or nil,
                undone = json.array(undone), undo_failed = json.array(e.undo_failed or {}),
                failed_items = e.failed_items and json.array(e.failed_items) or nil,
                in_effect = json.array(in_effect(undone)), report = report_path, level = ok and "info" or "error"}
  end

  local function finish(ok, err)
    local interrupted = sys.interrupted()
    if not ok and interrupted then
      -- where it stopped, in words: the step cut short, or the gate waited on
      -- with what it last saw (a node mid-change), not "task 1 was cancelled"
      local waits = {}
      for g in pairs(S.waiting) do
        waits[#waits + 1] = fmt("%s, %d checks in%s", g.id, g.polls,
                                #g.history > 0 and ("; last seen: " .. g.history[#g.history].obs) or "")
      end
      table.sort(waits)
      local where = S.interrupted_at and ("in step " .. S.interrupted_at .. ", not finished: it runs again on --resume")
                    or #waits > 0 and ("waiting in gate " .. table.concat(waits, "; gate "))
                    or "between steps"
      S.interrupted_where = where
      err = errors.new("interrupted", "interrupted " .. where, {exit = 3})
    end
    local paused = not ok and errors.is(err, "paused")
    if not ok and not interrupted and not is_stop(err) and not errors.is(err, "usage") and #S.undo > 0 then
      -- a plain error between steps also undoes what asked for it
      local done, failed = run_undos()
      err = errors.new("error", tostring(err), {traceback = type(err) == "table" and err.traceback or nil,
                                                 undone = done, undo_failed = failed, exit = 1})
    end
    local recorded = S.journal and not S.journal:is_empty()
    -- a run that stopped having done only read-only steps changed nothing:
    -- its journal counts as finished, so the next run starts afresh
    local changed = S.resumed     -- what an earlier run changed is still to be resumed
    for _, st in ipairs(S.steps) do
      if st.status == "done" and not st.skipped and st.id and not st.read_only then changed = true end
    end
    -- a run that recorded nothing has no journal to finish
    local okj, jerr = pcall(function()
      if paused then return end       -- left open: --resume continues it
      if recorded and ok then journal_write{type = "finish", ok = true, exit = 0}
      elseif recorded and not interrupted then
        -- the steps still cut short by an earlier holder (runbook.lua's
        -- regate): the next resume gates them too
        local cut = {}
        for k in pairs(S.journal.interrupted or {}) do cut[#cut + 1] = k end
        table.sort(cut)
        journal_write{type = "finish", ok = false, changed = changed, exit = type(err) == "table" and err.exit or 1,
                      error = tostring(err), cut = #cut > 0 and cut or nil}
      end
    end)
    if not okj and ok then ok, err = false, jerr end
    local text = report.render{name = runbook_name, dry_run = M.dry_run, ok = ok, err = err, state = S, duration = duration}
    local report_path
    local okw, werr = pcall(function()
      core_fs.mkdir_p(state_dir)
      -- a rehearsal that stopped does not overwrite the last plan that ran
      -- to its end: it is the plan.failed.md beside it
      report_path = fmt("%s/%s.%s.md", state_dir, base, not M.dry_run and "report" or (ok or paused) and "plan" or "plan.failed")
      core_fs.write(report_path, sys.mask(text), {mode = tonumber("600", 8)})
      if opts.report_file then core_fs.write(opts.report_file, sys.mask(text), {mode = tonumber("600", 8)}) end
    end)
    if not okw then
      events.emit{type = "log", level = "warn", msg = "could not write the report: " .. tostring(werr)}
      report_path = nil
    end
    -- the summary
    local lines = {}
    if ok then
      lines[#lines + 1] = fmt("%s %s in %s", M.dry_run and "rehearsed" or "done:", runbook_name, duration(mono()))
    elseif paused then
      lines[#lines + 1] = fmt("paused: %s", err.message)
      lines[#lines + 1] = M.dry_run and "a rehearsal ends here; the real run pauses at the same point"
                          or fmt("continue with: runbook run %s --resume (it keeps the variables this run was started with)",
                                  runbook_name)
    elseif interrupted then
      lines[#lines + 1] = fmt("interrupted: %s stopped where it was%s; nothing was undone; continue with: runbook run %s --resume",
                              runbook_name, " (" .. S.interrupted_where .. ")",
                              runbook_name)
    else
      lines[#lines + 1] = "stopped: " .. (type(err) == "table" and err.message or tostring(err))
      local undone = type(err) == "table" and err.undone or {}
      if #undone > 0 then lines[#lines + 1] = "undone: " .. table.concat(undone, ", ") end
      local uf = type(err) == "table" and err.undo_failed or {}
      for _, f in ipairs(uf) do lines[#lines + 1] = fmt("UNDO FAILED: %s: %s (check this by hand)", f.id, f.err) end
      local done = in_effect(undone)
      if #done > 0 then lines[#lines + 1] = "still in effect: " .. table.concat(done, ", ") end
      local jpath = S.journal_failed and S.journal and S.journal.path
      local jst = jpath and core_fs.exists(jpath) and core_fs.stat(jpath)
      if S.journal_failed and not (jst and jst.size > 0) then
        -- its first record could not be written: nothing to resume, and
        -- --resume would say so; nothing was changed either
        lines[#lines + 1] = fmt("next: make room for the journal (disk space, open files), then run %s again: "
                                .. "nothing was recorded, so nothing was changed and there is nothing to resume", runbook_name)
      elseif S.journal_failed then
        lines[#lines + 1] = fmt("next: make room for the journal (disk space, open files), then 'runbook run %s --resume': "
                                .. "the steps it recorded are skipped, the one cut short runs again", runbook_name)
      elseif recorded and not M.dry_run and changed then
        lines[#lines + 1] = fmt("next: fix the cause, then 'runbook run %s --resume' (finished steps are skipped), or --fresh to start over",
                                runbook_name)
      elseif recorded and not M.dry_run then
        lines[#lines + 1] = fmt("nothing was changed: run %s again once the cause is fixed", runbook_name)
      end
    end
    if report_path then lines[#lines + 1] = "report: " .. report_path end
    for _, l in ipairs(lines) do
      events.emit{type = "summary", level = (ok or paused) and "info" or "error", summary = true, text = l}
    end
    emit_outcome(ok, err, interrupted, report_path, paused)
    if S.journal then S.journal:release() end
    return err
  end

  return finish
end

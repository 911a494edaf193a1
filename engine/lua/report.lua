--- runbook.report: the Markdown report of a run (or the plan of a
--- dry-run), from the DSL's run state.
local sys = require "runbook.sys"
local time = require "runbook.time"

local M = {}

local fmt = string.format

local function md_escape(s)
  -- masked first: the escaped text of a secret holding '|' would not match it
  return (sys.mask(tostring(s)):gsub("|", "\\|"):gsub("\n", " "))
end

---@class runbook.report.Run
---@field name string the runbook's file name
---@field dry_run boolean
---@field ok boolean
---@field err any the error that stopped the run
---@field state table the DSL's run state (steps, gates, variables, ...)
---@field duration fun(secs:number):string

--- Renders the report of a run.
---@param run runbook.report.Run
---@return string markdown
function M.render(run)
  local S, ok, err, duration = run.state, run.ok, run.err, run.duration
  local runbook_name = run.name
  local dry_run = run.dry_run
  local fs = require "runbook.fs"     -- its dry-run overlay holds the changed files
  local b = {}
  local function add(s) b[#b + 1] = s end
  add(fmt("# %s: %s%s", runbook_name, dry_run and "plan (dry-run)" or "run report",
          ok and "" or " (stopped)"))
  add("")
  add(fmt("- started: %s%s", time.iso(S.started), dry_run and " (virtual clock)" or ""))
  add(fmt("- finished: %s after %s", time.iso(), duration(time.monotonic())))
  add(fmt("- outcome: %s", ok and "done" or ("stopped: " .. tostring(err))))
  if S.resumed then add("- resumed from an earlier run's journal") end
  if next(S.var_values) then
    add("")
    add("## Variables")
    add("")
    add("| name | value |")
    add("|---|---|")
    local names = {}
    for n in pairs(S.var_values) do names[#names + 1] = n end
    table.sort(names)
    for _, n in ipairs(names) do
      local v = S.var_values[n]
      if type(v) == "table" then v = table.concat(v, ", ") end
      add(fmt("| %s | %s |", n, md_escape(v)))
    end
  end
  add("")
  add("## Steps")
  add("")
  add("| # | phase | step | outcome | time |")
  add("|---|---|---|---|---|")
  for i, s in ipairs(S.steps) do
    add(fmt("| %d | %s | %s | %s | %s |", i, md_escape(s.phase or ""), md_escape(s.name or s.question or s.id),
            md_escape(s.skipped and "done earlier" or s.status or "?") .. (s.error and (": " .. md_escape(s.error)) or ""),
            s.elapsed and duration(s.elapsed) or ""))
  end
  if #S.batches > 0 then
    -- the timeline of rb.rolling: which items were out at once, and when
    add("")
    add("## Batches")
    add("")
    add("| rolling | batch | items | from | took | failed so far |")
    add("|---|---|---|---|---|---|")
    for _, r in ipairs(S.batches) do
      add(fmt("| %s | %d/%d | %s | +%s | %s | %s |", md_escape(r.rolling), r.batch, r.of, md_escape(table.concat(r.items, ", ")),
              duration(r.t0), r.elapsed and duration(r.elapsed) or "(unfinished)", r.failed and tostring(r.failed) or ""))
    end
  end
  if #S.gates > 0 then
    add("")
    add("## Gates")
    add("")
    for _, g in ipairs(S.gates) do
      add(fmt("- **%s**: %s after %d checks (%s)", g.id, g.ok and "passed" or "failed", g.polls, duration(g.elapsed or 0)))
      for _, h in ipairs(g.history) do add(fmt("  - +%s: %s", duration(h.at), md_escape(h.obs))) end
    end
  end
  if #S.undone > 0 then
    add("")
    add("## Undone")
    add("")
    for _, id in ipairs(S.undone) do add("- " .. id) end
  end
  if #S.commands > 0 or #S.command_tail > 0 then
    add("")
    add(dry_run and "## Commands it would run" or "## Commands run")
    add("")
    add("```")
    for _, c in ipairs(S.commands) do add(c) end        -- chunks of 256 lines
    for _, c in ipairs(S.command_tail) do add(c) end
    add("```")
  end
  local changes = fs.changes()
  if #changes > 0 then
    add("")
    add(dry_run and "## Files it would change" or "## Files changed")
    for _, c in ipairs(changes) do
      add("")
      add(fmt("### %s%s", c.path, c.before == nil and " (new)" or c.after == nil and " (removed)" or ""))
      add("")
      local function binary(t) return t ~= nil and (t:find("\0", 1, true) ~= nil or utf8.len(t) == nil) end
      if binary(c.before) or binary(c.after) then
        add(fmt("(binary, %d bytes)", #(c.after or c.before or "")))      -- a snapshot, not text to diff
      else
        add("```diff")
        add((fs.diff(c):gsub("\n$", "")))
        add("```")
      end
    end
  end
  for _, sec in ipairs(S.sections) do
    add("")
    add("## " .. sec.title)
    add("")
    if type(sec.body) == "table" then
      local keys = {}
      for k in pairs(sec.body) do keys[#keys + 1] = k end
      table.sort(keys, function(a, c) return tostring(a) < tostring(c) end)
      for _, k in ipairs(keys) do add(fmt("- %s: %s", tostring(k), tostring(sec.body[k]))) end
    else
      add(tostring(sec.body))
    end
  end
  return table.concat(b, "\n") .. "\n"
end

return M

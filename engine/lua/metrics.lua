--- runbook.metrics: the run as Prometheus metrics (--metrics-file PATH,
--- --pushgateway URL). A listener on the event stream counts steps, gates,
--- polls and a rolling run's nodes; the text exposition format
--- (https://prometheus.io/docs/instrumenting/exposition_formats/) is
--- written whole to a temporary file and renamed over PATH, at each gate
--- poll of a real run (a long wait stays visible), at each phase's end
--- and at the end; the end's metrics are also POSTed to the Pushgateway.
--- A runbook adds labels to every series with label(name, value): the
--- rollout names its cluster. docs/cli.md lists the metrics.
local core_fs = require "runbook.fs.core"
local events = require "runbook.events"
local time = require "runbook.time"

local M = {}

local fmt = string.format

local labels = {}          -- name -> value, on every series (runbook, cluster...)
local label_order = {}
local state                -- the counts, nil until start()

--- Adds a label to every series (a value already set is replaced).
---@param name string a Prometheus label name
---@param value string
function M.label(name, value)
  assert(type(name) == "string" and name:match("^[%a_][%w_]*$"), "label: a Prometheus label name expected")
  if labels[name] == nil then label_order[#label_order + 1] = name end
  labels[name] = tostring(value)
end

local function escape(v)
  return (v:gsub("\\", "\\\\"):gsub("\n", "\\n"):gsub('"', '\\"'))
end

local function label_text(extra)
  local parts = {}
  for _, k in ipairs(label_order) do parts[#parts + 1] = fmt('%s="%s"', k, escape(labels[k])) end
  for _, kv in ipairs(extra or {}) do parts[#parts + 1] = fmt('%s="%s"', kv[1], escape(kv[2])) end
  return #parts > 0 and ("{" .. table.concat(parts, ",") .. "}") or ""
end

local function number(v)
  if math.type(v) == "integer" then return tostring(v) end
  return fmt("%.15g", v)
end

--- The metrics as exposition text; `last_success` nil leaves that series
--- out (a failed run pushed with POST keeps the Pushgateway's previous one).
local function render(s, last_success)
  local out = {}
  local function metric(name, kind, help, series)
    out[#out + 1] = fmt("# HELP %s %s\n# TYPE %s %s", name, help, name, kind)
    for _, se in ipairs(series) do out[#out + 1] = fmt("%s%s %s", name, label_text(se[1]), number(se[2])) end
  end
  metric("runbook_run_info", "gauge", "The run: its runbook, its cluster, whether a dry-run, the runbook version.",
         {{{{"dry_run", tostring(s.dry_run)}, {"version", s.version}}, 1}})
  metric("runbook_run_in_progress", "gauge", "1 while the run goes on, 0 once it ended.", {{nil, s.finished and 0 or 1}})
  if s.finished then
    metric("runbook_run_success", "gauge", "1 when the run ended done (exit 0), else 0.", {{nil, s.ok and 1 or 0}})
    metric("runbook_run_exit_code", "gauge", "The exit code of the run (docs/cli.md).", {{nil, s.exit}})
  end
  metric("runbook_run_start_timestamp_seconds", "gauge", "When the run started (virtual in a dry-run).", {{nil, s.started}})
  metric("runbook_run_duration_seconds", "gauge", "Seconds from the run's start to now or its end (virtual in a dry-run).",
         {{nil, s.now - s.started}})
  local steps = {}
  for _, o in ipairs{"done", "failed", "skipped", "undone", "undo_failed"} do steps[#steps + 1] = {{{"outcome", o}}, s.steps[o]} end
  metric("runbook_steps_total", "counter", "Steps by outcome: done, failed, skipped (resumed), undone, undo_failed.", steps)
  metric("runbook_gates_total", "counter", "Gates by outcome: passed, failed.",
         {{{{"outcome", "passed"}}, s.gates.passed}, {{{"outcome", "failed"}}, s.gates.failed}})
  metric("runbook_gate_polls_total", "counter", "Checks made by the run's gates.", {{nil, s.polls}})
  local wait = 0
  for _, e in pairs(s.gate_elapsed) do wait = wait + e end
  metric("runbook_gate_wait_seconds_total", "counter", "Seconds spent waiting in gates.", {{nil, wait}})
  metric("runbook_nodes_done", "gauge", "Items (nodes) of rb.rolling batches that ended without failing.",
         {{nil, s.items_ended - s.items_failed}})
  metric("runbook_nodes_failed", "gauge", "Items (nodes) of rb.rolling that failed (and were undone).", {{nil, s.items_failed}})
  if last_success then
    metric("runbook_last_success_timestamp_seconds", "gauge", "When a run of this runbook last ended done.",
           {{nil, last_success}})
  end
  return table.concat(out, "\n") .. "\n"
end

--- The last success a previous run wrote into the metrics file, if any.
local function previous_success(path)
  local ok, text = pcall(core_fs.read, path)
  if not ok or type(text) ~= "string" then return nil end
  return tonumber(text:match("\nrunbook_last_success_timestamp_seconds[^\n]* (%S+)\n"))
end

local function write_file(s)
  if not s.file then return end
  local last = s.finished and s.ok and s.now or s.last_success
  local ok, err = pcall(core_fs.write, s.file, render(s, last), {mode = tonumber("644", 8)})
  if not ok and not s.write_warned then
    s.write_warned = true
    events.emit{type = "log", level = "warn", msg = fmt("metrics: cannot write %s: %s", s.file, tostring(err))}
  end
end

local on = {}
function on.step_done(s) s.steps.done = s.steps.done + 1 end
function on.step_skipped(s) s.steps.skipped = s.steps.skipped + 1 end
function on.undo(s) s.steps.undone = s.steps.undone + 1 end
function on.undo_failed(s) s.steps.undo_failed = s.steps.undo_failed + 1; s.steps.undone = s.steps.undone - 1 end
function on.gate(s, ev) s.open_gates[ev.gate] = true; s.gate_elapsed[ev.gate] = 0 end
function on.gate_poll(s, ev)
  s.polls = s.polls + 1
  s.gate_elapsed[ev.gate] = ev.elapsed or 0
  if not s.virtual then write_file(s) end
end
function on.gate_done(s, ev)
  s.open_gates[ev.gate] = nil
  s.gate_elapsed[ev.gate] = ev.elapsed or s.gate_elapsed[ev.gate]
  s.gates.passed = s.gates.passed + 1
end
function on.step_failed(s, ev)
  if s.open_gates[ev.step] then
    s.open_gates[ev.step] = nil
    s.gates.failed = s.gates.failed + 1
  else
    s.steps.failed = s.steps.failed + 1
  end
end
function on.batch(s, ev) s.batch_items[ev.batch] = #(ev.items or {}) end
function on.batch_done(s, ev)
  s.items_ended = s.items_ended + (s.batch_items[ev.batch] or 0)
  s.items_failed = ev.failed or s.items_failed
end
function on.phase_done(s) write_file(s) end
function on.outcome(s, ev) s.finished, s.ok, s.exit = true, ev.ok and true or false, ev.exit or (ev.ok and 0 or 1) end
on.finish = on.outcome

local function listener(ev)
  local s = state
  s.now = ev.time or s.now
  local fn = on[ev.type]
  if fn then fn(s, ev) end
end

local function b64url(str)
  local abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
  local out = {}
  for i = 1, #str, 3 do
    local a, b, c = str:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    for k = 3, 0, -1 do
      local idx = (n >> (6 * k)) & 63
      out[#out + 1] = abc:sub(idx + 1, idx + 1)
    end
  end
  local pad = (3 - #str % 3) % 3
  return table.concat(out):sub(1, #out - pad) .. string.rep("=", pad)
end

--- The Pushgateway's URL of this run's group: job "runbook" and every
--- label as a grouping key, base64url-encoded (a value may hold a "/").
local function group_url(base)
  local parts = {base:gsub("/+$", ""), "metrics/job/runbook"}
  for _, k in ipairs(label_order) do parts[#parts + 1] = k .. "@base64/" .. b64url(labels[k]) end
  return table.concat(parts, "/")
end

--- POSTs the metrics: the series of the same names in the group are
--- replaced, others kept (a failed run leaves the last success's time).
local function push(s)
  local http = require "runbook.http.core"
  local url = group_url(s.pushgateway)
  local last = s.finished and s.ok and s.now or nil
  local ok, res = pcall(http.request, {url = url, method = "POST", body = render(s, last), timeout = 30,
                                       headers = {["Content-Type"] = "text/plain; version=0.0.4"}})
  if not ok then
    events.emit{type = "log", level = "warn", msg = fmt("metrics: push to %s failed: %s", s.pushgateway, tostring(res))}
  elseif res.status < 200 or res.status >= 300 then
    events.emit{type = "log", level = "warn",
                msg = fmt("metrics: %s answered the push with %d: %s", s.pushgateway, res.status, (res.body or ""):sub(1, 200))}
  else
    events.emit{type = "log", level = "debug", msg = fmt("metrics: pushed to %s", url)}
  end
end

--- Starts counting for the run of `runbook` when --metrics-file or
--- --pushgateway asks for it; returns the module, or nil.
---@param opts table sys.options()
---@param runbook string the runbook's file name
function M.start(opts, runbook)
  if not (opts.metrics_file or opts.pushgateway) then return nil end
  local dir = opts.metrics_file and (opts.metrics_file:match("^(.*)/[^/]*$") or ".")
  local st = dir and core_fs.stat(dir ~= "" and dir or "/")
  if dir and not (st and st.type == "directory") then
    error(require("runbook.error").new("usage", fmt("--metrics-file %s: no directory %s to write it in", opts.metrics_file, dir),
                                       {exit = 2}), 0)
  end
  if opts.pushgateway and not opts.pushgateway:match("^https?://[^/]") then
    error(require("runbook.error").new("usage", fmt("--pushgateway expects an http:// or https:// URL, got '%s'", opts.pushgateway),
                                       {exit = 2}), 0)
  end
  labels, label_order = {}, {}
  M.label("runbook", runbook)
  local now = time.now()
  state = {file = opts.metrics_file, pushgateway = opts.pushgateway, dry_run = opts.dry_run and true or false,
           virtual = opts.virtual_clock, version = opts.version or "unknown",
           started = now, now = now, steps = {done = 0, failed = 0, skipped = 0, undone = 0, undo_failed = 0},
           gates = {passed = 0, failed = 0}, polls = 0, gate_elapsed = {}, open_gates = {}, batch_items = {},
           items_ended = 0, items_failed = 0}
  if state.file then state.last_success = previous_success(state.file) end
  events.listen(listener)
  write_file(state)
  return M
end

--- The end of the run: the file written a last time, the push made.
function M.finish()
  local s = state
  if not s then return end
  s.finished = s.finished or false
  write_file(s)
  if s.pushgateway then push(s) end
end

M._render, M._b64url = render, b64url
return M

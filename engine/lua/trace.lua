--- runbook.trace: W3C trace context (https://www.w3.org/TR/trace-context/)
--- for the event stream. The run is a span, and so is each phase, step,
--- gate and rb.rolling batch, nested as they run; every event carries the
--- trace_id and the span_id of the span it belongs to (lowercase hex, 32
--- and 16 digits, as OpenTelemetry's JSON encoding writes them), and an
--- event that opens a span its parent_span_id. An inherited TRACEPARENT
--- makes the run a child of the caller's span in the caller's trace; the
--- children a step runs (runbook.exec) get a TRACEPARENT naming the step.
---
--- Spans are followed per task (coroutine). A task spawned inside a step
--- (async.map) does not know its parent: its events go to the step when
--- exactly one step or gate is open, else to the innermost phase or batch
--- open (docs/events.md says so).
local M = {}

local fmt = string.format

local trace_id, parent_of_run, flags, run_span
local stacks = setmetatable({}, {__mode = "k"})   -- coroutine -> list of open spans, innermost last
local open = {}                                   -- kind .. ":" .. name -> span
local structural = {}                             -- open run/phase/batch spans, last opened last
local leaves = 0                                  -- open step and gate spans

local urandom
local function random_hex(bytes)
  if urandom == nil then urandom = io.open("/dev/urandom", "rb") or false end
  local raw = urandom and urandom:read(bytes)
  if not raw or #raw ~= bytes then            -- no /dev/urandom: Lua's generator
    local t = {}
    for i = 1, bytes do t[i] = string.char(math.random(0, 255)) end
    raw = table.concat(t)
  end
  local hex = raw:gsub(".", function(c) return fmt("%02x", c:byte()) end)
  if hex:match("^0+$") then return random_hex(bytes) end   -- all zeros is invalid
  return hex
end

--- The parts of a TRACEPARENT header, or nil when it is not one: version
--- 00 exactly, a later version by its first four fields (the spec's rule
--- for versions it does not know); ff and all-zero ids are invalid.
function M.parse(value)
  if type(value) ~= "string" then return nil end
  local v, tid, sid, fl, rest = value:match("^(%x%x)%-(%x+)%-(%x+)%-(%x%x)(.*)$")
  if not v or v ~= v:lower() or v == "ff" or #tid ~= 32 or #sid ~= 16 then return nil end
  if tid ~= tid:lower() or sid ~= sid:lower() or fl ~= fl:lower() then return nil end
  if tid:match("^0+$") or sid:match("^0+$") then return nil end
  if (v == "00" and rest ~= "") or (v ~= "00" and rest ~= "" and rest:sub(1, 1) ~= "-") then return nil end
  return {trace_id = tid, span_id = sid, flags = fl}
end

local function init()
  local inherited = M.parse(os.getenv("TRACEPARENT"))
  trace_id = inherited and inherited.trace_id or random_hex(16)
  parent_of_run = inherited and inherited.span_id or nil
  flags = inherited and inherited.flags or "01"
  run_span = {id = random_hex(8), kind = "run"}
  structural[1] = run_span
end

local function current_parent(co)
  local st = co and stacks[co]
  if st and #st > 0 then return st[#st] end
  return structural[#structural]
end

--- The span an event of this task belongs to.
local function current(co)
  local st = co and stacks[co]
  if st and #st > 0 then return st[#st] end
  if leaves == 1 then
    for _, s in pairs(open) do if s.kind == "step" or s.kind == "gate" then return s end end
  end
  return structural[#structural]
end

local function remove(list, item)
  for i = #list, 1, -1 do if list[i] == item then table.remove(list, i); return end end
end

local function open_span(kind, name, co)
  local parent = current_parent(co)
  local s = {id = random_hex(8), kind = kind, parent = parent.id, co = co or false}
  if co then
    stacks[co] = stacks[co] or {}
    table.insert(stacks[co], s)
  end
  open[kind .. ":" .. tostring(name)] = s
  if kind == "step" or kind == "gate" then leaves = leaves + 1 else structural[#structural + 1] = s end
  return s
end

local function close_span(kind, name)
  local key = kind .. ":" .. tostring(name)
  local s = open[key]
  if not s then return nil end
  open[key] = nil
  if s.co and stacks[s.co] then remove(stacks[s.co], s) end
  if kind == "step" or kind == "gate" then leaves = leaves - 1 else remove(structural, s) end
  return s
end

local OPENS = {phase = "phase", step = "step", gate = "gate", batch = "batch"}
local CLOSES = {phase_done = "phase", step_done = "step", step_interrupted = "step", gate_done = "gate",
                batch_done = "batch"}
local INSTANT = {step_skipped = true, undo = true, undo_failed = true}

local function span_name(ev, kind)
  if kind == "batch" then return tostring(ev.rolling) .. "#" .. tostring(ev.batch) end
  return ev[kind]
end

--- Adds trace_id, span_id and (an event that opens a span) parent_span_id.
---@param ev table an event about to be emitted
function M.annotate(ev)
  if not trace_id then init() end
  local co = coroutine.running()
  local ty, s = ev.type, nil
  if ty == "run" then
    s = run_span
    ev.parent_span_id = parent_of_run
  elseif OPENS[ty] then
    s = open_span(OPENS[ty], span_name(ev, OPENS[ty]), co)
    ev.parent_span_id = s.parent
  elseif CLOSES[ty] then
    s = close_span(CLOSES[ty], span_name(ev, CLOSES[ty]))
  elseif ty == "step_failed" then          -- a step's failure, or a gate's
    s = close_span("step", ev.step) or close_span("gate", ev.step)
  elseif ty == "gate_poll" then
    s = open["gate:" .. tostring(ev.gate)]
  elseif INSTANT[ty] then
    s = {id = random_hex(8)}
    ev.parent_span_id = current_parent(co).id
  end
  s = s or current(co)
  ev.trace_id, ev.span_id = trace_id, s.id
  return ev
end

--- The TRACEPARENT a child started now should get: this trace, the span of
--- the running task (the step that runs it).
---@return string
function M.traceparent()
  if not trace_id then init() end
  return fmt("00-%s-%s-%s", trace_id, current(coroutine.running()).id, flags)
end

--- This run's trace id (hex).
function M.trace_id()
  if not trace_id then init() end
  return trace_id
end

return M

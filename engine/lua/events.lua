--- runbook.events: the event stream. Bindings and the DSL emit events;
--- renderers (text, JSON lines, log file) turn them into output. Nothing
--- in the engine prints directly. Every write goes through runbook.sys,
--- which masks secrets.
local sys = require "runbook.sys"
local time = require "runbook.time"
local trace = require "runbook.trace"

local M = {}
M.SCHEMA = 1

local opts = sys.options()
local listeners = {}
local seq = 0

local colors = {
  reset = "\27[0m", dim = "\27[2m", red = "\27[31m", green = "\27[32m",
  yellow = "\27[33m", cyan = "\27[36m", bold = "\27[1m",
}

-- decided once: the terminal does not change during a run
local color = sys.isatty("stderr") and os.getenv("NO_COLOR") == nil and os.getenv("TERM") ~= "dumb"
local function use_color() return color end

--- Registers fn(event) to see every event (the DSL's report uses this).
function M.listen(fn)
  listeners[#listeners + 1] = fn
end

local level_rank = {debug = 0, info = 1, warn = 2, error = 3}

--- The one-line text of an event, or nil when the text view skips it.
function M.text(ev)
  local ty = ev.type
  if ty == "log" then
    local buf = {ev.msg}
    if ev.fields then
      local keys = {}
      for k in pairs(ev.fields) do keys[#keys + 1] = k end
      table.sort(keys)
      for _, k in ipairs(keys) do buf[#buf + 1] = k .. "=" .. tostring(ev.fields[k]) end
    end
    return table.concat(buf, " ")
  end
  return ev.text
end

local live_line = false                   -- a status line is showing (TTY)

local function text_renderer(ev)
  if ev.type == "print" then               -- print() keeps its plain stdout form
    sys.write("stdout", ev.text .. "\n")
    return
  end
  local text = M.text(ev)
  if text == nil then return end
  local lvl = ev.level or "info"
  local verbosity = opts.verbosity or 0
  if ev.live and use_color() and verbosity >= 0 then
    -- on a terminal, polls rewrite one status line instead of scrolling
    sys.write("stderr", "\r\27[K" .. colors.cyan .. text .. colors.reset)
    live_line = true
    return
  end
  if live_line then
    sys.write("stderr", "\r\27[K")
    live_line = false
  end
  if lvl == "debug" and verbosity < 1 then return end
  if verbosity < 0 and level_rank[lvl] < 2 and not ev.summary then return end
  local stamp = time.iso(ev.time):sub(12, 19)
  local line
  if use_color() then
    local c = lvl == "error" and colors.red or lvl == "warn" and colors.yellow or ""
    line = colors.dim .. stamp .. colors.reset .. "  " .. c .. text .. (c ~= "" and colors.reset or "") .. "\n"
  else
    line = stamp .. "  " .. (lvl ~= "info" and (lvl:upper() .. " ") or "") .. text .. "\n"
  end
  sys.write("stderr", line)
end

local json_encode
local function json_renderer(ev)
  if json_encode == nil then json_encode = require("runbook.json").encode end
  sys.write("stdout", json_encode(ev, {sort_keys = true}) .. "\n")
end

local function log_renderer(ev)
  local text = ev.type == "print" and ev.text or M.text(ev)
  if text == nil then return end
  sys.write("log", time.iso(ev.time) .. " " .. (ev.level or "info") .. " " .. text .. "\n")
end

--- Replaces the global print so that it goes through the sinks (masked;
--- an event of type "print" in JSON mode).
function M.capture_print()
  _G.print = function(...)
    local n = select("#", ...)
    local parts = {}
    for i = 1, n do parts[i] = tostring((select(i, ...))) end
    M.emit{type = "print", text = table.concat(parts, "\t")}
  end
end

--- Emits an event: a table with at least `type`. Adds `seq`, `time`
--- (epoch seconds, virtual in a dry-run), `schema`, `trace_id` and `span_id`.
function M.emit(ev)
  seq = seq + 1
  ev.seq = seq
  ev.time = time.now()
  ev.schema = M.SCHEMA
  trace.annotate(ev)          -- trace_id, span_id (runbook.trace)
  -- masked before it is encoded: escaping changes a secret's text (the
  -- sinks look for its JSON and YAML forms, Markdown's are the report's),
  -- and a secret that is not UTF-8 has no JSON form: unmasked, json.encode
  -- would refuse the event
  ev = sys.mask_value(ev)
  if opts.output == "json" then json_renderer(ev) else text_renderer(ev) end
  if opts.log_file then log_renderer(ev) end
  for i = 1, #listeners do listeners[i](ev) end
  return ev
end

return M

--- runbook.exec: run programs (never through a shell).
--- exec.run(argv, opts) -> {code, signal, stdout, stderr, duration,
--- timed_out, ...}. In a dry-run the call goes to the simulated world
--- instead of the OS (see runbook.world).
local args = require "runbook.args"
local core = require "runbook.exec.core"
local errors = require "runbook.error"
local events = require "runbook.events"
local sys = require "runbook.sys"

local M = {}

local dry_run = sys.options().dry_run

--- Shows argv as an operator would type it (quoted where needed).
local function show_argv(argv)
  local buf = {}
  for i, a in ipairs(argv) do
    a = tostring(a)
    if a == "" or a:find("[%s'\"\\$`!*?;&|<>(){}]") then a = "'" .. a:gsub("'", "'\\''") .. "'" end
    buf[i] = a
  end
  return table.concat(buf, " ")
end
M.show_argv = show_argv

---@class runbook.exec.Opts
---@field env? table<string,string|userdata> added to the environment (secrets allowed)
---@field clear_env? boolean start from an empty environment
---@field cwd? string working directory
---@field stdin? string|userdata data written to the child's stdin, then closed
---@field timeout? number seconds; then SIGTERM to the process group, SIGKILL after `grace`
---@field grace? number seconds between SIGTERM and SIGKILL (default 5)
---@field max_output? integer bytes kept per stream (default 16 MiB); the rest is counted
---@field on_line? fun(line:string, stream:"stdout"|"stderr", piece:boolean) called for every line; a line longer than max_line comes in pieces of max_line bytes (piece true: more of it follows)
---@field max_line? integer bytes of one line on_line is given at a time (default 1 MiB)
---@field check? boolean raise an `exit` error on a non-zero exit or a signal
---@field allow_timeout? boolean return the result (timed_out = true) instead of raising
---@field quiet? boolean do not emit the exec events

--- The lines of one stream as core.run hands them to on_line: each line
--- without its newline, the last one too, a line longer than max_line in
--- pieces (piece true for each but the last).
local function each_line(text, max_line, fn)
  for line, nl in text:gmatch("([^\n]*)(\n?)") do
    if line == "" and nl == "" then break end
    while #line > max_line do
      fn(line:sub(1, max_line), true)
      line = line:sub(max_line + 1)
    end
    if line ~= "" or nl ~= "" then fn(line, false) end
  end
end

--- A simulated world answers a command with its result; the options that
--- shape a real child's result apply here, in one place for every world,
--- so that a script behaves the same in rehearsal: timeout (the world's
--- answer waited for at most that long, as a real child would be
--- signalled), on_line (every line, before the cap), max_output.
local function run_in_world(world, argv, opts)
  local time = require "runbook.time"
  local t0 = time.monotonic()
  local res
  if opts.timeout and opts.timeout > 0 then
    -- a microsecond past the timeout: a world that models the signal
    -- itself (sim/talosctl.lua's wait, with what it printed) answers first
    local cut = opts.timeout + 1e-6
    local ok, r = pcall(require("runbook.async").timeout, cut, world.exec, argv, opts)
    if not ok and errors.is(r, "timeout") and r.seconds == cut then
      res = {code = nil, signal = 15, stdout = "", stderr = "", timed_out = true, duration = opts.timeout}
    elseif not ok then error(r, 0)
    else res = r end
  else
    res = world.exec(argv, opts)
  end
  res.duration = res.duration or (time.monotonic() - t0)
  res.timed_out = res.timed_out or false
  local max = opts.max_output or 16 * 1024 * 1024
  for _, stream in ipairs{"stdout", "stderr"} do
    local text = res[stream] or ""
    if opts.on_line then
      each_line(text, opts.max_line or 1024 * 1024, function(line, piece) opts.on_line(line, stream, piece) end)
    end
    res[stream .. "_dropped"] = (res[stream .. "_dropped"] or 0) + math.max(0, #text - max)
    res[stream] = text:sub(1, max)
  end
  return res
end

--- Runs argv[1] (looked up on PATH) with the arguments argv[2..].
---@param argv string[]
---@param opts? runbook.exec.Opts
function M.run(argv, opts)
  args.check(1, "run", argv, "table")
  args.check(2, "run", opts, "?table")
  opts = opts or {}
  -- a secret's text in argv (a revealed one, or built into a string) would
  -- show in the process list to every user of the machine; the event would
  -- show it masked and look safe: refused, as a secret object is
  for i, a in ipairs(argv) do
    if type(a) == "string" and sys.mask(a) ~= a then
      args.error(1, "run", ("argv[%d] holds a secret's text: it would show in the process list; pass it through env or stdin"):format(i))
    end
  end
  local cmd = show_argv(argv)
  if not opts.quiet then
    events.emit{type = "exec", argv = argv, level = "debug", text = "$ " .. cmd}
  end
  local res
  if opts.on_line then
    -- lines reach the runbook with registered secrets masked, like the result
    local user = opts.on_line
    local copy = {}
    for k, v in pairs(opts) do copy[k] = v end
    copy.on_line = function(line, stream, piece) return user(sys.mask(line), stream, piece) end
    opts = copy
  end
  if dry_run then
    local world = package.loaded["runbook.world"]
    if not world then
      error(errors.new("dry_run", ("dry-run: no simulated world to answer %q"):format(cmd)), 2)
    end
    res = run_in_world(world, argv, opts)
  else
    if not opts.clear_env and not (opts.env and opts.env.TRACEPARENT) then
      -- the child joins the run's trace as a child of this step (runbook.trace)
      local copy = {}
      for k, v in pairs(opts) do copy[k] = v end
      copy.env = {}
      for k, v in pairs(opts.env or {}) do copy.env[k] = v end
      copy.env.TRACEPARENT = require("runbook.trace").traceparent()
      opts = copy
    end
    res = core.run(argv, opts)
  end
  -- a secret a child prints is masked in what the runbook (and every
  -- sink after it) sees
  res.stdout, res.stderr = sys.mask(res.stdout), sys.mask(res.stderr)
  if not opts.quiet then
    events.emit{type = "exec_done", argv = argv, code = res.code, signal = res.signal,
                duration = res.duration, timed_out = res.timed_out, level = "debug",
                text = ("  exit %s in %.2fs%s"):format(res.code or ("signal " .. tostring(res.signal)),
                                                      res.duration, res.timed_out and " (timed out)" or "")}
  end
  if res.timed_out and not opts.allow_timeout then
    error(errors.new("timeout", ("%s timed out after %gs"):format(cmd, opts.timeout),
                     {result = res, argv = argv}), 2)
  end
  if opts.check and res.code ~= 0 then
    local detail = res.stderr ~= "" and res.stderr or res.stdout
    detail = detail:gsub("%s+$", ""):sub(-400)
    error(errors.new("exit", ("%s exited with %s%s"):format(cmd,
      res.code and ("code " .. res.code) or ("signal " .. res.signal),
      detail ~= "" and (": " .. detail) or ""), {result = res, argv = argv, code = res.code}), 2)
  end
  return res
end

--- The full path of a program on PATH, or nil.
function M.which(name)
  if name:find("/") then return name end
  for dir in (os.getenv("PATH") or ""):gmatch("[^:]+") do
    local p = dir .. "/" .. name
    local f = io.open(p, "r")
    if f then f:close(); return p end
  end
  return nil
end

return M

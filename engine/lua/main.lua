--- runbook.main: the drivers the C side calls. run() wraps a runbook,
--- test() runs a test file's test_* functions, outline() lists what a
--- runbook declares without running it.
local events = require "runbook.events"
local sys = require "runbook.sys"
local time = require "runbook.time"
local core = require "runbook.async.core"
local errors = require "runbook.error"

local M = {}

local function basename(path)
  return path:match("([^/]+)$") or path
end

--- In a dry-run, loads the simulated world that answers exec and http:
--- sim/world.lua beside the runbook, else the shipped one; the scenario
--- from --scenario (a name the world resolves, or a file), else what the
--- world's default_scenario(opts) gives, else its scenarios/default.yaml.
local function world_files(path)
  local candidates = {}
  if path then
    local dir = path:match("^(.*)/[^/]*$") or "."
    candidates = {dir .. "/sim/world.lua", dir .. "/../sim/world.lua"}
  end
  local shipped = sys.runbooks_dir()
  if shipped then candidates[#candidates + 1] = shipped .. "/sim/world.lua" end
  return candidates
end

local function load_world(path, opts)
  for _, file in ipairs(world_files(path)) do
    -- stat, not io.open, which would block on a FIFO; dofile reads it as
    -- every script is read (a regular file, 16 MiB at most)
    if require("runbook.fs.core").exists(file) then
      local world = dofile(file)
      local root = file:match("^(.*)/sim/world%.lua$")
      -- the world decides what a name means and what to rehearse without
      -- one (the shipped world: the operator's own talconfig.yaml)
      local scenario, about, warnings = opts.scenario, nil, {}
      if scenario and world.scenario_path then scenario, about = world.scenario_path(scenario)
      elseif not scenario and world.default_scenario then scenario, about, warnings = world.default_scenario(opts)
      elseif not scenario then scenario = root .. "/scenarios/default.yaml" end
      world.load(scenario)
      package.loaded["runbook.world"] = world
      local fs = require "runbook.fs"
      for name, content in pairs(world.files and world.files() or {}) do
        if content and not fs.exists(name) then fs.seed(name, content) end
      end
      about = about or ("the scenario " .. tostring(scenario))
      events.emit{type = "world", scenario = type(scenario) == "string" and scenario or nil, about = about,
                  text = "rehearsing against " .. about}
      warnings = warnings or {}
      for _, w in ipairs(world.warnings and world.warnings(opts) or {}) do warnings[#warnings + 1] = w end
      for _, w in ipairs(warnings) do events.emit{type = "log", level = "warn", msg = "rehearsal: " .. w} end
      return world
    end
  end
  if opts.scenario then
    error(errors.new("usage", "--scenario given but no simulated world (sim/world.lua) was found", {exit = 2}), 0)
  end
end

--- `runbook world capture` and the first half of `runbook plan`: the
--- world of the runbook at `path` (nil: the shipped one) reads the live
--- cluster with its capture(opts, strict); the scenario goes to `out`
--- (0600, written whole) or stdout. A read that failed is a warning.
---@return integer exit code
function M.capture(path, out, strict)
  local opts = sys.options()
  events.capture_print()
  local world
  for _, file in ipairs(world_files(path)) do
    if require("runbook.fs.core").exists(file) then world = dofile(file); break end
  end
  if not world or not world.capture then
    error(errors.new("usage", "no simulated world with a capture (sim/world.lua) for " .. tostring(path or "the shipped runbooks"),
                     {exit = 2}), 0)
  end
  events.emit{type = "log", level = "info", msg = "capturing the live cluster (read-only: docs/simulation.md lists every read)"}
  local text, sum = world.capture(opts, strict)
  local core_fs = require "runbook.fs.core"
  if out then
    local dir = out:match("^(.*)/[^/]*$")
    if dir then core_fs.mkdir_p(dir) end
    core_fs.write(out, text, {mode = tonumber("600", 8)})
  else
    sys.write("stdout", text)
  end
  for _, f in ipairs(sum.failed or {}) do
    events.emit{type = "log", level = "warn", msg = ("capture: %s failed: %s"):format(f.read, f.error)}
  end
  events.emit{type = "log", level = "info", msg = ("captured %d nodes%s%s"):format(sum.nodes, out and (" into " .. out) or "",
    #(sum.failed or {}) > 0 and ("; %d reads failed (listed above and in captured.failed)"):format(#sum.failed) or "")}
  return 0
end

--- Runs the runbook chunk as the body of the main task.
---@return integer exit code
function M.run(chunk, path)
  local opts = sys.options()
  events.capture_print()
  events.emit{type = "run", runbook = basename(path), dry_run = opts.dry_run,
              text = ("run %s%s"):format(basename(path), opts.dry_run and " (dry-run)" or "")}
  -- --metrics-file / --pushgateway (nil without them)
  local metrics = require("runbook.metrics").start(opts, basename(path))
  if opts.dry_run then load_world(path, opts) end
  local ok, res = xpcall(chunk, function(e)
    if type(e) ~= "table" then
      e = errors.new("error", tostring(e))
    end
    if e.traceback == nil then e.traceback = debug.traceback(nil, 2) end
    return e
  end)
  -- one rule for exit codes (os.exit's too): nothing is 0, else an
  -- integer 0..255; 3.5, "7", math.huge or 256 (which the shell would read
  -- modulo 256, as success) are an error, not a code
  local code = ok and (res == nil and 0 or math.type(res) and res >= 0 and res <= 255 and math.tointeger(res)) or nil
  if ok and not code then
    local shown = type(res) == "string" and ("%q"):format(res) or tostring(res)
    ok, res = false, errors.new("error", ("the runbook returned %s; an exit code is an integer 0 to 255 (or nothing, for 0)"):format(shown))
  end
  local dsl = package.loaded["runbook"]
  if type(dsl) == "table" and dsl._finish then
    -- the DSL writes the journal's end, the report and the summary
    local err = dsl._finish(ok, res)
    if metrics then metrics.finish() end
    if not ok then
      if type(err) == "table" then err.reported = true end
      error(err, 0)
    end
    return code
  end
  events.emit{type = "finish", ok = ok, exit = code or (sys.interrupted() and 3 or 1),
              elapsed = time.monotonic(), level = ok and "info" or "error", summary = true,
              text = ok and ("finished in %.3fs%s"):format(time.monotonic(), opts.dry_run and " (virtual)" or "")
                    or ("stopped after %.3fs%s"):format(time.monotonic(), opts.dry_run and " (virtual)" or "")}
  events.emit{type = "outcome", ok = ok, exit = code or (sys.interrupted() and 3 or 1),
              error = not ok and tostring(type(res) == "table" and res.message or res) or nil,
              level = ok and "info" or "error"}
  if metrics then metrics.finish() end
  if not ok then error(res, 0) end
  return code
end

local function write(s) sys.write("stdout", s) end

--- Runs every test_* function of a test file, each in its own task.
---@return integer passed, integer failed
function M.test(chunk, path)
  events.capture_print()
  local env = setmetatable({}, {__index = _G})
  -- chunks loaded from files have _ENV as their first upvalue
  debug.setupvalue(chunk, 1, env)
  local mod = chunk()
  local source = type(mod) == "table" and mod or env
  local tests = {}
  for name, fn in pairs(source) do
    if type(name) == "string" and name:match("^test_") and type(fn) == "function" then
      tests[#tests + 1] = {name = name, fn = fn, line = debug.getinfo(fn, "S").linedefined}
    end
  end
  table.sort(tests, function(a, b)
    if a.line ~= b.line then return a.line < b.line end
    return a.name < b.name
  end)
  local passed, failed = 0, 0
  write(("# %s\n"):format(path))
  for _, t in ipairs(tests) do
    local task = core.spawn_named(t.name, t.fn)
    local t0 = time.monotonic()
    local ok, err = pcall(task.wait, task)
    local dt = time.monotonic() - t0
    if ok then
      passed = passed + 1
      write(("ok   %s (%.3fs)\n"):format(t.name, dt))
    else
      failed = failed + 1
      local msg = tostring(err)
      write(("FAIL %s\n     %s\n"):format(t.name, msg:gsub("\n", "\n     ")))
      if type(err) == "table" and err.traceback and (sys.options().verbosity or 0) > 0 then
        write("     " .. err.traceback:gsub("\n", "\n     ") .. "\n")
      end
    end
  end
  if #tests == 0 then
    write("FAIL no test_* functions found\n")
    failed = failed + 1
  end
  return passed, failed
end

--- Prints the phases, steps, gates and confirmations a runbook declares,
--- found in its source (names built at run time show their literal part).
--- The first argument of a call starting at src[i] (just after its "("),
--- as the outline shows it: string literals as written, a format string's
--- %s and any other expression as "…".
local function first_arg(src, i)
  local out, depth, j, joined = {}, 0, i, false
  while j <= #src do
    local c = src:sub(j, j)
    if c == "." and src:sub(j, j + 1) == ".." then joined = true; j = j + 2
    elseif c == '"' or c == "'" then
      local k, lit = j + 1, {}
      while k <= #src and src:sub(k, k) ~= c do
        if src:sub(k, k) == "\\" then k = k + 1 end
        lit[#lit + 1] = src:sub(k, k)
        k = k + 1
      end
      -- at depth 0 every literal; inside a call only its first (a format
      -- string), or one joined to the previous with ".."
      if depth == 0 or joined or #out == 0 or out[#out] == "…" or out[#out] == " | " then
        out[#out + 1] = (table.concat(lit):gsub("%%[%-%d%.]*[sdqgf]", "…"))
      end
      joined = false
      j = k + 1
    elseif c == "(" or c == "{" or c == "[" then depth = depth + 1; j = j + 1
    elseif c == ")" or c == "}" or c == "]" then
      if depth == 0 then break end
      depth = depth - 1; j = j + 1
    elseif c == "," and depth == 0 then break
    elseif c:match("[%w_]") then
      local word = src:match("^[%w_%.:]+", j)
      -- a value (the arguments of a format call are inside its parentheses)
      if depth == 0 and (word == "or") then out[#out + 1] = " | "    -- one name or another
      elseif depth == 0 and word == "and" then out = {}              -- a condition: the name follows it
      elseif depth == 0 and not (word == "fmt" or word:match("format$")) and out[#out] ~= "…" then out[#out + 1] = "…" end
      j = j + #word
    else j = j + 1 end
  end
  local text = table.concat(out):gsub("…+", "…")
  return text ~= "" and text or "…"
end

--- The position just past the string, comment or long bracket that
--- starts at j, or nil when none starts there.
local function skip_text(src, j)
  local c = src:sub(j, j)
  if c == "-" and src:sub(j, j + 1) == "--" then
    local long = src:match("^%-%-%[(=*)%[", j)
    if long then return (select(2, src:find("]" .. long .. "]", j, true)) or #src) + 1 end
    return (src:find("\n", j, true) or #src) + 1
  elseif c == '"' or c == "'" then
    local k = j + 1
    while k <= #src and src:sub(k, k) ~= c do k = k + (src:sub(k, k) == "\\" and 2 or 1) end
    return k + 1
  elseif c == "[" and src:match("^%[=*%[", j) then
    local eq = src:match("^%[(=*)%[", j)
    return (select(2, src:find("]" .. eq .. "]", j, true)) or #src) + 1
  end
end

--- Scans src from `from`, past strings and comments, asking token(j) at
--- every other position for the depth change there and how far to move;
--- returns the position where the depth comes back to 0 (a rough scan:
--- enough to see which calls a phase's or a function's body holds).
local function balanced(src, from, token)
  local depth, j = 0, from
  while j <= #src do
    local past = skip_text(src, j)
    if past then j = past
    else
      local delta, len = token(j)
      depth = depth + delta
      if delta < 0 and depth == 0 then return j end
      j = j + len
    end
  end
  return #src
end

--- The position of the ")" that closes the "(" at `open`.
local function closing(src, open)
  return balanced(src, open, function(j)
    local c = src:sub(j, j)
    return c == "(" and 1 or c == ")" and -1 or 0, 1
  end)
end

local OPENS = {["function"] = true, ["if"] = true, ["do"] = true, ["repeat"] = true}
local CLOSES = {["end"] = true, ["until"] = true}

--- The position of the "end" that closes the function whose keyword
--- starts at `at` (Lua's blocks: function, if, do and repeat open one;
--- end and until close it).
local function block_end(src, at)
  return balanced(src, at, function(j)
    local word = src:match("^[%a_][%w_]*", j)
    if not word then return 0, 1 end
    if j > 1 and src:sub(j - 1, j - 1):match("[%w_.:]") then return 0, #word end   -- a field, not a keyword
    return OPENS[word] and 1 or CLOSES[word] and -1 or 0, #word
  end)
end

local OUTLINED = {phase = true, step = true, gate = true, confirm = true, rolling = true}

--- Lists what a runbook declares, read from its source without running
--- it: phases, steps, gates, confirmations and rollings, names built at
--- run time shown with "…" where a value goes ("… runs the new schematic").
--- A call outside every phase's body (in a function a phase calls: the
--- rollout's roll_node) is listed under that function's name.
function M.outline(path)
  local src = require("runbook.fs.core").read(path, {max = 16 * 1024 * 1024})
  local n, pos, phase_end, header = 0, 1, 0, nil
  local function line_of(at) return select(2, src:sub(1, at):gsub("\n", "")) + 1 end
  while true do
    local s, e, kind = src:find("[%w_]%.(%a+)%s*%(", pos)
    if not s then break end
    pos = e + 1
    local line_start = 1
    for k = s, 1, -1 do if src:sub(k, k) == "\n" then line_start = k + 1; break end end
    local commented = src:sub(line_start, s):find("--", 1, true)
    if OUTLINED[kind] and not commented then
      local indent = "  "
      if kind == "phase" then
        indent, phase_end, header = "", closing(src, e), nil
      elseif s > phase_end then
        -- the nearest function definition before it
        -- the innermost function definition around it, else the top level
        local name, at
        for p0, fname in src:sub(1, s):gmatch("()function%s+([%w_.:]+)%s*%(") do
          if block_end(src, p0) > s then name, at = fname, p0 end
        end
        if name then
          if header ~= name then
            header = name
            sys.write("stdout", ("function %s   (line %d)\n"):format(name, line_of(at)))
          end
        else indent, header = "", nil end
      end
      sys.write("stdout", ("%s%-7s %s   (line %d)\n"):format(indent, kind, first_arg(src, e + 1), line_of(s)))
      n = n + 1
    end
  end
  if n == 0 then sys.write("stdout", "(no phases or steps declared)\n") end
  sys.write("stdout", ("%s compiles\n"):format(basename(path)))
end

return M

--- runbook.gate: rb.gate, a check polled until it holds, and the gate a
--- resume runs before a step cut short in the run it resumes (a takeover:
--- docs/reliability.md). engine/lua/runbook.lua installs them with the
--- DSL's state, K.
local args = require "runbook.args"
local errors = require "runbook.error"
local events = require "runbook.events"
local sys = require "runbook.sys"
local time = require "runbook.time"

local fmt = string.format

return function(K)
  local S, lane, start, check_opts, identity, fail = K.S, K.lane, K.start, K.check_opts, K.identity, K.fail
  local duration, mono = K.duration, K.mono

  local GATE_OPTS = {timeout = "number", interval = "number", backoff = "number", max_interval = "number"}

  ---@class runbook.GateOpts
  ---@field timeout? number seconds before the gate fails (default 300)
  ---@field interval? number seconds between checks (default 5)
  ---@field backoff? number factor applied to the interval after each check (default 1)
  ---@field max_interval? number cap for the interval (default 60)

  --- Polls check() until it returns a truthy value; a gate is never skipped
  --- on resume. check may return a second value, an observation, shown while
  --- waiting and quoted if the gate fails. A check that raises counts as "not
  --- yet" (a node that is rebooting does not answer).
  local function gate(name, check, o)
    args.name(1, "gate", name)
    args.check(2, "gate", check, "function")
    o = args.check(3, "gate", o, "?table") or {}
    check_opts("gate", name, o, GATE_OPTS)
    start()
    local id = identity(name)
    local timeout, interval = o.timeout or 300, o.interval or 5
    local g = {id = id, phase = S.phase, name = name, started = time.now(), t0 = mono(), polls = 0, history = {}}
    S.gates[#S.gates + 1] = g
    events.emit{type = "gate", gate = id, timeout = timeout, text = fmt("⧗ %s (up to %s)", id, duration(timeout))}
    S.waiting[g] = true         -- where an interrupt finds the run (its summary says)
    local last_obs
    while true do
      local ok, v, obs = pcall(check)
      g.polls = g.polls + 1
      if not ok and type(v) == "table" and v.fatal then
        -- the check saw a state that waiting cannot fix (a node back on its old image)
        g.ok, g.elapsed = false, mono() - g.t0
        S.waiting[g] = nil
        fail(id, tostring(v.message or v), "gate")
      end
      if not ok then v, obs = false, "check failed: " .. tostring(v) end
      obs = obs ~= nil and tostring(obs) or (v and "ok" or "not yet")
      local changed = obs ~= last_obs
      if changed and not (sys.interrupted() and obs:find("cancelled", 1, true)) then
        g.history[#g.history + 1] = {at = mono() - g.t0, obs = obs}
        last_obs = obs
      end
      -- without a terminal, a poll line shows when the observation changes
      events.emit{type = "gate_poll", gate = id, poll = g.polls, ok = v and true or false, observation = obs,
                  elapsed = mono() - g.t0, live = true, level = changed and "info" or "debug",
                  text = fmt("  %s: poll %d, %s, %s", id, g.polls, duration(mono() - g.t0), obs)}
      if v then
        S.waiting[g] = nil
        local here = lane() or S
        here.fresh_gate = id      -- a step cut short in the run resumed may run again after it (regate)
        g.ok, g.elapsed = true, mono() - g.t0
        events.emit{type = "gate_done", gate = id, ok = true, polls = g.polls, elapsed = g.elapsed,
                    text = fmt("✓ %s (%d checks, %s)", id, g.polls, duration(g.elapsed))}
        return v
      end
      local elapsed = mono() - g.t0
      if elapsed >= timeout then
        g.ok, g.elapsed = false, elapsed
        S.waiting[g] = nil
        fail(id, fmt("not met after %s (%d checks); last observation: %s", duration(timeout), g.polls, obs), "gate")
      end
      time.sleep(math.min(interval, timeout - elapsed))
      interval = math.min(interval * (o.backoff or 1), o.max_interval or 60)
    end
  end

  --- A resume that finds a step cut short (its begin recorded, not its end:
  --- the holder was killed or fenced out inside it) runs its body again only
  --- after a fresh gate on what it changes, since the old holder's command
  --- (talosctl) may still be acting and cannot check the lock's token: the
  --- step's own `gate` option, polled now as rb.gate; else an rb.gate that
  --- passed in this run with no step body run since (the rollout's "cluster
  --- healthy before NODE"). With neither, a shared store (--store) refuses,
  --- exit 2, and the step stays cut short for the next resume (its finish
  --- record names it); in the state directory the lock's flock proves the
  --- last holder dead and the step runs again as before. A read_only step
  --- changes nothing and runs again at once.
  local function regate(J, key, name, o)
    local cut = J.interrupted and J.interrupted[key]
    if not cut then return end
    if o.read_only then        -- a read changes nothing: it may run again at once
      J.interrupted[key] = nil
      return
    end
    local id = identity(name)
    -- in an item of rb.rolling: its own last gate, else (no step body ran
    -- in it yet: nil, not false) the run's, such as the rolling's `before`
    local l = lane()
    local fresh = l and l.fresh_gate
    if fresh == nil then fresh = S.fresh_gate end
    if o.gate then
      events.emit{type = "log", level = "info", msg = fmt("%s was cut short in the run being resumed: its gate first", id)}
      gate(name .. " settled before it runs again", o.gate, {timeout = o.gate_timeout or 300, interval = 1, backoff = 2, max_interval = 10})
    elseif fresh then
      events.emit{type = "log", level = "info",
                  msg = fmt("%s was cut short in the run being resumed: it runs again after the gate '%s' passed in this run", id, fresh)}
    elseif J.shared then
      -- the finish record names the step as still cut short (finish.lua)
      error(errors.new("usage", fmt("step '%s' was cut short in the run being resumed (its holder died or lost the lock, and a "
        .. "command it ran may still be acting: talosctl cannot check the lock), and no gate passed in this run before it: it is "
        .. "not run again blind. Give the step a gate (rb.step(name, fn, {gate = check})) or put an rb.gate before it, then --resume", id),
        {exit = 2, stop = true}), 0)
    end
    J.interrupted[key] = nil     -- gated: a failure from here on is the step's own
  end

  return {gate = gate, regate = regate}
end

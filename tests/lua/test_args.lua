-- Bad arguments, one way everywhere: Lua's own wording, the argument's
-- number and the function's name, from C (luaL_argerror) and from the
-- engine's Lua (runbook.args), pointing at the caller's line.
local t = require "runbook.testing"
local async = require "runbook.async"
local exec = require "runbook.exec"
local fs = require "runbook.fs"
local json = require "runbook.json"
local yaml = require "runbook.yaml"

function test_c_options_name_the_argument_and_the_field()
  t.raises("bad argument #2 to '[%w.]*encode' %(opts.indent must be an integer%)", yaml.encode, {a = 1}, {indent = "x"})
  t.raises("bad argument #2 to '[%w.]*encode' %(opts.indent must be an integer%)", json.encode, {a = 1}, {indent = 2.5})
  t.raises("bad argument #3 to '[%w.]*write' %(opts.mode must be an integer%)", fs.write, "/tmp/runbook-never-written", "d",
           {mode = "0644"})
  t.raises("bad argument #2 to '[%w.]*run' %(opts.cwd must be a string%)", exec.run, {"true"}, {cwd = 5})
  t.raises("bad argument #2 to '[%w.]*run' %(opts.timeout must be a number%)", exec.run, {"true"}, {timeout = "soon"})
  t.raises("bad argument #1 to '[%w.]*run' %(argv%[2%] must be a string %(got table%)%)", exec.run, {"echo", {}})
end

function test_lua_checker_words_like_lua()
  t.raises("bad argument #2 to 'map' %(function expected, got no value%)", async.map, {1})
  t.raises("bad argument #1 to 'map' %(table expected, got string%)", async.map, "x", print)
  t.raises("bad argument #3 to 'map' %(concurrency must be an integer >= 1%)", async.map, {1}, print, {concurrency = 0})
  t.raises("bad argument #2 to 'write' %(string expected, got number%)", fs.write, "/tmp/runbook-never-written", 1)
end

function test_the_error_points_at_the_callers_line()
  local line = debug.getinfo(1, "l").currentline + 1
  local ok, err = pcall(function() async.map({1}) end)
  t.eq(ok, false)
  t.match(tostring(err), "test_args%.lua:" .. line .. ": bad argument #2 to 'map'")
end

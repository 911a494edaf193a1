-- The LuaLS stubs (types/runbook/*.lua) cover every function a runbook.*
-- module exports: an editor's completion never misses one, and a new
-- function without a stub fails here.
local t = require "runbook.testing"

local source = os.getenv("RUNBOOK_SOURCE") or "../.."

-- functions a stub declares: `function <table>.<name>(`
local function declared(file)
  local f = assert(io.open(file, "r"))
  local text = f:read("a")
  f:close()
  t.truthy(text:match("^%-%-%-@meta"), file .. " starts with ---@meta")
  local names = {}
  for name in text:gmatch("\nfunction [%w_]+%.([%w_]+)%(") do names[name] = true end
  for name in text:gmatch("\n([%w_]+%.[%w_]+) = nil %-%-%-@type") do names[name:match("%.(.+)$")] = true end
  return names
end

local MODULES = {
  runbook = "init", ["runbook.error"] = "error", ["runbook.time"] = "time", ["runbook.async"] = "async",
  ["runbook.exec"] = "exec", ["runbook.http"] = "http", ["runbook.fs"] = "fs", ["runbook.yaml"] = "yaml",
  ["runbook.json"] = "json", ["runbook.secret"] = "secret", ["runbook.log"] = "log", ["runbook.hash"] = "hash",
  ["runbook.diff"] = "diff", ["runbook.net"] = "net", ["runbook.testing"] = "testing", ["runbook.journal"] = "journal",
}

-- internal entry points, documented as such, not for runbooks
local INTERNAL = {["runbook._finish"] = true, ["runbook.journal.open"] = true, ["runbook.fs.record"] = true}

function test_every_exported_function_has_a_stub()
  local missing = {}
  for mod, file in pairs(MODULES) do
    local names = declared(source .. "/types/runbook/" .. file .. ".lua")
    for k, v in pairs(require(mod)) do
      if type(v) == "function" and not INTERNAL[mod .. "." .. k] and not names[k] then
        missing[#missing + 1] = ("%s.%s (types/runbook/%s.lua)"):format(mod, k, file)
      end
    end
  end
  table.sort(missing)
  t.eq(missing, {}, "functions without a stub")
end

function test_no_stub_names_a_function_the_module_lacks()
  for mod, file in pairs(MODULES) do
    local m = require(mod)
    for name in pairs(declared(source .. "/types/runbook/" .. file .. ".lua")) do
      t.truthy(m[name] ~= nil, ("types/runbook/%s.lua declares %s, which %s does not have"):format(file, name, mod))
    end
  end
end

-- luacheck (Debian's lua-check) for the engine's embedded Lua, the
-- shipped runbooks, the simulated world and the Lua tests. `make lint`.
std = "lua54"
-- long only where a real tool's output or message is quoted whole
max_line_length = 240
codes = true

-- a test file's test_* functions are globals the harness finds
files["tests/lua/"] = {allow_defined_top = true, globals = {"RESULT"}, ignore = {"131"}}
files["tests/e2e/"] = {allow_defined_top = true, ignore = {"131"}}
-- unused arguments named as documented (callbacks, unused flags) are fine
unused_args = false
exclude_files = {"build/", "build-asan/", "build-*/"}
-- LuaLS stubs: declarations only (class tables with methods nobody calls)
files["types/"] = {ignore = {"241", "212"}}

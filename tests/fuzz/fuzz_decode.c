/* fuzz_decode.c: libFuzzer harness for runbook.yaml and runbook.json.
** Built twice (FUZZ_YAML / FUZZ_JSON). Each input is decoded; whatever
** decodes is encoded again and the encoding decoded once more, so that the
** encoder sees every shape the decoder can produce. Errors are expected
** outcomes; crashes, leaks and hangs are findings. yaml.edit is fuzzed with
** the first line of the input as a path. */
#include <stddef.h>
#include <stdint.h>

#include <lauxlib.h>
#include <lualib.h>

#include "bindings.h"

static const char *const SCRIPT =
#ifdef FUZZ_YAML
  "local y = require 'runbook.yaml'\n"
  "local s = ...\n"
  "local ok, docs = pcall(y.decode_all, s)\n"
  "if ok then\n"
  "  local ok2, out = pcall(y.encode_all, docs)\n"
  "  if ok2 then assert(pcall(y.decode_all, out)) end\n"
  "end\n"
  "local key, rest = s:match('^([%w_]+)\\n(.*)$')\n"
  "if key then pcall(y.edit, rest, {key}, 'v') pcall(y.edit, rest, {key, 1}, {a = 1}) end\n";
#else
  "local j = require 'runbook.json'\n"
  "local s = ...\n"
  "local ok, vs = pcall(j.decode_all, s)\n"
  "if ok then\n"
  "  local ok2, out = pcall(j.encode, vs, {pretty = true})\n"
  "  if ok2 then assert(j.decode(out)) end\n"
  "end\n"
  "pcall(j.decode, s)\n";
#endif

static lua_State *L;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (L == NULL) {
    L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, "runbook.yaml", luaopen_runbook_yaml, 0);
    luaL_requiref(L, "runbook.json", luaopen_runbook_json, 0);
    lua_settop(L, 0);
  }
  if (luaL_loadstring(L, SCRIPT) != LUA_OK) __builtin_trap();
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) __builtin_trap(); /* an assert failed: a round trip broke */
  lua_gc(L, LUA_GCCOLLECT);
  return 0;
}

/* fuzz_engine.c: libFuzzer harnesses that need the whole engine, or its
** CLI parser. Built once per target:
**   FUZZ_EDIT      yaml.edit: line 1 a path (a.b.2), line 2 a YAML value,
**                  the rest the document; an edit that succeeds must read
**                  back with exactly that value at that path;
**   FUZZ_JOURNAL   the journal reader (runbook.journal.read, then steps) on
**                  the input as a journal file;
**   FUZZ_SCENARIO  the simulated world's scenario loader on the input as a
**                  scenario file (the shipped sim/world.lua);
**   FUZZ_CLI       cli_parse on the input split at NUL bytes into argv,
**                  then the help text of the command it names.
** Errors are expected outcomes; crashes, leaks, hangs and a failed check
** are findings (docs/reliability.md). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>

#include "cli.h"
#include "engine.h"
#include "rb_modules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifdef FUZZ_CLI

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *copy = malloc(size + 1), *argv[64], err[512];
  int argc = 1;
  size_t i = 0;
  rb_cli cli;
  if (copy == NULL) return 0;
  memcpy(copy, data, size);
  copy[size] = '\0';
  argv[0] = "runbook";
  while (i <= size && argc < 63) { /* NUL-separated words */
    argv[argc++] = copy + i;
    i += strlen(copy + i) + 1;
  }
  argv[argc] = NULL;
  if (cli_parse(&cli, argc, argv, err, sizeof err) == 0) {
    if (cli_help(cli.cmd) == NULL) __builtin_trap();
    if (cli.cmd == RB_CMD_RUN && cli.file == NULL && !cli.help) __builtin_trap(); /* run needs its file */
  }
  else if (err[0] == '\0') __builtin_trap(); /* a refusal says why */
  free(copy);
  return 0;
}

#else

static const char *const SCRIPT =
#if defined(FUZZ_EDIT)
  "local y = require 'runbook.yaml'\n"
  "local function same(a, b)\n" /* deep, with NaN equal to itself (.nan is a YAML value) */
  "  if a ~= a and b ~= b then return true end\n"
  "  if type(a) ~= 'table' or type(b) ~= 'table' then return a == b end\n"
  "  for k, v in pairs(a) do if not same(v, b[k]) then return false end end\n"
  "  for k in pairs(b) do if a[k] == nil then return false end end\n"
  "  return true\n"
  "end\n"
  "local s = ...\n"
  "local ptext, vtext, doc = s:match('^([^\\n]*)\\n([^\\n]*)\\n(.*)$')\n"
  "if not ptext or ptext == '' then return end\n"
  "local path = {}\n"
  "for part in ptext:gmatch('[^.]+') do path[#path + 1] = math.tointeger(tonumber(part)) or part end\n"
  "local okv, value = pcall(y.decode, vtext)\n"
  "if not okv then return end\n"
  "local ok, out = pcall(y.edit, doc, path, value)\n"
  "if not ok then return end\n"
  "local got = y.decode(out)\n" /* must decode: raises (a finding) if not */
  "for _, k in ipairs(path) do got = got[k] end\n"
  "if value == nil then value = y.null end\n"
  "assert(same(got, value), 'the edited text does not hold the value at the path')\n";
#elif defined(FUZZ_JOURNAL)
  "local journal = require 'runbook.journal'\n"
  "local fs = require 'runbook.fs.core'\n"
  "local s, file = ...\n"
  "fs.write(file, s)\n"
  "local ok, recs = pcall(journal.read, file)\n"
  "if ok then journal.steps(recs) end\n";
#else /* FUZZ_SCENARIO */
  "local fs = require 'runbook.fs.core'\n"
  "local s, file, world = ...\n"
  "fs.write(file, s)\n"
  "local ok, err = pcall(world.load, file)\n"
  "if ok then world.snapshot() end\n";
#endif

static rb_engine *E;
static char file[64];

static void remove_file(void) {
  unlink(file);
}

static void setup(void) {
  int fd;
  E = engine_new(NULL, 1, rb_binding_modules);
  if (E == NULL) abort();
  snprintf(file, sizeof file, "/tmp/runbook-fuzz-XXXXXX");
  if ((fd = mkstemp(file)) < 0) abort();
  close(fd);
  atexit(remove_file);
#ifdef FUZZ_SCENARIO
  /* the world under test: the source tree's, loaded once */
  if (luaL_dofile(E->L, RB_SOURCE_DIR "/runbooks/sim/world.lua") != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(E->L, -1));
    abort();
  }
  lua_setglobal(E->L, "WORLD");
#endif
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L;
  if (E == NULL) setup();
  L = E->L;
  if (luaL_loadstring(L, SCRIPT) != LUA_OK) __builtin_trap();
  lua_pushlstring(L, (const char *)data, size);
  lua_pushstring(L, file);
  lua_getglobal(L, "WORLD");
  if (lua_pcall(L, 3, 0, 0) != LUA_OK) {
    fprintf(stderr, "finding: %s\n", luaL_tolstring(L, -1, NULL));
    __builtin_trap();
  }
  lua_gc(L, LUA_GCCOLLECT);
  return 0;
}

#endif

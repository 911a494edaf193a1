/* test_exec_alloc.c: exec.run when an allocation fails (#30 item 7). The
** exec binding's own C files (bindings/exec.c, exec_args.c, exec_io.c) are
** compiled into this test with malloc, calloc, realloc and strdup renamed
** to the counting versions below (tests/CMakeLists.txt; production code
** has no hook). Each allocation in turn is made to fail: exec.run must
** raise "not enough memory" and spawn nothing, or, past the last one, run
** the child with its whole environment and its working directory; never a
** child with a cut environment, never a crash or a leak (ASan build). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>

#include "helpers.h"

/* {====================================================== the hook */

static long fail_at = -1; /* the allocation to fail, counting from 1; -1 off */
static long calls;
static int fired;

static int should_fail(void) {
  if (fail_at < 0) return 0;
  if (++calls != fail_at) return 0;
  fired = 1;
  return 1;
}

void *failing_malloc(size_t n);
void *failing_calloc(size_t n, size_t size);
void *failing_realloc(void *p, size_t n);
char *failing_strdup(const char *s);

void *failing_malloc(size_t n) {
  return should_fail() ? NULL : malloc(n);
}

void *failing_calloc(size_t n, size_t size) {
  return should_fail() ? NULL : calloc(n, size);
}

void *failing_realloc(void *p, size_t n) {
  return should_fail() ? NULL : realloc(p, n);
}

char *failing_strdup(const char *s) {
  return should_fail() ? NULL : strdup(s);
}

/* alloc.fail_at(n): the n-th allocation of exec from now fails. */
static int l_fail_at(lua_State *L) {
  fail_at = (long)luaL_checkinteger(L, 1);
  calls = 0;
  fired = 0;
  return 0;
}

/* alloc.fired() -> whether the armed failure happened; disarms. */
static int l_fired(lua_State *L) {
  lua_pushboolean(L, fired);
  fail_at = -1;
  fired = 0;
  return 1;
}

static int luaopen_alloc(lua_State *L) {
  static const luaL_Reg f[] = { { "fail_at", l_fail_at }, { "fired", l_fired }, { NULL, NULL } };
  luaL_newlib(L, f);
  return 1;
}

/* }====================================================== */

/* Runs code as a runbook body with the bindings and the hook; returns the
** exit code and the global RESULT in *out (malloc'd) when a string. */
static int run_with_hook(const char *code, char **out) {
  static rb_cli cli;
  static luaL_Reg mods[32];
  char path[] = "/tmp/runbook-unit-XXXXXX.lua";
  int fd = mkstemps(path, 4), rc, n;
  rb_engine *e;
  memset(&cli, 0, sizeof cli);
  cli.verbosity = -1;
  for (n = 0; rb_binding_modules[n].name; n++) mods[n] = rb_binding_modules[n];
  mods[n].name = "alloc";
  mods[n].func = luaopen_alloc;
  mods[n + 1].name = NULL;
  mods[n + 1].func = NULL;
  assert_true(fd >= 0);
  assert_int_equal(write(fd, code, strlen(code)), (ssize_t)strlen(code));
  close(fd);
  e = engine_new(&cli, 0, mods);
  assert_non_null(e);
  rc = engine_run_file(e, path);
  lua_getglobal(e->L, "RESULT");
  *out = lua_isstring(e->L, -1) ? strdup(lua_tostring(e->L, -1)) : NULL;
  lua_pop(e->L, 1);
  engine_free(e);
  unlink(path);
  return rc;
}

/* Every allocation of an exec.run with opts.env, an inherited environment
** and a cwd fails in turn. RESULT: how many failed cleanly, then "|" and
** the child's output once nothing failed; or the first wrong outcome. */
static const char SWEEP[] = "local exec = require 'runbook.exec'\n"
                            "local alloc = require 'alloc'\n"
                            "local argv = {'sh', '-c', 'printf %s/%s/%s \"$FROM_OPTS\" \"$ALLOC_CANARY\" \"$(pwd)\"'}\n"
                            "local opts = {env = {FROM_OPTS = 'opts-value'}, cwd = '/'}\n"
                            "local failed = 0\n"
                            "for n = 1, 10000 do\n"
                            "  alloc.fail_at(n)\n"
                            "  local ok, r = pcall(exec.run, argv, opts)\n"
                            "  if not alloc.fired() then\n"
                            "    RESULT = failed .. '|' .. (ok and r.stdout or tostring(r))\n"
                            "    return\n"
                            "  end\n"
                            "  if ok or not tostring(r):find('not enough memory', 1, true) then\n"
                            "    RESULT = ('allocation %d: %s'):format(n, ok and 'ran: ' .. r.stdout or tostring(r))\n"
                            "    return\n"
                            "  end\n"
                            "  failed = failed + 1\n"
                            "end\n";

static void test_each_failed_allocation_is_a_clean_error(void **state) {
  char *got = NULL, *bar;
  long failed;
  (void)state;
  setenv("ALLOC_CANARY", "inherited", 1);
  assert_int_equal(run_with_hook(SWEEP, &got), 0);
  assert_non_null(got);
  bar = strchr(got, '|');
  if (bar == NULL) fail_msg("%s", got);
  assert_string_equal(bar + 1, "opts-value/inherited//");
  failed = strtol(got, NULL, 10);
  /* argv, the environment (opts.env and each inherited variable), cwd */
  if (failed < 10) fail_msg("only %ld allocations were made to fail: %s", failed, got);
  free(got);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_each_failed_allocation_is_a_clean_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

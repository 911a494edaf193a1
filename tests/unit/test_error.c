/* test_error.c: error objects (engine/error.c) and how the scheduler turns
** a task's non-table error value into one. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "helpers.h"

static const char *message_of(lua_State *L) {
  lua_getfield(L, -1, "message");
  return lua_tostring(L, -1);
}

/* lua_pushvfstring knows none of %zu, %lld, %.*s; rb_error_push must. */
static void test_error_push_formats_every_c_conversion(void **state) {
  lua_State *L = luaL_newstate();
  size_t z = 42;
  long long ll = -9000000000LL;
  (void)state;
  rb_error_push(L, "x", "%zu|%lld|%.*s|%5.2f", z, ll, 3, "abcdef", 3.14159);
  assert_string_equal(message_of(L), "42|-9000000000|abc| 3.14");
  lua_close(L);
}

/* A message longer than any fixed buffer arrives whole. */
static void test_error_push_keeps_a_long_message_whole(void **state) {
  lua_State *L = luaL_newstate();
  char *big = malloc(5001);
  (void)state;
  memset(big, 'a', 5000);
  big[5000] = '\0';
  rb_error_push(L, "x", "<%s>", big);
  assert_int_equal(strlen(message_of(L)), 5002);
  free(big);
  lua_close(L);
}

/* A task that dies with a value whose __tostring raises: the run fails
** with a message that names the value, and the engine does not crash (the
** conversion used to run on the dead thread, which the Lua API forbids). */
static void test_error_value_with_failing_tostring(void **state) {
  char *out = NULL;
  int code;
  (void)state;
  code = run_lua("local async = require 'runbook.async'\n"
                 "debug.setmetatable(true, {__tostring = function() error('boom') end})\n"
                 "local t = async.spawn(function() error(true) end)\n"
                 "local ok, err = pcall(t.wait, t)\n"
                 "debug.setmetatable(true, nil)\n"
                 "RESULT = tostring(ok) .. ' ' .. tostring(err.message)\n",
                 1, &out);
  assert_int_equal(code, 0);
  assert_non_null(out);
  assert_string_equal(out, "false (error object is a boolean value whose __tostring failed)");
  free(out);
  code = run_lua("local async = require 'runbook.async'\n"
                 "local u = io.stdout   -- a userdata: its __tostring is the file's\n"
                 "local t = async.spawn(function() error(u) end)\n"
                 "local ok, err = pcall(t.wait, t)\n"
                 "RESULT = tostring(ok) .. ' ' .. tostring(err.message)\n",
                 1, &out);
  assert_int_equal(code, 0);
  assert_non_null(out);
  assert_non_null(strstr(out, "false file ("));
  free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_error_push_formats_every_c_conversion),
    cmocka_unit_test(test_error_push_keeps_a_long_message_whole),
    cmocka_unit_test(test_error_value_with_failing_tostring),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

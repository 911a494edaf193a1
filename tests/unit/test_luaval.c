/* test_luaval.c: the conversion core shared by runbook.yaml and
** runbook.json (bindings/luaval.c), and the decoders driven from C. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "bindings.h"
#include "luaval.h"

static int setup_lua(void **state) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, "runbook.yaml", luaopen_runbook_yaml, 0);
  luaL_requiref(L, "runbook.json", luaopen_runbook_json, 0);
  lua_settop(L, 0);
  *state = L;
  return 0;
}

static int teardown_lua(void **state) {
  lua_close((lua_State *)*state);
  return 0;
}

/* Runs a chunk that returns one string; compares it. */
static void assert_chunk(lua_State *L, const char *code, const char *expect) {
  int rc = luaL_dostring(L, code);
  if (rc) fail_msg("chunk failed: %s", lua_tostring(L, -1));
  assert_string_equal(lua_tostring(L, -1), expect);
  lua_settop(L, 0);
}

static void test_is_sequence_rules(void **state) {
  lua_State *L = *state;
  lua_Integer n;
  assert_int_equal(luaL_dostring(L, "return {1, 2, 3}"), 0);
  assert_true(lv_is_sequence(L, -1, &n));
  assert_int_equal(n, 3);
  assert_int_equal(luaL_dostring(L, "return {[1] = 1, [3] = 3}"), 0); /* a hole */
  assert_false(lv_is_sequence(L, -1, &n));
  assert_int_equal(luaL_dostring(L, "return {}"), 0); /* empty, unmarked: a map */
  assert_false(lv_is_sequence(L, -1, &n));
  lv_set_shape(L, -1, LV_SHAPE_SEQ);
  assert_true(lv_is_sequence(L, -1, &n));
  assert_int_equal(n, 0);
  assert_int_equal(luaL_dostring(L, "return {1, 2}"), 0);
  lv_set_shape(L, -1, LV_SHAPE_MAP); /* marked map wins */
  assert_false(lv_is_sequence(L, -1, &n));
  lua_settop(L, 0);
}

/* Marks are metatables; a table with a metatable of its own keeps it and
** has its marks kept aside. */
static void test_marks_respect_a_foreign_metatable(void **state) {
  lua_State *L = *state;
  lua_Integer n;
  assert_int_equal(luaL_dostring(L, "return {}"), 0);
  lv_set_shape(L, 1, LV_SHAPE_SEQ);
  assert_true(lua_getmetatable(L, 1)); /* a plain table: marked by metatable */
  lua_pop(L, 1);
  assert_int_equal(lv_get_shape(L, 1), LV_SHAPE_SEQ);
  lv_set_shape(L, 1, LV_SHAPE_NONE);
  assert_false(lua_getmetatable(L, 1)); /* unmarked: the metatable goes */
  assert_int_equal(lv_get_shape(L, 1), LV_SHAPE_NONE);
  lua_settop(L, 0);

  assert_int_equal(luaL_dostring(L, "FOREIGN = {} return setmetatable({}, FOREIGN)"), 0);
  lv_set_shape(L, 1, LV_SHAPE_SEQ);
  assert_true(lv_is_sequence(L, 1, &n));
  assert_int_equal(n, 0);
  assert_true(lua_getmetatable(L, 1));
  lua_getglobal(L, "FOREIGN");
  assert_true(lua_rawequal(L, -1, -2)); /* still its own metatable */
  lua_settop(L, 1);
  assert_int_equal(luaL_dostring(L, "return {'b', 'a'}"), 0);
  lv_set_order(L, 1);
  assert_true(lv_push_order(L, 1));
  lua_rawgeti(L, -1, 1);
  assert_string_equal(lua_tostring(L, -1), "b");
  lua_settop(L, 0);
}

static void test_keys_follow_order_then_sorted(void **state) {
  lua_State *L = *state;
  int n;
  assert_int_equal(luaL_dostring(L, "return {zeta = 1, alpha = 2, mid = 3, [2] = 'x', [10] = 'y'}"), 0);
  assert_int_equal(luaL_dostring(L, "return {'mid', 'gone', 'zeta'}"), 0);
  lv_set_order(L, 1);
  n = lv_push_keys(L, 1);
  assert_int_equal(n, 5);
  /* recorded order first (skipping the absent 'gone'), then numbers, then strings */
  lua_rawgeti(L, -1, 1);
  assert_string_equal(lua_tostring(L, -1), "mid");
  lua_pop(L, 1);
  lua_rawgeti(L, -1, 2);
  assert_string_equal(lua_tostring(L, -1), "zeta");
  lua_pop(L, 1);
  lua_rawgeti(L, -1, 3);
  assert_int_equal(lua_tointeger(L, -1), 2);
  lua_pop(L, 1);
  lua_rawgeti(L, -1, 4);
  assert_int_equal(lua_tointeger(L, -1), 10);
  lua_pop(L, 1);
  lua_rawgeti(L, -1, 5);
  assert_string_equal(lua_tostring(L, -1), "alpha");
  lua_pop(L, 1);
  lua_settop(L, 0);
}

static void test_path_format(void **state) {
  lv_path p;
  char buf[64];
  (void)state;
  memset(&p, 0, sizeof p);
  assert_string_equal(lv_path_format(&p, buf, sizeof buf), "(root)");
  lv_path_push_key(&p, "nodes", 5);
  lv_path_push_index(&p, 2);
  lv_path_push_key(&p, "patches", 7);
  assert_string_equal(lv_path_format(&p, buf, sizeof buf), "nodes[2].patches");
  lv_path_pop(&p);
  assert_string_equal(lv_path_format(&p, buf, sizeof buf), "nodes[2]");
}

static void test_null_sentinel_is_shared(void **state) {
  lua_State *L = *state;
  assert_chunk(L,
               "local y, j = require 'runbook.yaml', require 'runbook.json'\n"
               "return tostring(y.null == j.null and y.decode('a: ~').a == j.null)",
               "true");
}

static void test_yaml_and_json_agree_on_a_document(void **state) {
  lua_State *L = *state;
  assert_chunk(L,
               "local y, j = require 'runbook.yaml', require 'runbook.json'\n"
               "local v = y.decode('b: [1, 2.5, true, null]\\na: {x: \"s\"}\\n')\n"
               "return j.encode(v)",
               "{\"b\":[1,2.5,true,null],\"a\":{\"x\":\"s\"}}");
  assert_chunk(L,
               "local y, j = require 'runbook.yaml', require 'runbook.json'\n"
               "return y.encode(j.decode('{\"z\":[],\"y\":{},\"x\":1.0}'))",
               "z: []\n'y': {}\nx: 1.0\n");
}

static void test_decode_errors_are_error_objects(void **state) {
  lua_State *L = *state;
  assert_chunk(L,
               "local y = require 'runbook.yaml'\n"
               "local ok, e = pcall(y.decode, 'a: b: c', {name = 'f.yaml'})\n"
               "return e.kind .. ' ' .. e.line .. ' ' .. e.column",
               "yaml 1 5");
  assert_chunk(L,
               "local j = require 'runbook.json'\n"
               "local ok, e = pcall(j.decode, '[1,\\n2,]', {name = 'f.json'})\n"
               "return tostring(e)",
               "json: f.json:2:3: unexpected token near ']'");
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_is_sequence_rules),
    cmocka_unit_test(test_marks_respect_a_foreign_metatable),
    cmocka_unit_test(test_keys_follow_order_then_sorted),
    cmocka_unit_test(test_path_format),
    cmocka_unit_test(test_null_sentinel_is_shared),
    cmocka_unit_test(test_yaml_and_json_agree_on_a_document),
    cmocka_unit_test(test_decode_errors_are_error_objects),
  };
  return cmocka_run_group_tests(tests, setup_lua, teardown_lua);
}

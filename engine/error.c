/*
** error.c: error objects (rb_api.h). A binding that could not do its job at all
** (spawn failed, connection refused, timeout, cancelled) raises a table
** {kind=, message=, ...} whose metatable prints it as "kind: message".
** Lua module runbook.error: new(kind, message [, fields]), is(err, kind).
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "engine.h"

static int error_tostring(lua_State *L) {
  const char *kind, *msg;
  lua_getfield(L, 1, "kind");
  lua_getfield(L, 1, "message");
  kind = lua_tostring(L, -2);
  msg = lua_tostring(L, -1);
  if (kind == NULL || strcmp(kind, "error") == 0) /* a plain Lua error: its message alone */
    lua_pushstring(L, msg ? msg : "(no message)");
  else lua_pushfstring(L, "%s: %s", kind, msg ? msg : "(no message)");
  return 1;
}

static void error_meta(lua_State *L) {
  if (luaL_newmetatable(L, RB_ERROR_MT)) {
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
  }
}

/* Pushes the text of vsnprintf(fmt, ap): every C conversion works (%zu,
** %lld, %.*s), which lua_pushvfstring does not offer. The buffer is Lua
** memory, so running out of it raises a memory error as lua_push* do. */
static void push_vformat(lua_State *L, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void push_vformat(lua_State *L, const char *fmt, va_list ap) {
  char small[256];
  va_list aq;
  int n;
  va_copy(aq, ap);
  n = vsnprintf(small, sizeof small, fmt, aq);
  va_end(aq);
  if (n < 0) lua_pushstring(L, fmt); /* an encoding error: the format itself */
  else if ((size_t)n < sizeof small) lua_pushlstring(L, small, (size_t)n);
  else {
    char *big = (char *)lua_newuserdatauv(L, (size_t)n + 1, 0);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    lua_pushlstring(L, big, (size_t)n);
    lua_remove(L, -2);
  }
}

static void push_error(lua_State *L, const char *kind, const char *fmt, va_list ap)
  __attribute__((format(printf, 3, 0)));
static void push_error(lua_State *L, const char *kind, const char *fmt, va_list ap) {
  lua_createtable(L, 0, 4);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  push_vformat(L, fmt, ap);
  lua_setfield(L, -2, "message");
  error_meta(L);
  lua_setmetatable(L, -2);
}

void rb_error_push(lua_State *L, const char *kind, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  push_error(L, kind, fmt, ap);
  va_end(ap);
}

int rb_error_raise(lua_State *L, const char *kind, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  push_error(L, kind, fmt, ap);
  va_end(ap);
  return lua_error(L);
}

void rb_error_setfield(lua_State *L, const char *field, const char *value) {
  lua_pushstring(L, value);
  lua_setfield(L, -2, field);
}

void rb_error_setint(lua_State *L, const char *field, lua_Integer value) {
  lua_pushinteger(L, value);
  lua_setfield(L, -2, field);
}

/* runbook.error.new(kind, message [, fields]) -> error object */
static int err_new(lua_State *L) {
  const char *kind = luaL_checkstring(L, 1);
  const char *msg = luaL_checkstring(L, 2);
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  rb_error_push(L, kind, "%s", msg);
  if (lua_istable(L, 3)) {
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_settable(L, -4);
    }
  }
  return 1;
}

/* runbook.error.is(value [, kind]) -> true when value is an error object
** (of that kind, when given). */
static int err_is(lua_State *L) {
  int ok = luaL_testudata(L, 1, RB_ERROR_MT) != NULL;
  if (lua_istable(L, 1) && lua_getmetatable(L, 1)) {
    luaL_getmetatable(L, RB_ERROR_MT);
    ok = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
  }
  if (ok && !lua_isnoneornil(L, 2)) {
    lua_getfield(L, 1, "kind");
    ok = lua_rawequal(L, -1, 2);
    lua_pop(L, 1);
  }
  lua_pushboolean(L, ok);
  return 1;
}

static const luaL_Reg error_funcs[] = { { "is", err_is }, { "new", err_new }, { NULL, NULL } };

int luaopen_runbook_error(lua_State *L) {
  error_meta(L);
  lua_pop(L, 1);
  luaL_newlib(L, error_funcs);
  return 1;
}

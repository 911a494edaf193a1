/*
** error.c: error objects. A binding that could not do its job at all
** (spawn failed, connection refused, timeout, cancelled) raises a table
** {kind=, message=, ...} whose metatable prints it as "kind: message".
** Lua module runbook.error: new(kind, message [, fields]), is(err, kind).
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "bindings.h"

static int error_tostring(lua_State *L) {
  const char *kind, *msg;
  lua_getfield(L, 1, "kind");
  lua_getfield(L, 1, "message");
  kind = lua_tostring(L, -2);
  msg = lua_tostring(L, -1);
  if (kind == NULL || strcmp(kind, "error") == 0)   /* a plain Lua error: its message alone */
    lua_pushstring(L, msg ? msg : "(no message)");
  else
    lua_pushfstring(L, "%s: %s", kind, msg ? msg : "(no message)");
  return 1;
}

static void error_meta(lua_State *L) {
  if (luaL_newmetatable(L, RB_ERROR_MT)) {
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
  }
}

void rb_error_push(lua_State *L, const char *kind, const char *fmt, ...) {
  va_list ap;
  lua_createtable(L, 0, 4);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_setfield(L, -2, "message");
  error_meta(L);
  lua_setmetatable(L, -2);
}

int rb_error_raise(lua_State *L, const char *kind, const char *fmt, ...) {
  va_list ap;
  char buf[1024];
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  rb_error_push(L, kind, "%s", buf);
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

int rb_buf_add(rb_buf *b, const void *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    char *np;
    while (cap < b->len + n + 1) cap *= 2;
    np = realloc(b->p, cap);
    if (np == NULL) return 0;
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
  return 1;
}

const char *rb_uv_strerror(int err, char *buf, size_t len) {
  snprintf(buf, len, "%s: %s", uv_err_name(err), uv_strerror(err));
  return buf;
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

static const luaL_Reg error_funcs[] = {
  {"is", err_is},
  {"new", err_new},
  {NULL, NULL}
};

int luaopen_runbook_error(lua_State *L) {
  error_meta(L);
  lua_pop(L, 1);
  luaL_newlib(L, error_funcs);
  return 1;
}

/*
** util.c: helpers the bindings share (bindings.h).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bindings.h"

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

lua_Integer rb_opt_integer(lua_State *L, int arg, const char *field, lua_Integer def) {
  lua_Integer v = def;
  int isint = 0;
  if (lua_getfield(L, arg, field) != LUA_TNIL) {
    /* a number only: "0644" would convert, as decimal 644 */
    if (lua_type(L, -1) == LUA_TNUMBER) v = lua_tointegerx(L, -1, &isint);
    if (!isint) luaL_argerror(L, arg, lua_pushfstring(L, "opts.%s must be an integer", field));
  }
  lua_pop(L, 1);
  return v;
}

int rb_gc_pause(lua_State *L, size_t len) {
  if (len < RB_GC_PAUSE_MIN || !lua_gc(L, LUA_GCISRUNNING)) return 0;
  lua_gc(L, LUA_GCSTOP);
  return 1;
}

void rb_gc_resume(lua_State *L, int paused) {
  if (paused) lua_gc(L, LUA_GCRESTART);
}

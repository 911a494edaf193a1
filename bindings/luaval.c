/*
** luaval.c: see luaval.h.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "luaval.h"

static const char SHAPE_KEY = 'h';
static const char ORDER_KEY = 'o';
static const char SEQ_MT_KEY = 's';
static const char MAP_MT_KEY = 'm';

#define MARK_FIELD "__runbook_shape"

void lv_push_null(lua_State *L) {
  lua_pushlightuserdata(L, NULL);
}

int lv_is_null(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL;
}

/* {====================================================== marks */

/* Pushes the weak-keyed registry table stored under 'key' (the fallback for
** tables that carry a metatable of their own). */
static void push_weak(lua_State *L, const char *key) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, key) != LUA_TNIL) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}

/* Pushes the shared mark metatable stored under 'key'. */
static void push_shared_mt(lua_State *L, const char *key, const char *shape) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, key) != LUA_TNIL) return;
  lua_pop(L, 1);
  lua_createtable(L, 0, 1);
  lua_pushstring(L, shape);
  lua_setfield(L, -2, MARK_FIELD);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}

static void push_mark_mt(lua_State *L, lv_shape shape) {
  if (shape == LV_SHAPE_SEQ) push_shared_mt(L, &SEQ_MT_KEY, "seq");
  else push_shared_mt(L, &MAP_MT_KEY, "map");
}

/* The shape the metatable at the top of the stack stands for (NONE when it
** is not a mark); pops it. Raw: a foreign metatable may have an __index. */
static lv_shape pop_mark(lua_State *L) {
  lv_shape s = LV_SHAPE_NONE;
  lua_pushliteral(L, MARK_FIELD);
  if (lua_rawget(L, -2) == LUA_TSTRING) s = lua_tostring(L, -1)[0] == 's' ? LV_SHAPE_SEQ : LV_SHAPE_MAP;
  lua_pop(L, 2);
  return s;
}

/* The shape idx's mark metatable stands for, or NONE. */
static lv_shape mt_shape(lua_State *L, int idx) {
  return lua_getmetatable(L, idx) ? pop_mark(L) : LV_SHAPE_NONE;
}

/* 1 when idx has no metatable or a mark: the mark may be (re)placed. */
static int markable(lua_State *L, int idx) {
  return !lua_getmetatable(L, idx) || pop_mark(L) != LV_SHAPE_NONE;
}

void lv_push_marks(lua_State *L) {
  push_mark_mt(L, LV_SHAPE_SEQ);
  push_mark_mt(L, LV_SHAPE_MAP);
}

void lv_new_order(lua_State *L, int n) {
  lua_createtable(L, n, 1);
  lua_pushliteral(L, "map");
  lua_setfield(L, -2, MARK_FIELD);
}

void lv_mark_shape(lua_State *L, int marks, int idx, lv_shape shape) {
  idx = lua_absindex(L, idx);
  lua_pushvalue(L, shape == LV_SHAPE_SEQ ? marks : marks + 1);
  lua_setmetatable(L, idx);
}

void lv_mark_order(lua_State *L, int idx) {
  lua_setmetatable(L, idx); /* idx is read before the list is popped */
}

void lv_set_shape(lua_State *L, int idx, lv_shape shape) {
  idx = lua_absindex(L, idx);
  if (markable(L, idx)) {
    if (shape == LV_SHAPE_NONE) lua_pushnil(L);
    else if (shape == LV_SHAPE_MAP && mt_shape(L, idx) == LV_SHAPE_MAP) return; /* keeps its order */
    else push_mark_mt(L, shape);
    lua_setmetatable(L, idx);
    if (shape != LV_SHAPE_NONE) return;
  }
  push_weak(L, &SHAPE_KEY);
  lua_pushvalue(L, idx);
  if (shape == LV_SHAPE_NONE) lua_pushnil(L);
  else lua_pushinteger(L, shape);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

lv_shape lv_get_shape(lua_State *L, int idx) {
  lv_shape s;
  idx = lua_absindex(L, idx);
  if ((s = mt_shape(L, idx)) != LV_SHAPE_NONE) return s;
  push_weak(L, &SHAPE_KEY);
  lua_pushvalue(L, idx);
  lua_rawget(L, -2);
  s = (lv_shape)lua_tointeger(L, -1);
  lua_pop(L, 2);
  return s;
}

void lv_set_order(lua_State *L, int idx) {
  lua_Integer i, n;
  int list;
  idx = lua_absindex(L, idx);
  list = lua_gettop(L);
  n = (lua_Integer)lua_rawlen(L, list);
  if (markable(L, idx)) {
    lv_new_order(L, (int)n);
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, list, i);
      lua_rawseti(L, -2, i);
    }
    lua_setmetatable(L, idx);
    lua_pop(L, 1);
    return;
  }
  push_weak(L, &ORDER_KEY);
  lua_pushvalue(L, idx);
  lua_pushvalue(L, list);
  lua_rawset(L, -3);
  lua_pop(L, 2);
}

int lv_push_order(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_getmetatable(L, idx)) {
    lua_pushliteral(L, MARK_FIELD);
    if (lua_rawget(L, -2) == LUA_TSTRING && lua_tostring(L, -1)[0] == 'm' && lua_rawlen(L, -2) > 0) {
      lua_pop(L, 1);
      return 1; /* the mark is the list */
    }
    lua_pop(L, 2);
  }
  push_weak(L, &ORDER_KEY);
  lua_pushvalue(L, idx);
  lua_rawget(L, -2);
  lua_remove(L, -2);
  return !lua_isnil(L, -1);
}

/* }====================================================== */

int lv_mark_fn(lua_State *L, lv_shape shape) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  else luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lv_set_shape(L, 1, shape);
  return 1;
}

int lv_is_sequence(lua_State *L, int idx, lua_Integer *n) {
  lv_shape shape = lv_get_shape(L, idx);
  lua_Integer count = 0, max = 0;
  idx = lua_absindex(L, idx);
  *n = 0;
  if (shape == LV_SHAPE_MAP) return 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) {
      lua_pop(L, 1);
      return 0;
    }
    if (lua_tointeger(L, -1) > max) max = lua_tointeger(L, -1);
    count++;
  }
  if (count != max) return 0; /* holes: not a sequence */
  *n = count;
  if (count == 0) return shape == LV_SHAPE_SEQ;
  return 1;
}

static int key_less(lua_State *L, int a, int b) {
  int ta = lua_type(L, a), tb = lua_type(L, b);
  if (ta != tb) return ta == LUA_TNUMBER; /* numbers before strings */
  if (ta == LUA_TNUMBER || ta == LUA_TSTRING) return lua_compare(L, a, b, LUA_OPLT);
  if (ta == LUA_TBOOLEAN) return !lua_toboolean(L, a) && lua_toboolean(L, b);
  return 0;
}

/* Insertion sort of list[from..to] by key_less: maps are small, and this
** keeps the C side free of Lua callbacks. */
static void sort_keys(lua_State *L, int list, int from, int to) {
  int i, j;
  for (i = from + 1; i <= to; i++) {
    lua_rawgeti(L, list, i);
    for (j = i - 1; j >= from; j--) {
      lua_rawgeti(L, list, j);
      if (!key_less(L, -2, -1)) {
        lua_pop(L, 1);
        break;
      }
      lua_rawseti(L, list, j + 1);
    }
    lua_rawseti(L, list, j + 1);
  }
}

int lv_push_keys(lua_State *L, int idx) {
  int n = 0, list, seen, ordered;
  idx = lua_absindex(L, idx);
  lua_newtable(L);
  list = lua_gettop(L);
  lua_newtable(L);
  seen = lua_gettop(L);
  if (lv_push_order(L, idx)) {
    lua_Integer i, m = (lua_Integer)lua_rawlen(L, -1);
    for (i = 1; i <= m; i++) {
      lua_rawgeti(L, -1, i);
      lua_pushvalue(L, -1);
      if (lua_rawget(L, idx) != LUA_TNIL) { /* still present */
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushboolean(L, 1);
        lua_rawset(L, seen);
        lua_rawseti(L, list, ++n);
      }
      else lua_pop(L, 2);
    }
  }
  lua_pop(L, 1);
  ordered = n;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, seen) == LUA_TNIL) {
      lua_pop(L, 1);
      lua_pushvalue(L, -1);
      lua_rawseti(L, list, ++n);
    }
    else lua_pop(L, 1);
  }
  sort_keys(L, list, ordered + 1, n);
  lua_pop(L, 1); /* seen */
  return n;
}

int lv_float_digits(double v) {
  char buf[40];
  int prec;
  for (prec = 1; prec < 17; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) break;
  }
  return prec;
}

void lv_path_push_key(lv_path *p, const char *k, size_t len) {
  if (p->depth < 64) {
    p->seg[p->depth].is_index = 0;
    p->seg[p->depth].key = k;
    p->seg[p->depth].keylen = len;
  }
  p->depth++;
}

void lv_path_push_index(lv_path *p, lua_Integer i) {
  if (p->depth < 64) {
    p->seg[p->depth].is_index = 1;
    p->seg[p->depth].index = i;
  }
  p->depth++;
}

void lv_path_pop(lv_path *p) {
  if (p->depth > 0) p->depth--;
}

const char *lv_path_format(const lv_path *p, char *buf, size_t len) {
  size_t n = 0;
  int i, shown = p->depth < 64 ? p->depth : 64;
  buf[0] = '\0';
  if (p->depth == 0) {
    snprintf(buf, len, "(root)");
    return buf;
  }
  for (i = 0; i < shown && n < len; i++) {
    int w;
    if (p->seg[i].is_index) w = snprintf(buf + n, len - n, "[%lld]", (long long)p->seg[i].index);
    else w = snprintf(buf + n, len - n, "%s%.*s", i ? "." : "", (int)p->seg[i].keylen, p->seg[i].key);
    if (w < 0) break;
    n += (size_t)w;
  }
  if (p->depth > 64 && n < len) snprintf(buf + n, len - n, "...");
  return buf;
}

static int same_value(lua_State *L, int a, int b, int depth, lv_path *where) {
  a = lua_absindex(L, a);
  b = lua_absindex(L, b);
  if (lua_type(L, a) != lua_type(L, b)) return 0;
  if (lua_type(L, a) == LUA_TNUMBER && lua_isinteger(L, a) != lua_isinteger(L, b)) return 0;
  if (lua_type(L, a) == LUA_TNUMBER && lua_tonumber(L, a) != lua_tonumber(L, a))
    return lua_tonumber(L, b) != lua_tonumber(L, b); /* .nan reads back as a NaN */
  if (lua_type(L, a) != LUA_TTABLE) return lua_rawequal(L, a, b);
  if (depth > 512 || !lua_checkstack(L, 6)) return 0;
  lua_pushnil(L);
  while (lua_next(L, a)) {
    int ok;
    lua_pushvalue(L, -2);
    lua_rawget(L, b);
    if (lua_type(L, -3) == LUA_TSTRING) lv_path_push_key(where, lua_tostring(L, -3), lua_rawlen(L, -3));
    else lv_path_push_index(where, lua_tointeger(L, -3));
    ok = same_value(L, -2, -1, depth + 1, where);
    if (ok) lv_path_pop(where);
    lua_pop(L, 2);
    if (!ok) {
      lua_pop(L, 1);
      return 0;
    }
  }
  lua_pushnil(L);
  while (lua_next(L, b)) { /* keys only b has */
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, a) == LUA_TNIL) {
      if (lua_type(L, -2) == LUA_TSTRING) lv_path_push_key(where, lua_tostring(L, -2), lua_rawlen(L, -2));
      else lv_path_push_index(where, lua_tointeger(L, -2));
      lua_pop(L, 2);
      return 0;
    }
    lua_pop(L, 1);
  }
  return 1;
}

int lv_same_value(lua_State *L, int a, int b, lv_path *where) {
  return same_value(L, a, b, 0, where);
}

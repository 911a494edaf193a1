/*
** lua_async.c: runbook.async.core, the C half of runbook.async: spawn,
** current and wait_any. The combinators (all, map, race, timeout,
** wait_until) are written in Lua on top of these (engine/lua/async.lua).
*/
#include <stdio.h>

#include "engine.h"

/* spawn(fn, ...) -> task */
static int async_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  rb_task_spawn(L, lua_gettop(L) - 1, "task");
  return 1;
}

/* spawn_named(name, fn, ...) -> task; the name shows in errors and events */
static int async_spawn_named(lua_State *L) {
  char buf[64];
  snprintf(buf, sizeof buf, "%s", luaL_checkstring(L, 1));
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_remove(L, 1);
  rb_task_spawn(L, lua_gettop(L) - 1, buf);
  return 1;
}

/* current() -> the running task, or nil outside tasks */
static int async_current(lua_State *L) {
  rb_task *t = rb_task_current(L);
  if (t == NULL || t->anchor == LUA_NOREF) lua_pushnil(L);
  else lua_rawgeti(L, LUA_REGISTRYINDEX, t->anchor);
  return 1;
}

/* deadline(task, secs): the task is stopped with a "timeout" error should
** it still be computing, without waiting, once secs have passed (a waiting
** task is the caller's to cancel: async.timeout's guard). */
static int async_deadline(lua_State *L) {
  rb_task *t = rb_task_check(L, 1);
  lua_Number secs = luaL_checknumber(L, 2);
  luaL_argcheck(L, secs >= 0 && secs < 1e9, 2, "seconds out of range");
  sched_set_deadline(t, (uint64_t)(secs * 1e6));
  return 0;
}

static int async_wait_any(lua_State *L) {
  return sched_wait_any(L);
}

static const luaL_Reg async_funcs[] = { { "current", async_current },   { "deadline", async_deadline },
                                        { "spawn", async_spawn },       { "spawn_named", async_spawn_named },
                                        { "wait_any", async_wait_any }, { NULL, NULL } };

int luaopen_runbook_async_core(lua_State *L) {
  luaL_newlib(L, async_funcs);
  return 1;
}

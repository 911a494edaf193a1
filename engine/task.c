/*
** task.c: the task userdata's Lua face: t:wait() (join), wait_any,
** t:cancel(), t:status(), t:result(), t:id(), and its metatable. The
** scheduler proper (queues, timers, resuming) is scheduler.c.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "scheduler.h"

/* {====================================================== task userdata */

static int task_gc(lua_State *L) {
  rb_task *t = (rb_task *)lua_touserdata(L, 1);
  /* a live task is anchored and cannot be collected; a done one owns only
  ** its waiters array, already freed by task_finish */
  free(t->waiters);
  t->waiters = NULL;
  return 0;
}

static int add_waiter(rb_task *t, rb_task *w) {
  if (t->nwaiters == t->capwaiters) {
    int cap = t->capwaiters ? t->capwaiters * 2 : 4;
    rb_task **nw = realloc(t->waiters, (size_t)cap * sizeof *nw);
    if (nw == NULL) return -1;
    t->waiters = nw;
    t->capwaiters = cap;
  }
  t->waiters[t->nwaiters++] = w;
  return 0;
}

/* Pushes the outcome of a done task: true, results... or false, err. */
static int task_push_outcome(lua_State *L, int idx) {
  rb_task *t = (rb_task *)lua_touserdata(L, idx);
  int n, i;
  lua_getiuservalue(L, idx, 1);
  if (t->status != RB_TASK_OK) {
    lua_pushboolean(L, 0);
    lua_getfield(L, -2, "err");
    return 2;
  }
  lua_getfield(L, -1, "n");
  n = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  luaL_checkstack(L, n + 1, "too many results");
  lua_pushboolean(L, 1);
  for (i = 1; i <= n; i++) lua_rawgeti(L, -1 - i, i);
  return n + 1;
}

static void join_cancel(rb_task *waiter, void *data) {
  rb_task *target = (rb_task *)data;
  int i;
  for (i = 0; i < target->nwaiters; i++) {
    if (target->waiters[i] == waiter) {
      target->waiters[i] = target->waiters[--target->nwaiters];
      return;
    }
  }
}

/* Continuation of wait(): after the wake, raise or return the outcome. */
static int task_wait_done(lua_State *L, int status, lua_KContext ctx) {
  int n;
  (void)status;
  (void)ctx;
  lua_settop(L, 1);
  n = task_push_outcome(L, 1);
  if (!lua_toboolean(L, -n)) return lua_error(L);
  return n - 1;
}

/* Continuation of wait(): stack is [task, resume values...]. */
static int task_wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  if (!lua_toboolean(L, 2)) { /* the waiter itself was cancelled */
    lua_pushvalue(L, 3);
    return lua_error(L);
  }
  return task_wait_done(L, 0, 0);
}

/* task:wait() -> results of the task, or raises its error. */
static int task_wait(lua_State *L) {
  rb_task *t = rb_task_check(L, 1);
  rb_task *self;
  lua_settop(L, 1);
  if (t->state == RB_TASK_DONE) return task_wait_done(L, 0, 0);
  self = rb_wait_begin(L); /* also refuses a nested coroutine */
  if (self == t) return luaL_error(L, "a task cannot wait for itself");
  if (add_waiter(t, self) != 0) return luaL_error(L, "not enough memory");
  /* a pending cancellation runs join_cancel (unregistering) and raises */
  return rb_await_k(L, join_cancel, t, 0, task_wait_k);
}

/* Removes 'self' from the waiter lists of every task in the list at 1. */
static void wait_any_unregister(lua_State *L, rb_task *self) {
  lua_Integer i, n = luaL_len(L, 1);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    join_cancel(self, lua_touserdata(L, -1));
    lua_pop(L, 1);
  }
}

/* Index of the first finished task in the list at 1, or 0. */
static lua_Integer first_done(lua_State *L) {
  lua_Integer i, n = luaL_len(L, 1);
  for (i = 1; i <= n; i++) {
    rb_task *t;
    lua_rawgeti(L, 1, i);
    t = (rb_task *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (t->state == RB_TASK_DONE) return i;
  }
  return 0;
}

static int wait_any_k(lua_State *L, int status, lua_KContext ctx) {
  rb_task *self = rb_task_current(L);
  (void)status;
  (void)ctx;
  wait_any_unregister(L, self);
  if (!lua_toboolean(L, 2)) {
    lua_pushvalue(L, 3);
    return lua_error(L);
  }
  lua_pushinteger(L, first_done(L));
  return 1;
}

/* wait_any(tasks) -> index of the first task in the list that finished
** (it never raises the task's error; read it with task:result()). */
int sched_wait_any(lua_State *L) {
  lua_Integer i, n, done;
  rb_task *self;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  n = luaL_len(L, 1);
  luaL_argcheck(L, n > 0, 1, "empty list of tasks");
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    if (luaL_testudata(L, -1, RB_TASK_MT) == NULL)
      return luaL_argerror(L, 1, lua_pushfstring(L, "item %d is not a task", (int)i));
    lua_pop(L, 1);
  }
  if ((done = first_done(L)) > 0) {
    lua_pushinteger(L, done);
    return 1;
  }
  self = rb_wait_begin(L);
  if (self->cancel_pending) {
    self->cancel_pending = 0;
    return rb_error_raise(L, "cancelled", "task %d (%s) was cancelled", self->id, self->name);
  }
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    if (add_waiter(lua_touserdata(L, -1), self) != 0) {
      lua_pop(L, 1);
      wait_any_unregister(L, self);
      return luaL_error(L, "not enough memory");
    }
    lua_pop(L, 1);
  }
  self->state = RB_TASK_WAITING;
  self->on_cancel = NULL; /* wait_any_k unregisters on every path */
  self->cancel_data = NULL;
  return lua_yieldk(L, 0, 0, wait_any_k);
}

/* task:cancel() -> true if the task was still running. */
static int task_lcancel(lua_State *L) {
  rb_task *t = rb_task_check(L, 1);
  lua_pushboolean(L, rb_task_cancel(t));
  return 1;
}

/* task:status() -> "ready"|"running"|"waiting"|"done"|"failed"|"cancelled" */
static int task_status(lua_State *L) {
  rb_task *t = rb_task_check(L, 1);
  static const char *const names[] = { "ready", "running", "waiting", "done" };
  if (t->state == RB_TASK_DONE && t->status == RB_TASK_FAILED) lua_pushliteral(L, "failed");
  else if (t->state == RB_TASK_DONE && t->status == RB_TASK_CANCELLED) lua_pushliteral(L, "cancelled");
  else lua_pushstring(L, names[t->state]);
  return 1;
}

/* task:result() -> ok, results... / false, err without waiting (done only) */
static int task_result(lua_State *L) {
  rb_task *t = rb_task_check(L, 1);
  if (t->state != RB_TASK_DONE) return luaL_error(L, "task %d has not finished", t->id);
  return task_push_outcome(L, 1);
}

static int task_tostring(lua_State *L) {
  rb_task *t = rb_task_check(L, 1);
  lua_pushfstring(L, "task %d (%s)", t->id, t->name);
  return 1;
}

static int task_id(lua_State *L) {
  lua_pushinteger(L, rb_task_check(L, 1)->id);
  return 1;
}

static const luaL_Reg task_meth[] = { { "cancel", task_lcancel }, { "id", task_id },     { "result", task_result },
                                      { "status", task_status },  { "wait", task_wait }, { NULL, NULL } };

static const luaL_Reg task_metameth[] = {
  { "__index", NULL }, { "__gc", task_gc }, { "__tostring", task_tostring }, { NULL, NULL }
};

void sched_task_meta(lua_State *L) {
  luaL_newmetatable(L, RB_TASK_MT);
  luaL_setfuncs(L, task_metameth, 0);
  luaL_newlibtable(L, task_meth);
  luaL_setfuncs(L, task_meth, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

/* }====================================================== */

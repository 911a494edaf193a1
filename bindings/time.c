/*
** time.c: runbook.time. now() is wall-clock epoch seconds, monotonic() is
** seconds since the run started; both follow the virtual clock in a
** dry-run. sleep(s) suspends the calling task.
*/
#include <math.h>
#include <time.h>

#include "bindings.h"
#include "scheduler.h"

static int time_now(lua_State *L) {
  lua_pushnumber(L, sched_wallclock(sched_get(L)));
  return 1;
}

static int time_monotonic(lua_State *L) {
  lua_pushnumber(L, (double)sched_now(sched_get(L)) / 1e6);
  return 1;
}

static int time_is_virtual(lua_State *L) {
  lua_pushboolean(L, sched_get(L)->virtual_clock);
  return 1;
}

static void sleep_fire(rb_timer *tm) {
  rb_task *t = (rb_task *)tm->data;
  lua_pushboolean(t->co, 1);
  rb_task_wake(t, 1);
}

static void sleep_cancel(rb_task *t, void *data) {
  (void)data;
  timer_stop(t->s, &t->sleep);
}

/* sleep(seconds): seconds >= 0, fractional allowed (microsecond grain). */
static int time_sleep(lua_State *L) {
  double secs = luaL_checknumber(L, 1);
  rb_task *t;
  luaL_argcheck(L, secs >= 0 && isfinite(secs), 1, "expected a finite number >= 0");
  t = rb_wait_begin(L);
  t->sleep.cb = sleep_fire;
  t->sleep.data = t;
  timer_start(t->s, &t->sleep, (uint64_t)llround(secs * 1e6));
  return rb_await(L, sleep_cancel, NULL);
}

/* iso(t) -> "2026-01-01T00:00:00Z" (UTC, whole seconds); t defaults to now() */
static int time_iso(lua_State *L) {
  double t = luaL_optnumber(L, 1, sched_wallclock(sched_get(L)));
  time_t secs = (time_t)floor(t);
  struct tm tm;
  char buf[32];
  if (gmtime_r(&secs, &tm) == NULL) return luaL_argerror(L, 1, "time out of range");
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  lua_pushstring(L, buf);
  return 1;
}

static const luaL_Reg time_funcs[] = {
  {"iso", time_iso},
  {"is_virtual", time_is_virtual},
  {"monotonic", time_monotonic},
  {"now", time_now},
  {"sleep", time_sleep},
  {NULL, NULL}
};

int luaopen_runbook_time(lua_State *L) {
  luaL_newlib(L, time_funcs);
  return 1;
}

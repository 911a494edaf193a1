/*
** time.c: runbook.time. now() is wall-clock epoch seconds, monotonic() is
** seconds since the run started; both follow the virtual clock in a
** dry-run. sleep(s) suspends the calling task.
*/
#include <math.h>
#include <time.h>

#include "bindings.h"

static int time_now(lua_State *L) {
  lua_pushnumber(L, rb_clock_wall(rb_sched_of(L)));
  return 1;
}

static int time_monotonic(lua_State *L) {
  lua_pushnumber(L, (double)rb_clock_now(rb_sched_of(L)) / 1e6);
  return 1;
}

static int time_is_virtual(lua_State *L) {
  lua_pushboolean(L, rb_clock_is_virtual(rb_sched_of(L)));
  return 1;
}

/* sleep(seconds): seconds >= 0, fractional allowed (microsecond grain). */
static int time_sleep(lua_State *L) {
  double secs = luaL_checknumber(L, 1);
  /* bounded: llround of a larger value overflows (31 years is no wait a runbook makes) */
  luaL_argcheck(L, secs >= 0 && secs <= RB_MAX_SECONDS, 1, "expected seconds from 0 to 1e9");
  return rb_sleep(L, (uint64_t)llround(secs * 1e6));
}

/* iso(t) -> "2026-01-01T00:00:00Z" (UTC, whole seconds); t defaults to now() */
static int time_iso(lua_State *L) {
  double t = luaL_optnumber(L, 1, rb_clock_wall(rb_sched_of(L)));
  time_t secs;
  struct tm tm;
  char buf[32];
  luaL_argcheck(L, isfinite(t), 1, "expected a finite number");
  secs = (time_t)floor(t);
  if (gmtime_r(&secs, &tm) == NULL) return luaL_argerror(L, 1, "time out of range");
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  lua_pushstring(L, buf);
  return 1;
}

static const luaL_Reg time_funcs[] = {
  { "iso", time_iso }, { "is_virtual", time_is_virtual }, { "monotonic", time_monotonic },
  { "now", time_now }, { "sleep", time_sleep },           { NULL, NULL }
};

int luaopen_runbook_time(lua_State *L) {
  luaL_newlib(L, time_funcs);
  return 1;
}

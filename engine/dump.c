/*
** dump.c: the SIGQUIT task dump (interrupt.c calls it): every live task,
** its state, how long it has waited, and where it is suspended.
*/
#include <stdio.h>

#include <lauxlib.h>

#include "scheduler.h"

static const char *state_name(rb_task_state st) {
  switch (st) {
    case RB_TASK_READY: return "ready";
    case RB_TASK_RUNNING: return "running";
    case RB_TASK_WAITING: return "waiting";
    default: return "done";
  }
}

/* The dump's body, run protected on L (the main state from the loop, the
** running task's thread from the interrupt hook). */
static int dump_tasks(lua_State *L) {
  rb_sched *s = (rb_sched *)lua_touserdata(L, 1);
  FILE *f = (FILE *)lua_touserdata(L, 2);
  rb_task *t;
  uint64_t now = sched_now(s);
  fprintf(f, "runbook: %d live task%s at %.3fs%s (SIGQUIT: the run goes on)\n", s->nlive, s->nlive == 1 ? "" : "s",
          (double)now / 1e6, s->virtual_clock ? " of virtual time" : "");
  for (t = s->live; t; t = t->live_next) {
    int running = t->state == RB_TASK_RUNNING && t->co == L;
    fprintf(f, "task %d (%s) %s", t->id, t->name, state_name(t->state));
    if (running) fprintf(f, " for %.3fs without waiting", (double)(uv_hrtime() - s->resume_real) / 1e9);
    if (t->state == RB_TASK_WAITING) {
      fprintf(f, " for %.3fs", (double)(now - t->wait_since) / 1e6);
      if (t->sleep.heap_idx >= 0 && t->sleep.due > now)
        fprintf(f, ", wakes in %.3fs", (double)(t->sleep.due - now) / 1e6);
      else if (t->sleep.heap_idx >= 0) fprintf(f, ", its sleep ended %.3fs ago", (double)(now - t->sleep.due) / 1e6);
      if (t->cancel_pending) fprintf(f, ", cancel pending");
    }
    fputc('\n', f);
    if (running || (t->started && lua_status(t->co) == LUA_YIELD)) {
      luaL_traceback(L, t->co, NULL, 0);
      fprintf(f, "  %s\n", lua_tostring(L, -1));
      lua_pop(L, 1);
    }
  }
  fflush(f);
  return 0;
}

/* Called for SIGQUIT (interrupt.c) from the loop, or from the hook on a
** task computing without waiting, with L its thread. Protected: a memory
** error while dumping must not unwind through libuv. Nothing once the
** state is gone (teardown). */
void sched_dump(rb_sched *s, FILE *f, lua_State *L) {
  int top;
  if (s->L == NULL) return;
  if (L == NULL) L = s->L;
  if (!lua_checkstack(L, 4)) return;
  top = lua_gettop(L);
  lua_pushcfunction(L, dump_tasks);
  lua_pushlightuserdata(L, s);
  lua_pushlightuserdata(L, f);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) fprintf(f, "runbook: the task dump failed: %s\n", lua_tostring(L, -1));
  lua_settop(L, top);
}

/*
** scheduler.c: the task scheduler. Tasks are Lua coroutines; waits are timers
** in our own heap or libuv I/O; the clock is real or virtual.
**
** Why our own timer heap rather than one uv_timer_t per sleep: in a dry-run
** the clock is virtual and jumps to the next deadline when nothing else can
** happen, which libuv timers (always on the real clock) cannot do. In real
** mode one uv_timer_t is armed for the nearest deadline.
*/
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>
#include <signal.h>
#include <stdio.h>

#include <lauxlib.h>

#include "scheduler.h"

static const char SCHED_KEY = 'S'; /* registry key: the rb_sched pointer */

/* {====================================================== tasks */

/* A task made ready inside uv_run must not wait for the next I/O event: a
** uv timer due when uv_run starts runs its callback *before* the poll
** (libuv 1.44, Debian 12), and a wake from there would leave the poll
** blocking with a runnable task (the test_http stall). */
static void ready_push(rb_sched *s, rb_task *t) {
  t->state = RB_TASK_READY;
  t->next_ready = NULL;
  if (s->ready_tail) s->ready_tail->next_ready = t;
  else s->ready_head = t;
  s->ready_tail = t;
  sched_poll_no_longer(s);
}

static rb_task *ready_pop(rb_sched *s) {
  rb_task *t = s->ready_head;
  if (t == NULL) return NULL;
  s->ready_head = t->next_ready;
  if (s->ready_head == NULL) s->ready_tail = NULL;
  t->next_ready = NULL;
  return t;
}

static void live_add(rb_sched *s, rb_task *t) {
  t->live_prev = NULL;
  t->live_next = s->live;
  if (s->live) s->live->live_prev = t;
  s->live = t;
  s->nlive++;
}

static void live_remove(rb_sched *s, rb_task *t) {
  if (t->live_prev) t->live_prev->live_next = t->live_next;
  else s->live = t->live_next;
  if (t->live_next) t->live_next->live_prev = t->live_prev;
  t->live_prev = t->live_next = NULL;
  s->nlive--;
}

rb_sched *sched_get(lua_State *L) {
  rb_sched *s;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &SCHED_KEY);
  s = (rb_sched *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return s;
}

/* {====================================================== rb_api.h */

rb_sched *rb_sched_of(lua_State *L) {
  return sched_get(L);
}
uv_loop_t *rb_sched_loop(rb_sched *s) {
  return s->loop;
}
uint64_t rb_clock_now(rb_sched *s) {
  return sched_now(s);
}
double rb_clock_wall(rb_sched *s) {
  return sched_wallclock(s);
}
int rb_clock_is_virtual(rb_sched *s) {
  return s->virtual_clock;
}
lua_State *rb_task_thread(rb_task *t) {
  return t->co;
}
rb_sched *rb_task_sched(rb_task *t) {
  return t->s;
}

/* }====================================================== */

rb_task *rb_task_check(lua_State *L, int idx) {
  return (rb_task *)luaL_checkudata(L, idx, RB_TASK_MT);
}

rb_task *rb_task_current(lua_State *L) {
  rb_sched *s = sched_get(L);
  return s ? s->current : NULL;
}

/*
** Creates a task that will call the function at stack index -(nargs+1) with
** the nargs values above it. Pops them all and pushes the task userdata.
** The task is anchored (registry ref) until it finishes. Uservalue 1 holds
** the outcome once done: {n=, ...results} or {err=, traceback=}.
*/
rb_task *rb_task_spawn(lua_State *L, int nargs, const char *name) {
  rb_sched *s = sched_get(L);
  rb_task *t;
  lua_State *co;
  int fidx = lua_gettop(L) - nargs;
  luaL_checktype(L, fidx, LUA_TFUNCTION);
  t = (rb_task *)lua_newuserdatauv(L, sizeof *t, 2);
  memset(t, 0, sizeof *t);
  t->anchor = LUA_NOREF;
  t->state = RB_TASK_DONE; /* 'done' until fully set up */
  luaL_setmetatable(L, RB_TASK_MT);
  co = lua_newthread(L);
  lua_setiuservalue(L, -2, 2); /* uservalue 2 keeps the thread alive */
  /* move function and args onto the coroutine */
  lua_rotate(L, fidx, 1); /* task to fidx; fn+args above it */
  lua_xmove(L, co, nargs + 1);
  t->s = s;
  t->co = co;
  t->id = ++s->next_id;
  t->nargs = nargs;
  t->deadline = s->current ? s->current->deadline : 0; /* a subtask keeps its parent's */
  rb_timer_init(&t->sleep, NULL, t);
  snprintf(t->name, sizeof t->name, "%s", name ? name : "task");
  lua_pushvalue(L, -1);
  t->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
  live_add(s, t);
  ready_push(s, t);
  return t;
}

/* Wakes every task waiting on 't' with (true, t) so that their wait()
** continuation reads the outcome from t. */
static void task_wake_waiters(rb_task *t) {
  int i;
  for (i = 0; i < t->nwaiters; i++) {
    rb_task *w = t->waiters[i];
    if (w->state != RB_TASK_WAITING) continue; /* already woken by another target (wait_any) */
    lua_pushboolean(w->co, 1);
    rb_task_wake(w, 1);
  }
  free(t->waiters);
  t->waiters = NULL;
  t->nwaiters = t->capwaiters = 0;
}

/*
** Records the outcome (on top of co: results or error) into uservalue 1 of
** the task, releases the anchor and wakes waiters. 'L' is the main state.
*/
static void task_finish(rb_sched *s, rb_task *t, rb_task_status st, int nres) {
  lua_State *L = s->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->anchor); /* task userdata */
  lua_createtable(L, st == RB_TASK_OK ? nres : 0, 2);
  if (st == RB_TASK_OK) {
    int i;
    luaL_checkstack(L, nres, "too many results");
    lua_xmove(t->co, L, nres);
    for (i = nres; i >= 1; i--) lua_rawseti(L, -(i + 1), i); /* top is result i */
    lua_pushinteger(L, nres);
    lua_setfield(L, -2, "n");
  }
  else {
    lua_xmove(t->co, L, 1); /* error value */
    lua_setfield(L, -2, "err");
  }
  lua_setiuservalue(L, -2, 1);
  lua_pop(L, 1);
  t->status = st;
  t->state = RB_TASK_DONE;
  t->on_cancel = NULL;
  rb_timer_stop(s, &t->sleep);
  live_remove(s, t);
  luaL_unref(L, LUA_REGISTRYINDEX, t->anchor);
  t->anchor = LUA_NOREF;
  task_wake_waiters(t);
}

/* Replaces the non-table error value at the top of L (the main state)
** with an error object whose message is the value's text. A __tostring
** that fails or returns a non-string gives a message naming the type. */
static int tostring_call(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}

static void error_from_value(lua_State *L) {
  const char *type = luaL_typename(L, -1);
  lua_pushcfunction(L, tostring_call);
  lua_insert(L, -2);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING)
    rb_error_push(L, "error", "%s", lua_tostring(L, -1));
  else rb_error_push(L, "error", "(error object is a %s value whose __tostring failed)", type);
  lua_remove(L, -2);
}

/* A task's own coroutine yielded plainly (coroutine.yield() outside a
** coroutine of its own): nothing would ever resume it but the scheduler,
** at once, so it could neither wait nor be cancelled, and re-queued at
** once it starved everything else. The task fails, named where it yielded. */
static void plain_yield_refused(rb_sched *s, rb_task *t) {
  lua_State *L = s->L;
  luaL_traceback(L, t->co, NULL, 0);
  rb_error_push(L, "error",
                "coroutine.yield() in task %d (%s): a task yields only by waiting "
                "(time.sleep, async.wait); yield inside a coroutine of its own (coroutine.wrap)",
                t->id, t->name);
  lua_insert(L, -2);
  lua_setfield(L, -2, "traceback");
  lua_resetthread(t->co);
  lua_settop(t->co, 0);
  lua_xmove(L, t->co, 1);
  task_finish(s, t, RB_TASK_FAILED, 1);
}

/* Resumes one ready task; only ever called from sched_run's loop. */
static void task_resume(rb_sched *s, rb_task *t) {
  lua_State *L = s->L;
  int nres = 0, st;
  s->current = t;
  t->state = RB_TASK_RUNNING;
  t->started = 1;
  t->on_cancel = NULL; /* the wait is over: its hook no longer applies */
  t->cancel_data = NULL;
  interrupt_enter(s, t);
  st = lua_resume(t->co, L, t->nargs, &nres);
  interrupt_leave(s, t);
  t->nargs = 0;
  s->current = NULL;
  if (st == LUA_YIELD && t->stopped) { /* past its deadline, its timeout error caught */
    rb_error_push(L, "timeout", "timed out: went on computing after its timeout error was raised (caught by a pcall?)");
    lua_resetthread(t->co);
    lua_settop(t->co, 0);
    lua_xmove(L, t->co, 1);
    task_finish(s, t, RB_TASK_FAILED, 1);
    return;
  }
  if (st == LUA_YIELD) { /* waiting, or a plain coroutine.yield() (still running) */
    if (t->state == RB_TASK_RUNNING) plain_yield_refused(s, t);
    else lua_pop(t->co, nres);
    return;
  }
  if (st == LUA_OK) {
    task_finish(s, t, RB_TASK_OK, lua_gettop(t->co));
    return;
  }
  /* error: turn it into an error object carrying the traceback of the
  ** failing frame, so that whoever waits sees where it happened */
  {
    rb_task_status status = RB_TASK_FAILED;
    if (lua_type(t->co, -1) != LUA_TTABLE) {
      /* no call may run on a thread dead with an error: the value moves
      ** to the main state, where its __tostring (if any) runs protected */
      lua_xmove(t->co, L, 1);
      error_from_value(L);
      lua_xmove(L, t->co, 1);
    }
    lua_getfield(t->co, -1, "traceback");
    if (lua_isnil(t->co, -1)) {
      luaL_traceback(L, t->co, NULL, 0);
      lua_xmove(L, t->co, 1);
      lua_setfield(t->co, -3, "traceback");
    }
    lua_pop(t->co, 1);
    lua_getfield(t->co, -1, "kind");
    if (lua_type(t->co, -1) == LUA_TSTRING && strcmp(lua_tostring(t->co, -1), "cancelled") == 0)
      status = RB_TASK_CANCELLED;
    lua_pop(t->co, 1);
    lua_xmove(t->co, L, 1); /* hold the error while resetting */
    lua_resetthread(t->co); /* runs pending to-be-closed variables */
    lua_settop(t->co, 0);
    lua_xmove(L, t->co, 1);
    task_finish(s, t, status, 1);
  }
}

/* The cancel hook stays set until the task is resumed: a task woken with
** its results but cancelled before it runs must still release its I/O
** (signal its child, free its transfer). */
void rb_task_wake(rb_task *t, int n) {
  assert(t->state == RB_TASK_WAITING);
  t->nargs = n;
  ready_push(t->s, t);
}

/* Calls and clears the task's cancel hook, if any. */
static void run_cancel_hook(rb_task *t) {
  rb_cancel_cb cb = t->on_cancel;
  void *data = t->cancel_data;
  t->on_cancel = NULL;
  t->cancel_data = NULL;
  if (cb) cb(t, data);
}

void rb_task_fail(rb_task *t, const char *kind, const char *msg) {
  lua_checkstack(t->co, 3);
  lua_pushboolean(t->co, 0);
  rb_error_push(t->co, kind, "%s", msg);
  rb_task_wake(t, 2);
}

/* Continuation of rb_await: the resume values start at ctx+1. */
static int await_k(lua_State *L, int status, lua_KContext ctx) {
  int base = (int)ctx;
  (void)status;
  if (!lua_toboolean(L, base + 1)) {
    lua_pushvalue(L, base + 2);
    return lua_error(L);
  }
  return lua_gettop(L) - (base + 1);
}

rb_task *rb_wait_begin(lua_State *L) {
  rb_sched *s = sched_get(L);
  rb_task *t = s ? s->current : NULL;
  if (t == NULL)
    luaL_error(L, "attempt to wait outside a task (waiting functions run only inside a runbook or a spawned task)");
  else if (t->co != L)
    luaL_error(L, "attempt to wait inside a nested coroutine (use runbook.async.spawn instead of coroutine.wrap)");
  return t;
}

int rb_await_k(lua_State *L, rb_cancel_cb on_cancel, void *data, lua_KContext ctx, lua_KFunction k) {
  rb_task *t = rb_wait_begin(L);
  if (t->cancel_pending) {
    /* cancelled while running: deliver now instead of waiting */
    t->cancel_pending = 0;
    if (on_cancel) on_cancel(t, data);
    return rb_error_raise(L, "cancelled", "task %d (%s) was cancelled", t->id, t->name);
  }
  t->state = RB_TASK_WAITING;
  t->wait_since = sched_now(t->s);
  t->on_cancel = on_cancel;
  t->cancel_data = data;
  return lua_yieldk(L, 0, ctx, k);
}

int rb_await(lua_State *L, rb_cancel_cb on_cancel, void *data) {
  /* the resume values will start right above the current top */
  return rb_await_k(L, on_cancel, data, (lua_KContext)lua_gettop(L), await_k);
}

static void sleep_fire(rb_timer *tm) {
  rb_task *t = (rb_task *)tm->data;
  lua_pushboolean(t->co, 1);
  rb_task_wake(t, 1);
}

static void sleep_cancel(rb_task *t, void *data) {
  (void)data;
  rb_timer_stop(t->s, &t->sleep);
}

int rb_sleep(lua_State *L, uint64_t delay_us) {
  rb_task *t = rb_wait_begin(L);
  t->sleep.cb = sleep_fire;
  t->sleep.data = t;
  rb_timer_start(t->s, &t->sleep, delay_us);
  return rb_await(L, sleep_cancel, NULL);
}

/*
** Requests cancellation. A waiting task has its I/O stopped through its
** cancel hook and is resumed with a "cancelled" error at its wait; a task not
** yet started never runs. Returns 1 if anything was cancelled.
*/
int rb_task_cancel(rb_task *t) {
  rb_sched *s = t->s;
  char msg[128];
  if (t->state == RB_TASK_DONE) return 0;
  snprintf(msg, sizeof msg, "task %d (%s) was cancelled", t->id, t->name);
  if (t->state == RB_TASK_RUNNING) { /* the caller itself: delivered at its next wait */
    t->cancel_pending = 1;
    return 1;
  }
  if (t->state == RB_TASK_READY && !t->started) {
    lua_settop(t->co, 0);
    rb_error_push(t->co, "cancelled", "%s", msg);
    /* unlink from the ready queue */
    {
      rb_task **pp = &s->ready_head, *prev = NULL;
      while (*pp && *pp != t) {
        prev = *pp;
        pp = &(*pp)->next_ready;
      }
      if (*pp) {
        *pp = t->next_ready;
        if (s->ready_tail == t) s->ready_tail = prev;
      }
    }
    task_finish(s, t, RB_TASK_CANCELLED, 1);
    return 1;
  }
  if (t->state == RB_TASK_READY) { /* woken, not yet resumed: replace its values */
    run_cancel_hook(t);
    lua_pop(t->co, t->nargs);
    lua_checkstack(t->co, 2);
    lua_pushboolean(t->co, 0);
    rb_error_push(t->co, "cancelled", "%s", msg);
    t->nargs = 2;
    return 1;
  }
  /* waiting */
  run_cancel_hook(t);
  rb_timer_stop(s, &t->sleep);
  rb_task_fail(t, "cancelled", msg);
  return 1;
}

void sched_cancel_all(rb_sched *s) {
  rb_task *t = s->live, *next;
  for (; t; t = next) {
    next = t->live_next;
    rb_task_cancel(t);
  }
}

/* }====================================================== */

/* {====================================================== loop */

/* The nearest deadline has come: hand control back to sched_run, which
** fires the due timers. uv_stop, because libuv 1.44 runs due uv timers
** before its poll: this timer is armed against the loop's cached time, so
** after a task has run for a while it is already due when uv_run starts,
** fires there, and the poll would then block on the other handles (a child
** process, a socket) with a sleeping task overdue. */
static void uvtimer_cb(uv_timer_t *h) {
  uv_stop(h->loop);
}

/* Before lua_close: no signal reaches the state after it. */
void sched_detach(rb_sched *s) {
  s->L = NULL;
}

static void run_ready(rb_sched *s) {
  rb_task *t;
  int n = 0;
  for (t = s->ready_head; t; t = t->next_ready) n++;
  while (n-- > 0 && (t = ready_pop(s)) != NULL) task_resume(s, t);
}

/*
** Runs until 'main' is done. Each round: resume ready tasks, fire due
** timers, then either block in libuv for I/O (and, in real mode, the next
** deadline) or, in virtual mode with no I/O pending, jump the clock to the
** next deadline. A round in which nothing can ever happen again is a
** deadlock: every live task is cancelled so that the run can end.
*/
void sched_run(rb_sched *s, rb_task *main) {
  int drained = 0;
  for (;;) {
    run_ready(s);
    if (main->state == RB_TASK_DONE && !drained) {
      drained = 1;
      sched_cancel_all(s); /* orphans do not outlive the runbook */
      continue;
    }
    if (s->nlive == 0 && s->ready_head == NULL) break;
    if (sched_timers_fire_due(s) > 0) continue;
    if (s->virtual_clock) {
      if (uv_loop_alive(s->loop)) {
        s->polling = 1;
        uv_run(s->loop, s->ready_head ? UV_RUN_NOWAIT : UV_RUN_ONCE);
        s->polling = 0;
      }
      else if (s->ready_head) continue; /* the clock moves only when nothing can run */
      else if (s->nheap > 0) s->vnow = s->heap[0]->due;
      else goto deadlock;
    }
    else {
      if (s->nheap > 0) {
        uint64_t now = sched_now(s), due = s->heap[0]->due;
        uint64_t ms = due > now ? (due - now + 999) / 1000 : 0;
        uv_timer_start(s->uvtimer, uvtimer_cb, ms, 0);
      }
      else uv_timer_stop(s->uvtimer);
      if (!uv_loop_alive(s->loop)) goto deadlock;
      s->polling = 1;
      uv_run(s->loop, s->ready_head ? UV_RUN_NOWAIT : UV_RUN_ONCE);
      s->polling = 0;
    }
    continue;
  deadlock:
    if (s->ready_head) continue;
    {
      /* nothing pending can wake the waiting tasks */
      rb_task *t = s->live, *next;
      for (; t; t = next) {
        next = t->live_next;
        if (t->state == RB_TASK_WAITING) {
          rb_timer_stop(s, &t->sleep);
          run_cancel_hook(t);
          rb_task_fail(t, "deadlock", "every task is waiting and nothing pending can wake them");
        }
      }
      if (s->ready_head == NULL) break;
    }
  }
  uv_timer_stop(s->uvtimer);
}

/* }====================================================== */

static void free_close_cb(uv_handle_t *h);

/* Returns 0 or a libuv error code; on error nothing is left in the loop. */
int sched_init(rb_sched *s, lua_State *L, uv_loop_t *loop, int virtual_clock) {
  struct timeval tv;
  int rc = UV_ENOMEM;
  memset(s, 0, sizeof *s);
  s->L = L;
  s->loop = loop;
  s->virtual_clock = virtual_clock;
  s->real_start = uv_hrtime();
  if (virtual_clock) s->epoch = 1767225600.0; /* 2026-01-01T00:00:00Z: same timeline every run */
  else {
    gettimeofday(&tv, NULL);
    s->epoch = (double)tv.tv_sec + tv.tv_usec / 1e6;
  }
  s->uvtimer = malloc(sizeof *s->uvtimer);
  if (!s->uvtimer) goto err_free;
  if ((rc = uv_timer_init(loop, s->uvtimer)) != 0) goto err_free;
  if ((rc = interrupt_init(s)) != 0) goto err_close; /* SIGINT, SIGTERM, SIGQUIT, busy loops: interrupt.c */
  lua_pushlightuserdata(L, s);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &SCHED_KEY);
  sched_task_meta(L);
  return 0;
err_close: /* handles in the loop: closed, their memory freed by the loop */
  sched_close(s);
  uv_run(loop, UV_RUN_NOWAIT);
  return rc;
err_free:
  free(s->uvtimer);
  s->uvtimer = NULL;
  return rc;
}

static void free_close_cb(uv_handle_t *h) {
  free(h);
}

/* Closes the scheduler's own handles; the loop must be run afterwards so
** that their close callbacks free them. */
void sched_close(rb_sched *s) {
  if (s->uvtimer) uv_close((uv_handle_t *)s->uvtimer, free_close_cb);
  interrupt_close(s);
  s->uvtimer = NULL;
  free(s->heap);
  s->heap = NULL;
  s->nheap = s->capheap = 0;
}

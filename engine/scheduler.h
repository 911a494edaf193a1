/*
** sched.h: tasks (Lua coroutines) and timers on one libuv loop, with a real
** or a virtual clock.
**
** A task is a userdata (RB_TASK_MT) that owns a coroutine. While the task is
** not finished the scheduler anchors it in the registry, so a suspended task
** is never collected; once finished it is an ordinary value that Lua frees
** when nothing refers to it.
**
** Waiting: a C function running in a task calls rb_await() as a tail call.
** The task stays suspended until somebody calls rb_task_wake*(), which pushes
** the resume values and queues the task; the scheduler resumes queued tasks
** only from its own loop, never from inside another task.
*/
#ifndef RUNBOOK_SCHED_H
#define RUNBOOK_SCHED_H

#include <stdint.h>
#include <lua.h>
#include <stdio.h>
#include <uv.h>

#define RB_TASK_MT "runbook.task"

typedef struct rb_sched rb_sched;
typedef struct rb_task rb_task;
typedef struct rb_timer rb_timer;

typedef void (*rb_timer_cb)(rb_timer *tm);
/* Called when a waiting task is cancelled: stop the I/O, never wake 't'. */
typedef void (*rb_cancel_cb)(rb_task *t, void *data);

struct rb_timer {
  uint64_t due;       /* clock microseconds */
  uint64_t seq;       /* FIFO order among equal deadlines */
  int heap_idx;       /* -1 when not armed */
  rb_timer_cb cb;
  void *data;
};

typedef enum { RB_TASK_READY, RB_TASK_RUNNING, RB_TASK_WAITING, RB_TASK_DONE } rb_task_state;
typedef enum { RB_TASK_OK, RB_TASK_FAILED, RB_TASK_CANCELLED } rb_task_status;

struct rb_task {
  rb_sched *s;
  int id;
  lua_State *co;
  int anchor;             /* registry ref to this userdata while not done */
  rb_task_state state;
  rb_task_status status;  /* valid when DONE */
  int nargs;              /* values pushed on co for the next resume */
  int started;
  int cancel_pending;     /* cancellation requested, not yet delivered */
  rb_cancel_cb on_cancel;
  void *cancel_data;
  rb_timer sleep;         /* used by time.sleep */
  rb_task *next_ready;
  rb_task *live_prev, *live_next;
  rb_task **waiters;      /* tasks blocked in wait() on this one */
  int nwaiters, capwaiters;
  uint64_t wait_since;    /* clock microseconds when the current wait began */
  char name[64];
};

struct rb_sched {
  lua_State *L;
  uv_loop_t *loop;
  int virtual_clock;
  uint64_t vnow;          /* virtual microseconds since start */
  uint64_t real_start;    /* uv_hrtime() at start, ns */
  double epoch;           /* wall clock seconds at clock 0 */
  rb_timer **heap;
  int nheap, capheap;
  uint64_t seq;
  uv_timer_t *uvtimer;    /* real mode: armed for the nearest deadline */
  rb_task *ready_head, *ready_tail;
  rb_task *live;          /* every task not yet done */
  int nlive;
  rb_task *current;
  int next_id;
  int interrupted;        /* SIGINT/SIGTERM seen */
  int polling;            /* inside sched_run's uv_run */
  uv_signal_t *sigint, *sigterm, *sigquit;
};

int  sched_init(rb_sched *s, lua_State *L, uv_loop_t *loop, int virtual_clock);
void sched_close(rb_sched *s);
rb_sched *sched_get(lua_State *L);

uint64_t sched_now(rb_sched *s);           /* clock microseconds */
/* Writes every live task, its state and where it is suspended (a Lua
** traceback) to f. Called on SIGQUIT; the run goes on. */
void sched_dump(rb_sched *s, FILE *f);
double   sched_wallclock(rb_sched *s);     /* epoch seconds, virtual in dry-run */

void timer_init(rb_timer *tm, rb_timer_cb cb, void *data);
void timer_start(rb_sched *s, rb_timer *tm, uint64_t delay_us);
void timer_stop(rb_sched *s, rb_timer *tm);

/* Creates a task running the function at the top of L's stack (popped) with
** nargs arguments below it... see sched.c; pushes the task userdata. */
rb_task *task_spawn(lua_State *L, int nargs, const char *name);
rb_task *task_check(lua_State *L, int idx);
rb_task *task_current(lua_State *L);
int  task_cancel(rb_task *t);

/* The running task; raises when called outside a task or in a nested
** coroutine. Call before setting up I/O that rb_await will wait on. */
rb_task *rb_wait_begin(lua_State *L);
/* Lua function wait_any(tasks) -> index of the first finished task. */
int sched_wait_any(lua_State *L);
/* Yield the running task until woken. Must be used as `return rb_await(...)`.
** Raises when called outside a task or inside a nested coroutine. */
int  rb_await(lua_State *L, rb_cancel_cb on_cancel, void *data);
/* Like rb_await, with the caller's own continuation: k(L, status, ctx)
** runs when the task is resumed; the resume values start at index base+1,
** where base is lua_gettop(L) at the call (passed back as... the caller
** stores it). */
int  rb_await_k(lua_State *L, rb_cancel_cb on_cancel, void *data, lua_KContext ctx, lua_KFunction k);
/* Wake a waiting task: the caller has pushed `n` values on t->co (true
** followed by results, or false followed by an error value). */
void rb_task_wake(rb_task *t, int n);
/* Convenience: push an error object of `kind` and wake with (false, err). */
void rb_task_fail(rb_task *t, const char *kind, const char *msg);

/* Runs until `main` finishes, then cancels what is left and drains it. */
void sched_run(rb_sched *s, rb_task *main);
/* Cancel every live task (SIGINT). */
void sched_cancel_all(rb_sched *s);

#endif

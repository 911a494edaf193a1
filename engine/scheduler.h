/*
** scheduler.h: the scheduler's internals (engine only; bindings see
** rb_api.h). Tasks (Lua coroutines) and timers on one libuv loop, with a real
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
#ifndef RUNBOOK_SCHEDULER_H
#define RUNBOOK_SCHEDULER_H

#include <stdint.h>
#include <lua.h>
#include <stdio.h>
#include <uv.h>

#include "rb_api.h"

#define RB_TASK_MT "runbook.task"

typedef enum { RB_TASK_READY, RB_TASK_RUNNING, RB_TASK_WAITING, RB_TASK_DONE } rb_task_state;
typedef enum { RB_TASK_OK, RB_TASK_FAILED, RB_TASK_CANCELLED } rb_task_status;

struct rb_task {
  rb_sched *s;
  int id;
  lua_State *co;
  int anchor; /* registry ref to this userdata while not done */
  rb_task_state state;
  rb_task_status status; /* valid when DONE */
  int nargs;             /* values pushed on co for the next resume */
  int started;
  int cancel_pending; /* cancellation requested, not yet delivered */
  uint64_t deadline;  /* clock microseconds it must finish by, 0 none (interrupt.c) */
  int timed_out;      /* its deadline's error was raised */
  int stopped;        /* ... and caught: the hook yielded it to be ended */
  rb_cancel_cb on_cancel;
  void *cancel_data;
  rb_timer sleep; /* used by time.sleep */
  rb_task *next_ready;
  rb_task *live_prev, *live_next;
  rb_task **waiters; /* tasks blocked in wait() on this one */
  int nwaiters, capwaiters;
  uint64_t wait_since; /* clock microseconds when the current wait began */
  char name[64];
};

struct rb_sched {
  lua_State *L;
  uv_loop_t *loop;
  int virtual_clock;
  uint64_t vnow;       /* virtual microseconds since start */
  uint64_t real_start; /* uv_hrtime() at start, ns */
  double epoch;        /* wall clock seconds at clock 0 */
  rb_timer **heap;
  int nheap, capheap;
  uint64_t seq;
  uv_timer_t *uvtimer; /* real mode: armed for the nearest deadline */
  rb_task *ready_head, *ready_tail;
  rb_task *live; /* every task not yet done */
  int nlive;
  rb_task *current;
  int next_id;
  int interrupted;      /* SIGINT/SIGTERM seen */
  int polling;          /* inside sched_run's uv_run */
  int quit_seen;        /* SIGQUITs already dumped */
  uv_async_t *sigwake;  /* SIGINT/SIGTERM wake the loop (interrupt.c) */
  int sig_seen;         /* signals already taken */
  uint64_t resume_real; /* uv_hrtime() when the current task was resumed */
};

int sched_init(rb_sched *s, lua_State *L, uv_loop_t *loop, int virtual_clock);
void sched_close(rb_sched *s);
rb_sched *sched_get(lua_State *L);

uint64_t sched_now(rb_sched *s); /* clock microseconds */
/* Writes every live task, its state and where it is suspended (a Lua
** traceback) to f, protected, on L (NULL: the main state). Called on
** SIGQUIT; the run goes on. */
void sched_dump(rb_sched *s, FILE *f, lua_State *L);
/* Cuts the scheduler from its Lua state before lua_close: signals
** arriving during teardown no longer reach it. */
void sched_detach(rb_sched *s);
double sched_wallclock(rb_sched *s); /* epoch seconds, virtual in dry-run */

/* Creates a task that will call the function at stack index -(nargs+1)
** with the nargs values above it; pops them all and pushes the task
** userdata. The task runs at the scheduler's next turn, never inside this
** call. */
rb_task *rb_task_spawn(lua_State *L, int nargs, const char *name);
rb_task *rb_task_check(lua_State *L, int idx);
rb_task *rb_task_current(lua_State *L);
int rb_task_cancel(rb_task *t);

/* Lua function wait_any(tasks) -> index of the first finished task
** (task.c). */
int sched_wait_any(lua_State *L);
/* Registers the task metatable RB_TASK_MT (task.c). */
void sched_task_meta(lua_State *L);

/* timer.c: fires every timer whose deadline has passed (returns how many);
** makes a uv_run in progress return without blocking. */
int sched_timers_fire_due(rb_sched *s);
void sched_poll_no_longer(rb_sched *s);

/* Runs until `main` finishes, then cancels what is left and drains it. */
void sched_run(rb_sched *s, rb_task *main);
/* Cancel every live task (SIGINT). */
void sched_cancel_all(rb_sched *s);

/* interrupt.c: own SIGINT/SIGTERM handlers, and the hook that stops a task
** running without waiting (signals, deadlines). */
int interrupt_init(rb_sched *s);
void interrupt_close(rb_sched *s);
void interrupt_take(rb_sched *s);
void interrupt_enter(rb_sched *s, rb_task *t);
void interrupt_leave(rb_sched *s, rb_task *t);
/* Sets t's deadline to 'us' clock microseconds from now, unless it has an
** earlier one. */
void sched_set_deadline(rb_task *t, uint64_t us);

#endif

/*
** rb_api.h: everything a binding may know of the engine.
**
** A binding (a .c file in bindings/) includes this header, Lua's and libuv's, and
** nothing else of the engine: the build puts only engine/include on a
** binding's include path, and tests/cli/test_boundary.sh checks that a
** binding reaching for an engine internal does not compile.
**
** What a binding gets:
**   - the loop and the clock of the run (real, or virtual in a dry-run);
**   - timers on that clock (rb_timer, embedded in the binding's own struct);
**   - the running task, opaque: wait for I/O with rb_await (as a tail
**     call), wake it with rb_task_wake from a libuv callback;
**   - error objects (kind + message), the one way a binding reports;
**   - the secret sink: a text registered here is masked in every output;
**   - a teardown hook, run once when the engine is freed, for state a
**     binding keeps per engine (a curl multi, live children).
**
** Ownership: the engine owns the loop, the scheduler and the tasks; a
** binding owns its requests and the handles in them. A task pointer is
** valid from rb_wait_begin until the task is woken or its cancel hook ran;
** after that the binding must not touch it.
*/
#ifndef RB_API_H
#define RB_API_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>
#include <lauxlib.h>
#include <uv.h>

/* {====================================================== scheduler */

typedef struct rb_sched rb_sched; /* opaque: one per engine */
typedef struct rb_task rb_task;   /* opaque: one per Lua task */
typedef struct rb_timer rb_timer;

typedef void (*rb_timer_cb)(rb_timer *tm);
/* Called when a waiting task is cancelled: stop the I/O, never wake 't'. */
typedef void (*rb_cancel_cb)(rb_task *t, void *data);

/* A timer on the run's clock. The fields are the scheduler's; a binding
** embeds the struct, sets it up with rb_timer_init and otherwise only
** starts and stops it. */
struct rb_timer {
  uint64_t due; /* clock microseconds */
  uint64_t seq; /* FIFO order among equal deadlines */
  int heap_idx; /* -1 when not armed */
  rb_timer_cb cb;
  void *data;
};

/* The scheduler of the engine that owns L, and its loop. */
rb_sched *rb_sched_of(lua_State *L);
uv_loop_t *rb_sched_loop(rb_sched *s);

/* The run's clock: microseconds since the start, wall-clock epoch seconds
** (both virtual in a dry-run), and whether the clock is virtual. */
uint64_t rb_clock_now(rb_sched *s);
double rb_clock_wall(rb_sched *s);
int rb_clock_is_virtual(rb_sched *s);

void rb_timer_init(rb_timer *tm, rb_timer_cb cb, void *data);
void rb_timer_start(rb_sched *s, rb_timer *tm, uint64_t delay_us);
void rb_timer_stop(rb_sched *s, rb_timer *tm); /* idempotent */

/* The running task; raises when called outside a task or in a nested
** coroutine. Call before setting up I/O that rb_await will wait on. */
rb_task *rb_wait_begin(lua_State *L);
/* Suspends the running task until it is woken. Use as `return rb_await(..)`:
** the woken values (true, results... or false, error) become the results
** of the Lua call, or its error. on_cancel runs if the task is cancelled. */
int rb_await(lua_State *L, rb_cancel_cb on_cancel, void *data);
/* Like rb_await with the caller's own continuation k(L, status, ctx). */
int rb_await_k(lua_State *L, rb_cancel_cb on_cancel, void *data, lua_KContext ctx, lua_KFunction k);
/* Suspends the running task for delay_us on the run's clock. Tail call. */
int rb_sleep(lua_State *L, uint64_t delay_us);

/* The thread of a waiting task: push the wake values here, then wake. */
lua_State *rb_task_thread(rb_task *t);
rb_sched *rb_task_sched(rb_task *t);
/* Wakes a waiting task with the n values pushed on its thread. */
void rb_task_wake(rb_task *t, int n);
/* Wakes a waiting task with (false, error{kind, message}). */
void rb_task_fail(rb_task *t, const char *kind, const char *msg);

/* }====================================================== */

/* {====================================================== errors */

#define RB_ERROR_MT "runbook.error"

/* Pushes an error object {kind=, message=} (metatable RB_ERROR_MT,
** printed by tostring as "kind: message"). The message is formatted with
** vsnprintf, so every printf conversion works. */
void rb_error_push(lua_State *L, const char *kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Pushes an error object and raises it. Never returns. */
int rb_error_raise(lua_State *L, const char *kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Sets t[field] on the error object at the top of the stack. */
void rb_error_setfield(lua_State *L, const char *field, const char *value);
void rb_error_setint(lua_State *L, const char *field, lua_Integer value);

/* }====================================================== */

/* {====================================================== files */

/* Reads the regular file at path whole (through links) and pushes it as a
** string; returns 1. A FIFO (refused without blocking in open()), a device,
** a directory or a socket, or more than max bytes: pushes an error object
** {kind="fs", message="<op> <path>: a FIFO, not a regular file", errno=,
** path=} and returns 0. The one reader of every whole-file input. */
int rb_read_file(lua_State *L, const char *op, const char *path, lua_Integer max);

/* }====================================================== */

/* {====================================================== secrets, teardown */

/* Registers a secret text: from now on every sink masks it. */
void rb_secret_register(lua_State *L, const char *s, size_t len);

/* Runs fn(ud) once when the engine is freed, after the Lua state is closed
** (no Lua call is possible) and before the loop is drained and closed, so
** that fn may close handles and stop children. Hooks run last registered
** first. Returns 0, or -1 when out of memory. */
int rb_on_teardown(lua_State *L, void (*fn)(void *ud), void *ud);

/* A child's process group to SIGKILL should the run exit at once (a
** second SIGINT/SIGTERM, from the signal handler itself): tracked from its
** spawn until its request is freed. Async-signal-safe to read. */
void rb_child_track(int pid);
void rb_child_untrack(int pid);

/* }====================================================== */

#endif

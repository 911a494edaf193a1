/*
** interrupt.c: SIGINT/SIGTERM, and stopping a task that runs Lua code
** without ever waiting (a busy loop).
**
** libuv delivers signals only when its loop turns, and a task spinning in
** Lua never lets it turn. So the engine installs its own handlers, as
** lua.c does: the handler only counts the signal, sets a one-shot hook on
** the thread inside lua_resume (lua_sethook is safe there: it sets a few
** fields) and wakes the loop with uv_async_send (async-signal-safe). The
** hook then runs in the VM's own context, where the interrupt is taken as
** if the loop had seen it: every task is cancelled and the running one gets
** its "cancelled" error at once instead of at its next wait.
**
** A task's deadline (async.timeout, a step's timeout, --step-timeout) is
** enforced the same way: while a task with a deadline runs, a one-shot
** ITIMER_REAL is armed for what is left of it; SIGALRM sets the hook, and
** the hook raises a "timeout" error if the deadline has passed. In a
** dry-run the clock is virtual, but time spent computing is real: it counts
** against the deadline.
**
** Out of reach: a task spinning inside a nested coroutine (the hook is set
** on the task's own thread; it fires when the coroutine yields back) and
** long C calls (a pattern match, string.rep). So a second signal exits
** at once from the handler itself, after SIGKILL to every child's process
** group (rb_child_track: a table the handler reads without a lock).
*/
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "scheduler.h"

/* count events only: a hook may yield from those */
#define HOOK_MASK LUA_MASKCOUNT

static volatile sig_atomic_t sig_count;  /* SIGINT/SIGTERM received */
static volatile sig_atomic_t sig_last;   /* the last one's number */
static volatile sig_atomic_t quit_count; /* SIGQUIT received */
static lua_State *volatile running;      /* the task thread inside lua_resume */
static uv_async_t *volatile wake;        /* makes a blocked uv_run return */
static rb_sched *owner;                  /* the one scheduler of the process */

static void stop_hook(lua_State *L, lua_Debug *ar);

/* The children's process groups, for the handler: a fixed table of
** sig_atomic_t, so that the handler reads it without a lock. A child past
** its size is still killed by exec's teardown hook, just not from here. */
#define TRACKED_MAX 1024
static volatile sig_atomic_t tracked[TRACKED_MAX];

void rb_child_track(int pid) {
  int i;
  for (i = 0; i < TRACKED_MAX; i++)
    if (tracked[i] == 0) {
      tracked[i] = pid;
      return;
    }
}

void rb_child_untrack(int pid) {
  int i;
  for (i = 0; i < TRACKED_MAX; i++)
    if (tracked[i] == pid) {
      tracked[i] = 0;
      return;
    }
}

/* From the handler: kill() is async-signal-safe, as are write and _exit. */
static void kill_tracked_and_exit(void) {
  int i;
  for (i = 0; i < TRACKED_MAX; i++)
    if (tracked[i] > 0) kill(-(pid_t)tracked[i], SIGKILL);
  _exit(3);
}

static void say(const char *msg) {
  if (write(2, msg, strlen(msg)) < 0) { /* nothing to do */
  }
}

static void on_signal(int signum) {
  int saved = errno;
  lua_State *co = running;
  sig_last = signum;
  sig_count = sig_count + 1;
  if (sig_count >= 2) {
    /* from the handler: the loop may never turn again (a busy loop in a
    ** nested coroutine, which the hook does not reach; a long C call) */
    say("runbook: interrupted again, exiting now\n");
    kill_tracked_and_exit();
  }
  if (co) lua_sethook(co, stop_hook, HOOK_MASK, 1);
  if (wake) uv_async_send(wake);
  errno = saved;
}

/* SIGQUIT: a dump of the tasks, from the hook when a task is computing
** (the loop would not turn to print it), else from the loop. */
static void on_quit(int signum) {
  int saved = errno;
  lua_State *co = running;
  (void)signum;
  quit_count = quit_count + 1;
  if (co) lua_sethook(co, stop_hook, HOOK_MASK, 1);
  if (wake) uv_async_send(wake);
  errno = saved;
}

/* The SIGQUITs not yet dumped, dumped once, on L. */
static void take_quit(rb_sched *s, lua_State *L) {
  int n = quit_count;
  if (n == s->quit_seen) return;
  s->quit_seen = n;
  sched_dump(s, stderr, L);
}

static void on_alarm(int signum) {
  int saved = errno;
  lua_State *co = running;
  (void)signum;
  if (co) lua_sethook(co, stop_hook, HOOK_MASK, 1);
  errno = saved;
}

static void arm(uint64_t us) {
  struct itimerval it;
  memset(&it, 0, sizeof it);
  it.it_value.tv_sec = (time_t)(us / 1000000);
  it.it_value.tv_usec = (suseconds_t)(us % 1000000);
  setitimer(ITIMER_REAL, &it, NULL); /* us == 0 disarms */
}

/* Takes the signal counted since the last call, in normal context: the
** first interrupts the run (every task cancelled). A second never gets
** here: on_signal exits from the handler itself. */
void interrupt_take(rb_sched *s) {
  int n = sig_count;
  if (n == s->sig_seen) return;
  s->sig_seen = n;
  s->interrupted = sig_last;
  if (s->L) sched_cancel_all(s); /* none left at teardown (sched_detach) */
}

/* The task's clock: in a dry-run, virtual time plus the real time this
** resume has been computing. */
static uint64_t task_clock(rb_sched *s) {
  if (!s->virtual_clock) return sched_now(s);
  return s->vnow + (uv_hrtime() - s->resume_real) / 1000;
}

static void stop_hook(lua_State *L, lua_Debug *ar) {
  rb_sched *s = owner;
  rb_task *t;
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  if (s == NULL) return;
  take_quit(s, L);
  interrupt_take(s);
  t = s->current;
  if (t == NULL || t->co != L) return;
  if (t->cancel_pending) {
    t->cancel_pending = 0;
    rb_error_raise(L, "cancelled", "task %d (%s) was cancelled", t->id, t->name);
  }
  if (t->deadline) {
    uint64_t now = task_clock(s);
    if (now >= t->deadline) {
      double ran = (double)(uv_hrtime() - s->resume_real) / 1e9;
      if (t->timed_out && lua_isyieldable(L)) {
        /* its code caught the error and went on: the scheduler ends it */
        t->stopped = 1;
        lua_yield(L, 0);
        return;
      }
      t->timed_out = 1;
      arm(100000); /* checked again should the error be caught and the loop go on */
      rb_error_raise(L, "timeout", "timed out: still computing after %.1fs without waiting (a busy loop?)", ran);
    }
    arm(t->deadline - now);
  }
}

static void async_cb(uv_async_t *h) {
  take_quit((rb_sched *)h->data, NULL);
  interrupt_take((rb_sched *)h->data);
}

/* Around each lua_resume of a task. */
void interrupt_enter(rb_sched *s, rb_task *t) {
  running = t->co;
  s->resume_real = uv_hrtime();
  if (t->deadline) {
    uint64_t now = sched_now(s);
    arm(t->deadline > now + 1000 ? t->deadline - now : 1000);
  }
  if (sig_count != s->sig_seen || quit_count != s->quit_seen) lua_sethook(t->co, stop_hook, HOOK_MASK, 1);
}

void interrupt_leave(rb_sched *s, rb_task *t) {
  (void)s;
  running = NULL;
  if (t->deadline) arm(0);
  lua_sethook(t->co, NULL, 0, 0); /* a hook set too late for this resume */
}

int interrupt_init(rb_sched *s) {
  struct sigaction sa;
  int rc;
  s->sigwake = malloc(sizeof *s->sigwake);
  if (s->sigwake == NULL) return UV_ENOMEM;
  if ((rc = uv_async_init(s->loop, s->sigwake, async_cb)) != 0) {
    free(s->sigwake);
    s->sigwake = NULL;
    return rc;
  }
  s->sigwake->data = s;
  uv_unref((uv_handle_t *)s->sigwake); /* signals alone do not keep the loop alive */
  owner = s;
  sig_count = 0;
  s->sig_seen = 0;
  quit_count = 0;
  s->quit_seen = 0;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGINT);
  sigaddset(&sa.sa_mask, SIGTERM);
  sigaddset(&sa.sa_mask, SIGALRM);
  sigaddset(&sa.sa_mask, SIGQUIT);
  sa.sa_flags = SA_RESTART;
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  sa.sa_handler = on_quit;
  sigaction(SIGQUIT, &sa, NULL);
  wake = s->sigwake;
  return 0;
}

static void free_close_cb(uv_handle_t *h) {
  free(h);
}

void interrupt_close(rb_sched *s) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  arm(0);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGALRM, &sa, NULL);
  sigaction(SIGQUIT, &sa, NULL);
  wake = NULL;
  running = NULL;
  if (owner == s) owner = NULL;
  if (s->sigwake) uv_close((uv_handle_t *)s->sigwake, free_close_cb);
  s->sigwake = NULL;
}

void sched_set_deadline(rb_task *t, uint64_t us) {
  uint64_t due = sched_now(t->s) + us;
  if (t->deadline == 0 || due < t->deadline) t->deadline = due;
}

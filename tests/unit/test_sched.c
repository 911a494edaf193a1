/* test_sched.c: the scheduler, timers and the clock (engine/scheduler.c, engine/timer.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include <lauxlib.h>
#include <lualib.h>

#include "scheduler.h"

static int fired_order[8], nfired;

static void record_cb(rb_timer *tm) {
  fired_order[nfired++] = (int)(intptr_t)tm->data;
}

static void test_timer_heap_orders_by_deadline_then_fifo(void **state) {
  rb_sched s;
  uv_loop_t loop;
  lua_State *L = luaL_newstate();
  rb_timer t[5];
  int i;
  (void)state;
  uv_loop_init(&loop);
  assert_int_equal(sched_init(&s, L, &loop, 1), 0);
  for (i = 0; i < 5; i++) rb_timer_init(&t[i], record_cb, (void *)(intptr_t)i);
  rb_timer_start(&s, &t[0], 300);
  rb_timer_start(&s, &t[1], 100);
  rb_timer_start(&s, &t[2], 200);
  rb_timer_start(&s, &t[3], 100); /* same deadline as t[1]: fires after it */
  rb_timer_start(&s, &t[4], 50);
  rb_timer_stop(&s, &t[2]); /* stopped timers never fire */
  nfired = 0;
  while (s.nheap > 0) {
    s.vnow = s.heap[0]->due;
    rb_timer *tm = s.heap[0];
    rb_timer_stop(&s, tm);
    tm->cb(tm);
  }
  assert_int_equal(nfired, 4);
  assert_int_equal(fired_order[0], 4);
  assert_int_equal(fired_order[1], 1);
  assert_int_equal(fired_order[2], 3);
  assert_int_equal(fired_order[3], 0);
  assert_int_equal(s.vnow, 300);
  sched_close(&s);
  lua_close(L);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_virtual_clock_jumps_to_deadlines(void **state) {
  char *out = NULL;
  (void)state;
  assert_int_equal(run_lua("local time = require 'runbook.time'\n"
                           "local t0 = time.now()\n"
                           "time.sleep(3600)\n"
                           "RESULT = string.format('%.0f %.0f', time.now() - t0, time.monotonic())\n",
                           1, &out),
                   0);
  assert_non_null(out);
  assert_string_equal(out, "3600 3600");
  free(out);
}

static void test_many_sleeping_tasks_in_virtual_time(void **state) {
  char *out = NULL;
  (void)state;
  assert_int_equal(
    run_lua("local async = require 'runbook.async'\n"
            "local time = require 'runbook.time'\n"
            "local done = 0\n"
            "local ts = {}\n"
            "for i = 1, 10000 do ts[i] = async.spawn(function() time.sleep(3600); done = done + 1 end) end\n"
            "for i = 1, #ts do ts[i]:wait() end\n"
            "RESULT = done .. ' ' .. time.monotonic()\n",
            1, &out),
    0);
  assert_non_null(out);
  assert_string_equal(out, "10000 3600.0");
  free(out);
}

static void test_wait_outside_task_raises(void **state) {
  rb_cli cli;
  rb_engine *e;
  (void)state;
  memset(&cli, 0, sizeof cli);
  e = engine_new(&cli, 1, rb_binding_modules);
  assert_non_null(e);
  assert_true(luaL_dostring(e->L, "require('runbook.time').sleep(1)"));
  assert_non_null(strstr(lua_tostring(e->L, -1), "outside a task"));
  lua_pop(e->L, 1);
  engine_free(e);
}

static void test_runtime_error_exits_1_and_syntax_error_2(void **state) {
  (void)state;
  assert_int_equal(run_lua("error('boom')", 1, NULL), 1);
  assert_int_equal(run_lua("local x = = 1", 1, NULL), 2);
  assert_int_equal(run_lua("return 0", 1, NULL), 0);
}

static void test_deadlock_is_detected(void **state) {
  char *out = NULL;
  (void)state;
  /* two tasks waiting on each other: nothing can wake them */
  assert_int_equal(run_lua("local async = require 'runbook.async'\n"
                           "local a, b\n"
                           "a = async.spawn(function() async.sleep(0); return b:wait() end)\n"
                           "b = async.spawn(function() async.sleep(0); return a:wait() end)\n"
                           "local ok, err = pcall(a.wait, a)\n"
                           "RESULT = tostring(err)\n",
                           1, &out),
                   0);
  assert_non_null(out);
  assert_non_null(strstr(out, "deadlock"));
  free(out);
}

/* An engine with one extra C module, for the tests below. */
static rb_engine *engine_with(const char *modname, lua_CFunction open, int virtual_clock) {
  rb_cli cli;
  rb_engine *e;
  memset(&cli, 0, sizeof cli);
  e = engine_new(&cli, virtual_clock, rb_binding_modules);
  assert_non_null(e);
  luaL_requiref(e->L, modname, open, 0);
  lua_pop(e->L, 1);
  return e;
}

/* Runs `code` as the main task to its end; it must succeed. Leaves the
** task's function on the stack (popped by the caller). */
static void run_main_ok(rb_engine *e, const char *code) {
  rb_task *t;
  assert_int_equal(luaL_loadstring(e->L, code), LUA_OK);
  t = rb_task_spawn(e->L, 0, "main");
  sched_run(&e->sched, t);
  assert_int_equal(t->status, RB_TASK_OK);
}

/* A waiting binding with a cancel hook, and a way to wake it by hand. */
static int hook_calls;

static void count_hook(rb_task *t, void *data) {
  (void)t;
  (void)data;
  hook_calls++;
}

static int l_wait_with_hook(lua_State *L) {
  return rb_await(L, count_hook, NULL);
}

static int l_wake(lua_State *L) {
  rb_task *t = rb_task_check(L, 1);
  lua_pushboolean(t->co, 1);
  lua_pushliteral(t->co, "woken");
  rb_task_wake(t, 2);
  return 0;
}

static int l_hook_calls(lua_State *L) {
  lua_pushinteger(L, hook_calls);
  return 1;
}

static int open_testhooks(lua_State *L) {
  static const luaL_Reg f[] = {
    { "hook_calls", l_hook_calls }, { "wait", l_wait_with_hook }, { "wake", l_wake }, { NULL, NULL }
  };
  luaL_newlib(L, f);
  return 1;
}

/* Regression: a task woken with its results but cancelled before it ran
** must still have its cancel hook called (the hook releases the I/O: a
** child process, a transfer); before the fix the hook was dropped at wake
** and the child was never signalled. */
static void test_cancel_of_a_woken_task_runs_its_hook(void **state) {
  rb_engine *e = engine_with("testhooks", open_testhooks, 1);
  (void)state;
  hook_calls = 0;
  run_main_ok(e, "local h = require 'testhooks'\n"
                 "local async = require 'runbook.async'\n"
                 "local t = async.spawn(h.wait)\n"
                 "async.sleep(0)                      -- t is now waiting in h.wait\n"
                 "h.wake(t)                           -- woken: READY, not yet resumed\n"
                 "t:cancel()\n"
                 "local ok, err = pcall(t.wait, t)\n"
                 "assert(not ok and err.kind == 'cancelled', tostring(err))\n"
                 "return h.hook_calls()\n");
  assert_int_equal(hook_calls, 1);
  lua_pop(e->L, 1);
  engine_free(e);
}

/* Regression: a uv timer that is due when uv_run starts runs before the
** poll (libuv 1.44); a task it wakes must run at once, not after the next
** unrelated event. Here that event is a 60 s keep-alive timer: before the
** fix the run waited for it. */
static uv_timer_t wake_timer, keepalive;
static int keepalive_fired;
static rb_task *to_wake;

static void wake_cb(uv_timer_t *h) {
  (void)h;
  lua_pushboolean(to_wake->co, 1);
  rb_task_wake(to_wake, 1);
}

static void keepalive_cb(uv_timer_t *h) {
  (void)h;
  keepalive_fired = 1;
}

static void closed_cb(uv_handle_t *h) {
  (void)h;
}

static int l_wait_for_uv_timer(lua_State *L) {
  rb_engine *e = engine_get(L);
  to_wake = rb_task_current(L);
  uv_timer_init(&e->loop, &wake_timer);
  uv_timer_start(&wake_timer, wake_cb, 0, 0); /* due before the next poll */
  uv_timer_init(&e->loop, &keepalive);
  uv_timer_start(&keepalive, keepalive_cb, 60000, 0);
  return rb_await(L, NULL, NULL);
}

static int open_uvwake(lua_State *L) {
  static const luaL_Reg f[] = { { "wait", l_wait_for_uv_timer }, { NULL, NULL } };
  luaL_newlib(L, f);
  return 1;
}

static void test_a_wake_from_a_uv_timer_is_served_before_the_poll_blocks(void **state) {
  rb_engine *e = engine_with("uvwake", open_uvwake, 0); /* the real clock: uv_run blocks */
  (void)state;
  keepalive_fired = 0;
  run_main_ok(e, "return require('uvwake').wait()");
  assert_int_equal(keepalive_fired, 0); /* woken without waiting for it */
  uv_timer_stop(&keepalive);
  uv_close((uv_handle_t *)&keepalive, closed_cb);
  uv_close((uv_handle_t *)&wake_timer, closed_cb);
  lua_pop(e->L, 1);
  engine_free(e);
}

/* Regression: the scheduler's libuv timer is armed against the loop's
** cached time; after a task has run for a while it is already due when
** uv_run starts, and libuv 1.44 fires it before the poll. The sleeping task
** must still wake at once, not after the next unrelated event (here the
** 60 s keep-alive; before the fix the run waited for it: the second
** test_http stall). */
static int l_keepalive(lua_State *L) {
  rb_engine *e = engine_get(L);
  uv_timer_init(&e->loop, &keepalive);
  uv_timer_start(&keepalive, keepalive_cb, 60000, 0);
  return 0;
}

static int open_keepalive(lua_State *L) {
  static const luaL_Reg f[] = { { "start", l_keepalive }, { NULL, NULL } };
  luaL_newlib(L, f);
  return 1;
}

static void test_a_sleep_ends_when_its_timer_is_due_before_the_poll(void **state) {
  rb_engine *e = engine_with("keepalive", open_keepalive, 0);
  (void)state;
  keepalive_fired = 0;
  run_main_ok(e, "require('keepalive').start()\n"
                 "local t0 = os.clock() while os.clock() - t0 < 0.05 do end   -- the loop's time goes stale\n"
                 "require('runbook.time').sleep(0.001)\n");
  assert_int_equal(keepalive_fired, 0);
  uv_timer_stop(&keepalive);
  uv_close((uv_handle_t *)&keepalive, closed_cb);
  lua_pop(e->L, 1);
  engine_free(e);
}

/* #30.3: a task made ready during a round waits for the next one, after
** timers and I/O. A chain of subtasks, each spawned and waited for in
** turn, kept the ready queue from ever emptying: the sleeper's timer never
** fired and the loop ran its full 300000 turns. */
static void test_tasks_made_ready_in_a_round_wait_for_the_next(void **state) {
  char *out = NULL;
  (void)state;
  assert_int_equal(run_lua("local async = require 'runbook.async'\n"
                           "local time = require 'runbook.time'\n"
                           "local woke = false\n"
                           "async.spawn(function() time.sleep(0.01); woke = true end)\n"
                           "local n = 0\n"
                           "while not woke and n < 300000 do async.spawn(function() end):wait(); n = n + 1 end\n"
                           "RESULT = tostring(woke)\n",
                           0, &out),
                   0);
  assert_non_null(out);
  assert_string_equal(out, "true");
  free(out);
}

/* #30.3: a plain coroutine.yield() in a task fails it, named, instead of
** re-queueing it at once (the run froze, and a cancel of it was lost). */
static void test_a_plain_yield_fails_the_task(void **state) {
  char *out = NULL;
  (void)state;
  assert_int_equal(run_lua("local async = require 'runbook.async'\n"
                           "local t = async.spawn(function() while true do coroutine.yield() end end)\n"
                           "local ok, err = pcall(t.wait, t)\n"
                           "local inner = coroutine.wrap(function() coroutine.yield(1); return 2 end)\n"
                           "RESULT = tostring(ok) .. ' ' .. t:status() .. ' ' .. "
                           "tostring(err.message:match('coroutine.yield%(%) in task')) .. ' '\n"
                           "  .. tostring(err.traceback:match('in function') ~= nil) .. ' ' .. inner() .. inner()\n",
                           0, &out),
                   0);
  assert_non_null(out);
  assert_string_equal(out, "false failed coroutine.yield() in task true 12");
  free(out);
}

/* #30.6: a SIGQUIT during teardown, after lua_close, while the loop runs
** to reap what the bindings closed: the dump must not touch the closed
** state (it did: the SIGQUIT handle was still started; ASan saw the
** use-after-free, a plain build printed a dump of a closed state). */
static uv_timer_t teardown_timer;

static void teardown_timer_cb(uv_timer_t *h) {
  uv_close((uv_handle_t *)h, NULL);
}

static void quit_in_teardown(void *ud) {
  rb_engine *e = (rb_engine *)ud;
  uv_timer_init(&e->loop, &teardown_timer); /* keeps the teardown's uv_run polling */
  uv_timer_start(&teardown_timer, teardown_timer_cb, 20, 0);
  raise(SIGQUIT);
}

static int l_quit_at_teardown(lua_State *L) {
  rb_on_teardown(L, quit_in_teardown, engine_get(L));
  return 0;
}

static int open_quitter(lua_State *L) {
  static const luaL_Reg f[] = { { "arm", l_quit_at_teardown }, { NULL, NULL } };
  luaL_newlib(L, f);
  return 1;
}

static void test_sigquit_during_teardown_does_not_reach_the_closed_state(void **state) {
  rb_engine *e = engine_with("quitter", open_quitter, 0);
  char path[] = "/tmp/test_sched_XXXXXX", got[4096];
  int fd = mkstemp(path), saved = dup(2);
  ssize_t n;
  (void)state;
  assert_true(fd >= 0 && saved >= 0);
  unlink(path);
  run_main_ok(e, "require('quitter').arm()");
  lua_pop(e->L, 1);
  dup2(fd, 2);
  engine_free(e);
  dup2(saved, 2);
  close(saved);
  n = pread(fd, got, sizeof got - 1, 0);
  close(fd);
  got[n > 0 ? n : 0] = '\0';
  assert_null(strstr(got, "live task"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_timer_heap_orders_by_deadline_then_fifo),
    cmocka_unit_test(test_virtual_clock_jumps_to_deadlines),
    cmocka_unit_test(test_many_sleeping_tasks_in_virtual_time),
    cmocka_unit_test(test_wait_outside_task_raises),
    cmocka_unit_test(test_runtime_error_exits_1_and_syntax_error_2),
    cmocka_unit_test(test_deadlock_is_detected),
    cmocka_unit_test(test_cancel_of_a_woken_task_runs_its_hook),
    cmocka_unit_test(test_a_wake_from_a_uv_timer_is_served_before_the_poll_blocks),
    cmocka_unit_test(test_a_sleep_ends_when_its_timer_is_due_before_the_poll),
    cmocka_unit_test(test_tasks_made_ready_in_a_round_wait_for_the_next),
    cmocka_unit_test(test_a_plain_yield_fails_the_task),
    cmocka_unit_test(test_sigquit_during_teardown_does_not_reach_the_closed_state),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
** exec.c: runbook.exec.core, child processes on libuv. No shell, ever:
** argv is a list, argv[1] is looked up on PATH.
**
** run(argv [, opts]) -> {code, signal, stdout, stderr, duration, timed_out,
**                        stdout_dropped, stderr_dropped}
**
** The child runs in its own process group (setsid), so a timeout or a
** cancellation signals the whole group: SIGTERM, then SIGKILL after
** `grace` seconds. Output is captured up to max_output bytes per stream
** (the rest is counted and dropped); on_line(line, stream, piece) sees every
** line as it arrives, called from the waiting task, never from a libuv
** callback, through lua_pcallk so that it may wait itself; a line longer
** than max_line comes in pieces (piece true).
**
** Ownership: one exec_req per call, malloc'd, owned by the engine's list of
** live children (exec_live, one per engine, freed by its teardown hook)
** until its three handles (process, stdout, stderr; stdin when given) have
** all been closed; the Lua side only borrows it while its task waits.
*/
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lauxlib.h>

#include "bindings.h"
#include "exec_priv.h"

/* The children of one engine that are not yet reaped. */
typedef struct exec_live {
  exec_req *head;
} exec_live;

static const char EXEC_LIVE_KEY = 'X';

/* {====================================================== lifetime */

static void req_free(exec_req *r) {
  if (r->pid > 0) rb_child_untrack(r->pid);
  if (r->next) r->next->pprev = r->pprev;
  if (r->pprev) *r->pprev = r->next;
  free(r->out.data);
  free(r->err.data);
  free(r->out.line);
  free(r->err.line);
  free(r->lines);
  free(r->dlv);
  free(r->stdin_data);
  free(r);
}

static void handle_closed(uv_handle_t *h) {
  exec_req *r = (exec_req *)h->data;
  free(h);
  if (--r->open_handles == 0) req_free(r);
}

static void close_handle(uv_handle_t *h) {
  if (h && !uv_is_closing(h)) uv_close(h, handle_closed);
}

/* Once the child has exited and both pipes hit EOF, nothing is pending:
** stop the timers and close every handle (freeing follows). */
static int req_complete(exec_req *r) {
  return r->exited && r->out.eof && r->err.eof;
}

static void req_release(exec_req *r) {
  rb_timer_stop(r->s, &r->timeout);
  rb_timer_stop(r->s, &r->kill);
  close_handle((uv_handle_t *)r->proc);
  close_handle((uv_handle_t *)r->pout);
  close_handle((uv_handle_t *)r->perr);
  close_handle((uv_handle_t *)r->pin);
}

/* Wakes the waiting task (once) so that its continuation looks at r. */
static void req_wake(exec_req *r) {
  if (r->task == NULL || r->woken) return;
  r->woken = 1;
  lua_checkstack(rb_task_thread(r->task), 1);
  lua_pushboolean(rb_task_thread(r->task), 1);
  rb_task_wake(r->task, 1);
}

static void req_progress(exec_req *r) {
  if (r->task == NULL) { /* orphaned: nobody reads */
    if (req_complete(r)) req_release(r);
    return;
  }
  if (req_complete(r) || r->lines_len > 0) req_wake(r);
}

/* }====================================================== */

/* {====================================================== signals and timers */

/* The group outlives the child when a grandchild runs on (`sleep 60 &`)
** and holds its stdout: it is signalled as long as the request waits for
** the pipes. The group's id cannot be reused while it has a member; the
** child's own pid only until it is reaped, hence no fallback after. */
static void signal_group(exec_req *r, int sig) {
  if (r->pid <= 0) return;
  if (kill(-r->pid, sig) == 0 || errno != ESRCH) return;
  if (!r->exited) kill(r->pid, sig);
}

/* After SIGKILL, once the child is gone, the pipes are not waited for: a
** process that left the group (setsid) may hold them for good. */
static void stop_waiting(exec_req *r) {
  if (!r->killed || !r->exited) return;
  exec_end_stream(r, r->pout, &r->out, 'o');
  exec_end_stream(r, r->perr, &r->err, 'e');
}

static void kill_fire(rb_timer *tm) {
  exec_req *r = (exec_req *)tm->data;
  signal_group(r, SIGKILL);
  r->killed = 1;
  stop_waiting(r);
  req_progress(r);
}

/* TERM to the group now, KILL after the grace period. */
static void terminate(exec_req *r) {
  signal_group(r, SIGTERM);
  rb_timer_start(r->s, &r->kill, (uint64_t)llround(r->grace * 1e6));
}

static void timeout_fire(rb_timer *tm) {
  exec_req *r = (exec_req *)tm->data;
  r->timed_out = 1;
  terminate(r);
}

/* The task was cancelled: stop the child. The task is woken with the
** cancellation by the scheduler; its continuation (exec_k) then waits for
** the child to be gone before it raises, so that cancelling a task means
** its children are reaped when it has unwound. Until then r stays owned by
** the task: mark it woken so that I/O does not wake it a second time. */
static void exec_cancel(rb_task *t, void *data) {
  exec_req *r = (exec_req *)data;
  (void)t;
  r->woken = 1;
  terminate(r);
}

/* Cancelled again while waiting for the child after a first cancel: give
** up waiting; the engine reaps the child (SIGKILL after the grace). */
static void exec_orphan(rb_task *t, void *data) {
  exec_req *r = (exec_req *)data;
  (void)t;
  r->task = NULL;
  if (req_complete(r)) req_release(r);
}

/* }====================================================== */

/* {====================================================== I/O callbacks */

static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  exec_req *r = (exec_req *)st->data;
  out_stream *o = st == (uv_stream_t *)r->pout ? &r->out : &r->err;
  char tag = o == &r->out ? 'o' : 'e';
  if (n > 0) exec_capture(r, o, tag, buf->base, (size_t)n);
  if (n < 0) exec_end_stream(r, (uv_pipe_t *)st, o, tag); /* UV_EOF or a read error: the stream is over */
  req_progress(r);
}

static void exit_cb(uv_process_t *p, int64_t status, int term_signal) {
  exec_req *r = (exec_req *)p->data;
  r->exited = 1;
  r->code = status;
  r->term_signal = term_signal;
  r->finished = rb_clock_now(r->s);
  /* the timers run on while a pipe is open: a grandchild holding it is
  ** timed out (and killed) as the child would be; req_release stops them */
  stop_waiting(r);
  req_progress(r);
}

static void stdin_closed(uv_shutdown_t *req, int status) {
  (void)req;
  (void)status;
}

static void stdin_written(uv_write_t *req, int status) {
  exec_req *r = (exec_req *)req->data;
  (void)status; /* EPIPE: the child did not read its input; not our failure */
  r->sreq.data = r;
  if (uv_shutdown(&r->sreq, (uv_stream_t *)r->pin, stdin_closed) != 0) close_handle((uv_handle_t *)r->pin);
}

/* }====================================================== */

/* {====================================================== Lua side */

static void push_stream(lua_State *L, out_stream *o) {
  lua_pushlstring(L, o->data ? o->data : "", o->len);
}

static void push_result(lua_State *L, exec_req *r) {
  lua_createtable(L, 0, 9);
  if (r->term_signal) lua_pushnil(L);
  else lua_pushinteger(L, (lua_Integer)r->code);
  lua_setfield(L, -2, "code");
  if (r->term_signal) lua_pushinteger(L, r->term_signal);
  else lua_pushnil(L);
  lua_setfield(L, -2, "signal");
  push_stream(L, &r->out);
  lua_setfield(L, -2, "stdout");
  push_stream(L, &r->err);
  lua_setfield(L, -2, "stderr");
  lua_pushinteger(L, (lua_Integer)r->out.dropped);
  lua_setfield(L, -2, "stdout_dropped");
  lua_pushinteger(L, (lua_Integer)r->err.dropped);
  lua_setfield(L, -2, "stderr_dropped");
  lua_pushnumber(L, (double)(r->finished - r->started) / 1e6);
  lua_setfield(L, -2, "duration");
  lua_pushboolean(L, r->timed_out);
  lua_setfield(L, -2, "timed_out");
  lua_pushinteger(L, r->pid);
  lua_setfield(L, -2, "pid");
}

/* Continuation after a cancellation: stack [argv, opts, on_line, args,
** false, cancel-err, resume values...]; raise once the child is gone. */
static int exec_cancelled_k(lua_State *L, int status, lua_KContext ctx) {
  exec_req *r = (exec_req *)ctx;
  (void)status;
  if (lua_gettop(L) >= 7 && !lua_toboolean(L, 7)) { /* cancelled again: orphaned by the hook */
    lua_pushvalue(L, 6);
    return lua_error(L);
  }
  lua_settop(L, 6);
  r->woken = 0;
  if (!req_complete(r)) return rb_await_k(L, exec_orphan, r, (lua_KContext)r, exec_cancelled_k);
  r->task = NULL;
  req_release(r);
  return lua_error(L); /* the cancellation error at the top */
}

static int exec_k(lua_State *L, int status, lua_KContext ctx);
static int deliver_lines(lua_State *L, exec_req *r);

/* on_line's message handler: the error, as an error object, carries the
** traceback of where on_line raised it (the task's own would show exec). */
static int on_line_msgh(lua_State *L) {
  if (!lua_istable(L, 1)) rb_error_push(L, "error", "%s", luaL_tolstring(L, 1, NULL));
  else lua_pushvalue(L, 1);
  if (lua_getfield(L, -1, "traceback") == LUA_TNIL) {
    lua_pop(L, 1);
    luaL_traceback(L, L, NULL, 1);
    lua_setfield(L, -2, "traceback");
  }
  else lua_pop(L, 1);
  return 1;
}

static int is_cancelled(lua_State *L, int idx) {
  int yes;
  if (!lua_istable(L, idx)) return 0;
  lua_getfield(L, idx, "kind");
  yes = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "cancelled") == 0;
  lua_pop(L, 1);
  return yes;
}

/* on_line raised (the error at the top). A cancellation (on_line was
** waiting) is handled as one of exec.run's own: the child is stopped and
** waited for, then it is raised. Another error stops the child and is
** raised at once. */
static int on_line_failed(lua_State *L, exec_req *r) {
  free(r->dlv);
  r->dlv = NULL;
  if (is_cancelled(L, -1)) {
    lua_replace(L, 5); /* [argv, opts, on_line, args, err] */
    lua_settop(L, 5);
    lua_pushboolean(L, 0);
    lua_insert(L, 5); /* [argv, opts, on_line, args, false, err] */
    terminate(r);
    return exec_cancelled_k(L, LUA_YIELD, (lua_KContext)r);
  }
  r->task = NULL; /* the child is stopped, the error raised */
  terminate(r);
  if (req_complete(r)) req_release(r);
  return lua_error(L);
}

/* Continuation of an on_line call that waited. */
static int on_line_k(lua_State *L, int status, lua_KContext ctx) {
  exec_req *r = (exec_req *)ctx;
  if (status != LUA_OK && status != LUA_YIELD) return on_line_failed(L, r);
  return deliver_lines(L, r);
}

/* Waits for more (lines, the exit, EOF), or returns the result. While
** lines are handed over, r->woken stays set: I/O arriving while on_line
** waits (time.sleep) must not wake the task out of that wait. */
static int exec_wait(lua_State *L, exec_req *r) {
  lua_settop(L, 4);
  if (r->lines_len > 0) {
    r->dlv = r->lines;
    r->dlv_len = r->lines_len;
    r->dlv_off = 0;
    r->lines = NULL;
    r->lines_len = r->lines_cap = 0;
    lua_pushcfunction(L, on_line_msgh); /* 5 */
    return deliver_lines(L, r);
  }
  r->woken = 0;
  if (!req_complete(r)) return rb_await_k(L, exec_cancel, r, (lua_KContext)r, exec_k);
  r->task = NULL;
  if (r->nomem) {
    rb_error_push(L, "exec", "not enough memory to keep the output of pid %d, which ran to its end", r->pid);
    req_release(r);
    return lua_error(L);
  }
  push_result(L, r);
  req_release(r);
  return 1;
}

/* Hands the lines in r->dlv to on_line, from this task: stack [argv, opts,
** on_line, args, msgh]. on_line may wait (lua_pcallk: on_line_k goes on). */
static int deliver_lines(lua_State *L, exec_req *r) {
  lua_settop(L, 5);
  while (r->dlv_off < r->dlv_len) {
    char tag = r->dlv[r->dlv_off];
    size_t n;
    memcpy(&n, r->dlv + r->dlv_off + 1, sizeof n);
    lua_pushvalue(L, 3);
    lua_pushlstring(L, r->dlv + r->dlv_off + 1 + sizeof n, n);
    lua_pushstring(L, tag == 'o' || tag == 'O' ? "stdout" : "stderr");
    lua_pushboolean(L, tag == 'O' || tag == 'E'); /* a piece: the line goes on */
    r->dlv_off += 1 + sizeof n + n;
    if (lua_pcallk(L, 3, 0, 5, (lua_KContext)r, on_line_k) != LUA_OK) return on_line_failed(L, r);
  }
  free(r->dlv);
  r->dlv = NULL;
  return exec_wait(L, r);
}

/* Continuation: stack is [argv, opts, on_line|nil, args, true|false, err?]. */
static int exec_k(lua_State *L, int status, lua_KContext ctx) {
  exec_req *r = (exec_req *)ctx;
  (void)status;
  if (!lua_toboolean(L, 5)) { /* cancelled: wait for the child, then raise */
    lua_settop(L, 6);
    return exec_cancelled_k(L, LUA_YIELD, ctx);
  }
  return exec_wait(L, r);
}

/* Raises a spawn error after closing what was opened. */
static int spawn_failed(lua_State *L, exec_req *r, spawn_args *a, int err) {
  char buf[128];
  const char *prog = a->argv[0] ? a->argv[0] : "?";
  struct stat st;
  /* the child's chdir fails with the same ENOENT as a missing program */
  if (a->cwd && (stat(a->cwd, &st) != 0 || !S_ISDIR(st.st_mode)))
    rb_error_push(L, "spawn", "cannot run '%s': its working directory %s: %s", prog, a->cwd,
                  rb_uv_strerror(stat(a->cwd, &st) != 0 ? uv_translate_sys_error(errno) : UV_ENOTDIR, buf, sizeof buf));
  else rb_error_push(L, "spawn", "cannot run '%s': %s", prog, rb_uv_strerror(err, buf, sizeof buf));
  rb_error_setfield(L, "program", prog);
  r->exited = r->out.eof = r->err.eof = 1;
  if (r->open_handles == 0) req_free(r);
  else req_release(r);
  return lua_error(L);
}

static uv_pipe_t *new_pipe(exec_req *r) {
  uv_pipe_t *p = malloc(sizeof *p);
  if (p == NULL) return NULL;
  if (uv_pipe_init(rb_sched_loop(r->s), p, 0) != 0) {
    free(p);
    return NULL;
  }
  p->data = r;
  r->open_handles++;
  return p;
}

/* At engine teardown: nothing outlives the run. Every child still running
** is killed; its request frees itself when its handles close, detached
** from the list, which goes now. */
static void exec_kill_all(void *ud) {
  exec_live *live = (exec_live *)ud;
  exec_req *r = live->head, *next;
  for (; r; r = next) {
    next = r->next;
    r->task = NULL;
    r->next = NULL;
    r->pprev = NULL;
    signal_group(r, SIGKILL);
    r->killed = 1;
    stop_waiting(r);
    req_progress(r);
  }
  free(live);
}

/* The engine's list of live children, created (with its teardown hook)
** on the first call. */
static exec_live *live_list(lua_State *L) {
  exec_live *live;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &EXEC_LIVE_KEY);
  live = (exec_live *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (live) return live;
  live = calloc(1, sizeof *live);
  if (live == NULL || rb_on_teardown(L, exec_kill_all, live) != 0) {
    free(live);
    luaL_error(L, "not enough memory");
  }
  lua_pushlightuserdata(L, live);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &EXEC_LIVE_KEY);
  return live;
}

/* The options of one call, checked before anything is allocated. */
typedef struct exec_opts {
  double timeout, max_output, grace, max_line;
  int want_lines;
} exec_opts;

static void check_opts(lua_State *L, exec_opts *op) {
  lua_getfield(L, 2, "on_line");
  if (!lua_isnil(L, 3) && !lua_isfunction(L, 3)) luaL_argerror(L, 2, "opts.on_line must be a function");
  op->want_lines = !lua_isnil(L, 3);
  op->timeout = exec_opt_number(L, 2, "timeout", 0);
  op->max_output = exec_opt_number(L, 2, "max_output", 16 * 1024 * 1024);
  op->grace = exec_opt_number(L, 2, "grace", 5);
  op->max_line = exec_opt_number(L, 2, "max_line", 1024 * 1024);
  luaL_argcheck(L, op->max_line >= 1 && op->max_line <= 1e9, 2, "opts.max_line must be 1 .. 1e9 bytes");
  luaL_argcheck(L, op->timeout >= 0 && op->timeout <= RB_MAX_SECONDS, 2,
                "opts.timeout must be 0 .. 1e9 seconds (0: none)");
  luaL_argcheck(L, op->max_output >= 0 && op->max_output <= 1e15, 2, "opts.max_output must be 0 .. 1e15 bytes");
  luaL_argcheck(L, op->grace >= 0 && op->grace <= RB_MAX_SECONDS, 2, "opts.grace must be 0 .. 1e9 seconds");
}

/* A request owned by the engine's list from here on; never raises. */
static exec_req *new_req(exec_live *live, rb_task *t, const exec_opts *op, char *stdin_data, size_t stdin_len) {
  exec_req *r = calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  r->s = rb_task_sched(t);
  r->grace = op->grace;
  r->out.max = r->err.max = (size_t)op->max_output;
  r->want_lines = op->want_lines;
  r->max_line = (size_t)op->max_line;
  r->stdin_data = stdin_data;
  r->stdin_len = stdin_len;
  rb_timer_init(&r->timeout, timeout_fire, r);
  rb_timer_init(&r->kill, kill_fire, r);
  r->next = live->head;
  if (live->head) live->head->pprev = &r->next;
  r->pprev = &live->head;
  live->head = r;
  return r;
}

/* Spawns the child with its pipes; 0 or a uv error (r then needs
** spawn_failed). */
static int spawn_child(exec_req *r, spawn_args *a) {
  uv_process_options_t o;
  uv_stdio_container_t stdio[3];
  int rc;
  r->proc = malloc(sizeof *r->proc);
  r->pout = new_pipe(r);
  r->perr = new_pipe(r);
  if (r->stdin_data) r->pin = new_pipe(r);
  if (!r->proc || !r->pout || !r->perr || (r->stdin_data && !r->pin)) {
    free(r->proc);
    r->proc = NULL;
    return UV_ENOMEM;
  }
  memset(&o, 0, sizeof o);
  stdio[0].flags = r->pin ? (UV_CREATE_PIPE | UV_READABLE_PIPE) : UV_IGNORE;
  stdio[0].data.stream = (uv_stream_t *)r->pin;
  stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[1].data.stream = (uv_stream_t *)r->pout;
  stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[2].data.stream = (uv_stream_t *)r->perr;
  o.exit_cb = exit_cb;
  o.file = a->argv[0];
  o.args = a->argv;
  o.env = a->env;
  o.cwd = a->cwd;
  o.stdio = stdio;
  o.stdio_count = 3;
  o.flags = UV_PROCESS_DETACHED; /* own session and process group: signal the group */
  r->proc->data = r;
  r->started = rb_clock_now(r->s);
  rc = uv_spawn(rb_sched_loop(r->s), r->proc, &o);
  r->open_handles++; /* uv_spawn inits the handle even when it fails */
  if (rc != 0) return rc;
  r->pid = r->proc->pid;
  rb_child_track(r->pid);
  return 0;
}

/* Starts reading the child's output, writing its stdin and the timeout. */
static void start_io(exec_req *r, double timeout) {
  /* a stream that cannot be read is over: waiting for it would never end */
  if (uv_read_start((uv_stream_t *)r->pout, exec_alloc_cb, read_cb) != 0) exec_end_stream(r, r->pout, &r->out, 'o');
  if (uv_read_start((uv_stream_t *)r->perr, exec_alloc_cb, read_cb) != 0) exec_end_stream(r, r->perr, &r->err, 'e');
  if (r->pin) {
    uv_buf_t b = uv_buf_init(r->stdin_data, (unsigned)r->stdin_len);
    r->wreq.data = r;
    if (uv_write(&r->wreq, (uv_stream_t *)r->pin, &b, 1, stdin_written) != 0) close_handle((uv_handle_t *)r->pin);
  }
  if (timeout > 0) rb_timer_start(r->s, &r->timeout, (uint64_t)llround(timeout * 1e6));
}

static int exec_run(lua_State *L) {
  exec_live *live;
  exec_opts op;
  rb_task *t;
  exec_req *r;
  spawn_args *a;
  char *stdin_data;
  size_t stdin_len;
  int rc;
  luaL_checktype(L, 1, LUA_TTABLE);
  if (lua_isnoneornil(L, 2)) {
    lua_settop(L, 1);
    lua_newtable(L);
  }
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  check_opts(L, &op); /* on_line at index 3 */
  live = live_list(L);
  t = rb_wait_begin(L);
  a = exec_new_args(L); /* index 4 */
  exec_build_argv(L, 1, a);
  exec_build_env(L, 2, a);
  if (lua_getfield(L, 2, "cwd") != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_argerror(L, 2, "opts.cwd must be a string");
    if ((a->cwd = strdup(lua_tostring(L, -1))) == NULL) luaL_error(L, "not enough memory");
  }
  lua_pop(L, 1);
  stdin_data = exec_copy_stdin(L, &stdin_len);
  /* nothing below raises before the request is owned by the engine list */
  r = new_req(live, t, &op, stdin_data, stdin_len);
  if (r == NULL) {
    free(stdin_data);
    return luaL_error(L, "not enough memory");
  }
  if ((rc = spawn_child(r, a)) != 0) return spawn_failed(L, r, a, rc);
  exec_free_args(a); /* the child has its copies */
  start_io(r, op.timeout);
  r->task = t;
  return rb_await_k(L, exec_cancel, r, (lua_KContext)r, exec_k);
}

static const luaL_Reg exec_funcs[] = { { "run", exec_run }, { NULL, NULL } };

int luaopen_runbook_exec_core(lua_State *L) {
  luaL_newlib(L, exec_funcs);
  return 1;
}

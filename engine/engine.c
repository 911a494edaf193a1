/*
** engine.c: builds the Lua state and the loop, registers the modules,
** finds runbooks, and runs a file as the main task.
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "embedded.h"
#include "engine.h"

static const char ENGINE_KEY = 'E';

struct rb_teardown {
  void (*fn)(void *ud);
  void *ud;
  struct rb_teardown *next;
};

rb_engine *engine_get(lua_State *L) {
  rb_engine *e;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &ENGINE_KEY);
  e = (rb_engine *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return e;
}

/* {====================================================== modules */

static const luaL_Reg engine_modules[] = { { "runbook.async.core", luaopen_runbook_async_core },
                                           { "runbook.error", luaopen_runbook_error },
                                           { "runbook.sys", luaopen_runbook_sys },
                                           { NULL, NULL } };

int rb_on_teardown(lua_State *L, void (*fn)(void *ud), void *ud) {
  rb_engine *e = engine_get(L);
  struct rb_teardown *h = malloc(sizeof *h);
  if (h == NULL) return -1;
  h->fn = fn;
  h->ud = ud;
  h->next = e->teardown;
  e->teardown = h;
  return 0;
}

void rb_secret_register(lua_State *L, const char *s, size_t len) {
  sink_add_secret(engine_get(L), s, len);
}

/* package.searchers entry for the embedded Lua modules. */
static int embedded_searcher(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const rb_embedded *m;
  for (m = rb_embedded_modules; m->module; m++) {
    if (strcmp(m->module, name) == 0) {
      if (luaL_loadbuffer(L, m->source, m->len, m->chunkname) != LUA_OK)
        return lua_error(L); /* a broken embedded module is a build bug */
      lua_pushstring(L, m->chunkname + 1);
      return 2;
    }
  }
  lua_pushfstring(L, "no embedded module '%s'", name);
  return 1;
}

static void preload(lua_State *L, const luaL_Reg *r) {
  for (; r && r->name; r++) {
    lua_pushcfunction(L, r->func);
    lua_setfield(L, -2, r->name);
  }
}

static void register_modules(lua_State *L, const luaL_Reg *modules) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  preload(L, engine_modules);
  preload(L, modules);
  lua_pop(L, 1);
  /* embedded Lua searched right after preload, before the file system */
  lua_getfield(L, -1, "searchers");
  lua_getglobal(L, "table");
  lua_getfield(L, -1, "insert");
  lua_pushvalue(L, -3);
  lua_pushinteger(L, 2);
  lua_pushcfunction(L, embedded_searcher);
  lua_call(L, 3, 0);
  lua_pop(L, 3);
}

/* Puts <dir>/?.lua and <dir>/lib/?.lua first on package.path so that a
** runbook finds its own libraries, then the shipped runbooks' lib/ so that
** an operator's own script can reuse them by name. */
static void add_script_dir(lua_State *L, const char *path) {
  char dir[PATH_MAX];
  const char *slash = strrchr(path, '/');
  const char *shipped = engine_runbooks_dir();
  size_t n = slash ? (size_t)(slash - path) : 1;
  if (n >= sizeof dir) return;
  if (slash) memcpy(dir, path, n);
  else dir[0] = '.';
  dir[n] = '\0';
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  if (shipped) lua_pushfstring(L, "%s/?.lua;%s/lib/?.lua;%s/lib/?.lua;%s", dir, dir, shipped, lua_tostring(L, -1));
  else lua_pushfstring(L, "%s/?.lua;%s/lib/?.lua;%s", dir, dir, lua_tostring(L, -1));
  lua_setfield(L, -3, "path");
  lua_pop(L, 2);
}

/* }====================================================== */

/* The bindings' teardown hooks (rb_on_teardown), each once, newest first:
** exec's kills the process group of every live child (SIGKILL), curl's
** ends its transfers. A second SIGINT/SIGTERM does not come here: it
** exits from the signal handler (interrupt.c), which kills the same groups. */
static void run_teardown(rb_engine *e) {
  while (e->teardown) {
    struct rb_teardown *h = e->teardown;
    e->teardown = h->next;
    h->fn(h->ud);
    free(h);
  }
}

/* The log holds the run's details: a log file others could read (one that
** existed before, with its own mode) is made 0600, saying so. */
static void log_private(int fd, const char *path) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077) == 0) return;
  if (fchmod(fd, st.st_mode & 0700) == 0)
    fprintf(stderr, "runbook: %s was readable by others (mode %04o); it is now %04o\n", path,
            (unsigned)(st.st_mode & 07777), (unsigned)(st.st_mode & 0700));
}

/* os.exit with the engine's one rule for exit codes: none or true is 0,
** false 1, else an integer 0..255. Lua's own would pass 300 to the shell,
** which reads it modulo 256 (44; 256 as success). */
static int os_exit_checked(lua_State *L) {
  if (!lua_isnoneornil(L, 1) && !lua_isboolean(L, 1)) {
    lua_Integer c = 0;
    int ok = lua_isnumber(L, 1) && lua_type(L, 1) == LUA_TNUMBER && lua_numbertointeger(lua_tonumber(L, 1), &c);
    luaL_argcheck(L, ok && c >= 0 && c <= 255, 1, "an exit code is an integer 0 to 255");
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 0);
  return 0;
}

static void checked_os_exit(lua_State *L) {
  lua_getglobal(L, "os");
  lua_getfield(L, -1, "exit");
  lua_pushcclosure(L, os_exit_checked, 1);
  lua_setfield(L, -2, "exit");
  lua_pop(L, 1);
}

/* One line on stderr for an engine that cannot start (its caller exits 1). */
static void start_failed(const char *what, int uv_err) {
  fprintf(stderr, "runbook: cannot set up %s: %s%s\n", what, uv_strerror(uv_err),
          uv_err == UV_EMFILE || uv_err == UV_ENFILE ? " (raise the limit: ulimit -n)" : "");
}

/* libuv aborts when it cannot make its signal pipe (uv_loop_init, under a
** tiny open-file limit): refused before, in words. 16 leaves room for the
** loop's own descriptors, a child's three pipes and a socket. */
#define MIN_FILES 16

static int enough_files(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= MIN_FILES) return 1;
  fprintf(stderr, "runbook: the open-file limit is %lu; runbook needs at least %d (raise it: ulimit -n %d)\n",
          (unsigned long)rl.rlim_cur, MIN_FILES, MIN_FILES);
  return 0;
}

rb_engine *engine_new(const rb_cli *cli, int virtual_clock, const luaL_Reg *modules) {
  rb_engine *e = calloc(1, sizeof *e);
  int rc;
  if (e == NULL) {
    start_failed("the engine", UV_ENOMEM);
    return NULL;
  }
  /* a child that exits without reading its stdin must not kill us: the
  ** write then fails with EPIPE, which exec handles */
  signal(SIGPIPE, SIG_IGN);
  /* past RLIMIT_FSIZE a write fails with EFBIG, handled as any write error,
  ** instead of the signal killing the run before it can say so */
  signal(SIGXFSZ, SIG_IGN);
  e->cli = cli;
  e->log_fd = -1;
  if (!enough_files()) {
    free(e);
    return NULL;
  }
  if ((rc = uv_loop_init(&e->loop)) != 0) {
    start_failed("the event loop", rc);
    goto err;
  }
  e->L = luaL_newstate();
  if (e->L == NULL) {
    start_failed("the Lua state", UV_ENOMEM);
    goto err_loop;
  }
  lua_gc(e->L, LUA_GCGEN, 0, 0); /* why: docs/benchmarks.md, "The collector" */
  luaL_openlibs(e->L);
  checked_os_exit(e->L);
  engine_capped_loaders(e->L);
  lua_pushlightuserdata(e->L, e);
  lua_rawsetp(e->L, LUA_REGISTRYINDEX, &ENGINE_KEY);
  register_modules(e->L, modules);
  if ((rc = sched_init(&e->sched, e->L, &e->loop, virtual_clock)) != 0) {
    start_failed("the scheduler", rc);
    goto err_lua;
  }
  if (cli && cli->log_file) {
    e->log_fd = open(cli->log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (e->log_fd < 0) {
      fprintf(stderr, "runbook: cannot open log file %s: %s\n", cli->log_file, strerror(errno));
      sched_close(&e->sched);
      uv_run(&e->loop, UV_RUN_DEFAULT);
      goto err_lua;
    }
    log_private(e->log_fd, cli->log_file);
  }
  return e;
err_lua:
  lua_close(e->L);
err_loop:
  uv_loop_close(&e->loop);
err:
  free(e);
  return NULL;
}

static void walk_close(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL); /* owners free in their own close cb or gc */
}

/*
** Teardown order matters: lua_close() runs every __gc, which closes the
** bindings' handles (their memory is freed in close callbacks); then the
** bindings' teardown hooks (rb_on_teardown); then the scheduler's handles; then the loop runs until every close callback has
** fired. Anything still open after that was leaked by a binding.
*/
void engine_free(rb_engine *e) {
  int i;
  if (e == NULL) return;
  sched_detach(&e->sched); /* a signal during teardown must not reach the closed state */
  lua_close(e->L);
  run_teardown(e);                  /* the bindings' teardown hooks: curl, live children */
  uv_run(&e->loop, UV_RUN_DEFAULT); /* their timers live in the scheduler: reap first */
  sched_close(&e->sched);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  uv_walk(&e->loop, walk_close, NULL);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  uv_loop_close(&e->loop);
  for (i = 0; i < e->nsecrets; i++) free(e->secrets[i].text);
  free(e->secrets);
  if (e->log_fd >= 0 && close(e->log_fd) != 0 && !e->log_errno) e->log_errno = errno;
  if (e->log_errno)
    fprintf(stderr, "runbook: the log file %s is incomplete: %s\n", e->cli->log_file, strerror(e->log_errno));
  free(e);
}

/* {====================================================== lookup */

static int is_file(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* A runbook named by a path that exists but is no regular file (a FIFO, a
** device, a directory) is found, so that loading it says what it is. */
static int exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *engine_runbooks_dir(void) {
  static char dir[PATH_MAX + 64];
  char exe[PATH_MAX];
  ssize_t n;
  char *slash;
  if (dir[0]) return dir;
  /* installed layout relative to the binary: <prefix>/bin/runbook ->
  ** <prefix>/share/runbook/runbooks (relocatable installs) */
  n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    if ((slash = strrchr(exe, '/')) != NULL) {
      *slash = '\0';
      snprintf(dir, sizeof dir, "%s/../share/runbook/runbooks", exe);
      if (is_dir(dir)) return dir;
    }
  }
  snprintf(dir, sizeof dir, "%s/runbooks", RUNBOOK_DATADIR);
  if (is_dir(dir)) return dir;
  snprintf(dir, sizeof dir, "%s/runbooks", RUNBOOK_SOURCE_DIR);
  if (is_dir(dir)) return dir;
  dir[0] = '\0';
  return NULL;
}

char *engine_find_runbook(const char *name) {
  char buf[PATH_MAX];
  const char *rp, *dir;
  if (exists(name)) return strdup(name);
  if (strchr(name, '/') != NULL) return NULL; /* an explicit path is taken literally */
  if ((rp = getenv("RUNBOOK_PATH")) != NULL) {
    const char *p = rp;
    while (*p) {
      const char *end = strchr(p, ':');
      size_t len = end ? (size_t)(end - p) : strlen(p);
      if (len > 0 && len < sizeof buf - 2 - strlen(name)) {
        snprintf(buf, sizeof buf, "%.*s/%s", (int)len, p, name);
        if (is_file(buf)) return strdup(buf);
      }
      if (!end) break;
      p = end + 1;
    }
  }
  if ((dir = engine_runbooks_dir()) != NULL) {
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    if (is_file(buf)) return strdup(buf);
  }
  return NULL;
}

/* }====================================================== */

/* {====================================================== running */

/* Prints a traceback: every line with -v; otherwise at most five frames
** of the runbook's own files (no C frames, no engine internals). */
static void print_traceback(rb_engine *e, const char *tb) {
  int shown = 0, verbose = e->cli && e->cli->verbosity > 0;
  const char *p = tb, *shipped = engine_runbooks_dir();
  size_t nshipped = shipped ? strlen(shipped) : 0;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    /* the shipped runbooks and their world are not the operator's code:
    ** their frames only with -v */
    int keep = verbose
               || (n > 1 && p[0] == '\t' && memmem(p, n, "[C]", 3) == NULL && memmem(p, n, "runbook/", 8) == NULL
                   && memmem(p, n, "(...tail calls...)", 18) == NULL
                   && (nshipped == 0 || memmem(p, n, shipped, nshipped) == NULL));
    if (keep && (verbose || shown < 5)) {
      sink_printf(e, 2, "  %.*s\n", (int)n - (p[0] == '\t'), p + (p[0] == '\t'));
      shown++;
    }
    p += n + (nl != NULL);
  }
}

/* Reports a task's error value (at the top of L) on stderr through the
** sink, so that secrets stay masked. */
static void report_error(rb_engine *e, const char *prefix) {
  lua_State *L = e->L;
  const char *msg, *tb = NULL;
  int bad_input = 0;
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "traceback");
    tb = lua_tostring(L, -1);
    lua_pop(L, 1); /* still referenced by the table */
  }
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "exit");
    bad_input = lua_tointeger(L, -1) == RB_EXIT_USAGE;
    lua_pop(L, 1);
  }
  msg = luaL_tolstring(L, -1, NULL);
  sink_printf(e, 2, "%s%s\n", prefix, msg);
  /* refusals before anything ran (usage, lock) and bad input (a scenario,
  ** a vars file: exit 2) are not bugs: no traceback */
  if (tb && !bad_input && strncmp(msg, "usage: ", 7) != 0 && strncmp(msg, "locked: ", 8) != 0) print_traceback(e, tb);
  lua_pop(L, 1);
}

/* Maps the error of the main task to an exit code. */
static int exit_code_for(rb_engine *e) {
  lua_State *L = e->L;
  int code = RB_EXIT_FAILED;
  if (!lua_istable(L, -1)) return code;
  lua_getfield(L, -1, "exit");
  if (lua_isinteger(L, -1)) code = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, -1, "kind");
  if (lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "cancelled") == 0 && e->sched.interrupted)
    code = RB_EXIT_INTERRUPTED;
  lua_pop(L, 1);
  return code;
}

/* Runs the function below the nargs values at the top of the stack as the
** main task. Returns the exit code: an integer first result of the task, 0
** for other results, or the code its error maps to. */
static int run_main(rb_engine *e, int nargs, const char *name) {
  lua_State *L = e->L;
  rb_task *main = rb_task_spawn(L, nargs, name);
  int code = RB_EXIT_OK;
  sched_run(&e->sched, main);
  lua_getiuservalue(L, -1, 1);
  if (main->status == RB_TASK_OK) {
    lua_rawgeti(L, -1, 1);
    if (lua_isinteger(L, -1)) code = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
  }
  else {
    int reported = 0;
    lua_getfield(L, -1, "err");
    code = exit_code_for(e);
    if (lua_istable(L, -1)) {
      lua_getfield(L, -1, "reported"); /* the DSL printed its own summary */
      reported = lua_toboolean(L, -1);
      lua_pop(L, 1);
    }
    if (code == RB_EXIT_INTERRUPTED) sink_printf(e, 2, "runbook: interrupted\n");
    else if (!reported) report_error(e, "runbook: ");
    else if (e->cli && e->cli->verbosity > 0) report_error(e, "runbook: ");
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  return code;
}

/* Loads 'path' and pushes driver(chunk, path) ready to spawn, where
** driver is runbook.main.<fn>. Returns 0, or an exit code on failure. */
static int load_with_driver(rb_engine *e, const char *path, const char *fn) {
  lua_State *L = e->L;
  add_script_dir(L, path);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "runbook.main");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    sink_printf(e, 2, "runbook: internal error: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    return RB_EXIT_FAILED;
  }
  lua_getfield(L, -1, fn);
  lua_remove(L, -2);
  if (engine_loadfile(L, path, "t") != LUA_OK) {
    /* "file.lua:3: unexpected symbol near 'x'" already names file:line;
    ** "read x.lua: a FIFO, not a regular file" the file */
    sink_printf(e, 2, "runbook: %s\n", lua_tostring(L, -1));
    lua_pop(L, 2);
    return RB_EXIT_USAGE;
  }
  lua_pushstring(L, path);
  return 0;
}

int engine_run_file(rb_engine *e, const char *path) {
  int rc;
  e->script = path;
  if ((rc = load_with_driver(e, path, "run")) != 0) return rc;
  return run_main(e, 2, "main");
}

int engine_run_tests(rb_engine *e, const char *path, int *passed, int *failed) {
  lua_State *L = e->L;
  rb_task *main;
  int rc;
  if ((rc = load_with_driver(e, path, "test")) != 0) {
    (*failed)++;
    return rc;
  }
  main = rb_task_spawn(L, 2, "test");
  sched_run(&e->sched, main);
  lua_getiuservalue(L, -1, 1);
  if (main->status == RB_TASK_OK) {
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);
    *passed += (int)lua_tointeger(L, -2);
    *failed += (int)lua_tointeger(L, -1);
    rc = lua_tointeger(L, -1) > 0 ? RB_EXIT_FAILED : RB_EXIT_OK;
    lua_pop(L, 2);
  }
  else {
    lua_getfield(L, -1, "err");
    report_error(e, "runbook test: ");
    (*failed)++;
    rc = RB_EXIT_FAILED;
  }
  lua_pop(L, 2);
  return rc;
}

/* }====================================================== */

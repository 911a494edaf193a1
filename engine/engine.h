/*
** engine.h: one runbook engine = one Lua state + one libuv loop + one
** scheduler + the output sinks. The CLI builds one per run (and one per
** test file).
*/
#ifndef RUNBOOK_ENGINE_H
#define RUNBOOK_ENGINE_H

#include <stddef.h>
#include <lua.h>
#include <lauxlib.h>
#include <uv.h>

#include "cli.h"
#include "scheduler.h"

/* Exit codes (docs/cli.md) */
#define RB_EXIT_OK 0
#define RB_EXIT_FAILED 1
#define RB_EXIT_USAGE 2
#define RB_EXIT_INTERRUPTED 3
#define RB_EXIT_LOCKED 4

typedef struct rb_secret_text {
  char *text;
  size_t len;
} rb_secret_text;

typedef struct rb_engine {
  lua_State *L;
  uv_loop_t loop;
  rb_sched sched;
  const rb_cli *cli;
  rb_secret_text *secrets; /* masked in every sink, longest first */
  int nsecrets, capsecrets;
  int log_fd;                   /* --log FILE, or -1 */
  int log_errno;                /* the first failed write to it, 0 none */
  const char *script;           /* resolved path of the runbook, if any */
  struct rb_teardown *teardown; /* rb_on_teardown hooks, last registered first */
} rb_engine;

/* Builds an engine: the engine's own modules (runbook.error, .async.core,
** .sys and the embedded Lua) plus 'modules', a {name, luaopen} list ending
** in {NULL, NULL} (the bindings' rb_binding_modules, or a test's own). */
rb_engine *engine_new(const rb_cli *cli, int virtual_clock, const luaL_Reg *modules);
void engine_free(rb_engine *e);
rb_engine *engine_get(lua_State *L);

/* Finds a runbook: the path as given if it exists, then each directory of
** RUNBOOK_PATH, then the installed and source-tree runbooks/. Returns a
** malloc'd path or NULL. */
char *engine_find_runbook(const char *name);
/* The shipped runbooks directory, or NULL (static storage). */
const char *engine_runbooks_dir(void);

/* Loads 'path' and runs it as the main task. Returns the exit code;
** reports syntax and runtime errors on stderr. */
int engine_run_file(rb_engine *e, const char *path);
/* Loads a test file and runs its test_* functions; adds to the counts. */
int engine_run_tests(rb_engine *e, const char *path, int *passed, int *failed);

/* {====== whole-file inputs (input.c): a regular file, at most a cap */
/* Scripts (a runbook, a module, dofile/loadfile) are read up to this many
** bytes, as --vars and --scenario are. */
#define RB_SCRIPT_MAX (16 * 1024 * 1024)
/* Opens path for reading when it is a regular file (through links), without
** blocking on a FIFO. Returns the descriptor, or -1 with errno set; when
** the file is not a regular one, *kind says what it is ("a FIFO"). */
int input_open(const char *path, const char **kind);
/* luaL_loadfilex through rb_read_file (RB_SCRIPT_MAX): pushes the chunk and
** returns LUA_OK, or pushes the message ("read x.lua: a FIFO, not a
** regular file", or a syntax error with file:line) and returns an error. */
int engine_loadfile(lua_State *L, const char *path, const char *mode);
/* Makes loadfile, dofile and require's Lua file searcher read through
** engine_loadfile. */
void engine_capped_loaders(lua_State *L);

/* The engine's own C modules (error.c, lua_async.c, lua_sys.c). */
int luaopen_runbook_error(lua_State *L);
int luaopen_runbook_async_core(lua_State *L);
int luaopen_runbook_sys(lua_State *L);

/* {====== sinks (sink.c): every byte that leaves the engine goes here */
void sink_add_secret(rb_engine *e, const char *s, size_t len);
/* Whether s holds the text of a registered secret. */
int sink_has_secret(rb_engine *e, const char *s, size_t len);
/* Masks secrets in [s, s+len); returns a malloc'd string (*outlen set). */
char *sink_mask(rb_engine *e, const char *s, size_t len, size_t *outlen);
/* Writes masked bytes to fd 1 or 2 (and nothing else). */
void sink_write(rb_engine *e, int fd, const char *s, size_t len);
void sink_printf(rb_engine *e, int fd, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif

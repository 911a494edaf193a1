/*
** lua_sys.c: runbook.sys, the engine's own services for the embedded Lua
** (events, DSL, test harness): masked output, secret registration, the
** run's options. Not meant for runbooks; its API may change.
*/
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"

static int stream_fd(lua_State *L, int idx) {
  static const char *const names[] = { "stdin", "stdout", "stderr", "log", NULL };
  int opt = luaL_checkoption(L, idx, NULL, names);
  if (opt == 3) return engine_get(L)->log_fd;
  return opt;
}

/* write(stream, text): stream is "stdout", "stderr" or "log" (the --log
** file; ignored when none). Secrets are masked. */
static int sys_write(lua_State *L) {
  rb_engine *e = engine_get(L);
  int fd = stream_fd(L, 1);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  luaL_argcheck(L, fd != 0, 1, "cannot write to stdin");
  if (fd >= 0) sink_write(e, fd, s, len);
  return 0;
}

/* Pushes the string at idx masked; returns whether it changed. */
static int push_masked(lua_State *L, rb_engine *e, int idx) {
  size_t len, n;
  const char *s = lua_tolstring(L, idx, &len);
  char *m;
  if (!sink_has_secret(e, s, len)) {
    lua_pushvalue(L, idx);
    return 0;
  }
  m = sink_mask(e, s, len, &n);
  lua_pushlstring(L, m, n);
  free(m);
  return 1;
}

static int sys_mask(lua_State *L) {
  luaL_checklstring(L, 1, NULL);
  push_masked(L, engine_get(L), 1);
  return 1;
}

#define MASK_DEPTH 64 /* deeper values are left to the sinks' own masking */

/* Pushes the value at idx with every string in it (keys too) masked: a
** table is copied, keeping its metatable, only when something in it
** changed. Returns whether it did. Masking before encoding is what keeps a
** secret holding '"', '\\' or '|' out of JSON and Markdown, where the
** escaped text would no longer match the secret. */
static int push_masked_value(lua_State *L, rb_engine *e, int idx, int depth) {
  int changed = 0, copy;
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TSTRING) return push_masked(L, e, idx);
  if (lua_type(L, idx) != LUA_TTABLE || depth >= MASK_DEPTH) {
    lua_pushvalue(L, idx);
    return 0;
  }
  luaL_checkstack(L, 6, "masking a value");
  lua_newtable(L);
  copy = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    changed |= push_masked_value(L, e, -2, depth + 1);
    changed |= push_masked_value(L, e, -2, depth + 1);
    lua_rawset(L, copy);
    lua_pop(L, 1);
  }
  if (!changed) {
    lua_pop(L, 1);
    lua_pushvalue(L, idx);
    return 0;
  }
  if (lua_getmetatable(L, idx)) lua_setmetatable(L, copy);
  return 1;
}

/* mask_value(v) -> v, or a copy of it with the secrets masked */
static int sys_mask_value(lua_State *L) {
  rb_engine *e = engine_get(L);
  luaL_checkany(L, 1);
  if (e->nsecrets == 0) lua_settop(L, 1);
  else push_masked_value(L, e, 1, 0);
  return 1;
}

static int sys_add_secret(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  sink_add_secret(engine_get(L), s, len);
  return 0;
}

static int sys_isatty(lua_State *L) {
  int fd = stream_fd(L, 1);
  lua_pushboolean(L, fd >= 0 && isatty(fd));
  return 1;
}

static void set_str(lua_State *L, const char *k, const char *v) {
  if (v == NULL) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

/* Every value of a repeated flag, joined with commas ("a" "b,c" -> "a,b,c"):
** --limit and --exclude add up. Nothing when the flag was not given. */
static void set_list(lua_State *L, const char *k, const char *const *v, int n) {
  luaL_Buffer b;
  int i;
  if (n == 0) return;
  luaL_buffinit(L, &b);
  for (i = 0; i < n; i++) {
    if (i > 0) luaL_addchar(&b, ',');
    luaL_addstring(&b, v[i]);
  }
  luaL_pushresult(&b);
  lua_setfield(L, -2, k);
}

static void set_bool(lua_State *L, const char *k, int v) {
  lua_pushboolean(L, v);
  lua_setfield(L, -2, k);
}

/* options() -> the CLI options of this run as a table */
static int sys_options(lua_State *L) {
  rb_engine *e = engine_get(L);
  const rb_cli *c = e->cli;
  int i;
  lua_createtable(L, 0, 16);
  set_bool(L, "dry_run", c ? c->dry_run : 0);
  set_bool(L, "virtual_clock", e->sched.virtual_clock);
  if (c == NULL) return 1;
  set_bool(L, "resume", c->resume);
  set_bool(L, "fresh", c->fresh);
  set_bool(L, "accept_drift", c->accept_drift);
  set_bool(L, "yes", c->yes);
  lua_pushinteger(L, c->verbosity);
  lua_setfield(L, -2, "verbosity");
  set_str(L, "output", c->output == RB_OUT_JSON ? "json" : "text");
  set_str(L, "scenario", c->scenario);
  set_str(L, "vars_file", c->vars_file);
  set_str(L, "state_dir", c->state_dir);
  set_str(L, "log_file", c->log_file);
  set_str(L, "report_file", c->report_file);
  set_str(L, "script", e->script);
  set_list(L, "limit", c->limits, c->nlimits);
  set_list(L, "exclude", c->excludes, c->nexcludes);
  set_str(L, "store", c->store ? c->store : getenv("RUNBOOK_STORE"));
  set_str(L, "clusters", c->clusters);
  set_str(L, "file", c->file);
  if (c->concurrency > 0) {
    lua_pushinteger(L, c->concurrency);
    lua_setfield(L, -2, "concurrency");
  }
  if (c->failure_budget >= 0) {
    lua_pushinteger(L, c->failure_budget);
    lua_setfield(L, -2, "failure_budget");
  }
  set_str(L, "metrics_file", c->metrics_file);
  set_str(L, "pushgateway", c->pushgateway);
  set_str(L, "version", RUNBOOK_VERSION);
  if (c->step_timeout > 0) {
    lua_pushnumber(L, c->step_timeout);
    lua_setfield(L, -2, "step_timeout");
  }
  if (c->wait_lock > 0) {
    lua_pushnumber(L, c->wait_lock);
    lua_setfield(L, -2, "wait_lock");
  }
  lua_createtable(L, c->nvars, 0);
  for (i = 0; i < c->nvars; i++) {
    lua_pushstring(L, c->vars[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "vars");
  return 1;
}

static int sys_interrupted(lua_State *L) {
  lua_pushboolean(L, engine_get(L)->sched.interrupted != 0);
  return 1;
}

static int sys_runbooks_dir(lua_State *L) {
  const char *d = engine_runbooks_dir();
  if (d) lua_pushstring(L, d);
  else lua_pushnil(L);
  return 1;
}

/* The path of the running binary (for shims that call it back). */
static int sys_exe(lua_State *L) {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return luaL_error(L, "cannot read /proc/self/exe");
  lua_pushlstring(L, buf, (size_t)n);
  return 1;
}

static int sys_pid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

static const luaL_Reg sys_funcs[] = {
  { "add_secret", sys_add_secret }, { "exe", sys_exe },   { "interrupted", sys_interrupted },
  { "isatty", sys_isatty },         { "mask", sys_mask }, { "mask_value", sys_mask_value },
  { "options", sys_options },       { "pid", sys_pid },   { "runbooks_dir", sys_runbooks_dir },
  { "write", sys_write },           { NULL, NULL }
};

int luaopen_runbook_sys(lua_State *L) {
  luaL_newlib(L, sys_funcs);
  return 1;
}

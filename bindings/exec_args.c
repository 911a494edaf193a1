/*
** exec_args.c: the argv, environment and options of a child, read from
** Lua into C memory that spawn_args owns (exec_priv.h). A secret may go
** into the environment, never into argv.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "bindings.h"
#include "exec_priv.h"

static void free_strv(char **v) {
  char **p;
  if (v == NULL) return;
  for (p = v; *p; p++) free(*p);
  free(v);
}

void exec_free_args(spawn_args *a) {
  free_strv(a->argv);
  free_strv(a->env);
  free(a->cwd);
  a->argv = a->env = NULL;
  a->cwd = NULL;
}

#define ARGS_MT "runbook.exec.args"

static int args_gc(lua_State *L) {
  exec_free_args((spawn_args *)luaL_checkudata(L, 1, ARGS_MT));
  return 0;
}

/* The C strings of argv/env/cwd live in a userdata while they are built,
** so that a Lua error halfway (a bad env value) frees them through __gc. */
spawn_args *exec_new_args(lua_State *L) {
  spawn_args *a = (spawn_args *)lua_newuserdatauv(L, sizeof *a, 0);
  memset(a, 0, sizeof *a);
  if (luaL_newmetatable(L, ARGS_MT)) {
    lua_pushcfunction(L, args_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return a;
}

/* Text of a value allowed in argv/env: strings and numbers; secrets only
** where `allow_secret` (env); pushes nothing, returns a malloc'd copy. */
static char *arg_text(lua_State *L, int idx, int arg, int allow_secret, const char *what) {
  size_t n;
  const char *s;
  char *c;
  if (!allow_secret && rb_is_secret(L, idx))
    luaL_argerror(
      L, arg,
      lua_pushfstring(
        L, "%s: a secret cannot be passed in argv (it would show in the process list); pass it through env or stdin",
        what));
  if (!rb_push_text(L, idx))
    luaL_argerror(L, arg, lua_pushfstring(L, "%s must be a string (got %s)", what, luaL_typename(L, idx)));
  s = lua_tolstring(L, -1, &n);
  if (memchr(s, '\0', n)) luaL_argerror(L, arg, lua_pushfstring(L, "%s contains a NUL byte", what));
  c = malloc(n + 1);
  if (c == NULL) luaL_error(L, "not enough memory"); /* never a child spawned without it */
  memcpy(c, s, n + 1);
  lua_pop(L, 1);
  return c;
}

void exec_build_argv(lua_State *L, int idx, spawn_args *a) {
  /* each string is stored in a->argv as soon as it exists: a raise frees it */
  lua_Integer i, n = luaL_len(L, idx);
  luaL_argcheck(L, n >= 1, 1, "argv must be a non-empty list");
  a->argv = calloc((size_t)n + 1, sizeof *a->argv);
  if (a->argv == NULL) luaL_error(L, "not enough memory");
  for (i = 1; i <= n; i++) {
    char what[32];
    snprintf(what, sizeof what, "argv[%lld]", (long long)i);
    /* arg_text raises before allocating, so nothing leaks here */
    lua_rawgeti(L, idx, i);
    a->argv[i - 1] = arg_text(L, lua_gettop(L), 1, 0, what);
    lua_pop(L, 1);
  }
}

extern char **environ;

/* Environment: the engine's own plus opts.env, or only opts.env with
** clear_env. opts.env values may be secrets (revealed only here). */
void exec_build_env(lua_State *L, int opts, spawn_args *a) {
  int clear = 0, n = 0, cap = 16, i;
  lua_getfield(L, opts, "clear_env");
  clear = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (lua_getfield(L, opts, "env") == LUA_TNIL && !clear) {
    lua_pop(L, 1);
    return; /* inherit as is */
  }
  if (!lua_isnil(L, -1)) luaL_argcheck(L, lua_istable(L, -1), 2, "opts.env must be a table");
  a->env = calloc((size_t)cap, sizeof *a->env);
  if (a->env == NULL) luaL_error(L, "not enough memory");
  if (!lua_isnil(L, -1)) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      char *v, *kv;
      const char *k;
      if (lua_type(L, -2) != LUA_TSTRING) luaL_argerror(L, 2, "opts.env keys must be strings");
      k = lua_tostring(L, -2);
      if (*k == '\0' || strchr(k, '='))
        luaL_argerror(L, 2, lua_pushfstring(L, "opts.env key '%s' is not a variable name", k));
      v = arg_text(L, lua_gettop(L), 2, 1, "opts.env value");
      kv = malloc(strlen(k) + strlen(v) + 2);
      if (kv) sprintf(kv, "%s=%s", k, v);
      free(v);
      if (kv == NULL) luaL_error(L, "not enough memory");
      if (n + 2 > cap) {
        char **ne = realloc(a->env, (size_t)(cap *= 2) * sizeof *ne);
        if (ne == NULL) {
          free(kv);
          luaL_error(L, "not enough memory");
        }
        a->env = ne;
      }
      a->env[n++] = kv;
      a->env[n] = NULL;
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  if (!clear) {
    char **p;
    for (p = environ; *p; p++) {
      size_t klen = strcspn(*p, "=");
      int dup = 0;
      for (i = 0; i < n && !dup; i++) dup = strncmp(a->env[i], *p, klen) == 0 && a->env[i][klen] == '=';
      if (dup) continue;
      if (n + 2 > cap) {
        char **ne = realloc(a->env, (size_t)(cap *= 2) * sizeof *ne);
        if (ne == NULL) luaL_error(L, "not enough memory");
        a->env = ne;
      }
      if ((a->env[n] = strdup(*p)) == NULL) luaL_error(L, "not enough memory"); /* a cut environment is worse */
      a->env[++n] = NULL;
    }
  }
}

double exec_opt_number(lua_State *L, int opts, const char *k, double def) {
  double v = def;
  if (lua_getfield(L, opts, k) != LUA_TNIL) {
    if (!lua_isnumber(L, -1)) luaL_argerror(L, opts, lua_pushfstring(L, "opts.%s must be a number", k));
    v = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

/* opts.stdin, copied to C memory (it may hold NUL bytes); NULL when none. */
char *exec_copy_stdin(lua_State *L, size_t *len) {
  char *data = NULL;
  *len = 0;
  if (lua_getfield(L, 2, "stdin") != LUA_TNIL) {
    const char *in;
    if (!rb_push_text(L, -1)) luaL_argerror(L, 2, "opts.stdin must be a string or a secret");
    in = lua_tolstring(L, -1, len);
    data = malloc(*len ? *len : 1);
    if (data) memcpy(data, in, *len);
    lua_pop(L, 1);
    if (data == NULL) luaL_error(L, "not enough memory");
  }
  lua_pop(L, 1);
  return data;
}

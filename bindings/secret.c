/*
** secret.c: runbook.secret. A secret wraps a value so that it prints as
** "***(label)"; its text is registered with the engine's sinks, which mask
** it in every output for the rest of the run (terminal, JSON events, log,
** journal, report, captured child output).
**
** new(value [, label]), env(name [, label]), file(path [, label]),
** is(v); methods: s:reveal(), s:label(). Concatenating a secret raises.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bindings.h"

#define SECRET_MT "runbook.secret"

typedef struct secret_t {
  char *value; /* NULL once collected */
  size_t len;
  char label[64];
} secret_t;

static secret_t *check_secret(lua_State *L, int idx) {
  secret_t *s = (secret_t *)luaL_checkudata(L, idx, SECRET_MT);
  if (s->value == NULL) luaL_error(L, "attempt to use a closed secret");
  return s;
}

/* Pushes a new secret; masks its text from now on. */
static void push_secret(lua_State *L, const char *v, size_t len, const char *label) {
  secret_t *s = (secret_t *)lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s); /* 'closed' until the copy exists */
  luaL_setmetatable(L, SECRET_MT);
  s->value = malloc(len + 1);
  if (s->value == NULL) luaL_error(L, "not enough memory");
  memcpy(s->value, v, len);
  s->value[len] = '\0';
  s->len = len;
  snprintf(s->label, sizeof s->label, "%s", label ? label : "secret");
  rb_secret_register(L, v, len);
}

int rb_is_secret(lua_State *L, int idx) {
  return luaL_testudata(L, idx, SECRET_MT) != NULL;
}

int rb_push_text(lua_State *L, int idx) {
  secret_t *s = (secret_t *)luaL_testudata(L, idx, SECRET_MT);
  if (s) {
    if (s->value == NULL) luaL_error(L, "attempt to use a closed secret");
    lua_pushlstring(L, s->value, s->len);
    return 1;
  }
  if (lua_type(L, idx) == LUA_TSTRING || lua_type(L, idx) == LUA_TNUMBER) {
    lua_pushvalue(L, idx);
    lua_tostring(L, -1); /* a number becomes its text */
    return 1;
  }
  return 0;
}

static const char *opt_label(lua_State *L, int idx, const char *def) {
  return luaL_optstring(L, idx, def);
}

static int secret_new(lua_State *L) {
  size_t len;
  const char *v = luaL_checklstring(L, 1, &len);
  luaL_argcheck(L, len > 0, 1, "empty secret");
  push_secret(L, v, len, opt_label(L, 2, "secret"));
  return 1;
}

static int secret_env(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const char *v = getenv(name);
  if (v == NULL || *v == '\0') return rb_error_raise(L, "secret", "environment variable %s is not set", name);
  push_secret(L, v, strlen(v), opt_label(L, 2, name));
  return 1;
}

/* A key or a token is short: a file holding more is not one. */
#define SECRET_FILE_MAX (64 * 1024)

/* The regular file at path, opened for reading without blocking on a FIFO;
** NULL with why filled otherwise. */
static FILE *open_regular(const char *path, char *why, size_t whylen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  struct stat st;
  FILE *f;
  if (fd < 0 || fstat(fd, &st) != 0) {
    snprintf(why, whylen, "%s", strerror(errno));
    if (fd >= 0) close(fd);
    return NULL;
  }
  if (!S_ISREG(st.st_mode) || st.st_size > SECRET_FILE_MAX) {
    snprintf(why, whylen, "%s", S_ISREG(st.st_mode) ? "more than 64 KiB, not a secret" : "not a regular file");
    close(fd);
    return NULL;
  }
  if ((f = fdopen(fd, "rb")) == NULL) {
    snprintf(why, whylen, "%s", strerror(errno));
    close(fd);
  }
  return f;
}

/* file(path): the whole file, without trailing newlines. */
static int secret_file(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char why[128];
  FILE *f = open_regular(path, why, sizeof why);
  char *buf = NULL;
  size_t len = 0, cap = 0, n;
  char chunk[4096];
  if (f == NULL) return rb_error_raise(L, "secret", "cannot read secret file %s: %s", path, why);
  while (len <= SECRET_FILE_MAX && (n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (len + n > cap) {
      char *nb = realloc(buf, cap = (len + n) * 2);
      if (nb == NULL) {
        free(buf);
        fclose(f);
        return luaL_error(L, "not enough memory");
      }
      buf = nb;
    }
    memcpy(buf + len, chunk, n);
    len += n;
  }
  fclose(f);
  if (len > SECRET_FILE_MAX) { /* it grew while read */
    free(buf);
    return rb_error_raise(L, "secret", "cannot read secret file %s: more than 64 KiB, not a secret", path);
  }
  while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) len--;
  if (len == 0) {
    free(buf);
    return rb_error_raise(L, "secret", "secret file %s is empty", path);
  }
  {
    /* the label names the file, never its content; computed before the
    ** content goes on the stack (it would be argument 2) */
    const char *slash = strrchr(path, '/');
    char label[64];
    size_t l;
    const char *v;
    snprintf(label, sizeof label, "%s", luaL_optstring(L, 2, slash ? slash + 1 : path));
    lua_pushlstring(L, buf, len);
    free(buf);
    v = lua_tolstring(L, -1, &l);
    push_secret(L, v, l, label);
  }
  return 1;
}

static int secret_reveal(lua_State *L) {
  secret_t *s = check_secret(L, 1);
  lua_pushlstring(L, s->value, s->len);
  return 1;
}

static int secret_label(lua_State *L) {
  lua_pushstring(L, check_secret(L, 1)->label);
  return 1;
}

static int secret_tostring(lua_State *L) {
  secret_t *s = (secret_t *)luaL_checkudata(L, 1, SECRET_MT);
  lua_pushfstring(L, "***(%s)", s->label);
  return 1;
}

static int secret_concat(lua_State *L) {
  return luaL_error(L, "attempt to concatenate a secret (use s:reveal() where the value is really needed)");
}

static int secret_gc(lua_State *L) {
  secret_t *s = (secret_t *)luaL_checkudata(L, 1, SECRET_MT);
  if (s->value) {
    char *v = s->value;
    s->value = NULL; /* closed first, then released */
    memset(v, 0, s->len);
    free(v);
  }
  return 0;
}

static int secret_is(lua_State *L) {
  lua_pushboolean(L, luaL_testudata(L, 1, SECRET_MT) != NULL);
  return 1;
}

static const luaL_Reg secret_meth[] = { { "label", secret_label }, { "reveal", secret_reveal }, { NULL, NULL } };

static const luaL_Reg secret_metameth[] = { { "__index", NULL },           { "__gc", secret_gc },
                                            { "__close", secret_gc },      { "__tostring", secret_tostring },
                                            { "__concat", secret_concat }, { NULL, NULL } };

static const luaL_Reg secret_funcs[] = {
  { "env", secret_env }, { "file", secret_file }, { "is", secret_is }, { "new", secret_new }, { NULL, NULL }
};

int luaopen_runbook_secret(lua_State *L) {
  if (luaL_newmetatable(L, SECRET_MT)) {
    luaL_setfuncs(L, secret_metameth, 0);
    luaL_newlibtable(L, secret_meth);
    luaL_setfuncs(L, secret_meth, 0);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_newlib(L, secret_funcs);
  return 1;
}

/*
** bindings.h: the luaopen_* entry points of the C modules and the helpers
** they share (error objects, engine access).
*/
#ifndef RUNBOOK_BINDINGS_H
#define RUNBOOK_BINDINGS_H

#include <lua.h>
#include <lauxlib.h>

#define RB_ERROR_MT "runbook.error"

/* Pushes an error object {kind=, message=} (metatable RB_ERROR_MT, printable
** with tostring as "kind: message"). */
void rb_error_push(lua_State *L, const char *kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Pushes an error object and raises it. Never returns. */
int  rb_error_raise(lua_State *L, const char *kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Sets t[field] = value on the error object at the top of the stack. */
void rb_error_setfield(lua_State *L, const char *field, const char *value);
void rb_error_setint(lua_State *L, const char *field, lua_Integer value);

/* The name of a uv error, luv style: "ENOENT: no such file or directory". */
const char *rb_uv_strerror(int err, char *buf, size_t len);

/* A growable byte buffer in C memory (for libcurl and libyaml callbacks,
** which must not touch the Lua stack). Always NUL-terminated. */
typedef struct rb_buf {
  char *p;
  size_t len, cap;
} rb_buf;
/* Appends n bytes; returns 0 when out of memory (the buffer is unchanged). */
int rb_buf_add(rb_buf *b, const void *s, size_t n);

/* runbook.secret from C (secret.c): whether the value at idx is a secret,
** and the text a binding sends on its way: a string or number as it is, a
** secret's revealed value. rb_push_text pushes it and returns 1, or pushes
** nothing and returns 0 for any other type. */
int rb_is_secret(lua_State *L, int idx);
int rb_push_text(lua_State *L, int idx);

int luaopen_runbook_error(lua_State *L);
int luaopen_runbook_time(lua_State *L);
int luaopen_runbook_async_core(lua_State *L);
int luaopen_runbook_sys(lua_State *L);
int luaopen_runbook_yaml(lua_State *L);
int luaopen_runbook_json(lua_State *L);
int luaopen_runbook_net(lua_State *L);
int luaopen_runbook_exec_core(lua_State *L);
int luaopen_runbook_http_core(lua_State *L);
int luaopen_runbook_fs(lua_State *L);
int luaopen_runbook_hash(lua_State *L);
int luaopen_runbook_secret_core(lua_State *L);

#endif

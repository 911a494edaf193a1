/*
** bindings.h: what the bindings share among themselves (byte buffers, uv
** error names, secret values) and their luaopen_* entry points. Of the
** engine a binding sees rb_api.h only.
*/
#ifndef RUNBOOK_BINDINGS_H
#define RUNBOOK_BINDINGS_H

#include <stddef.h>

#include "rb_api.h"
#include "rb_modules.h"

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

/* The integer field `field` of the options table at index arg, or def
** when absent; anything but an integer is luaL_argerror(arg, "opts.<field>
** must be an integer"), never "bad argument #-1". */
lua_Integer rb_opt_integer(lua_State *L, int arg, const char *field, lua_Integer def);

/* Around building a decoded tree of `len` bytes of input: the collector
** is paused for a large input only (it would walk the tree being built,
** whose memory is needed anyway). Resuming sets the collector's debt to 0
** (LUA_GCRESTART), which forces a collection at the next allocation: paid
** once per large decode it is nothing, once per small one (a tool's JSON
** output, thousands of times in a run) it was most of the collector's
** work (docs/benchmarks.md). rb_gc_pause returns whether it paused. */
#define RB_GC_PAUSE_MIN ((size_t)1 << 20)
int rb_gc_pause(lua_State *L, size_t len);
void rb_gc_resume(lua_State *L, int paused);

/* runbook.secret from C (secret.c): whether the value at idx is a secret,
** and the text a binding sends on its way: a string or number as it is, a
** secret's revealed value. rb_push_text pushes it and returns 1, or pushes
** nothing and returns 0 for any other type. */
int rb_is_secret(lua_State *L, int idx);
int rb_push_text(lua_State *L, int idx);

/* luaopen_<module with dots as underscores>, as Lua's own loaders name them */
int luaopen_runbook_exec_core(lua_State *L);
int luaopen_runbook_fs_core(lua_State *L);
int luaopen_runbook_hash(lua_State *L);
int luaopen_runbook_http_core(lua_State *L);
int luaopen_runbook_json(lua_State *L);
int luaopen_runbook_net(lua_State *L);
int luaopen_runbook_secret(lua_State *L);
int luaopen_runbook_time(lua_State *L);
int luaopen_runbook_yaml(lua_State *L);

/* The longest wait, timeout or grace a binding takes (31 years), so that
** its microseconds fit every integer type they are converted to. */
#define RB_MAX_SECONDS 1e9

#endif

/*
** json.c: runbook.json on jansson.
**
** decode(text [, {name=}])   one JSON value (any type at top level)
** decode_all(text [, {name=}])  a stream of concatenated values (talosctl -o json)
** encode(value [, {pretty=, sort_keys=, indent=}])
** null, array([t]), map([t])
**
** Objects keep their key order through decode and encode (jansson keeps
** insertion order); duplicate keys are refused; integers stay integers and
** reals stay floats. Empty tables encode as {} unless marked with array().
*/
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <lauxlib.h>

#include "bindings.h"
#include "luaval.h"

#define JSON_MAX_DEPTH 512 /* encode; jansson's own parser stops at 2048 */

/* {====================================================== decode */

/* Converts a jansson tree; 'marks' is the stack index of the shared list
** mark (the empty object's is at marks + 1). */
static void push_json(lua_State *L, json_t *v, int marks);

static void push_object(lua_State *L, json_t *v, int marks) {
  const char *k;
  json_t *item;
  int i = 0, n = (int)json_object_size(v);
  luaL_checkstack(L, 6, "JSON nested too deeply");
  lua_createtable(L, 0, n);
  if (n == 0) {
    lv_mark_shape(L, marks, -1, LV_SHAPE_MAP);
    return;
  }
  if (n > 1) lv_new_order(L, n); /* key order */
  json_object_foreach(v, k, item) {
    lua_pushstring(L, k);
    if (n > 1) {
      lua_pushvalue(L, -1);
      lua_rawseti(L, -3, ++i);
    }
    push_json(L, item, marks);
    lua_rawset(L, n > 1 ? -4 : -3);
  }
  if (n > 1) lv_mark_order(L, -2);
}

static void push_json(lua_State *L, json_t *v, int marks) {
  size_t i, n;
  switch (json_typeof(v)) {
    case JSON_OBJECT: push_object(L, v, marks); break;
    case JSON_ARRAY:
      luaL_checkstack(L, 4, "JSON nested too deeply");
      n = json_array_size(v);
      lua_createtable(L, (int)n, 0);
      for (i = 0; i < n; i++) {
        push_json(L, json_array_get(v, i), marks);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
      }
      lv_mark_shape(L, marks, -1, LV_SHAPE_SEQ); /* emptied later, still [] */
      break;
    case JSON_STRING: lua_pushlstring(L, json_string_value(v), json_string_length(v)); break;
    case JSON_INTEGER: lua_pushinteger(L, (lua_Integer)json_integer_value(v)); break;
    case JSON_REAL: lua_pushnumber(L, json_real_value(v)); break;
    case JSON_TRUE: lua_pushboolean(L, 1); break;
    case JSON_FALSE: lua_pushboolean(L, 0); break;
    case JSON_NULL: lv_push_null(L); break;
  }
}

static int push_json_p(lua_State *L) {
  lv_push_marks(L); /* 2: list mark, 3: empty object mark */
  push_json(L, (json_t *)lua_touserdata(L, 1), 2);
  return 1;
}

/* Converts and releases the tree; a memory error while converting is
** re-raised only after the tree is freed. */
static int push_tree(lua_State *L, json_t *v, size_t len) {
  int rc, paused;
  lua_pushcfunction(L, push_json_p);
  lua_pushlightuserdata(L, v);
  paused = rb_gc_pause(L, len);
  rc = lua_pcall(L, 1, 1, 0);
  rb_gc_resume(L, paused);
  json_decref(v);
  if (rc != LUA_OK) return lua_error(L);
  return 1;
}

static const char *opt_name(lua_State *L, int idx) {
  const char *name = "json";
  if (lua_istable(L, idx)) {
    lua_getfield(L, idx, "name");
    if (lua_isstring(L, -1)) name = lua_tostring(L, -1);
    lua_pop(L, 1); /* the options table keeps the string alive */
  }
  else if (!lua_isnoneornil(L, idx)) luaL_typeerror(L, idx, "table");
  return name;
}

/* Raises "name:line:col: message" for a jansson error. */
static int decode_error(lua_State *L, const char *name, const json_error_t *e) {
  rb_error_push(L, "json", "%s:%d:%d: %s", name, e->line, e->column, e->text);
  rb_error_setint(L, "line", e->line);
  rb_error_setint(L, "column", e->column);
  return lua_error(L);
}

/* "\u0000" decodes: a Lua string holds a NUL byte as well as any other */
static const size_t FLAGS_DECODE = JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL;

static void line_col(const char *s, size_t n, int *line, int *col);

/* A raw NUL byte is JSON nowhere (in a string it must be \u0000), and
** jansson's reader takes one for the end of the text, so that "123" and
** a NUL and anything after it would decode as 123: refused here. */
static void refuse_nul(lua_State *L, const char *name, const char *s, size_t len) {
  const char *nul = memchr(s, '\0', len);
  json_error_t e;
  if (nul == NULL) return;
  memset(&e, 0, sizeof e);
  line_col(s, (size_t)(nul - s), &e.line, &e.column);
  snprintf(e.text, sizeof e.text, "a NUL byte is not allowed in JSON text");
  decode_error(L, name, &e);
}

static int lj_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  const char *name = opt_name(L, 2);
  json_error_t err;
  json_t *v;
  refuse_nul(L, name, s, len);
  v = json_loadb(s, len, FLAGS_DECODE, &err);
  if (v == NULL) return decode_error(L, name, &err);
  return push_tree(L, v, len);
}

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Position after 'n' bytes counted from s, as line/column (1-based). */
static void line_col(const char *s, size_t n, int *line, int *col) {
  size_t i;
  *line = 1;
  *col = 1;
  for (i = 0; i < n; i++) {
    if (s[i] == '\n') {
      (*line)++;
      *col = 1;
    }
    else (*col)++;
  }
}

/* decode_all(text) -> list of every value in a stream of concatenated
** JSON values separated by optional whitespace. */
static int lj_decode_all(lua_State *L) {
  size_t len, off = 0;
  const char *s = luaL_checklstring(L, 1, &len);
  const char *name = opt_name(L, 2);
  lua_Integer n = 0;
  refuse_nul(L, name, s, len);
  lua_newtable(L);
  lv_set_shape(L, -1, LV_SHAPE_SEQ);
  for (;;) {
    json_error_t err;
    json_t *v;
    while (off < len && is_space(s[off])) off++;
    if (off == len) break;
    v = json_loadb(s + off, len - off, FLAGS_DECODE | JSON_DISABLE_EOF_CHECK, &err);
    if (v == NULL) {
      int line, col;
      /* jansson counts from the start of this value: shift to the stream */
      line_col(s, off, &line, &col);
      if (err.line <= 1) err.column += col - 1;
      err.line += line - 1;
      return decode_error(L, name, &err);
    }
    push_tree(L, v, (size_t)err.position);
    lua_rawseti(L, -2, ++n);
    off += (size_t)err.position; /* with DISABLE_EOF_CHECK: bytes consumed */
  }
  return 1;
}

/* }====================================================== */

/* {====================================================== encode */

typedef struct enc_state {
  lua_State *L;
  lv_path path;
  int depth;
  int visiting; /* stack index of the set of tables on the path */
  int digits;   /* the most significant digits a float needs */
  char err[512];
} enc_state;

static json_t *enc_fail(enc_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static json_t *enc_fail(enc_state *st, const char *fmt, ...) {
  char p[256];
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(st->err, sizeof st->err, "%s at %s", msg, lv_path_format(&st->path, p, sizeof p));
  return NULL;
}

static json_t *to_json(enc_state *st, int idx);

static json_t *array_to_json(enc_state *st, int idx, lua_Integer n) {
  lua_State *L = st->L;
  json_t *out = json_array();
  lua_Integer i;
  for (i = 1; out && i <= n; i++) {
    json_t *item;
    lua_rawgeti(L, idx, i);
    lv_path_push_index(&st->path, i);
    item = to_json(st, lua_gettop(L));
    lv_path_pop(&st->path);
    lua_pop(L, 1);
    if (item == NULL || json_array_append_new(out, item) != 0) {
      json_decref(out);
      out = NULL;
    }
  }
  return out;
}

static json_t *object_to_json(enc_state *st, int idx) {
  lua_State *L = st->L;
  int nk = lv_push_keys(L, idx), k, keys = lua_gettop(L);
  json_t *out = json_object();
  for (k = 1; out && k <= nk; k++) {
    json_t *item;
    const char *ks;
    size_t kl;
    char numkey[64];
    lua_rawgeti(L, keys, k);
    if (lua_type(L, -1) == LUA_TSTRING) ks = lua_tolstring(L, -1, &kl);
    else if (lua_isinteger(L, -1)) {
      snprintf(numkey, sizeof numkey, "%lld", (long long)lua_tointeger(L, -1));
      ks = numkey;
      kl = strlen(numkey);
    }
    else {
      const char *tn = luaL_typename(L, -1);
      lua_pop(L, 1);
      json_decref(out);
      out = enc_fail(st, "object key of type %s (keys must be strings or integers)", tn);
      break;
    }
    lua_pushvalue(L, -1);
    lua_rawget(L, idx);
    lv_path_push_key(&st->path, ks, kl);
    item = to_json(st, lua_gettop(L));
    lv_path_pop(&st->path);
    if (item == NULL) {
      json_decref(out);
      out = NULL;
    }
    else if (json_object_setn_new(out, ks, kl, item) != 0) {
      json_decref(out);
      out = enc_fail(st, "%s", "invalid UTF-8 in object key");
    }
    lua_pop(L, 2);
  }
  lua_pop(L, 1); /* keys */
  return out;
}

/* A table, refused when it is on the path being encoded (a cycle). */
static json_t *table_to_json(enc_state *st, int idx) {
  lua_State *L = st->L;
  lua_Integer n;
  json_t *out;
  lua_pushvalue(L, idx);
  if (lua_rawget(L, st->visiting) != LUA_TNIL) {
    lua_pop(L, 1);
    return enc_fail(st, "%s", "cyclic table");
  }
  lua_pop(L, 1);
  if (++st->depth > JSON_MAX_DEPTH) return enc_fail(st, "%s", "nested too deeply");
  lua_pushvalue(L, idx);
  lua_pushboolean(L, 1);
  lua_rawset(L, st->visiting);
  luaL_checkstack(L, 8, "nested too deeply");
  out = lv_is_sequence(L, idx, &n) ? array_to_json(st, idx, n) : object_to_json(st, idx);
  lua_pushvalue(L, idx);
  lua_pushnil(L);
  lua_rawset(L, st->visiting);
  st->depth--;
  return out;
}

static json_t *to_json(enc_state *st, int idx) {
  lua_State *L = st->L;
  switch (lua_type(L, idx)) {
    case LUA_TNIL: return json_null();
    case LUA_TBOOLEAN: return json_boolean(lua_toboolean(L, idx));
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) return json_integer((json_int_t)lua_tointeger(L, idx));
      if (!isfinite(lua_tonumber(L, idx))) return enc_fail(st, "%s", "non-finite number (JSON has no inf or nan)");
      {
        int d = lv_float_digits(lua_tonumber(L, idx));
        if (d > st->digits) st->digits = d;
      }
      return json_real(lua_tonumber(L, idx));
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      json_t *j = json_stringn(s, len);
      return j ? j : enc_fail(st, "%s", "invalid UTF-8 in string");
    }
    case LUA_TTABLE: return table_to_json(st, idx);
    case LUA_TLIGHTUSERDATA:
      if (lv_is_null(L, idx)) return json_null();
      return enc_fail(st, "cannot encode a %s", "light userdata");
    case LUA_TUSERDATA:
      if (luaL_testudata(L, idx, "runbook.secret")) { /* encodes as its masked form */
        json_t *j = json_string(luaL_tolstring(L, idx, NULL));
        lua_pop(L, 1);
        return j;
      }
      /* fall through */
    default: return enc_fail(st, "cannot encode a %s", luaL_typename(L, idx));
  }
}

static int opt_bool(lua_State *L, int idx, const char *k, int def) {
  int v = def;
  if (!lua_istable(L, idx)) return def;
  lua_getfield(L, idx, k);
  if (!lua_isnil(L, -1)) v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

static int lj_encode(lua_State *L) {
  enc_state st;
  json_t *j;
  char *out;
  size_t flags = JSON_ENCODE_ANY;
  int indent = 2;
  luaL_checkany(L, 1);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  if (lua_istable(L, 2)) {
    lua_Integer v = rb_opt_integer(L, 2, "indent", 2);
    luaL_argcheck(L, v >= 0 && v <= 31, 2, "indent must be 0..31");
    indent = (int)v;
  }
  if (opt_bool(L, 2, "pretty", 0)) flags |= JSON_INDENT(indent);
  else flags |= JSON_COMPACT;
  if (opt_bool(L, 2, "sort_keys", 0)) flags |= JSON_SORT_KEYS;
  memset(&st, 0, sizeof st);
  st.L = L;
  lua_settop(L, 2);
  lua_newtable(L);
  st.visiting = lua_gettop(L);
  j = to_json(&st, 1);
  if (j == NULL) return rb_error_raise(L, "json", "cannot encode: %s", st.err);
  /* jansson has one precision per dump: the fewest digits with which every
  ** float of the document reads back exactly (0.1 stays 0.1 unless another
  ** float needs all 17 digits) */
  flags |= JSON_REAL_PRECISION(st.digits > 0 ? st.digits : 17);
  out = json_dumps(j, flags);
  json_decref(j);
  if (out == NULL) return rb_error_raise(L, "json", "cannot encode: out of memory");
  lua_pushstring(L, out);
  free(out);
  return 1;
}

/* }====================================================== */

static int lj_array(lua_State *L) {
  return lv_mark_fn(L, LV_SHAPE_SEQ);
}
static int lj_map(lua_State *L) {
  return lv_mark_fn(L, LV_SHAPE_MAP);
}

static const luaL_Reg json_funcs[] = {
  { "array", lj_array },   { "decode", lj_decode }, { "decode_all", lj_decode_all },
  { "encode", lj_encode }, { "map", lj_map },       { NULL, NULL }
};

int luaopen_runbook_json(lua_State *L) {
  luaL_newlib(L, json_funcs);
  lv_push_null(L);
  lua_setfield(L, -2, "null");
  return 1;
}

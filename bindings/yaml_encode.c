/*
** yaml_encode.c: runbook.yaml.encode and encode_all on libyaml's emitter:
** block style, deterministic key order, strings quoted wherever a plain
** scalar would read back as something else (YAML 1.1 readers included).
*/
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <yaml.h>

#include "bindings.h"
#include "luaval.h"
#include "yaml_priv.h"

/* {====================================================== encode */

static int write_handler(void *data, unsigned char *buffer, size_t size) {
  return rb_buf_add((rb_buf *)data, buffer, size);
}

typedef struct enc_state {
  lua_State *L;
  yaml_emitter_t em;
  rb_buf out;
  lv_path path;
  int depth;
  int visiting;
  char err[512];
} enc_state;

static int enc_fail(enc_state *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int enc_fail(enc_state *e, const char *fmt, ...) {
  char p[256], msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(e->err, sizeof e->err, "%s at %s", msg, lv_path_format(&e->path, p, sizeof p));
  return 0;
}

static int emit(enc_state *e, yaml_event_t *ev) {
  if (!yaml_emitter_emit(&e->em, ev)) {
    snprintf(e->err, sizeof e->err, "emitter: %s", e->em.problem ? e->em.problem : "failed");
    return 0;
  }
  return 1;
}

static const char *const YAML11_WORDS[] = { "y",  "Y",  "yes", "Yes", "YES", "n",   "N", "no", "No", "NO",
                                            "on", "On", "ON",  "off", "Off", "OFF", "=", "<<", NULL };

static size_t span(const char *s, size_t n, size_t i, const char *set) {
  while (i < n && strchr(set, s[i]) && s[i]) i++;
  return i;
}

/* YAML 1.1 ints and floats as PyYAML's resolver reads them (binary, old
** octal, '_' separators, sexagesimal "1:20"), which a 1.2 reader takes as
** strings: quoting them keeps both kinds of reader in agreement. */
static int yaml11_number(const char *s, size_t n) {
  size_t i = 0, j;
  if (i < n && (s[i] == '-' || s[i] == '+')) i++;
  if (n - i > 2 && s[i] == '0' && (s[i + 1] == 'b' || s[i + 1] == 'x')) {
    const char *set = s[i + 1] == 'b' ? "01_" : "0123456789abcdefABCDEF_";
    return span(s, n, i + 2, set) == n;
  }
  if (i < n && s[i] == '.') { /* .5, .5e+3 */
    j = span(s, n, i + 1, "0123456789_");
    if (j == i + 1) return 0;
    i = j;
  }
  else {
    if (i >= n || !(s[i] >= '0' && s[i] <= '9')) return 0;
    i = span(s, n, i, "0123456789_");
    while (i < n && s[i] == ':') { /* sexagesimal */
      j = span(s, n, i + 1, "0123456789");
      if (j == i + 1 || j - i - 1 > 2) return 0;
      i = j;
    }
    if (i == n) return 1;
    if (s[i] != '.') return 0;
    i = span(s, n, i + 1, "0123456789_");
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    if (i + 1 >= n || (s[i + 1] != '-' && s[i + 1] != '+')) return 0;
    j = span(s, n, i + 2, "0123456789");
    if (j == i + 2) return 0;
    i = j;
  }
  return i == n;
}

/* A string that a YAML reader (1.2 core, or a 1.1 one such as older
** tools) would read back as something other than this string. */
int ry_needs_quotes(const char *s, size_t n) {
  if (ry_classify(s, n) != SC_STR) return 1;
  if (ry_is_one_of(s, n, YAML11_WORDS)) return 1;
  return yaml11_number(s, n);
}

static int emit_scalar(enc_state *e, const char *s, size_t n, yaml_scalar_style_t style) {
  yaml_event_t ev;
  if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)n, 1, 1, style)) {
    snprintf(e->err, sizeof e->err, "out of memory");
    return 0;
  }
  return emit(e, &ev);
}

static int emit_string(enc_state *e, const char *s, size_t n) {
  yaml_scalar_style_t style = YAML_PLAIN_SCALAR_STYLE;
  if (ry_needs_quotes(s, n)) style = YAML_SINGLE_QUOTED_SCALAR_STYLE;
  else if (memchr(s, '\n', n)) style = YAML_LITERAL_SCALAR_STYLE;
  /* libyaml falls back to a quoted style by itself when plain is not
  ** allowed (leading indicators, ": ", " #", ...) */
  return emit_scalar(e, s, n, style);
}

/* Shortest text that reads back as the same double; integral values keep
** a ".0" so that they stay floats. */
void ry_format_float(double v, char *buf, size_t len) {
  int prec;
  if (isnan(v)) {
    snprintf(buf, len, ".nan");
    return;
  }
  if (isinf(v)) {
    snprintf(buf, len, v < 0 ? "-.inf" : ".inf");
    return;
  }
  prec = lv_float_digits(v);
  snprintf(buf, len, "%.*g", prec, v);
  if (strspn(buf, "-0123456789") == strlen(buf)) strncat(buf, ".0", len - strlen(buf) - 1);
}

static int emit_value(enc_state *e, int idx);

static int emit_key(enc_state *e, int idx) {
  lua_State *L = e->L;
  char num[64];
  switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      return emit_string(e, s, n);
    }
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, idx));
      else ry_format_float(lua_tonumber(L, idx), num, sizeof num);
      return emit_scalar(e, num, strlen(num), YAML_PLAIN_SCALAR_STYLE);
    case LUA_TBOOLEAN:
      return emit_scalar(e, lua_toboolean(L, idx) ? "true" : "false", lua_toboolean(L, idx) ? 4 : 5,
                         YAML_PLAIN_SCALAR_STYLE);
    default:
      return enc_fail(e, "map key of type %s (keys must be strings, numbers or booleans)", luaL_typename(L, idx));
  }
}

static int emit_sequence(enc_state *e, int idx, lua_Integer n) {
  lua_State *L = e->L;
  yaml_event_t ev;
  lua_Integer i;
  int ok;
  yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
                                       n == 0 ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE);
  ok = emit(e, &ev);
  for (i = 1; ok && i <= n; i++) {
    lua_rawgeti(L, idx, i);
    lv_path_push_index(&e->path, i);
    ok = emit_value(e, lua_gettop(L));
    lv_path_pop(&e->path);
    lua_pop(L, 1);
  }
  if (ok) {
    yaml_sequence_end_event_initialize(&ev);
    ok = emit(e, &ev);
  }
  return ok;
}

static int emit_mapping(enc_state *e, int idx) {
  lua_State *L = e->L;
  yaml_event_t ev;
  int nk = lv_push_keys(L, idx), k, keys = lua_gettop(L), ok;
  yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, nk == 0 ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE);
  ok = emit(e, &ev);
  for (k = 1; ok && k <= nk; k++) {
    size_t kl = 0;
    const char *ks;
    lua_rawgeti(L, keys, k);
    ks = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &kl) : "?";
    lv_path_push_key(&e->path, ks, kl);
    ok = emit_key(e, lua_gettop(L));
    if (ok) {
      lua_pushvalue(L, -1);
      lua_rawget(L, idx);
      ok = emit_value(e, lua_gettop(L));
      lua_pop(L, 1);
    }
    lv_path_pop(&e->path);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (ok) {
    yaml_mapping_end_event_initialize(&ev);
    ok = emit(e, &ev);
  }
  return ok;
}

/* A table, refused when it is on the path being encoded (a cycle). */
static int emit_table(enc_state *e, int idx) {
  lua_State *L = e->L;
  lua_Integer n;
  int ok;
  lua_pushvalue(L, idx);
  if (lua_rawget(L, e->visiting) != LUA_TNIL) {
    lua_pop(L, 1);
    return enc_fail(e, "cyclic table");
  }
  lua_pop(L, 1);
  if (++e->depth > YAML_MAX_DEPTH) return enc_fail(e, "nested deeper than %d levels", YAML_MAX_DEPTH);
  luaL_checkstack(L, 8, "nested too deeply");
  lua_pushvalue(L, idx);
  lua_pushboolean(L, 1);
  lua_rawset(L, e->visiting);
  ok = lv_is_sequence(L, idx, &n) ? emit_sequence(e, idx, n) : emit_mapping(e, idx);
  lua_pushvalue(L, idx);
  lua_pushnil(L);
  lua_rawset(L, e->visiting);
  e->depth--;
  return ok;
}

static int emit_value(enc_state *e, int idx) {
  lua_State *L = e->L;
  char num[64];
  switch (lua_type(L, idx)) {
    case LUA_TNIL: return emit_scalar(e, "null", 4, YAML_PLAIN_SCALAR_STYLE);
    case LUA_TBOOLEAN:
      return emit_scalar(e, lua_toboolean(L, idx) ? "true" : "false", lua_toboolean(L, idx) ? 4 : 5,
                         YAML_PLAIN_SCALAR_STYLE);
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, idx));
      else ry_format_float(lua_tonumber(L, idx), num, sizeof num);
      return emit_scalar(e, num, strlen(num), YAML_PLAIN_SCALAR_STYLE);
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      return emit_string(e, s, n);
    }
    case LUA_TTABLE: return emit_table(e, idx);
    case LUA_TLIGHTUSERDATA:
      if (lv_is_null(L, idx)) return emit_scalar(e, "null", 4, YAML_PLAIN_SCALAR_STYLE);
      return enc_fail(e, "cannot encode a light userdata");
    case LUA_TUSERDATA:
      if (luaL_testudata(L, idx, "runbook.secret")) {
        size_t n;
        const char *s = luaL_tolstring(L, idx, &n);
        int ok = emit_string(e, s, n);
        lua_pop(L, 1);
        return ok;
      }
      /* fall through */
    default: return enc_fail(e, "cannot encode a %s", luaL_typename(L, idx));
  }
}

/* Encodes the values at [first, last] as documents; pushes the text. */
int ry_encode_docs(lua_State *L, int list, int single, int indent) {
  enc_state e;
  yaml_event_t ev;
  int ok = 1;
  lua_Integer i, n = single ? 1 : (lua_Integer)luaL_len(L, list);
  memset(&e, 0, sizeof e);
  e.L = L;
  lua_newtable(L);
  e.visiting = lua_gettop(L);
  if (!yaml_emitter_initialize(&e.em)) return luaL_error(L, "cannot initialise the YAML emitter");
  yaml_emitter_set_output(&e.em, write_handler, &e.out);
  yaml_emitter_set_indent(&e.em, indent);
  yaml_emitter_set_width(&e.em, -1);
  yaml_emitter_set_unicode(&e.em, 1);
  yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
  ok = emit(&e, &ev);
  for (i = 1; ok && i <= n; i++) {
    yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, i == 1);
    ok = emit(&e, &ev);
    if (single) lua_pushvalue(L, list);
    else lua_rawgeti(L, list, i);
    if (!single) lv_path_push_index(&e.path, i);
    if (ok) ok = emit_value(&e, lua_gettop(L));
    if (!single) lv_path_pop(&e.path);
    lua_pop(L, 1);
    if (ok) {
      yaml_document_end_event_initialize(&ev, 1);
      ok = emit(&e, &ev);
    }
  }
  if (ok) {
    yaml_stream_end_event_initialize(&ev);
    ok = emit(&e, &ev);
  }
  if (ok && !yaml_emitter_flush(&e.em)) ok = 0;
  yaml_emitter_delete(&e.em);
  lua_pop(L, 1);
  if (!ok) {
    free(e.out.p);
    return rb_error_raise(L, "yaml", "cannot encode: %s", e.err[0] ? e.err : "emitter failed");
  }
  lua_pushlstring(L, e.out.p ? e.out.p : "", e.out.len);
  free(e.out.p);
  return 1;
}

static int opt_indent(lua_State *L, int idx) {
  int indent = 2;
  if (lua_isnoneornil(L, idx)) return indent;
  luaL_checktype(L, idx, LUA_TTABLE);
  {
    lua_Integer v = rb_opt_integer(L, idx, "indent", 2);
    luaL_argcheck(L, v >= 2 && v <= 9, idx, "indent must be 2..9");
    indent = (int)v;
  }
  return indent;
}

int ry_encode(lua_State *L) {
  int indent;
  luaL_checkany(L, 1);
  indent = opt_indent(L, 2);
  return ry_encode_docs(L, 1, 1, indent);
}

int ry_encode_all(lua_State *L) {
  int indent;
  luaL_checktype(L, 1, LUA_TTABLE);
  indent = opt_indent(L, 2);
  return ry_encode_docs(L, 1, 0, indent);
}

/* }====================================================== */

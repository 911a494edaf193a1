/*
** yaml_edit_text.c: the text the editor splices in, in the surrounding
** file's style: scalars in the quote style of the value they replace (or
** plain when that is safe), flow collections where only flow fits, and
** block collections with the file's own indentation (its indent unit, and
** whether sequences sit under their key or indented below it).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <yaml.h>

#include "bindings.h"
#include "luaval.h"
#include "yaml_priv.h"

static int strpbrk_n(const char *s, size_t n, const char *set) {
  size_t i;
  for (i = 0; i < n; i++)
    if (strchr(set, s[i]) && s[i] != '\0') return 1;
  return 0;
}

/* Appends a scalar's text in the given style to b ('flow': it sits inside a
** flow collection). */
int ry_scalar_text(lua_State *L, int idx, yaml_scalar_style_t style, int flow, rb_buf *b) {
  char num[64];
  size_t n, i;
  const char *s;
  switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, idx));
      else ry_format_float(lua_tonumber(L, idx), num, sizeof num);
      return rb_buf_add(b, num, strlen(num));
    case LUA_TBOOLEAN: return rb_buf_add(b, lua_toboolean(L, idx) ? "true" : "false", lua_toboolean(L, idx) ? 4 : 5);
    case LUA_TLIGHTUSERDATA:
    case LUA_TNIL: return rb_buf_add(b, "null", 4);
    default: break;
  }
  s = lua_tolstring(L, idx, &n);
  for (i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 && s[i] != '\t') style = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
  if (style == YAML_PLAIN_SCALAR_STYLE) {
    int plain_ok = n > 0 && !ry_needs_quotes(s, n) && !strchr("-?:,[]{}#&*!|>'\"%@` \t", s[0]) && s[n - 1] != ' '
                   && s[n - 1] != ':' && !memmem(s, n, ": ", 2) && !memmem(s, n, " #", 2)
                   && !(flow && strpbrk_n(s, n, ",[]{}")); /* flow indicators end a plain scalar there */
    if (plain_ok) return rb_buf_add(b, s, n);
    style = YAML_SINGLE_QUOTED_SCALAR_STYLE;
  }
  if (style == YAML_SINGLE_QUOTED_SCALAR_STYLE) {
    if (!rb_buf_add(b, "'", 1)) return 0;
    for (i = 0; i < n; i++)
      if (!rb_buf_add(b, s[i] == '\'' ? "''" : s + i, s[i] == '\'' ? 2 : 1)) return 0;
    return rb_buf_add(b, "'", 1);
  }
  if (!rb_buf_add(b, "\"", 1)) return 0;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      esc[2] = 0;
    }
    else if (c == '\n') strcpy(esc, "\\n");
    else if (c == '\t') strcpy(esc, "\\t");
    else if (c < 0x20) snprintf(esc, sizeof esc, "\\x%02x", c);
    else {
      esc[0] = (char)c;
      esc[1] = 0;
    }
    if (!rb_buf_add(b, esc, strlen(esc))) return 0;
  }
  return rb_buf_add(b, "\"", 1);
}

/* Appends a value in flow style ([a, b], {k: v}), for a place inside a
** flow collection or a flow collection being replaced. Returns 1, 0 when
** out of memory, FLOW_BAD_KEY or FLOW_TOO_DEEP (nothing raised here: the
** caller owns b and frees it before raising). */
int ry_flow_text(lua_State *L, int idx, int depth, rb_buf *b) {
  lua_Integer n, i;
  int ok = 1;
  idx = lua_absindex(L, idx);
  if (!lua_istable(L, idx)) return ry_scalar_text(L, idx, YAML_PLAIN_SCALAR_STYLE, 1, b);
  if (depth >= YAML_MAX_DEPTH) return FLOW_TOO_DEEP; /* a cycle ends here too */
  if (!lua_checkstack(L, 4)) return FLOW_TOO_DEEP;
  if (lv_is_sequence(L, idx, &n)) {
    ok = rb_buf_add(b, "[", 1);
    for (i = 1; ok == 1 && i <= n; i++) {
      lua_rawgeti(L, idx, i);
      ok = i == 1 || rb_buf_add(b, ", ", 2);
      if (ok == 1) ok = ry_flow_text(L, -1, depth + 1, b);
      lua_pop(L, 1);
    }
    return ok == 1 ? rb_buf_add(b, "]", 1) : ok;
  }
  n = lv_push_keys(L, idx);
  ok = rb_buf_add(b, "{", 1);
  for (i = 1; ok == 1 && i <= n; i++) {
    lua_rawgeti(L, -1, i);
    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER) ok = FLOW_BAD_KEY;
    else
      ok = (i == 1 || rb_buf_add(b, ", ", 2)) && ry_scalar_text(L, -1, YAML_PLAIN_SCALAR_STYLE, 1, b)
           && rb_buf_add(b, ": ", 2);
    lua_pushvalue(L, -1);
    lua_rawget(L, idx);
    if (ok == 1) ok = ry_flow_text(L, -1, depth + 1, b);
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
  return ok == 1 ? rb_buf_add(b, "}", 1) : ok;
}

/* Whether the value at idx is a table with nothing in it (written [] or {}). */
int ry_is_empty_table(lua_State *L, int idx) {
  lua_Integer n;
  return lua_istable(L, idx)
         && (lv_is_sequence(L, idx, &n) ? n == 0 : (lua_pushnil(L), lua_next(L, idx) ? (lua_pop(L, 2), 0) : 1));
}

/* {====================================================== the file's block style */

static int indent_of(const char *p, const char *end) {
  int n = 0;
  while (p + n < end && p[n] == ' ') n++;
  return n;
}

/* The next line that holds content (not blank, not only a comment) at or
** after p; NULL when none. */
static const char *next_content(const char *p, const char *end) {
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *eol = nl ? nl : end;
    int ind = indent_of(p, eol);
    if (p + ind < eol && p[ind] != '#') return p;
    p = nl ? nl + 1 : end;
  }
  return NULL;
}

/* Reads the block style off the text: the first key whose value is a
** nested map gives the indent unit; the first key whose value is a block
** sequence gives the sequence's offset (0: "key:\n- a", 2: "key:\n  - a").
** Where the file shows neither: 2 and 2, as talhelper's own examples. */
ry_block_style ry_style_of(const char *text, size_t len) {
  ry_block_style st = { 2, 2 };
  int have_unit = 0, have_seq = 0;
  const char *end = text + len, *p = next_content(text, end);
  while (p && !(have_unit && have_seq)) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *eol = nl ? nl : end, *q;
    int ind = indent_of(p, eol);
    const char *t = eol;
    while (t > p && (t[-1] == ' ' || t[-1] == '\r')) t--;
    q = nl ? next_content(nl + 1, end) : NULL;
    if (q && t > p + ind && t[-1] == ':' && memchr(p + ind, '#', (size_t)(t - p - ind)) == NULL) {
      int qind = indent_of(q, end);
      int dash = q[qind] == '-' && (q + qind + 1 >= end || q[qind + 1] == ' ');
      int off = dash ? (p[ind] == '-' ? qind - ind - 2 : qind - ind) : qind - ind;
      if (dash && !have_seq && p[ind] != '-' && off >= 0 && off <= 8) {
        st.seq_offset = off;
        have_seq = 1;
      }
      else if (!dash && !have_unit && p[ind] != '-' && off >= 1 && off <= 8) {
        st.unit = off;
        have_unit = 1;
      }
    }
    p = q;
  }
  return st;
}

/* }====================================================== */

/* {====================================================== block emitter */

static int spaces(rb_buf *b, int n) {
  int ok = 1;
  while (ok && n-- > 0) ok = rb_buf_add(b, " ", 1);
  return ok;
}

static int emit_block_value(lua_State *L, int idx, int col, ry_block_style st, int depth, rb_buf *b);

/* "key: value" lines of a map at column col (the first line's indent is
** the caller's: `first` says whether it is already written). */
static int emit_block_map(lua_State *L, int idx, int col, ry_block_style st, int depth, int first, rb_buf *b) {
  int nk = lv_push_keys(L, idx), k, ok = 1, keys = lua_gettop(L);
  for (k = 1; ok == 1 && k <= nk; k++) {
    lua_rawgeti(L, keys, k);
    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER) ok = FLOW_BAD_KEY;
    if (ok == 1 && !(first && k == 1)) ok = rb_buf_add(b, "\n", 1) && spaces(b, col);
    if (ok == 1) ok = ry_scalar_text(L, -1, YAML_PLAIN_SCALAR_STYLE, 0, b) && rb_buf_add(b, ":", 1);
    lua_pushvalue(L, -1);
    lua_rawget(L, idx);
    if (ok == 1) ok = emit_block_value(L, lua_gettop(L), col, st, depth + 1, b);
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
  return ok;
}

/* "- item" lines of a sequence at column col. */
static int emit_block_seq(lua_State *L, int idx, lua_Integer n, int col, ry_block_style st, int depth, rb_buf *b) {
  lua_Integer i;
  int ok = 1;
  for (i = 1; ok == 1 && i <= n; i++) {
    lua_rawgeti(L, idx, i);
    ok = rb_buf_add(b, "\n", 1) && spaces(b, col) && rb_buf_add(b, "- ", 2);
    if (ok == 1) ok = ry_block_item(L, lua_gettop(L), col, st, depth + 1, b);
    lua_pop(L, 1);
  }
  return ok;
}

/* After "key:": a scalar or empty table on the same line, a collection on
** the lines below (a map one unit in, a sequence at the file's offset). */
static int emit_block_value(lua_State *L, int idx, int col, ry_block_style st, int depth, rb_buf *b) {
  lua_Integer n;
  if (depth >= YAML_MAX_DEPTH || !lua_checkstack(L, 6)) return FLOW_TOO_DEEP;
  if (!lua_istable(L, idx)) return rb_buf_add(b, " ", 1) && ry_scalar_text(L, idx, YAML_PLAIN_SCALAR_STYLE, 0, b);
  if (ry_is_empty_table(L, idx)) return rb_buf_add(b, lv_is_sequence(L, idx, &n) ? " []" : " {}", 3);
  if (lv_is_sequence(L, idx, &n)) return emit_block_seq(L, idx, n, col + st.seq_offset, st, depth, b);
  return emit_block_map(L, idx, col + st.unit, st, depth, 0, b);
}

int ry_block_item(lua_State *L, int idx, int col, ry_block_style st, int depth, rb_buf *b) {
  lua_Integer n;
  idx = lua_absindex(L, idx);
  if (depth >= YAML_MAX_DEPTH || !lua_checkstack(L, 6)) return FLOW_TOO_DEEP;
  if (!lua_istable(L, idx)) return ry_scalar_text(L, idx, YAML_PLAIN_SCALAR_STYLE, 0, b);
  if (ry_is_empty_table(L, idx)) return rb_buf_add(b, lv_is_sequence(L, idx, &n) ? "[]" : "{}", 2);
  if (lv_is_sequence(L, idx, &n)) return ry_flow_text(L, idx, depth, b); /* "- [a, b]": a list in a list */
  return emit_block_map(L, idx, col + 2, st, depth, 1, b);               /* "- key: v" then keys under it */
}

int ry_block_value(lua_State *L, int idx, int col, ry_block_style st, rb_buf *b) {
  return emit_block_value(L, lua_absindex(L, idx), col, st, 0, b);
}

/* }====================================================== */

/* Pushes the set of anchor names the text's aliases use (a parse error
** is left to the walk, which reports it with its position). */
void ry_push_aliased(lua_State *L, const char *text, size_t len) {
  yaml_parser_t p;
  yaml_event_t ev;
  lua_newtable(L);
  if (!yaml_parser_initialize(&p)) return;
  yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
  while (yaml_parser_parse(&p, &ev)) {
    int done = ev.type == YAML_STREAM_END_EVENT;
    if (ev.type == YAML_ALIAS_EVENT) {
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, (const char *)ev.data.alias.anchor);
    }
    yaml_event_delete(&ev);
    if (done) break;
  }
  yaml_parser_delete(&p);
}

/* Raises for a splice that did not complete (b is already freed). */
int ry_raise_splice(lua_State *L, const char *name, int ok) {
  switch (ok) {
    case FLOW_BAD_KEY:
      return rb_error_raise(L, "yaml", "%s: the value has a key that is neither a string nor a number", name);
    case FLOW_TOO_DEEP:
      return rb_error_raise(L, "yaml", "%s: the value is nested deeper than %d levels (or is cyclic)", name,
                            YAML_MAX_DEPTH);
    case EDIT_SEQ_ITEM_TABLE:
      return rb_error_raise(L, "yaml", "%s: replacing a sequence item with a map or list is not supported", name);
    case EDIT_EMPTY_BLOCK_MAP: return rb_error_raise(L, "yaml", "%s: cannot insert a key into an empty map", name);
    default: return luaL_error(L, "not enough memory");
  }
}

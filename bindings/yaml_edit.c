/*
** yaml_edit.c: runbook.yaml.edit, the comment-preserving editor.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <yaml.h>

#include "bindings.h"
#include "luaval.h"
#include "yaml_priv.h"

/* {====================================================== edit */

/*
** edit(text, path, value): finds the node at `path` with libyaml's event
** marks (byte offsets) and splices new bytes into the text; every other
** byte, comments and blank lines included, is kept as it was.
*/

typedef struct edit_state {
  dec_state d; /* parser + error reporting */
  int path;    /* stack index of the path list */
  int plen;
  /* target found */
  int found;
  size_t t_start, t_end; /* byte span of the target node */
  yaml_scalar_style_t t_style;
  int t_is_scalar;
  int t_block;   /* a block collection or block scalar */
  int t_in_flow; /* inside a flow collection: only flow style fits */
  int t_keycol;  /* column of the key owning the target (-1 in a sequence) */
  /* parent of a missing final key */
  int insert; /* 1 when the last path key is missing in a block map */
  int ins_flow;
  int ins_col;      /* column of the map's keys */
  size_t ins_after; /* end of the map's last content */
  int ins_empty;
  /* where the walk stopped when a parent is missing */
  int missing_at; /* path index that does not exist (1-based), 0 if none */
  char missing_why[128];
} edit_state;

/* Skips the node at d->ev; returns the byte offset where its content ends. */
static size_t skip_node(dec_state *d) {
  size_t end = d->ev.end_mark.index;
  int depth = 0;
  for (;;) {
    switch (d->ev.type) {
      case YAML_SEQUENCE_START_EVENT:
      case YAML_MAPPING_START_EVENT: depth++; break;
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT:
        depth--;
        /* a flow collection ends at its bracket; a block one at its last content */
        if (d->ev.start_mark.index != d->ev.end_mark.index) end = d->ev.end_mark.index;
        break;
      case YAML_SCALAR_EVENT:
      case YAML_ALIAS_EVENT: end = d->ev.end_mark.index; break;
      default: break;
    }
    if (depth == 0) return end;
    ry_next_event(d);
  }
}

static int path_is_key(edit_state *s, int i, const char **k, size_t *kl) {
  lua_State *L = s->d.L;
  int is_str;
  lua_rawgeti(L, s->path, i);
  is_str = lua_type(L, -1) == LUA_TSTRING;
  if (is_str) *k = lua_tolstring(L, -1, kl); /* the path table keeps it alive */
  lua_pop(L, 1);
  return is_str;
}

static lua_Integer path_index(edit_state *s, int i) {
  lua_State *L = s->d.L;
  lua_Integer v;
  lua_rawgeti(L, s->path, i);
  v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

static void record_target(edit_state *s, int keycol) {
  dec_state *d = &s->d;
  s->found = 1;
  s->t_keycol = keycol;
  s->t_start = d->ev.start_mark.index;
  s->t_is_scalar = d->ev.type == YAML_SCALAR_EVENT;
  if (s->t_is_scalar) {
    s->t_style = d->ev.data.scalar.style;
    s->t_block = s->t_style == YAML_LITERAL_SCALAR_STYLE || s->t_style == YAML_FOLDED_SCALAR_STYLE;
  }
  else if (d->ev.type == YAML_MAPPING_START_EVENT)
    s->t_block = d->ev.data.mapping_start.style != YAML_FLOW_MAPPING_STYLE;
  else if (d->ev.type == YAML_SEQUENCE_START_EVENT)
    s->t_block = d->ev.data.sequence_start.style != YAML_FLOW_SEQUENCE_STYLE;
  s->t_end = skip_node(d);
}

static void edit_walk(edit_state *s, int depth, int keycol, int in_flow);

/* The rest of the collection at d->ev, after the part the walk wanted. */
static void skip_rest(dec_state *d, yaml_event_type_t end) {
  for (;;) {
    ry_next_event(d);
    if (d->ev.type == end) return;
    skip_node(d);
  }
}

/* In a map, the value of key k; or where a missing last key would go. */
static void walk_map(edit_state *s, int depth, int in_flow, const char *k, size_t kl) {
  dec_state *d = &s->d;
  int flow = d->ev.data.mapping_start.style == YAML_FLOW_MAPPING_STYLE;
  int col = -1, n = 0;
  size_t last = d->ev.end_mark.index;
  for (;;) {
    int match, kc;
    ry_next_event(d);
    if (d->ev.type == YAML_MAPPING_END_EVENT) break;
    kc = (int)d->ev.start_mark.column;
    if (col < 0) col = kc;
    n++;
    match =
      d->ev.type == YAML_SCALAR_EVENT && d->ev.data.scalar.length == kl && memcmp(d->ev.data.scalar.value, k, kl) == 0;
    skip_node(d); /* the key */
    ry_next_event(d);
    if (match) {
      edit_walk(s, depth + 1, kc, in_flow || flow);
      skip_rest(d, YAML_MAPPING_END_EVENT);
      return;
    }
    last = skip_node(d); /* the value */
  }
  if (depth == s->plen) {
    s->insert = 1;
    s->ins_flow = flow;
    s->ins_col = col;
    s->ins_after = last;
    s->ins_empty = n == 0;
  }
  else {
    s->missing_at = depth;
    snprintf(s->missing_why, sizeof s->missing_why, "no key '%.*s'", (int)(kl > 60 ? 60 : kl), k);
  }
}

/* In a sequence, item number path[depth]. */
static void walk_seq(edit_state *s, int depth, int in_flow) {
  dec_state *d = &s->d;
  lua_Integer want = path_index(s, depth), i = 0;
  int flow = d->ev.data.sequence_start.style == YAML_FLOW_SEQUENCE_STYLE;
  for (;;) {
    ry_next_event(d);
    if (d->ev.type == YAML_SEQUENCE_END_EVENT) break;
    if (++i == want) {
      edit_walk(s, depth + 1, -1, in_flow || flow);
      skip_rest(d, YAML_SEQUENCE_END_EVENT);
      return;
    }
    skip_node(d);
  }
  s->missing_at = depth;
  snprintf(s->missing_why, sizeof s->missing_why, "the sequence has %lld items", (long long)i);
}

/* Walks the node at d->ev looking for path[depth..]. */
static void edit_walk(edit_state *s, int depth, int keycol, int in_flow) {
  dec_state *d = &s->d;
  const char *k;
  size_t kl;
  if (depth > s->plen) {
    s->t_in_flow = in_flow;
    record_target(s, keycol);
    return;
  }
  if (d->ev.type == YAML_MAPPING_START_EVENT && path_is_key(s, depth, &k, &kl)) {
    walk_map(s, depth, in_flow, k, kl);
    return;
  }
  if (d->ev.type == YAML_SEQUENCE_START_EVENT && !path_is_key(s, depth, &k, &kl)) {
    walk_seq(s, depth, in_flow);
    return;
  }
  s->missing_at = depth;
  snprintf(s->missing_why, sizeof s->missing_why, "%s",
           d->ev.type == YAML_MAPPING_START_EVENT    ? "a map, indexed with a number"
           : d->ev.type == YAML_SEQUENCE_START_EVENT ? "a sequence, indexed with a key"
                                                     : "a scalar");
  skip_node(d);
}

static int edit_run(lua_State *L) {
  edit_state *s = (edit_state *)lua_touserdata(L, 1);
  dec_state *d = &s->d;
  do ry_next_event(d);
  while (d->ev.type == YAML_STREAM_START_EVENT);
  if (d->ev.type != YAML_DOCUMENT_START_EVENT) ry_error_at(d, d->ev.start_mark, "empty document");
  ry_next_event(d);
  edit_walk(s, 1, -1, 0);
  return 0;
}

static int strpbrk_n(const char *s, size_t n, const char *set) {
  size_t i;
  for (i = 0; i < n; i++)
    if (strchr(set, s[i]) && s[i] != '\0') return 1;
  return 0;
}

/* Appends a scalar's text in the given style to b ('flow': it sits inside a
** flow collection). */
static int scalar_text(lua_State *L, int idx, yaml_scalar_style_t style, int flow, rb_buf *b) {
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

/* Appends the YAML block of a table, each line indented by `col` spaces,
** starting on a new line. */
static int block_text(lua_State *L, int idx, int col, rb_buf *b) {
  size_t n;
  const char *s, *p, *end;
  ry_encode_docs(L, idx, 1, 2);
  s = lua_tolstring(L, -1, &n);
  end = s + n;
  for (p = s; p < end;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
    int i;
    if (!rb_buf_add(b, "\n", 1)) return 0;
    for (i = 0; i < col; i++)
      if (!rb_buf_add(b, " ", 1)) return 0;
    if (!rb_buf_add(b, p, len)) return 0;
    p += len + (nl != NULL);
  }
  lua_pop(L, 1);
  return 1;
}

/* Appends a value in flow style ([a, b], {k: v}), for a place inside a
** flow collection or a flow collection being replaced. Returns 1, 0 when
** out of memory, FLOW_BAD_KEY or FLOW_TOO_DEEP (nothing raised here: the
** caller owns b and frees it before raising). */
#define FLOW_BAD_KEY (-1)
#define FLOW_TOO_DEEP (-2)
static int flow_text(lua_State *L, int idx, int depth, rb_buf *b) {
  lua_Integer n, i;
  int ok = 1;
  idx = lua_absindex(L, idx);
  if (!lua_istable(L, idx)) return scalar_text(L, idx, YAML_PLAIN_SCALAR_STYLE, 1, b);
  if (depth >= YAML_MAX_DEPTH) return FLOW_TOO_DEEP; /* a cycle ends here too */
  if (!lua_checkstack(L, 4)) return FLOW_TOO_DEEP;
  if (lv_is_sequence(L, idx, &n)) {
    ok = rb_buf_add(b, "[", 1);
    for (i = 1; ok == 1 && i <= n; i++) {
      lua_rawgeti(L, idx, i);
      ok = i == 1 || rb_buf_add(b, ", ", 2);
      if (ok == 1) ok = flow_text(L, -1, depth + 1, b);
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
      ok = (i == 1 || rb_buf_add(b, ", ", 2)) && scalar_text(L, -1, YAML_PLAIN_SCALAR_STYLE, 1, b)
           && rb_buf_add(b, ": ", 2);
    lua_pushvalue(L, -1);
    lua_rawget(L, idx);
    if (ok == 1) ok = flow_text(L, -1, depth + 1, b);
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
  return ok == 1 ? rb_buf_add(b, "}", 1) : ok;
}

static int is_flow_table(lua_State *L, int idx) {
  lua_Integer n;
  return lua_istable(L, idx)
         && (lv_is_sequence(L, idx, &n) ? n == 0 : (lua_pushnil(L), lua_next(L, idx) ? (lua_pop(L, 2), 0) : 1));
}

/* More outcomes of a splice beside 1 (done) and 0 (out of memory). */
#define EDIT_SEQ_ITEM_TABLE (-3)
#define EDIT_EMPTY_BLOCK_MAP (-4)

/* Checks that every item of the path is a key or an index >= 1. */
static int check_path(lua_State *L) {
  int i, plen = (int)luaL_len(L, 2);
  luaL_argcheck(L, plen > 0, 2, "empty path");
  for (i = 1; i <= plen; i++) {
    int t = lua_rawgeti(L, 2, i);
    if (!(t == LUA_TSTRING || (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1)))
      luaL_argerror(L, 2, lua_pushfstring(L, "item %d must be a key (string) or an index >= 1", i));
    lua_pop(L, 1);
  }
  return plen;
}

/* Walks the text's events to the target (or the map missing its last
** key); a parse error is raised after libyaml's state is freed. */
static void find_target(lua_State *L, edit_state *s, const char *text, size_t len) {
  int rc;
  if (!yaml_parser_initialize(&s->d.parser)) luaL_error(L, "cannot initialise the YAML parser");
  yaml_parser_set_input_string(&s->d.parser, (const unsigned char *)text, len);
  lua_pushcfunction(L, edit_run);
  lua_pushlightuserdata(L, s);
  lua_pushvalue(L, 2); /* the path: index 2 inside edit_run as well */
  rc = lua_pcall(L, 2, 0, 0);
  if (s->d.have_event) yaml_event_delete(&s->d.ev);
  yaml_parser_delete(&s->d.parser);
  if (rc != LUA_OK) lua_error(L);
}

/* Raises "path a.b[2] does not exist (why)". */
static int raise_missing(lua_State *L, const edit_state *s) {
  int i;
  lua_pushliteral(L, "");
  for (i = 1; i <= s->missing_at; i++) {
    lua_rawgeti(L, 2, i);
    if (lua_type(L, -1) == LUA_TSTRING) lua_pushfstring(L, "%s%s", i > 1 ? "." : "", lua_tostring(L, -1));
    else lua_pushfstring(L, "[%d]", (int)lua_tointeger(L, -1));
    lua_remove(L, -2);
    lua_concat(L, 2);
  }
  return rb_error_raise(L, "yaml", "%s: path %s does not exist (%s)", s->d.name, lua_tostring(L, -1), s->missing_why);
}

/* The empty collection's flow text, "[]" or "{}". */
static int empty_text(lua_State *L, int idx, rb_buf *b) {
  lua_Integer n;
  return rb_buf_add(b, lv_is_sequence(L, idx, &n) ? "[]" : "{}", 2);
}

/* Replaces the target node's bytes with the value at index 3. */
static int splice_replace(lua_State *L, const edit_state *s, const char *text, size_t len, rb_buf *b) {
  size_t end = s->t_end;
  int ok;
  if (s->t_block && s->t_is_scalar) /* keep the newline(s) a block scalar ends with */
    while (end > s->t_start && (text[end - 1] == '\n' || text[end - 1] == ' ')) end--;
  ok = rb_buf_add(b, text, s->t_start);
  if (ok && lua_istable(L, 3) && (s->t_in_flow || (!s->t_is_scalar && !s->t_block)))
    ok = flow_text(L, 3, 0, b); /* a flow place, or a flow collection: stays flow */
  else if (ok && lua_istable(L, 3) && !is_flow_table(L, 3)) {
    if (s->t_keycol < 0) return EDIT_SEQ_ITEM_TABLE;
    /* drop the blanks after "key:" so that the block starts on its own line */
    while (b->len > 0 && (b->p[b->len - 1] == ' ' || b->p[b->len - 1] == '\n')) b->len--;
    ok = block_text(L, 3, s->t_keycol + 2, b);
  }
  else if (ok && lua_istable(L, 3)) ok = empty_text(L, 3, b);
  else if (ok)
    ok = scalar_text(L, 3, s->t_is_scalar && !s->t_block ? s->t_style : YAML_PLAIN_SCALAR_STYLE, s->t_in_flow, b);
  if (ok == 1) ok = rb_buf_add(b, text + end, len - end);
  return ok;
}

/* {a: 1} -> {a: 1, key: value}; {} -> {key: value} */
static int splice_insert_flow(lua_State *L, const edit_state *s, const char *text, size_t len, rb_buf *b) {
  size_t at = s->ins_after;
  int ok = rb_buf_add(b, text, at) && (s->ins_empty || rb_buf_add(b, ", ", 2));
  lua_rawgeti(L, 2, s->plen);
  if (ok) ok = scalar_text(L, lua_gettop(L), YAML_PLAIN_SCALAR_STYLE, 1, b) && rb_buf_add(b, ": ", 2);
  lua_pop(L, 1);
  if (ok) ok = flow_text(L, 3, 0, b);
  if (ok == 1) ok = rb_buf_add(b, text + at, len - at);
  return ok;
}

/* A new "key: value" line at the map's column, after the line holding the
** map's last content. */
static int splice_insert_block(lua_State *L, const edit_state *s, const char *text, size_t len, rb_buf *b) {
  size_t at = s->ins_after;
  int ok, i;
  if (s->ins_empty) return EDIT_EMPTY_BLOCK_MAP;
  if (!(at > 0 && text[at - 1] == '\n')) {
    const char *nl = memchr(text + at, '\n', len - at);
    at = nl ? (size_t)(nl - text) + 1 : len;
  }
  ok = rb_buf_add(b, text, at);
  if (ok && at > 0 && text[at - 1] != '\n') ok = rb_buf_add(b, "\n", 1);
  for (i = 0; ok && i < s->ins_col; i++) ok = rb_buf_add(b, " ", 1);
  lua_rawgeti(L, 2, s->plen); /* the new key */
  if (ok) ok = scalar_text(L, lua_gettop(L), YAML_PLAIN_SCALAR_STYLE, 0, b) && rb_buf_add(b, ":", 1);
  lua_pop(L, 1);
  if (ok && lua_istable(L, 3) && !is_flow_table(L, 3)) ok = block_text(L, 3, s->ins_col + 2, b);
  else if (ok && lua_istable(L, 3)) ok = rb_buf_add(b, " ", 1) && empty_text(L, 3, b);
  else if (ok) ok = rb_buf_add(b, " ", 1) && scalar_text(L, 3, YAML_PLAIN_SCALAR_STYLE, 0, b);
  if (ok) ok = rb_buf_add(b, "\n", 1) && rb_buf_add(b, text + at, len - at);
  return ok;
}

/* Raises for a splice that did not complete (b is already freed). */
static int raise_splice(lua_State *L, const char *name, int ok) {
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

int ry_edit(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  edit_state s;
  rb_buf b = { NULL, 0, 0 };
  int ok = 1;
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checkany(L, 3);
  memset(&s, 0, sizeof s);
  s.d.L = L;
  s.d.name = ry_opt_name(L, 4, "yaml");
  s.path = 2;
  s.plen = check_path(L);
  find_target(L, &s, text, len);
  if (s.missing_at) return raise_missing(L, &s);
  if (s.found) ok = splice_replace(L, &s, text, len, &b);
  else if (s.insert && s.ins_flow) ok = splice_insert_flow(L, &s, text, len, &b);
  else if (s.insert) ok = splice_insert_block(L, &s, text, len, &b);
  if (ok != 1) {
    free(b.p);
    return raise_splice(L, s.d.name, ok);
  }
  lua_pushlstring(L, b.p, b.len);
  free(b.p);
  /* the result must still parse: never hand back a broken file */
  ry_decode_all_into(L, lua_tostring(L, -1), b.len, s.d.name);
  lua_pop(L, 1);
  return 1;
}

/* }====================================================== */

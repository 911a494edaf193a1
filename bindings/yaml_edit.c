/*
** yaml_edit.c: runbook.yaml.edit, the comment-preserving editor.
**
** edit(text, path, value) finds the place `path` names with libyaml's
** event marks (byte offsets) and splices new bytes into the text; every
** other byte, comments and blank lines included, is kept as it was. Three
** operations: replace the node at path; insert a missing last key into a
** map (a missing sequence, path ending in index 1, is created as the map's
** new key); append to a sequence (path ending in #list + 1). A place
** reached through an alias, or a node whose anchor is aliased elsewhere,
** is refused: the change would change every user of the anchor. A key
** that a map only has through a merge (<<: *x) is overridden locally, by
** an explicit key in that map. The result is re-parsed and must equal the
** original document with exactly this change (verify_edit).
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <yaml.h>

#include "bindings.h"
#include "luaval.h"
#include "yaml_priv.h"

/* Stack slots inside edit_run: the state, the path, the decoded original
** document, the set of anchor names some alias uses. */
#define E_PATH 2
#define E_DOC 3
#define E_ALIASED 4

typedef struct edit_state {
  dec_state d; /* parser + error reporting */
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
  int insert;   /* the last path key is missing in a map */
  int ins_wrap; /* ... and the path goes on with index 1: create the sequence */
  int ins_flow;
  int ins_col;      /* column of the map's keys */
  size_t ins_after; /* end of the map's last content */
  int ins_empty;
  /* the sequence the path appends to */
  int append;
  int app_flow, app_col, app_empty;
  yaml_scalar_style_t app_style; /* the quote style of the last scalar item: a new one follows it */
  size_t app_after;              /* end of the last item's content (block) */
  size_t app_close;              /* the closing bracket (flow) */
  /* refusals */
  int missing_at; /* path index that does not exist (1-based), 0 if none */
  char missing_why[128];
  int shared;       /* the place is shared with other parts of the document */
  int shared_depth; /* how much of the path leads to it (0: the document) */
  char shared_why[192];
  ry_block_style style; /* the text's (ry_replay's) */
  yaml_mark_t at;       /* where an error points: the node refused, the parent lacking the path, the target */
} edit_state;

/* {====================================================== walking the events */

/* Skips the node at d->ev; returns the byte offset where its content ends.
** A collection is passed in one step, by the jump its start event has in
** the recorded events (index_jumps, yaml_edit_many.c: the walk always runs
** on a recording); d->ev is left at its end event. */
static size_t skip_node(dec_state *d) {
  if (d->ev.type == YAML_SEQUENCE_START_EVENT || d->ev.type == YAML_MAPPING_START_EVENT) {
    size_t at = d->rpos - 1; /* the event in d->ev */
    d->rpos = d->jump[at] + 1;
    d->ev = d->replay[d->jump[at]];
    return d->jend[at];
  }
  return d->ev.end_mark.index; /* a scalar or an alias */
}

static int path_is_key(edit_state *s, int i, const char **k, size_t *kl) {
  lua_State *L = s->d.L;
  int is_str;
  lua_rawgeti(L, E_PATH, i);
  is_str = lua_type(L, -1) == LUA_TSTRING;
  if (is_str) *k = lua_tolstring(L, -1, kl); /* the path table keeps it alive */
  lua_pop(L, 1);
  return is_str;
}

static lua_Integer path_index(edit_state *s, int i) {
  lua_State *L = s->d.L;
  lua_Integer v;
  lua_rawgeti(L, E_PATH, i);
  v = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
  lua_pop(L, 1);
  return v;
}

/* Refuses the path at depth, whose node starts at `at`: shared with other
** places of the document. */
static void refuse_shared(edit_state *s, int depth, yaml_mark_t at, const char *fmt, ...)
  __attribute__((format(printf, 4, 5)));
static void refuse_shared(edit_state *s, int depth, yaml_mark_t at, const char *fmt, ...) {
  va_list ap;
  if (s->shared) return;
  s->shared = 1;
  s->shared_depth = depth;
  s->at = at;
  va_start(ap, fmt);
  vsnprintf(s->shared_why, sizeof s->shared_why, fmt, ap);
  va_end(ap);
}

/* The anchor of the node at d->ev, if any. */
static const char *anchor_of(const yaml_event_t *ev) {
  switch (ev->type) {
    case YAML_MAPPING_START_EVENT: return (const char *)ev->data.mapping_start.anchor;
    case YAML_SEQUENCE_START_EVENT: return (const char *)ev->data.sequence_start.anchor;
    case YAML_SCALAR_EVENT: return (const char *)ev->data.scalar.anchor;
    default: return NULL;
  }
}

/* A node on the path that carries an anchor some alias uses: changing it
** changes every user. */
static void check_anchor(edit_state *s, int depth) {
  lua_State *L = s->d.L;
  const char *a = anchor_of(&s->d.ev);
  if (a == NULL) return;
  lua_getfield(L, E_ALIASED, a);
  if (lua_toboolean(L, -1))
    refuse_shared(s, depth, s->d.ev.start_mark,
                  "its node is the anchor &%s, which an alias uses elsewhere (the edit would change every use)", a);
  lua_pop(L, 1);
}

/* Whether the decoded document has path[1..depth] (a key a merge gave). */
static int decoded_has(edit_state *s, int depth) {
  lua_State *L = s->d.L;
  int i, has;
  lua_pushvalue(L, E_DOC);
  for (i = 1; i <= depth; i++) {
    if (!lua_istable(L, -1)) {
      lua_pop(L, 1);
      return 0;
    }
    lua_rawgeti(L, E_PATH, i);
    lua_rawget(L, -2);
    lua_remove(L, -2);
  }
  has = !lua_isnil(L, -1);
  lua_pop(L, 1);
  return has;
}

static void record_target(edit_state *s, int keycol) {
  dec_state *d = &s->d;
  s->found = 1;
  s->at = d->ev.start_mark;
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

/* The anchor a merge key's value names: *x, or the first of [*x, *y]. */
static void merge_anchor(dec_state *d, char *buf, size_t len) {
  if (d->ev.type == YAML_ALIAS_EVENT) snprintf(buf, len, "%s", (const char *)d->ev.data.alias.anchor);
  else if (d->ev.type == YAML_SEQUENCE_START_EVENT) {
    buf[0] = '\0';
    for (;;) {
      ry_next_event(d);
      if (d->ev.type == YAML_SEQUENCE_END_EVENT) return;
      if (buf[0] == '\0' && d->ev.type == YAML_ALIAS_EVENT)
        snprintf(buf, len, "%s", (const char *)d->ev.data.alias.anchor);
      skip_node(d);
    }
  }
  else skip_node(d);
}

/* What to do when key path[depth] is not written in this map. */
static void map_key_missing(edit_state *s, int depth, int flow, int col, size_t last, int n, const char *merged,
                            const char *k, size_t kl, yaml_mark_t map_at) {
  int via_merge = merged[0] != '\0' && decoded_has(s, depth);
  int wrap = depth == s->plen - 1 && path_index(s, s->plen) == 1;
  if (via_merge && depth < s->plen) {
    refuse_shared(s, depth, map_at,
                  "the key comes from the merge <<: *%s (the edit would change every map that merges it)", merged);
    return;
  }
  if (depth == s->plen || wrap) {
    /* a key the map has only through a merge is overridden locally */
    s->insert = 1;
    s->ins_wrap = wrap;
    s->ins_flow = flow;
    s->ins_col = col;
    s->ins_after = last;
    s->ins_empty = n == 0;
    s->at = map_at;
    return;
  }
  s->missing_at = depth;
  s->at = map_at;
  snprintf(s->missing_why, sizeof s->missing_why, "no key '%.*s'", (int)(kl > 60 ? 60 : kl), k);
}

/* In a map, the value of key k; or where a missing last key would go. */
static void walk_map(edit_state *s, int depth, int in_flow, const char *k, size_t kl) {
  dec_state *d = &s->d;
  int flow = d->ev.data.mapping_start.style == YAML_FLOW_MAPPING_STYLE;
  int col = -1, n = 0;
  size_t last = d->ev.end_mark.index;
  yaml_mark_t map_at = d->ev.start_mark;
  char merged[64] = "";
  for (;;) {
    int match, kc, is_merge;
    ry_next_event(d);
    if (d->ev.type == YAML_MAPPING_END_EVENT) break;
    kc = (int)d->ev.start_mark.column;
    if (col < 0) col = kc;
    n++;
    match =
      d->ev.type == YAML_SCALAR_EVENT && d->ev.data.scalar.length == kl && memcmp(d->ev.data.scalar.value, k, kl) == 0;
    is_merge = d->ev.type == YAML_SCALAR_EVENT && d->ev.data.scalar.length == 2
               && d->ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE && memcmp(d->ev.data.scalar.value, "<<", 2) == 0;
    skip_node(d); /* the key */
    ry_next_event(d);
    if (match) {
      edit_walk(s, depth + 1, kc, in_flow || flow);
      skip_rest(d, YAML_MAPPING_END_EVENT);
      return;
    }
    if (is_merge) {
      last = d->ev.end_mark.index;
      merge_anchor(d, merged, sizeof merged);
      last = d->ev.end_mark.index > last ? d->ev.end_mark.index : last;
      continue;
    }
    last = skip_node(d); /* the value */
  }
  map_key_missing(s, depth, flow, col, last, n, merged, k, kl, map_at);
}

/* In a sequence, item number path[depth], or the place one past its end. */
static void walk_seq(edit_state *s, int depth, int in_flow) {
  dec_state *d = &s->d;
  lua_Integer want = path_index(s, depth), i = 0;
  int flow = d->ev.data.sequence_start.style == YAML_FLOW_SEQUENCE_STYLE;
  int col = (int)d->ev.start_mark.column; /* a block sequence starts at its first "-" */
  size_t last = d->ev.end_mark.index;
  yaml_mark_t seq_at = d->ev.start_mark;
  yaml_scalar_style_t style = YAML_PLAIN_SCALAR_STYLE;
  for (;;) {
    ry_next_event(d);
    if (d->ev.type == YAML_SEQUENCE_END_EVENT) break;
    if (d->ev.type == YAML_SCALAR_EVENT && d->ev.data.scalar.style != YAML_LITERAL_SCALAR_STYLE
        && d->ev.data.scalar.style != YAML_FOLDED_SCALAR_STYLE)
      style = d->ev.data.scalar.style;
    if (++i == want) {
      edit_walk(s, depth + 1, -1, in_flow || flow);
      skip_rest(d, YAML_SEQUENCE_END_EVENT);
      return;
    }
    last = skip_node(d);
  }
  if (want == i + 1 && depth == s->plen) {
    s->append = 1;
    s->app_flow = flow;
    s->app_col = col < 0 ? 0 : col;
    s->app_empty = i == 0;
    s->app_style = style;
    s->app_after = last;
    s->app_close = d->ev.start_mark.index; /* "]" of a flow sequence */
    s->t_in_flow = in_flow || flow;
    s->at = seq_at;
    return;
  }
  s->missing_at = depth;
  s->at = seq_at;
  snprintf(s->missing_why, sizeof s->missing_why, "the sequence has %lld items", (long long)i);
}

/* Walks the node at d->ev looking for path[depth..]. */
static void edit_walk(edit_state *s, int depth, int keycol, int in_flow) {
  dec_state *d = &s->d;
  const char *k;
  size_t kl;
  if (d->ev.type == YAML_ALIAS_EVENT) {
    refuse_shared(s, depth - 1, d->ev.start_mark,
                  "it is the alias *%s (the edit would change the anchor and every use of it)",
                  (const char *)d->ev.data.alias.anchor);
    skip_node(d);
    return;
  }
  check_anchor(s, depth - 1);
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
  s->at = d->ev.start_mark;
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

/* }====================================================== */

/* {====================================================== splicing */

/* The end of the line holding byte `at` (just after its newline). */
static size_t line_end(const char *text, size_t len, size_t at) {
  const char *nl;
  if (at > 0 && text[at - 1] == '\n') return at;
  nl = memchr(text + at, '\n', len - at);
  return nl ? (size_t)(nl - text) + 1 : len;
}

/* Replaces the target node's bytes with the value at index 3. */
static int splice_replace(lua_State *L, const edit_state *s, const char *text, size_t len, ry_splice *sp) {
  rb_buf *b = &sp->frag;
  size_t end = s->t_end;
  if (s->t_block && s->t_is_scalar) /* keep the newline(s) a block scalar ends with */
    while (end > s->t_start && (text[end - 1] == '\n' || text[end - 1] == ' ')) end--;
  sp->a = s->t_start;
  sp->e = end;
  if (lua_istable(L, 3) && (s->t_in_flow || (!s->t_is_scalar && !s->t_block)))
    return ry_flow_text(L, 3, 0, b); /* a flow place, or a flow collection: stays flow */
  if (lua_istable(L, 3) && !ry_is_empty_table(L, 3)) {
    if (s->t_keycol < 0) return EDIT_SEQ_ITEM_TABLE;
    /* drop the blanks after "key:" so that the block starts on its own line */
    while (sp->a > 0 && (text[sp->a - 1] == ' ' || text[sp->a - 1] == '\n')) sp->a--;
    return ry_block_value(L, 3, s->t_keycol, s->style, b);
  }
  if (lua_istable(L, 3)) return ry_flow_text(L, 3, 0, b);
  return ry_scalar_text(L, 3, s->t_is_scalar && !s->t_block ? s->t_style : YAML_PLAIN_SCALAR_STYLE, s->t_in_flow, b);
}

/* Pushes the value a new key gets: index 3, or {index 3} when the path
** creates a sequence. */
static void push_new_value(lua_State *L, int ins_wrap) {
  if (!ins_wrap) {
    lua_pushvalue(L, 3);
    return;
  }
  /* a new list holding the value: [null] for nil, not an empty table
  ** (which would be written as {}, a map), found by fuzz_edit */
  lua_createtable(L, 1, 0);
  lv_set_shape(L, -1, LV_SHAPE_SEQ);
  if (lua_isnil(L, 3)) lv_push_null(L);
  else lua_pushvalue(L, 3);
  lua_rawseti(L, -2, 1);
}

/* {a: 1} -> {a: 1, key: value}; {} -> {key: value} */
static int splice_insert_flow(lua_State *L, const edit_state *s, ry_splice *sp) {
  rb_buf *b = &sp->frag;
  int ok = s->ins_empty || rb_buf_add(b, ", ", 2);
  sp->a = sp->e = s->ins_after;
  lua_rawgeti(L, 2, s->plen - s->ins_wrap);
  if (ok) ok = ry_scalar_text(L, lua_gettop(L), YAML_PLAIN_SCALAR_STYLE, 1, b) && rb_buf_add(b, ": ", 2);
  lua_pop(L, 1);
  push_new_value(L, s->ins_wrap);
  if (ok) ok = ry_flow_text(L, -1, 0, b);
  lua_pop(L, 1);
  return ok;
}

/* Where a new line goes after the line holding byte `after`; starts frag
** with the newline the text's last line may lack. */
static int new_line_at(const char *text, size_t len, size_t after, int col, ry_splice *sp) {
  size_t at = line_end(text, len, after);
  int ok = 1;
  sp->a = sp->e = at;
  sp->linewise = !(at > 0 && text[at - 1] != '\n');
  if (!sp->linewise) ok = rb_buf_add(&sp->frag, "\n", 1);
  for (int i = 0; ok && i < col; i++) ok = rb_buf_add(&sp->frag, " ", 1);
  return ok;
}

/* A new "key: value" line at the map's column, after the line holding the
** map's last content (so a comment after it stays on its own line). */
static int splice_insert_block(lua_State *L, const edit_state *s, const char *text, size_t len, ry_splice *sp) {
  rb_buf *b = &sp->frag;
  int ok;
  if (s->ins_empty) return EDIT_EMPTY_BLOCK_MAP;
  ok = new_line_at(text, len, s->ins_after, s->ins_col, sp);
  lua_rawgeti(L, 2, s->plen - s->ins_wrap); /* the new key */
  if (ok) ok = ry_scalar_text(L, lua_gettop(L), YAML_PLAIN_SCALAR_STYLE, 0, b) && rb_buf_add(b, ":", 1);
  lua_pop(L, 1);
  push_new_value(L, s->ins_wrap);
  if (ok) ok = ry_block_value(L, -1, s->ins_col, s->style, b);
  lua_pop(L, 1);
  return ok == 1 ? rb_buf_add(b, "\n", 1) : ok;
}

/* A new last item: "- value" on the line after the last item's (block), or
** ", value" before the closing bracket (flow). */
static int splice_append(lua_State *L, const edit_state *s, const char *text, size_t len, ry_splice *sp) {
  rb_buf *b = &sp->frag;
  int ok;
  if (s->app_flow) {
    sp->a = sp->e = s->app_close;
    ok = s->app_empty || rb_buf_add(b, ", ", 2);
    if (ok && !lua_istable(L, 3)) ok = ry_scalar_text(L, 3, s->app_style, 1, b);
    else if (ok) ok = ry_flow_text(L, 3, 0, b);
    return ok;
  }
  ok = new_line_at(text, len, s->app_after, s->app_col, sp) && rb_buf_add(b, "- ", 2);
  if (ok && !lua_istable(L, 3)) ok = ry_scalar_text(L, 3, s->app_style, 0, b);
  else if (ok) ok = ry_block_item(L, 3, s->app_col, s->style, 0, b);
  return ok == 1 ? rb_buf_add(b, "\n", 1) : ok;
}

/* }====================================================== */

/* {====================================================== one edit */

int ry_edit_apply(lua_State *L) {
  int i, plen = (int)lua_rawlen(L, 2), wrap = (int)lua_tointeger(L, 4), last = plen - wrap;
  lua_pushvalue(L, 1);
  for (i = 1; i < last; i++) {
    lua_rawgeti(L, 2, i);
    lua_rawget(L, -2);
    lua_remove(L, -2);
  }
  lua_rawgeti(L, 2, last);
  push_new_value(L, wrap);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lv_push_null(L);
  }
  lua_rawset(L, -3);
  return 0;
}

/* Walks the recorded events to the place the path names. */
static void find_target(lua_State *L, edit_state *s, const ry_replay *r, int doc, int aliased) {
  s->d.replay = r->ev;
  s->d.nreplay = r->n;
  s->d.jump = r->jump;
  s->d.jend = r->jend;
  lua_pushcfunction(L, edit_run);
  lua_pushlightuserdata(L, s);
  lua_pushvalue(L, 2); /* E_PATH */
  lua_pushvalue(L, doc);
  lua_pushvalue(L, aliased);
  lua_call(L, 4, 0);
}

/* Pushes path[1..n] as text: nodes[2].patches */
static const char *push_path_text(lua_State *L, int n) {
  int i;
  lua_pushliteral(L, "");
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, i);
    if (lua_type(L, -1) == LUA_TSTRING) lua_pushfstring(L, "%s%s", i > 1 ? "." : "", lua_tostring(L, -1));
    else lua_pushfstring(L, "[%d]", (int)lua_tointeger(L, -1));
    lua_remove(L, -2);
    lua_concat(L, 2);
  }
  return lua_tostring(L, -1);
}

/* Pushes "name:line:col", where an error of the edit points (s->at). */
static const char *push_where(lua_State *L, const edit_state *s) {
  return lua_pushfstring(L, "%s:%d:%d", s->d.name, (int)s->at.line + 1, (int)s->at.column + 1);
}

/* Raises the error on the stack's top, with s->at's line and column as
** fields (as ry_error_at's). */
static int raise_at(lua_State *L, const edit_state *s) {
  rb_error_setint(L, "line", (lua_Integer)s->at.line + 1);
  rb_error_setint(L, "column", (lua_Integer)s->at.column + 1);
  return lua_error(L);
}

static int raise_refusal(lua_State *L, const edit_state *s) {
  const char *where = push_where(L, s);
  if (s->shared) {
    const char *at = push_path_text(L, s->shared_depth);
    const char *all = push_path_text(L, s->plen);
    rb_error_push(L, "yaml", "%s: cannot edit %s: at %s %s", where, all, at[0] ? at : "the top", s->shared_why);
    return raise_at(L, s);
  }
  rb_error_push(L, "yaml", "%s: path %s does not exist (%s)", where, push_path_text(L, s->missing_at), s->missing_why);
  return raise_at(L, s);
}

int ry_edit_locate(lua_State *L) {
  size_t len;
  const char *text = lua_tolstring(L, 1, &len);
  const ry_replay *r = (const ry_replay *)lua_touserdata(L, 7);
  ry_splice *sp = (ry_splice *)lua_touserdata(L, 8);
  edit_state s;
  int ok = 1;
  memset(&s, 0, sizeof s);
  s.d.L = L;
  s.d.name = lua_tostring(L, 4);
  s.plen = (int)lua_rawlen(L, 2);
  s.style = r->style;
  find_target(L, &s, r, 5, 6);
  if (s.shared || s.missing_at) return raise_refusal(L, &s);
  sp->ins_wrap = s.ins_wrap;
  if (s.found) ok = splice_replace(L, &s, text, len, sp);
  else if (s.insert && s.ins_flow) ok = splice_insert_flow(L, &s, sp);
  else if (s.insert) ok = splice_insert_block(L, &s, text, len, sp);
  else if (s.append) ok = splice_append(L, &s, text, len, sp);
  if (ok != 1) return ry_raise_splice(L, push_where(L, &s), ok);
  return 0;
}

/* }====================================================== */

/*
** yaml.c: runbook.yaml on libyaml.
**
** decode(text [, {name=}])      one document (error if the stream has several)
** decode_all(text [, {name=}])  every document, as a list
** encode(value [, {indent=}])   one document, block style, deterministic
** encode_all(list [, opts])     several documents separated by "---"
** edit(text, path, value [, {name=}])  change one value, keep every other
**                               byte (yaml_edit.c)
** null, array([t]), map([t]), order(t, keys)
**
** Plain scalars resolve by the YAML 1.2 core schema, as Go's yaml.v3 does
** for the values Talos and talhelper read: null/~/empty, true/false in three
** spellings, decimal/0o/0x integers, floats with .inf/.nan. yes/no/on/off
** stay strings. Quoted scalars are strings. Maps keep their key order.
*/
#include <errno.h>
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

/* Billion-laughs guard: the nodes reachable through aliases may not exceed
** this many, nor ALIAS_RATIO times the nodes written in the text. */
#define ALIAS_MAX_NODES 1000000
#define ALIAS_RATIO 100

#define TAG_PREFIX "tag:yaml.org,2002:"

/* {====================================================== decode */

int ry_error_at(dec_state *d, yaml_mark_t m, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  rb_error_push(d->L, "yaml", "%s:%d:%d: %s", d->name, (int)m.line + 1, (int)m.column + 1, msg);
  rb_error_setint(d->L, "line", (lua_Integer)m.line + 1);
  rb_error_setint(d->L, "column", (lua_Integer)m.column + 1);
  return lua_error(d->L);
}

/* Reads the next event into d->ev (freeing the previous one). */
void ry_next_event(dec_state *d) {
  if (d->replay) { /* the stream was recorded whole: it never ends early */
    if (d->rpos >= d->nreplay) luaL_error(d->L, "%s: the recorded events ended early", d->name);
    d->ev = d->replay[d->rpos++];
    return;
  }
  if (d->have_event) yaml_event_delete(&d->ev);
  d->have_event = 0;
  if (!yaml_parser_parse(&d->parser, &d->ev)) {
    yaml_parser_t *p = &d->parser;
    if (p->context)
      ry_error_at(d, p->problem_mark, "%s (%s at line %d)", p->problem ? p->problem : "parse error", p->context,
                  (int)p->context_mark.line + 1);
    ry_error_at(d, p->problem_mark, "%s", p->problem ? p->problem : "parse error");
  }
  d->have_event = 1;
}

static void decode_node(dec_state *d, long long *count);

/* Records the value at the top of the stack (left there) under 'anchor',
** with the number of nodes it stands for. */
static void remember_anchor_named(dec_state *d, const char *anchor, long long count) {
  lua_State *L = d->L;
  if (anchor == NULL) return;
  lua_createtable(L, 2, 0);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, 1);
  lua_pushinteger(L, count);
  lua_rawseti(L, -2, 2);
  lua_setfield(L, d->anchors, anchor);
}

static void decode_scalar(dec_state *d) {
  lua_State *L = d->L;
  const char *v = (const char *)d->ev.data.scalar.value;
  size_t n = d->ev.data.scalar.length;
  const char *tag = (const char *)d->ev.data.scalar.tag;
  if (tag && strncmp(tag, TAG_PREFIX, strlen(TAG_PREFIX)) == 0) {
    const char *t = tag + strlen(TAG_PREFIX);
    scalar_kind k = ry_classify(v, n);
    if (strcmp(t, "str") == 0) lua_pushlstring(L, v, n);
    else if (strcmp(t, "null") == 0) lv_push_null(L);
    else if (strcmp(t, "bool") == 0 && k == SC_BOOL) lua_pushboolean(L, v[0] == 't' || v[0] == 'T');
    else if (strcmp(t, "int") == 0 && k == SC_INT) ry_push_int(L, v, n);
    else if (strcmp(t, "float") == 0 && (k == SC_FLOAT || k == SC_INT)) ry_push_float(L, v, n);
    else if (strcmp(t, "binary") == 0 || strcmp(t, "timestamp") == 0) lua_pushlstring(L, v, n);
    else ry_error_at(d, d->ev.start_mark, "cannot decode '%.*s' as !!%s", (int)(n > 40 ? 40 : n), v, t);
  }
  else if (tag && strcmp(tag, "!") == 0) lua_pushlstring(L, v, n); /* non-specific: a string */
  else if (d->ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE) lua_pushlstring(L, v, n);
  else ry_push_resolved(L, v, n);
}

/* A collection's entries wait on the Lua stack, above four slots (anchor
** name, table, order list, merged keys), and go into a table made to their
** exact size when the collection ends: a table grown one key at a time
** would be rehashed at every power of two. A very long collection is moved
** across every PENDING_MAX entries, and a map before a merge key. */
#define PENDING_MAX 256

/* The key marks of pending map entries, a stack shared by nested maps. */
static void push_mark(dec_state *d, yaml_mark_t m) {
  if (d->nmarks == d->capmarks) {
    size_t cap = d->capmarks ? 2 * d->capmarks : 64;
    yaml_mark_t *p = realloc(d->marks, cap * sizeof *p);
    if (p == NULL) luaL_error(d->L, "not enough memory");
    d->marks = p;
    d->capmarks = cap;
  }
  d->marks[d->nmarks++] = m;
}

/* Config files repeat the same few key sequences thousands of times (every
** route has network, gateway, metric): maps with the same string keys in
** the same order share one order list, found by the identity of the keys
** (equal short strings are one object in Lua; the list keeps its keys, so
** an address cannot be reused while the cache lives). Pushes the list and
** returns SHARED_NEW (first sighting) or SHARED_SEEN (the same keys passed
** the duplicate check in an earlier map), or returns SHARED_NONE when a key
** is not a string. A shared list is never changed: a map that takes a merge
** key gets a list of its own. */
#define SHARE_MAX_KEYS 16
enum { SHARED_NONE, SHARED_NEW, SHARED_SEEN };
#define SHARE_SLOTS 1024 /* a power of two; distinct key sequences cached */

typedef struct shared_list {
  unsigned hash;
  int n;   /* 0: a free slot */
  int ref; /* index in the cache's Lua list */
  const void *ids[SHARE_MAX_KEYS];
} shared_list;

static int shared_order(dec_state *d, int first, int n) {
  lua_State *L = d->L;
  const void *ids[SHARE_MAX_KEYS];
  unsigned h = 2166136261u;
  int i, probe;
  if (n > SHARE_MAX_KEYS) return SHARED_NONE;
  for (i = 0; i < n; i++) {
    if (lua_type(L, first + 2 * i) != LUA_TSTRING) return SHARED_NONE;
    ids[i] = lua_topointer(L, first + 2 * i);
    h = (h ^ (unsigned)((size_t)ids[i] >> 4)) * 16777619u;
  }
  if (d->share == NULL) {
    d->share = calloc(SHARE_SLOTS, sizeof *d->share);
    if (d->share == NULL) luaL_error(L, "not enough memory");
  }
  for (probe = 0; probe < 8; probe++) {
    shared_list *e = &d->share[(h + (unsigned)probe) & (SHARE_SLOTS - 1)];
    if (e->n == 0) { /* first of its kind: list it */
      lv_new_order(L, n);
      for (i = 0; i < n; i++) {
        lua_pushvalue(L, first + 2 * i);
        lua_rawseti(L, -2, i + 1);
      }
      lua_pushvalue(L, -1);
      e->ref = ++d->nshared;
      lua_rawseti(L, d->order_cache, e->ref);
      e->hash = h;
      e->n = n;
      memcpy(e->ids, ids, (size_t)n * sizeof ids[0]);
      return SHARED_NEW;
    }
    if (e->hash == h && e->n == n && memcmp(e->ids, ids, (size_t)n * sizeof ids[0]) == 0) {
      lua_rawgeti(L, d->order_cache, e->ref);
      return SHARED_SEEN;
    }
  }
  return SHARED_NONE; /* the neighbourhood is full: a list of its own */
}

/* Moves the pending key/value pairs above slots+3 into the map at slots+1
** (made here, to size, if it does not exist yet). Keys are listed in the
** order list at slots+2 when the map may end with more than one key. A key
** met twice is an error, unless its first value came from a merge key. */
static void flush_pairs(dec_state *d, int slots, int final) {
  lua_State *L = d->L;
  int map = slots + 1, order = slots + 2, merged = slots + 3, first = slots + 4;
  int n = (lua_gettop(L) - first + 1) / 2, i, shared = SHARED_NONE;
  size_t mbase = d->nmarks - (size_t)n;
  lua_Integer len = 0;
  if (lua_isnil(L, map)) { /* then the order list is nil too */
    lua_createtable(L, 0, n);
    lua_replace(L, map);
    if (final && n > 1 && (shared = shared_order(d, first, n)) != SHARED_NONE) lua_replace(L, order);
    else if (!final || n > 1) {
      lv_new_order(L, n);
      lua_replace(L, order);
    }
  }
  else len = (lua_Integer)lua_rawlen(L, order);
  if (shared == SHARED_SEEN) { /* these very keys were checked before */
    for (i = 0; i < n; i++) {
      lua_pushvalue(L, first + 2 * i);
      lua_pushvalue(L, first + 2 * i + 1);
      lua_rawset(L, map);
    }
  }
  else
    for (i = 0; i < n; i++) {
      int k = first + 2 * i;
      lua_pushvalue(L, k);
      if (lua_rawget(L, map) != LUA_TNIL) {
        lua_pop(L, 1);
        lua_pushvalue(L, k);
        if (lua_isnil(L, merged) || lua_rawget(L, merged) == LUA_TNIL)
          ry_error_at(d, d->marks[mbase + (size_t)i], "mapping key \"%s\" already defined", luaL_tolstring(L, k, NULL));
        lua_pop(L, 1);
        lua_pushvalue(L, k);
        lua_pushnil(L);
        lua_rawset(L, merged); /* an explicit key overrides a merged one */
      }
      else {
        lua_pop(L, 1);
        if (shared == SHARED_NONE && !lua_isnil(L, order)) {
          lua_pushvalue(L, k);
          lua_rawseti(L, order, ++len);
        }
      }
      lua_pushvalue(L, k);
      lua_pushvalue(L, k + 1);
      lua_rawset(L, map);
    }
  lua_settop(L, merged);
  d->nmarks = mbase;
}

/* Merges the map at the top of the stack (a << value, popped) into the map
** at slots+1 for the keys it does not have yet, listing them in the order
** list and the merged set. */
static void merge_one(dec_state *d, int slots, yaml_mark_t at) {
  lua_State *L = d->L;
  int map = slots + 1, order = slots + 2, merged = slots + 3, src = lua_gettop(L);
  lua_Integer i, n, len = (lua_Integer)lua_rawlen(L, order);
  if (!lua_istable(L, src) || lv_get_shape(L, src) == LV_SHAPE_SEQ)
    ry_error_at(d, at, "merge key << needs a map or a list of maps");
  n = lv_push_keys(L, src); /* its order, or sorted */
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, map) == LUA_TNIL) {
      lua_pop(L, 1);
      lua_pushvalue(L, -1);
      lua_pushvalue(L, -1);
      lua_rawget(L, src);
      lua_rawset(L, map);
      lua_pushvalue(L, -1);
      lua_pushboolean(L, 1);
      lua_rawset(L, merged);
      lua_rawseti(L, order, ++len);
    }
    else lua_pop(L, 2);
  }
  lua_settop(L, src - 1);
}

static int is_merge_key(const yaml_event_t *ev) {
  return ev->type == YAML_SCALAR_EVENT && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE
         && ev->data.scalar.tag == NULL && ev->data.scalar.length == 2 && memcmp(ev->data.scalar.value, "<<", 2) == 0;
}

/* A merge key's value (at the next event): a map or a list of maps, whose
** keys go into the map under way; the keys before it are flushed first,
** so that explicit keys win either way. */
static void decode_merge(dec_state *d, int slots, yaml_mark_t key_mark, long long *count) {
  lua_State *L = d->L;
  long long c = 0;
  flush_pairs(d, slots, 0);
  if (lua_isnil(L, slots + 3)) {
    lua_newtable(L);
    lua_replace(L, slots + 3);
  }
  ry_next_event(d);
  decode_node(d, &c);
  *count += c;
  if (lua_istable(L, -1) && lv_get_shape(L, -1) == LV_SHAPE_SEQ) {
    lua_Integer i, n = (lua_Integer)lua_rawlen(L, -1);
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      merge_one(d, slots, key_mark);
    }
    lua_pop(L, 1);
  }
  else merge_one(d, slots, key_mark);
}

/* Pushes the key at d->ev: a scalar (a null key keeps its text, since a
** Lua table cannot hold a nil key); a collection as key is refused. */
static void decode_key(dec_state *d, yaml_mark_t key_mark, long long *count) {
  lua_State *L = d->L;
  const yaml_event_t *ev = &d->ev;
  if (ev->type == YAML_MAPPING_START_EVENT || ev->type == YAML_SEQUENCE_START_EVENT)
    ry_error_at(d, key_mark, "complex mapping keys (a map or list used as a key) are not supported");
  if (ev->type == YAML_SCALAR_EVENT && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && ev->data.scalar.tag == NULL
      && ry_classify((const char *)ev->data.scalar.value, ev->data.scalar.length) == SC_NULL) {
    lua_pushlstring(L, (const char *)ev->data.scalar.value, ev->data.scalar.length); /* "null", "~", "" */
    d->nodes++;
    return;
  }
  decode_node(d, count);
  if (lua_istable(L, -1)) ry_error_at(d, key_mark, "complex mapping keys are not supported");
  if (lv_is_null(L, -1)) {
    lua_pop(L, 1);
    lua_pushliteral(L, "null");
  } /* !!null or an alias to null */
  if (lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) != lua_tonumber(L, -1))
    ry_error_at(d, key_mark, ".nan is not supported as a mapping key");
}

/* Marks the finished map at slots+1 where it matters (an empty map must
** stay a map; key order matters from two keys on), records its anchor,
** and leaves only the map above slots-1. */
static void finish_mapping(dec_state *d, int slots, long long count) {
  lua_State *L = d->L;
  if (!lua_isnil(L, slots + 2) && lua_rawlen(L, slots + 2) > 1) {
    lua_pushvalue(L, slots + 2);
    lv_mark_order(L, slots + 1);
  }
  else if (lua_rawlen(L, slots + 1) == 0) {
    lua_pushnil(L);
    if (lua_next(L, slots + 1) == 0) lv_mark_shape(L, d->seq_mt, slots + 1, LV_SHAPE_MAP);
    else lua_pop(L, 2);
  }
  if (!lua_isnil(L, slots)) {
    lua_pushvalue(L, slots + 1);
    remember_anchor_named(d, lua_tostring(L, slots), count);
    lua_pop(L, 1);
  }
  lua_settop(L, slots + 1);
  lua_remove(L, slots); /* leaves the map */
}

static void decode_mapping(dec_state *d, long long *count) {
  lua_State *L = d->L;
  int slots, npending = 0;
  const char *anchor = (const char *)d->ev.data.mapping_start.anchor;
  luaL_checkstack(L, 16, "YAML nested too deeply");
  /* the anchor name must survive the event: keep it in Lua */
  if (anchor) lua_pushstring(L, anchor);
  else lua_pushnil(L);
  slots = lua_gettop(L);
  lua_pushnil(L); /* the map, made when it is filled */
  lua_pushnil(L); /* its key order */
  lua_pushnil(L); /* keys that came from a merge */
  for (;;) {
    yaml_mark_t key_mark;
    long long c = 0;
    ry_next_event(d);
    if (d->ev.type == YAML_MAPPING_END_EVENT) break;
    luaL_checkstack(L, 8, "YAML nested too deeply"); /* room for the next pair */
    key_mark = d->ev.start_mark;
    if (is_merge_key(&d->ev)) {
      decode_merge(d, slots, key_mark, count);
      npending = 0;
      continue;
    }
    decode_key(d, key_mark, &c);
    push_mark(d, key_mark);
    ry_next_event(d);
    decode_node(d, &c); /* value */
    *count += c;
    if (++npending == PENDING_MAX) {
      flush_pairs(d, slots, 0);
      npending = 0;
    }
  }
  flush_pairs(d, slots, 1);
  finish_mapping(d, slots, *count);
}

/* Moves the pending items above slots+1 into the list at slots+1 (made
** here, to size, if it does not exist yet); *n counts the items so far. */
static void flush_items(lua_State *L, int slots, lua_Integer *n) {
  int first = slots + 2, top = lua_gettop(L), i;
  if (lua_isnil(L, slots + 1)) {
    lua_createtable(L, top - first + 1, 0);
    lua_replace(L, slots + 1);
  }
  for (i = first; i <= top; i++) {
    lua_pushvalue(L, i);
    lua_rawseti(L, slots + 1, ++*n);
  }
  lua_settop(L, slots + 1);
}

static void decode_sequence(dec_state *d, long long *count) {
  lua_State *L = d->L;
  const char *anchor = (const char *)d->ev.data.sequence_start.anchor;
  lua_Integer n = 0;
  int slots, npending = 0;
  luaL_checkstack(L, 8, "YAML nested too deeply");
  if (anchor) lua_pushstring(L, anchor);
  else lua_pushnil(L);
  slots = lua_gettop(L);
  lua_pushnil(L); /* the list, made when it is filled */
  for (;;) {
    long long c = 0;
    ry_next_event(d);
    if (d->ev.type == YAML_SEQUENCE_END_EVENT) break;
    luaL_checkstack(L, 8, "YAML nested too deeply");
    decode_node(d, &c);
    *count += c;
    if (++npending == PENDING_MAX) {
      flush_items(L, slots, &n);
      npending = 0;
    }
  }
  flush_items(L, slots, &n);
  /* every list is marked: merge keys tell lists from maps by it, and a
  ** list emptied by a runbook still encodes as [] */
  lv_mark_shape(L, d->seq_mt, slots + 1, LV_SHAPE_SEQ);
  if (!lua_isnil(L, slots)) {
    lua_pushvalue(L, slots + 1);
    remember_anchor_named(d, lua_tostring(L, slots), *count);
    lua_pop(L, 1);
  }
  lua_remove(L, slots); /* leaves the list */
}

/* Decodes the node whose first event is d->ev; pushes its value and adds
** the number of nodes it stands for to *count. */
static void decode_node(dec_state *d, long long *count) {
  lua_State *L = d->L;
  *count += 1;
  d->nodes++;
  if (++d->depth > YAML_MAX_DEPTH) ry_error_at(d, d->ev.start_mark, "nested deeper than %d levels", YAML_MAX_DEPTH);
  switch (d->ev.type) {
    case YAML_SCALAR_EVENT: {
      const char *anchor = (const char *)d->ev.data.scalar.anchor;
      decode_scalar(d);
      if (anchor) remember_anchor_named(d, anchor, 1);
      break;
    }
    case YAML_SEQUENCE_START_EVENT: decode_sequence(d, count); break;
    case YAML_MAPPING_START_EVENT: decode_mapping(d, count); break;
    case YAML_ALIAS_EVENT: {
      const char *a = (const char *)d->ev.data.alias.anchor;
      long long c;
      if (lua_getfield(L, d->anchors, a) == LUA_TNIL)
        ry_error_at(d, d->ev.start_mark, "unknown anchor '%s' referenced (or it refers to a node that contains it)", a);
      lua_rawgeti(L, -1, 2);
      c = lua_tointeger(L, -1);
      lua_pop(L, 1);
      d->alias_nodes += c;
      *count += c - 1;
      if (d->alias_nodes > ALIAS_MAX_NODES || d->alias_nodes > ALIAS_RATIO * (d->nodes + 1000))
        ry_error_at(d, d->ev.start_mark,
                    "document expands too many aliases (%lld nodes): refusing it as a possible billion-laughs input",
                    d->alias_nodes);
      lua_rawgeti(L, -1, 1);
      lua_remove(L, -2);
      break;
    }
    default: ry_error_at(d, d->ev.start_mark, "unexpected YAML event");
  }
  d->depth--;
}

/* Protected body of decode/decode_all: pushes a list of documents. Args:
** lightuserdata dec_state. */
static int decode_stream(lua_State *L) {
  dec_state *d = (dec_state *)lua_touserdata(L, 1);
  lua_Integer n = 0;
  lv_push_marks(L);
  d->seq_mt = lua_gettop(L) - 1;
  lua_newtable(L);
  d->order_cache = lua_gettop(L);
  lua_newtable(L); /* documents */
  lv_set_shape(L, -1, LV_SHAPE_SEQ);
  for (;;) {
    long long c = 0;
    ry_next_event(d);
    if (d->ev.type == YAML_STREAM_START_EVENT) continue;
    if (d->ev.type == YAML_STREAM_END_EVENT) break;
    if (d->ev.type != YAML_DOCUMENT_START_EVENT) ry_error_at(d, d->ev.start_mark, "expected a document");
    lua_newtable(L); /* anchors are per document */
    d->anchors = lua_gettop(L);
    ry_next_event(d);
    decode_node(d, &c);
    lua_rawseti(L, -3, ++n);
    lua_pop(L, 1);
    ry_next_event(d); /* document end */
  }
  return 1;
}

const char *ry_opt_name(lua_State *L, int idx, const char *def) {
  const char *name = def;
  if (lua_istable(L, idx)) {
    lua_getfield(L, idx, "name");
    if (lua_isstring(L, -1)) name = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  else if (!lua_isnoneornil(L, idx)) luaL_typeerror(L, idx, "table");
  return name;
}

/* Parses the whole stream; pushes the list of documents or raises. */
void ry_decode_all_into(lua_State *L, const char *s, size_t len, const char *name) {
  dec_state d;
  int rc, paused;
  memset(&d, 0, sizeof d);
  d.L = L;
  d.name = name;
  if (!yaml_parser_initialize(&d.parser)) luaL_error(L, "cannot initialise the YAML parser");
  yaml_parser_set_input_string(&d.parser, (const unsigned char *)s, len);
  lua_pushcfunction(L, decode_stream);
  lua_pushlightuserdata(L, &d);
  paused = rb_gc_pause(L, len);
  rc = lua_pcall(L, 1, 1, 0);
  rb_gc_resume(L, paused);
  if (d.have_event) yaml_event_delete(&d.ev);
  yaml_parser_delete(&d.parser);
  free(d.marks);
  free(d.share);
  if (rc != LUA_OK) lua_error(L);
}

static int ly_decode_all(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  ry_decode_all_into(L, s, len, ry_opt_name(L, 2, "yaml"));
  return 1;
}

static int ly_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  const char *name = ry_opt_name(L, 2, "yaml");
  ry_decode_all_into(L, s, len, name);
  if (lua_rawlen(L, -1) > 1)
    return rb_error_raise(L, "yaml", "%s: the stream holds %d documents where one was expected (use decode_all)", name,
                          (int)lua_rawlen(L, -1));
  lua_rawgeti(L, -1, 1);
  return 1;
}

/* }====================================================== */

static int ly_array(lua_State *L) {
  return lv_mark_fn(L, LV_SHAPE_SEQ);
}
static int ly_map(lua_State *L) {
  return lv_mark_fn(L, LV_SHAPE_MAP);
}

/* order(t, keys): keys of t are encoded in this order (others after them,
** sorted). Returns t. */
static int ly_order(lua_State *L) {
  lua_Integer i, n;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  n = luaL_len(L, 2);
  lua_createtable(L, (int)n, 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, i);
    lua_rawseti(L, -2, i);
  }
  lv_set_order(L, 1);
  lv_set_shape(L, 1, LV_SHAPE_MAP);
  lua_settop(L, 1);
  return 1;
}

static const luaL_Reg yaml_funcs[] = { { "array", ly_array }, { "decode", ly_decode }, { "decode_all", ly_decode_all },
                                       { "edit", ry_edit },   { "encode", ry_encode }, { "encode_all", ry_encode_all },
                                       { "map", ly_map },     { "order", ly_order },   { NULL, NULL } };

int luaopen_runbook_yaml(lua_State *L) {
  luaL_newlib(L, yaml_funcs);
  lv_push_null(L);
  lua_setfield(L, -2, "null");
  return 1;
}

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

/* {====================================================== scalar resolution */

typedef enum { SC_NULL, SC_BOOL, SC_INT, SC_FLOAT, SC_STR } scalar_kind;

static int is_one_of(const char *s, size_t n, const char *const *words) {
  for (; *words; words++) if (strlen(*words) == n && memcmp(*words, s, n) == 0) return 1;
  return 0;
}

static const char *const NULLS[] = {"null", "Null", "NULL", "~", NULL};
static const char *const TRUES[] = {"true", "True", "TRUE", NULL};
static const char *const FALSES[] = {"false", "False", "FALSE", NULL};
static const char *const INFS[] = {".inf", ".Inf", ".INF", NULL};
static const char *const NANS[] = {".nan", ".NaN", ".NAN", NULL};

/* Core schema float: [-+]? ( \.[0-9]+ | [0-9]+ ( \.[0-9]* )? ) ( [eE][-+]?[0-9]+ )? */
static int is_core_float(const char *s, size_t n) {
  size_t i = 0, digits = 0;
  if (i < n && (s[i] == '-' || s[i] == '+')) i++;
  if (i < n && s[i] == '.') {
    i++;
    while (i < n && s[i] >= '0' && s[i] <= '9') { i++; digits++; }
    if (digits == 0) return 0;
  }
  else {
    while (i < n && s[i] >= '0' && s[i] <= '9') { i++; digits++; }
    if (digits == 0) return 0;
    if (i < n && s[i] == '.') {
      i++;
      while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    }
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    size_t ed = 0;
    i++;
    if (i < n && (s[i] == '-' || s[i] == '+')) i++;
    while (i < n && s[i] >= '0' && s[i] <= '9') { i++; ed++; }
    if (ed == 0) return 0;
  }
  return i == n;
}

static int all_digits(const char *s, size_t n, int base) {
  size_t i;
  if (n == 0) return 0;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    int ok = base == 16 ? ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'))
                        : (c >= '0' && c < '0' + base);
    if (!ok) return 0;
  }
  return 1;
}

/* Classifies a plain scalar by the core schema. Most scalars are words:
** the first byte rules out every other kind before any comparison. */
static scalar_kind classify(const char *s, size_t n) {
  size_t sign;
  if (n == 0) return SC_NULL;
  switch (s[0]) {
    case 'n': case 'N': case '~': return is_one_of(s, n, NULLS) ? SC_NULL : SC_STR;
    case 't': case 'T': return is_one_of(s, n, TRUES) ? SC_BOOL : SC_STR;
    case 'f': case 'F': return is_one_of(s, n, FALSES) ? SC_BOOL : SC_STR;
    case '.': case '+': case '-': break;
    default: if (s[0] < '0' || s[0] > '9') return SC_STR;
  }
  sign = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (all_digits(s + sign, n - sign, 10)) return SC_INT;
  if (n > 2 && s[0] == '0' && s[1] == 'o' && all_digits(s + 2, n - 2, 8)) return SC_INT;
  if (n > 2 && s[0] == '0' && s[1] == 'x' && all_digits(s + 2, n - 2, 16)) return SC_INT;
  if (is_one_of(s + sign, n - sign, INFS) || is_one_of(s, n, NANS)) return SC_FLOAT;
  if (is_core_float(s, n)) return SC_FLOAT;
  return SC_STR;
}

/* Pushes the integer of a core-schema int; one beyond int64 becomes a float. */
static void push_int(lua_State *L, const char *s, size_t n) {
  char buf[128];
  long long v;
  int base = 10;
  const char *p = buf;
  char *end;
  if (n >= sizeof buf) { lua_pushnumber(L, HUGE_VAL); return; }
  memcpy(buf, s, n);
  buf[n] = '\0';
  if (n > 2 && s[0] == '0' && s[1] == 'o') { base = 8; p = buf + 2; }
  else if (n > 2 && s[0] == '0' && s[1] == 'x') { base = 16; p = buf + 2; }
  errno = 0;
  v = strtoll(p, &end, base);
  if (errno == ERANGE) lua_pushnumber(L, strtod(buf, NULL));   /* too big for an integer */
  else lua_pushinteger(L, (lua_Integer)v);
}

static void push_float(lua_State *L, const char *s, size_t n) {
  char buf[128];
  size_t sign = (n > 0 && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  if (is_one_of(s + sign, n - sign, INFS)) { lua_pushnumber(L, s[0] == '-' ? -HUGE_VAL : HUGE_VAL); return; }
  if (is_one_of(s, n, NANS)) { lua_pushnumber(L, NAN); return; }
  if (n >= sizeof buf) n = sizeof buf - 1;
  memcpy(buf, s, n);
  buf[n] = '\0';
  lua_pushnumber(L, strtod(buf, NULL));
}

static void push_resolved(lua_State *L, const char *s, size_t n) {
  switch (classify(s, n)) {
    case SC_NULL: lv_push_null(L); break;
    case SC_BOOL: lua_pushboolean(L, s[0] == 't' || s[0] == 'T'); break;
    case SC_INT: push_int(L, s, n); break;
    case SC_FLOAT: push_float(L, s, n); break;
    case SC_STR: lua_pushlstring(L, s, n); break;
  }
}

/* }====================================================== */

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
  if (d->have_event) yaml_event_delete(&d->ev);
  d->have_event = 0;
  if (!yaml_parser_parse(&d->parser, &d->ev)) {
    yaml_parser_t *p = &d->parser;
    if (p->context)
      ry_error_at(d, p->problem_mark, "%s (%s at line %d)", p->problem ? p->problem : "parse error",
                   p->context, (int)p->context_mark.line + 1);
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
    scalar_kind k = classify(v, n);
    if (strcmp(t, "str") == 0) lua_pushlstring(L, v, n);
    else if (strcmp(t, "null") == 0) lv_push_null(L);
    else if (strcmp(t, "bool") == 0 && k == SC_BOOL) lua_pushboolean(L, v[0] == 't' || v[0] == 'T');
    else if (strcmp(t, "int") == 0 && k == SC_INT) push_int(L, v, n);
    else if (strcmp(t, "float") == 0 && (k == SC_FLOAT || k == SC_INT)) push_float(L, v, n);
    else if (strcmp(t, "binary") == 0 || strcmp(t, "timestamp") == 0) lua_pushlstring(L, v, n);
    else ry_error_at(d, d->ev.start_mark, "cannot decode '%.*s' as !!%s", (int)(n > 40 ? 40 : n), v, t);
  }
  else if (tag && strcmp(tag, "!") == 0) lua_pushlstring(L, v, n);   /* non-specific: a string */
  else if (d->ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE) lua_pushlstring(L, v, n);
  else push_resolved(L, v, n);
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
#define SHARE_SLOTS 1024        /* a power of two; distinct key sequences cached */

typedef struct shared_list {
  unsigned hash;
  int n;                        /* 0: a free slot */
  int ref;                      /* index in the cache's Lua list */
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
    if (e->n == 0) {                           /* first of its kind: list it */
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
  return SHARED_NONE;                          /* the neighbourhood is full: a list of its own */
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
  if (lua_isnil(L, map)) {                     /* then the order list is nil too */
    lua_createtable(L, 0, n);
    lua_replace(L, map);
    if (final && n > 1 && (shared = shared_order(d, first, n)) != SHARED_NONE) lua_replace(L, order);
    else if (!final || n > 1) {
      lv_new_order(L, n);
      lua_replace(L, order);
    }
  }
  else len = (lua_Integer)lua_rawlen(L, order);
  if (shared == SHARED_SEEN) {                 /* these very keys were checked before */
    for (i = 0; i < n; i++) {
      lua_pushvalue(L, first + 2 * i);
      lua_pushvalue(L, first + 2 * i + 1);
      lua_rawset(L, map);
    }
  }
  else for (i = 0; i < n; i++) {
    int k = first + 2 * i;
    lua_pushvalue(L, k);
    if (lua_rawget(L, map) != LUA_TNIL) {
      lua_pop(L, 1);
      lua_pushvalue(L, k);
      if (lua_isnil(L, merged) || lua_rawget(L, merged) == LUA_TNIL)
        ry_error_at(d, d->marks[mbase + (size_t)i], "mapping key \"%s\" already defined",
                     luaL_tolstring(L, k, NULL));
      lua_pop(L, 1);
      lua_pushvalue(L, k);
      lua_pushnil(L);
      lua_rawset(L, merged);                   /* an explicit key overrides a merged one */
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
  n = lv_push_keys(L, src);   /* its order, or sorted */
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
         && ev->data.scalar.tag == NULL && ev->data.scalar.length == 2
         && memcmp(ev->data.scalar.value, "<<", 2) == 0;
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
  if (ev->type == YAML_SCALAR_EVENT && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE
      && ev->data.scalar.tag == NULL
      && classify((const char *)ev->data.scalar.value, ev->data.scalar.length) == SC_NULL) {
    lua_pushlstring(L, (const char *)ev->data.scalar.value, ev->data.scalar.length);   /* "null", "~", "" */
    d->nodes++;
    return;
  }
  decode_node(d, count);
  if (lua_istable(L, -1)) ry_error_at(d, key_mark, "complex mapping keys are not supported");
  if (lv_is_null(L, -1)) { lua_pop(L, 1); lua_pushliteral(L, "null"); }   /* !!null or an alias to null */
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
  lua_remove(L, slots);                        /* leaves the map */
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
  lua_pushnil(L);                              /* the map, made when it is filled */
  lua_pushnil(L);                              /* its key order */
  lua_pushnil(L);                              /* keys that came from a merge */
  for (;;) {
    yaml_mark_t key_mark;
    long long c = 0;
    ry_next_event(d);
    if (d->ev.type == YAML_MAPPING_END_EVENT) break;
    luaL_checkstack(L, 8, "YAML nested too deeply");   /* room for the next pair */
    key_mark = d->ev.start_mark;
    if (is_merge_key(&d->ev)) {
      decode_merge(d, slots, key_mark, count);
      npending = 0;
      continue;
    }
    decode_key(d, key_mark, &c);
    push_mark(d, key_mark);
    ry_next_event(d);
    decode_node(d, &c);                        /* value */
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
  lua_pushnil(L);                              /* the list, made when it is filled */
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
  lua_remove(L, slots);                        /* leaves the list */
}

/* Decodes the node whose first event is d->ev; pushes its value and adds
** the number of nodes it stands for to *count. */
static void decode_node(dec_state *d, long long *count) {
  lua_State *L = d->L;
  *count += 1;
  d->nodes++;
  if (++d->depth > YAML_MAX_DEPTH)
    ry_error_at(d, d->ev.start_mark, "nested deeper than %d levels", YAML_MAX_DEPTH);
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
        ry_error_at(d, d->ev.start_mark, "document expands too many aliases (%lld nodes): refusing it as a possible billion-laughs input", d->alias_nodes);
      lua_rawgeti(L, -1, 1);
      lua_remove(L, -2);
      break;
    }
    default:
      ry_error_at(d, d->ev.start_mark, "unexpected YAML event");
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
  lua_newtable(L);               /* documents */
  lv_set_shape(L, -1, LV_SHAPE_SEQ);
  for (;;) {
    long long c = 0;
    ry_next_event(d);
    if (d->ev.type == YAML_STREAM_START_EVENT) continue;
    if (d->ev.type == YAML_STREAM_END_EVENT) break;
    if (d->ev.type != YAML_DOCUMENT_START_EVENT) ry_error_at(d, d->ev.start_mark, "expected a document");
    lua_newtable(L);             /* anchors are per document */
    d->anchors = lua_gettop(L);
    ry_next_event(d);
    decode_node(d, &c);
    lua_rawseti(L, -3, ++n);
    lua_pop(L, 1);
    ry_next_event(d);               /* document end */
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
  int rc, gc_was_running;
  memset(&d, 0, sizeof d);
  d.L = L;
  d.name = name;
  if (!yaml_parser_initialize(&d.parser)) luaL_error(L, "cannot initialise the YAML parser");
  yaml_parser_set_input_string(&d.parser, (const unsigned char *)s, len);
  lua_pushcfunction(L, decode_stream);
  lua_pushlightuserdata(L, &d);
  /* the collector would only walk the tree being built: pause it (the
  ** memory is needed anyway) and let it catch up afterwards */
  gc_was_running = lua_gc(L, LUA_GCISRUNNING);
  lua_gc(L, LUA_GCSTOP);
  rc = lua_pcall(L, 1, 1, 0);
  if (gc_was_running) lua_gc(L, LUA_GCRESTART);
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
    return rb_error_raise(L, "yaml", "%s: the stream holds %d documents where one was expected (use decode_all)",
                          name, (int)lua_rawlen(L, -1));
  lua_rawgeti(L, -1, 1);
  return 1;
}

/* }====================================================== */

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

static const char *const YAML11_WORDS[] = {
  "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
  "on", "On", "ON", "off", "Off", "OFF", "=", "<<", NULL
};

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
  if (i < n && s[i] == '.') {                       /* .5, .5e+3 */
    j = span(s, n, i + 1, "0123456789_");
    if (j == i + 1) return 0;
    i = j;
  }
  else {
    if (i >= n || !(s[i] >= '0' && s[i] <= '9')) return 0;
    i = span(s, n, i, "0123456789_");
    while (i < n && s[i] == ':') {                  /* sexagesimal */
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
  if (classify(s, n) != SC_STR) return 1;
  if (is_one_of(s, n, YAML11_WORDS)) return 1;
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
  if (isnan(v)) { snprintf(buf, len, ".nan"); return; }
  if (isinf(v)) { snprintf(buf, len, v < 0 ? "-.inf" : ".inf"); return; }
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
      return emit_scalar(e, lua_toboolean(L, idx) ? "true" : "false", lua_toboolean(L, idx) ? 4 : 5, YAML_PLAIN_SCALAR_STYLE);
    default:
      return enc_fail(e, "map key of type %s (keys must be strings, numbers or booleans)", luaL_typename(L, idx));
  }
}

static int emit_table(enc_state *e, int idx) {
  lua_State *L = e->L;
  yaml_event_t ev;
  lua_Integer n, i;
  int ok = 1;
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
  if (lv_is_sequence(L, idx, &n)) {
    yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, n == 0 ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE);
    ok = emit(e, &ev);
    for (i = 1; ok && i <= n; i++) {
      lua_rawgeti(L, idx, i);
      lv_path_push_index(&e->path, i);
      ok = emit_value(e, lua_gettop(L));
      lv_path_pop(&e->path);
      lua_pop(L, 1);
    }
    if (ok) { yaml_sequence_end_event_initialize(&ev); ok = emit(e, &ev); }
  }
  else {
    int nk = lv_push_keys(L, idx), k, keys = lua_gettop(L);
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
    if (ok) { yaml_mapping_end_event_initialize(&ev); ok = emit(e, &ev); }
  }
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
      return emit_scalar(e, lua_toboolean(L, idx) ? "true" : "false", lua_toboolean(L, idx) ? 4 : 5, YAML_PLAIN_SCALAR_STYLE);
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
    default:
      return enc_fail(e, "cannot encode a %s", luaL_typename(L, idx));
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
    if (ok) { yaml_document_end_event_initialize(&ev, 1); ok = emit(&e, &ev); }
  }
  if (ok) { yaml_stream_end_event_initialize(&ev); ok = emit(&e, &ev); }
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
  lua_getfield(L, idx, "indent");
  if (!lua_isnil(L, -1)) {
    indent = (int)luaL_checkinteger(L, -1);
    luaL_argcheck(L, indent >= 2 && indent <= 9, idx, "indent must be 2..9");
  }
  lua_pop(L, 1);
  return indent;
}

static int ly_encode(lua_State *L) {
  int indent;
  luaL_checkany(L, 1);
  indent = opt_indent(L, 2);
  return ry_encode_docs(L, 1, 1, indent);
}

static int ly_encode_all(lua_State *L) {
  int indent;
  luaL_checktype(L, 1, LUA_TTABLE);
  indent = opt_indent(L, 2);
  return ry_encode_docs(L, 1, 0, indent);
}

/* }====================================================== */

static int ly_array(lua_State *L) { return lv_mark_fn(L, LV_SHAPE_SEQ); }
static int ly_map(lua_State *L) { return lv_mark_fn(L, LV_SHAPE_MAP); }

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

static const luaL_Reg yaml_funcs[] = {
  {"array", ly_array},
  {"decode", ly_decode},
  {"decode_all", ly_decode_all},
  {"edit", ry_edit},
  {"encode", ly_encode},
  {"encode_all", ly_encode_all},
  {"map", ly_map},
  {"order", ly_order},
  {NULL, NULL}
};

int luaopen_runbook_yaml(lua_State *L) {
  luaL_newlib(L, yaml_funcs);
  lv_push_null(L);
  lua_setfield(L, -2, "null");
  return 1;
}

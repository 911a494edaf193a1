/*
** luaval.h: what runbook.yaml and runbook.json share about Lua values:
** the null sentinel, the shape of empty tables (map or array), the key order
** of decoded maps, and the path of a value inside another (for errors).
*/
#ifndef RUNBOOK_LUAVAL_H
#define RUNBOOK_LUAVAL_H

#include <stddef.h>
#include <lua.h>

typedef enum { LV_SHAPE_NONE, LV_SHAPE_MAP, LV_SHAPE_SEQ } lv_shape;

/* Pushes the null sentinel (a light userdata shared by yaml and json). */
void lv_push_null(lua_State *L);
int lv_is_null(lua_State *L, int idx);

/* Marks are metatables, as in dkjson: every decoded list shares one
** ({__runbook_shape = "seq"}), every decoded empty map another ("map"), and
** a map whose key order matters carries its own: its order list, keys in
** 1..n, with __runbook_shape = "map" (maps with the same key sequence in one
** decode share it). Marks have no metamethods, so they change nothing a
** runbook sees but getmetatable(). A table that has a metatable of its own
** keeps it: its marks go to weak-keyed registry tables instead. */
void lv_set_shape(lua_State *L, int idx, lv_shape shape);
lv_shape lv_get_shape(lua_State *L, int idx);
/* Records the key list at the top of the stack (popped; copied) as the order
** of the table at idx. */
void lv_set_order(lua_State *L, int idx);
/* Pushes the recorded key list of the table at idx (to read, not to change),
** or nil. */
int lv_push_order(lua_State *L, int idx);

/* Bulk variants for decoders, whose tables are new (no metatable): push the
** two shared marks once (list, then empty map) and pass the list one's
** stack index as 'marks'. */
void lv_push_marks(lua_State *L);
void lv_mark_shape(lua_State *L, int marks, int idx, lv_shape shape);
/* Pushes a new order list for n keys, to fill in 1..n and pass to
** lv_mark_order. */
void lv_new_order(lua_State *L, int n);
/* Makes the order list at the top of the stack (popped) the mark of idx. */
void lv_mark_order(lua_State *L, int idx);

/* array([t]) / map([t]) of yaml and json: marks t (or a new table, when
** argument 1 is absent) with the shape and returns it. A lua_CFunction body. */
int lv_mark_fn(lua_State *L, lv_shape shape);

/* Decides whether the table at idx encodes as a sequence: marked SEQ, or
** unmarked, non-empty, with exactly the keys 1..n. Sets *n to the length. */
int lv_is_sequence(lua_State *L, int idx, lua_Integer *n);

/* Pushes the keys of the map at idx in encoding order: its recorded order
** (keys still present), then the other keys sorted (numbers first, then
** strings; other key types are left for the caller to reject). Returns the
** number of keys; the list is a new table on the stack. */
int lv_push_keys(lua_State *L, int idx);

/* The fewest significant digits (1..17) that print the finite v so that it
** reads back exactly ("%.*g"). */
int lv_float_digits(double v);

/* Path of the value being converted, for messages like "nodes[2].patches". */
typedef struct lv_path {
  struct {
    int is_index;
    lua_Integer index;
    const char *key;
    size_t keylen;
  } seg[64];
  int depth; /* may exceed 64: deeper segments are elided */
} lv_path;

void lv_path_push_key(lv_path *p, const char *k, size_t len);
void lv_path_push_index(lv_path *p, lua_Integer i);
void lv_path_pop(lv_path *p);
/* Formats the path into buf ("(root)" when empty). */
const char *lv_path_format(const lv_path *p, char *buf, size_t len);

/* Deep equality of two decoded values, shape marks aside (an integer
** differs from the float of the same value; NaN equals NaN). On a
** difference, `where` holds the path to it. */
int lv_same_value(lua_State *L, int a, int b, lv_path *where);

#endif

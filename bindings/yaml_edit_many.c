/*
** yaml_edit_many.c: runbook.yaml.edit's driver.
**
** edit(text, path, value) or edit(text, {{path, value}, ...}): the edits
** are applied in order, each as if to the text the ones before it left.
** The text is parsed once per round, not once per edit: every edit of a
** round is located in the same recorded events (yaml_edit.c) and spliced
** at once, so that many edits to a large file (a talconfig.yaml of a
** thousand nodes) cost about one parse each round instead of one each.
** An edit a round cannot place beside the ones before it (its place
** overlaps theirs, or exists only once they are applied: the second of two
** appends to one list) starts the next round, on their result. The result
** is parsed once more and must read back as the original document with
** exactly these changes, applied in order; anything else is refused.
*/
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <yaml.h>

#include "bindings.h"
#include "luaval.h"
#include "yaml_priv.h"

/* Stack slots of ry_edit once set up. */
#define M_TEXT 1
#define M_EDITS 5
#define M_NAME 6
#define M_DOC 7
#define M_ALIASED 8
#define M_JOB 9
#define M_BASE 10

typedef struct edit_job {
  ry_replay r;
  ry_splice *sp;
  int *order; /* edit numbers (1-based) of this round, then of the next */
  int n;
} edit_job;

static void replay_free(ry_replay *r) {
  size_t i;
  for (i = 0; i < r->n; i++) yaml_event_delete(&r->ev[i]);
  free(r->ev);
  free(r->jump);
  free(r->jend);
  memset(r, 0, sizeof *r);
}

/* Fills r->jump and r->jend in one pass over the recorded events, for the
** editor's skip_node: where a collection's content ends is where its last
** scalar, alias or flow collection's closing bracket ends (a block
** collection's end event marks no text of its own), else where its start
** event ends. Returns 0 when out of memory. */
static int index_jumps(ry_replay *r) {
  size_t *stack, *seq, top = 0, i, last = 0, nupd = 0;
  r->jump = (size_t *)malloc(sizeof *r->jump * (r->n ? r->n : 1));
  r->jend = (size_t *)malloc(sizeof *r->jend * (r->n ? r->n : 1));
  stack = (size_t *)malloc(sizeof *stack * (r->n ? r->n : 1));
  seq = (size_t *)malloc(sizeof *seq * (r->n ? r->n : 1));
  if (!r->jump || !r->jend || !stack || !seq) {
    free(stack);
    free(seq);
    return 0;
  }
  for (i = 0; i < r->n; i++) {
    const yaml_event_t *ev = &r->ev[i];
    switch (ev->type) {
      case YAML_SEQUENCE_START_EVENT:
      case YAML_MAPPING_START_EVENT:
        seq[top] = nupd; /* updates seen before it opened */
        stack[top++] = i;
        break;
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT:
        if (ev->start_mark.index != ev->end_mark.index) last = ev->end_mark.index, nupd++;
        if (top > 0) {
          size_t s = stack[--top];
          r->jump[s] = i;
          r->jend[s] = nupd > seq[top] ? last : r->ev[s].end_mark.index;
        }
        break;
      case YAML_SCALAR_EVENT:
      case YAML_ALIAS_EVENT: last = ev->end_mark.index, nupd++; break;
      default: break;
    }
  }
  free(stack);
  free(seq);
  return 1;
}

/* libyaml's marks count characters, not bytes (scanner.c: SKIP adds 1 to
** mark.index per character whatever its width; a BOM it reads past is not
** counted), and the splices cut bytes. Rewrites every recorded mark's index
** as the byte offset of that character, once per recording; a text of
** ASCII only (no byte >= 0x80, no BOM) is left alone, its indexes are its
** offsets. Columns stay characters: the editor indents with them, and what
** precedes a block key or "-" on its line is spaces and dashes. Returns 0
** when out of memory. */
static int marks_to_bytes(ry_replay *r, const char *text, size_t len) {
  const unsigned char *u = (const unsigned char *)text;
  size_t at = len >= 3 && u[0] == 0xEF && u[1] == 0xBB && u[2] == 0xBF ? 3 : 0; /* the BOM */
  size_t nchars = 0, i, *pos;
  int ascii = at == 0;
  for (i = at; ascii && i < len; i++) ascii = u[i] < 0x80;
  if (ascii) return 1;
  pos = (size_t *)malloc(sizeof *pos * (len - at + 1));
  if (pos == NULL) return 0;
  for (i = at; i < len; i++)
    if ((u[i] & 0xC0) != 0x80) pos[nchars++] = i; /* a lead byte starts a character (libyaml checked the UTF-8) */
  pos[nchars] = len;
  for (i = 0; i < r->n; i++) {
    yaml_mark_t *m[2] = { &r->ev[i].start_mark, &r->ev[i].end_mark };
    int k;
    for (k = 0; k < 2; k++) m[k]->index = pos[m[k]->index < nchars ? m[k]->index : nchars];
  }
  free(pos);
  return 1;
}

static int job_close(lua_State *L) {
  edit_job *j = (edit_job *)luaL_checkudata(L, 1, "runbook.yaml.edit_job");
  int i;
  replay_free(&j->r);
  for (i = 0; j->sp && i < j->n; i++) free(j->sp[i].frag.p);
  free(j->sp);
  free(j->order);
  j->sp = NULL;
  j->order = NULL;
  return 0;
}

/* lua_CFunction (replay, text, name): records every event of the text. */
static int record_run(lua_State *L) {
  ry_replay *r = (ry_replay *)lua_touserdata(L, 1);
  dec_state *d = (dec_state *)lua_touserdata(L, 2);
  for (;;) {
    ry_next_event(d);
    if (r->n == r->cap) {
      size_t cap = r->cap ? r->cap * 2 : 256;
      yaml_event_t *ev = (yaml_event_t *)realloc(r->ev, cap * sizeof *ev);
      if (ev == NULL) return luaL_error(L, "out of memory");
      r->ev = ev;
      r->cap = cap;
    }
    r->ev[r->n++] = d->ev;
    d->have_event = 0; /* the recording owns it now */
    if (d->ev.type == YAML_STREAM_END_EVENT) return 0;
  }
}

static void record(lua_State *L, edit_job *j, const char *text, size_t len, const char *name) {
  dec_state d;
  int rc;
  replay_free(&j->r);
  memset(&d, 0, sizeof d);
  d.L = L;
  d.name = name;
  if (!yaml_parser_initialize(&d.parser)) luaL_error(L, "cannot initialise the YAML parser");
  yaml_parser_set_input_string(&d.parser, (const unsigned char *)text, len);
  lua_pushcfunction(L, record_run);
  lua_pushlightuserdata(L, &j->r);
  lua_pushlightuserdata(L, &d);
  rc = lua_pcall(L, 2, 0, 0);
  if (d.have_event) yaml_event_delete(&d.ev);
  yaml_parser_delete(&d.parser);
  if (rc != LUA_OK) lua_error(L);
  if (!marks_to_bytes(&j->r, text, len) || !index_jumps(&j->r)) luaL_error(L, "out of memory");
  j->r.style = ry_style_of(text, len);
}

/* Checks that every item of a path is a key or an index >= 1. */
static void check_path(lua_State *L, int idx, int edit, int multi) {
  const char *pre = multi ? lua_pushfstring(L, "edit %d: ", edit) : "";
  int i, plen;
  if (lua_type(L, idx) != LUA_TTABLE) luaL_argerror(L, 2, lua_pushfstring(L, "%sthe path must be a table", pre));
  plen = (int)lua_rawlen(L, idx);
  if (plen == 0) luaL_argerror(L, 2, lua_pushfstring(L, "%sempty path", pre));
  for (i = 1; i <= plen; i++) {
    int t = lua_rawgeti(L, idx, i);
    if (!(t == LUA_TSTRING || (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1)))
      luaL_argerror(L, 2, lua_pushfstring(L, "%sitem %d must be a key (string) or an index >= 1", pre, i));
    lua_pop(L, 1);
  }
  if (multi) lua_pop(L, 1);
}

/* Pushes edit k's path and value. */
static void push_edit(lua_State *L, int k) {
  lua_rawgeti(L, M_EDITS, k);
  lua_rawgeti(L, -1, 1);
  lua_rawgeti(L, -2, 2);
  lua_remove(L, -3);
}

/* Whether edits k and m (both placed this round) name the same path. */
static int same_path(lua_State *L, int k, int m) {
  int i, n, same;
  push_edit(L, k);
  lua_pop(L, 1);
  push_edit(L, m);
  lua_pop(L, 1);
  n = (int)lua_rawlen(L, -1);
  same = n == (int)lua_rawlen(L, -2);
  for (i = 1; same && i <= n; i++) {
    lua_rawgeti(L, -1, i);
    lua_rawgeti(L, -3, i);
    same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
  }
  lua_pop(L, 2);
  return same;
}

/* Whether splice x can go into the round beside the placed ones. */
static int fits(lua_State *L, edit_job *j, int placed, int x) {
  const ry_splice *s = &j->sp[j->order[x] - 1];
  int i;
  for (i = 0; i < placed; i++) {
    const ry_splice *t = &j->sp[j->order[i] - 1];
    int both_lines = s->a == s->e && t->a == t->e && s->a == t->a && s->linewise && t->linewise;
    if (both_lines && !same_path(L, j->order[i], j->order[x])) continue; /* in order, one after the other */
    if (s->a <= t->e && t->a <= s->e) return 0;
  }
  return 1;
}

/* Locates the round's edits, in order, until one does not fit; returns how
** many were placed (and applied to the decoded document). */
static int place_round(lua_State *L, edit_job *j, int from) {
  int x;
  for (x = from; x < j->n; x++) {
    int k = j->order[x], rc;
    lua_pushcfunction(L, ry_edit_locate);
    lua_pushvalue(L, M_BASE);
    push_edit(L, k);
    lua_pushvalue(L, M_NAME);
    lua_pushvalue(L, M_DOC);
    lua_pushvalue(L, M_ALIASED);
    lua_pushlightuserdata(L, &j->r);
    lua_pushlightuserdata(L, &j->sp[k - 1]);
    rc = lua_pcall(L, 8, 0, 0);
    if (rc != LUA_OK && x == from) lua_error(L); /* on the text every edit before it left: a real refusal */
    if (rc != LUA_OK || !fits(L, j, x - from, x)) {
      if (rc != LUA_OK) lua_pop(L, 1);
      j->sp[k - 1].frag.len = 0;
      j->sp[k - 1].linewise = 0;
      break;
    }
    lua_pushcfunction(L, ry_edit_apply);
    lua_pushvalue(L, M_DOC);
    push_edit(L, k);
    lua_pushinteger(L, j->sp[k - 1].ins_wrap);
    lua_call(L, 4, 0);
  }
  return x - from;
}

static int by_place(const void *a, const void *b) {
  const ry_splice *x = *(ry_splice *const *)a, *y = *(ry_splice *const *)b;
  if (x->a != y->a) return x->a < y->a ? -1 : 1;
  return x < y ? -1 : x > y; /* edits at one place keep their order */
}

/* Replaces M_BASE with the round's splices applied. */
static void splice_round(lua_State *L, edit_job *j, int from, int placed) {
  size_t len, at = 0;
  const char *text = lua_tolstring(L, M_BASE, &len);
  ry_splice **list = (ry_splice **)malloc(sizeof *list * (size_t)(placed ? placed : 1));
  luaL_Buffer b;
  int i;
  if (list == NULL) luaL_error(L, "out of memory");
  for (i = 0; i < placed; i++) list[i] = &j->sp[j->order[from + i] - 1];
  qsort(list, (size_t)placed, sizeof *list, by_place);
  luaL_buffinit(L, &b);
  for (i = 0; i < placed; i++) {
    luaL_addlstring(&b, text + at, list[i]->a - at);
    luaL_addlstring(&b, list[i]->frag.p ? list[i]->frag.p : "", list[i]->frag.len);
    at = list[i]->e;
  }
  luaL_addlstring(&b, text + at, len - at);
  free(list);
  luaL_pushresult(&b);
  lua_replace(L, M_BASE);
}

/* The edited text must read back as the original document with exactly
** these changes: anything else (a quoting slip, an indentation that moved
** a key) is refused rather than returned. */
static void verify(lua_State *L, const char *name) {
  lv_path where;
  char buf[256];
  size_t len;
  const char *text = lua_tolstring(L, M_BASE, &len);
  memset(&where, 0, sizeof where);
  ry_decode_all_into(L, text, len, name);
  lua_rawgeti(L, -1, 1);
  if (!lv_same_value(L, M_DOC, -1, &where)) {
    lv_path_format(&where, buf, sizeof buf);
    rb_error_raise(L, "yaml",
                   "%s: the edited text would not read back as the document with only this change (it differs at "
                   "%s); nothing was changed",
                   name, buf[0] ? buf : "the top");
  }
  lua_pop(L, 2);
}

/* Sets up slots M_EDITS..M_JOB: the list of {path, value}, the name, the
** decoded original, its aliased anchors and the job. */
static edit_job *setup(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  int multi, i, n;
  edit_job *j;
  luaL_checktype(L, 2, LUA_TTABLE);
  multi = lua_rawgeti(L, 2, 1) == LUA_TTABLE;
  lua_pop(L, 1);
  if (!multi) luaL_checkany(L, 3);
  lua_settop(L, 4);
  if (multi) lua_pushvalue(L, 2);
  else {
    lua_createtable(L, 1, 0);
    lua_createtable(L, 2, 0);
    lua_pushvalue(L, 2);
    lua_rawseti(L, -2, 1);
    lua_pushvalue(L, 3);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, 1);
  }
  n = (int)lua_rawlen(L, M_EDITS);
  for (i = 1; i <= n; i++) {
    if (lua_rawgeti(L, M_EDITS, i) != LUA_TTABLE)
      luaL_argerror(L, 2, lua_pushfstring(L, "edit %d must be a table {path, value}", i));
    lua_rawgeti(L, -1, 1);
    check_path(L, lua_gettop(L), i, multi);
    lua_pop(L, 2);
  }
  lua_pushstring(L, ry_opt_name(L, 4, "yaml"));
  if (len >= 2 && ((text[0] == '\xFE' && text[1] == '\xFF') || (text[0] == '\xFF' && text[1] == '\xFE')))
    rb_error_raise(L, "yaml", "%s: the text is UTF-16 (it starts with a UTF-16 byte order mark); edit reads UTF-8",
                   lua_tostring(L, M_NAME)); /* libyaml would read it, but its marks would not match these bytes */
  ry_decode_all_into(L, text, len, lua_tostring(L, M_NAME)); /* the original, to check the result against */
  lua_rawgeti(L, -1, 1);
  lua_remove(L, -2);
  ry_push_aliased(L, text, len);
  j = (edit_job *)lua_newuserdatauv(L, sizeof *j, 0);
  memset(j, 0, sizeof *j);
  if (luaL_newmetatable(L, "runbook.yaml.edit_job")) {
    lua_pushcfunction(L, job_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, job_close);
    lua_setfield(L, -2, "__close");
  }
  lua_setmetatable(L, -2);
  lua_toclose(L, M_JOB);
  j->sp = (ry_splice *)calloc((size_t)(n ? n : 1), sizeof *j->sp);
  j->order = (int *)malloc(sizeof *j->order * (size_t)(n ? n : 1));
  if (j->sp == NULL || j->order == NULL) luaL_error(L, "out of memory");
  j->n = n;
  for (i = 0; i < n; i++) j->order[i] = i + 1;
  lua_pushvalue(L, M_TEXT); /* M_BASE: the text the round edits */
  return j;
}

int ry_edit(lua_State *L) {
  edit_job *j = setup(L);
  int from = 0;
  const char *name = lua_tostring(L, M_NAME);
  while (from < j->n) {
    size_t len;
    const char *base = lua_tolstring(L, M_BASE, &len);
    int placed;
    record(L, j, base, len, name);
    placed = place_round(L, j, from);
    splice_round(L, j, from, placed);
    from += placed;
  }
  if (j->n > 0) verify(L, name);
  lua_pushvalue(L, M_BASE);
  return 1;
}

/*
** yaml_priv.h: what the YAML decoder and encoder (yaml.c) share with the
** comment-preserving editor (yaml_edit.c). Private to these two files.
*/
#ifndef RB_YAML_PRIV_H
#define RB_YAML_PRIV_H

#include <stddef.h>

#include <lua.h>
#include <yaml.h>

#include "bindings.h"

#define YAML_MAX_DEPTH 512

/* How a plain scalar resolves (yaml_scalar.c). */
typedef enum { SC_NULL, SC_BOOL, SC_INT, SC_FLOAT, SC_STR } scalar_kind;
scalar_kind ry_classify(const char *s, size_t n);
/* Whether s[0..n) is one of the NULL-terminated words. */
int ry_is_one_of(const char *s, size_t n, const char *const *words);
/* Pushes the Lua value of the plain scalar s[0..n). */
void ry_push_resolved(lua_State *L, const char *s, size_t n);
/* Pushes an integer (a float beyond 64 bits) or a float scalar's value. */
void ry_push_int(lua_State *L, const char *s, size_t n);
void ry_push_float(lua_State *L, const char *s, size_t n);

/* A decoder over libyaml's event parser; the editor walks the same events. */
typedef struct dec_state {
  lua_State *L;
  yaml_parser_t parser;
  yaml_event_t ev;
  int have_event;
  const char *name;
  int anchors;           /* stack index: anchor name -> {value, nodes} */
  long long nodes;       /* nodes written in the text */
  long long alias_nodes; /* nodes reached through aliases */
  int depth;
  int seq_mt;                /* stack index of the shared list mark (the empty map's is next) */
  yaml_mark_t *marks;        /* key marks of pending map entries */
  int order_cache;           /* stack index: the shared order lists */
  struct shared_list *share; /* their index by key identities */
  int nshared;
  size_t nmarks, capmarks;
  /* the editor walks recorded events instead of the parser when set */
  const yaml_event_t *replay;
  size_t nreplay, rpos;
  /* with replay: for a collection's start event i, the index of its end
  ** event and the offset its content ends at (ry_replay's jump and jend) */
  const size_t *jump, *jend;
} dec_state;

/* Raises a "yaml" error "<name>:<line>:<col>: <msg>" with line and column
** fields, at mark m. Never returns. */
int ry_error_at(dec_state *d, yaml_mark_t m, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Reads the next event into d->ev (freeing the previous one); raises on a
** parse error. */
void ry_next_event(dec_state *d);
/* opts.name of the options table at idx, or def. */
const char *ry_opt_name(lua_State *L, int idx, const char *def);
/* Parses a whole stream; pushes the list of its documents or raises. */
void ry_decode_all_into(lua_State *L, const char *s, size_t len, const char *name);
/* Encodes the value at 'list' (one document when 'single'); pushes the text. */
int ry_encode_docs(lua_State *L, int list, int single, int indent);
/* The shortest text that reads back as v ("1.5", ".inf"). */
void ry_format_float(double v, char *buf, size_t len);
/* Whether a plain scalar s would read back as something other than a
** string (a number, a boolean, null, a YAML 1.1 word). */
int ry_needs_quotes(const char *s, size_t n);

/* The editor's text (yaml_edit_text.c). The emitters return 1, 0 when out
** of memory, or one of these (nothing is raised: the caller owns b). */
#define FLOW_BAD_KEY (-1)
#define FLOW_TOO_DEEP (-2)
/* ... and beside those, a splice may end with */
#define EDIT_SEQ_ITEM_TABLE (-3)
#define EDIT_EMPTY_BLOCK_MAP (-4)
/* Raises the error for a splice outcome other than 1. */
int ry_raise_splice(lua_State *L, const char *name, int ok);

/* How a file writes its block collections. */
typedef struct ry_block_style {
  int unit;       /* spaces a nested map is indented by */
  int seq_offset; /* spaces a sequence is indented below its key (0 or more) */
} ry_block_style;

ry_block_style ry_style_of(const char *text, size_t len);
/* A scalar in the given style (`flow`: it sits in a flow collection). */
int ry_scalar_text(lua_State *L, int idx, yaml_scalar_style_t style, int flow, rb_buf *b);
/* A value in flow style: [a, b], {k: v}. */
int ry_flow_text(lua_State *L, int idx, int depth, rb_buf *b);
/* What follows "key:" for the value at idx, keys at column col. */
int ry_block_value(lua_State *L, int idx, int col, ry_block_style st, rb_buf *b);
/* What follows "- " for the item at idx, the dash at column col. */
int ry_block_item(lua_State *L, int idx, int col, ry_block_style st, int depth, rb_buf *b);
int ry_is_empty_table(lua_State *L, int idx);

/* Pushes the set of anchor names the text's aliases use (yaml_edit_text.c). */
void ry_push_aliased(lua_State *L, const char *text, size_t len);

/* One edit as bytes: text[a..e) of the text it was located in becomes
** frag. `linewise`: frag is whole lines inserted at a line start (two of
** those at one place may follow each other). */
typedef struct ry_splice {
  size_t a, e;
  rb_buf frag;
  int linewise;
  int ins_wrap; /* the edit creates a sequence holding the value */
} ry_splice;

/* A text's events, recorded once for the walks of several edits. */
typedef struct ry_replay {
  yaml_event_t *ev;
  size_t n, cap;
  /* for each collection start event: the index of its end event, and where
  ** its content ends (what walking it event by event would find), so that
  ** skipping a node costs one step, not one per event inside it */
  size_t *jump, *jend;
  /* the text's block style (ry_style_of), read once per round: it scans
  ** the text from the top, and a round may hold thousands of edits */
  ry_block_style style;
} ry_replay;

/* lua_CFunction (text, path, value, name, doc, aliased, replay, splice):
** locates path in the recorded events of text and writes the splice;
** raises the editor's refusal (yaml_edit.c). */
int ry_edit_locate(lua_State *L);
/* lua_CFunction (doc, path, value, ins_wrap): the edit applied to the
** decoded document, in place. */
int ry_edit_apply(lua_State *L);

/* runbook.yaml.encode, encode_all (yaml_encode.c) and edit (yaml_edit_many.c) */
int ry_encode(lua_State *L);
int ry_encode_all(lua_State *L);
int ry_edit(lua_State *L);

#endif

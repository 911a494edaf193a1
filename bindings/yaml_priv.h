/*
** yaml_priv.h: what the YAML decoder and encoder (yaml.c) share with the
** comment-preserving editor (yaml_edit.c). Private to these two files.
*/
#ifndef RB_YAML_PRIV_H
#define RB_YAML_PRIV_H

#include <stddef.h>

#include <lua.h>
#include <yaml.h>

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

/* runbook.yaml.encode, encode_all (yaml_encode.c) and edit (yaml_edit.c) */
int ry_encode(lua_State *L);
int ry_encode_all(lua_State *L);
int ry_edit(lua_State *L);

#endif

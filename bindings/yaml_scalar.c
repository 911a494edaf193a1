/*
** yaml_scalar.c: how a plain scalar resolves, by the YAML 1.2 core schema
** as Go's yaml.v3 reads it (null/~/empty, true/false in three spellings,
** decimal/0o/0x integers, floats with .inf/.nan; yes/no/on/off stay
** strings).
*/
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "luaval.h"
#include "yaml_priv.h"

/* {====================================================== scalar resolution */

int ry_is_one_of(const char *s, size_t n, const char *const *words) {
  for (; *words; words++)
    if (strlen(*words) == n && memcmp(*words, s, n) == 0) return 1;
  return 0;
}

static const char *const NULLS[] = { "null", "Null", "NULL", "~", NULL };
static const char *const TRUES[] = { "true", "True", "TRUE", NULL };
static const char *const FALSES[] = { "false", "False", "FALSE", NULL };
static const char *const INFS[] = { ".inf", ".Inf", ".INF", NULL };
static const char *const NANS[] = { ".nan", ".NaN", ".NAN", NULL };

/* Core schema float: [-+]? ( \.[0-9]+ | [0-9]+ ( \.[0-9]* )? ) ( [eE][-+]?[0-9]+ )? */
static int is_core_float(const char *s, size_t n) {
  size_t i = 0, digits = 0;
  if (i < n && (s[i] == '-' || s[i] == '+')) i++;
  if (i < n && s[i] == '.') {
    i++;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
      i++;
      digits++;
    }
    if (digits == 0) return 0;
  }
  else {
    while (i < n && s[i] >= '0' && s[i] <= '9') {
      i++;
      digits++;
    }
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
    while (i < n && s[i] >= '0' && s[i] <= '9') {
      i++;
      ed++;
    }
    if (ed == 0) return 0;
  }
  return i == n;
}

static int all_digits(const char *s, size_t n, int base) {
  size_t i;
  if (n == 0) return 0;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    int ok =
      base == 16 ? ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')) : (c >= '0' && c < '0' + base);
    if (!ok) return 0;
  }
  return 1;
}

/* Classifies a plain scalar by the core schema. Most scalars are words:
** the first byte rules out every other kind before any comparison. */
scalar_kind ry_classify(const char *s, size_t n) {
  size_t sign;
  if (n == 0) return SC_NULL;
  switch (s[0]) {
    case 'n':
    case 'N':
    case '~': return ry_is_one_of(s, n, NULLS) ? SC_NULL : SC_STR;
    case 't':
    case 'T': return ry_is_one_of(s, n, TRUES) ? SC_BOOL : SC_STR;
    case 'f':
    case 'F': return ry_is_one_of(s, n, FALSES) ? SC_BOOL : SC_STR;
    case '.':
    case '+':
    case '-': break;
    default:
      if (s[0] < '0' || s[0] > '9') return SC_STR;
  }
  sign = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (all_digits(s + sign, n - sign, 10)) return SC_INT;
  if (n > 2 && s[0] == '0' && s[1] == 'o' && all_digits(s + 2, n - 2, 8)) return SC_INT;
  if (n > 2 && s[0] == '0' && s[1] == 'x' && all_digits(s + 2, n - 2, 16)) return SC_INT;
  if (ry_is_one_of(s + sign, n - sign, INFS) || ry_is_one_of(s, n, NANS)) return SC_FLOAT;
  if (is_core_float(s, n)) return SC_FLOAT;
  return SC_STR;
}

/* Pushes the integer of a core-schema int; one beyond int64 becomes a float. */
void ry_push_int(lua_State *L, const char *s, size_t n) {
  char buf[128];
  long long v;
  int base = 10;
  const char *p = buf;
  char *end;
  if (n >= sizeof buf) {
    lua_pushnumber(L, HUGE_VAL);
    return;
  }
  memcpy(buf, s, n);
  buf[n] = '\0';
  if (n > 2 && s[0] == '0' && s[1] == 'o') {
    base = 8;
    p = buf + 2;
  }
  else if (n > 2 && s[0] == '0' && s[1] == 'x') {
    base = 16;
    p = buf + 2;
  }
  errno = 0;
  v = strtoll(p, &end, base);
  if (errno == ERANGE) lua_pushnumber(L, strtod(buf, NULL)); /* too big for an integer */
  else lua_pushinteger(L, (lua_Integer)v);
}

void ry_push_float(lua_State *L, const char *s, size_t n) {
  char buf[128];
  size_t sign = (n > 0 && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  if (ry_is_one_of(s + sign, n - sign, INFS)) {
    lua_pushnumber(L, s[0] == '-' ? -HUGE_VAL : HUGE_VAL);
    return;
  }
  if (ry_is_one_of(s, n, NANS)) {
    lua_pushnumber(L, NAN);
    return;
  }
  if (n >= sizeof buf) n = sizeof buf - 1;
  memcpy(buf, s, n);
  buf[n] = '\0';
  lua_pushnumber(L, strtod(buf, NULL));
}

void ry_push_resolved(lua_State *L, const char *s, size_t n) {
  switch (ry_classify(s, n)) {
    case SC_NULL: lv_push_null(L); break;
    case SC_BOOL: lua_pushboolean(L, s[0] == 't' || s[0] == 'T'); break;
    case SC_INT: ry_push_int(L, s, n); break;
    case SC_FLOAT: ry_push_float(L, s, n); break;
    case SC_STR: lua_pushlstring(L, s, n); break;
  }
}

/* }====================================================== */

/*
** http_opts.c: the options of one http.request call, checked before
** anything is allocated (so that a bad argument leaks nothing), then copied
** into the transfer: headers (no line break can smuggle in another),
** bearer, body, max_body.
*/
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "curl_lazy.h"

#include "http_priv.h"

static double opt_num(lua_State *L, const char *k, double def) {
  double v = def;
  if (lua_getfield(L, 1, k) != LUA_TNIL) {
    if (!lua_isnumber(L, -1)) luaL_argerror(L, 1, lua_pushfstring(L, "%s must be a number", k));
    v = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

/* Secret-aware string field: returns a malloc'd copy or NULL. */
char *http_opt_text(lua_State *L, const char *k) {
  char *out = NULL;
  if (lua_getfield(L, 1, k) != LUA_TNIL) {
    size_t n;
    const char *s;
    if (!rb_push_text(L, -1)) luaL_argerror(L, 1, lua_pushfstring(L, "%s must be a string or a secret", k));
    lua_replace(L, -2);
    s = lua_tolstring(L, -1, &n);
    out = malloc(n + 1);
    if (out) {
      memcpy(out, s, n);
      out[n] = '\0';
    }
  }
  lua_pop(L, 1);
  return out;
}

/* An RFC 9110 token: what a header name may be. */
static int header_name_ok(const char *s) {
  if (*s == '\0') return 0;
  for (; *s; s++)
    if (!(isalnum((unsigned char)*s) || strchr("!#$%&'*+-.^_`|~", *s))) return 0;
  return 1;
}

/* Raises unless opts.headers is a map of strings (or secrets). Runs before
** anything is allocated, so that a bad argument leaks nothing. */
static void check_headers(lua_State *L) {
  if (lua_getfield(L, 1, "headers") != LUA_TNIL) {
    luaL_argcheck(L, lua_istable(L, -1), 1, "headers must be a table");
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      size_t n;
      const char *v;
      if (lua_type(L, -2) != LUA_TSTRING) luaL_argerror(L, 1, "header names must be strings");
      if (!header_name_ok(lua_tostring(L, -2)))
        luaL_argerror(L, 1, lua_pushfstring(L, "header name '%s' is not an HTTP token", lua_tostring(L, -2)));
      if (!rb_push_text(L, -1))
        luaL_argerror(L, 1, lua_pushfstring(L, "header '%s' must be a string", lua_tostring(L, -2)));
      v = lua_tolstring(L, -1, &n);
      /* a CR or LF would end the header and start another one of the
      ** caller's data: header injection */
      if (strcspn(v, "\r\n") != n)
        luaL_argerror(L, 1, lua_pushfstring(L, "header '%s' holds a line break or a NUL byte", lua_tostring(L, -3)));
      lua_pop(L, 2);
    }
  }
  lua_pop(L, 1);
}

static void check_text(lua_State *L, const char *k) {
  int t = lua_getfield(L, 1, k);
  if (t != LUA_TNIL && !lua_isstring(L, -1) && !rb_is_secret(L, -1))
    luaL_argerror(L, 1, lua_pushfstring(L, "%s must be a string", k));
  lua_pop(L, 1);
}

/* Adds opts.headers (checked already); returns 0 when out of memory. */
int http_add_headers(lua_State *L, http_req *r) {
  if (lua_getfield(L, 1, "headers") == LUA_TNIL) {
    lua_pop(L, 1);
    return 1;
  }
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    struct curl_slist *n;
    rb_push_text(L, -1); /* checked: a string or a secret */
    lua_replace(L, -2);
    lua_pushfstring(L, "%s: %s", lua_tostring(L, -2), lua_tostring(L, -1));
    n = curl_slist_append(r->headers, lua_tostring(L, -1));
    lua_pop(L, 2);
    if (n == NULL) {
      lua_pop(L, 2);
      return 0;
    }
    r->headers = n;
  }
  lua_pop(L, 1);
  return 1;
}

void http_check_opts(lua_State *L, http_opts *op) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_getfield(L, 1, "url");
  op->url = lua_tostring(L, -1);
  luaL_argcheck(L, op->url != NULL, 1, "url must be a string");
  luaL_argcheck(L, strncmp(op->url, "http://", 7) == 0 || strncmp(op->url, "https://", 8) == 0, 1,
                "url must start with http:// or https://");
  lua_getfield(L, 1, "method");
  if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING) luaL_argerror(L, 1, "method must be a string");
  op->method = lua_isnil(L, -1) ? "GET" : lua_tostring(L, -1);
  op->timeout = opt_num(L, "timeout", 60);
  op->ctimeout = opt_num(L, "connect_timeout", 10);
  luaL_argcheck(L,
                op->timeout > 0 && op->ctimeout > 0 && op->timeout <= RB_MAX_SECONDS && op->ctimeout <= RB_MAX_SECONDS,
                1, "timeouts must be > 0 and at most 1e9 seconds");
  op->max_body = opt_num(L, "max_body", 8 * 1024 * 1024);
  luaL_argcheck(L, op->max_body >= 0 && op->max_body <= 4e9, 1, "max_body must be 0 .. 4e9 bytes");
  check_headers(L);
  check_text(L, "bearer");
  check_text(L, "body");
  check_text(L, "cacert");
  check_text(L, "cert");
  check_text(L, "key");
  if (lua_getfield(L, 1, "stop_at") != LUA_TNIL && (lua_type(L, -1) != LUA_TSTRING || lua_rawlen(L, -1) == 0))
    luaL_argerror(L, 1, "stop_at must be a non-empty string");
  lua_pop(L, 1);
}

/* Adds "Authorization: Bearer <opts.bearer>"; the copies are wiped.
** Returns 0 when out of memory. */
int http_add_bearer(lua_State *L, http_req *r) {
  char *bearer = http_opt_text(L, "bearer");
  struct curl_slist *sl = NULL;
  size_t n;
  char *hd;
  if (bearer == NULL) return 1;
  n = strlen(bearer) + 32;
  if ((hd = malloc(n)) != NULL) {
    snprintf(hd, n, "Authorization: Bearer %s", bearer);
    sl = curl_slist_append(r->headers, hd);
    memset(hd, 0, n);
    free(hd);
  }
  memset(bearer, 0, strlen(bearer));
  free(bearer);
  if (sl == NULL) return 0;
  r->headers = sl;
  return 1;
}

/* Copies opts.body (a string or a secret, NUL bytes allowed) into r.
** Returns 0 when out of memory. */
int http_copy_body(lua_State *L, http_req *r, size_t *len) {
  int ok = 1;
  *len = 0;
  if (lua_getfield(L, 1, "body") != LUA_TNIL) {
    const char *b;
    rb_push_text(L, -1); /* checked: a string or a secret */
    lua_replace(L, -2);
    b = lua_tolstring(L, -1, len);
    r->body = malloc(*len ? *len : 1);
    if (r->body) memcpy(r->body, b, *len);
    else ok = 0;
  }
  lua_pop(L, 1);
  return ok;
}

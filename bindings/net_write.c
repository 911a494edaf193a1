/*
** net_write.c: runbook.net's responses (net.c reads the requests): whole
** (conn:respond) or streamed in chunks (conn:stream, send, gone, finish),
** encrypted on a TLS connection (net_tls.h).
*/
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net_priv.h"

/* {======================================================
** Writes: each its own request and bytes (ciphertext on TLS), freed in its
** callback; a close cancels the pending ones first, so the connection is
** still there when they run. close_after: the response's last write. */

typedef struct chunk_t {
  uv_write_t req;
  conn_t *c;
  int close_after;
  char *data;
} chunk_t;

static void chunk_written(uv_write_t *w, int status) {
  chunk_t *k = (chunk_t *)w->data;
  if (status < 0) k->c->gone = 1;
  if (k->close_after) net_conn_close(k->c);
  free(k->data);
  free(k);
}

/* Sends data (malloc'd, owned from here) as it is. */
int net_send_raw(conn_t *c, char *data, size_t len, int close_after) {
  chunk_t *k = malloc(sizeof *k);
  uv_buf_t b;
  if (k == NULL) {
    free(data);
    return -1;
  }
  k->c = c;
  k->data = data;
  k->close_after = close_after;
  k->req.data = k;
  b = uv_buf_init(data, (unsigned)len);
  if (uv_write(&k->req, (uv_stream_t *)&c->tcp, &b, 1, chunk_written) != 0) {
    free(data);
    free(k);
    c->gone = 1;
    if (close_after) net_conn_close(c);
    return -1;
  }
  return 0;
}

/* Sends prefix, len bytes of data and suffix, encrypted on TLS. */
static int queue_bytes(conn_t *c, const char *prefix, const char *data, size_t len, const char *suffix,
                       int close_after) {
  size_t pl = strlen(prefix), sl = strlen(suffix), n = pl + len + sl;
  char *plain = malloc(n ? n : 1);
  if (plain == NULL) return -1;
  memcpy(plain, prefix, pl);
  memcpy(plain + pl, data, len);
  memcpy(plain + pl + len, suffix, sl);
  if (c->tls) {
    char *cipher;
    int rc = net_tls_write(c->tls, plain, n);
    free(plain);
    n = net_tls_take(c->tls, &cipher);
    if (rc != 0 || cipher == NULL) {
      free(cipher);
      c->gone = 1;
      if (close_after) net_conn_close(c);
      return -1;
    }
    plain = cipher;
  }
  return net_send_raw(c, plain, n, close_after);
}

/* }====================================================== */

static const char *reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 415: return "Unsupported Media Type";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Entity";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

/* Pushes the response head: the status line, Content-Length (len >= 0) or
** chunked (len < 0), Connection: close, the headers of the table at index 3. */
static void push_head(lua_State *L, int status, lua_Integer len) {
  int base = lua_gettop(L);
  if (len >= 0)
    lua_pushfstring(L, "HTTP/1.1 %d %s\r\nContent-Length: %I\r\nConnection: close\r\n", status, reason(status), len);
  else
    lua_pushfstring(L, "HTTP/1.1 %d %s\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n", status, reason(status));
  if (lua_istable(L, 3)) {
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      const char *k = lua_tostring(L, -2), *v = lua_tostring(L, -1);
      if (k == NULL || v == NULL) luaL_argerror(L, 3, "header names and values must be strings");
      if (strcasecmp(k, "transfer-encoding") != 0 && strcasecmp(k, "content-length") != 0) {
        lua_pushfstring(L, "%s: %s\r\n", k, v);
        lua_insert(L, -3); /* keep the line below key and value */
      }
      lua_pop(L, 1);
    }
  }
  lua_pushliteral(L, "\r\n");
  lua_concat(L, lua_gettop(L) - base);
}

static conn_t *check_conn(lua_State *L) {
  conn_t *c = *(conn_t **)luaL_checkudata(L, 1, CONN_MT);
  if (c == NULL) luaL_error(L, "attempt to use a closed connection");
  return c;
}

/* conn:respond(status, headers, body): writes the response, then closes. */
static int conn_respond(lua_State *L) {
  conn_t **ud = (conn_t **)luaL_checkudata(L, 1, CONN_MT);
  conn_t *c = check_conn(L);
  int status = (int)luaL_checkinteger(L, 2);
  size_t blen, hl;
  const char *body, *head;
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  body = luaL_optlstring(L, 4, "", &blen);
  lua_settop(L, 4);
  push_head(L, status, (lua_Integer)blen);
  head = lua_tolstring(L, -1, &hl);
  *ud = NULL; /* the write owns the connection now */
  queue_bytes(c, head, body, blen, "", 1);
  return 0;
}

/* {======================================================
** Streamed responses. */

static void discard_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  static char sink[4096]; /* what a client sends after its request is not read */
  (void)h;
  (void)suggested;
  *b = uv_buf_init(sink, sizeof sink);
}

static void gone_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  (void)b;
  if (n < 0) {
    ((conn_t *)st->data)->gone = 1;
    uv_read_stop(st);
  }
}

/* conn:stream(status, headers): the head of a chunked response; the
** connection stays open for conn:send until conn:finish. */
static int conn_stream(lua_State *L) {
  conn_t *c = check_conn(L);
  int status = (int)luaL_checkinteger(L, 2);
  size_t hl;
  const char *head;
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  push_head(L, status, -1);
  head = lua_tolstring(L, -1, &hl);
  if (queue_bytes(c, "", head, hl, "", 0) != 0) return luaL_error(L, "cannot write the response");
  if (uv_read_start((uv_stream_t *)&c->tcp, discard_alloc, gone_cb) != 0) c->gone = 1;
  return 0;
}

static int conn_send(lua_State *L) {
  conn_t *c = check_conn(L);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  char size[32];
  if (c->gone) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (len == 0) { /* an empty chunk would end the response */
    lua_pushboolean(L, 1);
    return 1;
  }
  snprintf(size, sizeof size, "%zx\r\n", len);
  lua_pushboolean(L, queue_bytes(c, size, data, len, "\r\n", 0) == 0);
  return 1;
}

static int conn_gone(lua_State *L) {
  lua_pushboolean(L, check_conn(L)->gone);
  return 1;
}

static int conn_finish(lua_State *L) {
  conn_t **ud = (conn_t **)luaL_checkudata(L, 1, CONN_MT);
  conn_t *c = check_conn(L);
  *ud = NULL;
  if (c->gone) {
    net_conn_close(c);
    return 0;
  }
  uv_read_stop((uv_stream_t *)&c->tcp);
  queue_bytes(c, "", "0\r\n\r\n", 5, "", 1);
  return 0;
}

/* }====================================================== */

const luaL_Reg net_conn_meth[] = { { "respond", conn_respond }, { "stream", conn_stream }, { "send", conn_send },
                                   { "gone", conn_gone },       { "finish", conn_finish }, { NULL, NULL } };

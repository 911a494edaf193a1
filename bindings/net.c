/*
** net.c: runbook.net, a minimal HTTP/1.1 server on libuv, for serving the
** simulated world on loopback (`runbook world serve`) and for tests. Not a
** general web server: one request per connection (Connection: close),
** Content-Length bodies only, bounded sizes.
**
** net.listen(host, port) -> server      (port 0: the OS picks one)
** server:port()                         the bound port
** server:accept()  (waits)              -> request {method, path, headers, body}, conn
** conn:respond(status, headers, body)   writes the response and closes
** server:close()
**
** libuv callbacks never call Lua: a complete request is queued on the
** server and the task waiting in accept() is woken, as every binding does.
**
** Ownership: the server and each connection are heap structs whose libuv
** handle is freed in its close callback; the Lua userdata holds a pointer.
** A connection is owned by the server's list until it is handed to Lua by
** accept(), then by its userdata (closed on respond or __gc).
*/
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <lauxlib.h>

#include "bindings.h"

#define SERVER_MT "runbook.net.server"
#define CONN_MT "runbook.net.conn"
#define MAX_HEAD (64 * 1024)
#define MAX_BODY (16 * 1024 * 1024)
#define IDLE_US (10 * 1000000) /* a request not complete by then is dropped */

typedef struct conn_t conn_t;

typedef struct server_t {
  uv_tcp_t *tcp; /* NULL once closed */
  rb_sched *s;
  conn_t *ready_head, *ready_tail; /* complete requests not yet accepted */
  rb_task *waiter;
  conn_t *conns; /* every open connection not handed to Lua */
  int port;
} server_t;

struct conn_t {
  uv_tcp_t tcp;
  rb_sched *s;
  rb_timer idle; /* until the request is complete */
  server_t *srv; /* NULL once the server is gone */
  char *buf;
  size_t len, cap;
  size_t head_len; /* bytes up to and including the blank line, 0 until seen */
  size_t body_len;
  int complete, closing, in_lua;
  conn_t *next_ready;
  conn_t *next, **pprev; /* server->conns */
  uv_write_t wreq;
  char *out;
};

static void conn_closed(uv_handle_t *h) {
  conn_t *c = (conn_t *)h->data;
  free(c->buf);
  free(c->out);
  free(c);
}

static void conn_unlink(conn_t *c) {
  if (c->pprev) {
    if (c->next) c->next->pprev = c->pprev;
    *c->pprev = c->next;
    c->next = NULL;
    c->pprev = NULL;
  }
}

static void conn_close(conn_t *c) {
  if (c->closing) return;
  c->closing = 1;
  rb_timer_stop(c->s, &c->idle);
  conn_unlink(c);
  uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  conn_t *c = (conn_t *)h->data;
  (void)suggested;
  if (c->cap - c->len < 16384) {
    size_t cap = c->cap ? c->cap * 2 : 16384;
    char *n = realloc(c->buf, cap);
    if (n == NULL) {
      b->base = NULL;
      b->len = 0;
      return;
    }
    c->buf = n;
    c->cap = cap;
  }
  b->base = c->buf + c->len;
  b->len = c->cap - c->len;
}

/* Content-Length of the head in c->buf[0..head_len), or 0. */
static size_t content_length(const conn_t *c) {
  const char *p = c->buf, *end = c->buf + c->head_len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL) break;
    if ((size_t)(nl - p) > 15 && strncasecmp(p, "content-length:", 15) == 0) return (size_t)strtoul(p + 15, NULL, 10);
    p = nl + 1;
  }
  return 0;
}

static void queue_ready(conn_t *c) {
  server_t *srv = c->srv;
  c->complete = 1;
  rb_timer_stop(c->s, &c->idle);
  uv_read_stop((uv_stream_t *)&c->tcp);
  c->next_ready = NULL;
  if (srv->ready_tail) srv->ready_tail->next_ready = c;
  else srv->ready_head = c;
  srv->ready_tail = c;
  if (srv->waiter) {
    rb_task *t = srv->waiter;
    srv->waiter = NULL;
    lua_pushboolean(rb_task_thread(t), 1);
    rb_task_wake(t, 1);
  }
}

static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  conn_t *c = (conn_t *)st->data;
  (void)b;
  if (n < 0 || c->srv == NULL) {
    conn_close(c);
    return;
  }
  c->len += (size_t)n;
  if (c->head_len == 0) {
    char *blank = c->len >= 4 ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
    if (blank == NULL) {
      if (c->len > MAX_HEAD) conn_close(c);
      return;
    }
    c->head_len = (size_t)(blank - c->buf) + 4;
    c->body_len = content_length(c);
    if (c->body_len > MAX_BODY) {
      conn_close(c);
      return;
    }
  }
  if (c->len >= c->head_len + c->body_len) queue_ready(c);
}

/* A connection idle or trickling for IDLE_US: another local user holding
** the server's sockets open, or a client gone quiet. */
static void idle_fire(rb_timer *tm) {
  conn_close((conn_t *)tm->data);
}

static void on_connection(uv_stream_t *server, int status) {
  server_t *srv = (server_t *)server->data;
  conn_t *c;
  if (status < 0) return;
  c = calloc(1, sizeof *c);
  if (c == NULL) return;
  if (uv_tcp_init(rb_sched_loop(srv->s), &c->tcp) != 0) {
    free(c);
    return;
  }
  c->tcp.data = c;
  c->srv = srv;
  c->s = srv->s;
  rb_timer_init(&c->idle, idle_fire, c);
  rb_timer_start(c->s, &c->idle, IDLE_US);
  c->next = srv->conns;
  if (srv->conns) srv->conns->pprev = &c->next;
  c->pprev = &srv->conns;
  srv->conns = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) != 0)
    conn_close(c);
}

static server_t *check_server(lua_State *L) {
  server_t *s = *(server_t **)luaL_checkudata(L, 1, SERVER_MT);
  if (s == NULL || s->tcp == NULL) luaL_error(L, "attempt to use a closed server");
  return s;
}

static void server_closed(uv_handle_t *h) {
  free(h);
}

/* Closes the listening socket and every connection not handed to Lua. */
static void server_shutdown(server_t *s) {
  conn_t *c, *next;
  if (s->tcp) {
    uv_close((uv_handle_t *)s->tcp, server_closed);
    s->tcp = NULL;
  }
  for (c = s->conns; c; c = next) {
    next = c->next;
    c->srv = NULL;
    conn_close(c);
  }
  s->ready_head = s->ready_tail = NULL;
}

static int server_gc(lua_State *L) {
  server_t **ud = (server_t **)luaL_checkudata(L, 1, SERVER_MT);
  if (*ud) {
    server_t *s = *ud;
    *ud = NULL;
    server_shutdown(s);
    free(s);
  }
  return 0;
}

static int server_close(lua_State *L) {
  server_t *s = check_server(L);
  if (s->waiter) {
    rb_task *t = s->waiter;
    s->waiter = NULL;
    rb_task_fail(t, "closed", "the server was closed");
  }
  server_shutdown(s);
  return 0;
}

static int server_port(lua_State *L) {
  lua_pushinteger(L, check_server(L)->port);
  return 1;
}

static int conn_gc(lua_State *L) {
  conn_t **ud = (conn_t **)luaL_checkudata(L, 1, CONN_MT);
  if (*ud) {
    conn_close(*ud);
    *ud = NULL;
  }
  return 0;
}

/* Pushes {method, path, headers, body} of a complete request. */
static void push_request(lua_State *L, conn_t *c) {
  const char *p = c->buf, *end = c->buf + c->head_len;
  const char *nl = memchr(p, '\n', (size_t)(end - p));
  const char *sp1, *sp2;
  lua_createtable(L, 0, 4);
  sp1 = nl ? memchr(p, ' ', (size_t)(nl - p)) : NULL;
  sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(nl - sp1 - 1)) : NULL;
  lua_pushlstring(L, p, sp1 ? (size_t)(sp1 - p) : 0);
  lua_setfield(L, -2, "method");
  lua_pushlstring(L, sp1 ? sp1 + 1 : "", sp1 && sp2 ? (size_t)(sp2 - sp1 - 1) : 0);
  lua_setfield(L, -2, "path");
  lua_newtable(L);
  p = nl ? nl + 1 : end;
  while (p < end) {
    const char *e = memchr(p, '\n', (size_t)(end - p));
    const char *colon = e ? memchr(p, ':', (size_t)(e - p)) : NULL;
    if (colon) {
      const char *v = colon + 1, *ve = e;
      const char *q;
      luaL_Buffer b;
      while (v < ve && *v == ' ') v++;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ')) ve--;
      luaL_buffinit(L, &b);
      for (q = p; q < colon; q++) luaL_addchar(&b, (char)(*q >= 'A' && *q <= 'Z' ? *q + 32 : *q));
      luaL_pushresult(&b);
      lua_pushlstring(L, v, (size_t)(ve - v));
      lua_rawset(L, -3);
    }
    p = e ? e + 1 : end;
  }
  lua_setfield(L, -2, "headers");
  lua_pushlstring(L, c->buf + c->head_len, c->body_len);
  lua_setfield(L, -2, "body");
}

static int accept_k(lua_State *L, int status, lua_KContext ctx);

static void accept_cancel(rb_task *t, void *data) {
  (void)t;
  ((server_t *)data)->waiter = NULL;
}

/* server:accept() -> request, conn (waits for the next complete request) */
static int server_accept(lua_State *L) {
  server_t *s = check_server(L);
  conn_t *c = s->ready_head;
  rb_task *t;
  lua_settop(L, 1);
  if (c) {
    conn_t **ud;
    s->ready_head = c->next_ready;
    if (s->ready_head == NULL) s->ready_tail = NULL;
    c->in_lua = 1;
    conn_unlink(c); /* owned by its userdata from here */
    c->srv = NULL;
    push_request(L, c);
    ud = (conn_t **)lua_newuserdatauv(L, sizeof *ud, 0);
    *ud = c;
    luaL_setmetatable(L, CONN_MT);
    return 2;
  }
  if (s->waiter) return luaL_error(L, "another task is already accepting on this server");
  t = rb_wait_begin(L);
  s->waiter = t;
  return rb_await_k(L, accept_cancel, s, 0, accept_k);
}

static int accept_k(lua_State *L, int status, lua_KContext ctx) {
  server_t *s = *(server_t **)lua_touserdata(L, 1);
  (void)status;
  (void)ctx;
  if (!lua_toboolean(L, 2)) {
    if (s) s->waiter = NULL; /* cancelled while waiting */
    lua_pushvalue(L, 3);
    return lua_error(L);
  }
  lua_settop(L, 1);
  return server_accept(L);
}

static void written(uv_write_t *w, int status) {
  conn_t *c = (conn_t *)w->data;
  (void)status;
  conn_close(c);
}

static const char *reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

/* conn:respond(status, headers, body): writes the response, then closes. */
static int conn_respond(lua_State *L) {
  conn_t **ud = (conn_t **)luaL_checkudata(L, 1, CONN_MT);
  conn_t *c = *ud;
  int status = (int)luaL_checkinteger(L, 2);
  size_t blen, n = 0, cap;
  const char *body;
  uv_buf_t ub;
  if (c == NULL) return luaL_error(L, "attempt to use a closed connection");
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  body = luaL_optlstring(L, 4, "", &blen);
  /* the head, built on the Lua stack one line at a time, then joined */
  lua_settop(L, 4);
  lua_pushfstring(L, "HTTP/1.1 %d %s\r\nContent-Length: %I\r\nConnection: close\r\n", status, reason(status),
                  (lua_Integer)blen);
  if (lua_istable(L, 3)) {
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      const char *k = lua_tostring(L, -2), *v = lua_tostring(L, -1);
      if (k == NULL || v == NULL) return luaL_argerror(L, 3, "header names and values must be strings");
      lua_pushfstring(L, "%s: %s\r\n", k, v);
      lua_insert(L, -3); /* keep the line below key and value */
      lua_pop(L, 1);
    }
  }
  lua_pushliteral(L, "\r\n");
  lua_concat(L, lua_gettop(L) - 4);
  {
    size_t hl;
    const char *head = lua_tolstring(L, -1, &hl);
    cap = hl + blen;
    c->out = malloc(cap ? cap : 1);
    if (c->out == NULL) return luaL_error(L, "not enough memory");
    memcpy(c->out, head, hl);
    memcpy(c->out + hl, body, blen);
    n = hl + blen;
  }
  ub = uv_buf_init(c->out, (unsigned)n);
  *ud = NULL; /* the write owns the connection now */
  c->wreq.data = c;
  if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &ub, 1, written) != 0) conn_close(c);
  return 0;
}

/* net.listen(host, port) -> server; host must be a loopback address. */
static int net_listen(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  int port = (int)luaL_checkinteger(L, 2);
  struct sockaddr_storage ss;
  int len = sizeof ss, rc;
  server_t **ud, *s;
  char buf[128];
  luaL_argcheck(L, strcmp(host, "127.0.0.1") == 0 || strcmp(host, "::1") == 0, 1, "only loopback (127.0.0.1 or ::1)");
  ud = (server_t **)lua_newuserdatauv(L, sizeof *ud, 0);
  *ud = NULL;
  luaL_setmetatable(L, SERVER_MT);
  s = calloc(1, sizeof *s);
  if (s == NULL) return luaL_error(L, "not enough memory");
  s->s = rb_sched_of(L);
  s->tcp = malloc(sizeof *s->tcp);
  if (s->tcp == NULL) {
    free(s);
    return luaL_error(L, "not enough memory");
  }
  if ((rc = uv_tcp_init(rb_sched_loop(s->s), s->tcp)) != 0) {
    free(s->tcp);
    free(s);
    return rb_error_raise(L, "net", "listen on %s:%d: %s", host, port, rb_uv_strerror(rc, buf, sizeof buf));
  }
  s->tcp->data = s;
  *ud = s; /* from here __gc closes everything */
  if (strchr(host, ':')) rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss);
  else rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
  if (rc == 0) rc = uv_tcp_bind(s->tcp, (struct sockaddr *)&ss, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)s->tcp, 128, on_connection);
  if (rc != 0) return rb_error_raise(L, "net", "listen on %s:%d: %s", host, port, rb_uv_strerror(rc, buf, sizeof buf));
  if ((rc = uv_tcp_getsockname(s->tcp, (struct sockaddr *)&ss, &len)) != 0)
    return rb_error_raise(L, "net", "listen on %s:%d: %s", host, port, rb_uv_strerror(rc, buf, sizeof buf));
  s->port =
    ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
  return 1;
}

static const luaL_Reg server_meth[] = {
  { "accept", server_accept }, { "close", server_close }, { "port", server_port }, { NULL, NULL }
};

static const luaL_Reg conn_meth[] = { { "respond", conn_respond }, { NULL, NULL } };

static const luaL_Reg net_funcs[] = { { "listen", net_listen }, { NULL, NULL } };

int luaopen_runbook_net(lua_State *L) {
  if (luaL_newmetatable(L, SERVER_MT)) {
    lua_pushcfunction(L, server_gc);
    lua_setfield(L, -2, "__gc");
    luaL_newlib(L, server_meth);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, CONN_MT)) {
    lua_pushcfunction(L, conn_gc);
    lua_setfield(L, -2, "__gc");
    luaL_newlib(L, conn_meth);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_newlib(L, net_funcs);
  return 1;
}

/*
** net.c: runbook.net, a minimal HTTP/1.1 server on libuv, for serving the
** simulated world on loopback (`runbook world serve`) and for tests. Not a
** general web server: one request per connection (Connection: close),
** Content-Length bodies only, bounded sizes.
**
** net.listen(host, port [, {tls = {cert, key}}]) -> server  (port 0: the OS picks one;
**                                       tls: PEM files, HTTPS on libssl: net_tls.c)
** server:port()                         the bound port
** server:accept()  (waits)              -> request {method, path, headers, body}, conn
** conn:respond(status, headers, body)   writes the response and closes
** conn:stream(status, headers)          writes a chunked response's head
** conn:send(data) -> bool               one chunk; false once the client is gone
** conn:gone() -> bool                   the client closed its end (a streamed response)
** conn:finish()                         the last chunk, then closes
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
#include "net_priv.h"

static void conn_closed(uv_handle_t *h) {
  conn_t *c = (conn_t *)h->data;
  free(c->buf);
  net_tls_free(c->tls);
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

void net_conn_close(conn_t *c) {
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

/* TLS: what is read lands here first, to be decrypted into c->buf */
static void cipher_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  static char in[65536];
  (void)h;
  (void)suggested;
  *b = uv_buf_init(in, sizeof in);
}

/* Decrypts n bytes read on a TLS connection into c->buf and sends what the
** session has for the peer (the handshake). Returns 0, or -1: closed. */
static int tls_in(conn_t *c, const char *in, size_t n) {
  char *out;
  size_t len;
  if (net_tls_read(c->tls, in, n, &c->buf, &c->len, &c->cap) != 0) {
    net_conn_close(c);
    return -1;
  }
  len = net_tls_take(c->tls, &out);
  if (len > 0) net_send_raw(c, out, len, 0);
  return 0;
}

static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  conn_t *c = (conn_t *)st->data;
  if (n < 0 || c->srv == NULL) {
    net_conn_close(c);
    return;
  }
  if (c->tls) {
    if (tls_in(c, b->base, (size_t)n) != 0) return;
  }
  else c->len += (size_t)n;
  if (c->head_len == 0) {
    char *blank = c->len >= 4 ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
    if (blank == NULL) {
      if (c->len > MAX_HEAD) net_conn_close(c);
      return;
    }
    c->head_len = (size_t)(blank - c->buf) + 4;
    c->body_len = content_length(c);
    if (c->body_len > MAX_BODY) {
      net_conn_close(c);
      return;
    }
  }
  if (c->len >= c->head_len + c->body_len) queue_ready(c);
}

/* A connection idle or trickling for IDLE_US: another local user holding
** the server's sockets open, or a client gone quiet. */
static void idle_fire(rb_timer *tm) {
  net_conn_close((conn_t *)tm->data);
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
  if (srv->tls && (c->tls = net_tls_new(srv->tls)) == NULL) {
    net_conn_close(c);
    return;
  }
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0
      || uv_read_start((uv_stream_t *)&c->tcp, c->tls ? cipher_alloc : alloc_cb, read_cb) != 0)
    net_conn_close(c);
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
    net_conn_close(c);
  }
  s->ready_head = s->ready_tail = NULL;
}

static int server_gc(lua_State *L) {
  server_t **ud = (server_t **)luaL_checkudata(L, 1, SERVER_MT);
  if (*ud) {
    server_t *s = *ud;
    *ud = NULL;
    server_shutdown(s);
    net_tls_context_free(s->tls);
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
    net_conn_close(*ud);
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

/* opts.tls = {cert = PEM file, key = PEM file}: the server's TLS context. */
static void listen_tls(lua_State *L, server_t *s) {
  const char *cert, *key, *why = NULL;
  if (!lua_istable(L, 3)) return;
  if (lua_getfield(L, 3, "tls") != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  lua_getfield(L, -1, "cert");
  lua_getfield(L, -2, "key");
  cert = lua_tostring(L, -2);
  key = lua_tostring(L, -1);
  if (cert == NULL || key == NULL) luaL_argerror(L, 3, "tls needs cert and key (PEM files)");
  s->tls = net_tls_context(cert, key, &why);
  if (s->tls == NULL) rb_error_raise(L, "net", "TLS: %s", why);
  lua_pop(L, 3);
}

/* net.listen(host, port [, opts]) -> server; host must be a loopback address. */
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
  uv_tcp_init(rb_sched_loop(s->s), s->tcp);
  s->tcp->data = s;
  *ud = s; /* from here __gc closes everything */
  listen_tls(L, s);
  if (strchr(host, ':')) rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss);
  else rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
  if (rc == 0) rc = uv_tcp_bind(s->tcp, (struct sockaddr *)&ss, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)s->tcp, 128, on_connection);
  if (rc != 0) return rb_error_raise(L, "net", "listen on %s:%d: %s", host, port, rb_uv_strerror(rc, buf, sizeof buf));
  uv_tcp_getsockname(s->tcp, (struct sockaddr *)&ss, &len);
  s->port =
    ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
  return 1;
}

static const luaL_Reg server_meth[] = {
  { "accept", server_accept }, { "close", server_close }, { "port", server_port }, { NULL, NULL }
};

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
    lua_newtable(L);
    luaL_setfuncs(L, net_conn_meth, 0);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_newlib(L, net_funcs);
  return 1;
}

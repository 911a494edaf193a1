/*
** net_priv.h: what net.c (the server, reading requests) and net_write.c
** (responses, streamed or whole) share of runbook.net's connections.
*/
#ifndef RB_NET_PRIV_H
#define RB_NET_PRIV_H

#include <lauxlib.h>

#include "bindings.h"
#include "net_tls.h"

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
  void *tls; /* a TLS context (net_tls.h), or NULL: plain HTTP */
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
  int complete, closing, in_lua, gone;
  conn_t *next_ready;
  conn_t *next, **pprev; /* server->conns */
  net_tls *tls;          /* NULL: plain */
};

void net_conn_close(conn_t *c);

/* Sends data (malloc'd, owned from here) as it is; close_after: the last. */
int net_send_raw(conn_t *c, char *data, size_t len, int close_after);

/* conn:respond, conn:stream, conn:send, conn:gone, conn:finish */
extern const luaL_Reg net_conn_meth[];

#endif

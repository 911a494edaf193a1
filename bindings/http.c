/*
** http.c: runbook.http.core, HTTP(S) on libcurl's multi interface driven
** by the engine's libuv loop (curl's socket and timer callbacks), so any
** number of transfers share one thread.
**
** request{method, url, headers, body, timeout, connect_timeout, insecure,
**         cacert, cert, key, bearer, follow} -> {status, headers, body, url}
**
** Transport failures raise error objects: kind "dns", "connect", "tls",
** "timeout" or "http", with curl's message and the URL. HTTP statuses,
** 5xx included, are results.
**
** Ownership: one http_ctx per engine (found through the Lua registry),
** created on first use and destroyed by its teardown hook (http_shutdown). One http_req per call,
** owned by the waiting task's C frame; a cancelled request is removed from
** the multi and freed by the cancel hook. Socket contexts (uv_poll_t) are
** freed in their uv_close callback.
*/
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <lauxlib.h>

#include "curl_lazy.h"

#include "bindings.h"
#include "http_priv.h"

struct http_ctx {
  CURLM *multi;
  uv_timer_t *timer;
  uv_loop_t *loop;
};

typedef struct sock_ctx {
  uv_poll_t poll;
  curl_socket_t fd;
  http_ctx *h;
} sock_ctx;

static void req_free(http_req *r) {
  if (r->easy) {
    curl_multi_remove_handle(r->h->multi, r->easy);
    curl_easy_cleanup(r->easy);
  }
  curl_slist_free_all(r->headers);
  free(r->body);
  free(r->stop_at);
  free(r->resp.p);
  free(r->head.p);
  free(r);
}

/* {====================================================== curl <-> libuv */

static void check_multi_info(http_ctx *h) {
  CURLMsg *msg;
  int pending;
  while ((msg = curl_multi_info_read(h->multi, &pending)) != NULL) {
    http_req *r = NULL;
    CURL *easy;
    CURLcode result;
    if (msg->msg != CURLMSG_DONE) continue;
    easy = msg->easy_handle;
    result = msg->data.result; /* msg is invalid after the removal below */
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
    curl_multi_remove_handle(h->multi, easy);
    if (r == NULL) continue;
    r->result = result;
    r->done = 1;
    if (r->task) {
      lua_checkstack(rb_task_thread(r->task), 1);
      lua_pushboolean(rb_task_thread(r->task), 1);
      rb_task_wake(r->task, 1);
    }
  }
}

static void poll_cb(uv_poll_t *p, int status, int events) {
  sock_ctx *c = (sock_ctx *)p->data;
  int running, flags = 0;
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  curl_multi_socket_action(c->h->multi, c->fd, flags, &running);
  check_multi_info(c->h);
}

static void timer_cb(uv_timer_t *t) {
  http_ctx *h = (http_ctx *)t->data;
  int running;
  curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_multi_info(h);
}

/* curl asks for a timeout: < 0 stop; 0 means "soon", which we make 1 ms
** so that socket_action is never called from inside this callback. */
static int on_timeout(CURLM *multi, long ms, void *userp) {
  http_ctx *h = (http_ctx *)userp;
  (void)multi;
  if (ms < 0) uv_timer_stop(h->timer);
  else uv_timer_start(h->timer, timer_cb, ms == 0 ? 1 : (uint64_t)ms, 0);
  return 0;
}

static void sock_closed(uv_handle_t *hd) {
  free(hd->data);
}

static int on_socket(CURL *easy, curl_socket_t s, int action, void *userp, void *socketp) {
  http_ctx *h = (http_ctx *)userp;
  sock_ctx *c = (sock_ctx *)socketp;
  int events = 0;
  (void)easy;
  switch (action) {
    case CURL_POLL_IN:
    case CURL_POLL_OUT:
    case CURL_POLL_INOUT:
      if (c == NULL) {
        c = malloc(sizeof *c);
        if (c == NULL) return -1;
        c->fd = s;
        c->h = h;
        if (uv_poll_init_socket(h->loop, &c->poll, s) != 0) {
          free(c);
          return -1;
        }
        c->poll.data = c;
        curl_multi_assign(h->multi, s, c);
      }
      if (action != CURL_POLL_OUT) events |= UV_READABLE;
      if (action != CURL_POLL_IN) events |= UV_WRITABLE;
      return uv_poll_start(&c->poll, events, poll_cb) == 0 ? 0 : -1;
    case CURL_POLL_REMOVE:
      if (c) {
        uv_poll_stop(&c->poll);
        uv_close((uv_handle_t *)&c->poll, sock_closed);
        curl_multi_assign(h->multi, s, NULL);
      }
      return 0;
    default: return -1;
  }
}

static void timer_closed(uv_handle_t *hd) {
  free(hd);
}

static const char HTTP_CTX_KEY = 'H';

static void http_shutdown(void *ud);

static http_ctx *ctx_get(lua_State *L) {
  http_ctx *h;
  char err[300];
  lua_rawgetp(L, LUA_REGISTRYINDEX, &HTTP_CTX_KEY);
  h = (http_ctx *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (h) return h;
  if (rb_curl_load(err, sizeof err) != 0) {
    rb_error_raise(L, "http", "%s", err);
    return NULL;
  }
  h = calloc(1, sizeof *h);
  if (h == NULL) luaL_error(L, "not enough memory");
  h->loop = rb_sched_loop(rb_sched_of(L));
  h->timer = malloc(sizeof *h->timer);
  h->multi = curl_multi_init();
  if (h->timer == NULL || h->multi == NULL || uv_timer_init(h->loop, h->timer) != 0) {
    if (h->multi) curl_multi_cleanup(h->multi);
    free(h->timer);
    free(h);
    luaL_error(L, "cannot initialise libcurl");
  }
  if (rb_on_teardown(L, http_shutdown, h) != 0) {
    curl_multi_cleanup(h->multi);
    uv_close((uv_handle_t *)h->timer, timer_closed);
    free(h);
    luaL_error(L, "not enough memory");
  }
  h->timer->data = h;
  if (curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK
      || curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h) != CURLM_OK
      || curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timeout) != CURLM_OK
      || curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h) != CURLM_OK)
    luaL_error(L, "cannot set up libcurl's multi interface"); /* the hook frees h */
  lua_pushlightuserdata(L, h);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &HTTP_CTX_KEY);
  return h;
}

/* Engine teardown: every task is gone, so no transfer is left; closing the
** multi closes its cached connections (their sockets come back through
** on_socket REMOVE), then the timer. The caller runs the loop afterwards. */
static void http_shutdown(void *ud) {
  http_ctx *h = (http_ctx *)ud;
  curl_multi_cleanup(h->multi);
  uv_close((uv_handle_t *)h->timer, timer_closed);
  free(h);
}

/* }====================================================== */

/* {====================================================== request */

/* libcurl hands over the body decoded (gzip, deflate...): max_body bounds
** what it inflates to, not what came over the wire. */
static size_t write_body(char *p, size_t size, size_t n, void *ud) {
  http_req *r = (http_req *)ud;
  if (size * n > r->max_body - r->resp.len) {
    r->too_large = 1;
    return 0; /* stops the transfer (CURLE_WRITE_ERROR) */
  }
  size_t from = r->resp.len, want;
  if (!rb_buf_add(&r->resp, p, size * n)) return 0;
  if (r->stop_at == NULL) return size * n;
  /* look where the text may start: in what came now, or just before it */
  want = strlen(r->stop_at);
  from = from >= want ? from - want + 1 : 0;
  if (r->resp.len - from >= want && memmem(r->resp.p + from, r->resp.len - from, r->stop_at, want) != NULL) {
    r->stopped = 1;
    return 0; /* stops the transfer (CURLE_WRITE_ERROR), taken as success in http_k */
  }
  return size * n;
}

/* Keeps the header lines of the last response only (after redirects or a
** 100-continue, a new status line starts a new block). */
static size_t write_header(char *p, size_t size, size_t n, void *ud) {
  http_req *r = (http_req *)ud;
  size_t len = size * n;
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) r->head.len = 0;
  return rb_buf_add(&r->head, p, len) ? len : 0;
}

static const char *error_kind(CURLcode c) {
  switch (c) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return "dns";
    case CURLE_COULDNT_CONNECT: return "connect";
    case CURLE_OPERATION_TIMEDOUT: return "timeout";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE: return "tls";
    default: return "http";
  }
}

/* What libcurl's words mean for two mistakes an operator makes: a
** suffix to its message. */
static const char *hint(CURLcode c, const char *url) {
  if (c == CURLE_TOO_MANY_REDIRECTS) return " (a redirect loop?)";
  if ((c == CURLE_RECV_ERROR || c == CURLE_SEND_ERROR || c == CURLE_GOT_NOTHING || c == CURLE_WEIRD_SERVER_REPLY) && url
      && strncmp(url, "http://", 7) == 0)
    return " (the server closed the connection or did not answer in HTTP: is it a TLS port? use https://)";
  return "";
}

/* libcurl refused the response's headers, which it reports in words that
** misled (libcurl 7.88.1): over 300 KiB in all, "Too large response
** headers" as a receive error (which the TLS-port hint then followed);
** one header over CURL_MAX_HTTP_HEADER (100 KiB, curl.h), "Out of memory"
** with the status line already received. */
static int headers_refused(const http_req *r) {
  if (strstr(r->errbuf, "response headers") != NULL || strstr(r->errbuf, "header (max is") != NULL) return 1;
  return r->result == CURLE_OUT_OF_MEMORY && r->head.len > 0 && r->resp.len == 0;
}

/* Pushes the headers as a table with lower-cased names; repeated headers
** are joined with ", ". */
static void push_headers(lua_State *L, const rb_buf *b) {
  const char *p = b->p, *end = b->p ? b->p + b->len : NULL;
  lua_newtable(L);
  while (p && p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    const char *colon = memchr(p, ':', (size_t)(le - p));
    if (colon && colon > p) {
      luaL_Buffer nb;
      const char *v = colon + 1, *ve = le;
      const char *q;
      while (v < ve && (*v == ' ' || *v == '\t')) v++;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
      luaL_buffinit(L, &nb);
      for (q = p; q < colon; q++) luaL_addchar(&nb, (char)(*q >= 'A' && *q <= 'Z' ? *q + 32 : *q));
      luaL_pushresult(&nb);
      lua_pushvalue(L, -1);
      if (lua_rawget(L, -3) == LUA_TSTRING) {
        lua_pushliteral(L, ", ");
        lua_pushlstring(L, v, (size_t)(ve - v));
        lua_concat(L, 3);
      }
      else {
        lua_pop(L, 1);
        lua_pushlstring(L, v, (size_t)(ve - v));
      }
      lua_rawset(L, -3);
    }
    p = nl ? nl + 1 : end;
  }
}

static void http_cancel(rb_task *t, void *data) {
  (void)t;
  req_free((http_req *)data);
}

/* Continuation: stack [opts, req-anchor?, true|false, err]. */
static int http_k(lua_State *L, int status, lua_KContext ctx) {
  http_req *r = (http_req *)ctx;
  long code = 0;
  char *url = NULL;
  (void)status;
  if (!lua_toboolean(L, 2)) { /* cancelled: the hook freed r */
    lua_pushvalue(L, 3);
    return lua_error(L);
  }
  r->task = NULL;
  if (r->result != CURLE_OK && r->too_large) {
    curl_easy_getinfo(r->easy, CURLINFO_EFFECTIVE_URL, &url);
    rb_error_push(L, "too_large", "%s: the response body is over max_body (%zu bytes, counted decoded); stopped",
                  url ? url : "?", r->max_body);
    rb_error_setfield(L, "url", url ? url : "");
    req_free(r);
    return lua_error(L);
  }
  if (r->result == CURLE_WRITE_ERROR && r->stopped) r->result = CURLE_OK; /* stop_at: the reply we waited for */
  if (r->result != CURLE_OK && headers_refused(r)) {
    curl_easy_getinfo(r->easy, CURLINFO_EFFECTIVE_URL, &url);
    rb_error_push(L, "too_large", "%s: the response headers are larger than libcurl accepts (%s); stopped",
                  url ? url : "?", r->errbuf[0] ? r->errbuf : "one header over its 100 KiB");
    rb_error_setfield(L, "url", url ? url : "");
    req_free(r);
    return lua_error(L);
  }
  if (r->result != CURLE_OK) {
    const char *msg = r->errbuf[0] ? r->errbuf : curl_easy_strerror(r->result);
    curl_easy_getinfo(r->easy, CURLINFO_EFFECTIVE_URL, &url);
    rb_error_push(L, error_kind(r->result), "%s: %s%s", url ? url : "?", msg, hint(r->result, url));
    rb_error_setfield(L, "url", url ? url : "");
    rb_error_setint(L, "curl_code", r->result);
    req_free(r);
    return lua_error(L);
  }
  curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_getinfo(r->easy, CURLINFO_EFFECTIVE_URL, &url);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, code);
  lua_setfield(L, -2, "status");
  lua_pushlstring(L, r->resp.p ? r->resp.p : "", r->resp.len);
  lua_setfield(L, -2, "body");
  push_headers(L, &r->head);
  lua_setfield(L, -2, "headers");
  lua_pushstring(L, url ? url : "");
  lua_setfield(L, -2, "url");
  if (r->stopped) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "stopped");
  }
  req_free(r);
  return 1;
}

/* curl_easy_setopt, remembering the first option that failed: a libcurl
** older than an option answers CURLE_UNKNOWN_OPTION, and a request must
** not go out without, say, its protocol restriction. */
#define SETOPT(r, opt, val)                                                                                            \
  do {                                                                                                                 \
    if (failed == NULL && curl_easy_setopt((r)->easy, opt, val) != CURLE_OK) failed = #opt;                            \
  } while (0)

/* Sets every transfer option; returns NULL or the name of the option the
** loaded libcurl refused. */
static const char *set_options(lua_State *L, http_req *r, const http_opts *op, size_t body_len) {
  const char *failed = NULL;
  char *cacert = http_opt_text(L, "cacert");
  char *cert = http_opt_text(L, "cert"), *key = http_opt_text(L, "key");
  struct curl_slist *sl;
  SETOPT(r, CURLOPT_URL, op->url);
  SETOPT(r, CURLOPT_PRIVATE, r);
  SETOPT(r, CURLOPT_NOSIGNAL, 1L);
  SETOPT(r, CURLOPT_ERRORBUFFER, r->errbuf);
  SETOPT(r, CURLOPT_PROTOCOLS_STR, "http,https");
  SETOPT(r, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  SETOPT(r, CURLOPT_WRITEFUNCTION, write_body);
  SETOPT(r, CURLOPT_WRITEDATA, r);
  SETOPT(r, CURLOPT_HEADERFUNCTION, write_header);
  SETOPT(r, CURLOPT_HEADERDATA, r);
  SETOPT(r, CURLOPT_TIMEOUT_MS, (long)(op->timeout * 1000));
  SETOPT(r, CURLOPT_CONNECTTIMEOUT_MS, (long)(op->ctimeout * 1000));
  SETOPT(r, CURLOPT_USERAGENT, "runbook/" RUNBOOK_VERSION);
  SETOPT(r, CURLOPT_ACCEPT_ENCODING, "");
  lua_getfield(L, 1, "follow");
  SETOPT(r, CURLOPT_FOLLOWLOCATION, lua_toboolean(L, -1) ? 1L : 0L);
  SETOPT(r, CURLOPT_MAXREDIRS, 10L); /* as http.lua's own following; libcurl 7.88 has no limit */
  lua_pop(L, 1);
  lua_getfield(L, 1, "insecure");
  if (lua_toboolean(L, -1)) {
    SETOPT(r, CURLOPT_SSL_VERIFYPEER, 0L);
    SETOPT(r, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  lua_pop(L, 1);
  if (cacert) {
    SETOPT(r, CURLOPT_CAINFO, cacert); /* curl copies the string */
    free(cacert);
  }
  if (cert) { /* a client certificate (PEM) and its key, for mutual TLS (an etcd store) */
    SETOPT(r, CURLOPT_SSLCERT, cert);
    free(cert);
  }
  if (key) {
    SETOPT(r, CURLOPT_SSLKEY, key);
    free(key);
  }
  if (strcmp(op->method, "HEAD") == 0) SETOPT(r, CURLOPT_NOBODY, 1L);
  else if (strcmp(op->method, "GET") != 0) SETOPT(r, CURLOPT_CUSTOMREQUEST, op->method);
  if (r->body) {
    SETOPT(r, CURLOPT_POSTFIELDS, r->body);
    SETOPT(r, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
  }
  /* no "Expect: 100-continue" round trip for bodies */
  if ((sl = curl_slist_append(r->headers, "Expect:")) != NULL) r->headers = sl;
  SETOPT(r, CURLOPT_HTTPHEADER, r->headers);
  return failed;
}

#undef SETOPT

static int http_request(lua_State *L) {
  http_opts op;
  http_ctx *h;
  http_req *r;
  rb_task *t;
  const char *refused;
  size_t body_len;
  http_check_opts(L, &op);
  t = rb_wait_begin(L);
  h = ctx_get(L);
  r = calloc(1, sizeof *r);
  if (r == NULL) return luaL_error(L, "not enough memory");
  r->h = h;
  r->max_body = (size_t)op.max_body;
  lua_getfield(L, 1, "stop_at"); /* checked: a non-empty string or nil */
  if (lua_isstring(L, -1) && (r->stop_at = strdup(lua_tostring(L, -1))) == NULL) {
    lua_pop(L, 1);
    req_free(r);
    return luaL_error(L, "not enough memory");
  }
  lua_pop(L, 1);
  /* arguments were checked above: from here only memory errors raise */
  r->easy = curl_easy_init();
  if (r->easy == NULL) {
    req_free(r);
    return luaL_error(L, "cannot create a curl handle");
  }
  if (!http_add_headers(L, r) || !http_add_bearer(L, r) || !http_copy_body(L, r, &body_len)) {
    req_free(r);
    return luaL_error(L, "not enough memory");
  }
  if ((refused = set_options(L, r, &op, body_len)) != NULL) {
    req_free(r);
    return rb_error_raise(L, "http", "the loaded libcurl refused %s (too old for runbook?); nothing was sent", refused);
  }
  if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK) {
    req_free(r);
    return luaL_error(L, "cannot start the transfer");
  }
  r->task = t;
  lua_settop(L, 1);
  return rb_await_k(L, http_cancel, r, (lua_KContext)r, http_k);
}

/* }====================================================== */

static const luaL_Reg http_funcs[] = { { "request", http_request }, { NULL, NULL } };

/* libcurl is loaded by the first request (curl_lazy.c), not here. */
int luaopen_runbook_http_core(lua_State *L) {
  luaL_newlib(L, http_funcs);
  return 1;
}

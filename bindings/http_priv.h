/*
** http_priv.h: what http.c (transfers) and http_opts.c (a call's options,
** read from Lua) share. Private to the two.
*/
#ifndef RB_HTTP_PRIV_H
#define RB_HTTP_PRIV_H

#include <curl/curl.h>
#include <lua.h>

#include "bindings.h"

typedef struct http_ctx http_ctx;

typedef struct http_req {
  http_ctx *h;
  CURL *easy;
  rb_task *task;
  struct curl_slist *headers;
  char *body;      /* request body (copied) */
  rb_buf resp;     /* response body */
  rb_buf head;     /* response header lines of the final response */
  size_t max_body; /* bytes of body kept, counted after decoding */
  int too_large;   /* the body went over max_body: the transfer was stopped */
  char *stop_at;   /* opts.stop_at: end the transfer once the body holds it (a watch's first event) */
  int stopped;     /* it did: the transfer was stopped, and that is a success */
  CURLcode result;
  int done;
  char errbuf[CURL_ERROR_SIZE];
} http_req;

/* The call's options, checked before anything is allocated, so that a
** bad argument leaks nothing. Leaves url and method on the stack. */
typedef struct http_opts {
  const char *url, *method;
  double timeout, ctimeout, max_body;
} http_opts;

/* Checks the call's options at index 1; raises on a bad one. Leaves url
** and method on the stack. */
void http_check_opts(lua_State *L, http_opts *op);
/* opts[k] (a string or a secret) copied to malloc'd memory, or NULL. */
char *http_opt_text(lua_State *L, const char *k);
/* Add opts.headers, opts.bearer and opts.body to r; 0 when out of memory. */
int http_add_headers(lua_State *L, http_req *r);
int http_add_bearer(lua_State *L, http_req *r);
int http_copy_body(lua_State *L, http_req *r, size_t *len);

#endif

/*
** util.c: helpers the bindings share (bindings.h).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bindings.h"

int rb_buf_add(rb_buf *b, const void *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    char *np;
    while (cap < b->len + n + 1) cap *= 2;
    np = realloc(b->p, cap);
    if (np == NULL) return 0;
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
  return 1;
}

const char *rb_uv_strerror(int err, char *buf, size_t len) {
  snprintf(buf, len, "%s: %s", uv_err_name(err), uv_strerror(err));
  return buf;
}

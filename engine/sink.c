/*
** sink.c: where output leaves the engine. Every byte written to the
** terminal, the log file, the journal or the report goes through
** sink_mask(), which replaces the text of every registered secret with
** "***". Secrets are kept longest first so that a secret containing another
** is masked whole.
*/
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"

void sink_add_secret(rb_engine *e, const char *s, size_t len) {
  int i, pos;
  char *copy;
  if (len == 0) return;
  for (i = 0; i < e->nsecrets; i++)
    if (e->secrets[i].len == len && memcmp(e->secrets[i].text, s, len) == 0) return;
  if (e->nsecrets == e->capsecrets) {
    int cap = e->capsecrets ? e->capsecrets * 2 : 8;
    rb_secret_text *n = realloc(e->secrets, (size_t)cap * sizeof *n);
    if (n == NULL) abort(); /* cannot promise masking: refuse to go on */
    e->secrets = n;
    e->capsecrets = cap;
  }
  copy = malloc(len);
  if (copy == NULL) abort();
  memcpy(copy, s, len);
  for (pos = 0; pos < e->nsecrets && e->secrets[pos].len >= len; pos++) {}
  memmove(&e->secrets[pos + 1], &e->secrets[pos], (size_t)(e->nsecrets - pos) * sizeof *e->secrets);
  e->secrets[pos].text = copy;
  e->secrets[pos].len = len;
  e->nsecrets++;
}

/* First match of any secret at or after 'from'; returns its index or -1. */
static int find_secret(rb_engine *e, const char *s, size_t len, size_t from, size_t *at) {
  size_t i;
  int k;
  for (i = from; i < len; i++) {
    for (k = 0; k < e->nsecrets; k++) {
      const rb_secret_text *sc = &e->secrets[k];
      if (sc->len <= len - i && s[i] == sc->text[0] && memcmp(s + i, sc->text, sc->len) == 0) {
        *at = i;
        return k;
      }
    }
  }
  return -1;
}

char *sink_mask(rb_engine *e, const char *s, size_t len, size_t *outlen) {
  size_t cap = len + 1, n = 0, from = 0, at;
  char *out = malloc(cap);
  int k;
  if (out == NULL) abort();
  while (e->nsecrets > 0 && (k = find_secret(e, s, len, from, &at)) >= 0) {
    size_t need = n + (at - from) + 3 + (len - at) + 1;
    if (need > cap) {
      char *o = realloc(out, need);
      if (o == NULL) abort();
      out = o;
      cap = need;
    }
    memcpy(out + n, s + from, at - from);
    n += at - from;
    memcpy(out + n, "***", 3);
    n += 3;
    from = at + e->secrets[k].len;
  }
  if (n + (len - from) + 1 > cap) {
    char *o = realloc(out, n + (len - from) + 1);
    if (o == NULL) abort();
    out = o;
  }
  memcpy(out + n, s + from, len - from);
  n += len - from;
  out[n] = '\0';
  *outlen = n;
  return out;
}

static void write_all(int fd, const char *s, size_t len) {
  while (len > 0) {
    ssize_t w = write(fd, s, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      return; /* a closed terminal must not kill the run */
    }
    s += w;
    len -= (size_t)w;
  }
}

void sink_write(rb_engine *e, int fd, const char *s, size_t len) {
  size_t n;
  char *m;
  if (e->nsecrets == 0) { /* nothing to mask: no copy */
    write_all(fd, s, len);
    return;
  }
  m = sink_mask(e, s, len, &n);
  write_all(fd, m, n);
  free(m);
}

void sink_printf(rb_engine *e, int fd, const char *fmt, ...) {
  char buf[4096];
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof buf) n = sizeof buf - 1;
  sink_write(e, fd, buf, (size_t)n);
}

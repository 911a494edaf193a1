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

/* First match of any secret at or after 'from'; returns its index or -1.
** At one position the earliest in the list (the longest) wins. One memmem
** per secret, each searching only up to the best match so far: a tool's
** whole output is searched at every call, and a byte-by-byte loop over
** every secret was most of a rehearsal's cost of a kubectl call. */
static int find_secret(rb_engine *e, const char *s, size_t len, size_t from, size_t *at) {
  size_t end = len; /* a match must start before end */
  int k, best = -1;
  for (k = 0; k < e->nsecrets && from < end; k++) {
    const rb_secret_text *sc = &e->secrets[k];
    size_t limit = end - 1 + sc->len; /* the search covers starts < end */
    const char *p;
    if (limit > len) limit = len;
    if (sc->len > limit - from) continue;
    p = memmem(s + from, limit - from, sc->text, sc->len);
    if (p != NULL) {
      best = k;
      end = (size_t)(p - s);
    }
  }
  if (best >= 0) *at = end;
  return best;
}

static void add_one(rb_engine *e, const char *s, size_t len) {
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

/* A secret spanning lines reaches the sinks cut at its line breaks (a
** child's output is delivered a line at a time), so each of its lines is
** masked too, when at least MIN_PIECE bytes long: shorter pieces would
** mask ordinary text everywhere. */
#define MIN_PIECE 4

/* How an encoder writes a string between its quotes. Every JSON encoder
** escapes '"', '\\', newline, CR and tab by name and the other characters
** below 0x20 as \uXXXX; they differ in the rest:
**   named_bf  \b and \f by name, else \u0008 \u000c;
**   upper     hex digits in upper case (\u001B), else lower (\u001b);
**   html      <, > and & as \u003c \u003e \u0026;
**   seps      U+2028 and U+2029 as \u2028 \u2029. */
typedef struct json_style {
  unsigned named_bf : 1, upper : 1, html : 1, seps : 1;
} json_style;

/* The forms a secret takes in the JSON a child prints:
** - Go's encoding/json before 1.22 (talosctl -o json, kubectl), with and
**   without its default HTML escaping (encode.go, appendString);
** - Go 1.22 on, which names \b and \f (golang/go commit 2763146, CL 521675;
**   Python's json.dumps writes an ASCII secret the same way);
** - jansson (2.14, dump.c: dump_string, "\\u%04X"), our own json.encode,
**   which a child that is a runbook prints. */
static const json_style json_styles[] = {
  { 0, 0, 0, 1 }, { 0, 0, 1, 1 }, { 1, 0, 0, 1 }, { 1, 0, 1, 1 }, { 1, 1, 0, 0 },
};

/* The secret as a JSON string holds it (between the quotes) in style st:
** what a child prints when it writes JSON or a double-quoted YAML scalar.
** Returns a malloc'd string, or NULL when it equals the secret. */
static char *json_escaped(const char *s, size_t len, json_style st, size_t *outlen) {
  const char *hex = st.upper ? "0123456789ABCDEF" : "0123456789abcdef";
  char *out = malloc(len * 6 + 1), *o = out;
  size_t i;
  if (out == NULL) abort();
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    const char *esc = c == '"'                   ? "\\\""
                      : c == '\\'                ? "\\\\"
                      : c == '\n'                ? "\\n"
                      : c == '\r'                ? "\\r"
                      : c == '\t'                ? "\\t"
                      : c == '\b' && st.named_bf ? "\\b"
                      : c == '\f' && st.named_bf ? "\\f"
                                                 : NULL;
    if (esc) {
      memcpy(o, esc, 2);
      o += 2;
    }
    else if (c < 0x20 || (st.html && (c == '<' || c == '>' || c == '&'))) {
      memcpy(o, "\\u00", 4);
      o[4] = hex[c >> 4];
      o[5] = hex[c & 15];
      o += 6;
    }
    else if (st.seps && c == 0xE2 && i + 2 < len && (unsigned char)s[i + 1] == 0x80
             && ((unsigned char)s[i + 2] == 0xA8 || (unsigned char)s[i + 2] == 0xA9)) {
      memcpy(o, (unsigned char)s[i + 2] == 0xA8 ? "\\u2028" : "\\u2029", 6);
      o += 6;
      i += 2;
    }
    else *o++ = (char)c;
  }
  *outlen = (size_t)(o - out);
  if (*outlen == len && memcmp(out, s, len) == 0) { /* nothing escaped */
    free(out);
    return NULL;
  }
  return out;
}

/* The secret as libyaml writes it in a double-quoted scalar (yaml.encode
** of a string holding a control character): libyaml 0.2.5, emitter.c,
** yaml_emitter_write_double_quoted: every character that is not printable
** (IS_PRINTABLE), a line break (IS_BREAK: U+2028, U+2029 too), '"' and '\\' are escaped, by name where
** YAML has one (\0 \a \b \t \n \v \f \r \e \N \_ \L \P), else as \xXX,
** \uXXXX or \UXXXXXXXX in upper-case hex. Unicode output is on
** (yaml_encode.c) and the width unlimited, so nothing else changes.
** Returns a malloc'd string, or NULL when it equals the secret or is not
** UTF-8 (libyaml would not write it). */
static char *yaml_escaped(const char *s, size_t len, size_t *outlen) {
  static const char hex[] = "0123456789ABCDEF";
  char *out = malloc(len * 10 + 1), *o = out;
  size_t i = 0;
  if (out == NULL) abort();
  while (i < len) {
    unsigned char c = (unsigned char)s[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    unsigned long v;
    size_t k;
    const char *name = NULL;
    int width;
    if (n == 0 || i + n > len) goto invalid;
    v = n == 1 ? c : (unsigned long)(c & (0xFF >> (n + 1)));
    for (k = 1; k < n; k++) {
      if (((unsigned char)s[i + k] >> 6) != 2) goto invalid;
      v = (v << 6) | ((unsigned char)s[i + k] & 0x3F);
    }
    if (v == 0x0A) name = "n";
    else if ((v >= 0x20 && v <= 0x7E && v != '"' && v != '\\')
             || (v >= 0xA0 && v <= 0xD7FF && v != 0x2028 && v != 0x2029)
             || (v >= 0xE000 && v <= 0xFFFD && v != 0xFEFF)) {
      memcpy(o, s + i, n); /* printable: as it is */
      o += n;
      i += n;
      continue;
    }
    switch (v) {
      case 0x00: name = "0"; break;
      case 0x07: name = "a"; break;
      case 0x08: name = "b"; break;
      case 0x09: name = "t"; break;
      case 0x0B: name = "v"; break;
      case 0x0C: name = "f"; break;
      case 0x0D: name = "r"; break;
      case 0x1B: name = "e"; break;
      case '"': name = "\""; break;
      case '\\': name = "\\"; break;
      case 0x85: name = "N"; break;
      case 0xA0: name = "_"; break;
      case 0x2028: name = "L"; break;
      case 0x2029: name = "P"; break;
      default: break;
    }
    *o++ = '\\';
    if (name) *o++ = *name;
    else {
      *o++ = v <= 0xFF ? 'x' : v <= 0xFFFF ? 'u' : 'U';
      for (width = v <= 0xFF ? 2 : v <= 0xFFFF ? 4 : 8; width > 0; width--) *o++ = hex[(v >> (4 * (width - 1))) & 15];
    }
    i += n;
  }
  *outlen = (size_t)(o - out);
  if (*outlen == len && memcmp(out, s, len) == 0) goto invalid; /* nothing escaped */
  return out;
invalid:
  free(out);
  return NULL;
}

void sink_add_secret(rb_engine *e, const char *s, size_t len) {
  size_t i, start = 0, n, k;
  if (len == 0) return;
  add_one(e, s, len);
  for (k = 0; k < sizeof json_styles / sizeof *json_styles; k++) {
    char *j = json_escaped(s, len, json_styles[k], &n);
    if (j) add_one(e, j, n); /* add_one keeps one copy of equal forms */
    free(j);
  }
  {
    char *y = yaml_escaped(s, len, &n);
    if (y) add_one(e, y, n);
    free(y);
  }
  if (memchr(s, '\n', len) == NULL && memchr(s, '\r', len) == NULL) return;
  for (i = 0; i <= len; i++) {
    if (i == len || s[i] == '\n' || s[i] == '\r') {
      if (i - start >= MIN_PIECE) add_one(e, s + start, i - start);
      start = i + 1;
    }
  }
}

int sink_has_secret(rb_engine *e, const char *s, size_t len) {
  size_t at;
  return e->nsecrets > 0 && find_secret(e, s, len, 0, &at) >= 0;
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

/* Returns 0 or the errno of a failed write. */
static int write_all(int fd, const char *s, size_t len) {
  while (len > 0) {
    ssize_t w = write(fd, s, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno; /* a closed terminal must not kill the run */
    }
    s += w;
    len -= (size_t)w;
  }
  return 0;
}

/* A log that cannot be written (a full disk) is said once, on stderr, and
** again when the run ends (engine_free): the run goes on without it. */
static void put(rb_engine *e, int fd, const char *s, size_t len) {
  int err;
  if (fd == e->log_fd && e->log_errno) return;
  err = write_all(fd, s, len);
  if (err && fd == e->log_fd && fd >= 0) {
    char msg[512];
    int n;
    e->log_errno = err;
    n = snprintf(msg, sizeof msg, "runbook: cannot write the log file %s: %s; the run goes on, the log is incomplete\n",
                 e->cli && e->cli->log_file ? e->cli->log_file : "(log)", strerror(err));
    if (n > 0) write_all(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
  }
}

void sink_write(rb_engine *e, int fd, const char *s, size_t len) {
  size_t n;
  char *m;
  if (e->nsecrets == 0) { /* nothing to mask: no copy */
    put(e, fd, s, len);
    return;
  }
  m = sink_mask(e, s, len, &n);
  put(e, fd, m, n);
  free(m);
}

/* Formats into a buffer that grows to fit (as Redis's sdscatvprintf does),
** so the whole text is masked before any of it is written: a fixed buffer
** cut a long message before masking, and a secret across the cut printed
** its first part in clear. */
void sink_printf(rb_engine *e, int fd, const char *fmt, ...) {
  char stack[1024], *buf = stack;
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(stack, sizeof stack, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof stack) {
    buf = malloc((size_t)n + 1);
    if (buf == NULL) abort(); /* cannot promise masking: refuse to go on */
    va_start(ap, fmt);
    n = vsnprintf(buf, (size_t)n + 1, fmt, ap);
    va_end(ap);
    if (n < 0) {
      free(buf);
      return;
    }
  }
  sink_write(e, fd, buf, (size_t)n);
  if (buf != stack) free(buf);
}

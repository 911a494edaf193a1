/*
** exec_io.c: a child's output as exec.c reads it: captured up to
** max_output per stream (the rest counted), and cut into the lines
** on_line is handed (a line longer than max_line in pieces). Output lost
** to a failed allocation sets r->nomem: exec.run then raises rather than
** return a result that looks whole.
*/
#include <stdlib.h>
#include <string.h>

#include "exec_priv.h"

int exec_grow(char **p, size_t *cap, size_t need) {
  if (need <= *cap) return 1;
  {
    size_t c = *cap ? *cap : 256;
    char *n;
    while (c < need) c *= 2;
    n = realloc(*p, c);
    if (n == NULL) return 0;
    *p = n;
    *cap = c;
  }
  return 1;
}

/* A pending line: tag, length, bytes (a line may hold NUL bytes). Tags 'o'
** and 'e' end a line, 'O' and 'E' are a piece of a longer one. */
void exec_queue_line(exec_req *r, char tag, const char *s, size_t n) {
  if (!exec_grow(&r->lines, &r->lines_cap, r->lines_len + 1 + sizeof n + n)) {
    r->nomem = 1;
    return;
  }
  r->lines[r->lines_len++] = tag;
  memcpy(r->lines + r->lines_len, &n, sizeof n);
  r->lines_len += sizeof n;
  memcpy(r->lines + r->lines_len, s, n);
  r->lines_len += n;
}

/* Adds bytes holding no newline to the stream's partial line. A line
** longer than max_line goes to on_line in pieces of max_line bytes, so
** that a child writing one endless line cannot make us hold it whole. */
static void exec_add_to_line(exec_req *r, out_stream *o, char tag, const char *buf, size_t part) {
  while (part > 0) {
    size_t take;
    if (o->line_len >= r->max_line) {
      exec_queue_line(r, (char)(tag - 'a' + 'A'), o->line, o->line_len);
      o->line_len = 0;
    }
    take = r->max_line - o->line_len;
    if (take > part) take = part;
    if (exec_grow(&o->line, &o->line_cap, o->line_len + take)) {
      memcpy(o->line + o->line_len, buf, take);
      o->line_len += take;
    }
    else r->nomem = 1;
    buf += take;
    part -= take;
  }
}

void exec_capture(exec_req *r, out_stream *o, char tag, const char *buf, size_t n) {
  size_t keep = o->max > o->len ? o->max - o->len : 0;
  if (keep > n) keep = n;
  if (keep > 0 && exec_grow(&o->data, &o->cap, o->len + keep + 1)) {
    memcpy(o->data + o->len, buf, keep);
    o->len += keep;
  }
  else {
    if (keep > 0) r->nomem = 1; /* lost, not dropped past max_output */
    keep = 0;
  }
  o->dropped += n - keep;
  if (!r->want_lines) return;
  while (n > 0) {
    const char *nl = memchr(buf, '\n', n);
    size_t part = nl ? (size_t)(nl - buf) : n;
    exec_add_to_line(r, o, tag, buf, part);
    if (!nl) break;
    exec_queue_line(r, tag, o->line, o->line_len);
    o->line_len = 0;
    buf += part + 1;
    n -= part + 1;
  }
}

void exec_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  exec_req *r = (exec_req *)h->data;
  (void)suggested;
  buf->base = r->readbuf;
  buf->len = sizeof r->readbuf;
}

void exec_end_stream(exec_req *r, uv_pipe_t *p, out_stream *o, char tag) {
  if (o->eof) return;
  uv_read_stop((uv_stream_t *)p);
  o->eof = 1;
  if (r->want_lines && o->line_len > 0) {
    exec_queue_line(r, tag, o->line, o->line_len);
    o->line_len = 0;
  }
}

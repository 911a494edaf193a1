/*
** exec_priv.h: what exec.c and exec_args.c share. Private to the two.
*/
#ifndef RB_EXEC_PRIV_H
#define RB_EXEC_PRIV_H

#include <stddef.h>

#include <lua.h>

#include "bindings.h"

/* The strings a child is spawned with, in C memory. A userdata owns them,
** so that a Lua error raised while they are read frees what was copied. */
typedef struct spawn_args {
  char **argv;
  char **env;
  char *cwd;
} spawn_args;

/* Pushes a new, empty spawn_args userdata (freed by its __gc). */
spawn_args *exec_new_args(lua_State *L);
/* Frees the strings and empties a (the userdata stays). */
void exec_free_args(spawn_args *a);
/* argv from the list at idx (argument 1): strings and numbers, no secret. */
void exec_build_argv(lua_State *L, int idx, spawn_args *a);
/* The environment from opts.env / opts.clear_env of the table at opts;
** a->env stays NULL when the child inherits the engine's as it is. */
void exec_build_env(lua_State *L, int opts, spawn_args *a);
/* opts[k] as a number, def when absent; raises on another type. */
double exec_opt_number(lua_State *L, int opts, const char *k, double def);
/* opts.stdin (a string or a secret) of the table at index 2, copied to C
** memory (it may hold NUL bytes); NULL when none. */
char *exec_copy_stdin(lua_State *L, size_t *len);

/* One exec.run call: its child, pipes, captured output and timers (see
** exec.c for who owns it). */
#define EXEC_READ_CHUNK 65536

typedef struct out_stream {
  char *data; /* captured bytes */
  size_t len, cap, max;
  size_t dropped;
  int eof;
  char *line; /* partial line for on_line */
  size_t line_len, line_cap;
} out_stream;

typedef struct exec_req {
  struct exec_req *next, **pprev; /* exec_live list; pprev NULL once detached */
  rb_sched *s;
  rb_task *task; /* NULL once the task no longer waits (orphaned) */
  uv_process_t *proc;
  uv_pipe_t *pin, *pout, *perr;
  int open_handles;
  int pid;
  int exited;
  int64_t code;
  int term_signal;
  out_stream out, err;
  int want_lines;
  int nomem;       /* output or a line was lost to a failed allocation */
  size_t max_line; /* on_line gets longer lines in pieces */
  char *lines;     /* pending lines (queue_line) */
  size_t lines_len, lines_cap;
  char *dlv; /* the lines being handed to on_line, which may wait */
  size_t dlv_off, dlv_len;
  rb_timer timeout, kill;
  double grace;
  int timed_out;
  int killed; /* SIGKILL sent: stop waiting for the pipes once exited */
  uint64_t started;
  uint64_t finished;
  int woken; /* task already queued */
  char *stdin_data;
  size_t stdin_len;
  uv_write_t wreq;
  uv_shutdown_t sreq;
  char readbuf[EXEC_READ_CHUNK];
} exec_req;

/* exec_io.c: the child's output, captured and cut into lines. */
int exec_grow(char **p, size_t *cap, size_t need);
void exec_queue_line(exec_req *r, char tag, const char *s, size_t n);
void exec_capture(exec_req *r, out_stream *o, char tag, const char *buf, size_t n);
void exec_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
void exec_end_stream(exec_req *r, uv_pipe_t *p, out_stream *o, char tag);

#endif

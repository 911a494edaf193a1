/*
** exec_priv.h: what exec.c and exec_args.c share. Private to the two.
*/
#ifndef RB_EXEC_PRIV_H
#define RB_EXEC_PRIV_H

#include <stddef.h>

#include <lua.h>

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

#endif

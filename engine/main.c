/*
** main.c: the runbook command. Parses the command line, builds an engine
** per run (or per test file) and maps outcomes to exit codes.
*/
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>

#include "engine.h"
#include "rb_modules.h"
#include "version.h"

static int cmd_run(const rb_cli *cli) {
  rb_engine *e;
  char *path = engine_find_runbook(cli->file);
  int code;
  if (path == NULL) {
    const char *dir = engine_runbooks_dir();
    fprintf(stderr, "runbook: cannot find runbook '%s' (looked in the current directory, RUNBOOK_PATH%s%s)\n",
            cli->file, dir ? ", " : "", dir ? dir : "");
    return RB_EXIT_USAGE;
  }
  e = engine_new(cli, cli->dry_run, rb_binding_modules);
  if (e == NULL) {
    free(path);
    return RB_EXIT_FAILED;
  }
  code = engine_run_file(e, path);
  engine_free(e);
  free(path);
  return code;
}

static int has_suffix(const char *s, const char *suf) {
  size_t n = strlen(s), m = strlen(suf);
  return n >= m && strcmp(s + n - m, suf) == 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists the .lua entries of DIR, sorted; returns count, fills *out (caller
** frees). One that is not a regular file is listed too: reading it says
** what it is, where skipping it would hide it. */
static int list_lua(const char *dir, char ***out) {
  DIR *d = opendir(dir);
  struct dirent *de;
  char **v = NULL;
  int n = 0, cap = 0;
  *out = NULL;
  if (d == NULL) return -1;
  while ((de = readdir(d)) != NULL) {
    char buf[PATH_MAX];
    if (!has_suffix(de->d_name, ".lua")) continue;
    snprintf(buf, sizeof buf, "%s/%s", dir, de->d_name);
    if (n == cap) {
      char **nv;
      cap = cap ? cap * 2 : 16;
      nv = realloc(v, (size_t)cap * sizeof *v);
      if (nv == NULL) break;
      v = nv;
    }
    v[n++] = strdup(buf);
  }
  closedir(d);
  qsort(v, (size_t)n, sizeof *v, cmp_str);
  *out = v;
  return n;
}

static int cmd_test(const rb_cli *cli) {
  int passed = 0, failed = 0, i, j, rc = RB_EXIT_OK;
  for (i = 0; i < cli->nfiles; i++) {
    struct stat st;
    char **files = NULL;
    int n;
    if (stat(cli->files[i], &st) != 0) {
      fprintf(stderr, "runbook test: cannot open '%s'\n", cli->files[i]);
      return RB_EXIT_USAGE;
    }
    if (S_ISDIR(st.st_mode)) n = list_lua(cli->files[i], &files);
    else {
      files = malloc(sizeof *files);
      if (files == NULL) return RB_EXIT_FAILED;
      files[0] = strdup(cli->files[i]);
      n = 1;
    }
    for (j = 0; j < n; j++) {
      rb_engine *e = engine_new(cli, cli->dry_run, rb_binding_modules);
      if (e == NULL) return RB_EXIT_FAILED;
      if (engine_run_tests(e, files[j], &passed, &failed) != RB_EXIT_OK) rc = RB_EXIT_FAILED;
      engine_free(e);
      free(files[j]);
    }
    free(files);
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed > 0 ? RB_EXIT_FAILED : rc;
}

/* The first comment line of a runbook ("-- Rolls out ...") is looked for
** in its first FIRST_COMMENT_MAX bytes: a header is a few lines. */
#define FIRST_COMMENT_MAX 65536

/* Reads at most FIRST_COMMENT_MAX bytes of path into a malloc'd string;
** NULL (a line on stderr) when it is not a regular file or cannot be read. */
static char *read_head(const char *path) {
  const char *kind;
  char *buf;
  size_t got = 0;
  int fd = input_open(path, &kind);
  if (fd < 0) {
    if (kind) fprintf(stderr, "runbook list: %s: %s, not a regular file; skipped\n", path, kind);
    else fprintf(stderr, "runbook list: %s: %s; skipped\n", path, strerror(errno));
    return NULL;
  }
  if ((buf = malloc(FIRST_COMMENT_MAX + 1)) == NULL) {
    close(fd);
    return NULL;
  }
  while (got < FIRST_COMMENT_MAX) {
    ssize_t n = read(fd, buf + got, FIRST_COMMENT_MAX - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  close(fd);
  buf[got] = '\0';
  return buf;
}

/* The first comment of path into out ("" when none); -1 when the file
** cannot be read. */
static int first_comment(const char *path, char *out, size_t len) {
  char *head = read_head(path), *line, *next;
  out[0] = '\0';
  if (head == NULL) return -1;
  for (line = head; line; line = next) {
    char *p = line;
    if ((next = strchr(line, '\n')) != NULL) *next++ = '\0';
    if (strncmp(p, "#!", 2) == 0) continue;
    if (strncmp(p, "--", 2) != 0) break;
    p += 2;
    while (*p == '-' || *p == ' ') p++;
    p[strcspn(p, "\r")] = '\0';
    if (*p) {
      snprintf(out, len, "%s", p);
      break;
    }
  }
  free(head);
  return 0;
}

/* Prints the runbooks of one directory; returns how many. */
static int list_dir(const char *dir, const char *label) {
  char **files;
  int n, i;
  if ((n = list_lua(dir, &files)) < 0) return 0;
  if (n > 0) printf("%s (%s):\n", label, dir);
  for (i = 0; i < n; i++) {
    char desc[512];
    const char *base = strrchr(files[i], '/') + 1;
    if (first_comment(files[i], desc, sizeof desc) == 0) printf("  %-16s %s\n", base, desc);
    free(files[i]);
  }
  free(files);
  return n;
}

/* The runbooks `run` would find by name, in its order: each directory of
** RUNBOOK_PATH, then the shipped ones. */
static int cmd_list(void) {
  const char *dir = engine_runbooks_dir(), *rp = getenv("RUNBOOK_PATH");
  int total = 0;
  if (rp) {
    char *copy = strdup(rp), *save = NULL, *d;
    for (d = copy ? strtok_r(copy, ":", &save) : NULL; d; d = strtok_r(NULL, ":", &save))
      total += list_dir(d, "RUNBOOK_PATH");
    free(copy);
  }
  if (dir == NULL) {
    fprintf(stderr, "runbook: cannot find the shipped runbooks directory\n");
    return total > 0 ? RB_EXIT_OK : RB_EXIT_FAILED;
  }
  total += list_dir(dir, "shipped");
  if (total == 0) printf("(no runbooks in %s)\n", dir);
  return RB_EXIT_OK;
}

static int cmd_check(const rb_cli *cli) {
  char *path = engine_find_runbook(cli->file);
  rb_engine *e;
  int code = RB_EXIT_OK;
  if (path == NULL) {
    fprintf(stderr, "runbook: cannot find runbook '%s'\n", cli->file);
    return RB_EXIT_USAGE;
  }
  e = engine_new(cli, 1, rb_binding_modules);
  if (e == NULL) {
    free(path);
    return RB_EXIT_FAILED;
  }
  if (engine_loadfile(e->L, path, "t") != LUA_OK) {
    fprintf(stderr, "runbook: %s\n", lua_tostring(e->L, -1));
    code = RB_EXIT_USAGE;
  }
  else {
    lua_pop(e->L, 1);
    lua_getglobal(e->L, "require");
    lua_pushliteral(e->L, "runbook.main");
    lua_call(e->L, 1, 1);
    lua_getfield(e->L, -1, "outline");
    lua_pushstring(e->L, path);
    if (lua_pcall(e->L, 1, 0, 0) != LUA_OK) {
      fprintf(stderr, "runbook: %s\n", lua_tostring(e->L, -1));
      code = RB_EXIT_FAILED;
    }
  }
  engine_free(e);
  free(path);
  return code;
}

/* The exit code of a driver task that ran to its end: its integer result,
** or its error's exit (printed, prefixed with `who`). */
static int task_exit(rb_engine *e, rb_task *t, const char *who) {
  lua_State *L = e->L;
  int code = RB_EXIT_OK;
  lua_getiuservalue(L, -1, 1);
  if (t->status == RB_TASK_OK) {
    lua_rawgeti(L, -1, 1);
    if (lua_isinteger(L, -1)) code = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
  }
  else {
    lua_getfield(L, -1, "err");
    if (e->sched.interrupted) code = RB_EXIT_INTERRUPTED;
    else {
      int c2 = RB_EXIT_FAILED;
      if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "exit");
        if (lua_isinteger(L, -1)) c2 = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
      }
      sink_printf(e, 2, "%s: %s\n", who, luaL_tolstring(L, -1, NULL));
      lua_pop(L, 1);
      code = c2;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  return code;
}

/* world serve / world call: run engine/lua/serve.lua in a real-clock engine. */
static int cmd_world_serve(const rb_cli *cli) {
  rb_engine *e = engine_new(cli, 0, rb_binding_modules);
  lua_State *L;
  rb_task *t;
  int code, i;
  if (e == NULL) return RB_EXIT_FAILED;
  L = e->L;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "runbook.serve");
  lua_call(L, 1, 1);
  if (strcmp(cli->world_action, "call") == 0) {
    lua_getfield(L, -1, "call");
    lua_pushstring(L, cli->world_url);
    lua_createtable(L, cli->call_argc, 0);
    for (i = 0; i < cli->call_argc; i++) {
      lua_pushstring(L, cli->call_argv[i]);
      lua_rawseti(L, -2, i + 1);
    }
    lua_remove(L, -4);
    t = rb_task_spawn(L, 2, "world call");
  }
  else {
    lua_getfield(L, -1, "serve");
    if (cli->scenario) lua_pushstring(L, cli->scenario);
    else lua_pushnil(L);
    lua_pushstring(L, cli->world_dir);
    lua_remove(L, -4);
    t = rb_task_spawn(L, 2, "world serve");
  }
  sched_run(&e->sched, t);
  code = task_exit(e, t, "runbook world");
  engine_free(e);
  return code;
}

/* The capture of the live cluster by the world of `runbook` (NULL: the
** shipped world) into `out` (NULL: stdout), in a real-clock engine: the
** world's capture(), through runbook.main.capture. */
static int run_capture(const rb_cli *cli, const char *runbook, const char *out, int strict) {
  rb_engine *e = engine_new(cli, 0, rb_binding_modules);
  lua_State *L;
  rb_task *t;
  int code;
  if (e == NULL) return RB_EXIT_FAILED;
  L = e->L;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "runbook.main");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "capture");
  if (runbook) lua_pushstring(L, runbook);
  else lua_pushnil(L);
  if (out) lua_pushstring(L, out);
  else lua_pushnil(L);
  lua_pushboolean(L, strict);
  lua_remove(L, -5);
  t = rb_task_spawn(L, 3, "world capture");
  sched_run(&e->sched, t);
  code = task_exit(e, t, strict ? "runbook world capture" : "runbook plan");
  engine_free(e);
  return code;
}

static int cmd_world(const rb_cli *cli) {
  if (strcmp(cli->world_action, "capture") == 0) return run_capture(cli, NULL, cli->world_out, 1);
  return cmd_world_serve(cli);
}

/* status, fleet: the function `fn` of the engine's Lua module `mod`, run
** as the main task of a real-clock engine (fleet --dry-run: the children
** rehearse; the fleet itself only waits on them). */
static int cmd_lua(const rb_cli *cli, const char *mod, const char *fn, const char *what) {
  rb_engine *e = engine_new(cli, 0, rb_binding_modules);
  lua_State *L;
  rb_task *t;
  int code;
  if (e == NULL) return RB_EXIT_FAILED;
  L = e->L;
  lua_getglobal(L, "require");
  lua_pushstring(L, mod);
  lua_call(L, 1, 1);
  lua_getfield(L, -1, fn);
  lua_remove(L, -2);
  t = rb_task_spawn(L, 0, what);
  sched_run(&e->sched, t);
  code = task_exit(e, t, what);
  engine_free(e);
  return code;
}

/* plan FILE: capture into STATE/NAME.capture.yaml, then rehearse FILE on it. */
static int cmd_plan(const rb_cli *cli) {
  char out[PATH_MAX], *path = engine_find_runbook(cli->file);
  const char *base, *state = cli->state_dir ? cli->state_dir : ".runbook";
  size_t n;
  rb_cli rehearse;
  int code;
  if (path == NULL) {
    fprintf(stderr, "runbook: cannot find runbook '%s'\n", cli->file);
    return RB_EXIT_USAGE;
  }
  base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  n = strlen(base);
  if (n > 4 && strcmp(base + n - 4, ".lua") == 0) n -= 4;
  if (snprintf(out, sizeof out, "%s/%.*s.capture.yaml", state, (int)n, base) >= (int)sizeof out) {
    free(path);
    fprintf(stderr, "runbook plan: the state directory's path is too long\n");
    return RB_EXIT_USAGE;
  }
  code = run_capture(cli, path, out, 0);
  free(path);
  if (code != RB_EXIT_OK) return code;
  rehearse = *cli;
  rehearse.cmd = RB_CMD_RUN;
  rehearse.dry_run = 1;
  rehearse.scenario = out;
  return cmd_run(&rehearse);
}

/* completion SHELL | completion words KIND [FILE]: engine/lua/completion.lua */
static int cmd_completion(const rb_cli *cli) {
  rb_engine *e = engine_new(cli, 0, rb_binding_modules);
  lua_State *L;
  int i, code = RB_EXIT_OK;
  if (e == NULL) return RB_EXIT_FAILED;
  L = e->L;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "runbook.completion");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "main");
  for (i = 0; i < cli->nfiles; i++) lua_pushstring(L, cli->files[i]);
  if (lua_pcall(L, cli->nfiles, 1, 0) != LUA_OK) {
    fprintf(stderr, "runbook completion: %s\n", lua_tostring(L, -1));
    code = RB_EXIT_FAILED;
  }
  else if (lua_isinteger(L, -1)) code = (int)lua_tointeger(L, -1);
  engine_free(e);
  return code;
}

int main(int argc, char **argv) {
  rb_cli cli;
  char err[512];
  if (cli_parse(&cli, argc, argv, err, sizeof err) != 0) {
    fprintf(stderr, "runbook: %s\n", err);
    return RB_EXIT_USAGE;
  }
  if (cli.help) {
    fputs(cli_help(cli.cmd), stdout);
    return RB_EXIT_OK;
  }
  switch (cli.cmd) {
    case RB_CMD_HELP:
      fputs(cli_help(cli.help_topic ? cli_command_named(cli.help_topic) : RB_CMD_NONE), stdout);
      return RB_EXIT_OK;
    case RB_CMD_VERSION: return version_print(stdout, cli.output == RB_OUT_JSON) == 0 ? RB_EXIT_OK : RB_EXIT_FAILED;
    case RB_CMD_COMPLETION: return cmd_completion(&cli);
    case RB_CMD_RUN: return cmd_run(&cli);
    case RB_CMD_CHECK: return cmd_check(&cli);
    case RB_CMD_LIST: return cmd_list();
    case RB_CMD_TEST: return cmd_test(&cli);
    case RB_CMD_WORLD: return cmd_world(&cli);
    case RB_CMD_PLAN: return cmd_plan(&cli);
    case RB_CMD_STATUS: return cmd_lua(&cli, "runbook.store_cli", "status", "runbook status");
    case RB_CMD_FLEET: return cmd_lua(&cli, "runbook.fleet", "run", "runbook fleet");
    default: fputs(cli_help(RB_CMD_NONE), stderr); return RB_EXIT_USAGE;
  }
}

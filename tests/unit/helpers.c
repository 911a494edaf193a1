/* helpers.c: see helpers.h */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>

#include "helpers.h"

int run_lua(const char *code, int virtual_clock, char **out) {
  static rb_cli cli;
  char path[] = "/tmp/runbook-unit-XXXXXX.lua";
  int fd = mkstemps(path, 4), code_rc;
  rb_engine *e;
  memset(&cli, 0, sizeof cli);
  cli.verbosity = -1;
  if (fd < 0) return -1;
  if (write(fd, code, strlen(code)) != (ssize_t)strlen(code)) {
    close(fd);
    return -1;
  }
  close(fd);
  e = engine_new(&cli, virtual_clock, rb_binding_modules);
  if (e == NULL) return -1;
  /* the chunk stores its answer in the global RESULT */
  code_rc = engine_run_file(e, path);
  if (out) {
    lua_getglobal(e->L, "RESULT");
    *out = lua_isstring(e->L, -1) ? strdup(lua_tostring(e->L, -1)) : NULL;
    lua_pop(e->L, 1);
  }
  engine_free(e);
  unlink(path);
  return code_rc;
}

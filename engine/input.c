/*
** input.c: every file the engine reads whole goes through here: a runbook,
** a module found by require, a script given to dofile or loadfile, the
** first comment `runbook list` shows, and (through fs.read) --vars,
** --scenario and whatever a runbook reads. Only a regular file (through
** links) is read, opened without blocking so that a FIFO is refused at once
** instead of waiting in open() for a writer (deaf to SIGTERM), and never
** more than a cap: /dev/zero or a 10 GiB file cannot eat the memory.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"

static const char *file_kind(mode_t m) {
  return S_ISDIR(m)                 ? "a directory"
         : S_ISFIFO(m)              ? "a FIFO"
         : S_ISCHR(m) || S_ISBLK(m) ? "a device"
         : S_ISSOCK(m)              ? "a socket"
                                    : "not a file";
}

int input_open(const char *path, const char **kind) {
  struct stat st;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  *kind = NULL;
  if (fd < 0) return -1;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    *kind = file_kind(st.st_mode);
    errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
    return -1;
  }
  return fd;
}

/* Pushes {kind="fs", message="<op> <path>: <why>", errno=, path=}. */
static void push_fail(lua_State *L, const char *op, const char *path, int err, const char *kind) {
  int uverr = uv_translate_sys_error(err);
  if (kind) rb_error_push(L, "fs", "%s %s: %s, not a regular file", op, path, kind);
  else rb_error_push(L, "fs", "%s %s: %s: %s", op, path, uv_err_name(uverr), uv_strerror(uverr));
  rb_error_setfield(L, "errno", uv_err_name(uverr));
  rb_error_setfield(L, "path", path);
}

static void push_too_large(lua_State *L, const char *op, const char *path, lua_Integer max) {
  rb_error_push(L, "fs", "%s %s: more than %lld bytes, too large for this input", op, path, (long long)max);
  rb_error_setfield(L, "errno", "EFBIG");
  rb_error_setfield(L, "path", path);
}

int rb_read_file(lua_State *L, const char *op, const char *path, lua_Integer max) {
  const char *kind;
  size_t got = 0;
  luaL_Buffer b;
  struct stat st;
  int fd = input_open(path, &kind);
  if (fd < 0) {
    push_fail(L, op, path, errno, kind);
    return 0;
  }
  if (fstat(fd, &st) == 0 && st.st_size > max) {
    close(fd);
    push_too_large(L, op, path, max);
    return 0;
  }
  luaL_buffinit(L, &b);
  for (;;) { /* the size can grow while it is read: the cap holds anyway */
    char *p = luaL_prepbuffsize(&b, 65536);
    ssize_t n = read(fd, p, 65536);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      luaL_pushresult(&b);
      lua_pop(L, 1);
      push_fail(L, op, path, err, NULL);
      return 0;
    }
    if (n == 0) break;
    got += (size_t)n;
    if (got > (size_t)max) {
      close(fd);
      luaL_pushresult(&b);
      lua_pop(L, 1);
      push_too_large(L, op, path, max);
      return 0;
    }
    luaL_addsize(&b, (size_t)n);
  }
  close(fd);
  luaL_pushresult(&b);
  return 1;
}

/* {====================================================== Lua chunks */

int engine_loadfile(lua_State *L, const char *path, const char *mode) {
  const char *s;
  size_t len, skip = 0;
  int rc;
  if (!rb_read_file(L, "read", path, RB_SCRIPT_MAX)) {
    lua_getfield(L, -1, "message");
    lua_remove(L, -2);
    return LUA_ERRFILE;
  }
  s = lua_tolstring(L, -1, &len);
  /* as luaL_loadfilex: a UTF-8 BOM, then a first line starting with '#'
  ** (a shebang) are skipped; the line's newline stays, so lines count */
  if (len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) skip = 3;
  if (skip < len && s[skip] == '#')
    while (skip < len && s[skip] != '\n') skip++;
  lua_pushfstring(L, "@%s", path);
  rc = luaL_loadbufferx(L, s + skip, len - skip, lua_tostring(L, -1), mode);
  lua_remove(L, -2); /* the chunk name */
  lua_remove(L, -2); /* the text */
  return rc;
}

/* loadfile(filename [, mode [, env]]) as Lua's, through engine_loadfile. A
** chunk from stdin (no file name) is not read: a runbook's stdin is not
** its code. */
static int lua_loadfile_capped(lua_State *L) {
  const char *path = luaL_optstring(L, 1, NULL);
  const char *mode = luaL_optstring(L, 2, NULL);
  int env = !lua_isnone(L, 3) ? 3 : 0;
  if (path == NULL) {
    luaL_pushfail(L);
    lua_pushliteral(L, "loadfile: a file name is required (no chunk is read from stdin)");
    return 2;
  }
  if (engine_loadfile(L, path, mode) != LUA_OK) {
    luaL_pushfail(L);
    lua_insert(L, -2);
    return 2;
  }
  if (env != 0) { /* as lbaselib.c: env becomes the chunk's _ENV */
    lua_pushvalue(L, env);
    if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1);
  }
  return 1;
}

static int dofile_cont(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return lua_gettop(L) - 1;
}

/* dofile(filename) as Lua's (the chunk may yield), through engine_loadfile. */
static int lua_dofile_capped(lua_State *L) {
  const char *path = luaL_optstring(L, 1, NULL);
  lua_settop(L, 1);
  if (path == NULL) return luaL_error(L, "dofile: a file name is required (no chunk is read from stdin)");
  if (engine_loadfile(L, path, NULL) != LUA_OK) return lua_error(L);
  lua_callk(L, 0, LUA_MULTRET, 0, dofile_cont);
  return dofile_cont(L, 0, 0);
}

/* package.searchers' Lua file searcher: package.path as Lua's own, but a
** candidate counts as found when it exists (stat, which does not block on a
** FIFO, where Lua's fopen() does) and is loaded by engine_loadfile, so that
** a module that is a FIFO, a device or too large is one clear error. */
static int lua_searcher_capped(lua_State *L) {
  const char *name = luaL_checkstring(L, 1), *path, *p;
  luaL_Buffer tried;
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  if ((path = lua_tostring(L, -1)) == NULL) return luaL_error(L, "'package.path' must be a string");
  name = luaL_gsub(L, name, ".", LUA_DIRSEP);
  luaL_buffinit(L, &tried);
  for (p = path; *p; p += *p == ';') {
    const char *end = strchr(p, ';');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    struct stat st;
    const char *file;
    lua_pushlstring(L, p, n);
    file = luaL_gsub(L, lua_tostring(L, -1), LUA_PATH_MARK, name);
    lua_remove(L, -2);
    p += n;
    if (n == 0) {
      lua_pop(L, 1);
      continue;
    }
    if (stat(file, &st) == 0) {
      if (engine_loadfile(L, file, NULL) != LUA_OK)
        return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", lua_tostring(L, 1), file,
                          lua_tostring(L, -1));
      lua_pushstring(L, file);
      return 2;
    }
    lua_pushfstring(L, "%sno file '%s'", luaL_bufflen(&tried) > 0 ? "\n\t" : "", file);
    lua_remove(L, -2);
    luaL_addvalue(&tried);
  }
  luaL_pushresult(&tried);
  return 1;
}

void engine_capped_loaders(lua_State *L) {
  lua_pushcfunction(L, lua_loadfile_capped);
  lua_setglobal(L, "loadfile");
  lua_pushcfunction(L, lua_dofile_capped);
  lua_setglobal(L, "dofile");
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  lua_pushcfunction(L, lua_searcher_capped);
  lua_rawseti(L, -2, 2); /* Lua's own file searcher, before embedded_searcher goes in */
  lua_pop(L, 2);
}

/* }====================================================== */

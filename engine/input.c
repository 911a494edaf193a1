/*
** input.c: every file the engine reads whole goes through here: a runbook,
** a module found by require, a script given to dofile or loadfile, the
** first comment `runbook list` shows, and (through fs.read) --vars,
** --scenario and whatever a runbook reads. Only a regular file (through
** links) is read, opened without blocking so that a FIFO is refused at once
** instead of waiting in open() for a writer (deaf to SIGTERM), and never
** more than a cap: /dev/zero or a 10 GiB file cannot eat the memory.
** Lua's io library opens by name through here too (io.open, io.lines,
** io.input, io.output): any file and mode Lua's own accepts, but a FIFO
** is refused at once.
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

/* }====================================================== */

/*
** {======================================================
** Lua's io library, where it opens a file by name (io.open, io.lines,
** io.input, io.output): the same files and modes as Lua's fopen(), but
** opened without blocking, so that a FIFO is refused at once (io.open's
** nil, message, errno) instead of waiting in open() for another process,
** deaf to SIGTERM; and close-on-exec, so that no child inherits it.
** =======================================================
*/

/* the open(2) flags of an fopen() mode ("r", "w+", "ab", ...), or -1:
** the modes Lua's own io.open accepts (l_checkmode) */
static int mode_flags(const char *mode) {
  int flags;
  switch (*mode++) {
    case 'r': flags = O_RDONLY; break;
    case 'w': flags = O_WRONLY | O_CREAT | O_TRUNC; break;
    case 'a': flags = O_WRONLY | O_CREAT | O_APPEND; break;
    default: return -1;
  }
  if (*mode == '+') {
    flags = (flags & ~O_ACCMODE) | O_RDWR;
    mode++;
  }
  return strspn(mode, "b") == strlen(mode) ? flags : -1;
}

static int io_fclose(lua_State *L) {
  luaL_Stream *p = (luaL_Stream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
  return luaL_fileresult(L, fclose(p->f) == 0, NULL);
}

/* io.open(filename [, mode]) */
static int lua_io_open_guarded(lua_State *L) {
  const char *path = luaL_checkstring(L, 1), *mode = luaL_optstring(L, 2, "r");
  int flags = mode_flags(mode), fd, fl;
  struct stat st;
  luaL_Stream *p;
  luaL_argcheck(L, flags >= 0, 2, "invalid mode");
  /* the handle first, closed, so that no memory error can leak the file */
  p = (luaL_Stream *)lua_newuserdatauv(L, sizeof(luaL_Stream), 0);
  p->closef = NULL;
  p->f = NULL;
  luaL_setmetatable(L, LUA_FILEHANDLE);
  fd = open(path, flags | O_CLOEXEC | O_NONBLOCK, 0666);
  if (fd < 0) {
    int err = errno;
    /* a FIFO opened for writing with no reader: ENXIO at once */
    if (err == ENXIO && stat(path, &st) == 0 && S_ISFIFO(st.st_mode)) goto fifo;
    errno = err;
    return luaL_fileresult(L, 0, path);
  }
  if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode)) {
    close(fd);
    goto fifo;
  }
  if ((fl = fcntl(fd, F_GETFL)) == -1 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == -1
      || (p->f = fdopen(fd, mode)) == NULL) {
    int err = errno;
    close(fd);
    errno = err;
    return luaL_fileresult(L, 0, path);
  }
  p->closef = io_fclose;
  return 1;
fifo:
  luaL_pushfail(L);
  lua_pushfstring(L, "%s: a FIFO, not a regular file (opening it would wait for another process)", path);
  lua_pushinteger(L, EINVAL);
  return 3;
}

/* opens `path` through the guard or raises as Lua's io library does:
** "cannot open file 'PATH' (REASON)", the reason without the path that
** io.open's message starts with */
static void open_or_raise(lua_State *L, const char *path, const char *mode) {
  lua_pushcfunction(L, lua_io_open_guarded);
  lua_pushstring(L, path);
  lua_pushstring(L, mode);
  lua_call(L, 2, 2);
  if (lua_isnil(L, -2)) {
    const char *msg = lua_tostring(L, -1);
    size_t plen = strlen(path);
    if (msg == NULL) msg = "unknown error";
    else if (strncmp(msg, path, plen) == 0 && strncmp(msg + plen, ": ", 2) == 0) msg += plen + 2;
    luaL_error(L, "cannot open file '%s' (%s)", path, msg);
  }
  lua_pop(L, 1);
}

/* the iterator io.lines(filename) returns: the file's own lines iterator
** (upvalue 1) that closes the file (upvalue 2) at its end, as Lua's does */
static int lines_closing(lua_State *L) {
  int n;
  lua_settop(L, 0);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_call(L, 0, LUA_MULTRET);
  n = lua_gettop(L);
  if (n == 0 || lua_isnil(L, 1)) {
    luaL_Stream *p = (luaL_Stream *)lua_touserdata(L, lua_upvalueindex(2));
    if (p->closef != NULL) {
      lua_pushvalue(L, lua_upvalueindex(2));
      lua_getfield(L, -1, "close");
      lua_insert(L, -2);
      lua_call(L, 1, 0);
    }
  }
  return n;
}

/* io.lines([filename, ...]): without a file name, Lua's own (upvalue 1) */
static int lua_io_lines_guarded(lua_State *L) {
  int n = lua_gettop(L), i;
  if (lua_isnoneornil(L, 1)) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
  }
  open_or_raise(L, luaL_checkstring(L, 1), "r"); /* the file at n + 1 */
  lua_getfield(L, n + 1, "lines");
  lua_pushvalue(L, n + 1);
  for (i = 2; i <= n; i++) lua_pushvalue(L, i);
  lua_call(L, n, 1); /* file:lines(...) */
  lua_pushvalue(L, n + 1);
  lua_pushcclosure(L, lines_closing, 2);
  lua_pushnil(L);
  lua_pushnil(L);
  lua_pushvalue(L, n + 1); /* the to-be-closed value, as Lua 5.4's */
  return 4;
}

/* io.input([file]) and io.output([file]): a file name is opened through
** the guard, then handed to Lua's own (upvalue 1) as a file */
static int io_default_file(lua_State *L, const char *mode) {
  if (lua_type(L, 1) == LUA_TSTRING) {
    open_or_raise(L, lua_tostring(L, 1), mode);
    lua_replace(L, 1);
  }
  lua_settop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}
static int lua_io_input_guarded(lua_State *L) {
  return io_default_file(L, "r");
}
static int lua_io_output_guarded(lua_State *L) {
  return io_default_file(L, "w");
}

static void guard_io(lua_State *L) {
  static const struct {
    const char *name;
    lua_CFunction fn;
  } wrapped[] = { { "lines", lua_io_lines_guarded },
                  { "input", lua_io_input_guarded },
                  { "output", lua_io_output_guarded } };
  size_t i;
  lua_getglobal(L, "io");
  lua_pushcfunction(L, lua_io_open_guarded);
  lua_setfield(L, -2, "open");
  for (i = 0; i < sizeof wrapped / sizeof wrapped[0]; i++) {
    lua_getfield(L, -1, wrapped[i].name); /* Lua's own, the upvalue */
    lua_pushcclosure(L, wrapped[i].fn, 1);
    lua_setfield(L, -2, wrapped[i].name);
  }
  lua_pop(L, 1);
}

/* }====================================================== */

/* loadfile, dofile, require's file searcher and the io library's opening
** by name, each through the reads above */
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
  guard_io(L);
}

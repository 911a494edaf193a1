/*
** fs.c: runbook.fs.core, local files. Calls are synchronous: runbooks touch
** a handful of small local files (talconfig.yaml, patches, the journal),
** where a thread-pool round trip would cost more than the syscall.
** engine/lua/fs.lua wraps this with the dry-run overlay.
**
** read(path), write(path, data [, {mode=, backup=}]) -> backup path|nil,
** exists(path), stat(path), list(dir), mkdir_p(path [, mode]),
** remove(path), tmpdir([prefix])
**
** write is atomic: a temporary file in the same directory, fsync, rename
** over the target, fsync of the directory. A reader sees the old file or
** the new one, never a mix; a crash leaves the old one. A symbolic link
** is followed: the file it ends at is replaced, in its own directory.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bindings.h"

/* Raises {kind="fs", message="<op> <path>: ENOENT: ...", errno=<name>}. */
static int fs_fail(lua_State *L, const char *op, const char *path, int err) {
  char buf[128];
  rb_error_push(L, "fs", "%s %s: %s", op, path, rb_uv_strerror(uv_translate_sys_error(err), buf, sizeof buf));
  rb_error_setfield(L, "errno", uv_err_name(uv_translate_sys_error(err)));
  rb_error_setfield(L, "path", path);
  return lua_error(L);
}

/* Every file read has a cap: a runbook's inputs are configs and lists. */
#define READ_MAX_DEFAULT (64 * 1024 * 1024)

/* read(path [, {max = bytes}]) -> contents. Only a regular file is read
** (through links): /dev/zero as a talconfig, a FIFO as --vars are refused
** at once, and a FIFO is opened without blocking (an open() waiting for a
** writer would ignore SIGTERM). A file that holds more than max (default
** 64 MiB) is refused once max is passed, before memory runs out. The
** engine reads its own inputs (a runbook, dofile, require) the same way:
** rb_read_file. */
static int fs_read(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer max = lua_isnoneornil(L, 2) ? READ_MAX_DEFAULT : rb_opt_integer(L, 2, "max", READ_MAX_DEFAULT);
  luaL_argcheck(L, max >= 0, 2, "max must be >= 0");
  if (!rb_read_file(L, "read", path, max)) return lua_error(L);
  return 1;
}

static int write_all(int fd, const char *s, size_t len) {
  while (len > 0) {
    ssize_t w = write(fd, s, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    s += w;
    len -= (size_t)w;
  }
  return 0;
}

/* The directory part of path ("." when none) into buf. */
static void dir_of(const char *path, char *buf, size_t len) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL) snprintf(buf, len, ".");
  else if (slash == path) snprintf(buf, len, "/");
  else snprintf(buf, len, "%.*s", (int)(slash - path), path);
}

static int fsync_dir(const char *path) {
  char dir[PATH_MAX];
  int fd, rc;
  dir_of(path, dir, sizeof dir);
  fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  rc = fsync(fd);
  close(fd);
  return rc;
}

/* Links the old file as NAME.bak.<UTC time> (".N" on a clash) before the
** rename, so that there is never a moment without it. Fills bak; returns
** 0 or an errno. */
static int link_backup(lua_State *L, const char *path, char *bak, size_t baklen) {
  time_t now = (time_t)rb_clock_wall(rb_sched_of(L));
  struct tm tm;
  char stamp[32];
  int k;
  gmtime_r(&now, &tm);
  strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
  for (k = 0; k < 100; k++) {
    int n =
      k == 0 ? snprintf(bak, baklen, "%s.bak.%s", path, stamp) : snprintf(bak, baklen, "%s.bak.%s.%d", path, stamp, k);
    if (n < 0 || (size_t)n >= baklen) return ENAMETOOLONG; /* never a link under a cut name */
    if (link(path, bak) == 0) return 0;
    if (errno != EEXIST) return errno;
  }
  return EEXIST;
}

/* Writes data to a new temporary file beside path (same file system, so
** that the rename is atomic), synced, with the given mode. Fills tmp;
** returns 0 or an errno (the temporary file is gone then). */
static int write_temp(const char *path, const char *data, size_t len, mode_t mode, char *tmp, size_t tmplen) {
  char dir[PATH_MAX];
  const char *base = strrchr(path, '/');
  int fd, err;
  dir_of(path, dir, sizeof dir);
  if ((size_t)snprintf(tmp, tmplen, "%.*s/.%s.tmp.XXXXXX", (int)(sizeof dir - 32), dir, base ? base + 1 : path)
      >= tmplen)
    return ENAMETOOLONG;
  fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0) return errno;
  if (fchmod(fd, mode) != 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0) {
    err = errno;
    close(fd);
    unlink(tmp);
    return err;
  }
  if (close(fd) != 0) {
    err = errno;
    unlink(tmp);
    return err;
  }
  return 0;
}

/* Follows path through its symbolic links (relative ones against the
** link's own directory) to the file they end at, into out: a GitOps
** checkout whose talconfig.yaml is a link must see its target replaced,
** not the link turned into a file of its own. A dangling link ends at its
** missing target, which the write creates (as a shell's `>` does). 0 or
** an errno (ELOOP after 40 links, as the kernel's limit). */
static int resolve_links(const char *path, char *out, size_t outlen) {
  char target[PATH_MAX], dir[PATH_MAX];
  struct stat st;
  int hops;
  if ((size_t)snprintf(out, outlen, "%s", path) >= outlen) return ENAMETOOLONG;
  for (hops = 0; hops < 40; hops++) {
    ssize_t n;
    if (lstat(out, &st) != 0 || !S_ISLNK(st.st_mode)) return 0;
    n = readlink(out, target, sizeof target - 1);
    if (n < 0) return errno;
    target[n] = '\0';
    dir_of(out, dir, sizeof dir);
    if (target[0] == '/') n = snprintf(out, outlen, "%s", target);
    else n = snprintf(out, outlen, "%s/%s", dir, target);
    if (n < 0 || (size_t)n >= outlen) return ENAMETOOLONG;
  }
  return ELOOP;
}

/* write(path, data [, {mode =, backup = false}]) -> backup path or nil.
** Without `mode` an existing file keeps its mode and a new one is 0600: what
** a runbook writes may hold run details (configs, reports, keys); a file
** meant for others says so with its mode. */
static int fs_write(lua_State *L) {
  const char *given = luaL_checkstring(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  char tmp[PATH_MAX], bak[PATH_MAX], path[PATH_MAX];
  int backup = 0, have_mode = 0, err, exists;
  mode_t mode = 0600;
  struct stat st;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_getfield(L, 3, "mode");
    have_mode = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (have_mode) {
      lua_Integer m = rb_opt_integer(L, 3, "mode", 0600);
      luaL_argcheck(L, m >= 0 && m <= 07777, 3, "mode must be 0..0o7777");
      mode = (mode_t)m;
    }
    lua_getfield(L, 3, "backup");
    backup = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  if ((err = resolve_links(given, path, sizeof path)) != 0) return fs_fail(L, "write", given, err);
  exists = stat(path, &st) == 0;
  if (exists && !S_ISREG(st.st_mode)) return fs_fail(L, "write", path, EISDIR);
  if (exists && !have_mode) mode = st.st_mode & 07777;
  if ((err = write_temp(path, data, len, mode, tmp, sizeof tmp)) != 0) return fs_fail(L, "write", path, err);
  bak[0] = '\0';
  if (backup && exists && (err = link_backup(L, path, bak, sizeof bak)) != 0) {
    unlink(tmp);
    return fs_fail(L, "back up", path, err);
  }
  if (rename(tmp, path) != 0) {
    err = errno;
    unlink(tmp);
    return fs_fail(L, "write", path, err);
  }
  fsync_dir(path);
  if (bak[0]) lua_pushstring(L, bak);
  else lua_pushnil(L);
  return 1;
}

static int fs_exists(lua_State *L) {
  struct stat st;
  lua_pushboolean(L, stat(luaL_checkstring(L, 1), &st) == 0);
  return 1;
}

/* stat(path) -> {type=, size=, mode=, mtime=, uid=, mine=} or nil, message
** (mine: owned by the effective user, as ssh checks its key files) */
static int fs_stat(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) != 0) {
    char buf[128];
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", path, rb_uv_strerror(uv_translate_sys_error(errno), buf, sizeof buf));
    return 2;
  }
  lua_createtable(L, 0, 6);
  lua_pushstring(L, S_ISREG(st.st_mode)   ? "file"
                    : S_ISDIR(st.st_mode) ? "directory"
                    : S_ISLNK(st.st_mode) ? "link"
                                          : "other");
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, (lua_Integer)st.st_size);
  lua_setfield(L, -2, "size");
  lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
  lua_setfield(L, -2, "mode");
  lua_pushnumber(L, (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9);
  lua_setfield(L, -2, "mtime");
  lua_pushinteger(L, (lua_Integer)st.st_uid);
  lua_setfield(L, -2, "uid");
  lua_pushboolean(L, st.st_uid == geteuid());
  lua_setfield(L, -2, "mine");
  return 1;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* list(dir) -> sorted names (no "." or "..") */
static int fs_list(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  DIR *d = opendir(path);
  struct dirent *de;
  int n = 0, i;
  if (d == NULL) return fs_fail(L, "list", path, errno);
  lua_newtable(L);
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    lua_pushstring(L, de->d_name);
    lua_rawseti(L, -2, ++n);
  }
  closedir(d);
  {
    /* sort through a C array of the (interned, table-anchored) strings */
    const char **v = malloc((size_t)(n ? n : 1) * sizeof *v);
    if (v == NULL) return luaL_error(L, "not enough memory");
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      v[i - 1] = lua_tostring(L, -1);
      lua_pop(L, 1);
    }
    qsort(v, (size_t)n, sizeof *v, cmp_names);
    lua_createtable(L, n, 0);
    for (i = 0; i < n; i++) {
      lua_pushstring(L, v[i]);
      lua_rawseti(L, -2, i + 1);
    }
    free(v);
  }
  return 1;
}

/* mkdir_p(path [, mode = 0755]) */
/* For a private directory (mode without group/other bits: backups of
** machine configs, which hold the cluster's secrets): a component that is
** a symbolic link to a directory others may write, or a directory others
** may write without the sticky bit, is refused with one message rather
** than followed without a word; the directory itself must be ours. */
static int private_path_ok(lua_State *L, const char *dir, int last) {
  struct stat lst, st;
  if (lstat(dir, &lst) != 0 || stat(dir, &st) != 0) return fs_fail(L, "mkdir", dir, errno);
  if (S_ISLNK(lst.st_mode) && (st.st_mode & S_IWOTH))
    return rb_error_raise(L, "fs",
                          "mkdir %s: a symbolic link to a directory others may write: refused for private files "
                          "(make it a directory of its own)",
                          dir);
  if (!S_ISLNK(lst.st_mode) && (st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))
    return rb_error_raise(L, "fs", "mkdir %s: a directory others may write: refused for private files", dir);
  if (last && st.st_uid != geteuid())
    return rb_error_raise(L, "fs", "mkdir %s: not ours (uid %ld): refused for private files", dir, (long)st.st_uid);
  return 0;
}

static int fs_mkdir_p(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  mode_t mode = (mode_t)luaL_optinteger(L, 2, 0755);
  char buf[PATH_MAX];
  size_t i, n = strlen(path);
  if (n >= sizeof buf) return fs_fail(L, "mkdir", path, ENAMETOOLONG);
  memcpy(buf, path, n + 1);
  for (i = 1; i <= n; i++) {
    if (buf[i] == '/' || buf[i] == '\0') {
      char c = buf[i];
      struct stat st;
      buf[i] = '\0';
      if (mkdir(buf, mode) != 0 && errno != EEXIST) return fs_fail(L, "mkdir", buf, errno);
      if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) return fs_fail(L, "mkdir", buf, ENOTDIR);
      if ((mode & 077) == 0) private_path_ok(L, buf, c == '\0');
      buf[i] = c;
    }
  }
  return 0;
}

/* remove(path): a file or an empty directory; a missing path is no error. */
static int fs_remove(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (remove(path) != 0 && errno != ENOENT) return fs_fail(L, "remove", path, errno);
  return 0;
}

/* tmpdir([prefix]) -> a new private directory under $TMPDIR or /tmp */
static int fs_tmpdir(lua_State *L) {
  const char *prefix = luaL_optstring(L, 1, "runbook");
  const char *base = getenv("TMPDIR");
  char buf[PATH_MAX];
  snprintf(buf, sizeof buf, "%s/%s.XXXXXX", base && *base ? base : "/tmp", prefix);
  if (mkdtemp(buf) == NULL) return fs_fail(L, "tmpdir", buf, errno);
  lua_pushstring(L, buf);
  return 1;
}

/* append(path, data [, mode = 0600]): one write with O_APPEND, then fsync:
** a journal record is on disk when this returns. */
static int fs_append(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  mode_t mode = (mode_t)luaL_optinteger(L, 3, 0600);
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, mode), err;
  if (fd < 0) return fs_fail(L, "append to", path, errno);
  if (write_all(fd, data, len) != 0 || fsync(fd) != 0) {
    err = errno;
    close(fd);
    return fs_fail(L, "append to", path, err);
  }
  if (close(fd) != 0) return fs_fail(L, "append to", path, errno);
  return 0;
}

/* {====================================================== lock */

#define LOCK_MT "runbook.lock"

typedef struct lock_t {
  int fd;  /* -1 once released */
  int dfd; /* the directory's, locked too */
} lock_t;

static void lock_close(lock_t *k) {
  if (k->fd >= 0) {
    int fd = k->fd;
    k->fd = -1; /* closed first, then released */
    close(fd);  /* closing drops the flock */
  }
  if (k->dfd >= 0) {
    int dfd = k->dfd;
    k->dfd = -1;
    close(dfd);
  }
}

static int lock_release(lua_State *L) {
  lock_close((lock_t *)luaL_checkudata(L, 1, LOCK_MT));
  return 0;
}

/* Whether `fd` is still the file at `path` (same device and inode). */
static int same_file(int fd, const char *path) {
  struct stat a, b;
  return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

/* lock:check() -> true, or nil and why. The lock is held on open
** descriptors, but a second run finds it by path: when the lock file or
** its directory was deleted, moved or replaced, a second run can lock a
** new inode at that path, so the holder must act no further. Called
** before every step and every journal append (issue #30 point 18). */
static int lock_check(lua_State *L) {
  lock_t *k = (lock_t *)luaL_checkudata(L, 1, LOCK_MT);
  const char *path;
  char dir[PATH_MAX];
  if (k->fd < 0) return luaL_error(L, "attempt to use a closed lock");
  lua_getiuservalue(L, 1, 1);
  path = lua_tostring(L, -1);
  dir_of(path, dir, sizeof dir);
  if (same_file(k->fd, path) && same_file(k->dfd, dir)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  lua_pushfstring(L, "the lock file %s (or its directory) was removed, moved or replaced while this run held it", path);
  return 2;
}

/* Pushes nil and what the lock file says of its holder. */
static int lock_held(lua_State *L, const char *path) {
  char buf[512];
  ssize_t n = -1;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
  }
  lua_pushnil(L);
  if (n > 0) lua_pushlstring(L, buf, (size_t)n);
  else lua_pushliteral(L, "its lock file was removed while it runs");
  return 2;
}

/* lock(path, info) -> lock, or nil, holder-info. An exclusive flock on
** the directory holding path, then on path itself; on success the file
** holds `info` (pid, start time). The directory's lock is what a second
** run meets even when the lock file was deleted from under the holder (a
** new file would be a new inode, free to lock). A lock whose process died
** is free again (the kernel drops flocks with the process), so a stale
** lock file is simply taken over. */
static int fs_lock(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *info = luaL_checklstring(L, 2, &len);
  lock_t *k = (lock_t *)lua_newuserdatauv(L, sizeof *k, 1);
  int fd;
  char dir[PATH_MAX];
  k->fd = k->dfd = -1;
  if (luaL_newmetatable(L, LOCK_MT)) {
    lua_pushcfunction(L, lock_release);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, lock_release);
    lua_setfield(L, -2, "__close");
    lua_newtable(L);
    lua_pushcfunction(L, lock_release);
    lua_setfield(L, -2, "release");
    lua_pushcfunction(L, lock_check);
    lua_setfield(L, -2, "check");
    lua_setfield(L, -2, "__index");
  }
  lua_setmetatable(L, -2);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1); /* the path, for check() */
  dir_of(path, dir, sizeof dir);
  k->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (k->dfd < 0) return fs_fail(L, "lock", dir, errno);
  if (flock(k->dfd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    lock_close(k);
    if (err != EWOULDBLOCK) return fs_fail(L, "lock", dir, err);
    return lock_held(L, path);
  }
  fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    int err = errno;
    lock_close(k);
    return fs_fail(L, "lock", path, err);
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    close(fd);
    lock_close(k);
    if (err != EWOULDBLOCK) return fs_fail(L, "lock", path, err);
    return lock_held(L, path);
  }
  /* the file locked is the one at path (not one unlinked since it was opened) */
  if (!same_file(fd, path)) {
    close(fd);
    lock_close(k);
    return lock_held(L, path);
  }
  k->fd = fd;
  if (ftruncate(fd, 0) != 0 || pwrite(fd, info, len, 0) != (ssize_t)len) { /* informative only */
  }
  fsync(fd);
  return 1;
}

/* }====================================================== */

static const luaL_Reg fs_funcs[] = {
  { "append", fs_append },   { "exists", fs_exists }, { "list", fs_list },     { "lock", fs_lock },
  { "mkdir_p", fs_mkdir_p }, { "read", fs_read },     { "remove", fs_remove }, { "stat", fs_stat },
  { "tmpdir", fs_tmpdir },   { "write", fs_write },   { NULL, NULL }
};

int luaopen_runbook_fs_core(lua_State *L) {
  luaL_newlib(L, fs_funcs);
  return 1;
}

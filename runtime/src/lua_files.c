/*
** lua_files.c - files in `airbyte.core`: temporary files that the runtime
** removes at close, and thin wrappers over fs.c and the file system.
**
**   local f <close> = core.tempfile(content, ".json")  -- f.path, mode 0600
**   core.mkdir_p(path[, mode]), core.fsync(path), core.executable(path)
*/
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include "lb_internal.h"
#include "fs.h"

#define TMPFILE_MT "airbyte.TempFile"

/* executable(path) -> boolean: is there a file we may execute? */
static int l_executable(lua_State *L) {
  lua_pushboolean(L, lb__is_exe(luaL_checkstring(L, 1)));
  return 1;
}

/* nil, msg, code for a failed file call: msg is fmt with the path and
** strerror(e), code the error's name ("ENOENT"). */
static int push_os_fail(lua_State *L, const char *fmt, const char *path, int e) {
  luaL_pushfail(L);
  lua_pushfstring(L, fmt, path, strerror(e));
  lua_pushstring(L, uv_err_name(uv_translate_sys_error(e)));
  return 3;
}

/* fsync(path) -> true | nil, msg, code: makes a written file durable, for
** destinations that echo a STATE only once its records are on disk. A
** directory path syncs the directory (after a rename). */
static int l_fsync(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int fd = open(path, O_RDONLY | O_CLOEXEC), rc, e;
  if (fd < 0) return push_os_fail(L, "cannot open '%s' to sync it: %s", path, errno);
  rc = fsync(fd);
  e = errno;
  close(fd);
  if (rc != 0) return push_os_fail(L, "cannot sync '%s': %s", path, e);
  lua_pushboolean(L, 1);
  return 1;
}

/* mkdir_p(path[, mode]) -> true | nil, msg, code: creates missing parents. */
static int l_mkdir_p(lua_State *L) {
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  int mode = (int)luaL_optinteger(L, 2, 0755), e;
  luaL_Buffer b;
  char *buf = luaL_buffinitsize(L, &b, len + 1);
  memcpy(buf, path, len + 1);
  if ((e = lb__mkdir_p(buf, mode)) != 0) return push_os_fail(L, "cannot create directory '%s': %s", buf, e);
  lua_pushboolean(L, 1);
  return 1;
}

/* --- temporary files ------------------------------------------------------- */

typedef struct tmpfile_ud {
  lb_tmpfile *f;
  const char *path;
} tmpfile_ud;

static int l_tempfile(lua_State *L) {
  lb_runtime *rt = lb__rt(L);
  size_t len;
  const char *content = luaL_checklstring(L, 1, &len);
  const char *suffix = luaL_optstring(L, 2, "");
  tmpfile_ud *u = lua_newuserdatauv(L, sizeof *u, 1);
  u->f = NULL;
  luaL_setmetatable(L, TMPFILE_MT);
  if (strchr(suffix, '/')) return luaL_argerror(L, 2, "suffix must not contain '/'");
  u->f = lb__tmpfile_new(rt, content, len, suffix, &u->path);
  if (u->f == NULL) {
    int e = errno;
    luaL_pushfail(L);
    lua_pushfstring(L, "cannot create a temporary file: %s", strerror(e));
    lua_pushstring(L, uv_err_name(uv_translate_sys_error(e)));
    return 3;
  }
  lua_pushstring(L, u->path);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

static int l_tmp_remove(lua_State *L) {
  tmpfile_ud *u = luaL_checkudata(L, 1, TMPFILE_MT);
  if (u->f) {
    lb__tmpfile_remove(lb__rt(L), u->f);
    u->f = NULL;
  }
  return 0;
}

static int l_tmp_index(lua_State *L) {
  tmpfile_ud *u = luaL_checkudata(L, 1, TMPFILE_MT);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "path") == 0) {
    lua_getiuservalue(L, 1, 1);
    return 1;
  }
  if (strcmp(k, "remove") == 0) {
    lua_pushcfunction(L, l_tmp_remove);
    return 1;
  }
  if (strcmp(k, "exists") == 0) {
    lua_pushboolean(L, u->f != NULL);
    return 1;
  }
  return 0;
}

static int l_tmp_tostring(lua_State *L) {
  lua_getiuservalue(L, 1, 1);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"tempfile", l_tempfile},
  {"mkdir_p", l_mkdir_p},
  {"fsync", l_fsync},
  {"executable", l_executable},
  {NULL, NULL}
};

static const luaL_Reg tmpfile_meta[] = {
  {"__index", l_tmp_index}, {"__gc", l_tmp_remove}, {"__close", l_tmp_remove},
  {"__tostring", l_tmp_tostring}, {NULL, NULL}
};

void lb__open_files(lua_State *L) {
  luaL_newmetatable(L, TMPFILE_MT);
  luaL_setfuncs(L, tmpfile_meta, 0);
  lua_pop(L, 1);
  luaL_setfuncs(L, funcs, 0);
}

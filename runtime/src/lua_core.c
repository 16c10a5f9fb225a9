/*
** lua_core.c - the `airbyte.core` module: the runtime's services for Lua:
** tasks and the loop, time, temporary files, and thin wrappers over fs.c,
** ids.c and the process's stdin, tty and executable.
**
**   local core = require "airbyte.core"
**   local t = core.spawn(fn, ...)     -- a new task; t:wait() returns fn's results
**   core.sleep(ms)                    -- waits without blocking other tasks
**   core.yield()                      -- lets other ready tasks run
**   local f <close> = core.tempfile(content, ".json")  -- f.path, mode 0600
**   core.step(timeout_ms, budget_us), core.backend_fd(), core.backend_timeout(),
**   core.use_loop(uv)                 -- a Lua host drives the loop (loop.c)
*/
#define _GNU_SOURCE 1   /* dladdr */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "lb_internal.h"
#include "ids.h"
#include "fs.h"

#define TASK_MT "airbyte.Task"
#define TMPFILE_MT "airbyte.TempFile"

typedef struct task_ud {
  lb_task *t;
} task_ud;

/* --- tasks ----------------------------------------------------------------- */

static lb_task *checktask(lua_State *L, int idx) {
  task_ud *u = luaL_checkudata(L, idx, TASK_MT);
  return u->t;
}

static int l_spawn(lua_State *L) {
  lb_runtime *rt = lb__rt(L);
  int nargs = lua_gettop(L) - 1;
  lb_task *t;
  task_ud *u;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  u = lua_newuserdatauv(L, sizeof *u, 0);
  u->t = NULL;
  luaL_setmetatable(L, TASK_MT);
  lua_insert(L, 1);                  /* stack: ud, fn, args... */
  t = lb__task_new(rt, L, nargs);    /* moves fn and args */
  if (t == NULL) return luaL_error(L, "out of memory");
  t->lua_refs++;
  u->t = t;
  if (rt->current && rt->current->arg_ref != LUA_NOREF) {   /* the spawner's `arg` */
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->current->arg_ref);
    t->arg_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  return 1;
}

static const char *state_name(lb_task *t) {
  if (t->rt->current == t) return "running";
  switch (t->state) {
    case LB_TASK_READY: return "ready";
    case LB_TASK_WAITING: return "waiting";
    case LB_TASK_DONE: return "done";
    case LB_TASK_FAILED: return "failed";
    default: return "cancelled";
  }
}

static void cleanup_join(void *data) {
  lb_task *self = data, *target = self->join_target, **pp;
  if (target == NULL) return;
  for (pp = &target->joiners; *pp; pp = &(*pp)->join_next) {
    if (*pp == self) { *pp = self->join_next; break; }
  }
  self->join_next = NULL;
  self->join_target = NULL;
}

static int task_wait_k(lua_State *L, int status, lua_KContext ctx);

static int l_task_wait(lua_State *L) {
  lb_task *t = checktask(L, 1), *self;
  lua_settop(L, 1);
  switch (t->state) {
    case LB_TASK_DONE: {
      lua_Integer i, n;
      lua_rawgeti(L, LUA_REGISTRYINDEX, t->res_ref);
      lua_getfield(L, 2, "n");
      n = lua_tointeger(L, -1);
      lua_pop(L, 1);
      luaL_checkstack(L, (int)n, "too many results");
      for (i = 1; i <= n; i++) lua_rawgeti(L, 2, i);
      return (int)n;
    }
    case LB_TASK_FAILED:
    case LB_TASK_CANCELLED:
      lua_rawgeti(L, LUA_REGISTRYINDEX, t->res_ref);   /* the original error value */
      return lua_error(L);
    default:
      break;
  }
  self = lb__current(L, "task:wait()");
  if (self == t) return luaL_error(L, "a task cannot wait for itself");
  self->join_target = t;
  self->join_next = t->joiners;
  t->joiners = self;
  return lb__wait(L, cleanup_join, self, 0, task_wait_k);
}

static int task_wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return l_task_wait(L);
}

static int l_task_status(lua_State *L) {
  lua_pushstring(L, state_name(checktask(L, 1)));
  return 1;
}

static int l_task_cancel(lua_State *L) {
  lb_task *t = checktask(L, 1);
  int rc = lb__task_cancel(t, luaL_optstring(L, 2, "task cancelled"));
  if (rc == LB_EBUSY) return luaL_error(L, "a task cannot cancel itself (return or error instead)");
  lua_pushboolean(L, 1);
  return 1;
}

static int l_task_error(lua_State *L) {
  lb_task *t = checktask(L, 1);
  if (t->state == LB_TASK_FAILED || t->state == LB_TASK_CANCELLED)
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->res_ref);
  else lua_pushnil(L);
  return 1;
}

static int l_task_gc(lua_State *L) {
  task_ud *u = luaL_checkudata(L, 1, TASK_MT);
  if (u->t) {
    lb_task *t = u->t;
    u->t = NULL;
    t->lua_refs--;
    lb__task_free_if_unused(t);
  }
  return 0;
}

static int l_task_tostring(lua_State *L) {
  lua_pushfstring(L, "airbyte.Task(%s)", state_name(checktask(L, 1)));
  return 1;
}

/* --- sleep and yield ----------------------------------------------------- */

typedef struct sleeper {
  uv_timer_t timer;
  lb_task *waiter;
} sleeper;

static void on_sleeper_closed(uv_handle_t *h) {
  free(h->data);
}

static void on_sleep_done(uv_timer_t *h) {
  sleeper *s = h->data;
  lb_task *t = s->waiter;
  s->waiter = NULL;
  uv_close((uv_handle_t *)h, on_sleeper_closed);
  if (t) lb__wake(t);
}

static void cleanup_sleep(void *data) {
  sleeper *s = data;
  s->waiter = NULL;
  uv_timer_stop(&s->timer);
  uv_close((uv_handle_t *)&s->timer, on_sleeper_closed);
}

static int sleep_k(lua_State *L, int status, lua_KContext ctx) {
  (void)L; (void)status; (void)ctx;
  return 0;
}

int lb__sleep(lua_State *L, uint64_t ms, lua_KContext ctx, lua_KFunction k) {
  lb_runtime *rt = lb__rt(L);
  lb_task *t = lb__current(L, "sleep()");
  sleeper *s = malloc(sizeof *s);
  if (s == NULL) return luaL_error(L, "out of memory");
  uv_timer_init(rt->loop, &s->timer);
  s->timer.data = s;
  s->waiter = t;
  uv_timer_start(&s->timer, on_sleep_done, ms, 0);
  return lb__wait(L, cleanup_sleep, s, ctx, k);
}

static int l_sleep(lua_State *L) {
  lua_Number ms = luaL_checknumber(L, 1);
  return lb__sleep(L, ms < 0 ? 0 : (uint64_t)ms, 0, sleep_k);
}

static int l_yield(lua_State *L) {
  lb_task *t = lb__current(L, "yield()");
  lb__wake(t);             /* back in the queue, behind the tasks already ready */
  return lb__wait(L, NULL, NULL, 0, sleep_k);
}

static int l_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e6);
  return 1;
}

/* Wall-clock milliseconds since the epoch, as an integer (emitted_at). */
static int l_time_ms(lua_State *L) {
  uv_timeval64_t tv;
  if (uv_gettimeofday(&tv) != 0) return luaL_error(L, "gettimeofday failed");
  lua_pushinteger(L, (lua_Integer)tv.tv_sec * 1000 + tv.tv_usec / 1000);
  return 1;
}

static int l_interrupted(lua_State *L) {
  lua_pushboolean(L, lb__rt(L)->interrupted);
  return 1;
}

static int l_exe_path(lua_State *L) {
  const char *exe = lb__exe_path(lb__rt(L));
  if (exe) lua_pushstring(L, exe);
  else lua_pushnil(L);
  return 1;
}

static int l_in_task(lua_State *L) {
  lb_runtime *rt = lb__rt(L);
  lua_pushboolean(L, rt->current != NULL && lua_isyieldable(L));
  return 1;
}

/* read_stdin([max]) -> string | nil at end of input; raises on a read error.
** One read(2) of fd 0, returning as soon as some bytes are there: io.read(n)
** waits for all n bytes, which would hold back a destination's STATE echo
** while its source is quiet. It blocks the thread, so it is meant for
** connectors run as their own process (luabyte connector NAME write). */
static int l_read_stdin(lua_State *L) {
  lua_Integer max = luaL_optinteger(L, 1, 65536);
  luaL_Buffer b;
  char *p;
  ssize_t n;
  luaL_argcheck(L, max > 0 && max <= (1 << 24), 1, "out of range");
  p = luaL_buffinitsize(L, &b, (size_t)max);
  do n = read(0, p, (size_t)max); while (n < 0 && errno == EINTR);
  if (n < 0) return luaL_error(L, "cannot read stdin: %s", strerror(errno));
  if (n == 0) {
    lua_pushnil(L);
    return 1;
  }
  luaL_pushresultsize(&b, (size_t)n);
  return 1;
}

/* uuid4() -> a random (version 4) UUID string, from the generator in
** this closure's upvalue (seeded from the OS once per runtime): record ids
** for destinations, where a Lua string.format per record shows. */
static int l_uuid4(lua_State *L) {
  lb_rng *r = lua_touserdata(L, lua_upvalueindex(1));
  char out[37];
  if (r->s[0] == 0 && r->s[1] == 0) lb__rng_seed(r, r);
  lb__uuid4(r, out);
  lua_pushlstring(L, out, 36);
  return 1;
}

/* ulid() -> a new ULID (26 characters, time-ordered). */
static int l_ulid(lua_State *L) {
  char out[26];
  lb__ulid(out);
  lua_pushlstring(L, out, sizeof out);
  return 1;
}

/* short_id() -> 9 time-ordered characters (log file names). */
static int l_short_id(lua_State *L) {
  char out[9];
  lb__short_id(out);
  lua_pushlstring(L, out, sizeof out);
  return 1;
}

/* count_prefixed_lines(s, init, prefix) -> n, pos: how many complete lines
** of s, from position init on, start with prefix (stopping at the first
** that does not), and the position after them. Lets a destination count a
** run of records of one stream per call instead of one Lua step per line. */
static int l_count_prefixed_lines(lua_State *L) {
  size_t len, plen;
  const char *s = luaL_checklstring(L, 1, &len);
  lua_Integer init = luaL_checkinteger(L, 2);
  const char *prefix = luaL_checklstring(L, 3, &plen);
  size_t pos = init > 0 ? (size_t)init - 1 : 0;
  lua_Integer n = 0;
  while (pos < len && len - pos >= plen && memcmp(s + pos, prefix, plen) == 0) {
    const char *nl = memchr(s + pos + plen, '\n', len - pos - plen);
    if (nl == NULL) break;            /* an incomplete last line: not counted */
    pos = (size_t)(nl - s) + 1;
    n++;
  }
  lua_pushinteger(L, n);
  lua_pushinteger(L, (lua_Integer)pos + 1);
  return 2;
}

/* isatty(fd) -> boolean: decides between a live progress line and plain lines. */
static int l_isatty(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  /* with a host log sink, stderr is not where messages go */
  lua_pushboolean(L, !(fd == 2 && lb__rt(L)->log) && isatty(fd));
  return 1;
}

/* executable(path) -> boolean: is there a file we may execute? */
static int l_executable(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  lua_pushboolean(L, access(path, X_OK) == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode));
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

/* --- driving from a Lua host ---------------------------------------------- */

/* step([timeout_ms[, budget_us]]) -> true while tasks remain: lb_step for
** a Lua host's frame or event loop. Raises inside a task or a step. */
static int l_step(lua_State *L) {
  lb_runtime *rt = lb__rt(L);
  lua_Integer timeout = luaL_optinteger(L, 1, 0), budget = luaL_optinteger(L, 2, 0);
  int rc;
  luaL_argcheck(L, timeout >= -1 && timeout <= INT_MAX, 1, "must be -1 or more");
  luaL_argcheck(L, budget >= 0 && budget <= UINT32_MAX, 2, "must be 0 or more");
  if (rt->current || rt->stepping)
    return luaL_error(L, "step() drives the runtime from outside: it cannot run "
                         "inside a task or a step");
  rc = lb_step(rt, (int)timeout, (uint32_t)budget);
  if (rc < 0) return luaL_error(L, "step: %s", lb_strerror(rc));
  lua_pushboolean(L, rc > 0);
  return 1;
}

static int l_backend_fd(lua_State *L) {
  lua_pushinteger(L, lb_backend_fd(lb__rt(L)));
  return 1;
}

static int l_backend_timeout(lua_State *L) {
  lua_pushinteger(L, lb_backend_timeout(lb__rt(L)));
  return 1;
}

/* use_loop(uv[, {budget_us = n}]): run on luv's loop from now on. luv's
** C function luv_loop(L) is looked up in the luv module the table's
** functions come from, so no luv header or link is needed. */
typedef uv_loop_t *(*luv_loop_fn)(lua_State *L);

static int l_use_loop(lua_State *L) {
  lb_runtime *rt = lb__rt(L);
  lua_CFunction run;
  Dl_info info;
  void *lib;
  luv_loop_fn luv_loop;
  uv_loop_t *loop;
  lua_Integer budget = 0;
  int rc;
  luaL_checktype(L, 1, LUA_TTABLE);
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "budget_us");
    budget = luaL_optinteger(L, -1, 0);
    luaL_argcheck(L, budget >= 0 && budget <= UINT32_MAX, 2, "budget_us must be 0 or more");
    lua_pop(L, 1);
  }
  lua_getfield(L, 1, "run");
  run = lua_tocfunction(L, -1);
  lua_pop(L, 1);
  if (run == NULL || !dladdr((void *)run, &info) || info.dli_fname == NULL)
    return luaL_argerror(L, 1, "expected the luv module (require 'luv')");
  lib = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD);
  luv_loop = lib ? (luv_loop_fn)(uintptr_t)dlsym(lib, "luv_loop") : NULL;
  if (lib) dlclose(lib);   /* still loaded by require */
  if (luv_loop == NULL || (loop = luv_loop(L)) == NULL)
    return luaL_argerror(L, 1, "expected the luv module (no luv_loop in it)");
  if (rt->current || rt->stepping)
    return luaL_error(L, "use_loop() cannot run inside a task or a step");
  rc = lb__loop_use(rt, loop, (uint32_t)budget);
  if (rc == LB_EBUSY)
    return luaL_error(L, "use_loop(): call it before starting children, timers or "
                         "waiting tasks");
  if (rc < 0) return luaL_error(L, "use_loop(): %s", lb_strerror(rc));
  lb__module_refinalize(L);
  return 0;
}

static const luaL_Reg task_methods[] = {
  {"wait", l_task_wait},
  {"status", l_task_status},
  {"cancel", l_task_cancel},
  {"error", l_task_error},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"spawn", l_spawn},
  {"sleep", l_sleep},
  {"yield", l_yield},
  {"now", l_now},
  {"time_ms", l_time_ms},
  {"interrupted", l_interrupted},
  {"exe_path", l_exe_path},
  {"in_task", l_in_task},
  {"tempfile", l_tempfile},
  {"mkdir_p", l_mkdir_p},
  {"ulid", l_ulid},
  {"short_id", l_short_id},
  {"fsync", l_fsync},
  {"isatty", l_isatty},
  {"count_prefixed_lines", l_count_prefixed_lines},
  {"read_stdin", l_read_stdin},
  {"executable", l_executable},
  {"step", l_step},
  {"backend_fd", l_backend_fd},
  {"backend_timeout", l_backend_timeout},
  {"use_loop", l_use_loop},
  {NULL, NULL}
};

static const luaL_Reg task_meta[] = {
  {"__gc", l_task_gc}, {"__tostring", l_task_tostring}, {NULL, NULL}
};

static const luaL_Reg tmpfile_meta[] = {
  {"__index", l_tmp_index}, {"__gc", l_tmp_remove}, {"__close", l_tmp_remove},
  {"__tostring", l_tmp_tostring}, {NULL, NULL}
};

int luaopen_airbyte_core(lua_State *L) {
  luaL_newmetatable(L, TASK_MT);
  luaL_setfuncs(L, task_meta, 0);
  luaL_newlib(L, task_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newmetatable(L, TMPFILE_MT);
  luaL_setfuncs(L, tmpfile_meta, 0);
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  lb__open_mask(L);
  memset(lua_newuserdatauv(L, sizeof(lb_rng), 0), 0, sizeof(lb_rng));
  lua_pushcclosure(L, l_uuid4, 1);
  lua_setfield(L, -2, "uuid4");
  lua_pushlightuserdata(L, (void *)&lb__io_sentinel);
  lua_setfield(L, -2, "io_sentinel");
  lua_pushstring(L, LB_VERSION_STRING);
  lua_setfield(L, -2, "version");
  return 1;
}

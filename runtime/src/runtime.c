/*
** runtime.c - lb_runtime: options, the Lua state, embedded modules,
** lifecycle, the three loop modes, temporary files and error codes.
*/
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lualib.h>
#include "lb_internal.h"

typedef struct lb_embedded {
  const char *name;
  const char *file;
  const unsigned char *src;
  size_t len;
} lb_embedded;
extern const lb_embedded lb_embedded_modules[];   /* generated: lb_embedded.c */

struct lb_tmpfile {
  char *path;
  lb_tmpfile *prev, *next;
};

/* --- errors ---------------------------------------------------------------- */

LB_API const char *lb_strerror(int err) {
  switch (err) {
    case 0: return "success";
#define LB__ERRSTR(name, code, msg) case code: return msg;
    LB_ERRNO_MAP(LB__ERRSTR)
#undef LB__ERRSTR
    default: return "unknown error";
  }
}

LB_API const char *lb_err_name(int err) {
  switch (err) {
    case 0: return "OK";
#define LB__ERRNAME(name, code, msg) case code: return "LB_" #name;
    LB_ERRNO_MAP(LB__ERRNAME)
#undef LB__ERRNAME
    default: return "LB_EUNKNOWN";
  }
}

LB_API const char *lb_version(void) {
  return LB_VERSION_STRING;
}

LB_API const char *lb_last_error(const lb_runtime *rt) {
  return rt ? rt->errmsg : "no runtime";
}

void lb__set_error(lb_runtime *rt, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(rt->errmsg, sizeof rt->errmsg, fmt, ap);
  va_end(ap);
}

void lb__log(lb_runtime *rt, int level, const char *fmt, ...) {
  char buf[2048];
  int n;
  va_list ap;
  va_start(ap, fmt);
  n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof buf) n = sizeof buf - 1;
  if (rt->log) rt->log(rt->log_ud, level, buf, (size_t)n);
  else fprintf(stderr, "luabyte: %s\n", buf);
}

lb_runtime *lb__rt(lua_State *L) {
  return *(lb_runtime **)lua_getextraspace(L);
}

/* --- Lua state ------------------------------------------------------------- */

static int load_embedded(lua_State *L) {
  const lb_embedded *m = lua_touserdata(L, lua_upvalueindex(1));
  char chunkname[256];
  snprintf(chunkname, sizeof chunkname, "@%s", m->file);
  if (luaL_loadbufferx(L, (const char *)m->src, m->len, chunkname, "t") != LUA_OK)
    return lua_error(L);
  lua_pushstring(L, m->name);
  lua_call(L, 1, 1);
  return 1;
}

/* Searcher placed before package.preload when a Lua directory is set, so a
** developer's edits under lua/ win over the embedded copies. */
static int dir_searcher(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const char *dir = lua_tostring(L, lua_upvalueindex(1));
  luaL_Buffer b;
  const char *path;
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchpath");
  lua_pushstring(L, name);
  luaL_buffinit(L, &b);
  luaL_addstring(&b, dir); luaL_addstring(&b, "/?.lua;");
  luaL_addstring(&b, dir); luaL_addstring(&b, "/?/init.lua");
  luaL_pushresult(&b);
  lua_call(L, 2, 2);
  path = lua_tostring(L, -2);
  if (path == NULL) {
    lua_pushfstring(L, "no file in LUABYTE_LUA_DIR for '%s'", name);
    return 1;
  }
  if (luaL_loadfilex(L, path, "t") != LUA_OK)
    return luaL_error(L, "error loading module '%s' from '%s':\n\t%s", name, path,
                      lua_tostring(L, -1));
  lua_pushstring(L, path);
  return 2;
}

static const luaL_Reg c_modules[] = {
  {"airbyte.core", luaopen_airbyte_core},
  {"airbyte.process", luaopen_airbyte_process},
  {"airbyte.json", luaopen_airbyte_json},
  {"airbyte.sqlite", luaopen_airbyte_sqlite},
  {"airbyte.pump", luaopen_airbyte_pump},
  {"airbyte.jsonschema", luaopen_airbyte_jsonschema},
  {"airbyte.libyaml", luaopen_airbyte_libyaml},
  {"airbyte.http", luaopen_airbyte_http},
  {"cjson", luaopen_cjson},
  {NULL, NULL}
};

static int setup_state(lua_State *L) {
  lb_runtime *rt = lua_touserdata(L, 1);
  const lb_embedded *m;
  const luaL_Reg *r;
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  for (r = c_modules; r->name; r++) {
    lua_pushcfunction(L, r->func);
    lua_setfield(L, -2, r->name);
  }
  for (m = lb_embedded_modules; m->name; m++) {
    lua_pushlightuserdata(L, (void *)m);
    lua_pushcclosure(L, load_embedded, 1);
    lua_setfield(L, -2, m->name);
  }
  lua_pop(L, 1);                          /* stack: package */
  if (rt->lua_dir) {
    lua_getfield(L, -1, "searchers");
    lua_pushstring(L, rt->lua_dir);
    lua_pushcclosure(L, dir_searcher, 1);
    /* insert at position 1 */
    {
      lua_Integer i, n = (lua_Integer)luaL_len(L, -2);
      for (i = n; i >= 1; i--) {
        lua_rawgeti(L, -2, i);
        lua_rawseti(L, -3, i + 1);
      }
      lua_rawseti(L, -2, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  /* Coroutines that pass I/O waits through to the scheduler. */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "airbyte.coroutine");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "install");
  lua_call(L, 0, 0);
  lua_pop(L, 1);
  return 0;
}

/* --- lifecycle ------------------------------------------------------------- */

LB_API void lb_options_init(lb_options *o) {
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
  o->loop_mode = LB_LOOP_OWN;
}

static void on_async(uv_async_t *h) {
  (void)h;   /* the wake-up is all it is for; lb_step handles the flag */
}

static void on_check(uv_check_t *h) {
  lb_runtime *rt = h->data;
  if (rt->stepping) return;
  rt->stepping = 1;
  lb__drain(rt, 0);
  rt->stepping = 0;
}

static char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud; (void)osize;
  if (nsize == 0) { free(ptr); return NULL; }
  return realloc(ptr, nsize);
}

LB_API int lb_runtime_new(const lb_options *opts, lb_runtime **out) {
  lb_options o;
  lb_runtime *rt;
  const char *dir;
  int rc;
  if (out == NULL) return LB_EINVAL;
  *out = NULL;
  lb_options_init(&o);
  if (opts) {
    if (opts->size == 0 || opts->size > sizeof o) return LB_EINVAL;
    memcpy(&o, opts, opts->size);
  }
  if (o.loop_mode == LB_LOOP_SHARED && o.loop == NULL) return LB_EINVAL;
  if (o.loop_mode != LB_LOOP_SHARED && o.loop != NULL) return LB_EINVAL;
  rt = calloc(1, sizeof *rt);
  if (rt == NULL) return LB_ENOMEM;
  rt->mode = o.loop_mode;
  rt->kill_grace_ms = o.kill_grace_ms ? o.kill_grace_ms : 2000;
  rt->log = o.log;
  rt->log_ud = o.log_ud;
  dir = o.lua_dir ? o.lua_dir : getenv("LUABYTE_LUA_DIR");
  if (dir && *dir) rt->lua_dir = xstrdup(dir);
  if (o.exe_path) rt->exe_path = xstrdup(o.exe_path);
  else {
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n > 0) { buf[n] = '\0'; rt->exe_path = xstrdup(buf); }
  }
  if (rt->mode == LB_LOOP_SHARED) rt->loop = o.loop;
  else {
    if (uv_loop_init(&rt->own_loop) != 0) { free(rt); return LB_ELOOP; }
    rt->loop = &rt->own_loop;
  }
  /* A destination that exits early must give EPIPE, not kill the host. */
  {
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
      signal(SIGPIPE, SIG_IGN);
  }
  uv_async_init(rt->loop, &rt->async, on_async);
  uv_unref((uv_handle_t *)&rt->async);
  uv_timer_init(rt->loop, &rt->step_timer);
  uv_check_init(rt->loop, &rt->check);
  uv_idle_init(rt->loop, &rt->idle);
  rt->async.data = rt->step_timer.data = rt->check.data = rt->idle.data = rt;
  rt->open_handles = 4;
  if (rt->mode == LB_LOOP_SHARED) {
    uv_check_start(&rt->check, on_check);
    uv_unref((uv_handle_t *)&rt->check);
  }
  rt->L = lua_newstate(l_alloc, NULL);
  if (rt->L == NULL) { lb_runtime_close(rt); return LB_ENOMEM; }
  *(lb_runtime **)lua_getextraspace(rt->L) = rt;
  lua_gc(rt->L, LUA_GCGEN, 0, 0);  /* suits many short-lived record tables */
  lua_pushcfunction(rt->L, setup_state);
  lua_pushlightuserdata(rt->L, rt);
  rc = lua_pcall(rt->L, 1, 0, 0);
  if (rc != LUA_OK) {
    lb__set_error(rt, "%s", lua_tostring(rt->L, -1));
    lb__log(rt, 0, "cannot set up the Lua state: %s", rt->errmsg);
    lb_runtime_close(rt);
    return rc == LUA_ERRMEM ? LB_ENOMEM : LB_ELUA;
  }
  *out = rt;
  return 0;
}

static void on_runtime_handle_closed(uv_handle_t *h) {
  lb_runtime *rt = h->data;
  rt->open_handles--;
}

LB_API void lb_runtime_close(lb_runtime *rt) {
  lb_task *t;
  if (rt == NULL) return;
  if (rt->L) {
    lb__cancel_all(rt);
    /* __gc of processes, files and task handles runs here, while the
    ** structures they point at still exist. */
    rt->closing = 1;
    lua_close(rt->L);
    rt->L = NULL;
  }
  lb__procs_terminate_all(rt, 1);
  uv_close((uv_handle_t *)&rt->async, on_runtime_handle_closed);
  uv_close((uv_handle_t *)&rt->step_timer, on_runtime_handle_closed);
  uv_close((uv_handle_t *)&rt->check, on_runtime_handle_closed);
  uv_close((uv_handle_t *)&rt->idle, on_runtime_handle_closed);
  /* Let close callbacks (and the exits of killed children) run. */
  while (rt->open_handles > 0 || rt->procs != NULL) {
    if (rt->mode == LB_LOOP_SHARED) {
      uv_run(rt->loop, UV_RUN_NOWAIT);   /* the host's loop: never block it */
      if (rt->open_handles > 0 || rt->procs) uv_sleep(1);
    } else {
      uv_run(rt->loop, UV_RUN_ONCE);
    }
  }
  while ((t = rt->tasks) != NULL) {   /* tasks the host still holds */
    rt->tasks = t->next;
    free(t->error);
    free(t);
  }
  while (rt->tmpfiles) lb__tmpfile_remove(rt, rt->tmpfiles);
  if (rt->mode != LB_LOOP_SHARED) {
    uv_run(rt->loop, UV_RUN_NOWAIT);
    uv_loop_close(rt->loop);
  }
  free(rt->exe_path);
  free(rt->lua_dir);
  free(rt);
}

/* --- tasks from scripts -------------------------------------------------- */

static int spawn_loaded(lb_runtime *rt, int nargs, lb_task **out) {
  lb_task *t = lb__task_new(rt, rt->L, nargs);
  if (t == NULL) return LB_ENOMEM;
  if (out) { t->host_held = 1; *out = t; }
  return 0;
}

LB_API int lb_spawn_file(lb_runtime *rt, const char *path, int argc,
                         const char *const *argv, lb_task **out) {
  lua_State *L;
  int i;
  if (rt == NULL || path == NULL || argc < 0) return LB_EINVAL;
  L = rt->L;
  if (luaL_loadfilex(L, strcmp(path, "-") == 0 ? NULL : path, NULL) != LUA_OK) {
    lb__set_error(rt, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return errno == ENOENT ? LB_ENOENT : LB_ELUA;
  }
  /* arg table as lua.c builds it: arg[0] = script, arg[1..n] = arguments */
  lua_createtable(L, argc, 1);
  lua_pushstring(L, path);
  lua_rawseti(L, -2, 0);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setglobal(L, "arg");
  if (!lua_checkstack(L, argc + 1)) { lua_pop(L, 1); return LB_ENOMEM; }
  for (i = 0; i < argc; i++) lua_pushstring(L, argv[i]);
  return spawn_loaded(rt, argc, out);
}

LB_API int lb_spawn_string(lb_runtime *rt, const char *src, size_t len,
                           const char *chunkname, lb_task **out) {
  if (rt == NULL || src == NULL) return LB_EINVAL;
  if (luaL_loadbufferx(rt->L, src, len, chunkname ? chunkname : "=(string)", NULL)
      != LUA_OK) {
    lb__set_error(rt, "%s", lua_tostring(rt->L, -1));
    lua_pop(rt->L, 1);
    return LB_ELUA;
  }
  return spawn_loaded(rt, 0, out);
}

/* --- driving --------------------------------------------------------------- */

static void on_step_timer(uv_timer_t *h) {
  (void)h;
}

/* Tasks that wait while nothing can wake them would hang lb_run forever:
** fail them with a message that says so. */
static void fail_deadlocked(lb_runtime *rt) {
  lb_task *t;
  for (t = rt->tasks; t; t = t->next) {
    if (t->state == LB_TASK_WAITING) {
      lb__task_cancel(t, "deadlock: the task waits for something that can never happen "
                         "(a task waiting for itself, or for another waiting task)");
      rt->failed++;
      return;   /* the list may have changed; the next step looks again */
    }
  }
}

LB_API int lb_alive(const lb_runtime *rt) {
  return rt->live > 0;
}

LB_API int lb_step(lb_runtime *rt, int timeout_ms, uint32_t budget_us) {
  if (rt == NULL) return LB_EINVAL;
  if (rt->stepping) return LB_EBUSY;
  rt->stepping = 1;
  if (rt->mode != LB_LOOP_SHARED) {
    if (rt->ready_head == NULL && timeout_ms != 0 && !rt->interrupted) {
      if (timeout_ms > 0) uv_timer_start(&rt->step_timer, on_step_timer, (uint64_t)timeout_ms, 0);
      uv_run(rt->loop, UV_RUN_ONCE);
      uv_timer_stop(&rt->step_timer);
    } else {
      uv_run(rt->loop, UV_RUN_NOWAIT);
    }
  }
  lb__drain(rt, budget_us);
  if (rt->mode != LB_LOOP_SHARED && rt->ready_head == NULL && rt->live > 0 &&
      !uv_loop_alive(rt->loop))
    fail_deadlocked(rt);
  rt->stepping = 0;
  return rt->live > 0 ? 1 : 0;
}

LB_API int lb_run(lb_runtime *rt) {
  int rc;
  if (rt == NULL) return LB_EINVAL;
  if (rt->mode == LB_LOOP_SHARED) return LB_EINVAL;
  while ((rc = lb_step(rt, -1, 0)) > 0) {}
  if (rc < 0) return rc;
  /* No task is left: children nobody waits for are not ours to keep. */
  lua_gc(rt->L, LUA_GCCOLLECT);
  lb__procs_terminate_all(rt, 0);
  rt->stepping = 1;
  while (lb__procs_running(rt)) uv_run(rt->loop, UV_RUN_ONCE);
  rt->stepping = 0;
  return rt->failed ? LB_ELUA : 0;
}

LB_API int lb_backend_fd(const lb_runtime *rt) {
  return uv_backend_fd(rt->loop);
}

LB_API int lb_backend_timeout(const lb_runtime *rt) {
  if (rt->ready_head != NULL || rt->interrupted) return 0;
  return uv_backend_timeout(rt->loop);
}

LB_API void lb_interrupt(lb_runtime *rt) {
  rt->interrupted = 1;
  lb__hook_current(rt);        /* stops a task busy in Lua (as lua.c's laction) */
  uv_async_send(&rt->async);   /* async-signal-safe */
}

LB_API struct lua_State *lb_lua(lb_runtime *rt) {
  return rt->L;
}

LB_API struct uv_loop_s *lb_loop(lb_runtime *rt) {
  return rt->loop;
}

/* --- temporary files ------------------------------------------------------- */

lb_tmpfile *lb__tmpfile_new(lb_runtime *rt, const char *content, size_t len,
                            const char *suffix, const char **path) {
  const char *dir = getenv("TMPDIR");
  lb_tmpfile *f;
  char *tmpl;
  size_t slen = suffix ? strlen(suffix) : 0, n;
  int fd;
  if (dir == NULL || *dir == '\0') dir = "/tmp";
  n = strlen(dir) + slen + 32;
  f = calloc(1, sizeof *f);
  tmpl = malloc(n);
  if (f == NULL || tmpl == NULL) { free(f); free(tmpl); errno = ENOMEM; return NULL; }
  snprintf(tmpl, n, "%s/luabyte-XXXXXX%s", dir, suffix ? suffix : "");
  fd = mkstemps(tmpl, (int)slen);           /* mode 0600 */
  if (fd < 0) { free(f); free(tmpl); return NULL; }
  while (len > 0) {
    ssize_t w = write(fd, content, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      close(fd); unlink(tmpl); free(f); free(tmpl);
      return NULL;
    }
    content += w;
    len -= (size_t)w;
  }
  close(fd);
  f->path = tmpl;
  f->next = rt->tmpfiles;
  if (rt->tmpfiles) rt->tmpfiles->prev = f;
  rt->tmpfiles = f;
  *path = f->path;
  return f;
}

void lb__tmpfile_remove(lb_runtime *rt, lb_tmpfile *f) {
  unlink(f->path);
  if (f->prev) f->prev->next = f->next;
  else rt->tmpfiles = f->next;
  if (f->next) f->next->prev = f->prev;
  free(f->path);
  free(f);
}

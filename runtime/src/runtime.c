/*
** runtime.c - lb_runtime's lifecycle: its options, its Lua state (its own,
** or a host's through luaopen_airbyte), and scripts started as its tasks.
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <lualib.h>
#include "lb_internal.h"
#include "mask.h"

/* --- version and last error ---------------------------------------------- */

LB_API const char *lb_version(void) {
  return LB_VERSION_STRING;
}

LB_API const char *lb_last_error(const lb_runtime *rt) {
  return rt ? rt->errmsg : "no runtime";
}

/* --- Lua state ------------------------------------------------------------- */

/* __gc of the state's first finalized object, so lua_close runs it last:
** close callbacks that libuv handles of other libraries in the state (luv
** on lb_loop(), with luv_set_loop) asked for in their own __gc run here,
** while the state they call into still exists. */
static int last_gc(lua_State *L) {
  lb_runtime *rt = lb__rt(L);
  if (rt && rt->loop) {
    uv_run(rt->loop, UV_RUN_NOWAIT);
    uv_run(rt->loop, UV_RUN_NOWAIT);
  }
  return 0;
}

static int setup_state(lua_State *L) {
  lb_runtime *rt = lua_touserdata(L, 1);
  if (lua_toboolean(L, 2)) {            /* the runtime's own state */
    luaL_openlibs(L);
    lua_newuserdatauv(L, 1, 0);       /* before any other object with a finalizer */
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, last_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, (void *)last_gc);
  }
  lb__modules_install(L, rt->lua_dir);
  lb__log_install(L, rt);
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

static char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* The Lua allocator. mem_limit caps what tasks allocate: past it an
** allocation made while a task runs fails, which Lua turns into a memory
** error inside that task (after an emergency collection). The runtime's
** own bookkeeping between tasks is never refused, so it cannot panic. */
static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  lb_runtime *rt = ud;
  size_t old = ptr ? osize : 0;
  void *np;
  if (nsize == 0) {
    free(ptr);
    rt->mem_used -= old;
    return NULL;
  }
  if (rt->mem_limit && nsize > old && rt->current != NULL &&
      rt->mem_used - old + nsize > rt->mem_limit)
    return NULL;
  np = realloc(ptr, nsize);
  if (np) rt->mem_used = rt->mem_used - old + nsize;
  return np;
}


/* Everything but the Lua state: options, loop and handles. */
static int runtime_alloc(const lb_options *opts, lb_runtime **out) {
  lb_options o;
  lb_runtime *rt;
  const char *dir;
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
  rt->mem_limit = o.mem_limit;
  rt->shared_budget_us = o.shared_budget_us;
  {
    char why[160];
    if (lb__cpus_parse(o.background_cpus, &rt->background_cpus, why, sizeof why) < 0) {
      lb__log(rt, LB_LOG_ERROR, "lb_runtime_new: %s", why);
      free(rt);
      return LB_EINVAL;
    }
  }
  rt->host.rt = rt;
  rt->host.state = LB_TASK_READY;
  rt->host.co_ref = rt->host.res_ref = LUA_NOREF;
  dir = o.lua_dir ? o.lua_dir : getenv("LUABYTE_LUA_DIR");
  if (dir && *dir) rt->lua_dir = xstrdup(dir);
  if (o.exe_path) rt->exe_path = xstrdup(o.exe_path);
  if (lb__loop_init(rt, rt->mode == LB_LOOP_SHARED ? o.loop : NULL) != 0) {
    free(rt->lua_dir);
    free(rt->exe_path);
    free(rt);
    return LB_ELOOP;
  }
  *out = rt;
  return 0;
}

/* lua_pcall of the function and nargs arguments on rt's stack; a failure's
** message becomes rt's error (popped). Returns lua_pcall's status. */
static int pcall_to_error(lb_runtime *rt, int nargs) {
  lua_State *L = rt->L;
  int st = lua_pcall(L, nargs, 0, 0);
  if (st != LUA_OK) {
    lb__set_error(rt, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  return st;
}

static int set_up(lb_runtime *rt, int openlibs) {
  int rc;
  lua_State *L = rt->L;
  lb__rt_set(L, rt);
  lua_pushcfunction(L, setup_state);
  lua_pushlightuserdata(L, rt);
  lua_pushboolean(L, openlibs);
  rc = pcall_to_error(rt, 2);
  if (rc != LUA_OK) {
    lb__log(rt, 0, "cannot set up the Lua state: %s", rt->errmsg);
    return rc == LUA_ERRMEM ? LB_ENOMEM : LB_ELUA;
  }
  return 0;
}

/* Lua's last resort for an error no protected call catches. Host code is
** always called protected (log.c's lb__host_call) and the runtime's own
** Lua work runs in lua_pcall or a task (a task's end too: sched.c keeps
** its error or results protected, and without memory for them it still
** fails), so this is a last net for the rest of a step's bookkeeping:
** logged, then back to the step, which returns LB_ELUA; Lua has reset the
** main thread. Only a host's own unprotected use of lb_lua(rt) outside every
** lb_* call still ends in Lua's abort(), as in any Lua host. */
static int on_panic(lua_State *L) {
  lb_runtime *rt = lb__rt(L);
  const char *msg = lua_tostring(L, -1);
  if (rt == NULL) return 0;
  lb__set_error(rt, "Lua error outside any protected call: %s", msg ? msg : "(not a string)");
  lb__log(rt, LB_LOG_ERROR, "%s", rt->errmsg);
  if (rt->in_callback) {          /* it never returned: let its task go */
    rt->in_callback->in_end_cb = 0;
    rt->in_callback = NULL;
  }
  if (rt->panic_jmp) longjmp(*rt->panic_jmp, 1);
  return 0;
}

LB_API int lb_runtime_new(const lb_options *opts, lb_runtime **out) {
  lb_runtime *rt;
  int rc;
  if (out == NULL) return LB_EINVAL;
  if ((rc = runtime_alloc(opts, out)) < 0) return rc;
  rt = *out;
  *out = NULL;
  rt->L = lua_newstate(l_alloc, rt);
  if (rt->L == NULL) { lb_runtime_close(rt); return LB_ENOMEM; }
  lua_atpanic(rt->L, on_panic);
  lua_gc(rt->L, LUA_GCGEN, 0, 0);  /* suits many short-lived record tables */
  if ((rc = set_up(rt, 1)) < 0) { lb_runtime_close(rt); return rc; }
  *out = rt;
  return 0;
}

/* Ends what runs (tasks, children, handles); the Lua state stays. */
static void runtime_shutdown(lb_runtime *rt) {
  lb__procs_terminate_all(rt, 1);
  lb__loop_close(rt, 0);
}

static void runtime_free(lb_runtime *rt) {
  lb__tasks_detach(rt);
  while (rt->tmpfiles) lb__tmpfile_remove(rt, rt->tmpfiles);
  lb__masker_free(rt->masker);
  if (rt->mode != LB_LOOP_SHARED) {
    uv_run(rt->loop, UV_RUN_NOWAIT);
    uv_loop_close(rt->loop);
  }
  free(rt->exe_path);
  free(rt->lua_dir);
  free(rt);
}

LB_API void lb_runtime_close(lb_runtime *rt) {
  if (rt == NULL || rt->borrowed_L) return;   /* a module's runtime ends with its state */
  if (rt->L) {
    lb__cancel_all(rt);
    /* __gc of processes, files and task handles runs here, while the
    ** structures they point at still exist. */
    rt->closing = 1;
    lua_close(rt->L);
    rt->L = NULL;
  }
  runtime_shutdown(rt);
  runtime_free(rt);
}

/* --- the Lua module: require "airbyte" in a host's own state ---------------- */

#define RUNTIME_MT "airbyte.Runtime"

/* __gc of the runtime box, the state's first finalized object to be
** created, so it runs after the __gc of every process and task handle. */
static int runtime_gc(lua_State *L) {
  lb_runtime **box = luaL_checkudata(L, 1, RUNTIME_MT);
  lb_runtime *rt = *box;
  if (rt == NULL) return 0;
  *box = NULL;
  lb__cancel_all(rt);
  rt->closing = 1;
  runtime_shutdown(rt);
  runtime_free(rt);
  lb__rt_set(L, NULL);
  return 0;
}

/* After ab.use_loop(uv): a new box, so the runtime is finalized before
** luv's loop context (finalizers run in reverse order of creation) and
** closes its handles while luv's loop still exists. */
void lb__module_refinalize(lua_State *L) {
  lb_runtime *rt = lb__rt(L), **box, **nbox;
  if (!rt->borrowed_L) return;
  lua_rawgetp(L, LUA_REGISTRYINDEX, rt);
  box = luaL_testudata(L, -1, RUNTIME_MT);
  lua_pop(L, 1);
  if (box == NULL) return;
  nbox = lua_newuserdatauv(L, sizeof *nbox, 0);
  luaL_setmetatable(L, RUNTIME_MT);
  *nbox = rt;
  *box = NULL;
  lua_rawsetp(L, LUA_REGISTRYINDEX, rt);
}

/* The runtime of L, created on first use with default options; the
** state's own allocator stays (mem_limit is for lb_runtime_new). */
static lb_runtime *module_runtime(lua_State *L) {
  lb_runtime *rt, **box;
  int rc;
  if ((rt = lb__rt(L)) != NULL) return rt;
  box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  if (luaL_newmetatable(L, RUNTIME_MT)) {
    lua_pushcfunction(L, runtime_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  rc = runtime_alloc(NULL, &rt);
  if (rc < 0) luaL_error(L, "cannot create the luabyte runtime: %s", lb_strerror(rc));
  *box = rt;
  lua_rawsetp(L, LUA_REGISTRYINDEX, rt);    /* anchors the box until lua_close */
  rt->borrowed_L = 1;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  rt->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  if ((rc = set_up(rt, 0)) < 0) luaL_error(L, "%s", rt->errmsg);
  return rt;
}

/* luaopen_airbyte: the entry point of airbyte.so. Registers the modules
** (as the luabyte command has them) and returns require "airbyte". */
LB_API int luaopen_airbyte(lua_State *L) {
  lb_runtime *rt = module_runtime(L);
  if (rt->lua_dir) {
    lb__push_dir_searcher(L, rt->lua_dir);
    lua_pushliteral(L, "airbyte");
    lua_call(L, 1, 2);
    if (lua_isfunction(L, -2)) {
      lua_pushliteral(L, "airbyte");
      lua_insert(L, -2);
      lua_call(L, 2, 1);
      return 1;
    }
    lua_pop(L, 2);
  }
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_getfield(L, -1, "airbyte");
  lua_pushliteral(L, "airbyte");
  lua_call(L, 1, 1);
  return 1;
}

/* --- tasks from scripts -------------------------------------------------- */

typedef struct spawn_req {
  const char *path;          /* a file, "-" = stdin; or NULL for src */
  const char *src;
  size_t len;
  const char *name;          /* arg[0] */
  int argc;
  const char *const *argv;
  int with_arg;              /* give the task its own `arg` table */
  int enoent;
  lb_task *t;
} spawn_req;

/* Protected: loading and the task's bookkeeping may raise (memory). */
static int spawn_p(lua_State *L) {
  spawn_req *r = lua_touserdata(L, 1);
  lb_runtime *rt = lb__rt(L);
  int i, st;
  lua_settop(L, 0);
  if (r->with_arg) {            /* arg as lua.c builds it: arg[0] = script */
    lua_createtable(L, r->argc, 1);
    lua_pushstring(L, r->name);
    lua_rawseti(L, -2, 0);
    for (i = 0; i < r->argc; i++) {
      lua_pushstring(L, r->argv[i]);
      lua_rawseti(L, -2, i + 1);
    }
  }
  errno = 0;
  st = r->path ? luaL_loadfilex(L, strcmp(r->path, "-") == 0 ? NULL : r->path, NULL)
               : luaL_loadbufferx(L, r->src, r->len, r->name, NULL);
  if (st != LUA_OK) {
    r->enoent = st == LUA_ERRFILE && errno == ENOENT;
    return lua_error(L);
  }
  luaL_checkstack(L, r->argc + 1, "too many arguments");
  for (i = 0; i < r->argc; i++) lua_pushstring(L, r->argv[i]);
  if ((r->t = lb__task_new(rt, L, r->argc)) == NULL) return luaL_error(L, "not enough memory");
  if (r->with_arg) r->t->arg_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

static int spawn(lb_runtime *rt, spawn_req *r, lb_task **out) {
  lua_State *L = rt->L;
  int st;
  if (out) *out = NULL;
  if (r->argc < 0 || (r->argc > 0 && r->argv == NULL)) return LB_EINVAL;
  lua_pushcfunction(L, spawn_p);
  lua_pushlightuserdata(L, r);
  st = pcall_to_error(rt, 1);
  if (st != LUA_OK) return st == LUA_ERRMEM ? LB_ENOMEM : r->enoent ? LB_ENOENT : LB_ELUA;
  if (out) { r->t->host_held = 1; *out = r->t; }
  return 0;
}

LB_API int lb_spawn_file(lb_runtime *rt, const char *path, int argc,
                         const char *const *argv, lb_task **out) {
  spawn_req r;
  if (rt == NULL || path == NULL || rt->L == NULL) return LB_EINVAL;
  memset(&r, 0, sizeof r);
  r.path = r.name = path;
  r.argc = argc;
  r.argv = argv;
  r.with_arg = 1;
  return spawn(rt, &r, out);
}

LB_API int lb_spawn_string(lb_runtime *rt, const char *src, size_t len,
                           const char *chunkname, int argc,
                           const char *const *argv, lb_task **out) {
  spawn_req r;
  if (rt == NULL || src == NULL || rt->L == NULL) return LB_EINVAL;
  memset(&r, 0, sizeof r);
  r.src = src;
  r.len = len;
  r.name = chunkname ? chunkname : "=(string)";
  r.argc = argc;
  r.argv = argv;
  r.with_arg = argv != NULL;   /* else the global `arg` is left as the host set it */
  return spawn(rt, &r, out);
}

LB_API struct lua_State *lb_lua(lb_runtime *rt) {
  return rt->L;
}

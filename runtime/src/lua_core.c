/*
** lua_core.c - the `airbyte.core` module's tasks and loop: Lua tasks, sleep
** and yield, and a Lua host driving the loop; the module table gathers the
** other services (lua_sys.c, lua_files.c, lua_mask.c).
**
**   local core = require "airbyte.core"
**   local t = core.spawn(fn, ...)     -- a new task; t:wait() returns fn's results
**   core.sleep(ms)                    -- waits without blocking other tasks
**   core.yield()                      -- lets other ready tasks run
**   core.step(timeout_ms, budget_us), core.backend_fd(), core.backend_timeout(),
**   core.use_loop(uv)                 -- a Lua host drives the loop (loop.c)
**   core.background_cpus(list)        -- where the cache's threads and connectors run
*/
#define _GNU_SOURCE 1   /* dladdr */
#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include "lb_internal.h"

#define TASK_MT "airbyte.Task"

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

static int l_interrupted(lua_State *L) {
  lua_pushboolean(L, lb__rt(L)->interrupted);
  return 1;
}

static int l_in_task(lua_State *L) {
  lb_runtime *rt = lb__rt(L);
  lua_pushboolean(L, rt->current != NULL && lua_isyieldable(L));
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

/* background_cpus(list): lb_options.background_cpus for a Lua host; caches
** opened and connectors started from now on run their work there ("" or
** nil: where the loop thread runs). A list that does not parse raises. */
static int l_background_cpus(lua_State *L) {
  lb_runtime *rt = lb__rt(L);
  lb_cpus cpus;
  char why[160];
  if (lb__cpus_parse(luaL_optstring(L, 1, NULL), &cpus, why, sizeof why) < 0)
    return luaL_argerror(L, 1, why);
  rt->background_cpus = cpus;
  return 0;
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
  {"interrupted", l_interrupted},
  {"in_task", l_in_task},
  {"step", l_step},
  {"backend_fd", l_backend_fd},
  {"backend_timeout", l_backend_timeout},
  {"use_loop", l_use_loop},
  {"background_cpus", l_background_cpus},
  {NULL, NULL}
};

static const luaL_Reg task_meta[] = {
  {"__gc", l_task_gc}, {"__tostring", l_task_tostring}, {NULL, NULL}
};

int luaopen_airbyte_core(lua_State *L) {
  luaL_newmetatable(L, TASK_MT);
  luaL_setfuncs(L, task_meta, 0);
  luaL_newlib(L, task_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  lb__open_sys(L);
  lb__open_files(L);
  lb__open_mask(L);
  lua_pushlightuserdata(L, (void *)&lb__io_sentinel);
  lua_setfield(L, -2, "io_sentinel");
  lua_pushstring(L, LB_VERSION_STRING);
  lua_setfield(L, -2, "version");
  return 1;
}

/*
** sched.c - tasks (one coroutine each), the ready queue and the budget hook.
**
** A task runs until it finishes, fails, or yields. A yield whose first value
** is &lb__io_sentinel means "waiting": something (a libuv callback, another
** task) will call lb__wake(). Any other yield is cooperative, as is a yield
** forced by the budget hook: the task goes back to the ready queue.
*/
#include <stdlib.h>
#include <string.h>
#include "lb_internal.h"
#include "mask.h"

const char lb__io_sentinel = 0;

#define HOOK_COUNT 1000   /* instructions between budget/interrupt checks */

static void budget_hook(lua_State *L, lua_Debug *ar);

void lb__hook_current(lb_runtime *rt) {
  lb_task *t = rt->current;
  /* lua_sethook may be called from a signal handler (ldebug.c) */
  if (t) lua_sethook(t->co, budget_hook, LUA_MASKCOUNT, HOOK_COUNT);
}

/* A task that becomes ready keeps the loop's poll from blocking: an active
** idle handle makes it return at once. In LB_LOOP_SHARED the check handle
** then resumes the task without delay; in the other modes a wake from a
** callback that uv_run ran before its poll (a timer's, say) would
** otherwise leave lb_step blocked in that poll with the task ready. The
** drain stops the handle when the queue is empty. */
static void idle_noop(uv_idle_t *h) {
  (void)h;
}

void lb__sched_kick(lb_runtime *rt) {
  if (rt->ready_head && !rt->closing && !uv_is_active((uv_handle_t *)&rt->idle))
    uv_idle_start(&rt->idle, idle_noop);
}

void lb__task_link(lb_task *t, lb_task_link *l, lb_task_link_fn fn) {
  l->fn = fn;
  l->task = t;
  l->prev = NULL;
  l->next = t->links;
  if (t->links) t->links->prev = l;
  t->links = l;
}

void lb__task_unlink(lb_task_link *l) {
  lb_task *t = l->task;
  if (t == NULL) return;
  if (l->prev) l->prev->next = l->next;
  else t->links = l->next;
  if (l->next) l->next->prev = l->prev;
  l->task = NULL;
  l->prev = l->next = NULL;
}

/* Cancelled: every link hears it and stays (its resource may unlink or
** outlive the task). Ended: each is unlinked, then told. */
static void cancel_links(lb_task *t) {
  lb_task_link *l, *n;
  for (l = t->links; l; l = n) {
    n = l->next;
    l->fn(l, 1);
  }
}

static void end_links(lb_task *t) {
  lb_task_link *l;
  while ((l = t->links) != NULL) {
    lb__task_unlink(l);
    l->fn(l, 0);
  }
}

static void enqueue(lb_runtime *rt, lb_task *t) {
  if (t->queued) return;
  t->queued = 1;
  t->qnext = NULL;
  if (rt->ready_tail) rt->ready_tail->qnext = t;
  else rt->ready_head = t;
  rt->ready_tail = t;
  lb__sched_kick(rt);
}

static lb_task *dequeue(lb_runtime *rt) {
  lb_task *t = rt->ready_head;
  if (t == NULL) return NULL;
  rt->ready_head = t->qnext;
  if (rt->ready_head == NULL) rt->ready_tail = NULL;
  t->queued = 0;
  t->qnext = NULL;
  return t;
}

static void unqueue(lb_runtime *rt, lb_task *t) {
  lb_task **pp = &rt->ready_head, *prev = NULL;
  if (!t->queued) return;
  while (*pp && *pp != t) { prev = *pp; pp = &(*pp)->qnext; }
  if (*pp) {
    *pp = t->qnext;
    if (rt->ready_tail == t) rt->ready_tail = prev;
  }
  t->queued = 0;
  t->qnext = NULL;
}

lb_task *lb__task_new(lb_runtime *rt, lua_State *from, int nargs) {
  /* stack of from: function, args... (nargs) */
  lb_task *t = calloc(1, sizeof *t);
  lua_State *co;
  if (t == NULL) return NULL;
  co = lua_newthread(rt->L);
  t->co_ref = luaL_ref(rt->L, LUA_REGISTRYINDEX);
  t->co = co;
  t->rt = rt;
  t->res_ref = LUA_NOREF;
  t->arg_ref = LUA_NOREF;
  t->state = LB_TASK_READY;
  lua_xmove(from, co, nargs + 1);
  t->nargs = nargs;
  t->next = rt->tasks;
  if (rt->tasks) rt->tasks->prev = t;
  rt->tasks = t;
  rt->live++;
  enqueue(rt, t);
  return t;
}

static int is_terminal(const lb_task *t) {
  return t->state == LB_TASK_DONE || t->state == LB_TASK_FAILED ||
         t->state == LB_TASK_CANCELLED;
}

static void set_error(lb_task *t, char *msg);

static void task_free(lb_task *t) {
  set_error(t, NULL);
  free(t->result_json);
  free(t);
}

void lb__task_free_if_unused(lb_task *t) {
  lb_runtime *rt = t->rt;
  if (!is_terminal(t) || t->host_held || t->lua_refs > 0 || rt->current == t ||
      t->in_end_cb)
    return;
  if (t->prev) t->prev->next = t->next;
  else rt->tasks = t->next;
  if (t->next) t->next->prev = t->prev;
  if (!rt->closing) {   /* lua_close frees the registry by itself */
    luaL_unref(rt->L, LUA_REGISTRYINDEX, t->co_ref);
    luaL_unref(rt->L, LUA_REGISTRYINDEX, t->res_ref);
    luaL_unref(rt->L, LUA_REGISTRYINDEX, t->arg_ref);
  }
  task_free(t);
}

/* lb_runtime_close: tasks the host still holds outlive the runtime, as
** ended handles that only lb_task_release frees. */
void lb__tasks_detach(lb_runtime *rt) {
  lb_task *t;
  while ((t = rt->tasks) != NULL) {
    rt->tasks = t->next;
    t->rt = NULL;
    t->prev = t->next = NULL;
    if (!t->host_held) task_free(t);
  }
}

typedef struct end_call {
  lb_task    *t;
  lb_task_cb  cb;
  void       *data;
} end_call;

static void call_end(void *ud) {
  end_call *c = ud;
  c->cb(c->t, c->data);
}

/* The host's end callback, protected: a Lua error it raises through
** lb_lua(rt) is logged and makes the entry point return LB_ELUA. */
static void run_end_cb(lb_runtime *rt, lb_task *t, lb_task_cb cb, void *data) {
  end_call c;
  c.t = t;
  c.cb = cb;
  c.data = data;
  t->in_end_cb = 1;
  if (rt) {
    rt->in_callback = t;
    (void)lb__host_call(rt, call_end, &c, "task end callback");
    rt->in_callback = NULL;
  } else {
    cb(t, data);                     /* the runtime is gone: no Lua to raise through */
  }
  t->in_end_cb = 0;
}

/* The end of a task, told to the host; then it may be freed. */
static void ended(lb_task *t) {
  lb_task_cb cb = t->end_cb;
  if (cb) {
    t->end_cb = NULL;
    run_end_cb(t->rt, t, cb, t->end_data);
  }
  lb__task_free_if_unused(t);
}

void lb__wake(lb_task *t) {
  t->cleanup = NULL;
  t->cleanup_data = NULL;
  if (t == &t->rt->host) {           /* a wait outside tasks: loop.c sees it */
    if (t->state == LB_TASK_WAITING) t->state = LB_TASK_READY;
    return;
  }
  if (t->state == LB_TASK_WAITING) {
    t->state = LB_TASK_READY;
    enqueue(t->rt, t);
  }
}

int lb__budget_spent(lb_runtime *rt) {
  return rt->interrupted || (rt->deadline && uv_hrtime() >= rt->deadline);
}

/* Count hook: pauses a task whose step budget is spent, and stops tasks
** when the runtime is interrupted. It only yields from the task's own
** coroutine; elsewhere the task pauses at its next wait. */
static void budget_hook(lua_State *L, lua_Debug *ar) {
  lb_runtime *rt = lb__rt(L);
  lb_task *t = rt->current;
  (void)ar;
  if (t == NULL || !lb__budget_spent(rt)) return;
  if (L == t->co && lua_isyieldable(L)) {
    t->preempted = 1;
    lua_yield(L, 0);
  }
  if (rt->interrupted && !lua_isyieldable(L))
    luaL_error(L, "interrupted");   /* cannot pause here: stop the loop instead */
}

static void wake_joiners(lb_task *t) {
  lb_task *j = t->joiners;
  t->joiners = NULL;
  while (j) {
    lb_task *n = j->join_next;
    j->join_next = NULL;
    j->join_target = NULL;
    lb__wake(j);
    j = n;
  }
}

static void finish(lb_task *t, lb_task_state st) {
  lb_runtime *rt = t->rt;
  t->state = st;
  rt->live--;
  if (st == LB_TASK_FAILED) rt->failed++;
  end_links(t);
  wake_joiners(t);
}

/* What a task's end is told when the system has no memory for the error
** text or the results themselves (malloc failed, not mem_limit). */
static char no_memory[] = "not enough memory to keep the task's error or results";

static void set_error(lb_task *t, char *msg) {
  if (t->error != no_memory) free(t->error);
  t->error = msg;
}

/* Keep the results (DONE) as a table in the registry. */
static int keep_results_p(lua_State *L) {
  lb_task *t = lua_touserdata(L, 1);
  lua_State *co = t->co;
  int nres = (int)lua_tointeger(L, 2), i;
  /* built on the coroutine's own stack: the main thread may be a host's,
  ** in the middle of a C function with little stack to spare */
  luaL_checkstack(co, 3, NULL);
  lua_createtable(co, nres, 1);
  lua_insert(co, -1 - nres);          /* stack of co: tbl, r1..rn */
  for (i = nres; i >= 1; i--) lua_rawseti(co, -1 - i, i);
  lua_pushinteger(co, nres);
  lua_setfield(co, -2, "n");
  lua_xmove(co, L, 1);
  t->res_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(co, 0);
  return 0;
}

/* Keep the error value and its text with a traceback of the coroutine. */
static int keep_error_p(lua_State *L) {
  lb_task *t = lua_touserdata(L, 1);
  const char *msg;
  size_t len;
  char *masked = NULL;
  lua_xmove(t->co, L, 1);             /* the error value */
  lua_pushvalue(L, -1);
  t->res_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  msg = luaL_tolstring(L, -1, &len);  /* honours __tostring of error objects */
  luaL_traceback(L, t->co, msg, 0);
  msg = lua_tolstring(L, -1, &len);
  /* the host prints it: no secret in it, whatever the script raised */
  if (lb__mask(t->rt->masker, msg, len, &masked, &len) == 0 && (masked = malloc(len + 1)) != NULL)
    memcpy(masked, msg, len + 1);
  set_error(t, masked ? masked : no_memory);
  return 0;
}

/* Runs keep_results_p / keep_error_p protected: with the system out of
** memory (a step of a sync that filled it) they cannot raise past the
** scheduler into Lua's panic; the task still ends, failed, saying so. */
static int keep(lb_task *t, lua_CFunction fn, int nres) {
  lua_State *L = t->rt->L;
  if (lua_checkstack(L, 4)) {
    lua_pushcfunction(L, fn);
    lua_pushlightuserdata(L, t);
    lua_pushinteger(L, nres);
    if (lua_pcall(L, 2, 0, 0) == LUA_OK) return 0;
    lua_pop(L, 1);
  }
  lua_settop(t->co, 0);
  set_error(t, no_memory);
  return -1;
}

static void resume(lb_runtime *rt, lb_task *t) {
  int nres = 0, status, nargs = t->nargs;
  t->nargs = 0;
  t->preempted = 0;
  t->state = LB_TASK_WAITING;   /* until it says otherwise */
  rt->current = t;
  if (t->arg_ref != LUA_NOREF) {   /* the task's own `arg` (lb_spawn_file) */
    lua_rawgeti(rt->L, LUA_REGISTRYINDEX, t->arg_ref);
    lua_setglobal(rt->L, "arg");
  }
  /* A hook makes Lua 5.4 trace every instruction, which costs a third of
  ** a tight loop's speed: install it only when a step has a budget (or an
  ** interrupt is pending); lb_interrupt installs it on a running task. */
  if (rt->deadline || rt->interrupted) lua_sethook(t->co, budget_hook, LUA_MASKCOUNT, HOOK_COUNT);
  if (rt->deadline) rt->resumed_at = uv_hrtime();
  status = lua_resume(t->co, rt->L, nargs, &nres);
  lua_sethook(t->co, NULL, 0, 0);
  rt->current = NULL;
  if (status == LUA_YIELD) {
    int io = nres >= 1 && lua_touserdata(t->co, -nres) == (void *)&lb__io_sentinel;
    lua_pop(t->co, nres);
    if (!io || t->preempted) {       /* cooperative: run again later */
      t->state = LB_TASK_READY;
      enqueue(rt, t);
    }
    return;
  }
  if (status == LUA_OK) {
    finish(t, keep(t, keep_results_p, nres) == 0 ? LB_TASK_DONE : LB_TASK_FAILED);
  } else {
    keep(t, keep_error_p, 0);
    /* runs the failed coroutine's pending __close handlers and lets go of
    ** its stack (a memory bomb's tables, under mem_limit) */
    lua_resetthread(t->co);
    finish(t, LB_TASK_FAILED);
  }
  ended(t);
}

int lb__drain(lb_runtime *rt, uint64_t deadline) {
  lb_task *t;
  int ran = 0;
  rt->deadline = deadline;
  rt->handed_back = 0;
  for (;;) {
    /* checked before every resume: an interrupt arrives while a task runs */
    if (rt->interrupted) {
      rt->interrupted = 0;     /* handled: tasks spawned later run normally */
      lb__cancel_all(rt);
    }
    if ((t = dequeue(rt)) == NULL) break;
    resume(rt, t);
    ran++;
    if (rt->handed_back || (rt->deadline && uv_hrtime() >= rt->deadline)) break;
  }
  rt->deadline = 0;
  rt->handed_back = 0;
  if (rt->ready_head == NULL)
    uv_idle_stop(&rt->idle);
  return ran;
}

static int ref_string_p(lua_State *L) {
  lua_pushstring(L, lua_touserdata(L, 1));
  lua_pushinteger(L, luaL_ref(L, LUA_REGISTRYINDEX));
  return 1;
}

/* A registry reference to a copy of s, LUA_NOREF without memory for it:
** a cancel happens outside any protected call, so it must not raise. */
static int ref_string(lua_State *L, const char *s) {
  int ref = LUA_NOREF;
  if (!lua_checkstack(L, 2)) return ref;
  lua_pushcfunction(L, ref_string_p);
  lua_pushlightuserdata(L, (void *)s);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK) ref = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return ref;
}

int lb__task_cancel(lb_task *t, const char *why) {
  lb_runtime *rt = t->rt;
  if (is_terminal(t)) return 0;
  if (rt->current == t) return LB_EBUSY;
  if (t->cleanup) {
    lb_cleanup_fn fn = t->cleanup;
    t->cleanup = NULL;
    fn(t->cleanup_data);
  }
  unqueue(rt, t);
  cancel_links(t);
  /* Runs pending __close handlers of the coroutine (temp files, processes). */
  lua_resetthread(t->co);
  t->res_ref = ref_string(rt->L, why);
  set_error(t, strdup(why));
  finish(t, LB_TASK_CANCELLED);
  ended(t);
  return 0;
}

void lb__cancel_all(lb_runtime *rt) {
  lb_task *t = rt->tasks;
  if (rt->host.state == LB_TASK_WAITING) {   /* a blocking call outside tasks */
    if (rt->host.cleanup) {
      lb_cleanup_fn fn = rt->host.cleanup;
      rt->host.cleanup = NULL;
      fn(rt->host.cleanup_data);
    }
    rt->host.state = LB_TASK_CANCELLED;
  }
  while (t) {
    lb_task *n = t->next;
    if (!is_terminal(t) && t != rt->current) {
      /* the cancel may free t; n stays valid because only t is freed */
      lb__task_cancel(t, "interrupted");
    }
    t = n;
  }
}

/* --- public API ----------------------------------------------------------- */

LB_API lb_task_state lb_task_get_state(const lb_task *t) {
  return t->state;
}

LB_API const char *lb_task_error(const lb_task *t) {
  return (t->state == LB_TASK_FAILED || t->state == LB_TASK_CANCELLED) ? t->error : NULL;
}

/* stack: results table {n = ...}. Encodes r[1..n] as a JSON array with
** airbyte.json (the encoder every other JSON of luabyte goes through). */
static int encode_results(lua_State *L) {
  lua_Integer i, n;
  lua_getfield(L, 1, "n");
  n = lua_tointeger(L, -1);
  lua_pop(L, 1);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "airbyte.json");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "array");
  lua_createtable(L, (int)n, 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_getfield(L, 2, "null");
    }
    lua_rawseti(L, -2, i);
  }
  lua_call(L, 1, 1);                   /* json.array(values) */
  lua_getfield(L, 2, "encode");
  lua_insert(L, -2);
  lua_call(L, 1, 1);
  return 1;
}

LB_API const char *lb_task_result(lb_task *t, size_t *len) {
  lb_runtime *rt = t->rt;
  if (t->result_json == NULL && t->state == LB_TASK_DONE && rt && rt->L && rt->current == NULL) {
    lua_State *L = rt->L;
    size_t n;
    const char *s;
    lua_pushcfunction(L, encode_results);
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->res_ref);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
      lb__set_error(rt, "task result: %s", lua_tostring(L, -1));
    } else if ((s = lua_tolstring(L, -1, &n)) != NULL &&
               (t->result_json = malloc(n + 1)) != NULL) {
      memcpy(t->result_json, s, n + 1);
      t->result_len = n;
    }
    lua_pop(L, 1);
  }
  if (t->result_json && len) *len = t->result_len;
  return t->result_json;
}

LB_API void lb_task_on_end(lb_task *t, lb_task_cb cb, void *data) {
  if (t == NULL) return;
  t->end_data = data;
  if (is_terminal(t)) {
    if (cb) {
      /* a raising callback is reported in lb_last_error and the log here,
      ** not by the next lb_step */
      int raised = t->rt ? t->rt->panicked : 0;
      run_end_cb(t->rt, t, cb, data);
      if (t->rt) t->rt->panicked = raised;
      if (t->rt) lb__task_free_if_unused(t);
      else if (!t->host_held) task_free(t);
    }
    return;
  }
  t->end_cb = cb;
}

/* LB_ELUA when the task's end callback raised (it is cancelled all the same). */
LB_API int lb_task_cancel(lb_task *t) {
  lb_runtime *rt;
  int rc, raised;
  if (t == NULL) return LB_EINVAL;
  if ((rt = t->rt) == NULL) return is_terminal(t) ? 0 : LB_ESTATE;
  raised = rt->panicked;
  rt->panicked = 0;
  rc = lb__task_cancel(t, "task cancelled");
  if (rc == 0 && rt->panicked) rc = LB_ELUA;
  rt->panicked = raised;            /* a step's own report stays for lb_step */
  return rc;
}

LB_API void lb_task_release(lb_task *t) {
  if (t == NULL) return;
  t->host_held = 0;
  if (t->rt == NULL) {             /* outlived its runtime */
    if (!t->in_end_cb) task_free(t);
    return;
  }
  lb__task_free_if_unused(t);
}

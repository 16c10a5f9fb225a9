/*
** loop.c - the three loop modes: lb_step/lb_run, the backend fd and
** timeout, the shared loop's check handle, switching to a host's loop, and
** waits (lb__wait, and lb__budget_pause before costly C work): a task's
** yields to the scheduler, a blocking call made outside any task runs the
** loop until its wait ends, so a plain script can call source:read().
*/
#define _GNU_SOURCE 1   /* sigtimedwait */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "lb_internal.h"

static void step(lb_runtime *rt, int timeout_ms, uint32_t budget_us);
static int host_wait(lua_State *L, lb_cleanup_fn cleanup, void *data,
                     lua_KContext ctx, lua_KFunction k);

/* --- the runtime's own handles --------------------------------------------- */

static void on_async(uv_async_t *h) {
  (void)h;   /* the wake-up is all it is for; lb_step handles the flag */
}

static void on_step_timer(uv_timer_t *h) {
  (void)h;
}

/* LB_LOOP_SHARED: resumes ready tasks after each poll of the host's loop,
** within the shared budget (0 = until none is ready). */
static void on_check(uv_check_t *h) {
  lb_runtime *rt = h->data;
  if (rt->stepping) return;
  rt->stepping = 1;
  step(rt, 0, rt->shared_budget_us);   /* no poll: the host's loop just did it */
  rt->stepping = 0;
}

static void on_handle_closed(uv_handle_t *h) {
  lb_runtime *rt = h->data;
  rt->open_handles--;
}

int lb__loop_init(lb_runtime *rt, uv_loop_t *shared) {
  if (shared) rt->loop = shared;
  else {
    if (uv_loop_init(&rt->own_loop) != 0) return LB_ELOOP;
    rt->loop = &rt->own_loop;
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
    lb__sched_kick(rt);
  }
  return 0;
}

/* Closes the runtime's handles and, while children exit, runs the loop
** without ever blocking a loop that is the host's. */
void lb__loop_close(lb_runtime *rt, int close_loop) {
  uv_close((uv_handle_t *)&rt->async, on_handle_closed);
  uv_close((uv_handle_t *)&rt->step_timer, on_handle_closed);
  uv_close((uv_handle_t *)&rt->check, on_handle_closed);
  uv_close((uv_handle_t *)&rt->idle, on_handle_closed);
  while (rt->open_handles > 0 || rt->procs != NULL) {
    if (rt->mode == LB_LOOP_SHARED) {
      uv_run(rt->loop, UV_RUN_NOWAIT);
      if (rt->open_handles > 0 || rt->procs) uv_sleep(1);
    } else {
      uv_run(rt->loop, UV_RUN_ONCE);
    }
  }
  if (close_loop && rt->mode != LB_LOOP_SHARED) {
    uv_run(rt->loop, UV_RUN_NOWAIT);
    uv_loop_close(rt->loop);
  }
}

/* Moves the runtime onto a host's loop (ab.use_loop). Only while nothing
** of the runtime is on its own loop: no child, timer or task waiting. */
int lb__loop_use(lb_runtime *rt, uv_loop_t *loop, uint32_t budget_us) {
  lb_task *t;
  if (rt->stepping || rt->procs) return LB_EBUSY;
  for (t = rt->tasks; t; t = t->next)
    if (t->state == LB_TASK_WAITING) return LB_EBUSY;
  if (loop == rt->loop) { rt->shared_budget_us = budget_us; return 0; }
  lb__loop_close(rt, 1);
  rt->mode = LB_LOOP_SHARED;
  rt->shared_budget_us = budget_us;
  return lb__loop_init(rt, loop);
}

/* --- driving --------------------------------------------------------------- */

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

/* The process's SIGPIPE disposition is the host's. While the runtime
** writes to children, SIGPIPE is blocked in this thread, and one raised by
** a write to a reader that has gone is taken back before unblocking: the
** write fails with EPIPE, the host is not killed. */
typedef struct pipe_guard {
  sigset_t old;
  int on;
} pipe_guard;

static void guard_pipe(pipe_guard *g) {
  struct sigaction sa;
  sigset_t set;
  g->on = 0;
  if (sigaction(SIGPIPE, NULL, &sa) != 0 || sa.sa_handler == SIG_IGN) return;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  if (pthread_sigmask(SIG_BLOCK, &set, &g->old) == 0 && !sigismember(&g->old, SIGPIPE))
    g->on = 1;
}

static void unguard_pipe(pipe_guard *g) {
  sigset_t set, pending;
  struct timespec zero = {0, 0};
  if (!g->on) return;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  while (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) &&
         sigtimedwait(&set, NULL, &zero) == SIGPIPE) {}
  pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* One poll and one drain; the caller has set rt->stepping. */
static void step(lb_runtime *rt, int timeout_ms, uint32_t budget_us) {
  pipe_guard g;
  jmp_buf jb, *outer = rt->panic_jmp;
  /* the budget counts from here: the poll's reads are part of the step */
  uint64_t deadline = budget_us ? uv_hrtime() + (uint64_t)budget_us * 1000 : 0;
  guard_pipe(&g);
  if (setjmp(jb) != 0) {        /* a Lua error outside any protected call (runtime.c) */
    rt->current = NULL;
    rt->deadline = 0;
    rt->panicked = 1;
    goto done;
  }
  rt->panic_jmp = &jb;
  rt->deadline = deadline;
  rt->budget_ns = (uint64_t)budget_us * 1000;
  if (rt->mode != LB_LOOP_SHARED) {
    if (rt->ready_head == NULL && timeout_ms != 0 && !rt->interrupted) {
      if (timeout_ms > 0) uv_timer_start(&rt->step_timer, on_step_timer, (uint64_t)timeout_ms, 0);
      uv_run(rt->loop, UV_RUN_ONCE);
      uv_timer_stop(&rt->step_timer);
      /* waiting is not running: the budget starts after the wait */
      if (budget_us) deadline = rt->deadline = uv_hrtime() + (uint64_t)budget_us * 1000;
    } else {
      uv_run(rt->loop, UV_RUN_NOWAIT);
    }
  }
  lb__drain(rt, deadline);
  if (rt->mode != LB_LOOP_SHARED && rt->ready_head == NULL && rt->live > 0 &&
      !uv_loop_alive(rt->loop))
    fail_deadlocked(rt);
done:
  rt->panic_jmp = outer;
  unguard_pipe(&g);
}

LB_API int lb_step(lb_runtime *rt, int timeout_ms, uint32_t budget_us) {
  if (rt == NULL) return LB_EINVAL;
  if (rt->stepping) return LB_EBUSY;
  rt->stepping = 1;
  step(rt, timeout_ms, budget_us);
  rt->stepping = 0;
  if (rt->panicked) {
    rt->panicked = 0;
    return LB_ELUA;
  }
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

LB_API struct uv_loop_s *lb_loop(lb_runtime *rt) {
  return rt->loop;
}

/* --- waiting ---------------------------------------------------------------- */

/* In a task a wait yields to the scheduler (sched.c); outside any task it
** runs the loop here until it ends. */
lb_task *lb__current(lua_State *L, const char *what) {
  lb_runtime *rt = lb__rt(L);
  if (rt->current == NULL && !rt->stepping && !rt->closing) {
    /* outside any task: the wait runs the loop itself (host_wait) */
    if (rt->mode == LB_LOOP_SHARED)
      luaL_error(L, "%s outside a task is not possible while the host runs the loop "
                    "(ab.use_loop, LB_LOOP_SHARED): start it with ab.spawn(fn)", what);
    return &rt->host;
  }
  if (rt->current == NULL || !lua_isyieldable(L))
    luaL_error(L, "%s is not allowed here: it waits, and only code running in a "
                  "task can wait (not inside a metamethod, iterator of a C "
                  "function or a record hook)", what);
  return rt->current;
}

int lb__wait(lua_State *L, lb_cleanup_fn cleanup, void *data,
             lua_KContext ctx, lua_KFunction k) {
  lb_task *t = lb__current(L, "waiting");
  if (t == &t->rt->host) return host_wait(L, cleanup, data, ctx, k);
  t->cleanup = cleanup;
  t->cleanup_data = data;
  lua_pushlightuserdata(L, (void *)&lb__io_sentinel);
  return lua_yieldk(L, 1, ctx, k);
}

/* Costly C work (opening a cache, preparing its statements, forking a
** connector: a millisecond or more each, which no hook can pause) starts
** only with half the step's budget left: else the task hands the rest
** of the step back here (the drain ends) and k runs at the next step,
** with a budget of its own (a
** user's coroutine passes the wait on, airbyte.coroutine). A task just
** resumed goes on: it makes progress however long the poll took. Without
** a budget, or outside a task, it returns 0. */
int lb__budget_pause(lua_State *L, lua_KContext ctx, lua_KFunction k) {
  lb_runtime *rt = lb__rt(L);
  uint64_t now;
  if (!rt->deadline || rt->current == NULL || !lua_isyieldable(L)) return 0;
  now = uv_hrtime();
  if (now + rt->budget_ns / 2 < rt->deadline || now - rt->resumed_at < rt->budget_ns / 8) return 0;
  rt->handed_back = 1;                /* the step ends: too little left for the work */
  lb__wake(rt->current);
  return lb__wait(L, NULL, NULL, ctx, k);
}

/* --- waits outside a task ---------------------------------------------------- */

/* Identity of the running C function's call frame: the continuation of a
** host wait that waits again runs in the frame of call_k below, and loops
** there instead of nesting one C frame per wait (a pump waits thousands of
** times in one call). */
static const void *frame_id(lua_State *L) {
  lua_Debug ar;
  return lua_getstack(L, 0, &ar) ? (const void *)ar.i_ci : NULL;
}

/* Runs the loop and every other task until rt->host is woken; 0, or a
** message when the wait cannot end. */
static const char *wait_host(lb_runtime *rt) {
  lb_task *h = &rt->host;
  while (h->state == LB_TASK_WAITING) {
    rt->stepping = 1;
    step(rt, -1, 0);
    rt->stepping = 0;
    if (h->state == LB_TASK_WAITING && rt->ready_head == NULL && !uv_loop_alive(rt->loop)) {
      if (h->cleanup) {
        lb_cleanup_fn fn = h->cleanup;
        h->cleanup = NULL;
        fn(h->cleanup_data);
      }
      h->state = LB_TASK_READY;
      return "deadlock: this call waits for something that can never happen "
             "(nothing is left that could wake it)";
    }
  }
  if (h->state == LB_TASK_CANCELLED) {   /* lb_interrupt */
    h->state = LB_TASK_READY;
    return "interrupted";
  }
  return NULL;
}

/* stack: copies of the waiting C function's stack. Waits, then runs the
** continuation here as lua_resume would, as long as it waits again. */
static int call_k(lua_State *L) {
  lb_runtime *rt = lb__rt(L);
  lb_host_wait w = rt->again;
  lb_task *h = &rt->host;
  rt->host_frame = frame_id(L);
  rt->host_L = L;
  for (;;) {
    const char *err;
    int n;
    h->state = LB_TASK_WAITING;
    h->cleanup = w.cleanup;
    h->cleanup_data = w.data;
    if ((err = wait_host(rt)) != NULL) return luaL_error(L, "%s", err);
    rt->again.pending = 0;
    n = w.k(L, LUA_YIELD, w.ctx);
    if (!rt->again.pending) return n;
    w = rt->again;
  }
}

/* A wait outside any task: the runtime's loop runs here until it ends. */
static int host_wait(lua_State *L, lb_cleanup_fn cleanup, void *data,
                     lua_KContext ctx, lua_KFunction k) {
  lb_runtime *rt = lb__rt(L);
  const void *outer_frame = rt->host_frame;
  lua_State *outer_L = rt->host_L;
  int top = lua_gettop(L), i, nup, status;
  lua_Debug ar;
  rt->again.cleanup = cleanup;
  rt->again.data = data;
  rt->again.ctx = ctx;
  rt->again.k = k;
  if (L == rt->host_L && frame_id(L) == rt->host_frame) {
    rt->again.pending = 1;
    return 0;                      /* call_k's loop waits again */
  }
  /* the continuation runs in call_k's frame: give it the waiting
  ** function's upvalues, and put them back after (k may replace them) */
  luaL_checkstack(L, top + 260, "waiting");
  if (!lua_getstack(L, 0, &ar) || !lua_getinfo(L, "f", &ar))
    return luaL_error(L, "waiting: no function to continue");
  for (nup = 0; lua_getupvalue(L, top + 1, nup + 1) != NULL; nup++) {}
  lua_pushcclosure(L, call_k, nup);     /* stack: ..., fn, call_k */
  lua_pushvalue(L, -1);
  for (i = 1; i <= top; i++) lua_pushvalue(L, i);
  status = lua_pcall(L, top, LUA_MULTRET, 0);
  rt->host_frame = outer_frame;
  rt->host_L = outer_L;
  if (status != LUA_OK) return lua_error(L);
  for (i = 1; i <= nup; i++) {
    lua_getupvalue(L, top + 2, i);
    lua_setupvalue(L, top + 1, i);
  }
  lua_rotate(L, top + 1, -2);           /* stack: ..., results, fn, call_k */
  lua_pop(L, 2);
  return lua_gettop(L) - top;
}

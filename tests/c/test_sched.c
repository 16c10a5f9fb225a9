/* test_sched.c - tasks through the public API: concurrency, waiting,
** cancellation, deadlock detection, budgets, errors. */
#include <stdlib.h>
#include <lua.h>
#include "lbtest.h"
#include "luabyte.h"

static lb_runtime *new_rt(void) {
  lb_options o;
  lb_runtime *rt = NULL;
  lb_options_init(&o);
  CHECK_EQ_INT(lb_runtime_new(&o, &rt), 0);
  return rt;
}

static lb_task *spawn(lb_runtime *rt, const char *src) {
  lb_task *t = NULL;
  int rc = lb_spawn_string(rt, src, strlen(src), "=test", 0, NULL, &t);
  if (rc != 0) fprintf(stderr, "  spawn: %s\n", lb_last_error(rt));
  CHECK_EQ_INT(rc, 0);
  return t;
}

static const char *global_str(lb_runtime *rt, const char *name) {
  lua_State *L = lb_lua(rt);
  const char *s;
  lua_getglobal(L, name);
  s = lua_tostring(L, -1);
  lua_pop(L, 1);
  return s;
}

static void concurrent_sleepers_interleave(void) {
  lb_runtime *rt = new_rt();
  lb_task *t = spawn(rt,
    "local core = require 'airbyte.core'\n"
    "local log = {}\n"
    "local a = core.spawn(function() core.sleep(30); log[#log+1] = 'a'; return 1 end)\n"
    "local b = core.spawn(function() core.sleep(10); log[#log+1] = 'b'; return 2, 3 end)\n"
    "local x = a:wait(); local y, z = b:wait()\n"
    "ORDER = table.concat(log) .. x .. y .. z\n");
  CHECK_EQ_INT(lb_run(rt), 0);
  CHECK_EQ_INT(lb_task_get_state(t), LB_TASK_DONE);
  CHECK_EQ_STR(global_str(rt, "ORDER"), "ba123");
  lb_task_release(t);
  lb_runtime_close(rt);
}

static void errors_carry_traceback(void) {
  lb_runtime *rt = new_rt();
  lb_task *t = spawn(rt, "local function f() error('boom') end\nf()\n");
  CHECK_EQ_INT(lb_run(rt), LB_ELUA);
  CHECK_EQ_INT(lb_task_get_state(t), LB_TASK_FAILED);
  CHECK(lb_task_error(t) && strstr(lb_task_error(t), "boom"));
  CHECK(lb_task_error(t) && strstr(lb_task_error(t), "stack traceback"));
  lb_task_release(t);
  lb_runtime_close(rt);
}

static void wait_rethrows_error_objects(void) {
  lb_runtime *rt = new_rt();
  lb_task *t = spawn(rt,
    "local core = require 'airbyte.core'\n"
    "local c = core.spawn(function() error({kind = 'X'}) end)\n"
    "local ok, e = pcall(c.wait, c)\n"
    "KIND = (not ok) and e.kind or 'none'\n");
  CHECK_EQ_INT(lb_run(rt), LB_ELUA);   /* the child task failed */
  CHECK_EQ_INT(lb_task_get_state(t), LB_TASK_DONE);
  CHECK_EQ_STR(global_str(rt, "KIND"), "X");
  lb_task_release(t);
  lb_runtime_close(rt);
}

static void cancel_runs_close_handlers(void) {
  lb_runtime *rt = new_rt();
  lb_task *t = spawn(rt,
    "local core = require 'airbyte.core'\n"
    "CLOSED = 'no'\n"
    "local guard <close> = setmetatable({}, {__close = function() CLOSED = 'yes' end})\n"
    "core.sleep(100000)\n");
  int i;
  for (i = 0; i < 3; i++) lb_step(rt, 0, 0);
  CHECK_EQ_INT(lb_task_get_state(t), LB_TASK_WAITING);
  CHECK_EQ_INT(lb_task_cancel(t), 0);
  CHECK_EQ_INT(lb_task_get_state(t), LB_TASK_CANCELLED);
  CHECK_EQ_STR(global_str(rt, "CLOSED"), "yes");
  CHECK_EQ_INT(lb_step(rt, 0, 0), 0);
  lb_task_release(t);
  lb_runtime_close(rt);
}

static void interrupt_cancels_everything(void) {
  lb_runtime *rt = new_rt();
  lb_task *t = spawn(rt,
    "local core = require 'airbyte.core'\n"
    "core.spawn(function() core.sleep(100000) end)\n"
    "while true do core.sleep(1) end\n");
  lb_step(rt, 0, 0);
  lb_interrupt(rt);
  CHECK_EQ_INT(lb_run(rt), 0);
  CHECK_EQ_INT(lb_task_get_state(t), LB_TASK_CANCELLED);
  lb_task_release(t);
  lb_runtime_close(rt);
}

static void deadlock_is_reported(void) {
  lb_runtime *rt = new_rt();
  lb_task *t = spawn(rt,
    "local core = require 'airbyte.core'\n"
    "local me\n"
    "local other = core.spawn(function() me:wait() end)\n"
    "me = core.spawn(function() other:wait() end)\n"
    "me:wait()\n");
  int rc = lb_run(rt);
  CHECK(rc == LB_ELUA);
  CHECK(lb_task_get_state(t) == LB_TASK_FAILED || lb_task_get_state(t) == LB_TASK_CANCELLED);
  CHECK(lb_task_error(t) && strstr(lb_task_error(t), "deadlock"));
  lb_task_release(t);
  lb_runtime_close(rt);
}

static void budget_preempts_busy_loop(void) {
  lb_runtime *rt = new_rt();
  lb_task *t = spawn(rt,
    "local n = 0\nfor i = 1, 30000000 do n = n + i end\nSUM = n\n");
  int steps = 0, rc;
  while ((rc = lb_step(rt, 0, 1000)) > 0) steps++;
  CHECK_EQ_INT(rc, 0);
  CHECK(steps > 3);    /* the loop was paused several times */
  CHECK_EQ_INT(lb_task_get_state(t), LB_TASK_DONE);
  lb_task_release(t);
  lb_runtime_close(rt);
}

static void user_coroutines_pass_waits(void) {
  lb_runtime *rt = new_rt();
  lb_task *t = spawn(rt,
    "local core = require 'airbyte.core'\n"
    "local gen = coroutine.wrap(function()\n"
    "  for i = 1, 3 do core.sleep(1); coroutine.yield(i) end\n"
    "end)\n"
    "local s = ''\n"
    "for i = 1, 3 do s = s .. gen() end\n"
    "local co = coroutine.create(function(a) core.sleep(1); local b = coroutine.yield(a + 1); return b * 2 end)\n"
    "local ok1, v1 = coroutine.resume(co, 1)\n"
    "local ok2, v2 = coroutine.resume(co, 10)\n"
    "RES = s .. ':' .. tostring(ok1) .. v1 .. tostring(ok2) .. v2\n");
  CHECK_EQ_INT(lb_run(rt), 0);
  CHECK_EQ_STR(global_str(rt, "RES"), "123:true2true20");
  lb_task_release(t);
  lb_runtime_close(rt);
}

static void reentrant_step_is_refused(void) {
  lb_runtime *rt = new_rt();
  /* a stepping runtime refuses a nested step: simulate through the API */
  CHECK_EQ_INT(lb_step(rt, 0, 0), 0);
  CHECK_EQ_STR(lb_err_name(LB_EBUSY), "LB_EBUSY");
  CHECK(strlen(lb_strerror(LB_ENOMEM)) > 0);
  lb_runtime_close(rt);
}

static void shared_loop_mode_rejects_missing_loop(void) {
  lb_options o;
  lb_runtime *rt = NULL;
  lb_options_init(&o);
  o.loop_mode = LB_LOOP_SHARED;
  CHECK_EQ_INT(lb_runtime_new(&o, &rt), LB_EINVAL);
  CHECK(rt == NULL);
}

TEST_LIST {
  {"concurrent_sleepers_interleave", concurrent_sleepers_interleave},
  {"errors_carry_traceback", errors_carry_traceback},
  {"wait_rethrows_error_objects", wait_rethrows_error_objects},
  {"cancel_runs_close_handlers", cancel_runs_close_handlers},
  {"interrupt_cancels_everything", interrupt_cancels_everything},
  {"deadlock_is_reported", deadlock_is_reported},
  {"budget_preempts_busy_loop", budget_preempts_busy_loop},
  {"user_coroutines_pass_waits", user_coroutines_pass_waits},
  {"reentrant_step_is_refused", reentrant_step_is_refused},
  {"shared_loop_mode_rejects_missing_loop", shared_loop_mode_rejects_missing_loop},
  {NULL, NULL}
};
LBTEST_MAIN

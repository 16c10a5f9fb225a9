/*
** lb_internal.h - declarations shared by the files of the core.
**
** The prefix rule, for every name in runtime/:
**   lb_    the public API (runtime/include/luabyte.h, LB_API), and the
**          interface of a part that stands alone as a small library with
**          its own header and tests (jskim.h, protocol.h, lines.h,
**          jsonschema.h, cache.h, mask.h, digest.h: lb_jskim_validate,
**          lb_msg_parse, lb_cache_open, ...). Types are lb_ + a noun
**          (lb_runtime, lb_jval), macros and enum constants LB_.
**   lb__   a helper one file of the core lends another (declared here or in
**          the lending file's header: lb__log, lb__json_push, lb__uuid4);
**          never part of the API, free to change.
**   none   file-local: static, no prefix (sb_add, emit, push_string).
** Lua-binding files (lua_*.c) export only their luaopen_airbyte_* entry
** points and lb__ helpers of the binding layer.
*/
#ifndef LB_INTERNAL_H
#define LB_INTERNAL_H

#include <setjmp.h>
#include <signal.h>
#include <lua.h>
#include <lauxlib.h>
#include <uv.h>
#include "luabyte.h"
#include "background.h"

typedef void (*lb_cleanup_fn)(void *data);
typedef struct lb_proc lb_proc;
typedef struct lb_tmpfile lb_tmpfile;
typedef struct lb_masker lb_masker;

/* A resource's link in the cleanup chain of the task that made it (proc.c's
** children): the scheduler calls fn when the task is cancelled, before its
** __close handlers run (cancelled = 1), and when it has ended, unlinked
** first (cancelled = 0). It knows nothing else of the resource. */
typedef struct lb_task_link lb_task_link;
typedef void (*lb_task_link_fn)(lb_task_link *l, int cancelled);
struct lb_task_link {
  lb_task_link_fn fn;
  lb_task        *task;        /* NULL when not linked */
  lb_task_link   *prev, *next;
};

struct lb_task {
  lb_runtime   *rt;
  lua_State    *co;            /* the coroutine, anchored by co_ref */
  int           co_ref;
  int           res_ref;       /* results table (DONE) or error value (FAILED) */
  lb_task_state state;
  int           nargs;         /* values waiting on co's stack for the first resume */
  int           preempted;     /* yielded by the budget hook: requeue, not I/O */
  int           queued;        /* in the ready queue */
  int           host_held;     /* the host has not released it yet */
  int           lua_refs;      /* Task handles alive in Lua */
  lb_cleanup_fn cleanup;       /* undoes the current wait (cancel, timeout) */
  void         *cleanup_data;
  char         *error;         /* message and traceback of a failed task */
  lb_task      *qnext;         /* ready queue link */
  lb_task      *prev, *next;   /* rt->tasks */
  lb_task      *joiners;       /* tasks waiting for this one to end */
  lb_task      *join_next;     /* link in the target's joiners list */
  lb_task      *join_target;
  int           arg_ref;       /* the task's `arg` table, or LUA_NOREF */
  lb_task_cb    end_cb;        /* lb_task_on_end */
  void         *end_data;
  int           in_end_cb;     /* end_cb is running: release frees after it */
  char         *result_json;   /* lb_task_result, made on first use */
  size_t        result_len;
  lb_task_link *links;         /* cleanup chain of what the task made */
};

/* A wait made outside any task, kept while the loop runs (loop.c). */
typedef struct lb_host_wait {
  lb_cleanup_fn cleanup;
  void         *data;
  lua_KContext  ctx;
  lua_KFunction k;
  int           pending;       /* the continuation waits again */
} lb_host_wait;

struct lb_runtime {
  lua_State    *L;
  int           borrowed_L;    /* the host's state (require "airbyte"): not closed by us */
  uv_loop_t    *loop;
  uv_loop_t     own_loop;
  lb_loop_mode  mode;
  lb_task      *ready_head, *ready_tail;
  lb_task      *tasks;         /* every task not yet freed */
  lb_task      *current;       /* the task being resumed, or NULL */
  int           live;          /* tasks not yet ended */
  int           failed;        /* tasks that ended with an error */
  int           stepping;      /* guards uv_run against re-entry */
  int           closing;       /* lb_runtime_close is closing the Lua state */
  volatile sig_atomic_t interrupted;
  uint64_t      deadline;      /* uv_hrtime() at which the step budget ends, 0 = none */
  uint64_t      budget_ns;     /* the step's whole budget (with a deadline) */
  uint64_t      resumed_at;    /* uv_hrtime() when the current task was resumed (with a deadline) */
  int           handed_back;   /* a task gave the rest of the step back (lb__budget_pause) */
  uv_async_t    async;         /* lb_interrupt wakes the loop with it */
  uv_timer_t    step_timer;    /* bounds the wait in lb_step */
  uv_check_t    check;         /* LB_LOOP_SHARED: resumes tasks after each poll */
  uv_idle_t     idle;          /* LB_LOOP_SHARED: keeps the poll from blocking */
  int           open_handles;  /* of the runtime itself, for close */
  uint32_t      shared_budget_us; /* LB_LOOP_SHARED: budget of each check-handle drain */
  lb_task       host;          /* stands for code outside any task while it waits */
  const void   *host_frame;    /* the call frame running a host wait's continuation */
  lua_State    *host_L;
  lb_host_wait  again;
  jmp_buf      *panic_jmp;     /* where a Lua panic resumes (loop.c's step) */
  int           panicked;      /* host code raised, or Lua panicked: LB_ELUA */
  lb_task      *in_callback;   /* the task whose end callback runs */
  lb_proc      *procs;         /* child processes whose handles are open */
  lb_tmpfile   *tmpfiles;      /* removed at close */
  lb_masker    *masker;        /* secrets hidden in what leaves (mask.h), NULL = none yet */
  char         *exe_path;      /* found on first use: lb__exe_path */
  size_t        mem_limit, mem_used;
  char         *lua_dir;
  uint32_t      kill_grace_ms;
  lb_cpus       background_cpus; /* lb_options.background_cpus, ab.background_cpus */
  lb_log_fn     log;
  void         *log_ud;
  char          errmsg[512];
};

/* hostcall.c */
/* Host code in a protected call on rt->L (a plain call without a state):
** LUA_OK, or an error status with the message on top of rt->L. */
typedef void (*lb_host_fn)(void *ud);
int  lb__host_pcall(lb_runtime *rt, lb_host_fn fn, void *ud);

/* log.c */
void lb__set_error(lb_runtime *rt, const char *fmt, ...);
void lb__log(lb_runtime *rt, int level, const char *fmt, ...);
/* With a host log sink: io.stderr of L hands its lines to the sink. */
void lb__log_install(lua_State *L, lb_runtime *rt);
/* Runs host code (an end callback) in a protected call on rt->L
** (lb__host_pcall): 0, or LB_ELUA when it raised a Lua error (then in
** lb_last_error and the log, and rt->panicked is set). */
int  lb__host_call(lb_runtime *rt, lb_host_fn fn, void *ud, const char *what);

/* rtstate.c */
lb_runtime *lb__rt(lua_State *L);
void lb__rt_set(lua_State *L, lb_runtime *rt);   /* NULL: none any more */

/* exepath.c */
/* The luabyte command that runs built-in connectors, or NULL. */
const char *lb__exe_path(lb_runtime *rt);
/* Is there a regular file at path that we may execute? */
int lb__is_exe(const char *path);

/* modules.c */
/* Fills package.preload of L (C and embedded modules); with lua_dir, puts
** a searcher of its files first in package.searchers. */
void lb__modules_install(lua_State *L, const char *lua_dir);
/* Pushes that searcher (a function of a module name). */
void lb__push_dir_searcher(lua_State *L, const char *dir);

/* tmpfile.c */
/* Temporary files (mode 0600) removed at lb_runtime_close at the latest. */
lb_tmpfile *lb__tmpfile_new(lb_runtime *rt, const char *content, size_t len,
                            const char *suffix, const char **path);
void lb__tmpfile_remove(lb_runtime *rt, lb_tmpfile *f);

/* runtime.c */
/* After ab.use_loop: the runtime is finalized before luv's loop. */
void lb__module_refinalize(lua_State *L);

/* loop.c */
int  lb__loop_init(lb_runtime *rt, uv_loop_t *shared);
void lb__loop_close(lb_runtime *rt, int close_loop);
int  lb__loop_use(lb_runtime *rt, uv_loop_t *loop, uint32_t budget_us);
/* Suspends the running task until lb__wake(); the continuation k then runs
** (it must re-check its condition). cleanup(data) undoes the wait if the
** task is cancelled first. Outside any task (stock lua5.4 calling
** source:read()) it runs the loop until the wait ends, then k. */
int  lb__wait(lua_State *L, lb_cleanup_fn cleanup, void *data,
              lua_KContext ctx, lua_KFunction k);
/* Before costly C work in a binding: when less than half the step's
** budget is left, yields and runs k at the next step (never returns
** then); else 0. */
int  lb__budget_pause(lua_State *L, lua_KContext ctx, lua_KFunction k);
/* The task running L, or the host's stand-in outside tasks; raises where
** no wait is possible. */
lb_task *lb__current(lua_State *L, const char *what);

/* sched.c */
extern const char lb__io_sentinel;   /* yielded value that marks an I/O wait */
lb_task *lb__task_new(lb_runtime *rt, lua_State *from, int nargs);
void lb__task_free_if_unused(lb_task *t);
void lb__tasks_detach(lb_runtime *rt);
void lb__wake(lb_task *t);
/* Resumes ready tasks until none is ready or uv_hrtime() passes deadline
** (0 = no budget). */
int  lb__drain(lb_runtime *rt, uint64_t deadline);
void lb__cancel_all(lb_runtime *rt);
int  lb__task_cancel(lb_task *t, const char *why);
int  lb__budget_spent(lb_runtime *rt);
void lb__task_link(lb_task *t, lb_task_link *l, lb_task_link_fn fn);
void lb__task_unlink(lb_task_link *l);   /* no-op when not linked */
/* LB_LOOP_SHARED: keeps the host's poll from blocking while tasks are ready. */
void lb__sched_kick(lb_runtime *rt);
void lb__hook_current(lb_runtime *rt);

/* lua_core.c: suspends the running task for ms milliseconds (a libuv
** timer, the loop polling meanwhile); then k runs. */
int  lb__sleep(lua_State *L, uint64_t ms, lua_KContext ctx, lua_KFunction k);

/* lua_cache.c: waiting for a cache's writer thread without holding the
** loop. How long the loop thread may wait before the task yields (a
** uv_hrtime() deadline): the step's budget, else 1 ms; 0 when the caller
** cannot yield (outside a task), which then waits as long as it takes. */
uint64_t lb__cache_wait_deadline(lua_State *L);
/* Suspends the task until it should look again (the next step with a
** budget, else 1 ms later, the loop polling meanwhile); then k runs. */
int  lb__cache_retry(lua_State *L, lua_KContext ctx, lua_KFunction k);

/* proc.c */
void lb__procs_terminate_all(lb_runtime *rt, int force);
int  lb__procs_running(lb_runtime *rt);

/* lua_options.c: raises PyAirbyteInputError (through airbyte.options) for a
** key of the options table at idx not in `allowed` (NULL-terminated). */
void lb__check_options(lua_State *L, int idx, const char *where, const char *const *allowed);

/* Lua modules written in C, registered in package.preload by runtime.c. */
int luaopen_airbyte_core(lua_State *L);    /* lua_core.c: tasks, sleep, the loop */
int luaopen_airbyte_process(lua_State *L); /* lua_proc.c: child processes, messages */
int luaopen_airbyte_json(lua_State *L);    /* lua_json.c: decode/encode, null, BigInt */
int luaopen_airbyte_jsonschema(lua_State *L); /* lua_jsonschema.c: JSON Schema draft-07 */
int luaopen_airbyte_sqlite(lua_State *L);  /* lua_cache.c: the SQLite cache */
int luaopen_airbyte_pump(lua_State *L);    /* pump.c: connector output into the cache */
int luaopen_airbyte_sandbox(lua_State *L); /* lua_sandbox.c: validators in a limited state */
int luaopen_airbyte_libyaml(lua_State *L); /* lua_yaml.c: YAML documents (libyaml) */
int luaopen_airbyte_http(lua_State *L);    /* lua_http.c: HTTP(S) through libcurl */
int luaopen_airbyte_pg(lua_State *L);      /* lua_pg.c: PostgreSQL for destination-postgres */
int luaopen_cjson(lua_State *L);           /* lua-cjson, linked in */
void lb__open_mask(lua_State *L);          /* lua_mask.c: core.mask*, into the table on top */
void lb__open_sys(lua_State *L);           /* lua_sys.c: clocks, ids, stdin, tty, exe path, likewise */
void lb__open_files(lua_State *L);         /* lua_files.c: tempfile, mkdir_p, fsync, executable, likewise */

#endif

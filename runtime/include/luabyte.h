/*
** luabyte.h - the public embedding API of libluabyte.
**
** A runtime owns one Lua 5.4 state and runs Lua scripts as tasks
** (coroutines) over a libuv event loop. Hosts drive it in one of three ways:
**   LB_LOOP_OWN       the runtime owns its loop; call lb_run() (CLI) or
**                     lb_step() once a frame (game loops);
**   LB_LOOP_SHARED    the host passes its own uv_loop_t and runs it; the
**                     runtime resumes tasks from a uv_check handle;
**   LB_LOOP_EXTERNAL  the runtime owns a loop whose backend fd the host
**                     watches (epoll, nginx-like): when lb_backend_fd()
**                     is readable or lb_backend_timeout() ms have passed,
**                     call lb_step(rt, 0, budget).
** Functions return 0 or a negative LB_E* code. No Lua or libuv header is
** needed to use this one.
*/
#ifndef LUABYTE_H
#define LUABYTE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef LB_API
# if defined(__GNUC__)
#  define LB_API __attribute__((visibility("default")))
# else
#  define LB_API
# endif
#endif

#define LB_VERSION_MAJOR 0
#define LB_VERSION_MINOR 1
#define LB_VERSION_PATCH 0
#define LB_VERSION_STRING "0.1.0"

struct lua_State;
struct uv_loop_s;

typedef struct lb_runtime lb_runtime;   /* opaque */
typedef struct lb_task    lb_task;      /* opaque: one script coroutine */

typedef enum lb_loop_mode {
  LB_LOOP_OWN = 0,
  LB_LOOP_SHARED,
  LB_LOOP_EXTERNAL
} lb_loop_mode;

/* Levels of lb_log_fn messages. */
#define LB_LOG_ERROR 0
#define LB_LOG_WARN  1
#define LB_LOG_INFO  2

/* msg is one line without its newline, not NUL-terminated. */
typedef void (*lb_log_fn)(void *ud, int level, const char *msg, size_t len);

typedef struct lb_options {
  uint32_t          size;        /* = sizeof(lb_options), set by lb_options_init */
  lb_loop_mode      loop_mode;
  struct uv_loop_s *loop;        /* LB_LOOP_SHARED: the host's loop; else NULL */
  size_t            mem_limit;   /* bytes of Lua memory tasks may use, 0 = no limit;
                                    past it a task gets a Lua memory error */
  const char       *lua_dir;     /* load Lua modules from this directory before the
                                    embedded copies; NULL = $LUABYTE_LUA_DIR or none */
  const char       *exe_path;    /* the luabyte command that runs built-in connectors;
                                    NULL = $LUABYTE_EXE, else bin/luabyte of the install
                                    prefix of libluabyte, else PATH */
  uint32_t          kill_grace_ms; /* SIGTERM -> SIGKILL delay for children, 0 = 2000 */
  lb_log_fn         log;         /* every message of the runtime, Lua's io.stderr
                                    lines included; NULL = stderr */
  void             *log_ud;
  uint32_t          shared_budget_us; /* LB_LOOP_SHARED: most time tasks run after one
                                    poll of the host's loop, 0 = until none is ready */
  const char       *background_cpus; /* CPUs for the cache's threads and the connectors,
                                    as taskset -c takes them ("1-3"): a host that pins
                                    its loop thread keeps them off its CPU; NULL = where
                                    the thread that starts them runs. A list that does
                                    not parse: lb_runtime_new fails with LB_EINVAL and
                                    logs why */
} lb_options;

/* Error codes: negative, libuv style, one space for the whole runtime.
** The table lists them contiguous from -1 down (LB_ERRNO_MIN, the last, is
** counted from it): first what the API returns, then the codes of the
** runtime's parts (JSON scanner, line splitter, schema validator, cache),
** so that no two meanings share a number and lb_strerror / lb_err_name
** name every code. Add a code at the end with the next number. */
#define LB_ERRNO_MAP(XX)                                                    \
  XX(ENOMEM,         -1, "out of memory")                                   \
  XX(EINVAL,         -2, "invalid argument")                                \
  XX(EBUSY,          -3, "runtime is already stepping")                     \
  XX(ELUA,           -4, "Lua error (see lb_last_error)")                   \
  XX(ECANCELED,      -5, "task cancelled")                                  \
  XX(ELOOP,          -6, "event loop error")                                \
  XX(ENOENT,         -7, "file not found")                                  \
  XX(ESTATE,         -8, "operation not valid in this state")               \
  XX(JSKIM_ESYNTAX,  -9, "unexpected character")                            \
  XX(JSKIM_ETRUNC,  -10, "unexpected end of input")                         \
  XX(JSKIM_EUTF8,   -11, "invalid UTF-8 in a string")                       \
  XX(JSKIM_EESCAPE, -12, "invalid escape or lone surrogate")                \
  XX(JSKIM_EDEPTH,  -13, "nesting too deep")                                \
  XX(JSKIM_ETRAIL,  -14, "unexpected bytes after the value")                \
  XX(JSKIM_ECTRL,   -15, "control character in a string")                   \
  XX(LINES_TOOLONG, -16, "line longer than the limit")                      \
  XX(SCHEMA_EJSON,  -17, "invalid JSON")                                    \
  XX(SCHEMA_EREF,   -18, "unresolvable $ref")                               \
  XX(SCHEMA_ELOAD,  -19, "cannot load remote schema")                       \
  XX(SCHEMA_EDEPTH, -20, "validation nested too deep")                      \
  XX(SCHEMA_ELOOP,  -21, "infinite $ref loop")                              \
  XX(CACHE_ESQL,    -22, "the cache's database failed (see the cache's message)") \
  XX(CACHE_EBUSY,   -23, "another runner holds the stream")

enum {
#define LB__ERRDEF(name, code, msg) LB_##name = code,
  LB_ERRNO_MAP(LB__ERRDEF)
#undef LB__ERRDEF
#define LB__ERRCOUNT(name, code, msg) - 1
  LB_ERRNO_MIN = 0 LB_ERRNO_MAP(LB__ERRCOUNT)
#undef LB__ERRCOUNT
};

typedef enum lb_task_state {
  LB_TASK_READY = 0,    /* queued to run at the next step */
  LB_TASK_WAITING,      /* blocked on I/O, a timer, a child or another task */
  LB_TASK_DONE,
  LB_TASK_FAILED,
  LB_TASK_CANCELLED
} lb_task_state;

LB_API const char *lb_version(void);
LB_API const char *lb_strerror(int err);
LB_API const char *lb_err_name(int err);

LB_API void lb_options_init(lb_options *o);
LB_API int  lb_runtime_new(const lb_options *o, lb_runtime **out);
/* Cancels every task, terminates children, closes handles, closes Lua. */
LB_API void lb_runtime_close(lb_runtime *rt);
LB_API const char *lb_last_error(const lb_runtime *rt);

/* Tasks. A task starts at the next step. `out` may be NULL (then the
** runtime frees the task when it ends); otherwise release it with
** lb_task_release(). argv becomes the script's `...` and its `arg` table
** (arg[0] = path or chunkname), which is the task's own: the global `arg`
** is set to it whenever the task runs.
** A handle stays valid until released, also after lb_runtime_close (which
** cancels tasks still running): state, error and result stay readable. */
LB_API int lb_spawn_file(lb_runtime *rt, const char *path, int argc,
                         const char *const *argv, lb_task **out);
LB_API int lb_spawn_string(lb_runtime *rt, const char *src, size_t len,
                           const char *chunkname, int argc,
                           const char *const *argv, lb_task **out);
LB_API lb_task_state lb_task_get_state(const lb_task *t);
/* Error text (message and traceback) of a failed task, else NULL. */
LB_API const char *lb_task_error(const lb_task *t);
/* The return values of a done task as a JSON array ("[42,\"x\",null]"),
** *len set when len is not NULL. NULL when the task is not done or a value
** has no JSON form (lb_last_error says which). Valid until released. */
LB_API const char *lb_task_result(lb_task *t, size_t *len);
/* Called once when the task ends (done, failed or cancelled), from lb_step
** or lb_runtime_close, with the data given here (at once if it has ended
** already). It may read and release the task, not step the runtime. */
typedef void (*lb_task_cb)(lb_task *t, void *data);
LB_API void lb_task_on_end(lb_task *t, lb_task_cb cb, void *data);
LB_API int  lb_task_cancel(lb_task *t);
LB_API void lb_task_release(lb_task *t);

/* Driving. lb_run blocks until no task is left (LB_LOOP_OWN/EXTERNAL).
** Returns 0, or LB_ELUA when a task failed. */
LB_API int lb_run(lb_runtime *rt);
/* Polls I/O for at most timeout_ms (-1 = until something happens, 0 =
** never block), then resumes ready tasks until none is ready or budget_us
** microseconds are spent (0 = no budget; a task over budget is paused at
** its next instruction check and resumed at the next step).
** Returns 1 while tasks remain, 0 when none is left, <0 on error. */
LB_API int lb_step(lb_runtime *rt, int timeout_ms, uint32_t budget_us);
LB_API int lb_alive(const lb_runtime *rt);
/* LB_LOOP_EXTERNAL/OWN: an fd that becomes readable when lb_step has
** I/O to handle, and the ms until lb_step is due (0 = now, -1 = no timer). */
LB_API int lb_backend_fd(const lb_runtime *rt);
LB_API int lb_backend_timeout(const lb_runtime *rt);
/* Async-signal-safe: cancels all running tasks at the next opportunity
** (children get SIGTERM, then SIGKILL after the grace period). */
LB_API void lb_interrupt(lb_runtime *rt);

/* The Lua module (airbyte.so, or linked in): require "airbyte" in a host's
** own Lua 5.4 state. It makes a runtime for that state, closed with it. */
LB_API int luaopen_airbyte(struct lua_State *L);

/* Escape hatches. */
LB_API struct lua_State *lb_lua(lb_runtime *rt);
LB_API struct uv_loop_s *lb_loop(lb_runtime *rt);

#ifdef __cplusplus
}
#endif
#endif

/*
** proc.h - child processes: uv_spawn, stdio pipes, line framing, timeouts,
** graceful termination, exit status. The struct is malloc'd apart from any
** Lua object because libuv decides when its handles are free (close
** callbacks); it lives in rt->procs until every handle is closed and the
** Lua side has let go.
*/
#ifndef LB_PROC_H
#define LB_PROC_H

#include <stdint.h>
#include "lb_internal.h"
#include "lines.h"

#define LB_PROC_TAIL 40           /* last log lines kept for error messages */
#define LB_PROC_TAIL_LINE 1024    /* each one cut at this many bytes */

typedef enum lb_proc_timeout { LB_TIMEOUT_NONE = 0, LB_TIMEOUT_IDLE, LB_TIMEOUT_OVERALL } lb_proc_timeout;

/* struct lb_proc is opaque outside proc.c: the accessors at the end read it. */

/* What a child printed, counted by proc.c (stderr, bytes, log lines it
** writes itself) and by the readers of its stdout (lines taken, lines that
** were no protocol message, lines over the limit). */
typedef struct lb_proc_stats {
  uint64_t stderr_lines, log_lines, stdout_lines, stdout_bytes, too_long_lines;
} lb_proc_stats;


typedef struct lb_proc_opts {
  const char *file;              /* argv[0] when NULL */
  const char *const *argv;       /* NULL-terminated */
  const char *const *env;        /* NULL-terminated "K=V", NULL = inherit */
  const char *cwd;
  const char *name;
  const char *log_path;          /* append logs here, NULL = keep only the tail */
  size_t      max_line;          /* 0 = 64 MiB */
  uint64_t    idle_timeout_ms;   /* 0 = none */
  uint64_t    timeout_ms;        /* 0 = none */
  int         pipe_stdin;        /* 0 = stdin is /dev/null */
  const char *const *secrets;    /* NULL-terminated values the runtime masks from now on */
} lb_proc_opts;

/* 0, or a negative libuv error code with a message in err. */
int  lb__proc_spawn(lb_runtime *rt, const lb_proc_opts *o, lb_proc **out,
                    char *err, size_t errlen);
/* Start reading stdout again after backpressure stopped it. */
void lb__proc_want_output(lb_proc *p);
/* SIGTERM now, SIGKILL after the runtime's grace period (force: SIGKILL now). */
void lb__proc_terminate(lb_proc *p, int force);
int  lb__proc_kill(lb_proc *p, int signum);
void lb__proc_close_stdin(lb_proc *p);
/* Writes what it can now; returns bytes taken (the rest must be retried
** after waiting), or a negative libuv error. Below the 1 MiB mark it takes
** everything; at the mark it takes nothing (wait for the write waiter). */
ssize_t lb__proc_write(lb_proc *p, const char *data, size_t len);
int  lb__proc_write_blocked(const lb_proc *p);
/* A line for the log file and the tail kept for error messages. */
void lb__proc_log_line(lb_proc *p, const char *prefix, const char *line, size_t len);
/* A LOG message: its level and text go to the log file and the tail. */
struct lb_msg;
void lb__proc_log_message(lb_proc *p, const struct lb_msg *m);
/* The Lua object is gone: terminate if running, free once closed. */
void lb__proc_release(lb_proc *p);
/* "exit code 3", "killed by signal 9 (SIGKILL)", "still running" */
void lb__proc_describe_exit(const lb_proc *p, char *buf, size_t len);
/* Why a connector's output ended early, for every reader of it (the Lua
** binding, the pump): "connector 'x' timed out: no output for 300 ms",
** "reading the output of connector 'x' failed: ..."; 0 (buf untouched)
** when it simply ended. Returns 1 and, in *code, "timeout" or libuv's
** error name. */
int  lb__proc_output_failure(const lb_proc *p, char *buf, size_t len, const char **code);
/* "writing to connector 'x' failed: it stopped reading its input (broken
** pipe)" for a write that failed with err (a libuv code). */
void lb__proc_write_failure(const lb_proc *p, int err, char *buf, size_t len);

/* --- accessors ---------------------------------------------------------------- */

const char *lb__proc_name(const lb_proc *p);          /* the connector's name */
int   lb__proc_running(const lb_proc *p);
pid_t lb__proc_pid(const lb_proc *p);                  /* 0 before it started */
int   lb__proc_has_stdin(const lb_proc *p);            /* spawned with pipe_stdin */
int   lb__proc_output_ended(const lb_proc *p);         /* stdout reached EOF */
int   lb__proc_write_error(const lb_proc *p);          /* libuv code of a failed write, or 0 */
lb_proc_timeout lb__proc_timed_out(const lb_proc *p);
const char *lb__proc_log_path(const lb_proc *p);       /* NULL: only the tail is kept */
/* The stdout line buffer the readers take lines from (lines.h). */
lb_lines *lb__proc_output(lb_proc *p);
lb_proc_stats *lb__proc_stats(lb_proc *p);
/* The task woken when output arrives, when the stdin queue drains below
** its mark, or when the child has exited (NULL: none waits). */
typedef enum lb_proc_wait { LB_PROC_WAIT_OUTPUT, LB_PROC_WAIT_WRITE, LB_PROC_WAIT_EXIT } lb_proc_wait;
void  lb__proc_set_waiter(lb_proc *p, lb_proc_wait which, lb_task *t);
/* 1 with the exit status and the terminating signal (0: none) once the
** child has exited and its stderr is drained into the log and the tail;
** else 0. */
int   lb__proc_exit_status(const lb_proc *p, int64_t *status, int *signum);
/* The tail of log lines kept for error messages, oldest first; returns
** how many. */
int   lb__proc_tail(const lb_proc *p, const char *lines[LB_PROC_TAIL]);

#endif

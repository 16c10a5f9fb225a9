/*
** reap.h - ending a child without the host's help: once the runtime
** decides a child must go (a cancelled task, a timeout, close), a thread
** of its own sends SIGKILL after the grace period and reaps it, so neither
** the escalation nor the reaping waits for the host's next lb_step.
*/
#ifndef LB_REAP_H
#define LB_REAP_H

#include <sys/types.h>
#include <uv.h>

typedef struct lb_reaper lb_reaper;

/* Called on the loop's thread once the child is reaped and the reaper is
** gone: term_signal is 0 when it exited by itself with exit_status. */
typedef void (*lb_reap_cb)(void *data, int64_t exit_status, int term_signal);

/* Takes over `pid`, which libuv must no longer watch (its uv_process_t
** closed first, or libuv would waitpid it too). Sends first_signal to the
** child's process group now, SIGKILL after grace_ms if it has not exited
** (first_signal SIGKILL: no grace). 0, or a negative libuv error (nothing
** was sent then). */
int  lb__reap_start(uv_loop_t *loop, pid_t pid, int first_signal, uint32_t grace_ms,
                    lb_reap_cb cb, void *data, lb_reaper **out);
/* SIGKILL now instead of at the end of the grace period. */
void lb__reap_hurry(lb_reaper *r);
/* A signal to the child while it is not yet reaped (0 or UV_ESRCH). */
int  lb__reap_signal(lb_reaper *r, int signum);

#endif

/*
** reap.c - a thread per child being ended (see reap.h). libuv reaps
** children from its loop, which runs only when the host steps; a child
** the runtime has given up on must not wait for that: it would linger as
** <defunct>, and one that ignores SIGTERM would never get its SIGKILL.
**
** The thread waits for the exit without reaping (waitid WNOWAIT, or a
** pidfd with the grace period as poll timeout), so the pid and its process
** group stay the child's while signals may still be sent to them; the
** mutex makes "not reaped yet" and a signal one step.
*/
#define _GNU_SOURCE 1
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include "reap.h"

struct lb_reaper {
  uv_async_t      async;      /* the thread's word to the loop */
  pthread_t       thread;
  int             threaded;   /* thread started (else reaped on the loop's thread) */
  pid_t           pid;
  uint32_t        grace_ms;
  int             pidfd;      /* -1 without pidfd_open (Linux < 5.3) */
  int             wakefd;     /* eventfd: lb__reap_hurry */
  pthread_mutex_t lock;
  int             reaped;     /* under lock: the pid is no longer the child's */
  atomic_int      done;
  int             status;     /* waitpid's */
  lb_reap_cb      cb;
  void           *data;
};

static void signal_group(pid_t pid, int signum) {
  /* the child leads its own process group (UV_PROCESS_DETACHED) */
  if (kill(-pid, signum) != 0) (void)kill(pid, signum);
}

/* 1 once the child has exited (not reaped), 0 when the grace period ends
** or lb__reap_hurry asks first. */
static int exited_within(lb_reaper *r, uint32_t ms) {
  struct pollfd fds[2];
  uint64_t deadline = uv_hrtime() + (uint64_t)ms * 1000000u;
  fds[0].fd = r->wakefd;
  fds[0].events = POLLIN;
  fds[1].fd = r->pidfd;       /* poll ignores a negative fd */
  fds[1].events = POLLIN;
  for (;;) {
    siginfo_t si;
    uint64_t now = uv_hrtime();
    int wait_ms;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)r->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid != 0)
      return 1;
    if (now >= deadline) return 0;
    wait_ms = (int)((deadline - now) / 1000000u) + 1;
    if (r->pidfd < 0 && wait_ms > 5) wait_ms = 5;   /* no pidfd: look again soon */
    if (poll(fds, 2, wait_ms) > 0 && (fds[0].revents & POLLIN)) return 0;
  }
}

static void *reaper_main(void *arg) {
  lb_reaper *r = arg;
  siginfo_t si;
  int status = 0;
  if (r->grace_ms > 0 && !exited_within(r, r->grace_ms)) {
    pthread_mutex_lock(&r->lock);
    signal_group(r->pid, SIGKILL);
    pthread_mutex_unlock(&r->lock);
  }
  while (waitid(P_PID, (id_t)r->pid, &si, WEXITED | WNOWAIT) != 0 && errno == EINTR) {}
  pthread_mutex_lock(&r->lock);
  while (waitpid(r->pid, &status, 0) < 0 && errno == EINTR) {}
  r->reaped = 1;
  pthread_mutex_unlock(&r->lock);
  r->status = status;
  atomic_store(&r->done, 1);
  uv_async_send(&r->async);
  return NULL;
}

static void on_closed(uv_handle_t *h) {
  lb_reaper *r = h->data;
  int st = r->status;
  lb_reap_cb cb = r->cb;
  void *data = r->data;
  pthread_mutex_destroy(&r->lock);
  free(r);
  if (WIFSIGNALED(st)) cb(data, 0, WTERMSIG(st));
  else cb(data, WIFEXITED(st) ? WEXITSTATUS(st) : 0, 0);
}

static void on_async(uv_async_t *h) {
  lb_reaper *r = h->data;
  if (!atomic_load(&r->done)) return;
  if (r->threaded) pthread_join(r->thread, NULL);
  if (r->pidfd >= 0) close(r->pidfd);
  close(r->wakefd);
  uv_close((uv_handle_t *)&r->async, on_closed);
}

int lb__reap_start(uv_loop_t *loop, pid_t pid, int first_signal, uint32_t grace_ms,
                   lb_reap_cb cb, void *data, lb_reaper **out) {
  lb_reaper *r = calloc(1, sizeof *r);
  int rc;
  *out = NULL;
  if (r == NULL) return UV_ENOMEM;
  r->pid = pid;
  r->grace_ms = first_signal == SIGKILL ? 0 : grace_ms;
  r->cb = cb;
  r->data = data;
  r->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (r->wakefd < 0) { rc = uv_translate_sys_error(errno); free(r); return rc; }
  if ((rc = uv_async_init(loop, &r->async, on_async)) < 0) {
    close(r->wakefd);
    free(r);
    return rc;
  }
  r->async.data = r;
  pthread_mutex_init(&r->lock, NULL);
  /* opened before any signal, while the pid is surely the child's */
  r->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  signal_group(pid, first_signal);
  if (pthread_create(&r->thread, NULL, reaper_main, r) == 0) {
    r->threaded = 1;
  } else {
    /* no thread to spare: end it now, SIGKILL takes no grace */
    int status = 0;
    signal_group(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    r->reaped = 1;
    r->status = status;
    atomic_store(&r->done, 1);
    uv_async_send(&r->async);
  }
  *out = r;
  return 0;
}

void lb__reap_hurry(lb_reaper *r) {
  uint64_t one = 1;
  if (write(r->wakefd, &one, sizeof one) < 0) { /* already asked: the count is full */ }
}

int lb__reap_signal(lb_reaper *r, int signum) {
  int rc = 0;
  pthread_mutex_lock(&r->lock);
  if (r->reaped || kill(r->pid, signum) != 0) rc = UV_ESRCH;
  pthread_mutex_unlock(&r->lock);
  return rc;
}

/*
** proc.c - child processes (see proc.h). Callbacks here only move bytes,
** record what happened and wake the waiting task: no Lua runs in them.
*/
#define _GNU_SOURCE 1   /* F_SETPIPE_SZ */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include "mask.h"
#include "proc.h"
#include "protocol.h"
#include "reap.h"

#define WRITE_QUEUE_MAX (1024 * 1024)
#define STDERR_MAX_LINE (64 * 1024)

/* Opaque outside this file: the others use the accessors of proc.h. */
struct lb_proc {
  lb_runtime   *rt;
  lb_proc      *prev, *next;     /* rt->procs */
  char         *name;            /* the connector's name, in every message */
  uv_process_t  process;
  uv_pipe_t     in, out, err;
  uv_timer_t    timer;           /* idle / overall timeout */
  struct lb_reaper *reaper;      /* ends the child once terminated (reap.h) */
  int           open_handles;
  int           lua_gone;        /* the Lua object was collected or closed */
  lb_task_link  link;            /* in the cleanup chain of the task that started it */
  /* stdout */
  lb_lines      outbuf;
  int           out_reading, out_eof;
  int           out_error;       /* libuv error code of a failed read */
  size_t        high_water;      /* stop reading above this many buffered bytes */
  lb_task      *out_waiter;
  /* stderr */
  lb_lines      errbuf;
  int           err_eof;
  /* stdin */
  int           has_stdin, stdin_closed;
  int           write_error;     /* libuv error code of a failed write */
  lb_task      *write_waiter;
  /* exit */
  int           running;
  int           exited;
  int64_t       exit_status;
  int           term_signal;
  int           kill_sent;       /* 0, SIGTERM or SIGKILL */
  pid_t         pid;
  lb_task      *exit_waiter;
  /* timeouts */
  uint64_t      idle_timeout_ms, timeout_ms, started_ms, last_output_ms;
  lb_proc_timeout timed_out;
  /* logs: non-protocol stdout lines, LOG messages, stderr */
  int           log_fd;
  char         *log_path;
  char         *tail[LB_PROC_TAIL];
  int           tail_next, tail_count;
  lb_proc_stats stats;
};

typedef struct write_req {
  uv_write_t req;
  lb_proc *p;
  char data[1];
} write_req;

static char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static void wake(lb_task **slot) {
  lb_task *t = *slot;
  if (t) {
    *slot = NULL;
    lb__wake(t);
  }
}

static void wake_all(lb_proc *p) {
  wake(&p->out_waiter);
  wake(&p->exit_waiter);
  wake(&p->write_waiter);
}

static void maybe_free(lb_proc *p) {
  lb_runtime *rt = p->rt;
  int i;
  if (p->open_handles > 0 || !p->lua_gone) return;
  lb__task_unlink(&p->link);
  if (p->prev) p->prev->next = p->next;
  else if (rt->procs == p) rt->procs = p->next;
  if (p->next) p->next->prev = p->prev;
  lb_lines_free(&p->outbuf);
  lb_lines_free(&p->errbuf);
  for (i = 0; i < LB_PROC_TAIL; i++) free(p->tail[i]);
  if (p->log_fd >= 0) close(p->log_fd);
  free(p->log_path);
  free(p->name);
  free(p);
}

static void on_closed(uv_handle_t *h) {
  lb_proc *p = h->data;
  p->open_handles--;
  maybe_free(p);
}

static void close_handle(uv_handle_t *h) {
  if (!uv_is_closing(h)) uv_close(h, on_closed);
}

/* --- logs ------------------------------------------------------------------ */

void lb__proc_log_line(lb_proc *p, const char *prefix, const char *line, size_t len) {
  size_t plen = strlen(prefix), keep, mlen;
  char *masked = NULL, *slot;
  /* masked before it is kept anywhere; without memory for the masked
  ** copy the line is not kept at all */
  int rc = lb__mask(p->rt->masker, line, len, &masked, &mlen);
  if (rc < 0) { line = LB_MASK_TEXT " (a line that could not be masked)"; len = strlen(line); }
  else if (rc > 0) { line = masked; len = mlen; }
  if (p->log_fd >= 0) {
    /* one write keeps lines whole when several writers append */
    char small[4096];
    size_t total = plen + len + 1;
    char *buf = total <= sizeof small ? small : malloc(total);
    if (buf) {
      memcpy(buf, prefix, plen);
      memcpy(buf + plen, line, len);
      buf[total - 1] = '\n';
      if (write(p->log_fd, buf, total) < 0) { /* a full disk must not stop the sync */ }
      if (buf != small) free(buf);
    }
  }
  keep = plen + len;
  if (keep > LB_PROC_TAIL_LINE) keep = LB_PROC_TAIL_LINE;
  slot = realloc(p->tail[p->tail_next], keep + 1);
  if (slot != NULL) {
    if (keep <= plen) memcpy(slot, prefix, keep);
    else {
      memcpy(slot, prefix, plen);
      memcpy(slot + plen, line, keep - plen);
    }
    slot[keep] = '\0';
    p->tail[p->tail_next] = slot;
    p->tail_next = (p->tail_next + 1) % LB_PROC_TAIL;
    if (p->tail_count < LB_PROC_TAIL) p->tail_count++;
  }
  free(masked);
}

void lb__proc_log_message(lb_proc *p, const lb_msg *m) {
  lb_jval level, message;
  char lv[16] = "LOG", buf[1024], prefix[32];
  size_t n;
  if (lb_jobj_find(&m->payload, "level", 5, &level) && level.type == LB_JSTRING &&
      level.n - 2 < sizeof lv)
    lv[lb_jstr_decode(&level, lv, sizeof lv - 1)] = '\0';
  snprintf(prefix, sizeof prefix, "[%s] ", lv);
  if (lb_jobj_find(&m->payload, "message", 7, &message) && message.type == LB_JSTRING) {
    /* the whole message: a cut through a secret would show its first half */
    char *big = message.n - 2 > sizeof buf ? malloc(message.n - 2) : NULL;
    n = big ? lb_jstr_decode(&message, big, message.n - 2) : lb_jstr_decode(&message, buf, sizeof buf);
    if (n > sizeof buf && !big) n = sizeof buf;
    lb__proc_log_line(p, prefix, big ? big : buf, n);
    free(big);
  }
  p->stats.log_lines++;
}

/* --- reading ------------------------------------------------------------- */

/* libuv's read buffer: the free room of a line buffer. */
static void alloc_lines(lb_lines *b, uv_buf_t *buf) {
  size_t len;
  char *base = lb_lines_reserve(b, &len);
  buf->base = base;
  buf->len = base ? len : 0;    /* 0 makes libuv report UV_ENOBUFS */
}

static void alloc_out(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  alloc_lines(&((lb_proc *)h->data)->outbuf, buf);
}

static void on_out(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  lb_proc *p = s->data;
  (void)buf;
  if (n > 0) {
    lb_lines_commit(&p->outbuf, (size_t)n);
    p->stats.stdout_bytes += (uint64_t)n;
    p->last_output_ms = uv_now(p->rt->loop);
    /* a step with a budget reads no further ahead than it can parse */
    if (lb_lines_pending(&p->outbuf) > (p->rt->deadline ? 256 * 1024 : p->high_water)) {
      uv_read_stop(s);            /* backpressure: the child blocks on its pipe */
      p->out_reading = 0;
    }
  } else if (n < 0) {
    if (n != UV_EOF) p->out_error = (int)n;
    p->out_eof = 1;
    p->outbuf.eof = 1;
    p->out_reading = 0;
    uv_read_stop(s);
    close_handle((uv_handle_t *)s);
  }
  if (n != 0) wake(&p->out_waiter);
}

void lb__proc_want_output(lb_proc *p) {
  if (!p->out_eof && !p->out_reading && !uv_is_closing((uv_handle_t *)&p->out)) {
    if (uv_read_start((uv_stream_t *)&p->out, alloc_out, on_out) == 0)
      p->out_reading = 1;
  }
}

static void alloc_err(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  alloc_lines(&((lb_proc *)h->data)->errbuf, buf);
}

static void on_err(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  lb_proc *p = s->data;
  const char *line;
  size_t len;
  (void)buf;
  if (n > 0) {
    lb_lines_commit(&p->errbuf, (size_t)n);
    p->last_output_ms = uv_now(p->rt->loop);
  } else if (n < 0) {
    p->err_eof = 1;
    p->errbuf.eof = 1;
    uv_read_stop(s);
    close_handle((uv_handle_t *)s);
    wake(&p->exit_waiter);
  }
  /* stderr never waits for a reader: lines go to the log as they come,
  ** so a child flooding stderr costs disk, never memory. */
  while (lb_lines_next(&p->errbuf, &line, &len) == LB_LINES_OK) {
    p->stats.stderr_lines++;
    lb__proc_log_line(p, "[stderr] ", line, len);
  }
}

/* --- exit and termination -------------------------------------------------- */

/* After the exit, output still in the pipes is read; but a grandchild
** that inherited stdout/stderr must not keep us waiting for an EOF that
** may never come. After LINGER_MS with no new byte, the pipes are done. */
#define LINGER_MS 1000

static void on_linger(uv_timer_t *h) {
  lb_proc *p = h->data;
  uint64_t now = uv_now(p->rt->loop);
  if (now - p->last_output_ms < LINGER_MS && !(p->out_eof && p->err_eof)) {
    uv_timer_start(&p->timer, on_linger, LINGER_MS, 0);
    return;
  }
  if (!p->err_eof) {
    p->err_eof = 1;
    p->errbuf.eof = 1;
    uv_read_stop((uv_stream_t *)&p->err);
    close_handle((uv_handle_t *)&p->err);
  }
  if (!p->out_eof) {
    p->out_eof = 1;
    p->outbuf.eof = 1;
    p->out_reading = 0;
    uv_read_stop((uv_stream_t *)&p->out);
    close_handle((uv_handle_t *)&p->out);
  }
  close_handle((uv_handle_t *)&p->timer);
  wake_all(p);
}

/* The child is gone (libuv's exit callback, or the reaper's). */
static void exited(lb_proc *p, int64_t status, int signum) {
  p->running = 0;
  p->exited = 1;
  p->exit_status = status;
  p->term_signal = signum;
  close_handle((uv_handle_t *)&p->process);
  if (p->lua_gone) {                 /* nobody reads: close everything */
    close_handle((uv_handle_t *)&p->out);
    close_handle((uv_handle_t *)&p->err);
    close_handle((uv_handle_t *)&p->timer);
  } else if (p->out_eof && p->err_eof) {
    close_handle((uv_handle_t *)&p->timer);
  } else {
    uv_timer_start(&p->timer, on_linger, LINGER_MS, 0);
  }
  if (p->has_stdin) {
    /* a writer still waiting must learn that nobody will read its data */
    if (!p->stdin_closed && p->write_error == 0) p->write_error = UV_EPIPE;
    close_handle((uv_handle_t *)&p->in);
  }
  wake_all(p);
}

static void on_exit_cb(uv_process_t *proc, int64_t status, int signum) {
  exited(proc->data, status, signum);
}

static void on_reaped(void *data, int64_t status, int signum) {
  lb_proc *p = data;
  p->reaper = NULL;
  p->open_handles--;                 /* the reaper counted as one */
  exited(p, status, signum);
  maybe_free(p);
}

/* Terminating hands the child to a reaper (reap.h): libuv stops watching
** it, and the SIGKILL after the grace period and the reaping happen on
** time whether or not the host steps. Children run in their own process
** group (UV_PROCESS_DETACHED makes them session leaders), so the signals
** reach the connector and whatever it started: a shell wrapper's
** children, a Python interpreter, docker run. */
void lb__proc_terminate(lb_proc *p, int force) {
  int first = force ? SIGKILL : SIGTERM;
  if (!p->running) return;
  if (p->reaper) {
    if (force && p->kill_sent != SIGKILL) {
      lb__reap_hurry(p->reaper);
      p->kill_sent = SIGKILL;
    }
    return;
  }
  /* closing the process handle is what makes libuv forget the pid */
  close_handle((uv_handle_t *)&p->process);
  if (lb__reap_start(p->rt->loop, p->pid, first, p->rt->kill_grace_ms, on_reaped, p,
                     &p->reaper) == 0) {
    p->open_handles++;
  } else {
    /* no memory for a reaper: end it here (SIGKILL is quick) */
    int st = 0;
    if (kill(-p->pid, SIGKILL) != 0) (void)kill(p->pid, SIGKILL);
    while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR) {}
    exited(p, WIFEXITED(st) ? WEXITSTATUS(st) : 0, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  }
  p->kill_sent = first;
}

int lb__proc_kill(lb_proc *p, int signum) {
  if (!p->running) return UV_ESRCH;
  if (p->reaper) return lb__reap_signal(p->reaper, signum);
  return uv_process_kill(&p->process, signum);
}

static void arm_timer(lb_proc *p);

static void on_timer(uv_timer_t *h) {
  lb_proc *p = h->data;
  uint64_t now = uv_now(p->rt->loop);
  if (!p->running) return;   /* the linger phase owns the timer now */
  if (p->timeout_ms && now - p->started_ms >= p->timeout_ms)
    p->timed_out = LB_TIMEOUT_OVERALL;
  else if (p->idle_timeout_ms && now - p->last_output_ms >= p->idle_timeout_ms)
    p->timed_out = LB_TIMEOUT_IDLE;
  if (p->timed_out) {
    lb__proc_terminate(p, 0);
    wake_all(p);
    return;
  }
  arm_timer(p);
}

static void arm_timer(lb_proc *p) {
  uint64_t now = uv_now(p->rt->loop), due = UINT64_MAX;
  if (p->timeout_ms) due = p->started_ms + p->timeout_ms;
  if (p->idle_timeout_ms && p->last_output_ms + p->idle_timeout_ms < due)
    due = p->last_output_ms + p->idle_timeout_ms;
  if (due == UINT64_MAX) return;
  uv_timer_start(&p->timer, on_timer, due > now ? due - now : 0, 0);
}

void lb__proc_describe_exit(const lb_proc *p, char *buf, size_t len) {
  if (!p->exited) snprintf(buf, len, "still running");
  else if (p->term_signal)
    snprintf(buf, len, "killed by signal %d (%s)", p->term_signal,
             p->term_signal == SIGKILL ? "SIGKILL" : p->term_signal == SIGTERM ? "SIGTERM" :
             p->term_signal == SIGSEGV ? "SIGSEGV" : p->term_signal == SIGABRT ? "SIGABRT" :
             p->term_signal == SIGINT ? "SIGINT" : "signal");
  else snprintf(buf, len, "exit code %lld", (long long)p->exit_status);
}

int lb__proc_output_failure(const lb_proc *p, char *buf, size_t len, const char **code) {
  if (p->timed_out) {
    if (p->timed_out == LB_TIMEOUT_IDLE)
      snprintf(buf, len, "connector '%s' timed out: no output for %llu ms", p->name,
               (unsigned long long)p->idle_timeout_ms);
    else
      snprintf(buf, len, "connector '%s' timed out: still running after %llu ms", p->name,
               (unsigned long long)p->timeout_ms);
    *code = "timeout";
    return 1;
  }
  if (p->out_error) {
    snprintf(buf, len, "reading the output of connector '%s' failed: %s", p->name,
             uv_strerror(p->out_error));
    *code = uv_err_name(p->out_error);
    return 1;
  }
  return 0;
}

void lb__proc_write_failure(const lb_proc *p, int err, char *buf, size_t len) {
  snprintf(buf, len, "writing to connector '%s' failed: %s", p->name,
           err == UV_EPIPE ? "it stopped reading its input (broken pipe)" : uv_strerror(err));
}

/* --- writing --------------------------------------------------------------- */

static void on_written(uv_write_t *req, int status) {
  write_req *w = (write_req *)req;
  lb_proc *p = w->p;
  if (status < 0 && status != UV_ECANCELED && p->write_error == 0) p->write_error = status;
  free(w);
  if (p->write_waiter &&
      (p->write_error || uv_stream_get_write_queue_size((uv_stream_t *)&p->in) < WRITE_QUEUE_MAX / 2))
    wake(&p->write_waiter);
}

int lb__proc_write_blocked(const lb_proc *p) {
  return uv_stream_get_write_queue_size((const uv_stream_t *)&p->in) >= WRITE_QUEUE_MAX;
}

ssize_t lb__proc_write(lb_proc *p, const char *data, size_t len) {
  uv_buf_t b;
  size_t queued;
  int rc;
  write_req *w;
  size_t done = 0;
  if (!p->has_stdin || p->stdin_closed) return UV_EPIPE;
  if (p->write_error) return p->write_error;
  queued = uv_stream_get_write_queue_size((uv_stream_t *)&p->in);
  if (queued == 0) {              /* nothing queued: try the fast path */
    b = uv_buf_init((char *)data, (unsigned)(len > 0x40000000 ? 0x40000000 : len));
    rc = uv_try_write((uv_stream_t *)&p->in, &b, 1);
    if (rc >= 0) done = (size_t)rc;
    else if (rc != UV_EAGAIN) { p->write_error = rc; return rc; }
    if (done == len) return (ssize_t)done;
  }
  /* Above the mark the caller waits; below it everything is taken, so a
  ** line is never split across waits (the queue may exceed the mark by
  ** one write). */
  if (queued >= WRITE_QUEUE_MAX) return (ssize_t)done;
  len -= done;
  w = malloc(sizeof *w + len);
  if (w == NULL) return done ? (ssize_t)done : UV_ENOMEM;
  w->p = p;
  memcpy(w->data, data + done, len);
  b = uv_buf_init(w->data, (unsigned)len);
  rc = uv_write(&w->req, (uv_stream_t *)&p->in, &b, 1, on_written);
  if (rc < 0) {
    free(w);
    p->write_error = rc;
    return done ? (ssize_t)done : rc;
  }
  return (ssize_t)(done + len);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  lb_proc *p = req->data;
  (void)status;
  free(req);
  close_handle((uv_handle_t *)&p->in);
}

void lb__proc_close_stdin(lb_proc *p) {
  uv_shutdown_t *req;
  if (!p->has_stdin || p->stdin_closed) return;
  p->stdin_closed = 1;
  if (uv_is_closing((uv_handle_t *)&p->in)) return;
  req = malloc(sizeof *req);
  if (req) {
    req->data = p;
    if (uv_shutdown(req, (uv_stream_t *)&p->in, on_shutdown) == 0) return;
    free(req);
  }
  close_handle((uv_handle_t *)&p->in);
}

/* --- spawn ----------------------------------------------------------------- */

static void task_ended(lb_task_link *l, int cancelled);

/* The connector's stdout is a pipe of one read's size (libuv reads 64 KiB
** at a time), not the socket pair UV_CREATE_PIPE would make, whose send
** buffer lets a connector run some 200 KiB ahead. What a connector may
** write before it blocks is how long it can hold a CPU once woken, and the
** kernel wakes it on the CPU of the host thread that read from it: with a
** frame budget, that is a frame (bench_embed: the hook run's worst step
** 3.6-8.5 ms with the socket, 4.2-6.6 ms with a 1 MiB pipe, 3.3-4.7 ms
** with this one, at the same throughput). */
#define OUTPUT_PIPE_BYTES (64 * 1024)

static int open_output_pipe(uv_pipe_t *out, uv_file *child_end) {
  uv_file fd[2];
  int rc = uv_pipe(fd, UV_NONBLOCK_PIPE, 0);   /* both ends close-on-exec */
  if (rc < 0) return rc;
  (void)fcntl(fd[0], F_SETPIPE_SZ, OUTPUT_PIPE_BYTES);   /* the default, unless tuned */
  if ((rc = uv_pipe_open(out, fd[0])) < 0) {
    close(fd[0]);
    close(fd[1]);
    return rc;
  }
  *child_end = fd[1];
  return 0;
}

int lb__proc_spawn(lb_runtime *rt, const lb_proc_opts *o, lb_proc **out,
                   char *err, size_t errlen) {
  uv_process_options_t po;
  uv_stdio_container_t stdio[3];
  lb_proc *p = calloc(1, sizeof *p);
  uv_file child_out = -1;
  int rc;
  *out = NULL;
  if (p == NULL) { snprintf(err, errlen, "out of memory"); return UV_ENOMEM; }
  p->rt = rt;
  p->log_fd = -1;
  p->name = xstrdup(o->name ? o->name : o->argv[0]);
  if (o->log_path) {
    p->log_path = xstrdup(o->log_path);
    p->log_fd = open(o->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (p->log_fd < 0)
      lb__log(rt, 1, "connector '%s': cannot open log file '%s': %s (logs kept in memory only)",
              p->name, o->log_path, strerror(errno));
  }
  if (o->secrets) {                  /* the runtime masks them from now on */
    const char *const *sec;
    for (sec = o->secrets; *sec; sec++) (void)lb__secret_add(rt, *sec, strlen(*sec));
  }
  lb_lines_init(&p->outbuf, o->max_line, 0);
  lb_lines_init(&p->errbuf, STDERR_MAX_LINE, 1);
  p->high_water = 4 * 1024 * 1024;
  p->idle_timeout_ms = o->idle_timeout_ms;
  p->timeout_ms = o->timeout_ms;
  p->has_stdin = o->pipe_stdin;
  if (rt->current) lb__task_link(rt->current, &p->link, task_ended);

  uv_pipe_init(rt->loop, &p->out, 0);
  uv_pipe_init(rt->loop, &p->err, 0);
  uv_timer_init(rt->loop, &p->timer);
  p->open_handles = 3;
  if (p->has_stdin) { uv_pipe_init(rt->loop, &p->in, 0); p->open_handles++; }
  p->out.data = p->err.data = p->in.data = p->timer.data = p;
  p->process.data = p;

  memset(&po, 0, sizeof po);
  po.file = o->file ? o->file : o->argv[0];
  po.args = (char **)o->argv;
  po.env = (char **)o->env;
  po.cwd = o->cwd;
  po.exit_cb = on_exit_cb;
  po.flags = UV_PROCESS_DETACHED;   /* own process group: see lb__proc_terminate */
  po.stdio = stdio;
  po.stdio_count = 3;
  if (p->has_stdin) {
    stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
    stdio[0].data.stream = (uv_stream_t *)&p->in;
  } else {
    stdio[0].flags = UV_IGNORE;   /* /dev/null */
  }
  stdio[1].flags = UV_INHERIT_FD;  /* open_output_pipe's end, below */
  stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[2].data.stream = (uv_stream_t *)&p->err;

  /* link first: close callbacks find it in the list */
  p->next = rt->procs;
  if (rt->procs) rt->procs->prev = p;
  rt->procs = p;

  if ((rc = open_output_pipe(&p->out, &child_out)) < 0) {
    snprintf(err, errlen, "cannot start connector '%s' (%s): no pipe for its output: %s",
             p->name, po.file, uv_strerror(rc));
  } else {
    lb_cpus host_cpus;
    int lent = lb__background_lend(&rt->background_cpus, &host_cpus);
    stdio[1].data.fd = child_out;
    rc = uv_spawn(rt->loop, &p->process, &po);
    if (lent) lb__background_restore(&host_cpus);
    else if (rc == 0) lb__background_process(p->process.pid, &rt->background_cpus);
    close(child_out);             /* the child has its copy */
    if (rc < 0) {
      snprintf(err, errlen, "cannot start connector '%s' (%s): %s", p->name, po.file,
               uv_strerror(rc));
      /* uv_spawn initialised the process handle even on failure */
      p->open_handles++;
      close_handle((uv_handle_t *)&p->process);
    }
  }
  if (rc < 0) {
    p->lua_gone = 1;
    close_handle((uv_handle_t *)&p->out);
    close_handle((uv_handle_t *)&p->err);
    close_handle((uv_handle_t *)&p->timer);
    if (p->has_stdin) close_handle((uv_handle_t *)&p->in);
    return rc;
  }
  p->open_handles++;              /* the process handle */
  p->running = 1;
  p->pid = p->process.pid;
  p->started_ms = p->last_output_ms = uv_now(rt->loop);
  lb__proc_want_output(p);
  uv_read_start((uv_stream_t *)&p->err, alloc_err, on_err);
  arm_timer(p);
  *out = p;
  return 0;
}

void lb__proc_release(lb_proc *p) {
  if (p->lua_gone) return;
  p->lua_gone = 1;
  p->out_waiter = p->exit_waiter = p->write_waiter = NULL;
  if (p->running) lb__proc_terminate(p, p->rt->closing);
  if (!p->out_eof) {                /* nobody will read it any more */
    uv_read_stop((uv_stream_t *)&p->out);
    close_handle((uv_handle_t *)&p->out);
  }
  if (p->has_stdin) close_handle((uv_handle_t *)&p->in);
  if (!p->running) {
    close_handle((uv_handle_t *)&p->err);
    close_handle((uv_handle_t *)&p->timer);
  }
  maybe_free(p);
}

int lb__procs_running(lb_runtime *rt) {
  lb_proc *p;
  int n = 0;
  for (p = rt->procs; p; p = p->next)
    if (p->running) n++;
  return n;
}

/* --- runtime-wide ---------------------------------------------------------- */

void lb__procs_terminate_all(lb_runtime *rt, int force) {
  lb_proc *p, *n;
  for (p = rt->procs; p; p = n) {
    n = p->next;
    lb__proc_terminate(p, force);
    if (force) lb__proc_release(p);   /* may free p */
  }
}

/* A cancelled task's children are terminated; an ended task's are kept (a
** process object may outlive its task), no longer linked to it. */
static void task_ended(lb_task_link *l, int cancelled) {
  lb_proc *p = (lb_proc *)(void *)((char *)l - offsetof(lb_proc, link));
  if (cancelled) lb__proc_terminate(p, 0);
}

/* --- accessors (proc.h): the struct is this file's ---------------------------- */

const char *lb__proc_name(const lb_proc *p) { return p->name; }
int lb__proc_running(const lb_proc *p) { return p->running; }
pid_t lb__proc_pid(const lb_proc *p) { return p->running || p->exited ? p->pid : 0; }
int lb__proc_has_stdin(const lb_proc *p) { return p->has_stdin; }
int lb__proc_output_ended(const lb_proc *p) { return p->out_eof; }
int lb__proc_write_error(const lb_proc *p) { return p->write_error; }
lb_proc_timeout lb__proc_timed_out(const lb_proc *p) { return p->timed_out; }
const char *lb__proc_log_path(const lb_proc *p) { return p->log_path; }
lb_lines *lb__proc_output(lb_proc *p) { return &p->outbuf; }
lb_proc_stats *lb__proc_stats(lb_proc *p) { return &p->stats; }

void lb__proc_set_waiter(lb_proc *p, lb_proc_wait which, lb_task *t) {
  switch (which) {
    case LB_PROC_WAIT_OUTPUT: p->out_waiter = t; break;
    case LB_PROC_WAIT_WRITE: p->write_waiter = t; break;
    case LB_PROC_WAIT_EXIT: p->exit_waiter = t; break;
  }
}

int lb__proc_exit_status(const lb_proc *p, int64_t *status, int *signum) {
  if (!(p->exited && p->err_eof)) return 0;
  *status = p->exit_status;
  *signum = p->term_signal;
  return 1;
}

int lb__proc_tail(const lb_proc *p, const char *lines[LB_PROC_TAIL]) {
  int i, start = (p->tail_next - p->tail_count + LB_PROC_TAIL) % LB_PROC_TAIL;
  for (i = 0; i < p->tail_count; i++) lines[i] = p->tail[(start + i) % LB_PROC_TAIL];
  return p->tail_count;
}

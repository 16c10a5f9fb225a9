/*
** epoll_host.c - an nginx-style host: it owns an epoll loop with a 5 ms
** timer of its own, watches the runtime's backend fd and calls lb_step()
** when it is readable or when the runtime's timer is due, with a budget of
** at most 2 ms that ends 1 ms before its own next tick (timerfd_gettime),
** so its own timer keeps its ticks while a connector runs. Build:
**   cc examples/hosts/epoll_host.c $(pkg-config --cflags --libs luabyte) -o epoll_host
** usage: epoll_host [--pin] [LUA_CODE]   (prints the ticks and the missed ones at the end)
** --pin: as an nginx worker with worker_cpu_affinity, the host pins its
** thread to the last CPU and gives luabyte's own work (the cache's threads,
** the connectors) the others with lb_options.background_cpus, so nothing of
** the sync competes with the host's ticks for its CPU.
*/
#define _GNU_SOURCE 1      /* sched_setaffinity */
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include "luabyte.h"

/* The step's budget: 2 ms, or what is left before the host's next tick
** less 1 ms for the host itself, never under 0.1 ms (a step always makes
** some progress). */
static uint32_t budget_before_tick(int tfd) {
  struct itimerspec left;
  long long us;
  if (timerfd_gettime(tfd, &left) != 0) return 2000;
  us = (long long)left.it_value.tv_sec * 1000000 + left.it_value.tv_nsec / 1000 - 1000;
  return us > 2000 ? 2000 : us < 100 ? 100 : (uint32_t)us;
}

int main(int argc, char **argv) {
  lb_options o;
  lb_runtime *rt;
  lb_task *task;
  struct epoll_event ev, out[2];
  struct itimerspec every5ms = {{0, 5000000}, {0, 5000000}};
  uint64_t ticks = 0, missed = 0;
  int ep, tfd, rc, i, n;
  const char *script =
    "local p = require('airbyte.process').spawn{argv = {'echo', 'hello from a child'}}\n"
    "print(p:read_line())\n";

  char others[32];
  if (argc > 1 && strcmp(argv[1], "--pin") == 0) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t last;
    argc--, argv++;
    if (ncpu < 2) {
      fprintf(stderr, "--pin needs 2 CPUs, this machine has %ld\n", ncpu);
      return 2;
    }
    CPU_ZERO(&last);
    CPU_SET((int)ncpu - 1, &last);
    if (sched_setaffinity(0, sizeof last, &last) != 0) { perror("sched_setaffinity"); return 2; }
    snprintf(others, sizeof others, ncpu > 2 ? "0-%ld" : "0", ncpu - 2);
  } else {
    others[0] = 0;
  }
  if (argc > 1) script = argv[1];
  lb_options_init(&o);
  o.loop_mode = LB_LOOP_EXTERNAL;
  if (others[0]) o.background_cpus = others;
  if ((rc = lb_runtime_new(&o, &rt)) < 0) {
    fprintf(stderr, "lb_runtime_new: %s\n", lb_strerror(rc));
    return 1;
  }
  if (lb_spawn_string(rt, script, strlen(script), "=host", 0, NULL, &task) < 0) {
    fprintf(stderr, "%s\n", lb_last_error(rt));
    return 1;
  }
  ep = epoll_create1(0);
  ev.events = EPOLLIN;
  ev.data.fd = lb_backend_fd(rt);
  epoll_ctl(ep, EPOLL_CTL_ADD, ev.data.fd, &ev);
  tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);      /* the host's own timer */
  timerfd_settime(tfd, 0, &every5ms, NULL);
  ev.data.fd = tfd;
  epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
  do {
    n = epoll_wait(ep, out, 2, lb_backend_timeout(rt));     /* the host's own wait */
    for (i = 0; i < n; i++) {
      uint64_t expirations;
      if (out[i].data.fd == tfd && read(tfd, &expirations, sizeof expirations) == sizeof expirations) {
        ticks += expirations;
        missed += expirations - 1;   /* more than one: the host was late */
      }
    }
    rc = lb_step(rt, 0, budget_before_tick(tfd));          /* never into the next tick */
  } while (rc > 0);
  if (lb_task_get_state(task) == LB_TASK_FAILED) fprintf(stderr, "%s\n", lb_task_error(task));
  rc = lb_task_get_state(task) == LB_TASK_DONE ? 0 : 1;
  printf("host timer: %llu ticks, %llu missed\n", (unsigned long long)ticks,
         (unsigned long long)missed);
  lb_task_release(task);
  lb_runtime_close(rt);
  close(tfd);
  close(ep);
  return rc;
}

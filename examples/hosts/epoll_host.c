/*
** epoll_host.c - an nginx-style host: it owns an epoll loop, watches the
** runtime's backend fd and calls lb_step() when it is readable or when the
** runtime's timer is due. Build:
**   cc examples/hosts/epoll_host.c $(pkg-config --cflags --libs luabyte) -o epoll_host
*/
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include "luabyte.h"

int main(int argc, char **argv) {
  lb_options o;
  lb_runtime *rt;
  lb_task *task;
  struct epoll_event ev, out;
  int ep, rc;
  const char *script = argc > 1 ? argv[1] :
    "local p = require('airbyte.process').spawn{argv = {'echo', 'hello from a child'}}\n"
    "print(p:read_line())\n";

  lb_options_init(&o);
  o.loop_mode = LB_LOOP_EXTERNAL;
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
  do {
    epoll_wait(ep, &out, 1, lb_backend_timeout(rt));   /* the host's own wait */
    rc = lb_step(rt, 0, 0);
  } while (rc > 0);
  if (lb_task_get_state(task) == LB_TASK_FAILED) fprintf(stderr, "%s\n", lb_task_error(task));
  rc = lb_task_get_state(task) == LB_TASK_DONE ? 0 : 1;
  lb_task_release(task);
  lb_runtime_close(rt);
  return rc;
}

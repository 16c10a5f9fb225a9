/*
** uv_shared_host.c - a host that already runs libuv (as Neovim or a Node-
** style server does) hands its loop to the runtime; tasks run from a
** uv_check handle after each poll. The host keeps calling uv_run.
**   cc examples/hosts/uv_shared_host.c $(pkg-config --cflags --libs luabyte libuv) -o uv_shared_host
*/
#include <stdio.h>
#include <string.h>
#include <uv.h>
#include "luabyte.h"

int main(void) {
  uv_loop_t loop;
  lb_options o;
  lb_runtime *rt;
  lb_task *task;
  const char *script =
    "local core = require 'airbyte.core'\n"
    "core.sleep(20)\n"
    "print(require('airbyte.process').spawn{argv = {'date', '-u'}}:read_line())\n";
  uv_loop_init(&loop);
  lb_options_init(&o);
  o.loop_mode = LB_LOOP_SHARED;
  o.loop = &loop;
  if (lb_runtime_new(&o, &rt) < 0) return 1;
  if (lb_spawn_string(rt, script, strlen(script), "=shared", 0, NULL, &task) < 0) return 1;
  while (lb_task_get_state(task) < LB_TASK_DONE) uv_run(&loop, UV_RUN_ONCE);
  if (lb_task_get_state(task) == LB_TASK_FAILED) fprintf(stderr, "%s\n", lb_task_error(task));
  lb_task_release(task);
  lb_runtime_close(rt);
  uv_loop_close(&loop);
  return 0;
}

/*
** game_loop.c - a frame loop: the runtime gets at most 2 ms of each 16 ms
** frame and never blocks it, while a connector streams records.
**   cc examples/hosts/game_loop.c $(pkg-config --cflags --libs luabyte) -o game_loop
*/
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "luabyte.h"

int main(void) {
  lb_options o;
  lb_runtime *rt;
  lb_task *task;
  int frame = 0;
  const char *script =
    "local p = require('airbyte.process').spawn{argv = {'seq', '200000'}}\n"
    "local n = 0\n"
    "while p:read_line() do n = n + 1 end\n"
    "print(('read %d lines'):format(n))\n";
  lb_options_init(&o);
  if (lb_runtime_new(&o, &rt) < 0) return 1;
  if (lb_spawn_string(rt, script, strlen(script), "=game", 0, NULL, &task) < 0) return 1;
  while (lb_step(rt, 0, 2000) > 0) {   /* 2 ms budget, never blocks */
    frame++;
    usleep(14000);                      /* render, input, physics ... */
  }
  printf("done after %d frames\n", frame);
  lb_task_release(task);
  lb_runtime_close(rt);
  return 0;
}

/*
** sync_host.c - a third-party C host built from the install alone:
**   cc examples/hosts/sync_host.c $(pkg-config --cflags --libs luabyte) \
**      -Wl,-rpath,$(pkg-config --variable=libdir luabyte) -o sync_host
**   cc examples/hosts/sync_host.c $(pkg-config --static --cflags --libs luabyte-static) -o sync_host
** It syncs source-faker into a SQLite cache in DIR (argv[1], default
** ./.cache) with the runtime's messages in its own log, learns the end of
** the task from a callback and reads the task's result as JSON.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "luabyte.h"

static const char *const level_names[] = {"error", "warn", "info"};

static void host_log(void *ud, int level, const char *msg, size_t len) {
  int *lines = ud;
  (*lines)++;
  printf("[luabyte %s] %.*s\n", level >= 0 && level <= 2 ? level_names[level] : "?",
         (int)len, msg);
}

static void on_end(lb_task *t, void *data) {
  int *ended = data;
  *ended = 1;
  if (lb_task_get_state(t) != LB_TASK_DONE)
    fprintf(stderr, "sync failed: %s\n", lb_task_error(t));
}

int main(int argc, char **argv) {
  static const char script[] =
    "local dir, count = ...\n"
    "local ab = require 'airbyte'\n"
    "local source = ab.get_source('source-faker', {config = {count = tonumber(count), seed = 1}})\n"
    "source:select_streams({'users'})\n"
    "local result = source:read({cache = ab.new_local_cache{cache_name = 'host', cache_dir = dir}})\n"
    "return #result['users'], result.processed_records\n";
  const char *args[2];
  lb_options o;
  lb_runtime *rt;
  lb_task *task;
  int rc, ended = 0, log_lines = 0;
  const char *json;

  args[0] = argc > 1 ? argv[1] : "./.cache";
  args[1] = argc > 2 ? argv[2] : "1000";
  lb_options_init(&o);
  o.log = host_log;
  o.log_ud = &log_lines;
  o.exe_path = getenv("LUABYTE_EXE");      /* NULL: found from the install prefix */
  if ((rc = lb_runtime_new(&o, &rt)) < 0) {
    fprintf(stderr, "lb_runtime_new: %s\n", lb_strerror(rc));
    return 1;
  }
  if ((rc = lb_spawn_string(rt, script, sizeof script - 1, "=sync", 2, args, &task)) < 0) {
    fprintf(stderr, "%s\n", lb_last_error(rt));
    lb_runtime_close(rt);
    return 1;
  }
  lb_task_on_end(task, on_end, &ended);
  while (!ended && lb_step(rt, -1, 0) >= 0) {}   /* or once a frame with a budget */
  json = lb_task_result(task, NULL);
  if (json) printf("result %s\n", json);          /* [users cached, records read] */
  rc = json && log_lines > 0 ? 0 : 1;
  lb_task_release(task);
  lb_runtime_close(rt);
  return rc;
}

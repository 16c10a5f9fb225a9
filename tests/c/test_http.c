/* test_http.c - airbyte.http from a host's point of view: a request made
** outside any task (it drives the runtime's loop), the shared-loop mode, two
** runtimes in one process, and closing a runtime with a request in flight
** (ASan checks that nothing leaks). The server is the scripted test server
** tests/fixtures/http/server.py, run as a real process. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>
#include <uv.h>
#include "lbtest.h"
#include "luabyte.h"

static FILE *server;
static int server_pid, server_port;
static char routes_path[256], log_path[256];

static void start_server(void) {
  const char *src = getenv("LB_SOURCE_DIR");
  char cmd[1024];
  FILE *f;
  snprintf(routes_path, sizeof routes_path, "/tmp/lb-http-%d.json", (int)getpid());
  snprintf(log_path, sizeof log_path, "/tmp/lb-http-%d.jsonl", (int)getpid());
  f = fopen(routes_path, "w");
  fputs("[{\"path\": \"/hello\", \"responses\": [{\"body\": \"hi\"}]},"
        " {\"path\": \"/hang\", \"responses\": [{\"delay_ms\": 20000, \"body\": \"late\"}]}]", f);
  fclose(f);
  snprintf(cmd, sizeof cmd, "sh -c 'echo $$; exec python3 %s/tests/fixtures/http/server.py %s %s'",
           src ? src : ".", routes_path, log_path);
  server = popen(cmd, "r");
  CHECK(server != NULL);
  CHECK_EQ_INT(fscanf(server, "%d %d", &server_pid, &server_port), 2);
}

static void stop_server(void);

/* Started by the first case that needs it, stopped at exit. */
static void need_server(void) {
  if (server) return;
  start_server();
  atexit(stop_server);
}

static void stop_server(void) {
  if (server_pid > 0) kill(server_pid, SIGTERM);
  if (server) pclose(server);
  remove(routes_path);
  remove(log_path);
}

/* Runs chunk in the runtime's main state, outside any task; returns the
** global RESULT as a string (static buffer) or the error. */
static const char *run_chunk(lb_runtime *rt, const char *fmt) {
  static char out[512];
  char src[2048];
  lua_State *L = lb_lua(rt);
  need_server();
  snprintf(src, sizeof src, fmt, server_port);
  if (luaL_dostring(L, src) != LUA_OK) {
    snprintf(out, sizeof out, "error: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return out;
  }
  lua_getglobal(L, "RESULT");
  snprintf(out, sizeof out, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "(nil)");
  lua_pop(L, 1);
  return out;
}

static void outside_task(void) {
  lb_runtime *rt = NULL;
  CHECK_EQ_INT(lb_runtime_new(NULL, &rt), 0);
  CHECK_EQ_STR(run_chunk(rt,
    "local http = require 'airbyte.http'\n"
    "local r = http.request{ url = 'http://127.0.0.1:%d/hello' }\n"
    "RESULT = r.status .. ' ' .. r.body\n"), "200 hi");
  CHECK_EQ_STR(run_chunk(rt,
    "local http = require 'airbyte.http'\n"
    "local ok, e = pcall(http.request, { url = 'http://127.0.0.1:%d/hang', timeout_ms = 200 })\n"
    "RESULT = tostring(ok) .. ' ' .. e.reason\n"), "false timeout");
  lb_runtime_close(rt);
}

static void close_in_flight(void) {
  lb_runtime *rt = NULL;
  lb_task *t = NULL;
  char src[256];
  int i;
  need_server();
  CHECK_EQ_INT(lb_runtime_new(NULL, &rt), 0);
  snprintf(src, sizeof src, "require('airbyte.http').request{ url = 'http://127.0.0.1:%d/hang' }",
           server_port);
  CHECK_EQ_INT(lb_spawn_string(rt, src, strlen(src), "=hang", &t), 0);
  for (i = 0; i < 10; i++) lb_step(rt, 20, 0);
  CHECK_EQ_INT(lb_task_get_state(t), LB_TASK_WAITING);
  lb_task_release(t);
  lb_runtime_close(rt);              /* must neither hang nor leak */
}

static void two_runtimes(void) {
  lb_runtime *a = NULL, *b = NULL;
  lb_task *ta = NULL, *tb = NULL;
  char src[256];
  int i;
  need_server();
  CHECK_EQ_INT(lb_runtime_new(NULL, &a), 0);
  CHECK_EQ_INT(lb_runtime_new(NULL, &b), 0);
  snprintf(src, sizeof src, "local r = require('airbyte.http').request{ url = 'http://127.0.0.1:%d/hello' }"
                            " assert(r.body == 'hi')", server_port);
  CHECK_EQ_INT(lb_spawn_string(a, src, strlen(src), "=a", &ta), 0);
  CHECK_EQ_INT(lb_spawn_string(b, src, strlen(src), "=b", &tb), 0);
  for (i = 0; i < 2000 && (lb_alive(a) || lb_alive(b)); i++) {
    lb_step(a, 5, 0);
    lb_step(b, 5, 0);
  }
  CHECK_EQ_INT(lb_task_get_state(ta), LB_TASK_DONE);
  CHECK_EQ_INT(lb_task_get_state(tb), LB_TASK_DONE);
  lb_task_release(ta);
  lb_task_release(tb);
  lb_runtime_close(a);
  lb_runtime_close(b);
}

static void shared_loop(void) {
  uv_loop_t loop;
  lb_options o;
  lb_runtime *rt = NULL;
  lb_task *t = NULL;
  char src[256];
  int i;
  need_server();
  uv_loop_init(&loop);
  lb_options_init(&o);
  o.loop_mode = LB_LOOP_SHARED;
  o.loop = &loop;
  CHECK_EQ_INT(lb_runtime_new(&o, &rt), 0);
  /* outside a task the host's loop is not ours to run */
  CHECK(strstr(run_chunk(rt, "require('airbyte.http').request{ url = 'http://127.0.0.1:%d/hello' }"),
               "cannot drive a loop it does not own") != NULL);
  snprintf(src, sizeof src, "local r = require('airbyte.http').request{ url = 'http://127.0.0.1:%d/hello' }"
                            " assert(r.body == 'hi')", server_port);
  CHECK_EQ_INT(lb_spawn_string(rt, src, strlen(src), "=shared", &t), 0);
  for (i = 0; i < 2000 && lb_task_get_state(t) < LB_TASK_DONE; i++) uv_run(&loop, UV_RUN_ONCE);
  CHECK_EQ_INT(lb_task_get_state(t), LB_TASK_DONE);
  lb_task_release(t);
  lb_runtime_close(rt);
  while (uv_loop_close(&loop) == UV_EBUSY) uv_run(&loop, UV_RUN_NOWAIT);
}

TEST_LIST {
  {"a request outside any task drives the runtime's loop", outside_task},
  {"closing a runtime with a request in flight", close_in_flight},
  {"two runtimes in one process, each with its own requests", two_runtimes},
  {"the shared-loop mode: in a task on the host's loop; outside one it raises", shared_loop},
  {NULL, NULL}
};

LBTEST_MAIN

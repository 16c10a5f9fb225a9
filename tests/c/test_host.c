/* test_host.c - the host contract, as a C host meets it: task results and
** end callbacks, the log sink, the memory limit, per-task `arg`, task
** handles after close, SIGPIPE left to the host, luv in the state. */
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <uv.h>
#include "lbtest.h"
#include "luabyte.h"

static lb_runtime *new_rt(lb_options *o) {
  lb_options d;
  lb_runtime *rt = NULL;
  if (o == NULL) { lb_options_init(&d); o = &d; }
  CHECK_EQ_INT(lb_runtime_new(o, &rt), 0);
  return rt;
}

static lb_task *spawn_args(lb_runtime *rt, const char *src, int argc, const char *const *argv) {
  lb_task *t = NULL;
  int rc = lb_spawn_string(rt, src, strlen(src), "=host", argc, argv, &t);
  if (rc != 0) fprintf(stderr, "  spawn: %s\n", lb_last_error(rt));
  CHECK_EQ_INT(rc, 0);
  return t;
}

/* lb_run, then the task's result (its error printed when it failed). */
static void run_expecting(lb_runtime *rt, lb_task *t, const char *json) {
  CHECK_EQ_INT(lb_run(rt), 0);
  if (lb_task_error(t)) fprintf(stderr, "  %s\n", lb_task_error(t));
  CHECK_EQ_STR(lb_task_result(t, NULL), json);
}

static void results_are_json(void) {
  static const char *const argv[] = {"7", "x"};
  lb_runtime *rt = new_rt(NULL);
  lb_task *t = spawn_args(rt, "local a, b = ...\n"
                              "return tonumber(a) * 6, b, nil, {k = {1, 2}}, arg[0]\n", 2, argv);
  lb_task *bad = spawn_args(rt, "return function() end\n", 0, NULL);
  size_t len = 0;
  CHECK(lb_task_result(t, &len) == NULL);          /* not run yet */
  CHECK_EQ_INT(lb_run(rt), 0);
  CHECK_EQ_STR(lb_task_result(t, &len), "[42,\"x\",null,{\"k\":[1,2]},\"=host\"]");
  CHECK_EQ_INT(len, strlen("[42,\"x\",null,{\"k\":[1,2]},\"=host\"]"));
  CHECK(lb_task_result(bad, NULL) == NULL);
  CHECK(strstr(lb_last_error(rt), "task result") != NULL);
  lb_task_release(t);
  lb_task_release(bad);
  lb_runtime_close(rt);
}

typedef struct ends { int n; lb_task_state last; lb_task *released; const char *result; } ends;

static void on_end(lb_task *t, void *data) {
  ends *e = data;
  e->n++;
  e->last = lb_task_get_state(t);
  e->result = lb_task_result(t, NULL);   /* readable in the callback */
}

static void on_end_release(lb_task *t, void *data) {
  ends *e = data;
  e->n++;
  e->last = lb_task_get_state(t);
  e->released = t;
  lb_task_release(t);                 /* allowed in the callback */
}

static void end_callbacks_carry_data(void) {
  lb_runtime *rt = new_rt(NULL);
  ends a = {0, 0, NULL, NULL}, b = {0, 0, NULL, NULL}, c = {0, 0, NULL, NULL}, d = {0, 0, NULL, NULL};
  lb_task *ta = spawn_args(rt, "require('airbyte.core').sleep(5) return 1\n", 0, NULL);
  lb_task *tb = spawn_args(rt, "error('no')\n", 0, NULL);
  lb_task *tc = spawn_args(rt, "require('airbyte.core').sleep(60000)\n", 0, NULL);
  lb_task *td = spawn_args(rt, "return 2\n", 0, NULL);
  lb_task_on_end(ta, on_end, &a);
  lb_task_on_end(tb, on_end, &b);
  lb_task_on_end(tc, on_end, &c);
  lb_task_on_end(td, on_end_release, &d);
  while (a.n == 0 || b.n == 0 || d.n == 0) lb_step(rt, -1, 0);
  CHECK_EQ_INT(a.n, 1); CHECK_EQ_INT(a.last, LB_TASK_DONE); CHECK_EQ_STR(a.result, "[1]");
  CHECK_EQ_INT(b.n, 1); CHECK_EQ_INT(b.last, LB_TASK_FAILED);
  CHECK_EQ_INT(d.n, 1); CHECK(d.released == td);
  CHECK_EQ_INT(c.n, 0);
  CHECK_EQ_INT(lb_task_cancel(tc), 0);
  CHECK_EQ_INT(c.n, 1); CHECK_EQ_INT(c.last, LB_TASK_CANCELLED);
  a.n = 0;
  lb_task_on_end(ta, on_end, &a);     /* already ended: called at once */
  CHECK_EQ_INT(a.n, 1);
  lb_task_release(ta);
  lb_task_release(tb);
  lb_task_release(tc);
  lb_runtime_close(rt);
}

typedef struct sink { char text[65536]; size_t len; int errors, warns, infos; } sink;

static void log_to(void *ud, int level, const char *msg, size_t len) {
  sink *s = ud;
  if (level == LB_LOG_ERROR) s->errors++;
  if (level == LB_LOG_INFO) s->infos++;
  if (level == LB_LOG_WARN) s->warns++;
  if (s->len + len + 2 < sizeof s->text) {
    memcpy(s->text + s->len, msg, len);
    s->len += len;
    s->text[s->len++] = '\n';
    s->text[s->len] = '\0';
  }
}

static const char *exe(void) {
  static char path[4096];
  const char *dir = getenv("LB_BUILD_DIR");
  snprintf(path, sizeof path, "%s/luabyte", dir ? dir : ".");
  return path;
}

/* The sink gets the runtime's lines with a level (a sync's "Completed"
** summary, a connector's TRACE ERROR, the runtime's own warnings) and
** stderr gets none of them. */
static void log_sink_gets_messages(void) {
  static sink s;
  lb_options o;
  lb_runtime *rt;
  lb_task *t;
  char errpath[] = "/tmp/lb-host-stderr-XXXXXX";
  int errfd = mkstemp(errpath), saved = dup(2);
  const char *srcdir = getenv("LB_SOURCE_DIR");
  char dir[64], crasher[128], src[2048];
  FILE *f;
  snprintf(dir, sizeof dir, "/tmp/lb-host-log-%d", (int)getpid());
  snprintf(crasher, sizeof crasher, "%s/crasher", dir);
  CHECK_EQ_INT(mkdir(dir, 0700), 0);
  f = fopen(crasher, "w");
  fprintf(f, "#!/bin/sh\nexec '%s' '%s/tests/fixtures/connectors/run_connector.lua' crasher \"$@\"\n",
          exe(), srcdir ? srcdir : ".");
  fclose(f);
  chmod(crasher, 0700);
  snprintf(src, sizeof src,
    "local ab = require 'airbyte'\n"
    "local s = ab.get_source('source-faker', {config = {count = 50}})\n"
    "s:select_streams({'users'})\n"
    "s:read({cache = ab.new_local_cache{cache_name = 'log', cache_dir = '%s'}})\n"
    "local c = ab.get_source('source-crasher', {local_executable = '%s',\n"
    "                        config = {records = 1, crash = 'exit'}})\n"
    "c:select_all_streams()\n"
    "local ok = pcall(c.read, c, {cache = ab.new_local_cache{cache_name = 'c', cache_dir = '%s'}})\n"
    "assert(not ok)\n"
    "local p = require('airbyte.process').spawn{argv = {'true'}, log_file = '/nonexistent/dir/x.log'}\n"
    "p:wait()\n"
    "io.stderr:write('warning: par', 'tial ') io.stderr:write('line\\n')\n", dir, crasher, dir);
  memset(&s, 0, sizeof s);
  lb_options_init(&o);
  o.log = log_to;
  o.log_ud = &s;
  o.exe_path = exe();
  rt = new_rt(&o);
  dup2(errfd, 2);
  t = spawn_args(rt, src, 0, NULL);
  CHECK_EQ_INT(lb_run(rt), 0);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  if (lb_task_error(t)) printf("  %s\n", lb_task_error(t));
  CHECK(strstr(s.text, "Completed Read `source-faker`") != NULL);
  CHECK(strstr(s.text, "ERROR: source-crasher") != NULL);
  CHECK(strstr(s.text, "cannot open log file") != NULL);
  CHECK(strstr(s.text, "warning: partial line\n") != NULL);
  CHECK(s.infos > 0);
  CHECK(s.warns >= 2);
  CHECK(s.errors > 0);
  CHECK_EQ_INT(lseek(errfd, 0, SEEK_END), 0);
  if (lbt_failed_checks) printf("  sink got:\n%s", s.text);
  close(errfd);
  unlink(errpath);
  lb_task_release(t);
  lb_runtime_close(rt);
  {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_EQ_INT(system(cmd), 0);
  }
}

/* A memory bomb fails its task with a Lua memory error; the host and the
** next task are fine. */
static void mem_limit_fails_the_task(void) {
  lb_options o;
  lb_runtime *rt;
  lb_task *bomb, *big, *after;
  lb_options_init(&o);
  o.mem_limit = 8u << 20;
  rt = new_rt(&o);
  bomb = spawn_args(rt, "local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1000) .. i end\n", 0, NULL);
  CHECK_EQ_INT(lb_run(rt), LB_ELUA);
  CHECK_EQ_INT(lb_task_get_state(bomb), LB_TASK_FAILED);
  CHECK(lb_task_error(bomb) && strstr(lb_task_error(bomb), "not enough memory"));
  /* one allocation past the limit, asked for by C code (a library's buffer) */
  big = spawn_args(rt, "return #string.rep('x', 64 << 20)\n", 0, NULL);
  CHECK_EQ_INT(lb_run(rt), LB_ELUA);
  CHECK_EQ_INT(lb_task_get_state(big), LB_TASK_FAILED);
  CHECK(lb_task_error(big) && strstr(lb_task_error(big), "not enough memory"));
  after = spawn_args(rt, "return #string.rep('y', 1000000)\n", 0, NULL);
  lb_run(rt);
  CHECK_EQ_STR(lb_task_result(after, NULL), "[1000000]");
  lb_task_release(big);
  lb_task_release(bomb);
  lb_task_release(after);
  lb_runtime_close(rt);
}

/* Two file tasks that run interleaved each see their own `arg`. */
static void file_tasks_keep_their_arg(void) {
  lb_runtime *rt = new_rt(NULL);
  char path[] = "/tmp/lb-host-arg-XXXXXX";
  int fd = mkstemp(path);
  const char *script = "local core = require 'airbyte.core'\n"
                       "local before = arg[1]\n"
                       "core.sleep(10)\n"
                       "return before, arg[1], select(1, ...)\n";
  static const char *const one[] = {"one"}, *const two[] = {"two"};
  lb_task *a = NULL, *b = NULL;
  CHECK_EQ_INT(write(fd, script, strlen(script)), (long)strlen(script));
  close(fd);
  CHECK_EQ_INT(lb_spawn_file(rt, path, 1, one, &a), 0);
  CHECK_EQ_INT(lb_spawn_file(rt, path, 1, two, &b), 0);
  CHECK_EQ_INT(lb_run(rt), 0);
  CHECK_EQ_STR(lb_task_result(a, NULL), "[\"one\",\"one\",\"one\"]");
  CHECK_EQ_STR(lb_task_result(b, NULL), "[\"two\",\"two\",\"two\"]");
  CHECK_EQ_INT(lb_spawn_file(rt, "/nonexistent/x.lua", 0, NULL, NULL), LB_ENOENT);
  unlink(path);
  lb_task_release(a);
  lb_task_release(b);
  lb_runtime_close(rt);
}

/* Handles the host holds stay readable after close (the sanitizer build
** would report a use after free); close cancels what still runs. */
static void handles_outlive_close(void) {
  lb_runtime *rt = new_rt(NULL);
  ends e = {0, 0, NULL, NULL};
  lb_task *done = spawn_args(rt, "return 'fine'\n", 0, NULL);
  lb_task *running = spawn_args(rt, "require('airbyte.core').sleep(60000)\n", 0, NULL);
  lb_task_on_end(running, on_end, &e);
  while (lb_task_get_state(done) != LB_TASK_DONE) lb_step(rt, 0, 0);
  CHECK_EQ_STR(lb_task_result(done, NULL), "[\"fine\"]");
  lb_runtime_close(rt);
  CHECK_EQ_INT(e.n, 1);
  CHECK_EQ_INT(lb_task_get_state(done), LB_TASK_DONE);
  CHECK_EQ_STR(lb_task_result(done, NULL), "[\"fine\"]");
  CHECK_EQ_INT(lb_task_get_state(running), LB_TASK_CANCELLED);
  CHECK(lb_task_error(running) != NULL);
  CHECK_EQ_INT(lb_task_cancel(running), 0);
  lb_task_release(done);
  lb_task_release(running);
}

/* The library leaves SIGPIPE alone, and a child that stops reading does
** not kill a host that keeps the default disposition. */
static void sigpipe_is_the_hosts(void) {
  struct sigaction sa;
  lb_runtime *rt;
  lb_task *t;
  signal(SIGPIPE, SIG_DFL);
  rt = new_rt(NULL);
  CHECK_EQ_INT(sigaction(SIGPIPE, NULL, &sa), 0);
  CHECK(sa.sa_handler == SIG_DFL);
  t = spawn_args(rt,
    "local p = require('airbyte.process').spawn{argv = {'head', '-c', '1'}, stdin = true}\n"
    "local chunk = string.rep('x', 65536)\n"
    "local ok, err\n"
    "for i = 1, 200 do ok, err = p:write(chunk) if not ok then break end end\n"
    "p:wait()\n"
    "return ok == nil and err ~= nil\n", 0, NULL);
  run_expecting(rt, t, "[true]");
  lb_task_release(t);
  lb_runtime_close(rt);
}

/* luv in the runtime's state, on the runtime's loop (luv.h, as Neovim
** does): closing the runtime must not run luv's close callbacks on a
** closed state. */
#ifdef LB_HAVE_LUV
int luaopen_luv(lua_State *L);
void luv_set_loop(lua_State *L, uv_loop_t *loop);
#endif

static void luv_in_the_state_closes_safely(void) {
#ifndef LB_HAVE_LUV
  fprintf(stderr, "  lua-luv (Debian) is not installed: scripts/setup.sh installs it\n");
  CHECK(0);
#else
  lb_runtime *rt = new_rt(NULL);
  lua_State *L = lb_lua(rt);
  lb_task *t;
  luv_set_loop(L, lb_loop(rt));           /* before luaopen_luv, as luv wants */
  luaL_requiref(L, "luv", luaopen_luv, 0);
  lua_pop(L, 1);
  t = spawn_args(rt,
    "local uv = require 'luv'\n"
    "local fired = 0\n"
    "local timer = uv.new_timer()\n"
    "timer:start(1, 1, function() fired = fired + 1 end)\n"
    "KEEP = uv.new_timer()\n"                 /* left open for close to deal with */
    "RUNNING = uv.new_timer()\n"              /* and one still running, with a callback */
    "RUNNING:start(60000, 60000, function() end)\n"
    "while fired < 3 do require('airbyte.core').sleep(2) end\n"
    "timer:stop()\n"
    "return fired >= 3\n", 0, NULL);
  while (lb_task_get_state(t) < LB_TASK_DONE) lb_step(rt, -1, 0);
  if (lb_task_error(t)) fprintf(stderr, "  %s\n", lb_task_error(t));
  CHECK_EQ_STR(lb_task_result(t, NULL), "[true]");
  lb_task_release(t);
  lb_runtime_close(rt);
#endif
}

/* The state letter of /proc/PID/stat, or 0 once the pid is gone (reaped). */
static char proc_state(long pid) {
  char path[64], buf[512], *paren;
  FILE *f;
  size_t n;
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  if ((f = fopen(path, "r")) == NULL) return 0;
  n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  paren = strrchr(buf, ')');
  return paren && paren[1] == ' ' ? paren[2] : '?';
}

static lua_Integer global_int(lb_runtime *rt, const char *name) {
  lua_State *L = lb_lua(rt);
  lua_Integer v;
  lua_getglobal(L, name);
  v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

/* lb_task_cancel, then the host stops stepping (a paused game, a server
** busy elsewhere): the children still get SIGKILL after the grace period
** and are reaped, no <defunct> entry waits for the next step. One child
** dies of SIGTERM, one ignores it. Their exits stay readable in Lua. */
static void cancelled_children_are_reaped_without_steps(void) {
  lb_options o;
  lb_runtime *rt;
  lb_task *t, *later;
  long pids[2];
  int i, tries;
  uint64_t t0;
  lb_options_init(&o);
  o.kill_grace_ms = 200;
  rt = new_rt(&o);
  t = spawn_args(rt,
    "local proc = require 'airbyte.process'\n"
    "P1 = proc.spawn{argv = {'sleep', '60'}}\n"
    "P2 = proc.spawn{argv = {'sh', '-c', 'trap \"\" TERM; exec sleep 60'}}\n"
    "PID1, PID2 = P1:pid(), P2:pid()\n"
    "P1:wait()\n", 0, NULL);
  for (tries = 0; tries < 1000 && lb_task_get_state(t) != LB_TASK_WAITING; tries++)
    lb_step(rt, 10, 0);
  pids[0] = (long)global_int(rt, "PID1");
  pids[1] = (long)global_int(rt, "PID2");
  CHECK(pids[0] > 0 && pids[1] > 0);
  /* the shell has exec'd sleep once it shows as sleep: its TERM is ignored */
  for (tries = 0; tries < 2000; tries++) {
    char path[64], comm[64] = "";
    FILE *f;
    snprintf(path, sizeof path, "/proc/%ld/comm", pids[1]);
    if ((f = fopen(path, "r")) != NULL) { (void)!fgets(comm, sizeof comm, f); fclose(f); }
    if (strncmp(comm, "sleep", 5) == 0) break;
    usleep(5000);
  }
  t0 = uv_hrtime();
  CHECK_EQ_INT(lb_task_cancel(t), 0);
  CHECK_EQ_INT(lb_task_get_state(t), LB_TASK_CANCELLED);
  for (i = 0; i < 2; i++) {
    char st = '?';
    for (tries = 0; tries < 3000 && (st = proc_state(pids[i])) != 0; tries++)
      usleep(5000);                  /* not a single lb_step meanwhile */
    if (st != 0) fprintf(stderr, "  child %ld still there, state %c\n", pids[i], st);
    CHECK(st == 0);
    printf("     child %d gone %.0f ms after the cancel (grace 200 ms)\n", i + 1,
           (uv_hrtime() - t0) / 1e6);
  }
  later = spawn_args(rt,
    "local a, b = P1:wait()\n"
    "local c, d = P2:wait()\n"
    "return a, b, c, d, P2:exit_description()\n", 0, NULL);
  run_expecting(rt, later, "[null,15,null,9,\"killed by signal 9 (SIGKILL)\"]");
  lb_task_release(t);
  lb_task_release(later);
  lb_runtime_close(rt);
}

/* A host's end callback that raises a Lua error outside any pcall. */
static void on_end_raises(lb_task *t, void *data) {
  (void)t;
  luaL_error(lb_lua(data), "host bug in a callback");
}

/* A C host with a Lua state of its own (a game engine's) links the library
** and opens the module in it: the same API as in stock lua5.4, a blocking
** call outside any task runs the loop, ab.step drives spawned tasks, and
** lua_close ends the runtime with the state. */
static void own_state_opens_the_module(void) {
  lua_State *L = luaL_newstate();
  const char *script =
    "local ab = require 'airbyte'\n"
    "local core = require 'airbyte.core'\n"
    "core.sleep(2)\n"                          /* outside any task: runs the loop */
    "local t = ab.spawn(function(a) core.sleep(3) return a * 2 end, 21)\n"
    "local frames = 0\n"
    "while ab.step(0, 2000) do frames = frames + 1 end\n"
    "LEFT = ab.spawn(function() core.sleep(60000) end)\n"   /* still waiting at lua_close */
    "ab.step(0, 0)\n"
    "return t:wait(), frames > 0\n";
  luaL_openlibs(L);
  luaL_requiref(L, "airbyte", luaopen_airbyte, 0);
  lua_pop(L, 1);
  if (luaL_dostring(L, script) != LUA_OK) fprintf(stderr, "  %s\n", lua_tostring(L, -1));
  CHECK_EQ_INT(lua_tointeger(L, -2), 42);
  CHECK(lua_toboolean(L, -1));
  lua_close(L);
}

/* Each entry point that can run a host callback, with a callback that
** raises a Lua error outside any pcall: the error comes back as LB_ELUA
** or in lb_last_error and the log, never as Lua's abort(). Each case runs
** in a child process, so one abort cannot hide the others. */
typedef void (*raising_case)(lb_runtime *rt, sink *s);

static void raising_in_step(lb_runtime *rt, sink *s) {
  lb_task *t = spawn_args(rt, "return 1\n", 0, NULL);
  lb_task_on_end(t, on_end_raises, rt);
  CHECK_EQ_INT(lb_step(rt, 0, 0), LB_ELUA);
  CHECK(strstr(lb_last_error(rt), "host bug in a callback") != NULL);
  CHECK(strstr(s->text, "host bug in a callback") != NULL);
  CHECK_EQ_INT(lb_task_get_state(t), LB_TASK_DONE);
  lb_task_release(t);
}

static void raising_on_end_at_once(lb_runtime *rt, sink *s) {
  lb_task *t = spawn_args(rt, "return 1\n", 0, NULL);
  CHECK_EQ_INT(lb_run(rt), 0);
  lb_task_on_end(t, on_end_raises, rt);          /* ended: runs at once */
  CHECK(strstr(lb_last_error(rt), "host bug in a callback") != NULL);
  CHECK(strstr(s->text, "host bug in a callback") != NULL);
  lb_task_release(t);
}

/* A task waiting in a sleep, with an end callback that raises. */
static lb_task *sleeper_raising_at_end(lb_runtime *rt) {
  lb_task *t = spawn_args(rt, "require('airbyte.core').sleep(60000)\n", 0, NULL);
  lb_task_on_end(t, on_end_raises, rt);
  CHECK_EQ_INT(lb_step(rt, 0, 0), 1);
  return t;
}

static void raising_on_cancel(lb_runtime *rt, sink *s) {
  lb_task *t = sleeper_raising_at_end(rt);
  CHECK_EQ_INT(lb_task_cancel(t), LB_ELUA);
  CHECK_EQ_INT(lb_task_get_state(t), LB_TASK_CANCELLED);
  CHECK(strstr(lb_last_error(rt), "host bug in a callback") != NULL);
  CHECK(strstr(s->text, "host bug in a callback") != NULL);
  lb_task_release(t);
}

static void raising_on_close(lb_runtime *rt, sink *s) {
  lb_task *t = sleeper_raising_at_end(rt);
  lb_runtime_close(rt);                          /* cancels t: its callback raises */
  CHECK_EQ_INT(lb_task_get_state(t), LB_TASK_CANCELLED);
  CHECK(strstr(s->text, "host bug in a callback") != NULL);
  lb_task_release(t);
}

static lb_runtime *sink_rt;

static void log_raises(void *ud, int level, const char *msg, size_t len) {
  log_to(ud, level, msg, len);
  luaL_error(lb_lua(sink_rt), "host bug in the log sink");
}

/* The sink raises on the line the end callback's error is logged with. */
static void raising_on_end_and_in_log(lb_runtime *rt, sink *s) {
  lb_task *t = spawn_args(rt, "return 1\n", 0, NULL);
  (void)s;
  lb_task_on_end(t, on_end_raises, rt);
  CHECK_EQ_INT(lb_step(rt, 0, 0), LB_ELUA);
  CHECK(strstr(lb_last_error(rt), "host bug") != NULL);
  lb_task_release(t);
}

static void run_raising(raising_case fn, lb_log_fn log) {
  pid_t pid;
  int status = 0;
  fflush(stdout);
  fflush(stderr);
  pid = fork();
  if (pid == 0) {
    static sink s;
    lb_options o;
    lb_runtime *rt;
    lb_task *next;
    int closed = fn == raising_on_close;
    lb_options_init(&o);
    o.log = log;
    o.log_ud = &s;
    sink_rt = rt = new_rt(&o);
    fn(rt, &s);
    if (!closed) {             /* the runtime keeps working */
      next = spawn_args(rt, "return 2\n", 0, NULL);
      CHECK_EQ_INT(lb_run(rt), 0);
      CHECK_EQ_STR(lb_task_result(next, NULL), "[2]");
      lb_task_release(next);
      lb_runtime_close(rt);
    }
    fflush(stderr);
    _exit(lbt_failed_checks ? 1 : 0);
  }
  CHECK(pid > 0);
  CHECK(waitpid(pid, &status, 0) == pid);
  if (WIFSIGNALED(status)) fprintf(stderr, "  the host died of signal %d\n", WTERMSIG(status));
  else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fprintf(stderr, "  the host failed its checks\n");
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void lua_errors_never_abort(void) {
  run_raising(raising_in_step, log_to);
  run_raising(raising_on_end_at_once, log_to);
  run_raising(raising_on_cancel, log_to);
  run_raising(raising_on_close, log_to);
  run_raising(raising_on_end_and_in_log, log_raises);
}

TEST_LIST {
  {"results_are_json", results_are_json},
  {"end_callbacks_carry_data", end_callbacks_carry_data},
  {"log_sink_gets_messages", log_sink_gets_messages},
  {"mem_limit_fails_the_task", mem_limit_fails_the_task},
  {"file_tasks_keep_their_arg", file_tasks_keep_their_arg},
  {"handles_outlive_close", handles_outlive_close},
  {"sigpipe_is_the_hosts", sigpipe_is_the_hosts},
  {"luv_in_the_state_closes_safely", luv_in_the_state_closes_safely},
  {"cancelled_children_are_reaped_without_steps", cancelled_children_are_reaped_without_steps},
  {"lua_errors_never_abort", lua_errors_never_abort},
  {"own_state_opens_the_module", own_state_opens_the_module},
  {NULL, NULL}
};
LBTEST_MAIN

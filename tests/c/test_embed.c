/* test_embed.c - hosts that own the loop: an epoll host driving the runtime
** through lb_backend_fd()/lb_backend_timeout()/lb_step(), and a game-style
** frame loop with a fixed budget while a connector streams records. */
#define _GNU_SOURCE 1      /* sched_setaffinity */
#include <sched.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <lua.h>
#include <uv.h>
#include "lbtest.h"
#include "luabyte.h"

#define RECORDS 100000

static char records_path[256];

static void make_records(void) {
  FILE *f;
  int i;
  snprintf(records_path, sizeof records_path, "/tmp/lb-embed-%d.jsonl", (int)getpid());
  f = fopen(records_path, "w");
  for (i = 0; i < RECORDS; i++)
    fprintf(f, "{\"type\":\"RECORD\",\"record\":{\"stream\":\"users\",\"emitted_at\":1700000000000,"
               "\"data\":{\"id\":%d,\"name\":\"user %d\",\"email\":\"u%d@example.com\"}}}\n", i, i, i);
  fclose(f);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* CPU time of this thread: what a step costs the frame, without the time
** the machine spent running other processes (CI shares its cores). */
static double cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The script counts records and spends a little CPU on each. */
static lb_task *spawn_reader(lb_runtime *rt) {
  char src[1024];
  lb_task *t = NULL;
  snprintf(src, sizeof src,
    "local proc = require 'airbyte.process'\n"
    "local p = assert(proc.spawn{argv = {'cat', '%s'}, name = 'cat-source'})\n"
    "local n, sum = 0, 0\n"
    "for msg in p:messages() do\n"
    "  if msg.type == 'RECORD' then n = n + 1; for i = 1, 20 do sum = sum + i end end\n"
    "end\n"
    "assert(p:wait() == 0)\n"
    "COUNT = n\n", records_path);
  CHECK_EQ_INT(lb_spawn_string(rt, src, strlen(src), "=reader", 0, NULL, &t), 0);
  return t;
}

static lua_Integer count(lb_runtime *rt) {
  lua_State *L = lb_lua(rt);
  lua_Integer n;
  lua_getglobal(L, "COUNT");
  n = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return n;
}

static void epoll_host(void) {
  lb_options o;
  lb_runtime *rt = NULL;
  lb_task *t;
  struct epoll_event ev, out;
  int ep, rc, wakeups = 0;
  lb_options_init(&o);
  o.loop_mode = LB_LOOP_EXTERNAL;
  CHECK_EQ_INT(lb_runtime_new(&o, &rt), 0);
  t = spawn_reader(rt);
  ep = epoll_create1(0);
  ev.events = EPOLLIN;
  ev.data.fd = lb_backend_fd(rt);
  CHECK(ev.data.fd >= 0);
  CHECK_EQ_INT(epoll_ctl(ep, EPOLL_CTL_ADD, ev.data.fd, &ev), 0);
  do {
    int timeout = lb_backend_timeout(rt);
    epoll_wait(ep, &out, 1, timeout);   /* the host's own wait */
    wakeups++;
    rc = lb_step(rt, 0, 0);
  } while (rc > 0 && wakeups < 10000000);
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_INT(lb_task_get_state(t), LB_TASK_DONE);
  if (lb_task_error(t)) fprintf(stderr, "  %s\n", lb_task_error(t));
  CHECK_EQ_INT(count(rt), RECORDS);
  close(ep);
  lb_task_release(t);
  lb_runtime_close(rt);
}

static void frame_loop_respects_budget(void) {
  lb_options o;
  lb_runtime *rt = NULL;
  lb_task *t;
  const unsigned budget_us = 2000;
  double worst = 0, worst_wall = 0, total = 0;
  int frames = 0, rc;
  lb_options_init(&o);
  CHECK_EQ_INT(lb_runtime_new(&o, &rt), 0);
  t = spawn_reader(rt);
  do {
    double t0 = cpu_ms(), w0 = now_ms(), dt, dw;
    rc = lb_step(rt, 0, budget_us);      /* never block: a frame must render */
    dt = cpu_ms() - t0;
    dw = now_ms() - w0;
    if (frames > 0 && dt > worst) worst = dt;   /* frame 0 loads modules */
    if (frames > 0 && dw > worst_wall) worst_wall = dw;
    total += dt;
    frames++;
    if (rc > 0) usleep(500);             /* the rest of the frame: render, input */
  } while (rc > 0 && frames < 1000000);
  CHECK_EQ_INT(lb_task_get_state(t), LB_TASK_DONE);
  CHECK_EQ_INT(count(rt), RECORDS);
  CHECK(frames > 10);                    /* the work was spread over frames */
  printf("     frames %d, worst step %.2f ms CPU (%.2f ms wall) for a %.2f ms budget, "
         "runtime time %.0f ms\n", frames, worst, worst_wall, budget_us / 1000.0, total);
  /* A step stops at the first instruction check after the budget: allow
  ** the check interval, one I/O poll and a collector step. Sanitizers make
  ** every allocation and copy several times slower: the timing claim is
  ** the release build's, the sanitized run checks memory safety. */
#if defined(__SANITIZE_ADDRESS__)
  CHECK(worst < budget_us / 1000.0 + 20.0);
#else
  CHECK(worst < budget_us / 1000.0 + 3.0);
#endif
  lb_task_release(t);
  lb_runtime_close(rt);
}

/* The host runs its own libuv loop; the runtime resumes tasks from a
** uv_check handle and never calls uv_run itself. */
static void shared_uv_loop(void) {
  uv_loop_t loop;
  lb_options o;
  lb_runtime *rt = NULL;
  lb_task *t;
  int turns = 0;
  uv_loop_init(&loop);
  lb_options_init(&o);
  o.loop_mode = LB_LOOP_SHARED;
  o.loop = &loop;
  CHECK_EQ_INT(lb_runtime_new(&o, &rt), 0);
  t = spawn_reader(rt);
  while (lb_task_get_state(t) < LB_TASK_DONE && turns < 10000000) {
    uv_run(&loop, UV_RUN_ONCE);
    turns++;
  }
  CHECK_EQ_INT(lb_task_get_state(t), LB_TASK_DONE);
  CHECK_EQ_INT(count(rt), RECORDS);
  CHECK_EQ_INT(lb_run(rt), LB_EINVAL);   /* the host owns the loop */
  lb_task_release(t);
  lb_runtime_close(rt);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

static void setup(void) {
  make_records();
}

static void teardown(void) {
  unlink(records_path);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* A real sync (source-faker into the SQLite cache) with an on_record hook
** that costs CPU, one lb_step(rt, 0, budget) per frame. Steps that work
** stop near the budget: the pump checks the clock after every hooked
** record (it used to check every 512, a hook cannot be paused inside), and
** a record or STATE that would wait for the cache's writer thread goes
** back to the next step. Measured in thread CPU time, and only the median
** of the working steps against twice the budget: a shared machine cannot
** break it, a pump that overruns by hundreds of records does. */
static void sync_with_hook_keeps_budget(void) {
  static double cpu[200000];
  lb_options o;
  lb_runtime *rt = NULL;
  lb_task *t;
  const unsigned budget_us = 2000;
  char exe[512], dir[64];
  const char *build = getenv("LB_BUILD_DIR");
  const char *args[1];
  static const char src[] =
    "local dir = ...\n"
    "local ab = require 'airbyte'\n"
    "local source = ab.get_source('source-faker', {config = {count = 10000, seed = 2}})\n"
    "source:select_streams({'users'})\n"
    "local x = 0\n"
    "local result = source:read({cache = ab.new_local_cache{cache_name = 'budget', cache_dir = dir},\n"
    "  quiet = true, on_record = function(r) for i = 1, 2000 do x = x + i end end})\n"
    "return #result['users']\n";
  int n = 0, working = 0, rc, i;
  snprintf(exe, sizeof exe, "%s/luabyte", build ? build : ".");
  snprintf(dir, sizeof dir, "/tmp/lb-embed-budget-%d", (int)getpid());
  args[0] = dir;
  lb_options_init(&o);
  o.exe_path = exe;
  CHECK_EQ_INT(lb_runtime_new(&o, &rt), 0);
  CHECK_EQ_INT(lb_spawn_string(rt, src, sizeof src - 1, "=budget", 1, args, &t), 0);
  do {
    double t0 = cpu_ms();
    rc = lb_step(rt, 0, budget_us);
    if (n < 200000) cpu[n++] = cpu_ms() - t0;
    if (rc > 0) usleep(200);
  } while (rc > 0);
  if (lb_task_error(t)) fprintf(stderr, "  %s\n", lb_task_error(t));
  CHECK_EQ_STR(lb_task_result(t, NULL), "[10000]");
  /* steps that had work for most of their budget */
  for (i = 1; i < n; i++) if (cpu[i] >= budget_us / 2000.0) cpu[working++] = cpu[i];
  qsort(cpu, (size_t)working, sizeof *cpu, cmp_double);
  CHECK(working > 10);
  if (working > 0) {
    printf("     %d steps, %d working: median %.2f ms CPU for a %.2f ms budget\n", n, working,
           cpu[working / 2], budget_us / 1000.0);
    CHECK(cpu[working / 2] < 2 * budget_us / 1000.0);
  }
  lb_task_release(t);
  lb_runtime_close(rt);
  {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_EQ_INT(system(cmd), 0);
  }
}

/* Costly C work starts only with half the step's budget left: a task that
** has spent more than that in a step and then opens a cache or spawns a
** process hands the rest of the step back, and the open runs at the next
** step. The task spins on thread CPU time (so at least that much wall time
** passed) and starts its spin again when a step ends under it, so the
** open always comes 60% into one step: counts, not timing. */
static void costly_work_waits_for_a_fresh_step(void) {
  lb_options o;
  lb_runtime *rt = NULL;
  lb_task *t;
  lua_State *L;
  char dir[64];
  const char *args[1];
  static const char src[] =
    "local dir = ...\n"
    "local sqlite = require 'airbyte.sqlite'\n"
    "local proc = require 'airbyte.process'\n"
    "local function spin(share)          -- share of one step's budget, in that step\n"
    "  local step, c0 = STEP, os.clock()\n"
    "  while os.clock() - c0 < share * BUDGET_S do\n"
    "    if STEP ~= step then step, c0 = STEP, os.clock() end\n"
    "  end\n"
    "  return STEP\n"
    "end\n"
    "local before = spin(0.6)\n"
    "local db = assert(sqlite.open(dir .. '/c.sqlite'))\n"
    "local opened = STEP\n"
    "before = before .. ',' .. spin(0.6)\n"
    "local p = assert(proc.spawn{argv = {'true'}})\n"
    "local spawned = STEP\n"
    "p:wait()\n"
    "db:close()\n"
    "require('airbyte.core').sleep(1)     -- a fresh step: the open runs at once\n"
    "local small = STEP\n"
    "local db2 = assert(sqlite.open(dir .. '/c.sqlite'))\n"
    "db2:close()\n"
    "return before, opened, spawned, small, STEP\n";
  int steps = 0, rc;
  const char *res;
  snprintf(dir, sizeof dir, "/tmp/lb-embed-costly-%d", (int)getpid());
  CHECK_EQ_INT(mkdir(dir, 0700), 0);
  args[0] = dir;
  lb_options_init(&o);
  CHECK_EQ_INT(lb_runtime_new(&o, &rt), 0);
  L = lb_lua(rt);
  lua_pushnumber(L, 0.05);                 /* a 50 ms budget: room for the 60% spin */
  lua_setglobal(L, "BUDGET_S");
  CHECK_EQ_INT(lb_spawn_string(rt, src, sizeof src - 1, "=costly", 1, args, &t), 0);
  do {
    lua_pushinteger(L, ++steps);
    lua_setglobal(L, "STEP");
    rc = lb_step(rt, 0, 50000);
    if (rc > 0) usleep(100);
  } while (rc > 0 && steps < 100000);
  if (lb_task_error(t)) fprintf(stderr, "  %s\n", lb_task_error(t));
  CHECK_EQ_INT(lb_task_get_state(t), LB_TASK_DONE);
  res = lb_task_result(t, NULL);
  CHECK(res != NULL);
  if (res) {
    long b1, b2, opened, spawned, small, last;
    CHECK_EQ_INT(sscanf(res, "[\"%ld,%ld\",%ld,%ld,%ld,%ld]", &b1, &b2, &opened, &spawned, &small, &last), 6);
    CHECK(opened > b1);                    /* the open waited for a step of its own */
    CHECK(spawned > b2);                   /* and so did the fork */
    CHECK_EQ_INT(last, small);             /* with the budget left, no pause */
  }
  lb_task_release(t);
  lb_runtime_close(rt);
  {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_EQ_INT(system(cmd), 0);
  }
}

/* The machine runs out of memory inside a step (no mem_limit: malloc
** itself fails, under RLIMIT_AS in a forked child): a real sync whose
** on_record hook keeps every record. The task fails with a Lua memory
** error, the host goes on (a next task runs), it never aborts. Then tasks
** that fill the memory to its last small block in a global and end there:
** the scheduler finds no memory to keep their error or results, and they
** still end (they used to stay running forever after Lua's panic). The
** child exits 0 when all of that held, else the code of what did not. */
#if !defined(__SANITIZE_ADDRESS__)
static int oom_child(const char *exe, const char *dir) {
  lb_options o;
  lb_runtime *rt = NULL;
  lb_task *t, *after;
  const char *args[1];
  struct rlimit rl;
  long pages, page = sysconf(_SC_PAGESIZE);
  FILE *f;
  int rc, steps = 0, i;
  static const char src[] =
    "local dir = ...\n"
    "local ab = require 'airbyte'\n"
    "local source = ab.get_source('source-faker', {config = {count = 100000000, seed = 3}})\n"
    "source:select_streams({'users'})\n"
    "local keep = {}\n"
    "source:read({cache = ab.new_local_cache{cache_name = 'oom', cache_dir = dir}, quiet = true,\n"
    "  on_record = function(r)\n"
    "    keep[#keep + 1] = {r, string.rep(r.email, 20)}\n"
    "    if #keep > 500000 then error('no memory limit came') end   -- never the whole machine\n"
    "  end})\n";
  /* fills the memory to the last small block, then fails (or returns): its
  ** end finds no memory for its error, traceback or results */
  static const char hoard_src[] =
    "local fail = ...\n"
    "HOARD = nil collectgarbage()\n"
    "local text = ('m'):rep(100000)       -- the error's text: the traceback needs as much again\n"
    "local err = setmetatable({}, {__tostring = function() return text end})\n"
    "HOARD = {}\n"
    "local cap = 4000000                  -- past it the limit never came: fail, not the machine\n"
    "pcall(function() for i = 1, cap do HOARD[i] = ('x'):rep(100) .. i end end)\n"
    "pcall(function() local last = HOARD for _ = 1, cap do local t = {} last[1] = t last = t end end)\n"
    "pcall(function() local last = HOARD for _ = 1, cap do local t = {} last[2] = t last = t end end)\n"
    "if fail == 'fail' then error(err) end\n"
    "return 'full'\n";
  static const char after_src[] = "local t = {} for i = 1, 1000 do t[i] = ('x'):rep(100) .. i end return #t\n";
  args[0] = dir;
  lb_options_init(&o);
  o.exe_path = exe;
  if (lb_runtime_new(&o, &rt) != 0) return 2;
  if (lb_spawn_string(rt, src, sizeof src - 1, "=oom", 1, args, &t) != 0) return 3;
  /* the modules loaded, the connector started: then the address space stops growing */
  for (; steps < 50; steps++) lb_step(rt, 10, 0);
  f = fopen("/proc/self/statm", "r");
  if (f == NULL || fscanf(f, "%ld", &pages) != 1) return 4;
  fclose(f);
  rl.rlim_cur = rl.rlim_max = (rlim_t)pages * (rlim_t)page +
                              ((rlim_t)(getenv("LB_OOM_MB") ? atoi(getenv("LB_OOM_MB")) : 64) << 20);
  if (setrlimit(RLIMIT_AS, &rl) != 0) return 5;
  do rc = lb_step(rt, 10, 2000); while (rc > 0 && ++steps < 10000000);
  fprintf(stderr, "  oom task: %s\n", lb_task_error(t) ? lb_task_error(t) : "(no error)");
  if (lb_task_get_state(t) != LB_TASK_FAILED) return 6;
  if (lb_task_error(t) == NULL || strstr(lb_task_error(t), "not enough memory") == NULL) return 7;
  if (lb_spawn_string(rt, after_src, sizeof after_src - 1, "=after", 0, NULL, &after) != 0) return 8;
  (void)lb_run(rt);                        /* LB_ELUA: a task failed in this runtime */
  if (lb_task_get_state(after) != LB_TASK_DONE || strcmp(lb_task_result(after, NULL), "[1000]") != 0)
    return 10;
  lb_task_release(after);
  lb_task_release(t);
  /* memory that stays taken when the task ends (a global): its end, the
  ** runtime's own bookkeeping, finds none left */
  for (i = 0; i < 2; i++) {       /* its end fails, its end returns */
    const char *how[1];
    how[0] = i == 0 ? "fail" : "return";
    if (lb_spawn_string(rt, hoard_src, sizeof hoard_src - 1, "=hoard", 1, how, &t) != 0) return 11;
    while (lb_step(rt, 10, 2000) > 0 && ++steps < 10000000) {}
    fprintf(stderr, "  hoard task (%s): %s\n", how[0], lb_task_error(t) ? lb_task_error(t) : "done");
    if (i == 0 && lb_task_get_state(t) != LB_TASK_FAILED) return 12;
    if (lb_task_get_state(t) == LB_TASK_FAILED &&
        (lb_task_error(t) == NULL || strstr(lb_task_error(t), "not enough memory") == NULL)) return 13;
    if (lb_task_get_state(t) != LB_TASK_FAILED && lb_task_get_state(t) != LB_TASK_DONE) return 14;
    lb_task_release(t);
  }
  lb_runtime_close(rt);
  return 0;
}

#endif

/* lb_options.background_cpus: a list that does not parse fails
** lb_runtime_new with the reason in the log; a host pinned to its last CPU
** that names the others gets its connector there. */
static char bg_log[512];
static void bg_sink(void *ud, int level, const char *msg, size_t len) {
  (void)ud;
  (void)level;
  snprintf(bg_log, sizeof bg_log, "%.*s", (int)len, msg);
}

static void background_cpus_keep_a_pinned_host_free(void) {
  static const char src[] =
    "local p = assert(require('airbyte.process').spawn{argv = {'sh', '-c',\n"
    "  'read x; grep Cpus_allowed_list /proc/self/status'}, stdin = true})\n"
    "assert(p:write('go\\n'))\n"   /* the child reports after the pin */
    "p:close_stdin()\n"
    "local line = p:read_line()\n"
    "p:wait()\n"
    "return line\n";
  lb_options o;
  lb_runtime *rt;
  lb_task *t;
  cpu_set_t before, last;
  char others[32], want[64];
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  lb_options_init(&o);
  o.background_cpus = "3-1";
  o.log = bg_sink;
  bg_log[0] = 0;
  CHECK_EQ_INT(lb_runtime_new(&o, &rt), LB_EINVAL);
  CHECK(strstr(bg_log, "background_cpus '3-1' is not a CPU list") != NULL);
  if (ncpu < 2) {
    printf("     skipped: needs 2 CPUs, this machine has %ld\n", ncpu);
    return;
  }
  CHECK_EQ_INT(sched_getaffinity(0, sizeof before, &before), 0);
  CPU_ZERO(&last);
  CPU_SET((int)ncpu - 1, &last);
  CHECK_EQ_INT(sched_setaffinity(0, sizeof last, &last), 0);
  snprintf(others, sizeof others, ncpu > 2 ? "0-%ld" : "0", ncpu - 2);
  lb_options_init(&o);
  o.background_cpus = others;
  CHECK_EQ_INT(lb_runtime_new(&o, &rt), 0);
  CHECK_EQ_INT(lb_spawn_string(rt, src, sizeof src - 1, "=pinned", 0, NULL, &t), 0);
  lb_run(rt);
  if (lb_task_error(t)) fprintf(stderr, "  %s\n", lb_task_error(t));
  snprintf(want, sizeof want, "[\"Cpus_allowed_list:\\t%s\"]", others);
  CHECK_EQ_STR(lb_task_result(t, NULL), want);
  lb_task_release(t);
  lb_runtime_close(rt);
  CHECK_EQ_INT(sched_setaffinity(0, sizeof before, &before), 0);
}

static void out_of_memory_in_a_step(void) {
#if defined(__SANITIZE_ADDRESS__)
  /* ASan reserves its heap up front: RLIMIT_AS never makes malloc fail */
  printf("     skipped under AddressSanitizer\n");
#else
  char exe[512], dir[64], cmd[128];
  const char *build = getenv("LB_BUILD_DIR");
  int status = 0;
  pid_t pid;
  snprintf(exe, sizeof exe, "%s/luabyte", build ? build : ".");
  snprintf(dir, sizeof dir, "/tmp/lb-embed-oom-%d", (int)getpid());
  fflush(NULL);
  pid = fork();
  if (pid == 0) _exit(oom_child(exe, dir));
  CHECK(pid > 0);
  CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
  if (WIFSIGNALED(status)) fprintf(stderr, "  the host died of signal %d\n", WTERMSIG(status));
  CHECK(WIFEXITED(status));
  CHECK_EQ_INT(WEXITSTATUS(status), 0);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CHECK_EQ_INT(system(cmd), 0);
#endif
}

TEST_LIST {
  {"setup", setup},
  {"epoll_host", epoll_host},
  {"frame_loop_respects_budget", frame_loop_respects_budget},
  {"shared_uv_loop", shared_uv_loop},
  {"sync_with_hook_keeps_budget", sync_with_hook_keeps_budget},
  {"costly_work_waits_for_a_fresh_step", costly_work_waits_for_a_fresh_step},
  {"out_of_memory_in_a_step", out_of_memory_in_a_step},
  {"background_cpus_keep_a_pinned_host_free", background_cpus_keep_a_pinned_host_free},
  {"teardown", teardown},
  {NULL, NULL}
};
LBTEST_MAIN

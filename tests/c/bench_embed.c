/* bench_embed.c - the frame budget during a real sync: source-faker (N
** users) into the SQLite cache, driven by lb_step(rt, 0, budget_us) once a
** frame, with or without an on_record hook, against the same sync run
** unbudgeted (lb_run). Prints per-step wall-clock p50/p99/worst and the
** throughput ratio. usage: bench_embed N BUDGET_US DIR  (scripts/bench.sh embed)
** LB_BENCH_SLOW_STEPS=FILE lists the steps over budget + 0.3 ms of CPU or
** budget + 2.5 ms of wall time: run, step number, start and end
** (CLOCK_MONOTONIC seconds, the clock of `perf record -k CLOCK_MONOTONIC`,
** to find their samples), wall and CPU ms. */
#define _GNU_SOURCE        /* RUSAGE_THREAD */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include "luabyte.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Per step: wall ms, loop-thread CPU ms, and whether the thread was
** switched out against its will (preempted) without ever blocking. */
typedef struct step { double wall, cpu; int preempted; } step;

/* The loop thread's CPU time: a step far longer in wall time than in CPU
** time waited (or was preempted by another process: 2 shared cores). */
static double cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_step(const void *a, const void *b) {
  double x = ((const step *)a)->wall, y = ((const step *)b)->wall;
  return x < y ? -1 : x > y;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static const char script[] =
  "local n, dir, hook = ...\n"
  "local ab = require 'airbyte'\n"
  "local source = ab.get_source('source-faker', {config = {count = tonumber(n), seed = 1}})\n"
  "source:select_streams({'users'})\n"
  "local opts = {cache = ab.new_local_cache{cache_name = 'bench', cache_dir = dir},\n"
  "              force_full_refresh = true, quiet = true}\n"
  "if hook == 'hook' then\n"
  "  local sum = 0\n"
  "  opts.on_record = function(r) sum = sum + r.id + #r.email end\n"
  "end\n"
  "return source:read(opts).processed_records\n";

static FILE *slowlog;     /* LB_BENCH_SLOW_STEPS */

/* One sync; budget 0 = lb_run. Returns seconds; fills steps[] with the
** wall time of each step (ms). */
static double run_sync(const char *n, const char *dir, const char *hook, unsigned budget,
                   step *steps, int *nsteps, int max) {
  const char *args[3] = {n, dir, hook};
  lb_options o;
  lb_runtime *rt;
  lb_task *t;
  double t0, secs;
  lb_options_init(&o);
  if (lb_runtime_new(&o, &rt) < 0) exit(1);
  if (lb_spawn_string(rt, script, sizeof script - 1, "=bench", 3, args, &t) < 0) {
    fprintf(stderr, "%s\n", lb_last_error(rt));
    exit(1);
  }
  *nsteps = 0;
  t0 = now_ms();
  if (budget == 0) lb_run(rt);
  else {
    int rc;
    do {
      double s = now_ms(), c = cpu_ms();
      struct rusage r0, r1;
      getrusage(RUSAGE_THREAD, &r0);
      rc = lb_step(rt, 0, budget);
      getrusage(RUSAGE_THREAD, &r1);
      if (*nsteps < max) {
        step *st = &steps[(*nsteps)++];
        st->wall = now_ms() - s;
        st->cpu = cpu_ms() - c;
        st->preempted = r1.ru_nivcsw > r0.ru_nivcsw && r1.ru_nvcsw == r0.ru_nvcsw;
        if (slowlog && (st->cpu > budget / 1000.0 + 0.3 || st->wall > budget / 1000.0 + 2.5))
          fprintf(slowlog, "%s step %d %.6f %.6f wall %.3f cpu %.3f\n", *hook ? hook : "nohook",
                  *nsteps - 1, s / 1e3, (s + st->wall) / 1e3, st->wall, st->cpu);
      }
      usleep(200);          /* the rest of the host's frame */
    } while (rc > 0);
  }
  secs = (now_ms() - t0) / 1e3;
  if (lb_task_get_state(t) != LB_TASK_DONE) {
    fprintf(stderr, "sync failed: %s\n", lb_task_error(t));
    exit(1);
  }
  lb_task_release(t);
  lb_runtime_close(rt);
  return secs;
}

int main(int argc, char **argv) {
  const char *n = argc > 1 ? argv[1] : "200000";
  unsigned budget = argc > 2 ? (unsigned)atoi(argv[2]) : 2000;
  const char *dir = argc > 3 ? argv[3] : "/tmp/lb-bench-embed";
  static step steps[2000000];
  static double cpu[2000000];
  const char *hooks[2] = {"", "hook"};
  int h;
  if (getenv("LB_BENCH_SLOW_STEPS")) slowlog = fopen(getenv("LB_BENCH_SLOW_STEPS"), "w");
  for (h = 0; h < 2; h++) {
    int ns = 0, i, over = 0;
    int slow = 0, preempted = 0;
    double base = run_sync(n, dir, hooks[h], 0, steps, &ns, 0);
    double secs = run_sync(n, dir, hooks[h], budget, steps, &ns, 2000000);
    double b = budget / 1000.0;
    /* the first step loads modules and starts the connector: not a frame of the sync */
    qsort(steps + 1, (size_t)(ns - 1), sizeof *steps, cmp_step);
    for (i = 1; i < ns; i++) {
      cpu[i] = steps[i].cpu;
      if (steps[i].wall > b) over++;
      if (steps[i].wall > b + 0.5) { slow++; preempted += steps[i].preempted; }
    }
    qsort(cpu + 1, (size_t)(ns - 1), sizeof *cpu, cmp);
    printf("%-9s steps %d, p50 %.2f ms, p99 %.2f ms, worst %.2f ms for a %.2f ms budget; "
           "%.1f%% over; throughput %.2f of the unbudgeted run (%.2f s vs %.2f s); "
           "loop-thread CPU per step: cpu_p99 %.2f ms, cpu_worst %.2f ms; of the %d steps over budget + 0.5 ms, "
           "%d were preempted (switched out, never blocked)\n",
           h ? "hook" : "no hook", ns, steps[1 + (ns - 1) / 2].wall, steps[1 + (int)((ns - 1) * 0.99)].wall,
           steps[ns - 1].wall, b, 100.0 * over / (ns > 1 ? ns - 1 : 1), base / secs, secs, base,
           cpu[1 + (int)((ns - 1) * 0.99)], cpu[ns - 1], slow, preempted);
  }
  return 0;
}

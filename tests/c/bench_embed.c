/* bench_embed.c - the frame budget during a real sync: source-faker (N
** users) into the SQLite cache, driven by lb_step(rt, 0, budget_us) once a
** frame, with or without an on_record hook, against the same sync run
** unbudgeted (lb_run). Prints per-step wall-clock p50/p99/worst and the
** throughput ratio. usage: bench_embed N BUDGET_US DIR  (scripts/bench.sh embed) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "luabyte.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
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

/* One sync; budget 0 = lb_run. Returns seconds; fills steps[] with the
** wall time of each step (ms). */
static double run_sync(const char *n, const char *dir, const char *hook, unsigned budget,
                   double *steps, int *nsteps, int max) {
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
      double s = now_ms();
      rc = lb_step(rt, 0, budget);
      if (*nsteps < max) steps[(*nsteps)++] = now_ms() - s;
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
  static double steps[2000000];
  const char *hooks[2] = {"", "hook"};
  int h;
  for (h = 0; h < 2; h++) {
    int ns = 0, i, over = 0;
    double base = run_sync(n, dir, hooks[h], 0, steps, &ns, 0);
    double secs = run_sync(n, dir, hooks[h], budget, steps, &ns, 2000000);
    double b = budget / 1000.0;
    /* the first step loads modules and starts the connector: not a frame of the sync */
    qsort(steps + 1, (size_t)(ns - 1), sizeof *steps, cmp);
    for (i = 1; i < ns; i++) if (steps[i] > b) over++;
    printf("%-9s steps %d, p50 %.2f ms, p99 %.2f ms, worst %.2f ms for a %.2f ms budget; "
           "%.1f%% over; throughput %.2f of the unbudgeted run (%.2f s vs %.2f s)\n",
           h ? "hook" : "no hook", ns, steps[1 + (ns - 1) / 2], steps[1 + (int)((ns - 1) * 0.99)],
           steps[ns - 1], b, 100.0 * over / (ns > 1 ? ns - 1 : 1), base / secs, secs, base);
  }
  return 0;
}

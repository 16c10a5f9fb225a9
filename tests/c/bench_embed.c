/* bench_embed.c - the frame budget during a real sync: source-faker (N
** users) into the SQLite cache, driven by lb_step(rt, 0, budget_us) once a
** frame, with or without an on_record hook, against the same sync run
** unbudgeted (lb_run). Prints per-step wall-clock p50/p99/worst and the
** throughput ratio. usage: bench_embed N BUDGET_US DIR [unpinned|pinned [write]]
** (scripts/bench.sh embed); pinned: the host pins its thread to the last CPU
** and gives luabyte the others (lb_options.background_cpus), as a game pins
** its frame thread; write: the same sync goes on through the cache to
** destination-dev-null (Destination:write), so the destination's stdin and
** its echoes are in the frames too.
** LB_BENCH_SLOW_STEPS=FILE lists the steps over budget + 0.3 ms of CPU or
** budget + 2.5 ms of wall time: run, step number, start and end
** (CLOCK_MONOTONIC seconds, the clock of `perf record -k CLOCK_MONOTONIC`,
** to find their samples), wall, CPU and run-queue wait ms, page faults.
** The first line (read only), "control", is the machine's floor: the same frames with
** plain work instead of luabyte (control() below). */
#define _GNU_SOURCE        /* RUSAGE_THREAD */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/resource.h>
#include "luabyte.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Per step: wall ms, loop-thread CPU ms, ms the thread stood runnable on a
** run queue while the guest kernel ran something else (schedstat's
** run_delay), and whether it blocked (a voluntary switch). What is left of
** the wall time, wall - cpu - wait, in a step that never blocked, is time
** the thread was "running" without getting CPU: the hypervisor ran another
** guest (steal; this kernel's task clock leaves steal out) or interrupts. */
typedef struct step { double wall, cpu, wait; int blocked; long faults; } step;
/* The kernel's run_delay misses some waits (seen when three threads share
** two CPUs), so "unaccounted" is steal or such a wait; the run's steal from
** /proc/stat, printed beside it, tells which. */

/* /proc/thread-self/schedstat: "cpu_ns run_delay_ns timeslices" */
static int schedstat_fd = -1;
static double run_delay_ms(void) {
  char buf[128];
  ssize_t n;
  unsigned long long on_cpu, delay;
  if (schedstat_fd < 0) return 0;
  n = pread(schedstat_fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return 0;
  buf[n] = 0;
  if (sscanf(buf, "%llu %llu", &on_cpu, &delay) != 2) return 0;
  return delay / 1e6;
}

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
  "local n, dir, hook, what = ...\n"
  "local ab = require 'airbyte'\n"
  "local source = ab.get_source('source-faker', {config = {count = tonumber(n), seed = 1}})\n"
  "source:select_streams({'users'})\n"
  "local opts = {cache = ab.new_local_cache{cache_name = 'bench', cache_dir = dir},\n"
  "              force_full_refresh = true, quiet = true}\n"
  "if hook == 'hook' then\n"
  "  local sum = 0\n"
  "  opts.on_record = function(r) sum = sum + r.id + #r.email end\n"
  "end\n"
  "if what == 'write' then\n"   /* through the cache on to a destination process */
  "  local dest = ab.get_destination('destination-dev-null', {config = {}})\n"
  "  return dest:write(source, opts).processed_records\n"
  "end\n"
  "return source:read(opts).processed_records\n";

static FILE *slowlog;     /* LB_BENCH_SLOW_STEPS */
static char background[32];   /* "pinned": the CPUs left to luabyte's own work */
static const char *what = "read";   /* or "write": the sync goes on to destination-dev-null */

/* One sync; budget 0 = lb_run. Returns seconds; fills steps[] with the
** wall time of each step (ms). */
static double run_sync(const char *n, const char *dir, const char *hook, unsigned budget,
                   step *steps, int *nsteps, int max) {
  const char *args[4] = {n, dir, hook, what};
  lb_options o;
  lb_runtime *rt;
  lb_task *t;
  double t0, secs;
  lb_options_init(&o);
  if (*background) o.background_cpus = background;
  if (lb_runtime_new(&o, &rt) < 0) exit(1);
  if (lb_spawn_string(rt, script, sizeof script - 1, "=bench", 4, args, &t) < 0) {
    fprintf(stderr, "%s\n", lb_last_error(rt));
    exit(1);
  }
  *nsteps = 0;
  t0 = now_ms();
  if (budget == 0) lb_run(rt);
  else {
    int rc;
    do {
      double s = now_ms(), c = cpu_ms(), w = run_delay_ms();
      struct rusage r0, r1;
      getrusage(RUSAGE_THREAD, &r0);
      rc = lb_step(rt, 0, budget);
      getrusage(RUSAGE_THREAD, &r1);
      if (*nsteps < max) {
        step *st = &steps[(*nsteps)++];
        st->wall = now_ms() - s;
        st->cpu = cpu_ms() - c;
        st->wait = run_delay_ms() - w;
        st->blocked = r1.ru_nvcsw > r0.ru_nvcsw;
        st->faults = (r1.ru_minflt - r0.ru_minflt) + (r1.ru_majflt - r0.ru_majflt);
        if (slowlog && (st->cpu > budget / 1000.0 + 0.3 || st->wall > budget / 1000.0 + 2.5))
          fprintf(slowlog, "%s step %d %.6f %.6f wall %.3f cpu %.3f wait %.3f faults %ld%s\n",
                  *hook ? hook : "nohook", *nsteps - 1, s / 1e3, (s + st->wall) / 1e3,
                  st->wall, st->cpu, st->wait, st->faults, st->blocked ? " blocked" : "");
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

/* Steal time of the whole machine so far (ms), from /proc/stat: the time
** the hypervisor ran something else while this guest had work. */
static double steal_ms(void) {
  FILE *f = fopen("/proc/stat", "r");
  unsigned long long v[8] = {0};
  long hz = sysconf(_SC_CLK_TCK);
  if (f == NULL) return 0;
  if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
             &v[5], &v[6], &v[7]) != 8) v[7] = 0;
  fclose(f);
  return hz > 0 ? v[7] * 1e3 / hz : 0;
}

/* --- the machine's floor ------------------------------------------------
** The same frames with plain work in place of lb_step and no luabyte, one
** CPU-bound thread beside them standing in for the sync's writer and
** connector, pinned where those are. By how much this loop's worst frame
** exceeds its work is what the kernel and the hypervisor do to any frame
** here; luabyte's worst is read against it (scripts/bench.sh). */
static volatile int burner_stop;
static volatile unsigned char scratch[1 << 20];   /* the work touches memory, as a step does */

static void work(unsigned long units) {
  unsigned long i, x = 1;
  for (i = 0; i < units; i++) {
    x = x * 6364136223846793005ul + 1442695040888963407ul;
    scratch[(x >> 33) % sizeof scratch]++;
  }
}

static void *burner(void *arg) {
  unsigned long x = 1;
  if (arg) (void)sched_setaffinity(0, sizeof(cpu_set_t), arg);   /* pinned: luabyte's CPUs */
  while (!burner_stop) x = x * 6364136223846793005ul + 1;
  return (void *)(unsigned long)(x & 1);
}

/* frames of work sized to ~90% of the budget; prints p50, p99, worst */
static void control(int frames, unsigned budget, cpu_set_t *background_set, step *steps) {
  unsigned long units = 1000;
  double b = budget / 1000.0, t;
  pthread_t th;
  int i;
  for (i = 0; i < (int)sizeof scratch; i += 4096) scratch[i] = 0;   /* first touches are slow here */
  for (;;) {          /* size the work on a quiet machine: the best of 3 */
    int k;
    t = 1e9;
    for (k = 0; k < 3; k++) {
      double s = now_ms(), d;
      work(units);
      d = now_ms() - s;
      t = d < t ? d : t;
    }
    if (t >= b * 0.2) break;
    units *= 2;
  }
  units = (unsigned long)(units * (b * 0.9 / t));
  burner_stop = 0;
  if (pthread_create(&th, NULL, burner, background_set) != 0) {
    fprintf(stderr, "control: cannot start its busy thread\n");
    exit(1);
  }
  for (i = 0; i < frames; i++) {
    double s = now_ms();
    work(units);
    steps[i].wall = now_ms() - s;
    usleep(200);
  }
  burner_stop = 1;
  pthread_join(th, NULL);
  qsort(steps, (size_t)frames, sizeof *steps, cmp_step);
  printf("control   frames %d, p50 %.2f ms, p99 %.2f ms, worst %.2f ms of plain work sized to %.2f ms, "
         "no luabyte, one busy thread beside it: the machine's floor, worst - p50 = %.2f ms\n",
         frames, steps[frames / 2].wall, steps[(int)(frames * 0.99)].wall, steps[frames - 1].wall, b * 0.9,
         steps[frames - 1].wall - steps[frames / 2].wall);
}

int main(int argc, char **argv) {
  const char *n = argc > 1 ? argv[1] : "200000";
  unsigned budget = argc > 2 ? (unsigned)atoi(argv[2]) : 2000;
  const char *dir = argc > 3 ? argv[3] : "/tmp/lb-bench-embed";
  static step steps[2000000];
  static double cpu[2000000];
  const char *hooks[2] = {"", "hook"};
  int h;
  cpu_set_t background_set, *pinned = NULL;   /* the CPUs in background[] */
  if (argc > 4 && strcmp(argv[4], "pinned") == 0) {
    /* as a game pins its frame thread: this thread on the last CPU, the
    ** cache's threads and the connector on the others */
    long c, ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t one;
    if (ncpu < 2) { fprintf(stderr, "pinned: needs 2 CPUs, this machine has %ld\n", ncpu); return 2; }
    CPU_ZERO(&one);
    CPU_SET((int)ncpu - 1, &one);
    if (sched_setaffinity(0, sizeof one, &one) != 0) { perror("sched_setaffinity"); return 2; }
    snprintf(background, sizeof background, ncpu > 2 ? "0-%ld" : "0", ncpu - 2);
    CPU_ZERO(&background_set);
    for (c = 0; c < ncpu - 1; c++) CPU_SET((int)c, &background_set);
    pinned = &background_set;
  }
  if (argc > 5 && strcmp(argv[5], "write") == 0) what = "write";
  if (getenv("LB_BENCH_SLOW_STEPS")) slowlog = fopen(getenv("LB_BENCH_SLOW_STEPS"), "w");
  schedstat_fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
  if (*what == 'r')   /* first: scripts/bench.sh reads the syncs against it */
    control(3000, budget, pinned, steps);
  for (h = 0; h < 2; h++) {
    int ns = 0, i, over = 0;
    /* of the steps over budget + 0.5 ms, by what took most of the excess:
    ** the loop thread's own CPU, a wait on the run queue (another thread or
    ** process of this guest ran), blocking, or neither (stolen) */
    int slow = 0, by_cpu = 0, by_wait = 0, by_block = 0, by_unaccounted = 0;
    double worst_own = 0;     /* worst step but the unaccounted ones */
    long faults = 0, slow_faults = 0;   /* the loop thread's page faults */
    double base = run_sync(n, dir, hooks[h], 0, steps, &ns, 0);
    double steal0 = steal_ms(), steal;
    double secs = run_sync(n, dir, hooks[h], budget, steps, &ns, 2000000);
    steal = steal_ms() - steal0;
    double b = budget / 1000.0;
    /* the first step loads modules and starts the connector: not a frame of the sync */
    qsort(steps + 1, (size_t)(ns - 1), sizeof *steps, cmp_step);
    for (i = 1; i < ns; i++) {
      cpu[i] = steps[i].cpu;
      faults += steps[i].faults;
      if (steps[i].wall > b) over++;
      if (steps[i].wall > b + 0.5) {
        const step *st = &steps[i];
        double excess_cpu = st->cpu - b, unaccounted = st->wall - st->cpu - st->wait;
        slow++;
        slow_faults += st->faults;
        if (st->blocked) by_block++;
        else if (unaccounted >= st->wait && unaccounted >= excess_cpu) by_unaccounted++;
        else if (st->wait >= excess_cpu) by_wait++;
        else by_cpu++;
      }
      if (!(steps[i].wall > b + 0.5) || steps[i].blocked ||
          steps[i].wall - steps[i].cpu - steps[i].wait < 1.0)
        worst_own = steps[i].wall > worst_own ? steps[i].wall : worst_own;
    }
    qsort(cpu + 1, (size_t)(ns - 1), sizeof *cpu, cmp);
    printf("%s%-9s steps %d, p50 %.2f ms, p99 %.2f ms, worst %.2f ms for a %.2f ms budget; "
           "%.1f%% over; throughput %.2f of the unbudgeted run (%.2f s vs %.2f s); "
           "loop-thread CPU per step: cpu_p99 %.2f ms, cpu_worst %.2f ms; of the %d steps over budget + 0.5 ms, "
           "%d ran long on the CPU, %d waited for it (run queue), %d blocked, %d unaccounted; "
           "the machine's steal during the run %.0f ms; loop-thread page faults %ld (%ld in those steps); "
           "worst_accounted %.2f ms\n",
           *what == 'w' ? "write " : "", h ? "hook" : "no hook", ns, steps[1 + (ns - 1) / 2].wall, steps[1 + (int)((ns - 1) * 0.99)].wall,
           steps[ns - 1].wall, b, 100.0 * over / (ns > 1 ? ns - 1 : 1), base / secs, secs, base,
           cpu[1 + (int)((ns - 1) * 0.99)], cpu[ns - 1], slow, by_cpu, by_wait, by_block, by_unaccounted, steal, faults, slow_faults,
           worst_own);
  }
  return 0;
}

/*
** background.c - the priority and the CPUs of luabyte's own threads and
** children (background.h). Linux applies nice and affinity per thread;
** elsewhere these are no-ops but the yield.
*/
#define _GNU_SOURCE 1
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include "background.h"
#include "luabyte.h"

static void add_cpu(lb_cpus *cpus, int c) {
  cpus->bits[c / 8] |= (unsigned char)(1u << (c % 8));
  cpus->any = 1;
}

static int parse_cpu(const char **p, long *out) {
  char *end;
  long v;
  if (**p < '0' || **p > '9') return -1;
  errno = 0;
  v = strtol(*p, &end, 10);
  if (errno || v < 0 || v >= LB_CPUS_MAX) return -1;
  *p = end;
  *out = v;
  return 0;
}

int lb__cpus_parse(const char *list, lb_cpus *out, char *why, size_t whylen) {
  const char *p = list;
  memset(out, 0, sizeof *out);
  if (list == NULL || *list == 0) return 0;
  for (;;) {
    long lo, hi, c;
    if (parse_cpu(&p, &lo) != 0) goto bad;
    hi = lo;
    if (*p == '-') {
      p++;
      if (parse_cpu(&p, &hi) != 0 || hi < lo) goto bad;
    }
    for (c = lo; c <= hi; c++) add_cpu(out, (int)c);
    if (*p == 0) return 0;
    if (*p++ != ',') goto bad;
  }
bad:
  memset(out, 0, sizeof *out);
  if (why)
    snprintf(why, whylen, "background_cpus '%s' is not a CPU list such as \"1\" or \"1-3,6\" "
             "(CPUs 0 to %d)", list, LB_CPUS_MAX - 1);
  return LB_EINVAL;
}

#ifdef __linux__
/* lb_cpus <-> the kernel's cpu_set_t, one bit per CPU either way */
static int has_cpu(const lb_cpus *cpus, int c) { return (cpus->bits[c / 8] >> (c % 8)) & 1; }

/* 1 when tid now runs on cpus */
static int pin(pid_t tid, const lb_cpus *cpus) {
  cpu_set_t set;
  int c;
  if (cpus == NULL || !cpus->any) return 0;
  CPU_ZERO(&set);
  for (c = 0; c < LB_CPUS_MAX && c < CPU_SETSIZE; c++)
    if (has_cpu(cpus, c)) CPU_SET(c, &set);
  /* best effort: CPUs outside the process's cpuset fail with EINVAL, and
  ** the work then runs where it would have */
  return sched_setaffinity(tid, sizeof set, &set) == 0;
}
#endif

int lb__background_lend(const lb_cpus *cpus, lb_cpus *saved) {
#ifdef __linux__
  cpu_set_t now;
  int i;
  memset(saved, 0, sizeof *saved);
  if (cpus == NULL || !cpus->any) return 0;
  if (sched_getaffinity(0, sizeof now, &now) != 0) return 0;
  for (i = 0; i < LB_CPUS_MAX && i < CPU_SETSIZE; i++)
    if (CPU_ISSET(i, &now)) add_cpu(saved, i);
  return saved->any && pin(0, cpus);
#else
  (void)cpus;
  memset(saved, 0, sizeof *saved);
  return 0;
#endif
}

void lb__background_restore(const lb_cpus *saved) {
#ifdef __linux__
  (void)pin(0, saved);
#else
  (void)saved;
#endif
}

void lb__background_thread(const lb_cpus *cpus) {
#ifdef __linux__
  pid_t tid = (pid_t)syscall(SYS_gettid);
  (void)setpriority(PRIO_PROCESS, (id_t)tid, 10);
  (void)pin(tid, cpus);
#else
  (void)cpus;
#endif
}

void lb__background_process(int pid, const lb_cpus *cpus) {
#ifdef __linux__
  char dir[64];
  DIR *d;
  struct dirent *e;
  if (cpus == NULL || !cpus->any || pid <= 0) return;
  (void)pin((pid_t)pid, cpus);   /* the main thread first: threads it makes from now inherit */
  snprintf(dir, sizeof dir, "/proc/%d/task", pid);
  if ((d = opendir(dir)) == NULL) return;
  while ((e = readdir(d)) != NULL) {
    long tid = strtol(e->d_name, NULL, 10);
    if (tid > 0 && tid != pid) (void)pin((pid_t)tid, cpus);
  }
  closedir(d);
#else
  (void)pid;
  (void)cpus;
#endif
}

void lb__background_yield(void) { (void)sched_yield(); }

/*
** background.h - luabyte's own work stays below the thread that runs the
** loop (a host's frame, a server's requests): the cache's threads and the
** connectors a runtime starts. Threads run at a lower priority and give
** their CPU back between pieces of work, so a loop thread waiting for that
** CPU gets it within one piece instead of at the kernel's next tick (4 ms
** at HZ=250). A host that pins its loop thread names the CPUs for the rest
** (lb_options.background_cpus); threads and children then run only there.
*/
#ifndef LB_BACKGROUND_H
#define LB_BACKGROUND_H

#define LB_CPUS_MAX 1024

/* A set of CPUs, copied by value; `any` = 0: no set, leave affinity alone. */
typedef struct lb_cpus {
  int any;
  unsigned char bits[LB_CPUS_MAX / 8];
} lb_cpus;

/* Parses a CPU list as taskset -c and /sys take it ("1", "1-3,6"); an
** empty or NULL list is no set. 0, or LB_EINVAL with a reason in why. */
int  lb__cpus_parse(const char *list, lb_cpus *out, char *why, size_t whylen);

/* For the calling thread, first thing in a background thread: nice +10,
** then onto cpus (when set). */
void lb__background_thread(const lb_cpus *cpus);
/* Around starting a child: the calling thread (the loop's) moves onto cpus
** (when set) and saves where it ran, so the child is born there (fork
** copies the set) instead of running on the host's CPU until it execs;
** restore moves the thread back. lend returns 1 when it moved the thread. */
int  lb__background_lend(const lb_cpus *cpus, lb_cpus *saved);
void lb__background_restore(const lb_cpus *saved);
/* For a child started without lend: every thread of process pid onto cpus
** (when set); threads it makes later inherit the set. */
void lb__background_process(int pid, const lb_cpus *cpus);
/* Between two pieces of background work: hands the CPU to a thread that
** waits for it, and returns at once when none does. */
void lb__background_yield(void);

#endif

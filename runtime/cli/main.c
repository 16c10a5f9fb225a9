/*
** main.c - the luabyte command, a lua.c-style host on the public API only.
**
**   luabyte SCRIPT [ARGS...]          run a Lua script as a task
**   luabyte -e CODE [SCRIPT ARGS...]  run code (then the script, if any)
**   luabyte -v                        print the version
**   luabyte connector NAME CMD ...    run a built-in connector (spec, check, ...)
**   luabyte connector --manifest FILE CMD ...   run a declarative manifest source
**   luabyte SUBCOMMAND ...            validate, sync, benchmark, connectors
** Exit status: 0 success, 1 script error, 2 usage error, 130 interrupted
** (SIGINT, SIGTERM, SIGHUP or SIGQUIT).
*/
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>
#include "luabyte.h"

static lb_runtime *volatile g_rt;          /* for the signal handler only */
static volatile sig_atomic_t g_interrupts;

static void on_sigint(int sig) {
  (void)sig;
  if (++g_interrupts > 1) _exit(130);      /* second Ctrl-C: leave now */
  if (g_rt) lb_interrupt(g_rt);
}

static void catch_unless_ignored(int sig) {
  struct sigaction sa;
  if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN) return;
  signal(sig, on_sigint);
}

static void usage(FILE *f) {
  fprintf(f,
    "usage: luabyte [options] [SCRIPT [ARGS...]]\n"
    "       luabyte connector NAME COMMAND [ARGS...]\n"
    "       luabyte connector --manifest FILE COMMAND [ARGS...]\n"
    "       luabyte {validate|sync|benchmark|connectors} [--help]\n"
    "options:\n"
    "  -e CODE   run CODE (may be repeated; runs before SCRIPT)\n"
    "  -v        print the version and exit\n"
    "  -h        print this help and exit\n"
    "  -         read the script from standard input\n"
    "environment:\n"
    "  LUABYTE_LUA_DIR  load Lua modules from this directory before the embedded ones\n");
}

/* Runs the runtime until its tasks end; returns the process exit status. */
static int run_task(lb_runtime *rt, lb_task *main_task) {
  int rc = lb_run(rt), status = 0;
  lb_task_state st = lb_task_get_state(main_task);
  if (g_interrupts) {
    fprintf(stderr, "luabyte: interrupted\n");
    status = 130;
  } else if (st == LB_TASK_FAILED || st == LB_TASK_CANCELLED) {
    const char *err = lb_task_error(main_task);
    fprintf(stderr, "luabyte: %s\n", err ? err : "task failed");
    status = 1;
  } else if (rc < 0 && rc != LB_ELUA) {
    fprintf(stderr, "luabyte: %s\n", lb_strerror(rc));
    status = 1;
  }
  return status;
}

/* The exit status a Lua entry point (airbyte.builtin.run, airbyte.cli.main)
** returned, for a task that ended well: library code never exits the
** process itself, the command does. Its result is the JSON array of the
** returned values; anything but a whole number in 0..255 first is 0. */
static int returned_status(lb_task *t) {
  const char *r = lb_task_result(t, NULL);
  char *end;
  long v;
  if (r == NULL || r[0] != '[') return 0;
  v = strtol(r + 1, &end, 10);
  if (end == r + 1 || (*end != ']' && *end != ',') || v < 0 || v > 255) return 0;
  return (int)v;
}

static int is_subcommand(const char *s) {
  static const char *const names[] = {"validate", "sync", "benchmark", "connectors", NULL};
  int i;
  for (i = 0; names[i]; i++)
    if (strcmp(s, names[i]) == 0) return 1;
  return 0;
}

/* Sets the global `arg` the way lua.c does: arg[0] = script, arg[1..]. */
static void set_arg(lb_runtime *rt, int argc, char **argv, int script) {
  lua_State *L = lb_lua(rt);
  int i;
  lua_createtable(L, argc - script, script + 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

int main(int argc, char **argv) {
  lb_options opts;
  lb_runtime *rt;
  lb_task *task = NULL;
  int i, rc, status = 0, script = 0, script_entry = 0;
  char code[1024];

  /* parse options the way lua.c does: they stop at the first non-option */
  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--version") == 0) {
      printf("luabyte %s (%s)\n", lb_version(), LUA_RELEASE);
      return 0;
    }
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 0;
    }
    if (strcmp(argv[i], "-e") == 0) {
      if (i + 1 >= argc) { fprintf(stderr, "luabyte: '-e' needs an argument\n"); usage(stderr); return 2; }
      i++;
      continue;
    }
    if (argv[i][0] == '-' && argv[i][1] != '\0') {
      fprintf(stderr, "luabyte: unknown option '%s'\n", argv[i]);
      usage(stderr);
      return 2;
    }
    script = i;
    break;
  }

  lb_options_init(&opts);
  /* built-in connectors run as children of this very binary */
  {
    static char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) { self[n] = '\0'; opts.exe_path = self; }
  }
  /* a destination that exits early must give EPIPE, not end the command */
  signal(SIGPIPE, SIG_IGN);
  rc = lb_runtime_new(&opts, &rt);
  if (rc < 0) {
    fprintf(stderr, "luabyte: cannot create the runtime: %s\n", lb_strerror(rc));
    return 1;
  }
  g_rt = rt;
  /* SIGTERM (timeout, a service manager), SIGHUP (the terminal or ssh
  ** session went away) and SIGQUIT get the same clean cancel as Ctrl-C:
  ** children run in their own process groups and would outlive a luabyte
  ** that died on the default action, and the temporary config files with
  ** their secrets would stay. A SIGHUP or SIGQUIT ignored by whoever started
  ** us (nohup) stays ignored. */
  signal(SIGINT, on_sigint);
  signal(SIGTERM, on_sigint);
  catch_unless_ignored(SIGHUP);
  catch_unless_ignored(SIGQUIT);

  /* -e chunks run first, each as a task, in order */
  for (i = 1; i < (script ? script : argc); i++) {
    if (strcmp(argv[i], "-e") != 0) continue;
    set_arg(rt, argc, argv, script ? script : argc);
    rc = lb_spawn_string(rt, argv[i + 1], strlen(argv[i + 1]), "=(command line)", 0, NULL, &task);
    if (rc < 0) {
      fprintf(stderr, "luabyte: %s\n", lb_last_error(rt));
      status = 1;
      goto done;
    }
    status = run_task(rt, task);
    lb_task_release(task);
    task = NULL;
    if (status) goto done;
    i++;
  }
  if (script == 0) {
    if (argc == 1) {           /* no script and no -e: read stdin as lua.c does */
      if (isatty(0)) { usage(stderr); status = 2; goto done; }
      script = 0;
      rc = lb_spawn_file(rt, "-", 0, NULL, &task);
      if (rc < 0) { fprintf(stderr, "luabyte: %s\n", lb_last_error(rt)); status = 1; goto done; }
      status = run_task(rt, task);
    }
    goto done;
  }

  if (strcmp(argv[script], "connector") == 0) {
    const char *name = script + 1 < argc ? argv[script + 1] : NULL;
    if (name == NULL || script + 2 >= argc) {
      fprintf(stderr, "luabyte: usage: luabyte connector NAME COMMAND [ARGS...]\n");
      status = 2;
      goto done;
    }
    set_arg(rt, argc, argv, script + 1);
    snprintf(code, sizeof code,
             "return require('airbyte.builtin').run(arg[0], {table.unpack(arg, 1)})");
    rc = lb_spawn_string(rt, code, strlen(code), "=(connector)", 0, NULL, &task);
    script_entry = 1;
  } else if (is_subcommand(argv[script])) {
    set_arg(rt, argc, argv, script);
    snprintf(code, sizeof code,
             "return require('airbyte.cli').main(arg[0], {table.unpack(arg, 1)})");
    rc = lb_spawn_string(rt, code, strlen(code), "=(cli)", 0, NULL, &task);
    script_entry = 1;
  } else {
    rc = lb_spawn_file(rt, argv[script], argc - script - 1,
                       (const char *const *)argv + script + 1, &task);
    if (rc == 0) set_arg(rt, argc, argv, script);
  }
  if (rc < 0) {
    fprintf(stderr, "luabyte: %s\n", lb_last_error(rt));
    status = rc == LB_ENOENT ? 1 : 1;
    goto done;
  }
  status = run_task(rt, task);
  if (status == 0 && script_entry) status = returned_status(task);

done:
  if (task) lb_task_release(task);
  g_rt = NULL;
  lb_runtime_close(rt);
  fflush(stdout);
  return status;
}

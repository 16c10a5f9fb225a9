/*
** exepath.c - the luabyte command that runs built-in connectors: found
** once per runtime (lb__exe_path), never the host program itself; and the
** test for an executable file that the search uses.
*/
#define _GNU_SOURCE 1   /* dladdr */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "lb_internal.h"

/* A regular file that we may execute (also core.executable's test). */
int lb__is_exe(const char *path) {
  struct stat st;
  return access(path, X_OK) == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The luabyte command for built-in connectors, never the host itself:
** $LUABYTE_EXE, then bin/luabyte of the prefix this code is installed in
** (the directory of the library or module, and its parents), then the
** configured install prefix, then PATH. NULL when there is none. */
static char *find_luabyte(void) {
  char dir[PATH_MAX], cand[PATH_MAX + 16];
  const char *env = getenv("LUABYTE_EXE"), *path;
  Dl_info info;
  int level;
  if (env && *env) return strdup(env);
  if (dladdr((void *)lb__exe_path, &info) && info.dli_fname &&
      realpath(info.dli_fname, dir) != NULL) {
    for (level = 0; level < 6; level++) {
      char *slash = strrchr(dir, '/');
      if (slash == NULL) break;
      *slash = '\0';
      snprintf(cand, sizeof cand, "%s/luabyte", dir);
      if (lb__is_exe(cand)) return strdup(cand);
      snprintf(cand, sizeof cand, "%s/bin/luabyte", dir);
      if (lb__is_exe(cand)) return strdup(cand);
      if (dir[0] == '\0') break;
    }
  }
#ifdef LB_INSTALL_PREFIX
  snprintf(cand, sizeof cand, "%s/bin/luabyte", LB_INSTALL_PREFIX);
  if (lb__is_exe(cand)) return strdup(cand);
#endif
  for (path = getenv("PATH"); path && *path; ) {
    const char *end = strchr(path, ':');
    size_t n = end ? (size_t)(end - path) : strlen(path);
    if (n > 0 && n < PATH_MAX) {
      snprintf(cand, sizeof cand, "%.*s/luabyte", (int)n, path);
      if (lb__is_exe(cand)) return strdup(cand);
    }
    path = end ? end + 1 : NULL;
  }
  return NULL;
}

const char *lb__exe_path(lb_runtime *rt) {
  if (rt->exe_path == NULL) rt->exe_path = find_luabyte();
  return rt->exe_path;
}

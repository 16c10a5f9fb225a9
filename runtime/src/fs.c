/*
** fs.c - mkdir -p (see fs.h).
*/
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fs.h"

int lb__mkdir_p(char *path, int mode) {
  size_t n = strlen(path), i;
  for (i = 1; i <= n; i++) {
    struct stat st;
    if (i < n && path[i] != '/') continue;
    if (i < n) path[i] = '\0';
    if (mkdir(path, (mode_t)mode) != 0) {
      int e = errno;
      if (e != EEXIST || stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return e;
    }
    if (i < n) path[i] = '/';
  }
  return 0;
}

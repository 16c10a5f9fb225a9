/*
** tmpfile.c - the runtime's temporary files: written once with mode 0600
** under $TMPDIR, and removed when Lua lets go of them or at the latest
** when the runtime closes.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "lb_internal.h"

struct lb_tmpfile {
  char *path;
  lb_tmpfile *prev, *next;
};

lb_tmpfile *lb__tmpfile_new(lb_runtime *rt, const char *content, size_t len,
                            const char *suffix, const char **path) {
  const char *dir = getenv("TMPDIR");
  lb_tmpfile *f;
  char *tmpl;
  size_t slen = suffix ? strlen(suffix) : 0, n;
  int fd;
  if (dir == NULL || *dir == '\0') dir = "/tmp";
  n = strlen(dir) + slen + 32;
  f = calloc(1, sizeof *f);
  tmpl = malloc(n);
  if (f == NULL || tmpl == NULL) { free(f); free(tmpl); errno = ENOMEM; return NULL; }
  snprintf(tmpl, n, "%s/luabyte-XXXXXX%s", dir, suffix ? suffix : "");
  fd = mkstemps(tmpl, (int)slen);           /* mode 0600 */
  if (fd < 0) { free(f); free(tmpl); return NULL; }
  while (len > 0) {
    ssize_t w = write(fd, content, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      close(fd); unlink(tmpl); free(f); free(tmpl);
      return NULL;
    }
    content += w;
    len -= (size_t)w;
  }
  close(fd);
  f->path = tmpl;
  f->next = rt->tmpfiles;
  if (rt->tmpfiles) rt->tmpfiles->prev = f;
  rt->tmpfiles = f;
  *path = f->path;
  return f;
}

void lb__tmpfile_remove(lb_runtime *rt, lb_tmpfile *f) {
  unlink(f->path);
  if (f->prev) f->prev->next = f->next;
  else rt->tmpfiles = f->next;
  if (f->next) f->next->prev = f->prev;
  free(f->path);
  free(f);
}

/*
** lines.c - NDJSON framing over a growable read buffer (see lines.h).
*/
#include <stdlib.h>
#include <string.h>
#include "lines.h"

void lb_lines_init(lb_lines *b, size_t max_line, int truncate) {
  memset(b, 0, sizeof *b);
  b->max_line = max_line ? max_line : (size_t)64 * 1024 * 1024;
  b->truncate = truncate;
}

void lb_lines_free(lb_lines *b) {
  free(b->buf);
  b->buf = NULL;
  b->cap = b->head = b->tail = b->scan = 0;
}

lb_lines_pos lb_lines_tell(const lb_lines *b) {
  lb_lines_pos pos;
  pos.head = b->head;
  pos.scan = b->scan;
  return pos;
}

void lb_lines_seek(lb_lines *b, lb_lines_pos pos) {
  b->head = pos.head;
  b->scan = pos.scan;
}

size_t lb_lines_pending(const lb_lines *b) {
  return b->tail - b->head;
}

char *lb_lines_reserve(lb_lines *b, size_t *len) {
  size_t pending = b->tail - b->head;
  size_t want = pending + LB_LINES_CHUNK;
  if (b->cap - b->tail >= LB_LINES_CHUNK) {
    *len = b->cap - b->tail;
    return b->buf + b->tail;
  }
  /* Move the partial line to the front before growing: most of the time
  ** the consumed prefix is large and a move is all it takes. */
  if (b->head > 0) {
    if (pending) memmove(b->buf, b->buf + b->head, pending);
    b->scan -= b->head;
    b->tail = pending;
    b->head = 0;
  }
  if (b->cap < want) {
    size_t ncap = b->cap ? b->cap : 4 * LB_LINES_CHUNK;
    char *nb;
    while (ncap < want) ncap *= 2;
    nb = realloc(b->buf, ncap);
    if (nb == NULL) { *len = 0; return NULL; }
    b->buf = nb;
    b->cap = ncap;
  }
  *len = b->cap - b->tail;
  return b->buf + b->tail;
}

void lb_lines_commit(lb_lines *b, size_t n) {
  b->tail += n;
}

int lb_lines_next(lb_lines *b, const char **line, size_t *len) {
  for (;;) {
    char *start = b->buf + b->head;
    char *nl;
    size_t n;
    if (b->head == b->tail) {
      b->head = b->tail = b->scan = 0;  /* empty: restart at the front */
      return LB_LINES_AGAIN;
    }
    if (b->scan < b->head) b->scan = b->head;
    nl = memchr(b->buf + b->scan, '\n', b->tail - b->scan);
    if (nl == NULL) {
      size_t have = b->tail - b->head;
      b->scan = b->tail;
      if (b->discarding) {                 /* still inside an over-long line */
        b->head = b->scan = b->tail;
        if (!b->eof) return LB_LINES_AGAIN;
        b->discarding = 0;
        continue;
      }
      if (have > b->max_line) {
        if (b->truncate) {                 /* hand out a max_line piece */
          *line = start;
          *len = b->max_line;
          b->head += b->max_line;
          return LB_LINES_OK;
        }
        b->head = b->scan = b->tail;       /* drop what we have ... */
        b->discarding = 1;                 /* ... and the rest of the line */
        return LB_LINES_TOOLONG;
      }
      if (!b->eof) return LB_LINES_AGAIN;
      nl = b->buf + b->tail;               /* last line without newline */
    }
    n = (size_t)(nl - start);
    b->head = (nl == b->buf + b->tail) ? b->tail : b->head + n + 1;
    b->scan = b->head;
    if (b->discarding) {                   /* tail of an over-long line */
      b->discarding = 0;
      continue;
    }
    if (n > 0 && start[n - 1] == '\r') n--;
    if (n > b->max_line) {
      if (b->truncate) n = b->max_line;
      else return LB_LINES_TOOLONG;
    }
    if (n == 0) continue;                  /* empty line */
    *line = start;
    *len = n;
    return LB_LINES_OK;
  }
}

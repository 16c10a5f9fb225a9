/*
** lines.h - NDJSON framing over a growable read buffer.
**
** The reader hands libuv free space inside the buffer (lb_lines_reserve),
** commits what was read (lb_lines_commit) and takes complete lines out
** (lb_lines_next) as pointers into the buffer: bytes are copied once, from
** the pipe into the buffer. A line is valid until the next reserve.
*/
#ifndef LB_LINES_H
#define LB_LINES_H

#include <stddef.h>
#include "luabyte.h"

typedef struct lb_lines {
  char  *buf;
  size_t cap;
  size_t head;       /* first unconsumed byte */
  size_t tail;       /* one past the last byte read */
  size_t scan;       /* bytes in [head, scan) are known to hold no newline */
  size_t max_line;   /* longest accepted line, without its newline */
  int    truncate;   /* 1: cut over-long lines into max_line pieces (stderr); 0: error */
  int    eof;        /* no more bytes will come: the last partial line is a line */
  int    discarding; /* dropping the rest of an over-long line */
} lb_lines;

#define LB_LINES_CHUNK  (64 * 1024)

#define LB_LINES_OK       0
#define LB_LINES_AGAIN    1    /* no complete line buffered */
/* LB_LINES_TOOLONG (a line exceeds max_line, truncate == 0) is in the
** runtime's error table (luabyte.h); out of memory is LB_ENOMEM. */
#define LB_LINES_NOMEM    LB_ENOMEM

void   lb_lines_init(lb_lines *b, size_t max_line, int truncate);
void   lb_lines_free(lb_lines *b);
/* Free space for the next read: at least LB_LINES_CHUNK bytes unless the
** pending line is near max_line. Returns NULL (and *len = 0) on ENOMEM. */
char  *lb_lines_reserve(lb_lines *b, size_t *len);
void   lb_lines_commit(lb_lines *b, size_t n);
/* Next complete line (CR before LF stripped, empty lines skipped).
** LB_LINES_OK: *line and *len set. LB_LINES_AGAIN: need more bytes (or, after
** eof, nothing left). LB_LINES_TOOLONG: the pending line is over max_line;
** the framer then discards bytes up to the next newline and goes on. */
int    lb_lines_next(lb_lines *b, const char **line, size_t *len);
/* A position to go back to: the line lb_lines_next returned after
** lb_lines_tell is returned again after lb_lines_seek (no reserve or
** commit in between), for a consumer that must put a line back. */
typedef struct lb_lines_pos { size_t head, scan; } lb_lines_pos;
lb_lines_pos lb_lines_tell(const lb_lines *b);
void   lb_lines_seek(lb_lines *b, lb_lines_pos pos);
/* Bytes buffered but not yet returned as lines. */
size_t lb_lines_pending(const lb_lines *b);

#endif

/*
** textbuf.c - growable text with sticky out-of-memory, hex digits, UTF-8
** (see textbuf.h).
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "textbuf.h"


void lb__sb_reserve(lb_sbuf *b, size_t extra) {
  size_t want;
  char *np;
  if (b->oom) return;
  if (extra > (size_t)-1 / 2 - b->n) { b->oom = 1; return; }
  want = b->n + extra + 1;
  if (want <= b->cap) return;
  if (want < 64) want = 64;
  if (want < b->cap * 2) want = b->cap * 2;
  np = realloc(b->p, want);
  if (!np) { b->oom = 1; return; }
  b->p = np;
  b->cap = want;
}

void lb__sb_addn(lb_sbuf *b, const char *s, size_t n) {
  lb__sb_reserve(b, n);
  if (b->oom) return;
  if (n) memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
}

void lb__sb_add(lb_sbuf *b, const char *s) { lb__sb_addn(b, s, strlen(s)); }
void lb__sb_addc(lb_sbuf *b, char c) { lb__sb_addn(b, &c, 1); }

void lb__sb_reset(lb_sbuf *b) {
  b->n = 0;
  b->oom = 0;
  if (b->p) b->p[0] = '\0';
}

void lb__sb_vprintf(lb_sbuf *b, const char *fmt, va_list ap) {
  va_list aq;
  int k;
  va_copy(aq, ap);
  k = vsnprintf(NULL, 0, fmt, aq);
  va_end(aq);
  if (k < 0) { b->oom = 1; return; }
  lb__sb_reserve(b, (size_t)k);
  if (b->oom) return;
  vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
  b->n += (size_t)k;
}

void lb__sb_printf(lb_sbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  lb__sb_vprintf(b, fmt, ap);
  va_end(ap);
}

int lb__hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

size_t lb__utf8_put(unsigned cp, unsigned char *o) {
  if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
  if (cp < 0x800) {
    o[0] = (unsigned char)(0xc0 | (cp >> 6)); o[1] = (unsigned char)(0x80 | (cp & 0x3f));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (unsigned char)(0xe0 | (cp >> 12)); o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    o[2] = (unsigned char)(0x80 | (cp & 0x3f));
    return 3;
  }
  o[0] = (unsigned char)(0xf0 | (cp >> 18)); o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
  o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)); o[3] = (unsigned char)(0x80 | (cp & 0x3f));
  return 4;
}

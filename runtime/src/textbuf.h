/*
** textbuf.h - growable text and the byte helpers that build it.
**
** lb_sbuf is a NUL-terminated string that grows by doubling; running out of
** memory is sticky (oom set, later appends do nothing) so that a caller
** builds a whole text and checks once at the end. The one growable text of
** the core: the JSON Schema validator and its parts (URIs, regex
** translation, messages) and the caches (SQL, messages).
*/
#ifndef LB_TEXTBUF_H
#define LB_TEXTBUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct lb_sbuf {
  char  *p;         /* the text, NUL-terminated once anything was added */
  size_t n, cap;
  int    oom;
} lb_sbuf;

/* Room for extra more bytes (and the NUL). */
void lb__sb_reserve(lb_sbuf *b, size_t extra);
void lb__sb_addn(lb_sbuf *b, const char *s, size_t n);
void lb__sb_add(lb_sbuf *b, const char *s);
void lb__sb_addc(lb_sbuf *b, char c);
/* Empties b, keeping its memory, and clears oom. */
void lb__sb_reset(lb_sbuf *b);
void lb__sb_vprintf(lb_sbuf *b, const char *fmt, va_list ap);
void lb__sb_printf(lb_sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
  __attribute__((format(printf, 2, 3)))
#endif
  ;

/* Value of a hex digit, -1 for any other byte. */
int lb__hexval(int c);

/* UTF-8 bytes of code point cp (<= 0x10FFFF) at o[0..4); returns how many. */
size_t lb__utf8_put(unsigned cp, unsigned char *o);

#endif

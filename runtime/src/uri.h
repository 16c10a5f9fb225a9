/*
** uri.h - URI references (RFC 3986) as JSON Schema needs them: $id and
** $ref resolved against a base URI, fragments percent-decoded.
*/
#ifndef LB_URI_H
#define LB_URI_H

#include <stddef.h>
#include "textbuf.h"

/* Append ref resolved against base (RFC 3986 5.2.2, dot segments removed). */
void lb__uri_resolve(lb_sbuf *o, const char *base, const char *ref);

/* Append s[0..n) percent-decoded (a bad escape is kept as it is). */
void lb__pct_decode(lb_sbuf *o, const char *s, size_t n);

#endif

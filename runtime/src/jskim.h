/*
** jskim.h - a strict, allocation-free JSON scanner.
**
** lb_jskim_validate() checks that a buffer holds exactly one RFC 8259 JSON
** value (surrounding white space allowed), with valid UTF-8 in strings,
** valid escapes (including surrogate pairs) and nesting no deeper than
** LB_JSKIM_MAXDEPTH.  After a buffer has been validated, the iterators below
** walk it without re-validating: they only skip values.  Nothing allocates.
*/
#ifndef LB_JSKIM_H
#define LB_JSKIM_H

#include <stddef.h>
#include "luabyte.h"

#define LB_JSKIM_MAXDEPTH 512

typedef enum lb_jtype {
  LB_JNONE = 0, LB_JNULL, LB_JFALSE, LB_JTRUE, LB_JNUMBER, LB_JSTRING,
  LB_JOBJECT, LB_JARRAY
} lb_jtype;

/* A value span: p points at its first byte ('"' for strings, '{' for
** objects), n covers the whole value including closing quote/bracket. */
typedef struct lb_jval {
  lb_jtype type;
  const char *p;
  size_t n;
} lb_jval;

/* Iterator over the members of an object or the elements of an array. */
typedef struct lb_jiter {
  const char *p;     /* next byte to look at */
  const char *end;   /* one past the closing bracket */
} lb_jiter;

/* Error codes (negative) returned by lb_jskim_validate, in the runtime's
** one table (luabyte.h): LB_JSKIM_ESYNTAX (unexpected byte), _ETRUNC
** (input ends inside a value), _EUTF8 (invalid UTF-8 in a string),
** _EESCAPE (bad escape or lone surrogate), _EDEPTH (nesting deeper than
** LB_JSKIM_MAXDEPTH), _ETRAIL (bytes after the value), _ECTRL (raw control
** character in a string). */

/* Validate buf[0..n). Returns 0 and fills *top (may be NULL) with the span of
** the top-level value, or a negative LB_JSKIM_E* code and sets *erroff (may be
** NULL) to the offset of the offending byte. */
int lb_jskim_validate(const char *buf, size_t n, lb_jval *top, size_t *erroff);

/* Human-readable text for an LB_JSKIM_E* code. */
const char *lb_jskim_strerror(int code);

/* Validate the one value that starts at buf[*pos] (after optional white
** space) and lies inside `depth` enclosing containers (0 at top level), so
** that the whole document still nests no deeper than LB_JSKIM_MAXDEPTH.
** Returns 0, fills *val (may be NULL) and advances *pos past the value (not
** past white space after it); or a negative LB_JSKIM_E* code with *erroff
** (may be NULL) set. Bytes after the value are not looked at. This lets a
** caller that knows the shape of a document (protocol.c) walk its outer
** levels itself and still validate everything in one pass. */
int lb_jskim_value(const char *buf, size_t n, size_t *pos, int depth,
                   lb_jval *val, size_t *erroff);

/* Span of the validated value starting exactly at p (no white space before
** it) and ending before `end`: fills *v and returns the byte after it. */
const char *lb_jskim_skip(const char *p, const char *end, lb_jval *v);

/* Start iterating a validated object or array value. */
void lb_jiter_init(lb_jiter *it, const lb_jval *container);

/* Next member of an object: 1 and fills key (a LB_JSTRING span, quotes
** included) and val; 0 at the end. */
int lb_jobj_next(lb_jiter *it, lb_jval *key, lb_jval *val);

/* Next element of an array: 1 and fills val; 0 at the end. */
int lb_jarr_next(lb_jiter *it, lb_jval *val);

/* Find a top-level member of a validated object by its (unescaped) key (the
** last one when a key repeats, as when the object is decoded into a table).
** Returns 1 and fills *val, or 0 when absent. Keys with escapes compare by
** their decoded value. */
int lb_jobj_find(const lb_jval *obj, const char *key, size_t klen, lb_jval *val);

/* Does a LB_JSTRING span decode to exactly lit[0..len)? */
int lb_jstr_eq(const lb_jval *s, const char *lit, size_t len);

/* Does the string span contain backslash escapes? (if not, its bytes between
** the quotes are its value) */
int lb_jstr_has_escapes(const lb_jval *s);

/* Decode a validated string span into out (cap bytes). Returns the decoded
** length (which may exceed cap: then call again with a larger buffer). The
** decoded length is never more than s->n - 2. */
size_t lb_jstr_decode(const lb_jval *s, char *out, size_t cap);

/* Is a LB_JNUMBER span an integer (no fraction, no exponent)? */
int lb_jnum_is_integer(const lb_jval *v);

/* Parse an integer number span into *out. Returns 1 on success, 0 if it is
** not an integer or does not fit in a signed 64-bit integer. */
int lb_jnum_to_int64(const lb_jval *v, long long *out);

/* Parse any number span as a double. */
double lb_jnum_to_double(const lb_jval *v);

#endif

/*
** jsonenc.h - the one JSON text writer for numbers and strings.
**
** Every place that writes JSON text (record.c for Lua values, pump.c for
** cache rows, the Lua kit through airbyte.json) formats numbers and escapes
** strings here, so a value reads back the same whichever path it took:
**   integers    decimal digits, int64 exactly;
**   floats      the shortest of 15, 16 or 17 significant digits that parses
**               back to the same double, always with a '.' or an exponent
**               (1.0 -> "1.0", 1.1 -> "1.1", 5e-324 -> "4.94065645841247e-324"),
**               '.' whatever the C locale's decimal point is;
**   strings     '"', '\\' and the control characters below 0x20 escaped
**               (\n \r \t \b \f by name, the rest as \u00XX), every other
**               byte as it is (UTF-8 is written raw, never as \u escapes).
** Nothing allocates: callers reserve the room named below.
*/
#ifndef LB_JSONENC_H
#define LB_JSONENC_H

#include <stddef.h>

/* Room for any number lb__json_fmt_int / lb__json_fmt_double writes. */
#define LB_JSON_NUM_ROOM 32

/* Room lb__json_quote may need for n input bytes (quotes included). */
#define LB_JSON_QUOTE_ROOM(n) (6 * (n) + 2)

/* Decimal text of v at out (LB_JSON_NUM_ROOM bytes); returns its length. */
size_t lb__json_fmt_int(long long v, char *out);

/* JSON text of a finite double at out (LB_JSON_NUM_ROOM bytes); returns its
** length, or 0 for NaN and the infinities, which JSON cannot hold. */
size_t lb__json_fmt_double(double d, char *out);

/* The number of leading bytes of s[0..n) that a JSON string holds as they
** are (n when nothing needs escaping). Bytes >= 0x80 count as plain. */
size_t lb__json_plain_span(const char *s, size_t n);

/* Exact length lb__json_quote writes for s[0..n), quotes included. */
size_t lb__json_quoted_len(const char *s, size_t n);

/* Write s[0..n) as a quoted JSON string at out, which has room for
** lb__json_quoted_len(s, n) (LB_JSON_QUOTE_ROOM(n) always suffices).
** Returns the length written; with `strict`, -1 (and a partial write) when
** s is not valid UTF-8 (overlongs, surrogates and code points above
** U+10FFFF are invalid). Without it, bytes >= 0x80 are copied unchecked
** (for text that was validated when it was read). */
long lb__json_quote(const char *s, size_t n, char *out, int strict);

#endif

/*
** jsonenc.c - the one JSON text writer for numbers and strings (see
** jsonenc.h for the rules).
**
** Floats: the shortest round trip is found by printing with 15, 16 and 17
** significant digits and keeping the first that strtod reads back as the
** same double (17 always does). Integral values below 1e15 take a shortcut:
** their digits and ".0", which is what "%.15g" gives for them anyway, at the
** cost of an integer conversion instead of two libc calls.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonenc.h"

typedef unsigned char uchar;

#define IS_DIGIT(c) ((unsigned)((c) - '0') < 10u)

/* ---------------------------------------------------------------------- */
/* Numbers                                                                 */
/* ---------------------------------------------------------------------- */

size_t lb__json_fmt_int(long long v, char *out) {
  char tmp[24];
  size_t n = 0, i;
  /* work on the unsigned magnitude: -LLONG_MIN overflows */
  unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
  do { tmp[n++] = (char)('0' + u % 10); u /= 10; } while (u);
  if (v < 0) tmp[n++] = '-';
  for (i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  return n;
}

size_t lb__json_fmt_double(double d, char *out) {
  char tmp[40];
  int prec, len = 0;
  size_t i, o = 0;
  int dot = 0, exp = 0;
  if (!isfinite(d)) return 0;
  /* the range test comes first: casting a double that does not fit a
  ** long long is undefined */
  if (d > -1e15 && d < 1e15 && d == (double)(long long)d) {
    if (d == 0 && signbit(d)) out[o++] = '-';
    o += lb__json_fmt_int((long long)d, out + o);
    out[o++] = '.';
    out[o++] = '0';
    return o;
  }
  for (prec = 15; prec <= 17; prec++) {
    len = snprintf(tmp, sizeof tmp, "%.*g", prec, d);
    if (prec == 17 || strtod(tmp, NULL) == d) break;
  }
  /* snprintf and strtod agree on the locale's decimal point; JSON wants
  ** '.': whatever is not a digit, sign or exponent is that point */
  for (i = 0; i < (size_t)len && o < LB_JSON_NUM_ROOM - 2; i++) {
    char c = tmp[i];
    if (IS_DIGIT(c) || c == '-' || c == '+') out[o++] = c;
    else if (c == 'e' || c == 'E') { out[o++] = 'e'; exp = 1; }
    else if (!dot) { out[o++] = '.'; dot = 1; }
  }
  /* keep a float a float: 1e15 prints as "1e+15", but 123456789012345678
  ** needs 17 digits and prints without an exponent */
  if (!dot && !exp) { out[o++] = '.'; out[o++] = '0'; }
  return o;
}

/* ---------------------------------------------------------------------- */
/* Strings                                                                 */
/* ---------------------------------------------------------------------- */

/* Per byte: 0 written as it is, 1 escaped, 2 the lead (or stray
** continuation) byte of a non-ASCII sequence. */
#define R16(x) x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x
static const uchar cls[256] = {
  R16(1), R16(1),                                              /* 00-1f */
  0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,              /* 20-2f: '"' */
  R16(0), R16(0),                                              /* 30-4f */
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,              /* 50-5f: '\\' */
  R16(0), R16(0),                                              /* 60-7f */
  R16(2), R16(2), R16(2), R16(2), R16(2), R16(2), R16(2), R16(2)   /* 80-ff */
};

/* The escape of a byte of class 1, and its length (2 or 6). */
static size_t escape_of(uchar c, char *o) {
  static const char hex[] = "0123456789abcdef";
  o[0] = '\\';
  switch (c) {
    case '"': o[1] = '"'; return 2;
    case '\\': o[1] = '\\'; return 2;
    case '\n': o[1] = 'n'; return 2;
    case '\r': o[1] = 'r'; return 2;
    case '\t': o[1] = 't'; return 2;
    case '\b': o[1] = 'b'; return 2;
    case '\f': o[1] = 'f'; return 2;
    default:
      o[1] = 'u'; o[2] = '0'; o[3] = '0'; o[4] = hex[c >> 4]; o[5] = hex[c & 15];
      return 6;
  }
}

/* Length of the valid UTF-8 sequence at p (lead byte >= 0x80), or 0. */
static size_t utf8_seq(const uchar *p, size_t avail) {
  uchar c = p[0];
  size_t len, i;
  uchar lo = 0x80, hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) len = 2;
  else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    if (c == 0xe0) lo = 0xa0;           /* overlong */
    else if (c == 0xed) hi = 0x9f;      /* surrogates */
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    if (c == 0xf0) lo = 0x90;           /* overlong */
    else if (c == 0xf4) hi = 0x8f;      /* > U+10FFFF */
  } else {
    return 0;
  }
  if (avail < len || p[1] < lo || p[1] > hi) return 0;
  for (i = 2; i < len; i++)
    if ((p[i] & 0xc0) != 0x80) return 0;
  return len;
}

size_t lb__json_plain_span(const char *cs, size_t n) {
  const uchar *s = (const uchar *)cs;
  size_t i = 0;
  while (i < n && cls[s[i]] != 1) i++;
  return i;
}

size_t lb__json_quoted_len(const char *cs, size_t n) {
  const uchar *s = (const uchar *)cs;
  size_t i, len = n + 2;
  char tmp[6];
  for (i = 0; i < n; i++)
    if (cls[s[i]] == 1) len += escape_of(s[i], tmp) - 1;
  return len;
}

long lb__json_quote(const char *cs, size_t n, char *out, int strict) {
  const uchar *s = (const uchar *)cs;
  char *o = out;
  size_t i = 0;
  *o++ = '"';
  while (i < n) {
    size_t j = i;
    uchar k;
    /* the run that needs nothing: ASCII, and without `strict` any byte
    ** >= 0x80 too */
    if (strict) while (j < n && cls[s[j]] == 0) j++;
    else while (j < n && cls[s[j]] != 1) j++;
    memcpy(o, s + i, j - i);
    o += j - i;
    if (j == n) break;
    k = cls[s[j]];
    if (k == 2) {                        /* strict: check the sequence */
      size_t len = utf8_seq(s + j, n - j);
      if (!len) return -1;
      memcpy(o, s + j, len);
      o += len;
      i = j + len;
      continue;
    }
    o += escape_of(s[j], o);
    i = j + 1;
  }
  *o++ = '"';
  return (long)(o - out);
}

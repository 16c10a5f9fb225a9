/*
** jskim.c - a strict, allocation-free JSON scanner (RFC 8259).
**
** The validator is a small goto state machine: no recursion (the container
** stack is a bit per level in a fixed array) and no allocation. It runs on
** every line a connector prints, so the string loop, where most bytes of a
** record are, looks at 16 bytes at a time (SSE2, baseline on x86-64) or 8
** (a SWAR word trick elsewhere) and only drops to a per-byte table for the
** bytes that need a decision: quote, backslash, control, non-ASCII.
**
** The iterators and converters below trust that their input was validated
** and only skip: they never fail, they only stop at the end of the span.
*/
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <stdio.h>

#include "jskim.h"
#include "errtab.h"

/* SSE2 is part of x86-64; LB_JSKIM_NO_SIMD forces the portable word loop
** (to test it on x86 too). */
#if defined(__SSE2__) && !defined(LB_JSKIM_NO_SIMD)
#define JSKIM_SSE2 1
#include <emmintrin.h>
#endif

typedef unsigned char uchar;

/* ---------------------------------------------------------------------- */
/* Byte classes inside strings                                             */
/* ---------------------------------------------------------------------- */

enum {
  S_PLAIN = 0, S_QUOTE, S_BSLASH, S_CTRL, S_BAD,
  S_U2,        /* C2..DF: one continuation byte */
  S_E0,        /* E0: second byte A0..BF (no overlongs) */
  S_U3,        /* E1..EC, EE..EF: second byte 80..BF */
  S_ED,        /* ED: second byte 80..9F (no UTF-16 surrogates) */
  S_F0,        /* F0: second byte 90..BF (no overlongs) */
  S_U4,        /* F1..F3: second byte 80..BF */
  S_F4         /* F4: second byte 80..8F (nothing above U+10FFFF) */
};

#define R16(x) x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x

static const uchar str_class[256] = {
  R16(S_CTRL), R16(S_CTRL),                                   /* 00-1f */
  0, 0, S_QUOTE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,       /* 20-2f */
  R16(0), R16(0),                                             /* 30-4f */
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, S_BSLASH, 0, 0, 0,      /* 50-5f */
  R16(0), R16(0),                                             /* 60-7f */
  R16(S_BAD), R16(S_BAD), R16(S_BAD), R16(S_BAD),             /* 80-bf */
  S_BAD, S_BAD, S_U2, S_U2, S_U2, S_U2, S_U2, S_U2,           /* c0-c7 */
  S_U2, S_U2, S_U2, S_U2, S_U2, S_U2, S_U2, S_U2,             /* c8-cf */
  R16(S_U2),                                                  /* d0-df */
  S_E0, S_U3, S_U3, S_U3, S_U3, S_U3, S_U3, S_U3,             /* e0-e7 */
  S_U3, S_U3, S_U3, S_U3, S_U3, S_ED, S_U3, S_U3,             /* e8-ef */
  S_F0, S_U4, S_U4, S_U4, S_F4, S_BAD, S_BAD, S_BAD,          /* f0-f7 */
  S_BAD, S_BAD, S_BAD, S_BAD, S_BAD, S_BAD, S_BAD, S_BAD      /* f8-ff */
};

/* Length, and allowed range of the second byte, per multi-byte class. */
static const uchar u8_len[12] = { 0, 0, 0, 0, 0, 2, 3, 3, 3, 4, 4, 4 };
static const uchar u8_lo[12]  = { 0, 0, 0, 0, 0, 0x80, 0xa0, 0x80, 0x80, 0x90, 0x80, 0x80 };
static const uchar u8_hi[12]  = { 0, 0, 0, 0, 0, 0xbf, 0xbf, 0xbf, 0x9f, 0xbf, 0xbf, 0x8f };

/* Bytes the container skipper must look at. */
static const uchar skip_class[256] = {
  R16(0), R16(0),
  0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,             /* '"' */
  R16(0), R16(0),
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 3, 0, 0,             /* '[' ']' */
  R16(0),
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 3, 0, 0,             /* '{' '}' */
  R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0)
};

#define WS_MASK ((1ULL << ' ') | (1ULL << '\t') | (1ULL << '\n') | (1ULL << '\r'))
#define IS_WS(c) ((c) <= ' ' && ((WS_MASK >> (c)) & 1))
#define SKIP_WS(p, end) while ((p) < (end) && IS_WS(*(p))) (p)++
#define IS_DIGIT(c) ((unsigned)((c) - '0') < 10u)

static int hexval(uchar c) {
  if (IS_DIGIT(c)) return c - '0';
  c |= 0x20;
  if ((unsigned)(c - 'a') < 6u) return c - 'a' + 10;
  return -1;
}

/* Value of 4 hex digits, or -1. */
static long hex4(const uchar *p) {
  long v = 0;
  int i;
  for (i = 0; i < 4; i++) {
    int h = hexval(p[i]);
    if (h < 0) return -1;
    v = (v << 4) | h;
  }
  return v;
}

/* A \uXXXX escape cut by the end of input: ETRUNC if what is there could
** still become valid, EESCAPE if it is already wrong. `pat` is "\\uHHHH"
** with H matching any hex digit. */
static int partial_u(const uchar *p, const uchar *end, const char *pat) {
  for (; p < end && *pat; p++, pat++) {
    if (*pat == 'H' ? hexval(*p) < 0 : *p != (uchar)*pat) return LB_JSKIM_EESCAPE;
  }
  return LB_JSKIM_ETRUNC;
}

/* Handle the escape at p (a backslash). Returns the byte after it or NULL
** with *err set; *errp is the backslash. */
static const uchar *scan_escape(const uchar *p, const uchar *end, int *err) {
  long hi, lo;
  if (end - p < 2) { *err = LB_JSKIM_ETRUNC; return NULL; }
  switch (p[1]) {
    case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r':
    case 't':
      return p + 2;
    case 'u':
      break;
    default:
      *err = LB_JSKIM_EESCAPE;
      return NULL;
  }
  if (end - p < 6) { *err = partial_u(p, end, "\\uHHHH"); return NULL; }
  hi = hex4(p + 2);
  if (hi < 0) { *err = LB_JSKIM_EESCAPE; return NULL; }
  if (hi < 0xd800 || hi > 0xdfff) return p + 6;
  if (hi >= 0xdc00) { *err = LB_JSKIM_EESCAPE; return NULL; }  /* lone low half */
  /* a high surrogate must be followed at once by an escaped low one */
  if (end - p < 12) { *err = partial_u(p + 6, end, "\\uHHHH"); return NULL; }
  if (p[6] != '\\' || p[7] != 'u') { *err = LB_JSKIM_EESCAPE; return NULL; }
  lo = hex4(p + 8);
  if (lo < 0xdc00 || lo > 0xdfff) { *err = LB_JSKIM_EESCAPE; return NULL; }
  return p + 12;
}

/* Validate a multi-byte UTF-8 sequence of class k at p. */
static const uchar *scan_utf8(const uchar *p, const uchar *end, int k, int *err) {
  size_t len = u8_len[k], avail = (size_t)(end - p), i;
  if (avail >= len) {
    if (p[1] < u8_lo[k] || p[1] > u8_hi[k]) goto bad;
    for (i = 2; i < len; i++)
      if ((p[i] & 0xc0) != 0x80) goto bad;
    return p + len;
  }
  /* cut by the end of input: truncated if what is there is a valid start */
  if (avail >= 2 && (p[1] < u8_lo[k] || p[1] > u8_hi[k])) goto bad;
  for (i = 2; i < avail; i++)
    if ((p[i] & 0xc0) != 0x80) goto bad;
  *err = LB_JSKIM_ETRUNC;
  return NULL;
bad:
  *err = LB_JSKIM_EUTF8;
  return NULL;
}

#if defined(__GNUC__)
#define JSKIM_INLINE __attribute__((always_inline)) inline
#else
#define JSKIM_INLINE inline
#endif

/* Validate a string whose opening quote is at p[-1]. Returns the byte after
** the closing quote, or NULL with *err and *errp (the offending byte).
** Inlined into its callers: strings are most of the work, and a call per
** string costs about as much as scanning a short key. */
static JSKIM_INLINE const uchar *scan_str(const uchar *p, const uchar *end, int *err,
                                          const uchar **errp) {
#if defined(JSKIM_SSE2)
  const __m128i vq = _mm_set1_epi8('"');
  const __m128i vb = _mm_set1_epi8('\\');
  const __m128i vc = _mm_set1_epi8(0x20);
#endif
  const uchar *q;
  int k;
  for (;;) {
#if defined(JSKIM_SSE2)
    /* signed compare: bytes >= 0x80 are negative, so "< 0x20" flags both
    ** control characters and non-ASCII bytes */
    while (end - p >= 16) {
      __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
      __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, vq),
                                            _mm_cmpeq_epi8(v, vb)),
                               _mm_cmplt_epi8(v, vc));
      unsigned mask = (unsigned)_mm_movemask_epi8(m);
      if (mask) { p += __builtin_ctz(mask); goto special; }
      p += 16;
    }
#else
    /* 8 bytes at a time: a word has no byte to look at when it has no
    ** byte < 0x20, none with the high bit, no '"' and no '\\' */
    while (end - p >= 8) {
      const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
      uint64_t w, xq, xb;
      memcpy(&w, p, 8);
      xq = w ^ (ones * '"');
      xb = w ^ (ones * '\\');
      /* (x - ones*n) & ~x & highs is non-zero iff some byte of x is < n */
      if ((((w - ones * 0x20) & ~w) | ((xq - ones) & ~xq) |
           ((xb - ones) & ~xb) | w) & highs)
        break;
      p += 8;
    }
#endif
    while (p < end && str_class[*p] == S_PLAIN) p++;
    if (p >= end) { *err = LB_JSKIM_ETRUNC; *errp = end; return NULL; }
#if defined(JSKIM_SSE2)
  special:
#endif
    if (*p == '"') return p + 1;        /* by far the most common stop */
    k = str_class[*p];
    switch (k) {
      case S_QUOTE:
        return p + 1;
      case S_BSLASH:
        q = scan_escape(p, end, err);
        break;
      case S_CTRL:
        *err = LB_JSKIM_ECTRL; *errp = p;
        return NULL;
      case S_BAD:
        *err = LB_JSKIM_EUTF8; *errp = p;
        return NULL;
      default:
        q = scan_utf8(p, end, k, err);
        break;
    }
    if (!q) { *errp = p; return NULL; }
    p = q;
  }
}

/* Validate a number starting at p (a '-' or a digit). */
static const uchar *scan_num(const uchar *p, const uchar *end, int *err,
                             const uchar **errp) {
  if (*p == '-') {
    p++;
    if (p == end) goto trunc;
  }
  if (*p == '0') {
    p++;
    if (p < end && IS_DIGIT(*p)) goto syntax;  /* leading zero */
  } else if (IS_DIGIT(*p)) {
    p++;
    while (p < end && IS_DIGIT(*p)) p++;
  } else {
    goto syntax;
  }
  if (p < end && *p == '.') {
    p++;
    if (p == end) goto trunc;
    if (!IS_DIGIT(*p)) goto syntax;
    while (p < end && IS_DIGIT(*p)) p++;
  }
  if (p < end && (*p | 0x20) == 'e') {
    p++;
    if (p == end) goto trunc;
    if (*p == '+' || *p == '-') {
      p++;
      if (p == end) goto trunc;
    }
    if (!IS_DIGIT(*p)) goto syntax;
    while (p < end && IS_DIGIT(*p)) p++;
  }
  return p;
trunc:
  *err = LB_JSKIM_ETRUNC; *errp = end;
  return NULL;
syntax:
  *err = LB_JSKIM_ESYNTAX; *errp = p;
  return NULL;
}

static lb_jtype type_of(uchar c) {
  switch (c) {
    case '"': return LB_JSTRING;
    case '{': return LB_JOBJECT;
    case '[': return LB_JARRAY;
    case 't': return LB_JTRUE;
    case 'f': return LB_JFALSE;
    case 'n': return LB_JNULL;
    default: return LB_JNUMBER;
  }
}

/* The state machine. Validates one value starting at *pp (white space
** first allowed) nested inside depth0 containers. */
static int scan_value(const uchar *p, const uchar *end, const uchar **pp,
                      int depth0, lb_jval *val, const uchar **errp) {
  /* bit i set: level i is an object. A word is written whole when its
  ** first level is pushed, so no indeterminate bit is ever read, and there
  ** is nothing to clear on entry. */
  uint64_t stk[(LB_JSKIM_MAXDEPTH + 63) / 64];
  const int maxd = LB_JSKIM_MAXDEPTH - depth0;
  int d = 0, in_obj = 0, err = 0;
  const uchar *start, *q;
  const char *lit;
  size_t litn;

  SKIP_WS(p, end);
  if (p == end) { err = LB_JSKIM_ETRUNC; goto fail; }
  start = p;

value:
  if (*p == '"') {                  /* most values: test before the jump table */
    p = scan_str(p + 1, end, &err, errp);
    if (!p) return err;
    goto after;
  }
  switch (*p) {
    case '{':
      if (d >= maxd) { err = LB_JSKIM_EDEPTH; goto fail; }
      if (d & 63) stk[d >> 6] |= 1ULL << (d & 63);
      else stk[d >> 6] = 1;
      d++; in_obj = 1; p++;
      SKIP_WS(p, end);
      if (p == end) { err = LB_JSKIM_ETRUNC; goto fail; }
      if (*p == '}') { p++; goto pop; }
      goto key;
    case '[':
      if (d >= maxd) { err = LB_JSKIM_EDEPTH; goto fail; }
      if (d & 63) stk[d >> 6] &= ~(1ULL << (d & 63));
      else stk[d >> 6] = 0;
      d++; in_obj = 0; p++;
      SKIP_WS(p, end);
      if (p == end) { err = LB_JSKIM_ETRUNC; goto fail; }
      if (*p == ']') { p++; goto pop; }
      goto value;
    case 't': lit = "true"; litn = 4; goto literal;
    case 'f': lit = "false"; litn = 5; goto literal;
    case 'n': lit = "null"; litn = 4; goto literal;
    case '-': case '0': case '1': case '2': case '3': case '4': case '5':
    case '6': case '7': case '8': case '9':
      p = scan_num(p, end, &err, errp);
      if (!p) return err;
      goto after;
    default:
      err = LB_JSKIM_ESYNTAX;
      goto fail;
  }

literal:
  if ((size_t)(end - p) >= litn) {
    if (memcmp(p, lit, litn) != 0) { err = LB_JSKIM_ESYNTAX; goto fail_lit; }
    p += litn;
    goto after;
  }
  err = memcmp(p, lit, (size_t)(end - p)) == 0 ? LB_JSKIM_ETRUNC : LB_JSKIM_ESYNTAX;
fail_lit:
  /* point at the first byte that differs */
  for (q = p; q < end && (size_t)(q - p) < litn && *q == (uchar)lit[q - p]; q++) {}
  *errp = q;
  return err;

key:
  if (*p != '"') { err = LB_JSKIM_ESYNTAX; goto fail; }
  p = scan_str(p + 1, end, &err, errp);
  if (!p) return err;
  SKIP_WS(p, end);
  if (p == end) { err = LB_JSKIM_ETRUNC; goto fail; }
  if (*p != ':') { err = LB_JSKIM_ESYNTAX; goto fail; }
  p++;
  SKIP_WS(p, end);
  if (p == end) { err = LB_JSKIM_ETRUNC; goto fail; }
  goto value;

pop:
  d--;
  in_obj = d ? (int)((stk[(d - 1) >> 6] >> ((d - 1) & 63)) & 1) : 0;
  /* fall through */
after:
  if (d == 0) {
    *pp = p;
    if (val) { val->type = type_of(*start); val->p = (const char *)start;
               val->n = (size_t)(p - start); }
    return 0;
  }
  SKIP_WS(p, end);
  if (p == end) { err = LB_JSKIM_ETRUNC; goto fail; }
  if (*p == ',') {
    p++;
    SKIP_WS(p, end);
    if (p == end) { err = LB_JSKIM_ETRUNC; goto fail; }
    if (in_obj) goto key;
    goto value;
  }
  if (*p == (in_obj ? '}' : ']')) { p++; goto pop; }
  err = LB_JSKIM_ESYNTAX;

fail:
  *errp = p;
  return err;
}

int lb_jskim_value(const char *buf, size_t n, size_t *pos, int depth,
                   lb_jval *val, size_t *erroff) {
  const uchar *b = (const uchar *)buf, *end, *p, *errp;
  int rc;
  if (*pos >= n) {
    if (erroff) *erroff = n;
    return LB_JSKIM_ETRUNC;
  }
  end = b + n;
  p = errp = b + *pos;
  if (depth < 0) depth = 0;
  SKIP_WS(p, end);
  if (p < end && *p == '"') {
    /* keys and most member values: skip the state machine's set-up */
    const uchar *q = scan_str(p + 1, end, &rc, &errp);
    if (!q) {
      if (erroff) *erroff = (size_t)(errp - b);
      return rc;
    }
    if (val) { val->type = LB_JSTRING; val->p = (const char *)p; val->n = (size_t)(q - p); }
    *pos = (size_t)(q - b);
    return 0;
  }
  rc = scan_value(p, end, &p, depth, val, &errp);
  if (rc) {
    if (erroff) *erroff = (size_t)(errp - b);
    return rc;
  }
  *pos = (size_t)(p - b);
  return 0;
}

int lb_jskim_validate(const char *buf, size_t n, lb_jval *top, size_t *erroff) {
  const uchar *b = (const uchar *)buf, *end, *p, *errp;
  int rc;
  if (n == 0) {                     /* buf may then be NULL: no arithmetic on it */
    if (erroff) *erroff = 0;
    return LB_JSKIM_ETRUNC;
  }
  end = b + n; p = errp = b;
  rc = scan_value(p, end, &p, 0, top, &errp);
  if (rc) {
    if (erroff) *erroff = (size_t)(errp - b);
    return rc;
  }
  SKIP_WS(p, end);
  if (p != end) {
    if (erroff) *erroff = (size_t)(p - b);
    return LB_JSKIM_ETRAIL;
  }
  return 0;
}

const char *lb_jskim_strerror(int code) {
  return code == 0 ? "ok" : lb__err_text(code);   /* texts in the one table */
}

/* ---------------------------------------------------------------------- */
/* Skipping validated input                                                */
/* ---------------------------------------------------------------------- */

/* Byte after the closing quote of a validated string whose opening quote is
** at p[-1]. A quote ends the string unless an odd run of backslashes comes
** right before it; the opening quote stops the backwards count. */
static const uchar *skip_str(const uchar *p, const uchar *end) {
  for (;;) {
    const uchar *q, *b;
#if defined(JSKIM_SSE2)
    const __m128i vq = _mm_set1_epi8('"');
    q = NULL;
    while (end - p >= 16) {
      __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
      unsigned mask = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, vq));
      if (mask) { q = p + __builtin_ctz(mask); break; }
      p += 16;
    }
    if (!q) q = memchr(p, '"', (size_t)(end - p));
#else
    q = memchr(p, '"', (size_t)(end - p));
#endif
    if (!q) return end;
    for (b = q; b[-1] == '\\'; b--) {}
    if (((q - b) & 1) == 0) return q + 1;
    p = q + 1;
  }
}

static const uchar *skip_container(const uchar *p, const uchar *end) {
  int d = 0;
  while (p < end) {
    switch (skip_class[*p]) {
      case 0: p++; break;
      case 1: p = skip_str(p + 1, end); break;
      case 2: d++; p++; break;
      default:
        p++;
        if (--d == 0) return p;
        break;
    }
  }
  return end;
}

const char *lb_jskim_skip(const char *cp, const char *cend, lb_jval *v) {
  const uchar *p = (const uchar *)cp, *end = (const uchar *)cend, *q;
  lb_jtype t;
  if (p >= end) {
    v->type = LB_JNONE; v->p = cp; v->n = 0;
    return cend;
  }
  t = type_of(*p);
  switch (t) {
    case LB_JSTRING: q = skip_str(p + 1, end); break;
    case LB_JOBJECT: case LB_JARRAY: q = skip_container(p, end); break;
    case LB_JTRUE: case LB_JNULL: q = p + 4; break;
    case LB_JFALSE: q = p + 5; break;
    default:
      q = p + 1;
      while (q < end && (IS_DIGIT(*q) || *q == '.' || *q == 'e' || *q == 'E' ||
                         *q == '+' || *q == '-'))
        q++;
      break;
  }
  if (q > end) q = end;
  v->type = t; v->p = cp; v->n = (size_t)(q - p);
  return (const char *)q;
}

/* ---------------------------------------------------------------------- */
/* Iterators                                                               */
/* ---------------------------------------------------------------------- */

void lb_jiter_init(lb_jiter *it, const lb_jval *c) {
  if (c && (c->type == LB_JOBJECT || c->type == LB_JARRAY) && c->n >= 2) {
    it->p = c->p + 1;
    it->end = c->p + c->n;
  } else {
    it->p = it->end = c ? c->p : NULL;
  }
}

/* Position at the next member/element, past a separating comma; NULL at
** the closing bracket. */
static const uchar *iter_next(lb_jiter *it) {
  const uchar *p = (const uchar *)it->p, *end = (const uchar *)it->end;
  SKIP_WS(p, end);
  if (p < end && *p == ',') {
    p++;
    SKIP_WS(p, end);
  }
  if (p >= end || *p == '}' || *p == ']') {
    it->p = it->end;
    return NULL;
  }
  return p;
}

int lb_jobj_next(lb_jiter *it, lb_jval *key, lb_jval *val) {
  const uchar *p = iter_next(it), *end = (const uchar *)it->end, *q;
  if (!p) return 0;
  q = skip_str(p + 1, end);
  key->type = LB_JSTRING; key->p = (const char *)p; key->n = (size_t)(q - p);
  p = q;
  SKIP_WS(p, end);
  if (p < end) p++;                /* ':' */
  SKIP_WS(p, end);
  it->p = lb_jskim_skip((const char *)p, it->end, val);
  return 1;
}

int lb_jarr_next(lb_jiter *it, lb_jval *val) {
  const uchar *p = iter_next(it);
  if (!p) return 0;
  it->p = lb_jskim_skip((const char *)p, it->end, val);
  return 1;
}

/* ---------------------------------------------------------------------- */
/* Strings                                                                 */
/* ---------------------------------------------------------------------- */

/* Decode the (validated) escape at *pp into out[0..4). Returns the length. */
static size_t decode_escape(const uchar **pp, uchar out[4]) {
  const uchar *p = *pp;
  long cp;
  switch (p[1]) {
    case 'b': out[0] = '\b'; break;
    case 'f': out[0] = '\f'; break;
    case 'n': out[0] = '\n'; break;
    case 'r': out[0] = '\r'; break;
    case 't': out[0] = '\t'; break;
    case 'u':
      cp = hex4(p + 2);
      p += 6;
      if (cp >= 0xd800 && cp <= 0xdbff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (hex4(p + 2) - 0xdc00);
        p += 6;
      }
      *pp = p;
      if (cp < 0x80) { out[0] = (uchar)cp; return 1; }
      if (cp < 0x800) {
        out[0] = (uchar)(0xc0 | (cp >> 6));
        out[1] = (uchar)(0x80 | (cp & 0x3f));
        return 2;
      }
      if (cp < 0x10000) {
        out[0] = (uchar)(0xe0 | (cp >> 12));
        out[1] = (uchar)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (uchar)(0x80 | (cp & 0x3f));
        return 3;
      }
      out[0] = (uchar)(0xf0 | (cp >> 18));
      out[1] = (uchar)(0x80 | ((cp >> 12) & 0x3f));
      out[2] = (uchar)(0x80 | ((cp >> 6) & 0x3f));
      out[3] = (uchar)(0x80 | (cp & 0x3f));
      return 4;
    default: out[0] = p[1]; break;   /* '"', '\\', '/' */
  }
  *pp = p + 2;
  return 1;
}

int lb_jstr_has_escapes(const lb_jval *s) {
  if (s->type != LB_JSTRING || s->n < 2) return 0;
  return memchr(s->p + 1, '\\', s->n - 2) != NULL;
}

size_t lb_jstr_decode(const lb_jval *s, char *out, size_t cap) {
  const uchar *p, *e;
  size_t k = 0;
  if (s->type != LB_JSTRING || s->n < 2) return 0;
  p = (const uchar *)s->p + 1;
  e = (const uchar *)s->p + s->n - 1;
  while (p < e) {
    const uchar *b = memchr(p, '\\', (size_t)(e - p));
    size_t run = (size_t)((b ? b : e) - p);
    if (k < cap) memcpy(out + k, p, run < cap - k ? run : cap - k);
    k += run;
    p += run;
    if (!b) break;
    {
      uchar tmp[4];
      size_t m = decode_escape(&p, tmp), i;
      for (i = 0; i < m; i++, k++)
        if (k < cap) out[k] = (char)tmp[i];
    }
  }
  return k;
}

int lb_jstr_eq(const lb_jval *s, const char *lit, size_t len) {
  const uchar *p, *e;
  size_t k = 0;
  if (s->type != LB_JSTRING || s->n < 2) return 0;
  p = (const uchar *)s->p + 1;
  e = (const uchar *)s->p + s->n - 1;
  /* the common case: the raw bytes are the value */
  if ((size_t)(e - p) == len && memcmp(p, lit, len) == 0 &&
      !memchr(p, '\\', len))
    return 1;
  if ((size_t)(e - p) < len) return 0;   /* decoding never lengthens */
  while (p < e) {
    const uchar *b = memchr(p, '\\', (size_t)(e - p));
    size_t run = (size_t)((b ? b : e) - p);
    if (run > len - k || memcmp(p, lit + k, run) != 0) return 0;
    k += run;
    p += run;
    if (!b) break;
    {
      uchar tmp[4];
      size_t m = decode_escape(&p, tmp);
      if (m > len - k || memcmp(tmp, lit + k, m) != 0) return 0;
      k += m;
    }
  }
  return k == len;
}

int lb_jobj_find(const lb_jval *obj, const char *key, size_t klen, lb_jval *val) {
  lb_jiter it;
  lb_jval k, v;
  int found = 0;
  if (obj->type != LB_JOBJECT) return 0;
  lb_jiter_init(&it, obj);
  /* the last duplicate wins, as when the object is decoded into a table */
  while (lb_jobj_next(&it, &k, &v)) {
    if (lb_jstr_eq(&k, key, klen)) {
      *val = v;
      found = 1;
    }
  }
  return found;
}

/* ---------------------------------------------------------------------- */
/* Numbers                                                                 */
/* ---------------------------------------------------------------------- */

int lb_jnum_is_integer(const lb_jval *v) {
  size_t i;
  if (v->type != LB_JNUMBER) return 0;
  for (i = 0; i < v->n; i++) {
    char c = v->p[i];
    if (c == '.' || c == 'e' || c == 'E') return 0;
  }
  return v->n > 0;
}

int lb_jnum_to_int64(const lb_jval *v, long long *out) {
  const char *s = v->p, *e = v->p + v->n;
  unsigned long long acc = 0, limit;
  int neg = 0;
  if (v->type != LB_JNUMBER) return 0;
  if (s < e && *s == '-') { neg = 1; s++; }
  if (s == e) return 0;
  limit = neg ? 9223372036854775808ULL : 9223372036854775807ULL;
  for (; s < e; s++) {
    unsigned c = (unsigned)(*s - '0');
    if (c > 9) return 0;
    if (acc > (limit - c) / 10) return 0;
    acc = acc * 10 + c;
  }
  if (!neg) *out = (long long)acc;
  else if (acc == 9223372036854775808ULL) *out = -9223372036854775807LL - 1;
  else *out = -(long long)acc;
  return 1;
}

/* Significant digits kept when rewriting a number for strtod: past 800,
** a digit can only tell whether the value sits exactly on a halfway point
** between two doubles (those need at most 767), so the rest is folded into
** one sticky non-zero digit without changing the rounding. */
#define NUM_KEEP 800

double lb_jnum_to_double(const lb_jval *v) {
  /* The number is rewritten as "<sign><digits>e<exp>", with no decimal
  ** point: strtod then does not depend on the locale's LC_NUMERIC, and the
  ** copy is NUL-terminated (the span is not). */
  char buf[NUM_KEEP + 48];
  const char *s = v->p, *e = v->p + v->n;
  size_t nd = 0;
  long long exp10 = 0, x = 0;
  int sticky = 0, seen = 0, xneg = 0, neg = 0;
  char *o = buf;
  if (v->type != LB_JNUMBER || v->n == 0) return 0.0;
  if (*s == '-') { *o++ = '-'; s++; neg = 1; }
  for (; s < e && IS_DIGIT(*s); s++) {          /* integer part */
    if (*s == '0' && !seen) continue;
    seen = 1;
    if (nd < NUM_KEEP) { o[nd++] = *s; }
    else { exp10++; if (*s != '0') sticky = 1; }
  }
  if (s < e && *s == '.') {                     /* fraction */
    for (s++; s < e && IS_DIGIT(*s); s++) {
      if (*s == '0' && !seen) { exp10--; continue; }
      seen = 1;
      if (nd < NUM_KEEP) { o[nd++] = *s; exp10--; }
      else if (*s != '0') sticky = 1;
    }
  }
  if (s < e && (*s | 0x20) == 'e') {            /* exponent, saturated */
    s++;
    if (s < e && (*s == '+' || *s == '-')) xneg = *s++ == '-';
    for (; s < e && IS_DIGIT(*s); s++)
      if (x < 1000000000000LL) x = x * 10 + (*s - '0');
  }
  /* no significant digit: a zero, signed as written (buf holds nothing
  ** to look at when there was no '-') */
  if (nd == 0) return neg ? -0.0 : 0.0;
  if (sticky) { o[nd++] = '1'; exp10--; }
  exp10 += xneg ? -x : x;
  if (exp10 > 100000000LL) exp10 = 100000000LL;
  if (exp10 < -100000000LL) exp10 = -100000000LL;
  snprintf(o + nd, sizeof buf - (size_t)(o - buf) - nd, "e%lld", exp10);
  return strtod(buf, NULL);
}

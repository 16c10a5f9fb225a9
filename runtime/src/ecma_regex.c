/*
** ecma_regex.c - ECMA 262 patterns -> POSIX extended regexes.
**
** glibc's regcomp is run in the "C" locale, so it matches bytes. The
** translation turns every ECMA construct that means "one code point" into
** a regex over the UTF-8 bytes of that code point: a character class
** becomes a set of code point ranges, emitted as one bracket for its ASCII
** part and byte-range sequences for the rest. A quantifier after a
** non-ASCII literal then repeats the whole character, and "^.$" matches
** "é". Lookarounds, backreferences and \p{...} have no POSIX equivalent:
** those patterns are reported (a warning) and not enforced.
*/
#include <ctype.h>
#include <limits.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "ecma_regex.h"


#define CSET_MAX 64
#define CP_MAX 0x10ffff

typedef struct cset {
  unsigned lo[CSET_MAX], hi[CSET_MAX];
  int n;
  int overflow;
} cset;

static void cs_add(cset *c, unsigned lo, unsigned hi) {
  if (lo == 0) lo = 1;               /* NUL cannot be in a C pattern */
  if (lo > hi) return;
  if (c->n == CSET_MAX) { c->overflow = 1; return; }
  c->lo[c->n] = lo;
  c->hi[c->n] = hi;
  c->n++;
}

static void cs_norm(cset *c) {
  int i, j, k = 0;
  for (i = 1; i < c->n; i++) {       /* insertion sort: sets are small */
    unsigned lo = c->lo[i], hi = c->hi[i];
    for (j = i - 1; j >= 0 && c->lo[j] > lo; j--) {
      c->lo[j + 1] = c->lo[j];
      c->hi[j + 1] = c->hi[j];
    }
    c->lo[j + 1] = lo;
    c->hi[j + 1] = hi;
  }
  for (i = 0; i < c->n; i++) {
    if (k > 0 && c->lo[i] <= c->hi[k - 1] + 1) {
      if (c->hi[i] > c->hi[k - 1]) c->hi[k - 1] = c->hi[i];
    } else {
      c->lo[k] = c->lo[i];
      c->hi[k] = c->hi[i];
      k++;
    }
  }
  c->n = k;
}

static void cs_negate(cset *c) {
  cset r;
  unsigned next = 1;
  int i;
  cs_norm(c);
  r.n = 0;
  r.overflow = c->overflow;
  for (i = 0; i < c->n; i++) {
    if (c->lo[i] > next) cs_add(&r, next, c->lo[i] - 1);
    next = c->hi[i] + 1;
  }
  if (next <= CP_MAX) cs_add(&r, next, CP_MAX);
  *c = r;
}

static void cs_union(cset *c, const cset *o) {
  int i;
  for (i = 0; i < o->n; i++) cs_add(c, o->lo[i], o->hi[i]);
  if (o->overflow) c->overflow = 1;
}

/* The class escapes, as sets. */
static void cs_class(cset *c, int esc) {
  c->n = 0;
  c->overflow = 0;
  switch (tolower(esc)) {
    case 'd': cs_add(c, '0', '9'); break;
    case 'w':
      cs_add(c, '0', '9'); cs_add(c, 'A', 'Z'); cs_add(c, '_', '_'); cs_add(c, 'a', 'z');
      break;
    case 's':                        /* ECMA WhiteSpace and LineTerminator */
      cs_add(c, 9, 13); cs_add(c, ' ', ' '); cs_add(c, 0xa0, 0xa0);
      cs_add(c, 0x1680, 0x1680); cs_add(c, 0x2000, 0x200a);
      cs_add(c, 0x2028, 0x2029); cs_add(c, 0x202f, 0x202f);
      cs_add(c, 0x205f, 0x205f); cs_add(c, 0x3000, 0x3000);
      cs_add(c, 0xfeff, 0xfeff);
      break;
    default: break;
  }
  if (isupper(esc)) cs_negate(c);
}

/* One UTF-8 sequence pattern for the code points lo..hi, which have the
** same encoded length n and differ only where their byte ranges are full
** (the caller splits until that holds). */
static void emit_seq(lb_sbuf *o, unsigned lo, unsigned hi) {
  unsigned char a[4], b[4];
  size_t n = lb__utf8_put(lo, a), i;
  lb__utf8_put(hi, b);
  for (i = 0; i < n; i++) {
    if (a[i] == b[i]) {
      lb__sb_addc(o, (char)a[i]);
    } else {
      lb__sb_addc(o, '[');
      lb__sb_addc(o, (char)a[i]);
      lb__sb_addc(o, '-');
      lb__sb_addc(o, (char)b[i]);
      lb__sb_addc(o, ']');
    }
  }
}

/* Split lo..hi (same encoded length n) until each piece is a product of
** byte ranges: where the pieces differ above the low 6*i bits, the low bits
** must run over their whole range. */
static void utf8_split(lb_sbuf *o, unsigned lo, unsigned hi, int n, int *nalt) {
  int i;
  for (i = 1; i < n; i++) {
    unsigned m = (1u << (6 * i)) - 1;
    if ((lo & ~m) != (hi & ~m)) {
      if ((lo & m) != 0) {
        utf8_split(o, lo, lo | m, n, nalt);
        utf8_split(o, (lo | m) + 1, hi, n, nalt);
        return;
      }
      if ((hi & m) != m) {
        utf8_split(o, lo, (hi & ~m) - 1, n, nalt);
        utf8_split(o, hi & ~m, hi, n, nalt);
        return;
      }
    }
  }
  if ((*nalt)++) lb__sb_addc(o, '|');
  emit_seq(o, lo, hi);
}

static void utf8_ranges(lb_sbuf *o, unsigned lo, unsigned hi, int *nalt) {
  static const unsigned top[] = { 0x7f, 0x7ff, 0xffff, CP_MAX };
  int n;
  for (n = 1; n <= 4 && lo <= hi; n++) {
    unsigned t = top[n - 1];
    if (lo > t) continue;
    utf8_split(o, lo, hi < t ? hi : t, n, nalt);
    lo = t + 1;
  }
}

/* A bracket expression for the ASCII members (1..127) of a set. POSIX
** brackets have no escapes: ']' must come first, '-' last, '^' not first,
** and '[' must not be followed by '.', ':' or '='. */
static int emit_ascii_bracket(lb_sbuf *o, const unsigned char *in) {
  int c, count = 0, any = 0;
  for (c = 1; c < 128; c++) count += in[c];
  if (!count) return 0;
  if (count == 1) {
    for (c = 1; c < 128 && !in[c]; c++) {}
    if (isalnum(c)) { lb__sb_addc(o, (char)c); return 1; }
    if (c == '^') { lb__sb_add(o, "\\^"); return 1; }
  }
  lb__sb_addc(o, '[');
  if (in[']']) { lb__sb_addc(o, ']'); any = 1; }
  for (c = 1; c < 128; c++) {
    int d;
    if (!in[c] || c == ']' || c == '-' || c == '^' || c == '[') continue;
    for (d = c; d + 1 < 128 && in[d + 1] && d + 1 != ']' && d + 1 != '-' &&
         d + 1 != '^' && d + 1 != '['; d++) {}
    lb__sb_addc(o, (char)c);
    if (d - c >= 2) { lb__sb_addc(o, '-'); lb__sb_addc(o, (char)d); }
    else if (d > c) lb__sb_addc(o, (char)d);
    c = d;
    any = 1;
  }
  if (in['[']) { lb__sb_addc(o, '['); any = 1; }
  if (in['^']) {
    if (!any && in['-']) lb__sb_addc(o, '-');    /* "[-^]": '^' must not come first */
    lb__sb_addc(o, '^');
    if (any && in['-']) lb__sb_addc(o, '-');
  } else if (in['-']) {
    lb__sb_addc(o, '-');
  }
  lb__sb_addc(o, ']');
  return 1;
}

static void emit_set(lb_sbuf *o, cset *c) {
  unsigned char ascii[128];
  int i, nalt = 0, has_wide = 0;
  cs_norm(c);
  memset(ascii, 0, sizeof ascii);
  for (i = 0; i < c->n; i++) {
    unsigned x;
    for (x = c->lo[i]; x <= c->hi[i] && x < 128; x++) ascii[x] = 1;
    if (c->hi[i] >= 128) has_wide = 1;
  }
  if (!has_wide) {
    if (!emit_ascii_bracket(o, ascii)) lb__sb_add(o, "(a^)");   /* empty: never matches */
    return;
  }
  lb__sb_addc(o, '(');
  if (emit_ascii_bracket(o, ascii)) nalt = 1;
  for (i = 0; i < c->n; i++)
    if (c->hi[i] >= 128)
      utf8_ranges(o, c->lo[i] < 128 ? 128 : c->lo[i], c->hi[i], &nalt);
  lb__sb_addc(o, ')');
}

/* A literal code point. */
static void emit_cp(lb_sbuf *o, unsigned cp) {
  unsigned char b[4];
  size_t n;
  if (cp < 128) {
    if (strchr(".[\\()*+?{|^$", (int)cp)) lb__sb_addc(o, '\\');
    lb__sb_addc(o, (char)cp);
    return;
  }
  n = lb__utf8_put(cp, b);
  lb__sb_addc(o, '(');        /* so that a quantifier repeats the whole character */
  lb__sb_addn(o, (const char *)b, n);
  lb__sb_addc(o, ')');
}

typedef struct rxt {
  const unsigned char *p, *e;
  lb_sbuf *o;
  const char *why;        /* what failed */
  int unsupported;        /* valid ECMA that POSIX cannot express */
} rxt;

static int rx_fail(rxt *t, int unsupported, const char *why) {
  t->why = why;
  t->unsupported = unsupported;
  return -1;
}

/* Decode one UTF-8 code point of the (valid) pattern. */
static unsigned rx_cp(rxt *t) {
  unsigned c = *t->p++;
  int more = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
  if (more) c &= 0x3fu >> more;
  while (more-- > 0 && t->p < t->e) c = (c << 6) | (*t->p++ & 0x3fu);
  return c;
}

static int rx_hex(rxt *t, int n, unsigned *cp) {
  unsigned v = 0;
  int i;
  for (i = 0; i < n; i++) {
    if (t->p >= t->e || lb__hexval(*t->p) < 0) return rx_fail(t, 0, "bad hex escape");
    v = v * 16 + (unsigned)lb__hexval(*t->p++);
  }
  *cp = v;
  return 0;
}

/* An escape, t->p just past the backslash: 1 and *cp for a character, 2 and
** *set for a class escape, -1 on failure. */
static int rx_escape(rxt *t, int in_class, unsigned *cp, cset *set) {
  int c;
  if (t->p >= t->e) return rx_fail(t, 0, "trailing backslash");
  c = *t->p++;
  switch (c) {
    case 'd': case 'D': case 'w': case 'W': case 's': case 'S':
      cs_class(set, c);
      return 2;
    case 'n': *cp = '\n'; return 1;
    case 't': *cp = '\t'; return 1;
    case 'r': *cp = '\r'; return 1;
    case 'f': *cp = '\f'; return 1;
    case 'v': *cp = '\v'; return 1;
    case 'b':                        /* outside a class the caller took it */
      *cp = '\b';
      return 1;
    case '0':
      if (t->p < t->e && isdigit(*t->p)) return rx_fail(t, 0, "octal escape");
      return rx_fail(t, 1, "\\0 (NUL) in a pattern");
    case 'c':
      if (t->p < t->e && isalpha(*t->p)) { *cp = (unsigned)(*t->p++ % 32); return 1; }
      return rx_fail(t, 0, "bad \\c escape");
    case 'x':
      return rx_hex(t, 2, cp) ? -1 : 1;
    case 'u':
      if (t->p < t->e && *t->p == '{') {
        unsigned v = 0;
        t->p++;
        while (t->p < t->e && lb__hexval(*t->p) >= 0 && v <= CP_MAX) v = v * 16 + (unsigned)lb__hexval(*t->p++);
        if (t->p >= t->e || *t->p != '}' || v > CP_MAX) return rx_fail(t, 0, "bad \\u{} escape");
        t->p++;
        *cp = v;
        return 1;
      }
      if (rx_hex(t, 4, cp)) return -1;
      if (*cp >= 0xd800 && *cp <= 0xdbff && t->e - t->p >= 6 && t->p[0] == '\\' &&
          t->p[1] == 'u') {
        rxt save = *t;
        unsigned lo;
        t->p += 2;
        if (rx_hex(t, 4, &lo) == 0 && lo >= 0xdc00 && lo <= 0xdfff) {
          *cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
        } else {
          *t = save;
        }
      }
      return 1;
    case 'p': case 'P':
      return rx_fail(t, 1, "\\p{...} Unicode property escapes");
    case 'k':
      return rx_fail(t, 1, "named backreferences");
    case '-':
      if (in_class) { *cp = '-'; return 1; }
      return rx_fail(t, 0, "invalid escape \\-");
    default:
      if (c >= '1' && c <= '9') return rx_fail(t, 1, "backreferences");
      if (strchr("^$\\.*+?()[]{}|/", c)) { *cp = (unsigned)c; return 1; }
      return rx_fail(t, 0, "invalid escape");
  }
}

static int rx_class(rxt *t, cset *out) {
  int neg = 0;
  out->n = 0;
  out->overflow = 0;
  if (t->p < t->e && *t->p == '^') { neg = 1; t->p++; }
  while (t->p < t->e && *t->p != ']') {
    unsigned a = 0, b = 0;
    cset s;
    int ka, kb;
    if (*t->p == '\\') { t->p++; ka = rx_escape(t, 1, &a, &s); }
    else { a = rx_cp(t); ka = 1; }
    if (ka < 0) return -1;
    if (ka == 1 && t->e - t->p >= 2 && t->p[0] == '-' && t->p[1] != ']') {
      t->p++;
      if (*t->p == '\\') { t->p++; kb = rx_escape(t, 1, &b, &s); }
      else { b = rx_cp(t); kb = 1; }
      if (kb < 0) return -1;
      if (kb != 1) return rx_fail(t, 0, "class escape in a range");
      if (a > b) return rx_fail(t, 0, "range out of order");
      cs_add(out, a, b);
    } else if (ka == 1) {
      cs_add(out, a, a);
    } else {
      cs_union(out, &s);
    }
  }
  if (t->p >= t->e) return rx_fail(t, 0, "unterminated character class");
  t->p++;
  if (neg) cs_negate(out);
  if (out->overflow) return rx_fail(t, 1, "character class too large");
  return 0;
}

/* {n}, {n,}, {n,m} at t->p? Returns its length or 0. */
static size_t rx_interval(const unsigned char *p, const unsigned char *e) {
  const unsigned char *q = p + 1;
  unsigned long a = 0, b = 0;
  int digits = 0;
  while (q < e && isdigit(*q)) { a = a * 10 + (unsigned)(*q++ - '0'); if (++digits > 6) return 0; }
  if (!digits) return 0;
  if (q < e && *q == ',') {
    q++;
    digits = 0;
    while (q < e && isdigit(*q)) { b = b * 10 + (unsigned)(*q++ - '0'); if (++digits > 6) return 0; }
    if (digits && b < a) return 0;
  }
  if (q >= e || *q != '}') return 0;
  if (a > RE_DUP_MAX || b > RE_DUP_MAX) return 0;
  return (size_t)(q - p + 1);
}

/* Translate pattern[0..n) into o. 0, or -1 with t->why. */
static int rx_translate(const char *pat, size_t n, lb_sbuf *o, rxt *t) {
  int atom = 0, depth = 0;
  cset set;
  t->p = (const unsigned char *)pat;
  t->e = t->p + n;
  t->o = o;
  t->why = NULL;
  t->unsupported = 0;
  lb__sb_addn(o, "", 0);
  while (t->p < t->e) {
    int c = *t->p;
    size_t q;
    switch (c) {
      case '\\':
        t->p++;
        if (t->p < t->e && (*t->p == 'b' || *t->p == 'B')) {
#ifdef __GLIBC__
          lb__sb_addc(o, '\\');
          lb__sb_addc(o, (char)*t->p++);
          atom = 0;
          break;
#else
          return rx_fail(t, 1, "word boundaries");
#endif
        }
        {
          unsigned cp;
          int k = rx_escape(t, 0, &cp, &set);
          if (k < 0) return -1;
          if (k == 1) {
            if (cp == 0) return rx_fail(t, 1, "NUL in a pattern");
            emit_cp(o, cp);
          } else {
            emit_set(o, &set);
          }
        }
        atom = 1;
        break;
      case '[':
        t->p++;
        if (rx_class(t, &set)) return -1;
        emit_set(o, &set);
        atom = 1;
        break;
      case '(':
        t->p++;
        if (t->p < t->e && *t->p == '?') {
          t->p++;
          if (t->p < t->e && *t->p == ':') {
            t->p++;
          } else if (t->p < t->e && (*t->p == '=' || *t->p == '!')) {
            return rx_fail(t, 1, "lookahead");
          } else if (t->p < t->e && *t->p == '<') {
            t->p++;
            if (t->p < t->e && (*t->p == '=' || *t->p == '!')) return rx_fail(t, 1, "lookbehind");
            while (t->p < t->e && (isalnum(*t->p) || *t->p == '_' || *t->p == '$')) t->p++;
            if (t->p >= t->e || *t->p != '>') return rx_fail(t, 0, "bad group name");
            t->p++;
          } else {
            return rx_fail(t, 0, "bad group");
          }
        }
        lb__sb_addc(o, '(');
        depth++;
        atom = 0;
        break;
      case ')':
        if (!depth) return rx_fail(t, 0, "unbalanced ')'");
        /* an empty group or alternative is valid ECMA but not POSIX */
        if (o->n && (o->p[o->n - 1] == '(' || o->p[o->n - 1] == '|')) lb__sb_add(o, "()");
        if (o->oom) break;
        lb__sb_addc(o, ')');
        t->p++;
        depth--;
        atom = 1;
        break;
      case '|':
        lb__sb_addc(o, '|');
        t->p++;
        atom = 0;
        break;
      case '^': case '$':
        lb__sb_addc(o, (char)c);
        t->p++;
        atom = 0;
        break;
      case '*': case '+': case '?':
        if (!atom) return rx_fail(t, 0, "nothing to repeat");
        lb__sb_addc(o, (char)c);
        t->p++;
        if (t->p < t->e && *t->p == '?') t->p++;   /* lazy: same verdict */
        atom = 0;
        break;
      case '{':
        q = rx_interval(t->p, t->e);
        if (q) {
          if (!atom) return rx_fail(t, 0, "nothing to repeat");
          lb__sb_addn(o, (const char *)t->p, q);
          t->p += q;
          if (t->p < t->e && *t->p == '?') t->p++;
          atom = 0;
        } else {
          lb__sb_add(o, "\\{");
          t->p++;
          atom = 1;
        }
        break;
      case '.':
        t->p++;
        set.n = 0;
        set.overflow = 0;
        cs_add(&set, '\n', '\n'); cs_add(&set, '\r', '\r'); cs_add(&set, 0x2028, 0x2029);
        cs_negate(&set);
        emit_set(o, &set);
        atom = 1;
        break;
      default:
        emit_cp(o, rx_cp(t));
        atom = 1;
        break;
    }
  }
  if (depth) return rx_fail(t, 0, "unbalanced '('");
  if (o->oom) return rx_fail(t, 0, "out of memory");
  return 0;
}

int lb__ecma_to_posix(const char *pat, size_t n, lb_sbuf *o, const char **why, int *unsupported) {
  rxt t;
  int rc = rx_translate(pat, n, o, &t);
  *why = t.why;
  *unsupported = t.unsupported;
  return rc;
}

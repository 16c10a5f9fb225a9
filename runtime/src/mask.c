/*
** mask.c - the secret masker (see mask.h).
**
** A spelling of a secret is matched by walking the text and the secret
** together: a text byte that is not a backslash must equal the secret's
** next byte; at a backslash the JSON escape is decoded (to one to four
** UTF-8 bytes) and compared with the secret's next bytes, and if that
** fails the backslash is compared as itself (a secret may hold a raw
** backslash: "C:\new"). Only when both readings fit, which needs a
** backslash in the secret, is there a choice to come back to.
*/
#include <stdlib.h>
#include <string.h>
#include "lb_internal.h"
#include "mask.h"

typedef struct secret {
  unsigned char *s;
  size_t len;
} secret;

struct lb_masker {
  secret *v;                 /* longest first */
  int n, cap;
  int *next;                 /* next secret with the same first byte, or -1 */
  int head[256];             /* first secret starting with this byte, or -1 */
  unsigned char cand[256];   /* a spelling may start with this byte */
};

lb_masker *lb__masker_new(void) {
  lb_masker *m = calloc(1, sizeof *m);
  int c;
  if (m == NULL) return NULL;
  for (c = 0; c < 256; c++) m->head[c] = -1;
  return m;
}

void lb__masker_clear(lb_masker *m) {
  int i, c;
  if (m == NULL) return;
  for (i = 0; i < m->n; i++) free(m->v[i].s);
  m->n = 0;
  for (c = 0; c < 256; c++) { m->head[c] = -1; m->cand[c] = 0; }
}

void lb__masker_free(lb_masker *m) {
  if (m == NULL) return;
  lb__masker_clear(m);
  free(m->v);
  free(m->next);
  free(m);
}

int lb__masker_count(const lb_masker *m) {
  return m ? m->n : 0;
}

const char *lb__masker_value(const lb_masker *m, int i, size_t *len) {
  if (m == NULL || i < 0 || i >= m->n) return NULL;
  *len = m->v[i].len;
  return (const char *)m->v[i].s;
}

/* Bucket lists by first byte, each in the array's (longest first) order. */
static void reindex(lb_masker *m) {
  int i, c;
  for (c = 0; c < 256; c++) { m->head[c] = -1; m->cand[c] = 0; }
  for (i = m->n - 1; i >= 0; i--) {
    c = m->v[i].s[0];
    m->next[i] = m->head[c];
    m->head[c] = i;
    m->cand[c] = 1;
  }
  /* any character may be written as an escape */
  if (m->n) m->cand['\\'] = 1;
}

static int longer_first(const secret *a, const unsigned char *s, size_t len) {
  int d;
  if (a->len != len) return a->len > len ? -1 : 1;
  d = memcmp(a->s, s, len);
  return d < 0 ? -1 : d > 0;
}

int lb__masker_add(lb_masker *m, const char *s, size_t len) {
  int lo = 0, hi, at, d;
  if (m == NULL || len < LB_MASK_MIN) return 0;
  hi = m->n;
  while (lo < hi) {            /* binary search for the place, and duplicates */
    int mid = (lo + hi) / 2;
    d = longer_first(&m->v[mid], (const unsigned char *)s, len);
    if (d == 0) return 0;
    if (d < 0) lo = mid + 1; else hi = mid;
  }
  at = lo;
  if (m->n == m->cap) {
    int cap = m->cap ? m->cap * 2 : 8;
    secret *v = realloc(m->v, (size_t)cap * sizeof *v);
    int *next;
    if (v == NULL) return LB_ENOMEM;
    m->v = v;
    next = realloc(m->next, (size_t)cap * sizeof *next);
    if (next == NULL) return LB_ENOMEM;
    m->next = next;
    m->cap = cap;
  }
  {
    unsigned char *copy = malloc(len + 1);   /* NUL-terminated for C callers */
    if (copy == NULL) return LB_ENOMEM;
    memcpy(copy, s, len);
    copy[len] = '\0';
    memmove(m->v + at + 1, m->v + at, (size_t)(m->n - at) * sizeof *m->v);
    m->v[at].s = copy;
    m->v[at].len = len;
    m->n++;
  }
  reindex(m);
  return 1;
}

/* --- matching ------------------------------------------------------------- */

static int hexval(unsigned c) {
  if (c >= '0' && c <= '9') return (int)(c - '0');
  c |= 0x20;
  if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
  return -1;
}

static int hex4(const unsigned char *p, size_t n, unsigned *cp) {
  unsigned v = 0;
  int i, h;
  if (n < 4) return 0;
  for (i = 0; i < 4; i++) {
    if ((h = hexval(p[i])) < 0) return 0;
    v = v << 4 | (unsigned)h;
  }
  *cp = v;
  return 1;
}

static size_t utf8(unsigned cp, unsigned char *o) {
  if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
  if (cp < 0x800) {
    o[0] = (unsigned char)(0xC0 | cp >> 6);
    o[1] = (unsigned char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (unsigned char)(0xE0 | cp >> 12);
    o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (unsigned char)(0xF0 | cp >> 18);
  o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
  o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
  o[3] = (unsigned char)(0x80 | (cp & 0x3F));
  return 4;
}

/* t[0] is a backslash: the escape's bytes in d (*dn of them) and the text
** it takes; 0 when t does not start with a JSON escape. A lone surrogate
** decodes to its three-byte form, which is what a secret holding one has. */
static size_t unescape(const unsigned char *t, size_t n, unsigned char d[4], size_t *dn) {
  unsigned cp, lo;
  if (n < 2) return 0;
  switch (t[1]) {
    case '"': case '\\': case '/': d[0] = t[1]; break;
    case 'b': d[0] = '\b'; break;
    case 'f': d[0] = '\f'; break;
    case 'n': d[0] = '\n'; break;
    case 'r': d[0] = '\r'; break;
    case 't': d[0] = '\t'; break;
    case 'u':
      if (!hex4(t + 2, n - 2, &cp)) return 0;
      if (cp >= 0xD800 && cp < 0xDC00 && n >= 12 && t[6] == '\\' && t[7] == 'u' &&
          hex4(t + 8, n - 8, &lo) && lo >= 0xDC00 && lo < 0xE000) {
        *dn = utf8(0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00), d);
        return 12;
      }
      *dn = utf8(cp, d);
      return 6;
    default:
      return 0;
  }
  *dn = 1;
  return 2;
}

#define BRANCHES 32

/* The end of the spelling of s that starts at t[i], or 0. Choices (a
** backslash of s read as an escape or as itself) are tried depth first;
** the work is bounded: a text that keeps a search busy that long holds a
** long piece of the secret, and the furthest extent reached is masked. */
static size_t match(const unsigned char *t, size_t n, size_t i, const secret *sec) {
  const unsigned char *s = sec->s;
  size_t sn = sec->len, si = 0, start = i, far = i, budget = 16 * sn + 256;
  size_t bi[BRANCHES], bs[BRANCHES];
  int sp = 0;
  while (si < sn) {
    unsigned char d[4];
    size_t dn, e;
    int ok = 1;
    if (budget-- == 0) return far - start >= LB_MASK_MIN ? far : 0;
    if (i >= n) ok = 0;
    else if (t[i] != '\\') {
      if (t[i] == s[si]) { i++; si++; } else ok = 0;
    } else if ((e = unescape(t + i, n - i, d, &dn)) != 0 && dn <= sn - si &&
               memcmp(d, s + si, dn) == 0) {
      if (s[si] == '\\' && sp < BRANCHES) { bi[sp] = i + 1; bs[sp] = si + 1; sp++; }
      i += e;
      si += dn;
    } else if (s[si] == '\\') {
      i++;
      si++;
    } else ok = 0;
    if (!ok) {
      if (sp == 0) return 0;
      sp--;
      i = bi[sp];
      si = bs[sp];
    }
    if (i > far) far = i;
  }
  return i;
}

size_t lb__mask_next(const lb_masker *m, const char *text, size_t len, size_t from,
                     size_t *end) {
  const unsigned char *t = (const unsigned char *)text;
  size_t i;
  if (m == NULL || m->n == 0) return len;
  for (i = from; i < len; i++) {
    unsigned c = t[i];
    unsigned char d[4];
    size_t dn;
    int a, b;
    if (!m->cand[c]) continue;
    a = m->head[c];
    b = -1;
    if (c == '\\' && unescape(t + i, len - i, d, &dn)) b = m->head[d[0]];
    if (b == a) b = -1;
    /* both lists are in the array's order: merge them, longest first */
    while (a >= 0 || b >= 0) {
      int k;
      size_t e;
      if (b < 0 || (a >= 0 && a < b)) { k = a; a = m->next[a]; }
      else { k = b; b = m->next[b]; }
      if ((e = match(t, len, i, &m->v[k])) != 0) {
        *end = e;
        return i;
      }
    }
  }
  return len;
}

int lb__mask(const lb_masker *m, const char *text, size_t len, char **out, size_t *outlen) {
  size_t at = 0, w = 0, i, e = 0;
  char *buf;
  if (m == NULL || m->n == 0) return 0;
  i = lb__mask_next(m, text, len, 0, &e);
  if (i == len) return 0;
  /* a spelling is never shorter than its secret, which is never shorter
  ** than the mask: the copy fits in len bytes */
  buf = malloc(len + 1);
  if (buf == NULL) return LB_ENOMEM;
  while (i < len) {
    memcpy(buf + w, text + at, i - at);
    w += i - at;
    memcpy(buf + w, LB_MASK_TEXT, sizeof LB_MASK_TEXT - 1);
    w += sizeof LB_MASK_TEXT - 1;
    at = e;
    i = lb__mask_next(m, text, len, at, &e);
  }
  memcpy(buf + w, text + at, len - at);
  w += len - at;
  buf[w] = '\0';
  *out = buf;
  *outlen = w;
  return 1;
}

/* --- the runtime's masker ---------------------------------------------------- */

int lb__secret_add(lb_runtime *rt, const char *s, size_t len) {
  if (len < LB_MASK_MIN) return 0;
  if (rt->masker == NULL && (rt->masker = lb__masker_new()) == NULL) return LB_ENOMEM;
  return lb__masker_add(rt->masker, s, len);
}

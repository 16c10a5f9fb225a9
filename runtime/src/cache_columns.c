/*
** cache_columns.c - a stream's columns from its JSON schema, and the record
** scanner, for every cache backend (cache_backend.h).
**
** The mapping of a property to a column kind is PyAirbyte's (airbyte/types.py);
** each backend names the kinds in its SQL. The scanner makes one pass over
** the members of a record's data object: each key is matched to a column
** (first against the property that followed the previous match, since
** records usually list their keys in schema order, then through a small
** hash table) and each value becomes an lb_cache_wval pointing at its bytes
** in the input (strings with escapes are decoded beside it), ready for a
** backend to bind or copy.
*/
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cache_backend.h"

static void seterr(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  if (err == NULL || errlen == 0) return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static unsigned hash_bytes(const char *s, size_t n) {
  unsigned h = 2166136261u;               /* FNV-1a */
  size_t i;
  for (i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 16777619u; }
  return h;
}

int lb__cache_is_internal_col(const char *name) {
  return strcmp(name, LB_CACHE_RAW_ID_COL) == 0 || strcmp(name, LB_CACHE_EXTRACTED_AT_COL) == 0 ||
         strcmp(name, LB_CACHE_META_COL) == 0;
}

/* --- kinds ------------------------------------------------------------------ */

static lb_col_kind kind_of_name(const lb_jval *t) {
  static const struct { const char *s; lb_col_kind k; } map[] = {
    {"string", LB_COL_STRING}, {"integer", LB_COL_INTEGER}, {"number", LB_COL_NUMBER},
    {"boolean", LB_COL_BOOLEAN}, {"object", LB_COL_JSON}, {"array", LB_COL_JSON}
  };
  size_t i;
  for (i = 0; i < sizeof map / sizeof map[0]; i++)
    if (lb_jstr_eq(t, map[i].s, strlen(map[i].s))) return map[i].k;
  return LB_COL_STRING;        /* null, unknown names: VARCHAR like PyAirbyte */
}

/* PyAirbyte's type resolution (airbyte/types.py): airbyte_type wins, then
** "type" (a list minus "null" must leave exactly one), then nothing ->
** VARCHAR. A $ref to one of the protocol's well-known types is understood
** too (PyAirbyte would fall back to VARCHAR). */
lb_col_kind lb__col_kind_of(const lb_jval *def) {
  lb_jval t;
  if (def->type != LB_JOBJECT) return LB_COL_STRING;
  if (lb_jobj_find(def, "airbyte_type", 12, &t) && t.type == LB_JSTRING) {
    if (lb_jstr_eq(&t, "integer", 7)) return LB_COL_INTEGER;
    if (lb_jstr_eq(&t, "number", 6)) return LB_COL_NUMBER;
    if (lb_jstr_eq(&t, "boolean", 7)) return LB_COL_BOOLEAN;
    if (lb_jstr_eq(&t, "object", 6) || lb_jstr_eq(&t, "array", 5)) return LB_COL_JSON;
    return LB_COL_STRING;      /* dates, times, timestamps, big_integer */
  }
  if (lb_jobj_find(def, "type", 4, &t)) {
    if (t.type == LB_JSTRING) return kind_of_name(&t);
    if (t.type == LB_JARRAY) {
      lb_jiter it;
      lb_jval e, one;
      int n = 0;
      lb_jiter_init(&it, &t);
      while (lb_jarr_next(&it, &e)) {
        if (e.type == LB_JSTRING && lb_jstr_eq(&e, "null", 4)) continue;
        one = e;
        n++;
      }
      if (n == 1 && one.type == LB_JSTRING) return kind_of_name(&one);
    }
    return LB_COL_STRING;
  }
  if (lb_jobj_find(def, "$ref", 4, &t) && t.type == LB_JSTRING) {
    static const struct { const char *s; lb_col_kind k; } wk[] = {
      {"\"WellKnownTypes.json#/definitions/Integer\"", LB_COL_INTEGER},
      {"\"WellKnownTypes.json#/definitions/Number\"", LB_COL_NUMBER},
      {"\"WellKnownTypes.json#/definitions/Boolean\"", LB_COL_BOOLEAN}
    };
    size_t i;
    for (i = 0; i < sizeof wk / sizeof wk[0]; i++) {
      size_t n = strlen(wk[i].s);
      if (t.n == n && memcmp(t.p, wk[i].s, n) == 0) return wk[i].k;
    }
  }
  return LB_COL_STRING;
}

/* --- the columns of a schema -------------------------------------------------- */

int lb__cache_schema_col(const lb_cache_schema *s, const char *name, size_t len) {
  unsigned h = hash_bytes(name, len) & s->cmask;
  int i;
  while ((i = s->cht[h]) != 0) {
    const lb_cache_col *cl = &s->cols[i - 1];
    if (cl->namelen == len && memcmp(cl->name, name, len) == 0) return i - 1;
    h = (h + 1) & s->cmask;
  }
  return -1;
}

int lb__cache_schema_prop(const lb_cache_schema *s, const char *name, size_t len) {
  unsigned h = hash_bytes(name, len) & s->pmask;
  int i;
  while ((i = s->pht[h]) != 0) {
    const lb_cache_prop *pr = &s->props[i - 1];
    if (pr->len == len && memcmp(pr->name, name, len) == 0) return i - 1;
    h = (h + 1) & s->pmask;
  }
  return -1;
}

static unsigned table_mask(int n) {
  unsigned size = 8;
  while (size < (unsigned)n * 2u) size *= 2;
  return size - 1;
}

void lb__cache_schema_free(lb_cache_schema *s) {
  if (s == NULL) return;
  free(s->pool);
  free(s->cols);
  free(s->props);
  free(s->pht);
  free(s->cht);
  memset(s, 0, sizeof *s);
}

/* Reads the properties of the schema into s->props/s->cols (normalized,
** deduplicated, internal column names skipped) and builds the hash tables. */
int lb__cache_schema_load(lb_cache_schema *s, const char *schema, size_t len, char *err,
                          size_t errlen) {
  lb_jval top, props, k, v;
  lb_jiter it;
  size_t erroff = 0, poolsz = 0, used = 0;
  int nprops = 0, rc;
  if (schema == NULL || len == 0) { schema = "{}"; len = 2; }
  rc = lb_jskim_validate(schema, len, &top, &erroff);
  if (rc < 0) {
    seterr(err, errlen, "invalid JSON schema: %s at byte %zu", lb_jskim_strerror(rc), erroff);
    return LB_EINVAL;
  }
  if (top.type != LB_JOBJECT || !lb_jobj_find(&top, "properties", 10, &props) ||
      props.type != LB_JOBJECT) {
    props.type = LB_JNONE;
  } else {
    lb_jiter_init(&it, &props);
    while (lb_jobj_next(&it, &k, &v)) { nprops++; poolsz += 2 * k.n + 2; }
  }
  s->props = calloc((size_t)nprops + 1, sizeof *s->props);
  s->cols = calloc((size_t)nprops + 1, sizeof *s->cols);
  s->pool = malloc(poolsz + 1);
  s->pmask = table_mask(nprops);
  s->cmask = table_mask(nprops);
  s->pht = calloc((size_t)s->pmask + 1, sizeof *s->pht);
  s->cht = calloc((size_t)s->cmask + 1, sizeof *s->cht);
  if (!s->props || !s->cols || !s->pool || !s->pht || !s->cht) {
    seterr(err, errlen, "out of memory");
    return LB_ENOMEM;
  }
  if (props.type == LB_JNONE) return 0;
  lb_jiter_init(&it, &props);
  while (lb_jobj_next(&it, &k, &v)) {
    char *raw = s->pool + used, *norm;
    size_t rawlen = lb_jstr_decode(&k, raw, k.n), normlen;
    long n;
    int ci;
    used += rawlen + 1;
    raw[rawlen] = '\0';
    if (lb__cache_schema_prop(s, raw, rawlen) >= 0) continue;     /* duplicate key */
    norm = s->pool + used;
    n = lb_cache_normalize(raw, rawlen, norm, poolsz - used);
    if (n < 0) {
      seterr(err, errlen, "PyAirbyteNameNormalizationError: property '%.*s' normalizes to "
             "nothing but underscores", (int)(rawlen > 200 ? 200 : rawlen), raw);
      return LB_EINVAL;
    }
    normlen = (size_t)n;           /* <= 2 * rawlen + 1: always fits the pool */
    if (lb__cache_is_internal_col(norm)) continue;
    ci = lb__cache_schema_col(s, norm, normlen);
    if (ci < 0) {
      unsigned h = hash_bytes(norm, normlen) & s->cmask;
      lb_cache_col *cl = &s->cols[s->ncols];
      used += normlen + 1;
      cl->name = norm;
      cl->namelen = normlen;
      cl->kind = lb__col_kind_of(&v);
      cl->is_text = cl->kind == LB_COL_STRING;
      while (s->cht[h]) h = (h + 1) & s->cmask;
      s->cht[h] = ++s->ncols;
      ci = s->ncols - 1;
    }
    {
      unsigned h = hash_bytes(raw, rawlen) & s->pmask;
      lb_cache_prop *pr = &s->props[s->nprops];
      pr->name = raw;
      pr->len = rawlen;
      pr->col = ci;
      while (s->pht[h]) h = (h + 1) & s->pmask;
      s->pht[h] = ++s->nprops;
    }
  }
  return 0;
}

/* --- the record scanner ------------------------------------------------------- */

/* The record scanner. The data object was validated by jskim, so it only
** has to find where things end; it does that in one pass that also notes
** what binding needs (escapes in strings, integer-ness and value of
** numbers), instead of skipping each value with the generic iterator and
** then looking at it again. Bounds are still checked, so bytes that were not
** validated fail cleanly instead of being read past their end. */

#define IS_WS(ch) ((ch) == ' ' || (ch) == '\n' || (ch) == '\r' || (ch) == '\t')

#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
# define SWAR_STRINGS 1
#endif

/* p is just past an opening quote; returns the closing quote, or NULL.
** *esc is set when a backslash shows up. */
static const char *string_close(const char *p, const char *end, int *esc) {
#if defined(SWAR_STRINGS)
  /* 8 bytes at a time: a byte equal to '"' or '\\' makes its lane zero in
  ** w ^ pattern, and the classic has-zero-byte trick finds the first one. */
  const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  while (end - p >= 8) {
    uint64_t w, q, b, m;
    memcpy(&w, p, 8);
    q = w ^ (ones * '"');
    b = w ^ (ones * '\\');
    m = ((q - ones) & ~q & highs) | ((b - ones) & ~b & highs);
    if (m == 0) { p += 8; continue; }
    p += __builtin_ctzll(m) >> 3;
    if (*p == '"') return p;
    *esc = 1;
    p += 2;
  }
#endif
  while (p < end) {
    if (*p == '"') return p;
    if (*p == '\\') { *esc = 1; p += 2; continue; }
    p++;
  }
  return NULL;
}

/* Scans the members of a validated object (p just after '{', end at '}')
** into vals (one per column, all set here). Decoded strings and keys go to
** dec, which has room for end - p bytes. 0, or -1 when the bytes are not
** the JSON they should be. */
int lb__cache_scan_row(const lb_cache_schema *s, int *guess, const char *p, const char *end,
                       lb_cache_wval *vals, char *dec) {
  size_t used = 0;
  int i, ncols = s->ncols;
  for (i = 0; i < ncols; i++) vals[i].kind = LB_WV_NULL;
  for (;;) {
    const char *kp, *vp, *q;
    size_t kl;
    int kesc = 0, vesc = 0, pi, ci;
    lb_cache_wval *w;
    while (p < end && (IS_WS(*p) || *p == ',')) p++;
    if (p >= end) break;
    if (*p != '"') return -1;
    pi = *guess;
    if (pi < s->nprops && (size_t)(end - p) > s->props[pi].len + 1 &&
        p[1 + s->props[pi].len] == '"' && memcmp(p + 1, s->props[pi].name, s->props[pi].len) == 0) {
      /* the key the schema order predicts: its bytes are the name and a
      ** quote follows (a name needing escapes never matches here) */
      kp = p + 1;
      kl = s->props[pi].len;
      q = kp + kl;
    } else if ((q = string_close(p + 1, end, &kesc)) == NULL) {
      return -1;
    } else {
      kp = p + 1;
      kl = (size_t)(q - kp);
    }
    p = q + 1;
    while (p < end && IS_WS(*p)) p++;
    if (p >= end || *p != ':') return -1;
    p++;
    while (p < end && IS_WS(*p)) p++;
    if (p >= end) return -1;
    vp = p;
    /* find the end of the value */
    switch (*p) {
      case '"':
        if ((q = string_close(p + 1, end, &vesc)) == NULL) return -1;
        p = q + 1;
        break;
      case '{': case '[': {
        lb_jval v;
        p = lb_jskim_skip(p, end, &v);
        break;
      }
      case 't': case 'n': p += 4; break;
      case 'f': p += 5; break;
      default:
        while (p < end && ((*p >= '0' && *p <= '9') || *p == '-' || *p == '+' || *p == '.' ||
                           *p == 'e' || *p == 'E'))
          p++;
        if (p == vp) return -1;
        break;
    }
    if (p > end) return -1;
    /* which column */
    if (kesc) {
      lb_jval kv;
      kv.type = LB_JSTRING;
      kv.p = kp - 1;
      kv.n = kl + 2;
      /* decoded keys go where the next decoded value will go: they are only
      ** needed for the lookup */
      kl = lb_jstr_decode(&kv, dec + used, kl);
      kp = dec + used;
    }
    pi = *guess;
    if (pi < s->nprops && s->props[pi].len == kl && memcmp(s->props[pi].name, kp, kl) == 0) {
      ci = s->props[pi].col;
    } else if ((pi = lb__cache_schema_prop(s, kp, kl)) >= 0) {
      ci = s->props[pi].col;
    } else {
      char norm[256];
      long n = lb_cache_normalize(kp, kl, norm, sizeof norm);
      if (n < 0 || (size_t)n >= sizeof norm || (ci = lb__cache_schema_col(s, norm, (size_t)n)) < 0) continue;
      pi = *guess - 1;
    }
    *guess = pi + 1;
    w = &vals[ci];
    /* what to bind (see cache.h for the rules) */
    switch (*vp) {
      case '"':
        w->kind = LB_WV_TEXT;
        if (!vesc) {
          w->p = vp + 1;
          w->len = (int)(p - vp - 2);
        } else {
          lb_jval v;
          v.type = LB_JSTRING;
          v.p = vp;
          v.n = (size_t)(p - vp);
          w->p = dec + used;
          w->len = (int)lb_jstr_decode(&v, dec + used, v.n);
          used += (size_t)w->len;
        }
        break;
      case '{': case '[':
        w->kind = LB_WV_TEXT;
        w->p = vp;
        w->len = (int)(p - vp);
        break;
      case 'n':
        w->kind = LB_WV_NULL;
        break;
      case 't': case 'f':
        if (s->cols[ci].is_text) {
          w->kind = LB_WV_TEXT;
          w->p = vp;
          w->len = (int)(p - vp);
        } else {
          w->kind = LB_WV_INT;
          w->u.i = *vp == 't';
        }
        break;
      default: {
        const char *d = vp + (*vp == '-');
        lb_jval v;
        if (s->cols[ci].is_text) {
          w->kind = LB_WV_TEXT;
          w->p = vp;
          w->len = (int)(p - vp);
          break;
        }
        if (p - d <= 18) {           /* up to 18 digits cannot overflow */
          const char *x = d;
          long long i64 = 0;
          while (x < p && *x >= '0' && *x <= '9') i64 = i64 * 10 + (*x++ - '0');
          if (x == p) {
            w->kind = LB_WV_INT;
            w->u.i = *vp == '-' ? -i64 : i64;
            break;
          }
        }
        v.type = LB_JNUMBER;
        v.p = vp;
        v.n = (size_t)(p - vp);
        if (lb_jnum_to_int64(&v, &w->u.i)) {
          w->kind = LB_WV_INT;
        } else if (lb_jnum_is_integer(&v)) {   /* too big for int64: keep every digit */
          w->kind = LB_WV_BIGINT;
          w->p = vp;
          w->len = (int)(p - vp);
        } else {
          w->kind = LB_WV_DBL;
          w->u.d = lb_jnum_to_double(&v);
        }
        break;
      }
    }
  }
  *guess = 0;
  return 0;
}


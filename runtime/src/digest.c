/*
** digest.c - SHA-256 (FIPS 180-4) and canonical JSON, the form every JSON digest hashes.
**
** No SHA-256 is among the libraries luabyte links (SQLite's sha3 is an
** extension of its shell, libuv has none), and identities must not depend
** on an optional library, so the ~80 lines live here.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "luabyte.h"
#include "digest.h"
#include "jskim.h"
#include "jsonenc.h"
#include "textbuf.h"

static const uint32_t K[64] = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void compress(uint32_t h[8], const unsigned char *p) {
  uint32_t w[64], a, b, c, d, e, f, g, hh, t1, t2;
  int i;
  for (i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
           (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
  for (i = 16; i < 64; i++) {
    uint32_t s0 = ROTR(w[i - 15], 7) ^ ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ROTR(w[i - 2], 17) ^ ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4]; f = h[5]; g = h[6]; hh = h[7];
  for (i = 0; i < 64; i++) {
    t1 = hh + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
    t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
  }
  h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

void lb__sha256_init(lb__sha256 *s) {
  static const uint32_t h0[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                  0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };
  memcpy(s->h, h0, sizeof h0);
  s->bytes = 0;
  s->used = 0;
}

void lb__sha256_update(lb__sha256 *s, const void *data, size_t n) {
  const unsigned char *p = data;
  s->bytes += n;
  while (n > 0) {
    size_t take = 64 - s->used < n ? 64 - s->used : n;
    memcpy(s->block + s->used, p, take);
    s->used += take;
    p += take;
    n -= take;
    if (s->used == 64) {
      compress(s->h, s->block);
      s->used = 0;
    }
  }
}

void lb__sha256_final(lb__sha256 *s, unsigned char out[32]) {
  uint64_t bits = s->bytes * 8;
  unsigned char pad[72];
  size_t padlen = (s->used < 56 ? 56 : 120) - s->used;
  int i;
  memset(pad, 0, sizeof pad);
  pad[0] = 0x80;
  for (i = 0; i < 8; i++) pad[padlen + i] = (unsigned char)(bits >> (56 - 8 * i));
  lb__sha256_update(s, pad, padlen + 8);
  for (i = 0; i < 8; i++) {
    out[4 * i] = (unsigned char)(s->h[i] >> 24);
    out[4 * i + 1] = (unsigned char)(s->h[i] >> 16);
    out[4 * i + 2] = (unsigned char)(s->h[i] >> 8);
    out[4 * i + 3] = (unsigned char)s->h[i];
  }
}

/* --- canonical JSON ---------------------------------------------------------- */

/* Where the canonical text goes: into a hash, or into a buffer. */
typedef struct sink {
  lb__sha256 *sha;
  lb_sbuf *sb;
} sink;

static void put(sink *o, const char *p, size_t n) {
  if (o->sha) lb__sha256_update(o->sha, p, n);
  else lb__sb_addn(o->sb, p, n);
}

/* A string as the writer spells it: its bytes when it has no escapes (a
** validated string without them holds nothing the writer escapes), else
** decoded and quoted again, into *own (malloc'd; the caller frees it). */
static int canon_string(const lb_jval *s, const char **p, size_t *n, char **own) {
  size_t dn;
  char *dec, *q;
  long w;
  *own = NULL;
  if (!lb_jstr_has_escapes(s)) {
    *p = s->p;
    *n = s->n;
    return 0;
  }
  if ((dec = malloc(s->n)) == NULL) return LB_ENOMEM;
  dn = lb_jstr_decode(s, dec, s->n);
  if ((q = malloc(lb__json_quoted_len(dec, dn))) == NULL) { free(dec); return LB_ENOMEM; }
  w = lb__json_quote(dec, dn, q, 0);
  free(dec);
  *p = q;
  *n = (size_t)w;
  *own = q;
  return 0;
}

/* A number as airbyte.json reads and writes it: an integer exactly (int64
** by the writer, a longer one as spelled, since JSON has one spelling of
** an integer); anything else as a double, by the writer, except that an
** integral double within int64 is that integer (1.0, 1e0 and 1 are one
** value). A number beyond a double's range stays as spelled. */
static void canon_number(sink *o, const lb_jval *v) {
  char out[LB_JSON_NUM_ROOM];
  long long i;
  double d;
  if (lb_jnum_is_integer(v)) {
    if (lb_jnum_to_int64(v, &i)) put(o, out, lb__json_fmt_int(i, out));
    else put(o, v->p, v->n);
    return;
  }
  d = lb_jnum_to_double(v);
  if (!isfinite(d)) put(o, v->p, v->n);
  else if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 && d == (double)(long long)d)
    put(o, out, lb__json_fmt_int((long long)d, out));
  else
    put(o, out, lb__json_fmt_double(d, out));
}

typedef struct member {
  const char *k;                /* the key as the writer quotes it */
  size_t kn, idx;               /* idx: its place in the object */
  char *own;                    /* k when it was re-quoted */
  lb_jval val;
} member;

static int member_cmp(const void *a, const void *b) {
  const member *x = a, *y = b;
  size_t n = x->kn < y->kn ? x->kn : y->kn;
  int c = memcmp(x->k, y->k, n);
  if (c) return c;
  if (x->kn != y->kn) return (x->kn > y->kn) - (x->kn < y->kn);
  return (x->idx > y->idx) - (x->idx < y->idx);
}

static int same_key(const member *x, const member *y) {
  return x->kn == y->kn && memcmp(x->k, y->k, x->kn) == 0;
}

static int canon(sink *o, const lb_jval *v) {
  lb_jiter it;
  lb_jval k, e;
  int rc = 0;
  if (v->type == LB_JARRAY) {
    int first = 1;
    put(o, "[", 1);
    lb_jiter_init(&it, v);
    while (lb_jarr_next(&it, &e)) {
      if (!first) put(o, ",", 1);
      first = 0;
      if ((rc = canon(o, &e)) != 0) return rc;
    }
    put(o, "]", 1);
  } else if (v->type == LB_JOBJECT) {
    size_t n = 0, i, got = 0;
    int first = 1;
    member *m;
    lb_jiter_init(&it, v);
    while (lb_jobj_next(&it, &k, &e)) n++;
    if ((m = calloc(n ? n : 1, sizeof *m)) == NULL) return LB_ENOMEM;
    lb_jiter_init(&it, v);
    for (; got < n && lb_jobj_next(&it, &k, &m[got].val); got++) {
      m[got].idx = got;
      if ((rc = canon_string(&k, &m[got].k, &m[got].kn, &m[got].own)) != 0) break;
    }
    if (rc == 0) {
      qsort(m, n, sizeof *m, member_cmp);
      put(o, "{", 1);
      for (i = 0; i < n && rc == 0; i++) {
        if (i + 1 < n && same_key(&m[i], &m[i + 1])) continue;   /* the last one wins */
        if (!first) put(o, ",", 1);
        first = 0;
        put(o, m[i].k, m[i].kn);
        put(o, ":", 1);
        rc = canon(o, &m[i].val);
      }
      put(o, "}", 1);
    }
    for (i = 0; i < got; i++) free(m[i].own);
    free(m);
  } else if (v->type == LB_JSTRING) {
    const char *p;
    size_t len;
    char *own;
    if ((rc = canon_string(v, &p, &len, &own)) != 0) return rc;
    put(o, p, len);
    free(own);
  } else if (v->type == LB_JNUMBER) {
    canon_number(o, v);
  } else {
    put(o, v->p, v->n);
  }
  return rc;
}

int lb__json_canonical(const char *json, size_t n, lb_sbuf *out) {
  sink o;
  lb_jval top;
  size_t start = out->n;
  int rc;
  if (lb_jskim_validate(json, n, &top, NULL) != 0) return LB_EINVAL;
  o.sha = NULL;
  o.sb = out;
  rc = canon(&o, &top);
  if (rc == 0 && out->oom) rc = LB_ENOMEM;
  if (rc != 0 && out->p) { out->n = start; out->p[start] = '\0'; }
  return rc;
}

int lb__json_digest_value(const lb_jval *v, char hex[65]) {
  static const char digits[] = "0123456789abcdef";
  lb__sha256 s;
  sink o;
  unsigned char out[32];
  int i, rc;
  lb__sha256_init(&s);
  o.sha = &s;
  o.sb = NULL;
  if ((rc = canon(&o, v)) != 0) return rc;
  lb__sha256_final(&s, out);
  for (i = 0; i < 32; i++) {
    hex[2 * i] = digits[out[i] >> 4];
    hex[2 * i + 1] = digits[out[i] & 15];
  }
  hex[64] = '\0';
  return 0;
}

int lb__json_digest(const char *json, size_t n, char hex[65]) {
  lb_jval top;
  if (lb_jskim_validate(json, n, &top, NULL) != 0) return LB_EINVAL;
  return lb__json_digest_value(&top, hex);
}

/*
** digest.c - SHA-256, written from FIPS 180-4, and canonical JSON digests.
**
** No SHA-256 is among the libraries luabyte links (SQLite's sha3 is an
** extension of its shell, libuv has none), and identities must not depend
** on an optional library, so the ~80 lines live here.
*/
#include <stdlib.h>
#include <string.h>

#include "luabyte.h"
#include "digest.h"
#include "jskim.h"

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

typedef struct member { lb_jval key, val; } member;

static int member_cmp(const void *a, const void *b) {
  const lb_jval *x = &((const member *)a)->key, *y = &((const member *)b)->key;
  size_t n = x->n < y->n ? x->n : y->n;
  int c = memcmp(x->p, y->p, n);
  return c ? c : (x->n > y->n) - (x->n < y->n);
}

static int canon(lb__sha256 *s, const lb_jval *v) {
  lb_jiter it;
  lb_jval k, e;
  if (v->type == LB_JARRAY) {
    int first = 1;
    lb__sha256_update(s, "[", 1);
    lb_jiter_init(&it, v);
    while (lb_jarr_next(&it, &e)) {
      if (!first) lb__sha256_update(s, ",", 1);
      first = 0;
      if (canon(s, &e) != 0) return LB_ENOMEM;
    }
    lb__sha256_update(s, "]", 1);
  } else if (v->type == LB_JOBJECT) {
    size_t n = 0, i;
    member *m;
    lb_jiter_init(&it, v);
    while (lb_jobj_next(&it, &k, &e)) n++;
    if ((m = malloc((n ? n : 1) * sizeof *m)) == NULL) return LB_ENOMEM;
    lb_jiter_init(&it, v);
    for (i = 0; i < n && lb_jobj_next(&it, &m[i].key, &m[i].val); i++) {}
    qsort(m, n, sizeof *m, member_cmp);
    lb__sha256_update(s, "{", 1);
    for (i = 0; i < n; i++) {
      if (i) lb__sha256_update(s, ",", 1);
      lb__sha256_update(s, m[i].key.p, m[i].key.n);
      lb__sha256_update(s, ":", 1);
      if (canon(s, &m[i].val) != 0) { free(m); return LB_ENOMEM; }
    }
    lb__sha256_update(s, "}", 1);
    free(m);
  } else {
    lb__sha256_update(s, v->p, v->n);
  }
  return 0;
}

int lb__json_digest(const char *json, size_t n, char hex[65]) {
  static const char digits[] = "0123456789abcdef";
  lb__sha256 s;
  lb_jval top;
  unsigned char out[32];
  int i, rc;
  if (lb_jskim_validate(json, n, &top, NULL) != 0) return LB_EINVAL;
  lb__sha256_init(&s);
  if ((rc = canon(&s, &top)) != 0) return rc;
  lb__sha256_final(&s, out);
  for (i = 0; i < 32; i++) {
    hex[2 * i] = digits[out[i] >> 4];
    hex[2 * i + 1] = digits[out[i] & 15];
  }
  hex[64] = '\0';
  return 0;
}

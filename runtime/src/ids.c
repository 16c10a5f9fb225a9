/*
** ids.c - random bytes, xorshift128+, UUIDv4, UUIDv7, ULID and short ids
** (see ids.h).
*/
#define _GNU_SOURCE        /* getrandom, O_CLOEXEC, clock_gettime under -std=c99 */
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
# include <sys/random.h>
#endif

#include "ids.h"

static const char hex[] = "0123456789abcdef";
static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";   /* Crockford */

int lb__os_random(void *buf, size_t n) {
  int fd;
  ssize_t got;
#if defined(__linux__)
  if (getrandom(buf, n, GRND_NONBLOCK) == (ssize_t)n) return 0;
#endif
  fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  got = read(fd, buf, n);
  close(fd);
  return got == (ssize_t)n ? 0 : -1;
}

uint64_t lb__wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void lb__rng_seed(lb_rng *r, const void *salt) {
  uint64_t seed[2] = {0, 0};
  if (lb__os_random(seed, sizeof seed) != 0) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    seed[0] = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec;
    seed[1] = (uint64_t)(uintptr_t)salt ^ ((uint64_t)getpid() << 32);
  }
  if (seed[0] == 0 && seed[1] == 0) seed[0] = 0x9e3779b97f4a7c15ull;
  r->s[0] = seed[0];
  r->s[1] = seed[1];
}

uint64_t lb__rng_next(lb_rng *r) {
  uint64_t s1 = r->s[0];
  const uint64_t s0 = r->s[1];
  r->s[0] = s0;
  s1 ^= s1 << 23;
  r->s[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
  return r->s[1] + s0;
}

/* 16 bytes as 8-4-4-4-12 hex. */
static void uuid_text(const unsigned char b[16], char out[37]) {
  int i, j;
  for (i = 0, j = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out[j++] = '-';
    out[j++] = hex[b[i] >> 4];
    out[j++] = hex[b[i] & 15];
  }
  out[36] = '\0';
}

void lb__uuid4(lb_rng *r, char out[37]) {
  unsigned char b[16];
  uint64_t a = lb__rng_next(r), c = lb__rng_next(r);
  int i;
  a = (a & 0xffffffffffff0fffULL) | 0x4000ULL;              /* version 4 */
  c = (c & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  /* variant 10 */
  for (i = 0; i < 8; i++) {
    b[i] = (unsigned char)(a >> (56 - 8 * i));
    b[8 + i] = (unsigned char)(c >> (56 - 8 * i));
  }
  uuid_text(b, out);
}

void lb__uuid7(lb_rng *r, lb_uuid7 *st, uint64_t ms, char out[37]) {
  unsigned char b[16];
  int i;
  if (ms > st->ms) {
    uint64_t x = lb__rng_next(r);
    st->ms = ms;
    st->hi = (x >> 53) & 0x7ff;              /* 11 bits: top bit stays 0 */
    st->lo = lb__rng_next(r) >> 2;           /* 62 bits */
  } else if (++st->lo >> 62) {
    st->lo = 0;
    if (++st->hi > 0xfff) {                  /* 2^74 ids in one ms: move on */
      st->ms++;
      st->hi = 0;
    }
  }
  ms = st->ms;
  for (i = 0; i < 6; i++) b[i] = (unsigned char)(ms >> (40 - 8 * i));
  b[6] = (unsigned char)(0x70 | ((st->hi >> 8) & 0x0f));
  b[7] = (unsigned char)(st->hi & 0xff);
  b[8] = (unsigned char)(0x80 | ((st->lo >> 56) & 0x3f));
  for (i = 9; i < 16; i++) b[i] = (unsigned char)(st->lo >> (8 * (15 - i)));
  uuid_text(b, out);
}

/* n random bytes: the OS's, else a generator seeded from the clock. */
static void some_random(unsigned char *buf, size_t n) {
  if (lb__os_random(buf, n) != 0) {
    lb_rng r;
    size_t i;
    lb__rng_seed(&r, buf);
    for (i = 0; i < n; i++) buf[i] = (unsigned char)lb__rng_next(&r);
  }
}

void lb__ulid(char out[26]) {
  unsigned char r[10];
  uint64_t ms = lb__wall_ms();
  int i, bit;
  some_random(r, sizeof r);
  for (i = 9; i >= 0; i--) { out[i] = b32[ms & 31]; ms >>= 5; }
  /* 80 bits -> 16 characters, 5 bits at a time from the top */
  for (i = 0, bit = 0; i < 16; i++, bit += 5) {
    int byte = bit / 8, off = bit % 8, v = (r[byte] << 8 | (byte + 1 < 10 ? r[byte + 1] : 0));
    out[10 + i] = b32[(v >> (11 - off)) & 31];
  }
}

void lb__short_id(char out[9]) {
  unsigned char r[4];
  uint64_t t;
  int i;
  some_random(r, sizeof r);
  t = lb__wall_ms() ^ (((uint64_t)r[0] << 24 | (uint64_t)r[1] << 16 | (uint64_t)r[2] << 8 | r[3]) & 0x3fffffff);
  for (i = 8; i >= 0; i--) { out[i] = b32[t & 31]; t >>= 5; }
}

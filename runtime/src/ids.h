/*
** ids.h - the runtime's id generators, one of each kind: random bytes from
** the OS, a fast generator seeded from them (xorshift128+), UUIDv4 (record
** ids of destinations), UUIDv7 (monotonic _airbyte_raw_id of a cache),
** ULIDs and short time-ordered ids (names of caches and log files, as
** PyAirbyte makes them). Ids need to be unique, not secret.
*/
#ifndef LB_IDS_H
#define LB_IDS_H

#include <stddef.h>
#include <stdint.h>

typedef struct lb_rng {
  uint64_t s[2];
} lb_rng;

/* Fill buf[0..n) from the kernel (getrandom, else /dev/urandom): 0, or -1
** when neither answered. */
int lb__os_random(void *buf, size_t n);

/* Seed from the OS; without it from the clock, the pid and salt (any
** address that differs between generators). */
void lb__rng_seed(lb_rng *r, const void *salt);
uint64_t lb__rng_next(lb_rng *r);

/* Wall-clock milliseconds since the epoch. */
uint64_t lb__wall_ms(void);

/* A random (version 4) UUID, lower-case hex, NUL-terminated. */
void lb__uuid4(lb_rng *r, char out[37]);

/* RFC 9562 UUIDv7, method 1 of its section 6.2: the 74 bits after the
** timestamp are a counter that starts at a random value (top bit clear, so
** it has room to grow) each new millisecond and is incremented within one;
** a clock that steps back keeps the last timestamp. The ids of one state
** are strictly increasing, as text too. */
typedef struct lb_uuid7 {
  uint64_t ms;          /* timestamp of the last id */
  uint64_t hi, lo;      /* its 12 + 62 counter bits */
} lb_uuid7;
void lb__uuid7(lb_rng *r, lb_uuid7 *st, uint64_t now_ms, char out[37]);

/* A ULID: 48 bits of milliseconds and 80 random bits in Crockford's
** base32, 26 characters (not NUL-terminated). */
void lb__ulid(char out[26]);

/* A short time-ordered id: 9 Crockford base32 characters of the
** milliseconds with their low 30 bits mixed with random ones (log files). */
void lb__short_id(char out[9]);

#endif

/*
** digest.h - SHA-256 (FIPS 180-4) and the digest of a JSON value's
** canonical form, which names a destination's identity (its config hash)
** without keeping its secrets in clear.
*/
#ifndef LB_DIGEST_H
#define LB_DIGEST_H

#include <stddef.h>
#include <stdint.h>

typedef struct lb__sha256 {
  uint32_t h[8];
  uint64_t bytes;               /* message length so far */
  unsigned char block[64];
  size_t used;                  /* bytes waiting in block */
} lb__sha256;

void lb__sha256_init(lb__sha256 *s);
void lb__sha256_update(lb__sha256 *s, const void *data, size_t n);
void lb__sha256_final(lb__sha256 *s, unsigned char out[32]);

/* Lower-case hex of the SHA-256 of the canonical form of the JSON text
** json[0..n): no white space, object members ordered by the bytes of their
** keys as spelled, everything else as spelled. Two texts of one value that
** differ in member order or spacing have one digest. Returns 0, LB_EINVAL
** when the text is not valid JSON, LB_ENOMEM. */
int lb__json_digest(const char *json, size_t n, char hex[65]);

#endif

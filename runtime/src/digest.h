/*
** digest.h - SHA-256 (FIPS 180-4) and the digest of a JSON value's
** canonical form, which names a destination's identity (its config hash)
** without keeping its secrets in clear, and a state's identity (cache.h:
** lb_cache_state_identity), whatever spelling a destination echoes it in.
*/
#ifndef LB_DIGEST_H
#define LB_DIGEST_H

#include <stddef.h>
#include <stdint.h>
#include "textbuf.h"

typedef struct lb__sha256 {
  uint32_t h[8];
  uint64_t bytes;               /* message length so far */
  unsigned char block[64];
  size_t used;                  /* bytes waiting in block */
} lb__sha256;

void lb__sha256_init(lb__sha256 *s);
void lb__sha256_update(lb__sha256 *s, const void *data, size_t n);
void lb__sha256_final(lb__sha256 *s, unsigned char out[32]);

/* The canonical form of a JSON text: its value as airbyte.json decodes it,
** written as airbyte.json encodes it, so that json.digest of a text and of
** the table decoded from it are one digest, and two spellings of one value
** are one text. Precisely:
**   - no white space; object members ordered by the bytes of their keys
**     as written below; a key given twice keeps its last value (as
**     decoding does); arrays keep their order;
**   - strings (keys too) by the characters they hold, spelled by jsonenc.c
**     ("\u00e9" and its UTF-8 bytes C3 A9 are one string, "\/" and "/" too);
**   - integers exactly: int64 as decimal digits, a longer one as spelled;
**     other numbers as the double they read as, written by jsonenc.c,
**     except that an integral double within int64 is that integer: 1, 1.0,
**     1e0 and 10E-1 are one number, so are 0.1 and 0.10000000000000001
**     (one double), but not 9007199254740993 and 9007199254740992 (exact
**     integers), nor 2^63-1 and 9.223372036854775807e18 (a double, 2^63);
**     a number beyond a double's range (1e400) stays as spelled;
**   - true, false and null as they are.
** Appends the form of json[0..n) to out. Returns 0, LB_EINVAL when the text
** is not valid JSON, LB_ENOMEM (out then holds what it held before). */
int lb__json_canonical(const char *json, size_t n, lb_sbuf *out);

/* Lower-case hex of the SHA-256 of the canonical form of json[0..n).
** Returns 0, LB_EINVAL when the text is not valid JSON, LB_ENOMEM. */
int lb__json_digest(const char *json, size_t n, char hex[65]);

/* The same for a value span of a text already validated (lb_jskim). */
struct lb_jval;
int lb__json_digest_value(const struct lb_jval *v, char hex[65]);

#endif
